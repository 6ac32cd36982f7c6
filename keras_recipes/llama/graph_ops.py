"""The layers' arithmetic as plain TensorFlow ops, for the fused decoding steps.

`llama.fused_decode.FusedDecodeStep` (the float32 SavedModel's decode step)
and `llama.quantize.QuantizedLlama` (1- and 2-byte weights) restate
`LlamaModel`'s forward pass outside Keras; the pieces they share live here,
each equal to the layer it names (the tests of both hold them to `call`).
"""

from __future__ import annotations

import tensorflow as tf

from keras_recipes.layers.rotary_embedding import rope_inverse_frequencies


def rms_norm(x, scale, epsilon, scale_with_rms: bool = False):
    """`RMSNorm`'s arithmetic, op for op.

    `scale_with_rms=True` multiplies `x` once by `rms * scale` instead: the
    TFLite converter folds a constant MUL right before a matmul into a scaled
    copy of that matmul's weights, which for a tied head would store the
    embedding table twice.
    """
    rms = tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + epsilon)
    return x * (rms * scale) if scale_with_rms else x * rms * scale


def update_cache_slice(cache, value, begin, end, axis=1):
    """`cache[:, begin[1] : end[1]] = value` (`(B, S, heads, hd)` caches; `axis=0`:
    `cache[begin[0] : end[0]]`, time-major `(S, B, heads, hd)`), in place when
    TensorFlow can forward the buffer."""
    others = 0b1111 & ~(1 << axis)  # every axis but `axis` taken whole
    return tf.raw_ops.TensorStridedSliceUpdate(
        input=cache,
        begin=begin,
        end=end,
        strides=[1, 1, 1, 1],
        value=value,
        begin_mask=others,
        end_mask=others,
    )


def rotate(x, cos, sin, head_dim: int, rotate_half: bool):
    """RoPE on `(..., heads, head_dim)` as `x * cos + partner(x) * sin` (signs in `sin`).

    The partner of each feature is the other of its pair `(0, 1), (2, 3), ...`
    (`interleaved`) or of its half (`rotate_half`); `cos` / `sin` come from
    `rope_tables` and broadcast against `x`.
    """
    half = head_dim // 2
    if rotate_half:
        halves = tf.reshape(x, [-1, 2, half])
        partner = tf.reshape(tf.reverse(halves, [1]), tf.shape(x))
    else:
        pairs = tf.reshape(x, [-1, half, 2])
        partner = tf.reshape(tf.reverse(pairs, [2]), tf.shape(x))
    return x * cos + partner * sin


def attend_one(q, keys, values, bias, seq_axis: int):
    """One query per head over a KV cache, by products and sums, reading the cache in place.

    At one query per head, batched matmuls and `tf.nn.softmax` dispatch to
    oneDNN kernels that cost more than the math (and transpose the cache).

    Args:
        q: the queries grouped by KV head, `(..., kv_heads, groups, head_dim)`,
            with a size-1 axis where the caches have their sequence axis.
        keys, values: the caches' visible slots, `(..., kv_heads, head_dim)`,
            the sequence at `seq_axis` (0: time-major `(S, B, ...)`, 1:
            `(B, S, ...)`).
        bias: added to the scores `(..., kv_heads, groups)`: 0 where a key
            may be attended, `MASK_VALUE` elsewhere.
        seq_axis: the caches' sequence axis.

    Returns:
        `(B, kv_heads, groups, head_dim)`.
    """
    keys, values = tf.expand_dims(keys, -2), tf.expand_dims(values, -2)
    scores = tf.reduce_sum(q * keys, axis=-1) + bias
    scores = tf.exp(scores - tf.reduce_max(scores, axis=seq_axis, keepdims=True))
    weights = scores / tf.reduce_sum(scores, axis=seq_axis, keepdims=True)
    return tf.reduce_sum(tf.expand_dims(weights, -1) * values, axis=seq_axis)


def rope_tables(head_dim, max_seq_len, rope_theta, scaling, convention):
    """`(S, hd)` cos and signed sin of every position, as `RotaryEmbedding` computes them."""
    inv_freq = rope_inverse_frequencies(head_dim, rope_theta, scaling)
    angles = tf.range(max_seq_len, dtype=tf.float32)[:, None] * inv_freq[None, :]
    cos, sin = tf.cos(angles), tf.sin(angles)
    if convention == "rotate_half":
        return tf.concat([cos, cos], 1), tf.concat([-sin, sin], 1)
    pairs = [max_seq_len, head_dim]  # each value twice, side by side
    return tf.reshape(tf.stack([cos, cos], -1), pairs), tf.reshape(tf.stack([-sin, sin], -1), pairs)
