"""LLaMA's TFLite functions: `prefill` and `decode` with the KV caches as tensors.

The fast path `export_tflite` converts for a `LlamaModel`, offered through
the protocol hook `LlamaModel.tflite_functions`: like the generic functions
on `call_with_cache`, but with a head that multiplies by the tied embedding
table itself, so the file stores the table once.
"""

from __future__ import annotations

import tensorflow as tf

from keras_recipes.llama.graph_ops import rms_norm


def llama_functions(model, prefill_len: int) -> dict:
    """`prefill` (`prefill_len` tokens) and `decode` (one token) of a `LlamaModel`, batch 1.

    The caches travel as float32 tensors `k_cache_<i>` / `v_cache_<i>`
    `(1, max_seq_len, kv_heads, head_dim)`; `decode` also returns `logits`
    `(1, vocab)`. The blocks run through the model's own layers.
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

    return {"prefill": prefill, "decode": decode}
