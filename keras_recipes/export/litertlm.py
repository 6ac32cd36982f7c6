"""LiteRT-LM: `.litertlm` bundles that Google's on-device LLM runtime runs.

`export_litertlm(model, "model.litertlm", tokenizer=...)` writes one file
with the TFLite model, the tokenizer and the LLM metadata (start and stop
tokens, context length, prompt template), packed by `litert-lm-builder`;
`litert_lm.Engine("model.litertlm")` (the `litert-lm-api` package) loads it
and generates text on the CPU.

The TFLite model here is not `export_tflite`'s (that one serves our own
`TFLiteGenerator`). LiteRT-LM's executor recognises a model by its
signatures and tensor names, and on the CPU it hands each KV cache to the
model as one buffer that is both input and output:

- signatures `prefill` (`tokens` int32 `[1, T]`, `input_pos` int32 `[T]`)
  and `decode` (`tokens` `[1, 1]`, `input_pos` `[1]`), one position per
  token;
- caches `kv_cache_k_<i>` and `kv_cache_v_<i>`, float32
  `[1, kv_heads, context, head_dim]`, inputs and outputs of the same name
  (the engine reads the context length from axis 2);
- `decode` also returns `logits` float32 `[1, 1, vocab]`.

The engine fills a prefill chunk's unused rows with token 0 at position 0,
so a row is written into the cache only when its position follows the
chunk's first one (`input_pos[t] == input_pos[0] + t`): padding never
overwrites slot 0. Each row attends to the slots at or before its
position, with the mask built inside the model from `input_pos`.

A model offers these functions through its optional `litertlm_functions
(prefill_len)` hook (LLaMA's: `keras_recipes.llama.litertlm_functions`,
its forward pass restated in TensorFlow ops); they are converted with
built-in TFLite ops only, in float32 or with dynamic-int8 weights.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

LITERTLM_QUANTIZE_MODES = (None, "dynamic-int8")
# A plain prompt template: the conversation's messages, in order, as text.
DEFAULT_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"


def _prefill_length(context: int, wanted: int | None) -> int:
    if wanted is None:
        return min(32, context)
    if not isinstance(wanted, int) or not 1 <= wanted <= context:
        raise ValueError(
            f"export_litertlm: prefill_len must be an int in [1, max_seq_len={context}], "
            f"got {wanted!r}."
        )
    return wanted


def _tokenizer_section(tokenizer, folder: Path, vocab_size: int):
    """`(kind, file)`: the tokenizer as a file the builder packs, `"sp"` or `"hf"`."""
    from keras_recipes.tokenizers import (
        BytePairTokenizerJson,
        SentencePieceTokenizer,
        load_tokenizer,
    )

    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(tokenizer, vocab_size=vocab_size)
    if isinstance(tokenizer, SentencePieceTokenizer):
        return tokenizer, "sp", tokenizer.save(folder / "tokenizer.model")
    if isinstance(tokenizer, BytePairTokenizerJson):
        return tokenizer, "hf", Path(tokenizer.path)
    raise ValueError(
        f"export_litertlm: LiteRT-LM reads SentencePiece .model and Hugging Face "
        f"tokenizer.json tokenizers, not a {type(tokenizer).__name__}; convert llama2.c's "
        "tokenizer.bin to one of them first."
    )


def llm_metadata(
    model,
    tokenizer,
    stop_token_ids=None,
    prompt_template: str | None = None,
):
    """LiteRT-LM's `LlmMetadata` proto for `model` and `tokenizer`."""
    from litert_lm_builder.runtime.proto import llm_metadata_pb2

    metadata = llm_metadata_pb2.LlmMetadata()
    if tokenizer.bos_id is not None and tokenizer.bos_id >= 0:
        metadata.start_token.token_ids.ids.append(int(tokenizer.bos_id))
    stops = [tokenizer.eos_id] if stop_token_ids is None else list(stop_token_ids)
    if not stops:
        raise ValueError(
            "export_litertlm: LiteRT-LM refuses a bundle without stop tokens; pass at least one "
            "id in stop_token_ids (or None for the tokenizer's EOS)."
        )
    for stop in stops:
        if not 0 <= int(stop) < model.config.vocab_size:
            raise ValueError(
                f"export_litertlm: stop token {stop} is outside the vocabulary "
                f"[0, {model.config.vocab_size})."
            )
        metadata.stop_tokens.add().token_ids.ids.append(int(stop))
    metadata.max_num_tokens = model.config.max_seq_len
    metadata.llm_model_type.generic_model.SetInParent()
    metadata.jinja_prompt_template = (
        prompt_template or getattr(tokenizer, "chat_template", None) or DEFAULT_TEMPLATE
    )
    metadata.supports_thinking = False
    metadata.supports_function_calling = False
    return metadata


