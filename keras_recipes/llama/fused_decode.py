"""LLaMA's fused decode step: one token through the model in few plain TensorFlow ops.

The fast path the SavedModel's in-graph loop (`keras_recipes.causal_lm.graph_generate`)
takes for a float32 LLaMA, offered through the protocol hook
`LlamaModel.fused_decode_step`. Its RMSNorm, RoPE tables and cache write are
`keras_recipes.llama.graph_ops`'s, the ones `QuantizedLlama` also uses.
"""

from __future__ import annotations

import math

import tensorflow as tf

from keras_recipes.layers.causal_self_attention import MASK_VALUE
from keras_recipes.llama.graph_ops import (
    attend_one,
    rms_norm,
    rope_tables,
    rotate,
    update_cache_slice,
)


def fusable(model) -> bool:
    """Whether `FusedDecodeStep` can run `model`: float32 weights and math."""
    return model.compute_dtype == "float32" and all(w.dtype == "float32" for w in model.weights)


class FusedDecodeStep:
    """One decode step of a float32 `LlamaModel` in few, plain TensorFlow ops.

    TensorFlow's graph executor (TF Serving without XLA) pays a fixed cost
    per op, and at batch 1 a step of a small LLaMA is mostly small ops, so
    this step runs the model's math in as few of them as it can, on weights
    laid out once per request: the q, k, v projections as one matmul and
    w1, w3 as another (concatenated kernels); RoPE on queries and keys
    together as `x * cos + swap(x) * sin`, the signs in the `sin` table,
    the tables built for every position up front and the queries' 1/sqrt(hd)
    folded into them; the padding mask an additive bias built once per
    request; attention as products and sums over the slots written so far
    of the model's caches, transposed once per request to time-major
    `(S, B, kv_heads, head_dim)` (`loop_caches`: the slots are then a view)
    and each written in place by one strided-slice update. Greedy decoding
    returns `model.generate`'s tokens
    (tests/test_llama_graph.py checks the logits against `call_with_cache`).
    """

    def __init__(self, model, output_kernel, key_mask):
        cfg = model.config
        self.n_heads, self.n_kv, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.embeddings = tf.convert_to_tensor(model.tok_embeddings.embeddings)
        self.layers = []
        for block in model.blocks:
            attention, ffn = block.attention, block.feed_forward
            self.layers.append(
                (
                    _norm_weights(block.attention_norm),
                    tf.concat([attention.wq.kernel, attention.wk.kernel, attention.wv.kernel], 1),
                    tf.convert_to_tensor(attention.wo.kernel),
                    _norm_weights(block.ffn_norm),
                    tf.concat([ffn.w1.kernel, ffn.w3.kernel], 1),
                    tf.convert_to_tensor(ffn.w2.kernel),
                )
            )
        self.norm = _norm_weights(model.norm)
        self.output_kernel = output_kernel
        scale = [1.0 / math.sqrt(self.head_dim)] * self.n_heads + [1.0] * self.n_kv
        self.row_scale = tf.constant(scale)[:, None]
        rotary = model.blocks[0].attention.rotary
        self.rotate_half = rotary.convention == "rotate_half"
        self.cos, self.sin = rope_tables(
            cfg.head_dim, cfg.max_seq_len, rotary.rope_theta, rotary.scaling, rotary.convention
        )
        # 0 where a key may be attended, MASK_VALUE on left padding (exp() gives 0),
        # time-major like the caches: (S, B, 1, 1).
        self.padding_bias = tf.transpose(tf.where(key_mask, 0.0, MASK_VALUE))[:, :, None, None]

    batch_axis = 1  # of the caches the loop carries (time-major)

    @staticmethod
    def loop_caches(caches):
        """The model's `(B, S, kv, hd)` caches as this step reads them, `(S, B, kv, hd)`.

        Attention reads the first `position + 1` slots; slicing the leading
        axis of a tensor is a view in TensorFlow, slicing the second a copy.
        """
        return [tuple(tf.transpose(c, [1, 0, 2, 3]) for c in pair) for pair in caches]

    def __call__(self, current, caches, position):
        q_width, kv_width = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        x = tf.gather(self.embeddings, current[:, 0])  # (B, dim)
        # (heads + kv_heads, hd) each: the query rows also scale by 1/sqrt(hd).
        cos, sin = self.cos[position] * self.row_scale, self.sin[position] * self.row_scale
        # Attention reads the slots written so far (0 .. position), not the
        # whole context: without XLA a step's shapes may grow (at 1,024 slots,
        # reading every slot cost a 110M-parameter step half its time).
        visible = position + 1
        bias = self.padding_bias[:visible]
        begin = tf.stack([position, 0, 0, 0])
        end = begin + 1
        new_caches = []
        for (attention_norm, wqkv, wo, ffn_norm, w13, w2), (keys, values) in zip(
            self.layers, caches, strict=True
        ):
            qkv = tf.matmul(rms_norm(x, *attention_norm), wqkv)
            qk, v = tf.split(qkv, [q_width + kv_width, kv_width], axis=1)
            qk = tf.reshape(qk, [-1, self.n_heads + self.n_kv, self.head_dim])
            qk = rotate(qk, cos, sin, self.head_dim, self.rotate_half)  # q also / sqrt(hd)
            q, k = tf.split(qk, [self.n_heads, self.n_kv], axis=1)
            keys = update_cache_slice(keys, k[None], begin, end, axis=0)
            values = update_cache_slice(
                values, tf.reshape(v, [1, -1, self.n_kv, self.head_dim]), begin, end, axis=0
            )
            new_caches.append((keys, values))
            attended = self.attend(q, keys[:visible], values[:visible], bias)
            x = x + tf.matmul(attended, wo)
            gate, up = tf.split(tf.matmul(rms_norm(x, *ffn_norm), w13), 2, axis=1)
            x = x + tf.matmul(gate / (1.0 + tf.exp(-gate)) * up, w2)
        logits = tf.matmul(rms_norm(x, *self.norm), self.output_kernel)
        return logits, new_caches

    def attend(self, q, keys, values, bias):
        """Queries `(B, heads, hd)` over time-major `(S, B, kv, hd)` caches -> `(B, heads * hd)`."""
        q = tf.reshape(q, [1, -1, self.n_kv, self.n_heads // self.n_kv, self.head_dim])
        attended = attend_one(q, keys, values, bias, seq_axis=0)
        return tf.reshape(attended, [-1, self.n_heads * self.head_dim])


def _norm_weights(norm):
    return tf.convert_to_tensor(norm.scale), norm.epsilon
