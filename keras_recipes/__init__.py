"""keras-recipes: Keras 3 / TensorFlow recipes for sequence models and LLMs.

Modules, one idea each (see DESIGN.md):

- `keras_recipes.activations`: sigmoid, relu, swish, swiglu on `keras.ops`.
- `keras_recipes.layers`: RotaryEmbedding, RMSNorm, SwiGLU, CausalSelfAttention, LlamaBlock.
- `keras_recipes.llama`: LlamaConfig, build_llama, generation, checkpoint import/export.
- `keras_recipes.optimizers`: every Keras optimizer by name, with the Keras 2 spellings.
- `keras_recipes.rnn`, `keras_recipes.seq2seq`: classic sequence-model builders.
- `keras_recipes.embeddings`: vocabularies, TF-IDF, Word2Vec, pretrained vectors.
- `keras_recipes.export`, `keras_recipes.serving`: TF Serving SavedModels and TFLite.

Submodules import TensorFlow/Keras lazily, so `import keras_recipes` is cheap.
"""

__version__ = "0.1.0"
