"""keras-recipes: Keras 3 / TensorFlow recipes for sequence models and LLMs.

Modules, one idea each (the map: docs/architecture.md):

- `keras_recipes.activations`: sigmoid, relu, swish, swiglu on `keras.ops`.
- `keras_recipes.layers`: RotaryEmbedding, RMSNorm, SwiGLU, CausalSelfAttention, LlamaBlock.
- `keras_recipes.llama`: LlamaConfig, build_llama, generation, checkpoint import/export.
- `keras_recipes.optimizers`: every Keras optimizer by name, with the Keras 2 spellings.
- `keras_recipes.rnn`, `keras_recipes.seq2seq`: classic sequence-model builders.
- `keras_recipes.embeddings`: vocabularies, TF-IDF, Word2Vec, pretrained vectors.
- `keras_recipes.export`, `keras_recipes.serving`: TF Serving SavedModels and TFLite.

Submodules import TensorFlow/Keras lazily, so `import keras_recipes` is cheap.
It still makes every `.keras` file the package writes loadable with
`keras.models.load_model`: the modules that register its Keras classes are
imported as soon as Keras is (`keras_recipes/_registry.py`). It also turns
on XLA's persistent compilation cache, so a second process that generates
with the same shapes loads the compiled code instead of compiling it
(`keras_recipes/xla_cache.py`; `KERAS_RECIPES_XLA_CACHE=0` turns it off).
"""

from keras_recipes._registry import register_when_keras_loads
from keras_recipes.xla_cache import enable_xla_cache

__version__ = "0.1.0"


def quiet_tensorflow() -> None:
    """Imports TensorFlow without its start-up log on stderr.

    TensorFlow 2.21 prints oneDNN, CUDA and CPU-feature lines through absl
    before its logging is initialized, where `TF_CPP_MIN_LOG_LEVEL` does not
    reach them; the only way to hide them is to point file descriptor 2 at
    /dev/null while TensorFlow loads and initializes its devices. Python
    errors raised by the import are shown as usual. Call it before anything
    imports TensorFlow or Keras (the `keras-recipes` command and the recipes
    do); later calls do nothing.

    Set `KERAS_RECIPES_VERBOSE_TF=1` to turn it off: TensorFlow's log then
    reaches stderr as usual (fd 2 is left alone, `TF_CPP_MIN_LOG_LEVEL` is
    not set), e.g. to see which devices and CPU features TensorFlow found.
    """
    import os
    import sys

    if os.environ.get("KERAS_RECIPES_VERBOSE_TF") == "1":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


register_when_keras_loads()
enable_xla_cache()
