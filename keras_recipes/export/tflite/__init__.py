"""TFLite (LiteRT) export: LLaMA `prefill` / `decode` with the KV cache as tensors."""

from keras_recipes.export.tflite.convert import (
    QUANTIZE_MODES,
    TFLiteGenerator,
    TFLiteTranslator,
    export_tflite,
    verify_tflite,
)

__all__ = [
    "QUANTIZE_MODES",
    "TFLiteGenerator",
    "TFLiteTranslator",
    "export_tflite",
    "verify_tflite",
]
