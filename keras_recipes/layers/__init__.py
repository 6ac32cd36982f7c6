"""Keras layers (`keras.ops` only, any backend): decoders' building blocks, and tagger layers."""

from keras_recipes.layers.causal_self_attention import CausalSelfAttention
from keras_recipes.layers.char_encoder import CharacterEncoder
from keras_recipes.layers.crf import CRF
from keras_recipes.layers.geglu import GeGLU
from keras_recipes.layers.llama_block import LlamaBlock
from keras_recipes.layers.masked_pooling import MaskedGlobalAveragePooling1D
from keras_recipes.layers.rms_norm import RMSNorm
from keras_recipes.layers.rotary_embedding import RotaryEmbedding, rope_inverse_frequencies
from keras_recipes.layers.swiglu import SwiGLU, llama_hidden_dim

__all__ = [
    "CRF",
    "CausalSelfAttention",
    "CharacterEncoder",
    "GeGLU",
    "LlamaBlock",
    "MaskedGlobalAveragePooling1D",
    "RMSNorm",
    "RotaryEmbedding",
    "SwiGLU",
    "llama_hidden_dim",
    "rope_inverse_frequencies",
]
