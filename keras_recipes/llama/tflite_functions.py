"""LLaMA's TFLite functions: `prefill` and `decode` with the KV caches as tensors.

The fast path `export_tflite` converts for a `LlamaModel`, offered through
the protocol hook `LlamaModel.tflite_functions`: like the generic functions
on `call_with_cache`, but with a head that multiplies by the tied embedding
table itself, so the file stores the table once.
"""

from __future__ import annotations

import tensorflow as tf

from keras_recipes.llama.graph_ops import rms_norm


def decode_lengths(context: int) -> list[int]:
    """The shorter caches `decode_<length>` reads: 128, 256, ... below the context."""
    return [2**k for k in range(7, 31) if 2**k < context]


def llama_functions(model, prefill_len: int) -> dict:
    """`prefill` (`prefill_len` tokens) and `decode` (one token) of a `LlamaModel`, batch 1.

    The caches travel as float32 tensors `k_cache_<i>` / `v_cache_<i>`
    `(1, max_seq_len, kv_heads, head_dim)`; `decode` also returns `logits`
    `(1, vocab)`. The blocks run through the model's own layers.

    `decode_<length>` (128, 256, ... below `max_seq_len`) is `decode` for
    positions below `length`: it reads only the first `length` slots of each
    cache and returns, beside the logits, only the new rows `k_row_<i>` /
    `v_row_<i>` `(1, 1, kv_heads, head_dim)`, which the caller writes into its
    caches at `input_pos`. Early in a long context a step then reads and
    copies a fraction of the caches (`TFLiteGenerator` picks the shortest
    that holds the position).
    """
    cfg = model.config
    cache_spec = [1, cfg.max_seq_len, cfg.n_kv_heads, cfg.head_dim]
    names = [(f"k_cache_{i}", f"v_cache_{i}") for i in range(cfg.n_layers)]
    cache_specs = [tf.TensorSpec(cache_spec, tf.float32, name=n) for pair in names for n in pair]

    def unflatten(flat):
        return [(flat[2 * i], flat[2 * i + 1]) for i in range(cfg.n_layers)]

    def flatten(caches) -> dict:
        out = {}
        for (k_name, v_name), (k, v) in zip(names, caches, strict=True):
            out[k_name], out[v_name] = tf.cast(k, tf.float32), tf.cast(v, tf.float32)
        return out

    def run_blocks(tokens, position, caches):
        x = model.tok_embeddings(tokens)
        new_caches = []
        for block, (k, v) in zip(model.blocks, caches, strict=True):
            x, k, v = block(x, None, k, v, start_index=position)
            new_caches.append((k, v))
        return x, new_caches

    def head(x):
        """Logits `(1, vocab)` of the last hidden states `x (1, dim)`."""
        if model.output_projection is not None:
            return tf.cast(model.output_projection(model.norm(x)), tf.float32)
        # Tied: x @ E^T as a FULLY_CONNECTED on E itself, the constant the
        # embedding GATHER reads, so the file holds the table once. The norm's
        # scale joins the per-row factor: a constant MUL right before the
        # matmul would be folded into a scaled copy of E (stored twice again).
        norm = model.norm
        scale = tf.cast(tf.convert_to_tensor(norm.scale), tf.float32)
        h = rms_norm(tf.cast(x, tf.float32), scale, norm.epsilon, scale_with_rms=True)
        h = tf.cast(h, norm.compute_dtype)
        embeddings = tf.cast(tf.convert_to_tensor(model.tok_embeddings.embeddings), h.dtype)
        return tf.cast(tf.matmul(h, embeddings, transpose_b=True), tf.float32)

    def row_decode(length: int):
        """`decode` over the first `length` cache slots, returning only the new rows."""
        specs = [
            tf.TensorSpec([1, length, *cache_spec[2:]], tf.float32, name=n)
            for pair in names
            for n in pair
        ]

        @tf.function(
            input_signature=[tf.TensorSpec([1, 1], tf.int32, name="tokens"), pos_spec, *specs],
            autograph=False,
        )
        def decode_rows(tokens, input_pos, *flat):
            x, caches = run_blocks(tokens, input_pos[0], unflatten(flat))
            begin, size = [0, input_pos[0], 0, 0], [1, 1, *cache_spec[2:]]
            rows = {}
            for (k_name, v_name), (k, v) in zip(names, caches, strict=True):
                rows[k_name.replace("cache", "row")] = tf.cast(tf.slice(k, begin, size), tf.float32)
                rows[v_name.replace("cache", "row")] = tf.cast(tf.slice(v, begin, size), tf.float32)
            return {"logits": head(x[:, -1]), **rows}

        return decode_rows

    token_spec = tf.TensorSpec([1, prefill_len], tf.int32, name="tokens")
    pos_spec = tf.TensorSpec([1], tf.int32, name="input_pos")

    @tf.function(input_signature=[token_spec, pos_spec, *cache_specs], autograph=False)
    def prefill(tokens, input_pos, *flat):
        _, caches = run_blocks(tokens, input_pos[0], unflatten(flat))
        return flatten(caches)

    @tf.function(
        input_signature=[tf.TensorSpec([1, 1], tf.int32, name="tokens"), pos_spec, *cache_specs],
        autograph=False,
    )
    def decode(tokens, input_pos, *flat):
        x, caches = run_blocks(tokens, input_pos[0], unflatten(flat))
        return {"logits": head(x[:, -1]), **flatten(caches)}

    functions = {"prefill": prefill, "decode": decode}
    for length in decode_lengths(cfg.max_seq_len):
        functions[f"decode_{length}"] = row_decode(length)
    return functions
