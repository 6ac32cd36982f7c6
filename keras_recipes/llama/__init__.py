"""LLaMA in Keras: config and presets, model builder, KV-cached generation."""

from keras_recipes.llama.model import PRESETS, LlamaConfig, LlamaModel, build_llama

__all__ = ["PRESETS", "LlamaConfig", "LlamaModel", "build_llama"]
