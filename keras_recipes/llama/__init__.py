"""LLaMA in Keras: config and presets, the model, its fast paths (fused
decode step, TFLite functions, int8/bfloat16 decoding), and import/export
of llama2.c and Hugging Face checkpoints. Generation, sampling and the fused
training loss are `keras_recipes.causal_lm`'s, shared with every family."""

from keras_recipes.causal_lm.families import register_gguf_loader
from keras_recipes.causal_lm.losses import LanguageModelLoss  # registered for load_model
from keras_recipes.llama.checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_hf,
    load_llama2c,
    save_checkpoint,
    save_hf,
    save_llama2c,
)
from keras_recipes.llama.config import LlamaConfig
from keras_recipes.llama.gguf_format import ARCHITECTURE as _GGUF_ARCHITECTURE
from keras_recipes.llama.gguf_load import load_llama_gguf
from keras_recipes.llama.model import LlamaModel, build_llama
from keras_recipes.llama.presets import PRESETS
from keras_recipes.llama.quantize import QuantizedLlama, quantize_for_decoding

register_gguf_loader(_GGUF_ARCHITECTURE, load_llama_gguf)

__all__ = [
    "PRESETS",
    "CheckpointError",
    "LanguageModelLoss",
    "LlamaConfig",
    "LlamaModel",
    "QuantizedLlama",
    "build_llama",
    "load_checkpoint",
    "load_hf",
    "load_llama2c",
    "quantize_for_decoding",
    "save_checkpoint",
    "save_hf",
    "save_llama2c",
]
