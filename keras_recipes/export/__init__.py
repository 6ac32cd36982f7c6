"""Deployment: SavedModels for TF Serving and TFLite files that generate text.

- `export_saved_model(model, "saved_models/NAME")` -> `saved_models/NAME/<version>/`
  with named signatures, verified against the Keras model, with warm-up records.
- `export_tflite(model, "model.tflite", quantize=None | "dynamic-int8" | "float16")`
  -> LLaMA `prefill` / `decode` signatures with the KV cache as tensors, built-in
  ops only; `TFLiteGenerator(path).generate(...)` runs them with LiteRT. A `Seq2Seq`
  gets `encode` / `decode_step` / `tokenizers`; `TFLiteTranslator(path).translate(...)`.
- `write_models_config(path, models)`: TF Serving's `models.config`.
"""

from keras_recipes.export.saved_model import (
    call_signature,
    compare_outputs,
    export_saved_model,
    verify_saved_model,
)
from keras_recipes.export.tflite import (
    TFLiteGenerator,
    TFLiteTranslator,
    export_tflite,
    verify_tflite,
)
from keras_recipes.export.warmup import WARMUP_FILE, read_warmup_requests, write_warmup_requests
from keras_recipes.serving import write_models_config

__all__ = [
    "WARMUP_FILE",
    "TFLiteGenerator",
    "TFLiteTranslator",
    "call_signature",
    "compare_outputs",
    "export_saved_model",
    "export_tflite",
    "read_warmup_requests",
    "verify_saved_model",
    "verify_tflite",
    "write_models_config",
    "write_warmup_requests",
]
