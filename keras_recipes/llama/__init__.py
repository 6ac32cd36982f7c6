"""LLaMA in Keras: config and presets, model builder, KV-cached generation,
and import/export of llama2.c and Hugging Face checkpoints."""

from keras_recipes.llama.checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_hf,
    load_llama2c,
    save_checkpoint,
    save_hf,
    save_llama2c,
)
from keras_recipes.llama.losses import LanguageModelLoss  # registered for load_model
from keras_recipes.llama.model import PRESETS, LlamaConfig, LlamaModel, build_llama
from keras_recipes.llama.quantize import QuantizedLlama, quantize_for_decoding

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
