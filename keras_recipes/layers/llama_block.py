"""One LLaMA transformer block: pre-norm attention and pre-norm SwiGLU."""

import keras

from keras_recipes.layers.causal_self_attention import CausalSelfAttention
from keras_recipes.layers.rms_norm import RMSNorm
from keras_recipes.layers.swiglu import SwiGLU


@keras.saving.register_keras_serializable(package="keras_recipes")
class LlamaBlock(keras.layers.Layer):
    """A LLaMA decoder block.

        h = x + attention(attention_norm(x))
        out = h + feed_forward(ffn_norm(h))

    Normalizing the input of each sub-layer rather than its output
    (pre-norm, as in GPT-2/3) keeps the residual path an identity, which is
    what lets deep stacks train without warm-up tricks. LLaMA uses RMSNorm
    for both norms, `CausalSelfAttention` with RoPE, and a `SwiGLU`
    feed-forward ([Touvron et al. 2023](https://arxiv.org/abs/2302.13971)).
    Sub-layer names follow Meta's code: `attention_norm`, `attention`,
    `ffn_norm`, `feed_forward`.

    Args:
        n_heads: int, query heads.
        n_kv_heads: int or None (= `n_heads`), key/value heads.
        hidden_dim: int or None, SwiGLU width (None: LLaMA's rule).
        multiple_of: int, default 256, rounding for the SwiGLU width rule.
        ffn_dim_multiplier: float or None, for the SwiGLU width rule.
        norm_eps: float, default `1e-5`, RMSNorm epsilon.
        rope_theta: float, default `10000.0`.
        rope_convention: str, `"interleaved"` (default) or `"rotate_half"`.
        rope_scaling: dict or None, Llama 3.1 RoPE scaling.
        dropout: float, default 0: on attention weights and both residual
            branches (training only).
        kernel_initializer: initializer of the seven projections, default
            `RandomNormal(stddev=0.02)`; checkpoint loaders pass `"zeros"`
            to skip random draws they would overwrite.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor `(batch, seq_len, dim)`.
        padding_mask: optional `(batch, key_len)`, see `CausalSelfAttention`.
        key_cache, value_cache: optional KV cache of this block.
        start_index: int or scalar tensor, position of `inputs[:, 0]`.
        training: bool.
        cache_update: optional cache-write function, see `CausalSelfAttention`.

    Returns:
        `(batch, seq_len, dim)`, or `(outputs, key_cache, value_cache)`
        when caches are given.

    Examples:

    >>> import numpy as np
    >>> block = LlamaBlock(n_heads=4, n_kv_heads=2, hidden_dim=128)
    >>> tuple(block(np.random.rand(2, 7, 64).astype("float32")).shape)
    (2, 7, 64)
    """

    def __init__(
        self,
        n_heads: int,
        n_kv_heads: int | None = None,
        hidden_dim: int | None = None,
        multiple_of: int = 256,
        ffn_dim_multiplier: float | None = None,
        norm_eps: float = 1e-5,
        rope_theta: float = 10000.0,
        rope_convention: str = "interleaved",
        rope_scaling: dict | None = None,
        dropout: float = 0.0,
        kernel_initializer="default",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_heads, self.n_kv_heads = n_heads, n_kv_heads
        self.hidden_dim, self.multiple_of = hidden_dim, multiple_of
        self.ffn_dim_multiplier, self.norm_eps = ffn_dim_multiplier, norm_eps
        self.rope_theta, self.rope_convention = rope_theta, rope_convention
        self.rope_scaling, self.dropout = rope_scaling, dropout
        self.kernel_initializer = kernel_initializer
        policy = self.dtype_policy
        self.attention_norm = RMSNorm(norm_eps, dtype=policy, name="attention_norm")
        self.attention = CausalSelfAttention(
            n_heads,
            n_kv_heads,
            rope_theta=rope_theta,
            rope_convention=rope_convention,
            rope_scaling=rope_scaling,
            dropout=dropout,
            kernel_initializer=kernel_initializer,
            dtype=policy,
            name="attention",
        )
        self.ffn_norm = RMSNorm(norm_eps, dtype=policy, name="ffn_norm")
        self.feed_forward = SwiGLU(
            hidden_dim,
            multiple_of,
            ffn_dim_multiplier,
            dropout,
            kernel_initializer=kernel_initializer,
            dtype=policy,
            name="feed_forward",
        )
        self.residual_dropout = keras.layers.Dropout(dropout, dtype=policy)

    def build(self, input_shape):
        for layer in (self.attention_norm, self.attention, self.ffn_norm, self.feed_forward):
            layer.build(input_shape)

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
        attended = self.attention(
            self.attention_norm(inputs),
            padding_mask=padding_mask,
            key_cache=key_cache,
            value_cache=value_cache,
            start_index=start_index,
            training=training,
            cache_update=cache_update,
        )
        if key_cache is not None:
            attended, key_cache, value_cache = attended
        h = inputs + self.residual_dropout(attended, training=training)
        out = h + self.feed_forward(self.ffn_norm(h), training=training)
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
                "hidden_dim": self.hidden_dim,
                "multiple_of": self.multiple_of,
                "ffn_dim_multiplier": self.ffn_dim_multiplier,
                "norm_eps": self.norm_eps,
                "rope_theta": self.rope_theta,
                "rope_convention": self.rope_convention,
                "rope_scaling": self.rope_scaling,
                "dropout": self.dropout,
                "kernel_initializer": self.kernel_initializer
                if isinstance(self.kernel_initializer, str)
                else keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
