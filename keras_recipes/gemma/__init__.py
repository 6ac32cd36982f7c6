"""Gemma 2 in Keras: config and presets, the model, Hugging Face checkpoints."""

from keras_recipes.gemma.checkpoints import (
    GemmaCheckpointError,
    load_checkpoint,
    load_hf,
    save_checkpoint,
    save_hf,
)
from keras_recipes.gemma.model import GemmaBlock, GemmaConfig, GemmaModel, build_gemma
from keras_recipes.gemma.presets import PRESETS

__all__ = [
    "PRESETS",
    "GemmaBlock",
    "GemmaCheckpointError",
    "GemmaConfig",
    "GemmaModel",
    "build_gemma",
    "load_checkpoint",
    "load_hf",
    "save_checkpoint",
    "save_hf",
]
