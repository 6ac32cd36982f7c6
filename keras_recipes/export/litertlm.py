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

The forward pass is `LlamaModel`'s, restated in TensorFlow ops on the
model's own weights (`keras_recipes.llama.graph_ops` for RMSNorm and the
RoPE tables, either convention), converted with built-in TFLite ops only,
in float32 or with dynamic-int8 weights.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

LITERTLM_QUANTIZE_MODES = (None, "dynamic-int8")
# A plain prompt template: the conversation's messages, in order, as text.
DEFAULT_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"
_NEG = -1e9  # additive mask value: exp() underflows to exactly 0


def litertlm_functions(model, prefill_len: int) -> dict:
    """`prefill` and `decode` `tf.function`s of a `LlamaModel`, as LiteRT-LM calls them."""
    import tensorflow as tf

    from keras_recipes.llama.graph_ops import rms_norm, rope_tables

    cfg = model.config
    ctx, hd, n_kv = cfg.max_seq_len, cfg.head_dim, cfg.n_kv_heads
    groups = cfg.n_heads // n_kv
    cos_table, sin_table = rope_tables(
        hd, ctx, cfg.rope_theta, cfg.rope_scaling, cfg.rope_convention
    )
    rotate_half = cfg.rope_convention == "rotate_half"
    cache_shape = [1, n_kv, ctx, hd]
    names = [(f"kv_cache_k_{i}", f"kv_cache_v_{i}") for i in range(cfg.n_layers)]
    cache_specs = [tf.TensorSpec(cache_shape, tf.float32, name=n) for pair in names for n in pair]

    def weight(variable):
        return tf.cast(tf.convert_to_tensor(variable), tf.float32)

    def partner(x):
        """The feature each one rotates with: pairs (0, 1), ... or the two halves."""
        if rotate_half:
            halves = tf.reshape(x, [-1, 2, hd // 2])
            return tf.reshape(tf.reverse(halves, [1]), tf.shape(x))
        pairs = tf.reshape(x, [-1, hd // 2, 2])
        return tf.reshape(tf.reverse(pairs, [2]), tf.shape(x))

    def write(cache, rows, one_hot, written):
        """`cache[0, :, s] = rows[t]` for each row t that `one_hot[t, s]` marks."""
        t = rows.shape[0]
        update = tf.matmul(one_hot, tf.reshape(rows, [t, n_kv * hd]), transpose_a=True)
        update = tf.transpose(tf.reshape(update, [ctx, n_kv, hd]), [1, 0, 2])[None]
        return cache * (1.0 - written) + update

    def forward(tokens, input_pos, flat):
        t = tokens.shape[1]
        positions = tf.reshape(input_pos, [t])
        slots = tf.range(ctx, dtype=tf.int32)
        # Rows of a chunk are consecutive positions; the engine's padding rows are not.
        real = tf.equal(positions, positions[0] + tf.range(t, dtype=tf.int32))
        one_hot = tf.cast(
            tf.logical_and(tf.equal(positions[:, None], slots[None, :]), real[:, None]),
            tf.float32,
        )  # (t, ctx)
        written = tf.reshape(tf.reduce_max(one_hot, 0), [1, 1, ctx, 1])
        visible = tf.less_equal(slots[None, :], positions[:, None])  # (t, ctx)
        bias = tf.where(visible, 0.0, _NEG)[None, None]  # (1, 1, t, ctx)
        cos = tf.gather(cos_table, positions)[:, None, :]  # (t, 1, hd)
        sin = tf.gather(sin_table, positions)[:, None, :]
        x = tf.gather(weight(model.tok_embeddings.embeddings), tf.reshape(tokens, [t]))
        new_caches = {}
        for i, block in enumerate(model.blocks):
            attention = block.attention
            h = rms_norm(x, weight(block.attention_norm.scale), block.attention_norm.epsilon)
            q = tf.reshape(tf.matmul(h, weight(attention.wq.kernel)), [t, cfg.n_heads, hd])
            k = tf.reshape(tf.matmul(h, weight(attention.wk.kernel)), [t, n_kv, hd])
            v = tf.reshape(tf.matmul(h, weight(attention.wv.kernel)), [t, n_kv, hd])
            q = (q * cos + partner(q) * sin) * (1.0 / np.sqrt(hd))
            k = k * cos + partner(k) * sin
            keys = write(flat[2 * i], k, one_hot, written)
            values = write(flat[2 * i + 1], v, one_hot, written)
            new_caches[names[i][0]], new_caches[names[i][1]] = keys, values
            # Query heads in groups sharing a key/value head: (kv, groups * t, hd).
            q = tf.reshape(
                tf.transpose(tf.reshape(q, [t, n_kv, groups, hd]), [1, 2, 0, 3]),
                [n_kv, groups * t, hd],
            )
            scores = tf.reshape(tf.matmul(q, keys[0], transpose_b=True), [n_kv, groups, t, ctx])
            probs = tf.nn.softmax(scores + bias, axis=-1)
            out = tf.matmul(tf.reshape(probs, [n_kv, groups * t, ctx]), values[0])
            out = tf.reshape(
                tf.transpose(tf.reshape(out, [n_kv, groups, t, hd]), [2, 0, 1, 3]),
                [t, cfg.n_heads * hd],
            )
            x = x + tf.matmul(out, weight(attention.wo.kernel))
            ffn = block.feed_forward
            h = rms_norm(x, weight(block.ffn_norm.scale), block.ffn_norm.epsilon)
            gate = tf.matmul(h, weight(ffn.w1.kernel))
            x = x + tf.matmul(
                gate * tf.sigmoid(gate) * tf.matmul(h, weight(ffn.w3.kernel)), weight(ffn.w2.kernel)
            )
        return x, new_caches

    def logits_of(x):
        h = rms_norm(x[-1:], weight(model.norm.scale), model.norm.epsilon)
        if model.output_projection is not None:
            logits = tf.matmul(h, weight(model.output_projection.kernel))
        else:
            logits = tf.matmul(h, weight(model.tok_embeddings.embeddings), transpose_b=True)
        return tf.reshape(logits, [1, 1, cfg.vocab_size])

    @tf.function(
        input_signature=[
            tf.TensorSpec([1, prefill_len], tf.int32, name="tokens"),
            tf.TensorSpec([prefill_len], tf.int32, name="input_pos"),
            *cache_specs,
        ],
        autograph=False,
    )
    def prefill(tokens, input_pos, *flat):
        _, caches = forward(tokens, input_pos, flat)
        return caches

    @tf.function(
        input_signature=[
            tf.TensorSpec([1, 1], tf.int32, name="tokens"),
            tf.TensorSpec([1], tf.int32, name="input_pos"),
            *cache_specs,
        ],
        autograph=False,
    )
    def decode(tokens, input_pos, *flat):
        x, caches = forward(tokens, input_pos, flat)
        return {"logits": logits_of(x), **caches}

    return {"prefill": prefill, "decode": decode}


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
        model: a `LlamaModel`.
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

    Examples:

    ```python
    model = load_checkpoint("runs/llama_tiny/model.keras")
    export_litertlm(model, "llama_tiny.litertlm", tokenizer="runs/llama_tiny/tokenizer.model")
    import litert_lm
    engine = litert_lm.Engine("llama_tiny.litertlm")
    ```
    """
    try:
        from litert_lm_builder import litertlm_builder
    except ImportError as error:
        raise ImportError(
            "export_litertlm needs litert-lm-builder: pip install 'keras-recipes[litertlm]'."
        ) from error

    from keras_recipes._io import atomic_path
    from keras_recipes.export.tflite.convert import _convert
    from keras_recipes.llama import LlamaModel

    if not isinstance(model, LlamaModel):
        raise ValueError(f"export_litertlm: expected a LlamaModel, got {type(model).__name__}.")
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
        flatbuffer = _convert(model, litertlm_functions(model, prefill), quantize)
        (folder / "model.tflite").write_bytes(flatbuffer)
        builder = litertlm_builder.LitertLmFileBuilder()
        builder.add_system_metadata(
            litertlm_builder.Metadata(
                key="Authors", value="keras-recipes", dtype=litertlm_builder.DType.STRING
            )
        )
        builder.add_tflite_model(
            str(folder / "model.tflite"), litertlm_builder.TfLiteModelType.PREFILL_DECODE
        )
        if kind == "sp":
            builder.add_sentencepiece_tokenizer(str(tokenizer_file))
        else:
            builder.add_hf_tokenizer(str(tokenizer_file))
        builder.add_llm_metadata(str(folder / "llm_metadata.pb"))
        with atomic_path(path, suffix=".litertlm") as partial, open(partial, "wb") as f:
            builder.build(f, validate_metadata=True)
    return path
