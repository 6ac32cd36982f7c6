"""Deployment: SavedModels for TF Serving and TFLite files that generate text.

- `export_saved_model(model, "saved_models/NAME")` -> `saved_models/NAME/<version>/`
  with named signatures and warm-up records, verified through TF Serving's own
  loader (TensorFlow's C++ session loader) against the Keras model.
- `export_tflite(model, "model.tflite", quantize=None | "dynamic-int8" | "float16")`
  -> LLaMA `prefill` / `decode` signatures with the KV cache as tensors, built-in
  ops only; `TFLiteGenerator(path).generate(...)` runs them with LiteRT. A `Seq2Seq`
  gets `encode` / `decode_step` / `tokenizers`; `TFLiteTranslator(path).translate(...)`.
- `export_litertlm(model, "model.litertlm", tokenizer=...)` -> a LiteRT-LM bundle
  (TFLite prefill/decode with the engine's tensor names, tokenizer, start/stop
  tokens, template) that `litert_lm.Engine` runs.
- `save_gguf(model, "model.gguf", tokenizer=..., dtype="f32" | "f16" | "q8_0")` ->
  a GGUF file llama.cpp runs; `load_gguf(path)` reads one back (ours or llama.cpp's).
- `write_models_config(path, models)`: TF Serving's `models.config`.
"""

from keras_recipes.export.gguf import load_gguf, read_gguf_metadata, save_gguf
from keras_recipes.export.litertlm import export_litertlm
from keras_recipes.export.saved_model import export_saved_model, verify_saved_model
from keras_recipes.export.tflite import (
    TFLiteGenerator,
    TFLiteTranslator,
    export_tflite,
    verify_tflite,
)
from keras_recipes.serving import (
    WARMUP_FILE,
    check_saved_model,
    read_warmup_requests,
    write_models_config,
    write_warmup_requests,
)

__all__ = [
    "WARMUP_FILE",
    "TFLiteGenerator",
    "TFLiteTranslator",
    "check_saved_model",
    "export_litertlm",
    "export_saved_model",
    "export_tflite",
    "load_gguf",
    "read_gguf_metadata",
    "read_warmup_requests",
    "save_gguf",
    "verify_saved_model",
    "verify_tflite",
    "write_models_config",
    "write_warmup_requests",
]
