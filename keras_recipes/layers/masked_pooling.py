"""Masked average pooling that stays finite on a sequence with no real tokens."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_recipes")
class MaskedGlobalAveragePooling1D(keras.layers.GlobalAveragePooling1D):
    """`GlobalAveragePooling1D` whose all-padding rows average to zeros, not NaN.

    With a mask, Keras's layer divides the sum of the real steps by their
    count. A row with no real step (an empty text, or one whose every word
    the tokenizer drops, like SST-2's training phrase `(`) gives `0 / 0`: a
    NaN output whose NaN gradient reaches every weight in one step, and the
    model stops learning. Here the count is at least one, so such a row
    pools to zeros; every other row is pooled exactly as Keras pools it.
    Without a mask it is `GlobalAveragePooling1D`.

    Args:
        **kwargs: `keras.layers.GlobalAveragePooling1D` arguments
            (`data_format`, `keepdims`, `name`, ...).

    Call arguments:
        inputs: tensor `(batch, steps, features)` (channels last).
        mask: optional boolean tensor `(batch, steps)`, True at real steps;
            an `Embedding(mask_zero=True)` before this layer passes it.

    Examples:

    >>> import numpy as np
    >>> pool = MaskedGlobalAveragePooling1D()
    >>> x = np.array([[[1.0], [3.0], [9.0]], [[5.0], [7.0], [9.0]]], "float32")
    >>> mask = np.array([[True, True, False], [False, False, False]])
    >>> np.asarray(pool(x, mask=mask)).tolist()
    [[2.0], [0.0]]
    """

    def call(self, inputs, mask=None):
        if mask is None:
            return super().call(inputs)
        channels_last = self.data_format == "channels_last"
        steps_axis = 1 if channels_last else 2
        mask = ops.expand_dims(ops.cast(mask, "bool"), 2 if channels_last else 1)
        total = ops.sum(ops.where(mask, inputs, 0), axis=steps_axis, keepdims=self.keepdims)
        count = ops.sum(ops.cast(mask, inputs.dtype), axis=steps_axis, keepdims=self.keepdims)
        return total / ops.maximum(count, 1)
