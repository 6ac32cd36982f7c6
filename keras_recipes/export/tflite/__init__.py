"""TFLite (LiteRT) export: LLaMA `prefill` / `decode` with the KV cache as tensors.

The generative convention of LiteRT / ai-edge-torch: the model keeps no
state; every call takes the KV cache of each block as fixed-size input
tensors `(1, max_seq_len, n_kv_heads, head_dim)` and returns the updated
ones, and the caller (`TFLiteGenerator`) carries them from call to call.

- `prefill(tokens (1, P), input_pos (1,), k_cache_i, v_cache_i...)` writes
  the keys and values of `P` tokens starting at `input_pos` and returns
  the caches. Prompts are right-padded to `P`: a padded slot is overwritten
  before any real query can see it.
- `decode(tokens (1, 1), input_pos (1,), caches...)` feeds one token and
  returns `logits (1, vocab)` and the caches.
- LLaMA exports also have `decode_<length>` (128, 256, ... below
  `max_seq_len`): `decode` for positions below `length`, taking the first
  `length` slots of each cache and returning only the new rows
  `k_row_i` / `v_row_i (1, 1, n_kv_heads, head_dim)`, which the caller
  writes at `input_pos`; a step early in a long context then moves a
  fraction of the caches.

Only built-in TFLite ops are used (no Flex delegate), so the pip LiteRT
interpreter runs the file as it is.

The package, one idea per file:

- `convert.py`: `export_tflite`, the signature functions of each kind of
  model, the SavedModel they are written to and the converter.
- `flatbuffer.py`: schema surgery on the converted file (one int8 copy of a
  tied embedding table).
- `generator.py`: `TFLiteGenerator`, the LLaMA runtime that carries the caches.
- `translator.py`: `TFLiteTranslator`, the `Seq2Seq` runtime (greedy, beam).
- `verify.py`: `verify_tflite`, the file checked against the Keras model.
- `interpreter.py`: where LiteRT is loaded.
"""

from keras_recipes.export.tflite.convert import QUANTIZE_MODES, export_tflite
from keras_recipes.export.tflite.generator import TFLiteGenerator
from keras_recipes.export.tflite.translator import TFLiteTranslator
from keras_recipes.export.tflite.verify import verify_tflite

__all__ = [
    "QUANTIZE_MODES",
    "TFLiteGenerator",
    "TFLiteTranslator",
    "export_tflite",
    "verify_tflite",
]
