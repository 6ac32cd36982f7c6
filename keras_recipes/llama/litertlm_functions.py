"""LLaMA's `prefill` / `decode` functions in the form LiteRT-LM's CPU engine calls.

`LlamaModel.litertlm_functions(prefill_len)` returns them and
`keras_recipes.export.export_litertlm` converts them; the module docstring
there lists what the engine asks of the signatures. The forward pass is
`LlamaModel`'s, restated in TensorFlow ops on the model's own weights
(`graph_ops` for RMSNorm and the RoPE tables, either convention), batch 1:

- caches `[1, kv_heads, ctx, head_dim]`; `decode` writes its one row in
  place, `prefill` through a one-hot product, only for the rows whose
  position follows the chunk's first one (the engine pads a chunk with
  token 0 at position 0);
- every row attends to the slots at or before its position, the mask built
  from `input_pos` inside the model.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_recipes.llama.graph_ops import rms_norm, rope_tables

_NEG = -1e9  # additive mask value: exp() underflows to exactly 0


def litertlm_functions(model, prefill_len: int) -> dict:
    """`prefill` and `decode` `tf.function`s of a `LlamaModel`, as LiteRT-LM calls them."""
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

    def write(cache, rows, one_hot, written, position):
        """`cache[0, :, s] = rows[t]` for each row t that `one_hot[t, s]` marks.

        One row (`decode`) is written in place at `position` (a
        DYNAMIC_UPDATE_SLICE); a chunk goes through the one-hot product,
        which reads and rewrites the whole cache but skips padding rows.
        """
        t = rows.shape[0]
        if t == 1:
            update = tf.reshape(rows, [1, n_kv, 1, hd])
            return keras.ops.slice_update(cache, [0, 0, position, 0], update)
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
            keys = write(flat[2 * i], k, one_hot, written, positions[0])
            values = write(flat[2 * i + 1], v, one_hot, written, positions[0])
            new_caches[names[i][0]], new_caches[names[i][1]] = keys, values
            # Query heads in groups sharing a key/value head: (kv, groups * t, hd).
            q = tf.reshape(
                tf.transpose(tf.reshape(q, [t, n_kv, groups, hd]), [1, 2, 0, 3]),
                [n_kv, groups * t, hd],
            )
            # The caches without their batch axis: a reshape, where `keys[0]` is a
            # STRIDED_SLICE copying the whole cache on every call.
            cached_k, cached_v = (tf.reshape(c, [n_kv, ctx, hd]) for c in (keys, values))
            scores = tf.reshape(tf.matmul(q, cached_k, transpose_b=True), [n_kv, groups, t, ctx])
            probs = tf.nn.softmax(scores + bias, axis=-1)
            out = tf.matmul(tf.reshape(probs, [n_kv, groups * t, ctx]), cached_v)
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
