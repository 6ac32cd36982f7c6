"""What every SavedModel signature family shares: the default name, the variables to save."""

from __future__ import annotations

import keras

SERVING_DEFAULT = "serving_default"


def _tf_variables(model: keras.Model) -> list:
    """The model's `tf.Variable`s themselves, each once.

    Keras 3 wraps each `tf.Variable` in a `keras.Variable`. Saving the
    wrappers, the MetaGraph's saver restores nothing the graph reads: the TF2
    object loader (`tf.saved_model.load`) still works, but TF Serving's
    session loader fails with "Could not find variable". Saving `.value`
    (the `tf.Variable`) gives a saver that restores every variable the
    signatures read, as Keras's own `model.export()` does. A `tf.Module`'s
    (`quantize_for_decoding`'s) are `tf.Variable`s already.
    """
    return [v.value if isinstance(v, keras.Variable) else v for v in model.variables]
