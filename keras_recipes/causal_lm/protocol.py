"""The causal-LM protocol: what generation and export ask of a decoder.

Generation (`keras_recipes.causal_lm.generation`), the SavedModel signatures,
the TFLite prefill/decode export and the fused training loss talk to a
decoder only through these methods, in the shape of keras-hub's `CausalLM.call_with_cache`. LLaMA is
one implementation; a second decoder that provides them gets `generate`,
`export_saved_model` and `export_tflite` without touching the package
(`tests/test_causal_lm_protocol.py` builds a GPT-2-style one).

- `model(token_ids)`: int32 `(B, T)` -> float32 logits `(B, T, vocab)`.
- `model.call_with_cache(token_ids, caches, start_index, padding_mask=None,
  output_kernel=None)`: runs `token_ids` `(B, t)` at positions
  `start_index ..`, writing their keys and values into `caches`; returns the
  float32 logits of the last position `(B, vocab)` and the new caches.
  `padding_mask` is bool `(B, S)` over the cache slots (False: left
  padding, never attended). Prompts of a batch are left-padded to a common
  length (rounded up, so nearby lengths share a compiled function): a model
  with rotary positions needs nothing more, one with absolute positions
  counts them from the first real token (as in `tests/test_causal_lm_protocol.py`). `output_kernel` is what `output_kernel()`
  returned, passed back so a decoding loop computes it once.
- `model.init_caches(batch, length)`: zero caches for `length` positions, any
  nest of tensors whose axis 0 is the batch and axis 1 the position.
- `model.output_kernel()`: the `(dim, vocab)` output matrix.
- `model.config.vocab_size`, `model.config.max_seq_len`.

Optional, for the fused training loss: `hidden_states(token_ids, training=None)`
(the final hidden states the head maps) and `output_weights()` (the output
matrix's variable, and whether it is the embedding table), and
`logit_soft_cap()` when the head soft-caps its logits (Gemma 2), with
`keras_recipes.causal_lm.CausalLM` (or `FusedTrainStep`) mixed in before `keras.Model`:
compiled with `LanguageModelLoss`, it trains without the `(B, T, vocab)`
logits.

Optional: `call_with_cache(..., cache_update=fn)`, a function
`(cache, values, start_index) -> cache` that the model uses to write its
caches. The SavedModel graphs that TF Serving runs without XLA pass one
(a scatter, `keras_recipes.causal_lm.graph_generate.scatter_cache_update`) when
the model takes it: a dynamic-update-slice, the fastest write under XLA
and in TFLite, is an XLA op that plain TensorFlow runs only by compiling
it. A model without the argument writes its caches with ops that every
runtime runs (`tests/test_causal_lm_protocol.py` masks them in). Nothing
in the model knows which runtime traces it.

Optional hooks for a family's fast paths (a family without them gets the
generic path, which is correct but slower or larger):

- `model.fused_decode_step(output_kernel, key_mask)`: a decode step in few
  plain TensorFlow ops for the SavedModel's in-graph loop, or None when it
  cannot run this model (`keras_recipes.causal_lm.graph_generate.fused_step`
  says what it returns; LLaMA's is `keras_recipes.llama.fused_decode`).
- `model.tflite_functions(prefill_len)`: the `prefill` / `decode`
  `tf.function`s `export_tflite` converts (LLaMA's store a tied embedding
  table once); without it, functions built on `call_with_cache`.
- `model.quantized_for_export(weights)`: the model `export_saved_model(...,
  weights="int8" | "bfloat16")` serves (LLaMA's `QuantizedLlama`).
"""

from __future__ import annotations

import inspect

METHODS = ("call_with_cache", "init_caches", "output_kernel")
# What `quantized_for_export(weights)` may be asked for ("float32": the model itself).
WEIGHT_DTYPES = ("float32", "bfloat16", "int8")
CONFIG_FIELDS = ("vocab_size", "max_seq_len")


def missing_parts(model) -> list[str]:
    """What `model` lacks of the protocol (empty: it is a causal LM)."""
    missing = [f"{name}()" for name in METHODS if not callable(getattr(model, name, None))]
    config = getattr(model, "config", None)
    missing += [
        f"config.{name}"
        for name in CONFIG_FIELDS
        if not isinstance(getattr(config, name, None), int)
    ]
    return missing


def is_causal_lm(model) -> bool:
    """Whether `model` follows the causal-LM protocol."""
    return not missing_parts(model)


def check_causal_lm(model, who: str) -> None:
    """Raises a ValueError naming what `model` lacks of the protocol."""
    missing = missing_parts(model)
    if missing:
        raise ValueError(
            f"{who}: {type(model).__name__} is not a causal LM: it lacks {', '.join(missing)}. "
            "See keras_recipes.causal_lm for the methods a decoder provides."
        )


def takes_cache_update(model) -> bool:
    """Whether `model.call_with_cache` accepts `cache_update=` (a replacement cache write)."""
    parameters = inspect.signature(model.call_with_cache).parameters
    return "cache_update" in parameters