def export_litertlm(
    model,
    path: str | os.PathLike,
    tokenizer,
    quantize: str | None = None,
    prefill_len: int | None = None,
    stop_token_ids=None,
    prompt_template: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes a `.litertlm` bundle that `litert_lm.Engine` runs.

    Args:
        model: a `LlamaModel`, or any causal LM with a `litertlm_functions`
            hook.
        path: str or path of the `.litertlm` file; written atomically.
        tokenizer: a `SentencePieceTokenizer`, a `BytePairTokenizerJson`, or
            the path of a `.model` or `tokenizer.json` file. The engine
            tokenizes with it and adds its BOS id.
        quantize: None (float32 weights) or `"dynamic-int8"` (int8 weights,
            float activations).
        prefill_len: int or None, tokens per prefill call (the engine
            splits longer prompts); defaults to `min(32, max_seq_len)`.
        stop_token_ids: ids that end a turn; defaults to the tokenizer's EOS.
        prompt_template: a Jinja template for the engine's conversations;
            defaults to the tokenizer's chat template, else the messages'
            text in order.
        overwrite: bool. An existing file is an error unless True.

    Returns:
        The path written.

    After training, `model = load_checkpoint("runs/llama_tiny/model.keras")`
    and `export_litertlm(model, "llama_tiny.litertlm",
    tokenizer="runs/llama_tiny/tokenizer.model")` write the bundle, which
    LiteRT-LM opens with `litert_lm.Engine("llama_tiny.litertlm")`. (No
    doctest: it needs a trained checkpoint, and conversion takes seconds.)
    """
    try:
        from litert_lm_builder import litertlm_builder
    except ImportError as error:
        raise ImportError(
            "export_litertlm needs litert-lm-builder: pip install 'keras-recipes[litertlm]'."
        ) from error

    from keras_recipes._io import atomic_path
    from keras_recipes.export.tflite.convert import _convert

    if not callable(getattr(model, "litertlm_functions", None)):
        raise ValueError(
            f"export_litertlm: a {type(model).__name__} has no litertlm_functions(prefill_len); "
            "LiteRT-LM bundles are written for models that offer it (LlamaModel)."
        )
    if quantize not in LITERTLM_QUANTIZE_MODES:
        raise ValueError(
            f"export_litertlm: quantize must be one of {list(LITERTLM_QUANTIZE_MODES)}, "
            f"got {quantize!r}."
        )
    path = Path(path)
    if path.exists() and not overwrite:
        raise ValueError(f"export_litertlm: {path} exists; pass overwrite=True or another path.")
    prefill = _prefill_length(model.config.max_seq_len, prefill_len)
    with tempfile.TemporaryDirectory(prefix="litertlm-") as scratch:
        folder = Path(scratch)
        tokenizer, kind, tokenizer_file = _tokenizer_section(
            tokenizer, folder, model.config.vocab_size
        )
        metadata = llm_metadata(model, tokenizer, stop_token_ids, prompt_template)
        (folder / "llm_metadata.pb").write_bytes(metadata.SerializeToString())
        flatbuffer = _convert(model, model.litertlm_functions(prefill), quantize)
        (folder / "model.tflite").write_bytes(flatbuffer)
        builder = litertlm_builder.LitertLmFileBuilder()
        builder.add_system_metadata(
            litertlm_builder.Metadata(
                key="Authors", value="keras-recipes", dtype=litertlm_builder.DType.STRING
            )
        )
        # float32 activations: the engine's default for a text decoder is fp16
        # where the CPU computes in fp16 (ARM phones), which would move the logits.
        builder.add_tflite_model(
            str(folder / "model.tflite"),
            litertlm_builder.TfLiteModelType.PREFILL_DECODE,
            prefer_activation_type="fp32",
        )
        if kind == "sp":
            builder.add_sentencepiece_tokenizer(str(tokenizer_file))
        else:
            builder.add_hf_tokenizer(str(tokenizer_file))
        builder.add_llm_metadata(str(folder / "llm_metadata.pb"))
        with atomic_path(path, suffix=".litertlm") as partial, open(partial, "wb") as f:
            builder.build(f, validate_metadata=True)
    return path
