"""Causal multi-head self-attention with grouped-query heads and a KV cache."""

import math

import keras
from keras import ops

from keras_recipes.layers.rotary_embedding import RotaryEmbedding

# Finite, so that a row whose keys are all masked (a left-padding query)
# stays finite instead of turning into NaN; exp() of it is exactly 0.
MASK_VALUE = -1e9


def update_cache(cache, values, start_index):
    """Writes `values` `(B, T, kv, hd)` into `cache` `(B, S, kv, hd)` at slot `start_index`.

    A dynamic-update-slice (`keras.ops.slice_update`): in place under XLA,
    and a TFLite builtin. The default write of `CausalSelfAttention`; a
    caller whose graph runs somewhere that op does not (TensorFlow runs it
    only through XLA) passes its own `cache_update` function instead.
    """
    return ops.slice_update(cache, [0, start_index, 0, 0], ops.cast(values, cache.dtype))


@keras.saving.register_keras_serializable(package="keras_recipes")
class CausalSelfAttention(keras.layers.Layer):
    """Causal self-attention with RoPE, grouped-query heads and a KV cache.

    Each of `n_heads` query heads attends to the tokens at or before its own
    position. Keys and values have only `n_kv_heads` heads, each shared by
    `n_heads // n_kv_heads` query heads: grouped-query attention
    ([Ainslie et al. 2023](https://arxiv.org/abs/2305.13245)), which shrinks
    the KV cache and the memory read per decoded token; `n_kv_heads=1` is
    multi-query attention ([Shazeer 2019](https://arxiv.org/abs/1911.02150)),
    `n_kv_heads=n_heads` plain multi-head attention
    ([Vaswani et al. 2017](https://arxiv.org/abs/1706.03762)). Queries and
    keys are rotated by `RotaryEmbedding` before the dot product. The
    projections are named `wq`, `wk`, `wv`, `wo` as in Meta's code.

    For decoding, pass `key_cache` / `value_cache` of a fixed length `S`:
    the new keys and values are written at `start_index`, the queries attend
    over the whole cache (future slots are hidden by the causal mask), and
    the updated caches are returned.

    Args:
        n_heads: int, number of query heads; must divide the model width.
        n_kv_heads: int or None, default None (= `n_heads`). Number of
            key/value heads; must divide `n_heads`.
        rope_theta: float, default `10000.0`. RoPE base.
        rope_convention: str, `"interleaved"` (Meta, llama2.c; default) or
            `"rotate_half"` (Hugging Face).
        rope_scaling: dict or None. Llama 3.1 frequency scaling, see
            `RotaryEmbedding`.
        dropout: float, default 0. Dropout on the attention weights.
        head_dim: int or None, default None (= model width / `n_heads`).
            Size of one head, set apart from the width as Gemma does.
        query_pre_attn_scalar: float or None, default None (= `head_dim`).
            Scores are `q . k / sqrt(query_pre_attn_scalar)` (Gemma 2 27B
            uses width / `n_heads` with `head_dim` 128).
        logit_soft_cap: float or None, default None. When set, scores are
            squashed to `cap * tanh(scores / cap)` before the mask and
            softmax (Gemma 2's attention soft-capping).
        sliding_window: int or None, default None. When set, a query
            attends only to the `sliding_window` most recent positions,
            itself included (local attention, as in Mistral and Gemma 2).
        kernel_initializer: initializer for the four projections, default
            `RandomNormal(stddev=0.02)`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor `(batch, seq_len, dim)`.
        padding_mask: optional `(batch, key_len)` tensor, 1/True for real
            tokens and 0/False for padding, over the keys: the inputs
            without a cache, the cache slots with one.
        key_cache: optional `(batch, S, n_kv_heads, head_dim)` tensor.
        value_cache: optional tensor shaped like `key_cache`.
        start_index: int or scalar int tensor, default 0. Position of
            `inputs[:, 0]` in the sequence (and the cache slot written).
        training: bool, whether dropout is active.
        cache_update: optional function `(cache, values, start_index) ->
            cache` that writes the new keys (then values) into their cache;
            default `update_cache`, a dynamic-update-slice.

    Returns:
        `(batch, seq_len, dim)`; with caches, the tuple
        `(outputs, key_cache, value_cache)`.

    Examples:

    >>> import numpy as np
    >>> attn = CausalSelfAttention(n_heads=8, n_kv_heads=2)
    >>> x = np.random.rand(1, 5, 64).astype("float32")
    >>> tuple(attn(x).shape)
    (1, 5, 64)
    >>> k = v = np.zeros((1, 16, 2, 8), "float32")  # a cache of 16 slots
    >>> y, k, v = attn(x, key_cache=k, value_cache=v, start_index=0)
    >>> y_next, k, v = attn(x[:, :1], key_cache=k, value_cache=v, start_index=5)
    """

    def __init__(
        self,
        n_heads: int,
        n_kv_heads: int | None = None,
        rope_theta: float = 10000.0,
        rope_convention: str = "interleaved",
        rope_scaling: dict | None = None,
        dropout: float = 0.0,
        kernel_initializer="default",
        head_dim: int | None = None,
        query_pre_attn_scalar: float | None = None,
        logit_soft_cap: float | None = None,
        sliding_window: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        for name, value in (
            ("head_dim", head_dim),
            ("query_pre_attn_scalar", query_pre_attn_scalar),
            ("logit_soft_cap", logit_soft_cap),
            ("sliding_window", sliding_window),
        ):
            if value is not None and not value > 0:
                raise ValueError(f"CausalSelfAttention: {name} must be None or > 0, got {value!r}.")
        self.head_dim = None if head_dim is None else int(head_dim)
        self.query_pre_attn_scalar = (
            None if query_pre_attn_scalar is None else float(query_pre_attn_scalar)
        )
        self.logit_soft_cap = None if logit_soft_cap is None else float(logit_soft_cap)
        self.sliding_window = None if sliding_window is None else int(sliding_window)
        if int(n_heads) <= 0 or int(n_kv_heads) <= 0:
            raise ValueError(
                f"CausalSelfAttention: n_heads and n_kv_heads must be positive, "
                f"got n_heads={n_heads}, n_kv_heads={n_kv_heads}."
            )
        if n_heads % n_kv_heads:
            raise ValueError(
                f"CausalSelfAttention: n_kv_heads ({n_kv_heads}) must divide n_heads ({n_heads})."
            )
        self.n_heads = int(n_heads)
        self.n_kv_heads = int(n_kv_heads)
        self.rope_theta = float(rope_theta)
        self.rope_convention = rope_convention
        self.rope_scaling = dict(rope_scaling) if rope_scaling else None
        self.dropout = float(dropout)
        if kernel_initializer == "default":
            kernel_initializer = keras.initializers.RandomNormal(stddev=0.02)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.rotary = RotaryEmbedding(
            rope_theta, rope_convention, rope_scaling, dtype=self.dtype_policy, name="rotary"
        )

    def build(self, input_shape):
        dim = input_shape[-1]
        if self.head_dim is None:
            if dim % self.n_heads:
                raise ValueError(
                    f"CausalSelfAttention: n_heads ({self.n_heads}) must divide the "
                    f"model width ({dim}), or head_dim must be given."
                )
            self.head_dim = dim // self.n_heads
        if self.head_dim % 2:
            raise ValueError(
                f"CausalSelfAttention: head_dim = {self.head_dim} must be even for RoPE."
            )

        def dense(units, name):
            init = self.kernel_initializer.__class__.from_config(
                self.kernel_initializer.get_config()
            )
            return keras.layers.Dense(
                units, use_bias=False, kernel_initializer=init, dtype=self.dtype_policy, name=name
            )

        self.wq = dense(self.n_heads * self.head_dim, "wq")
        self.wk = dense(self.n_kv_heads * self.head_dim, "wk")
        self.wv = dense(self.n_kv_heads * self.head_dim, "wv")
        self.wo = dense(dim, "wo")
        for layer in (self.wq, self.wk, self.wv):
            layer.build(input_shape)
        self.wo.build(tuple(input_shape[:-1]) + (self.n_heads * self.head_dim,))
        self.attention_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def call(
        self,
        inputs,
        padding_mask=None,
        key_cache=None,
        value_cache=None,
        start_index=0,
        training=None,
        cache_update=None,
    ):
        batch, seq_len = ops.shape(inputs)[0], ops.shape(inputs)[1]
        groups, hd = self.n_heads // self.n_kv_heads, self.head_dim
        q = ops.reshape(self.wq(inputs), (batch, seq_len, self.n_heads, hd))
        k = ops.reshape(self.wk(inputs), (batch, seq_len, self.n_kv_heads, hd))
        v = ops.reshape(self.wv(inputs), (batch, seq_len, self.n_kv_heads, hd))
        q = self.rotary(q, start_index=start_index)
        k = self.rotary(k, start_index=start_index)
        if key_cache is not None:
            write = cache_update or update_cache
            key_cache = write(key_cache, k, start_index)
            value_cache = write(value_cache, v, start_index)
            if isinstance(start_index, int) and start_index == 0 and inputs.shape[1] != 1:
                # A prefill: causality hides every slot past the prompt, so
                # attend over the prompt's own keys, not the whole cache window.
                if padding_mask is not None:
                    padding_mask = padding_mask[:, : inputs.shape[1] or seq_len]
            else:
                k, v = key_cache, value_cache

        # Query heads in groups that share one key/value head: no copies of k, v.
        q = ops.reshape(q, (batch, seq_len, self.n_kv_heads, groups, hd))
        scores = ops.einsum("btkgd,bskd->bkgts", q, ops.cast(k, q.dtype))
        scale = 1.0 / math.sqrt(self.query_pre_attn_scalar or hd)
        scores = ops.cast(scores, "float32") * scale
        if self.logit_soft_cap is not None:
            scores = ops.tanh(scores / self.logit_soft_cap) * self.logit_soft_cap
        query_pos = ops.arange(seq_len) + ops.cast(start_index, "int32")
        key_pos = ops.arange(ops.shape(k)[1])
        allowed = key_pos[None, :] <= query_pos[:, None]  # (t, s)
        if self.sliding_window is not None:
            recent = key_pos[None, :] > query_pos[:, None] - self.sliding_window
            allowed = ops.logical_and(allowed, recent)
        allowed = allowed[None, None, None]
        if padding_mask is not None:
            allowed = ops.logical_and(
                allowed, ops.cast(padding_mask, "bool")[:, None, None, None, :]
            )
        scores = ops.where(allowed, scores, MASK_VALUE)
        weights = ops.cast(ops.softmax(scores, axis=-1), self.compute_dtype)
        weights = self.attention_dropout(weights, training=training)
        out = ops.einsum("bkgts,bskd->btkgd", weights, ops.cast(v, weights.dtype))
        out = self.wo(ops.reshape(out, (batch, seq_len, self.n_heads * hd)))
        if key_cache is not None:
            return out, key_cache, value_cache
        return out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n_heads": self.n_heads,
                "n_kv_heads": self.n_kv_heads,
                "rope_theta": self.rope_theta,
                "rope_convention": self.rope_convention,
                "rope_scaling": self.rope_scaling,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "head_dim": self.head_dim,
                "query_pre_attn_scalar": self.query_pre_attn_scalar,
                "logit_soft_cap": self.logit_soft_cap,
                "sliding_window": self.sliding_window,
            }
        )
        return config
