"""Gemma 2: the configuration, one block, and the whole forward pass.

Read top to bottom: `GemmaConfig` (the hyper-parameters, validated; the
published shapes are in `presets.py`), `GemmaBlock` (pre- and post-norms
around attention and a GeGLU feed-forward) and `GemmaModel` (scaled
embeddings -> n_layers x `GemmaBlock`, local and global in turn -> RMSNorm
-> tied output projection -> soft-capped logits). The layers come from
`keras_recipes.layers`. Paper:
[Gemma 2](https://arxiv.org/abs/2408.00118).

What sets Gemma 2 apart from LLaMA, each a line below:

- embeddings are multiplied by `sqrt(dim)` (in the compute dtype) and the
  output matrix is the embedding table;
- `head_dim` is its own hyper-parameter, and scores are divided by
  `sqrt(query_pre_attn_scalar)`;
- RMSNorm scales by `1 + w`, and normalizes the output of attention and of
  the feed-forward as well as their inputs;
- attention scores and final logits are soft-capped, `cap * tanh(x / cap)`;
- even-numbered layers attend over a sliding window, odd ones globally.
"""

from __future__ import annotations

import dataclasses
import math

import keras
from keras import ops

from keras_recipes.causal_lm import CausalLM
from keras_recipes.gemma.presets import PRESETS
from keras_recipes.layers import CausalSelfAttention, GeGLU, RMSNorm


@dataclasses.dataclass(frozen=True)
class GemmaConfig:
    """Hyper-parameters of a Gemma 2 model (defaults: gemma2-2b).

    Args:
        vocab_size: int, number of token ids.
        dim: int, model width (Hugging Face's `hidden_size`).
        n_layers: int, number of `GemmaBlock`s.
        n_heads: int, query heads.
        n_kv_heads: int or None (= `n_heads`); must divide `n_heads`.
        head_dim: int, even: the size of one head, not tied to
            `dim / n_heads`.
        hidden_dim: int, GeGLU width (`intermediate_size`).
        max_seq_len: int, context length (KV cache size).
        rope_theta: float, RoPE base.
        norm_eps: float, RMSNorm epsilon.
        query_pre_attn_scalar: float or None (= `head_dim`): scores are
            divided by its square root.
        attn_logit_softcap: float or None: attention scores become
            `cap * tanh(score / cap)`; None turns capping off.
        final_logit_softcap: float or None, the same for the output logits.
        sliding_window: int or None: layers 0, 2, 4, ... attend only to the
            `sliding_window` most recent positions; None makes every layer
            global.
        dropout: float in [0, 1), training-time dropout.

    Examples:

    >>> GemmaConfig.preset("gemma2-2b").num_parameters()  # as published: 2.61B
    2614341888
    >>> GemmaConfig.preset("tiny").sliding_layers()
    (0,)
    """

    vocab_size: int = 256000
    dim: int = 2304
    n_layers: int = 26
    n_heads: int = 8
    n_kv_heads: int | None = 4
    head_dim: int = 256
    hidden_dim: int = 9216
    max_seq_len: int = 8192
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    query_pre_attn_scalar: float | None = 256
    attn_logit_softcap: float | None = 50.0
    final_logit_softcap: float | None = 30.0
    sliding_window: int | None = 4096
    dropout: float = 0.0

    def __post_init__(self):
        sizes = ("vocab_size", "dim", "n_layers", "n_heads", "head_dim", "hidden_dim")
        for name in sizes + ("max_seq_len",):
            _require(getattr(self, name), name, "a positive int", _is_positive_int)
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        _require(self.n_kv_heads, "n_kv_heads", "a positive int", _is_positive_int)
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"GemmaConfig: n_heads ({self.n_heads}) must be divisible by "
                f"n_kv_heads ({self.n_kv_heads})."
            )
        if self.head_dim % 2:
            raise ValueError(
                f"GemmaConfig: head_dim ({self.head_dim}) must be even (RoPE rotates "
                "feature pairs)."
            )
        _require(self.rope_theta, "rope_theta", "a number > 0", lambda v: v > 0)
        _require(self.norm_eps, "norm_eps", "a number > 0", lambda v: v > 0)
        _require(self.dropout, "dropout", "in [0, 1)", lambda v: 0 <= v < 1)
        for name in ("query_pre_attn_scalar", "attn_logit_softcap", "final_logit_softcap"):
            if getattr(self, name) is not None:
                _require(getattr(self, name), name, "a number > 0 or None", lambda v: v > 0)
        if self.sliding_window is not None:
            _require(
                self.sliding_window, "sliding_window", "a positive int or None", _is_positive_int
            )

    def sliding_layers(self) -> tuple[int, ...]:
        """The layers that attend over the sliding window (Gemma 2: 0, 2, 4, ...)."""
        if self.sliding_window is None:
            return ()
        return tuple(range(0, self.n_layers, 2))

    def num_parameters(self) -> int:
        """Exact count of trainable parameters, without building the model."""
        q_dim, kv_dim = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        attention = 2 * self.dim * q_dim + 2 * self.dim * kv_dim  # wq, wo, wk, wv
        block = attention + 3 * self.dim * self.hidden_dim + 4 * self.dim  # + GeGLU, 4 norms
        return self.vocab_size * self.dim + self.n_layers * block + self.dim

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config: dict) -> GemmaConfig:
        unknown = set(config) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"GemmaConfig: unknown fields {sorted(unknown)}.")
        return cls(**config)

    def replace(self, **changes) -> GemmaConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @staticmethod
    def presets() -> list[str]:
        """Names accepted by `GemmaConfig.preset`."""
        return list(PRESETS)

    @classmethod
    def preset(cls, name: str, **overrides) -> GemmaConfig:
        """The config of a published model (`presets.py`), optionally with fields changed."""
        if name not in PRESETS:
            raise ValueError(
                f"GemmaConfig: unknown preset {name!r}; choose one of {list(PRESETS)}."
            )
        return cls(**{**PRESETS[name], **overrides})


def _is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _require(value, field, rule, check):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not check(value):
        raise ValueError(f"GemmaConfig: {field} must be {rule}, got {value!r}.")


def soft_cap(x, cap: float | None):
    """`cap * tanh(x / cap)`: `x` squashed smoothly into `(-cap, cap)`; `x` itself if no cap."""
    if cap is None:
        return x
    return ops.tanh(x / cap) * cap


@keras.saving.register_keras_serializable(package="keras_recipes")
class GemmaBlock(keras.layers.Layer):
    """A Gemma 2 decoder block: sandwich norms around attention and GeGLU.

        h = x + post_attention_norm(attention(attention_norm(x)))
        out = h + post_ffn_norm(feed_forward(ffn_norm(h)))

    Every norm is an `RMSNorm` scaling by `1 + w`. The attention is
    `CausalSelfAttention` with Gemma's head size, query scale, score
    soft-capping and (in local layers) a sliding window.

    Args:
        config: `GemmaConfig` or its `to_dict()`.
        sliding: bool, whether this block attends over the sliding window.
        kernel_initializer: initializer of the seven projections, default
            `RandomNormal(stddev=0.02)`; loaders pass `"zeros"`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments: as `LlamaBlock`'s (`inputs`, `padding_mask`,
    `key_cache`, `value_cache`, `start_index`, `training`, `cache_update`).

    Returns:
        `(batch, seq_len, dim)`, or `(outputs, key_cache, value_cache)` when
        caches are given.
    """

    def __init__(self, config, sliding: bool = False, kernel_initializer="default", **kwargs):
        super().__init__(**kwargs)
        cfg = config if isinstance(config, GemmaConfig) else GemmaConfig.from_dict(config)
        self.config, self.sliding = cfg, bool(sliding)
        self.kernel_initializer = kernel_initializer
        policy = self.dtype_policy

        def norm(name):
            return RMSNorm(cfg.norm_eps, unit_offset=True, dtype=policy, name=name)

        self.attention_norm = norm("attention_norm")
        self.attention = CausalSelfAttention(
            cfg.n_heads,
            cfg.n_kv_heads,
            rope_theta=cfg.rope_theta,
            rope_convention="rotate_half",
            dropout=cfg.dropout,
            kernel_initializer=kernel_initializer,
            head_dim=cfg.head_dim,
            query_pre_attn_scalar=cfg.query_pre_attn_scalar,
            logit_soft_cap=cfg.attn_logit_softcap,
            sliding_window=cfg.sliding_window if sliding else None,
            dtype=policy,
            name="attention",
        )
        self.post_attention_norm = norm("post_attention_norm")
        self.ffn_norm = norm("ffn_norm")
        self.feed_forward = GeGLU(
            cfg.hidden_dim,
            cfg.dropout,
            kernel_initializer=kernel_initializer,
            dtype=policy,
            name="feed_forward",
        )
        self.post_ffn_norm = norm("post_ffn_norm")
        self.residual_dropout = keras.layers.Dropout(cfg.dropout, dtype=policy)

    def build(self, input_shape):
        for layer in (
            self.attention_norm,
            self.attention,
            self.post_attention_norm,
            self.ffn_norm,
            self.feed_forward,
            self.post_ffn_norm,
        ):
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
        attended = self.residual_dropout(self.post_attention_norm(attended), training=training)
        h = inputs + attended
        out = h + self.post_ffn_norm(self.feed_forward(self.ffn_norm(h), training=training))
        if key_cache is not None:
            return out, key_cache, value_cache
        return out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        initializer = self.kernel_initializer
        if not isinstance(initializer, str):
            initializer = keras.initializers.serialize(initializer)
        config.update(
            {
                "config": self.config.to_dict(),
                "sliding": self.sliding,
                "kernel_initializer": initializer,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_recipes")
class GemmaModel(CausalLM, keras.Model):
    """A Gemma 2 decoder: int32 token ids `(B, T)` -> float32 logits `(B, T, vocab)`.

    Build it with `build_gemma(config)` or load a Hugging Face checkpoint
    with `keras_recipes.gemma.load_hf`. Layer names parallel `LlamaModel`'s:
    `tok_embeddings`, `layers_{i}` (each with `attention_norm`,
    `attention.wq/wk/wv/wo`, `post_attention_norm`, `ffn_norm`,
    `feed_forward.w1/w2/w3`, `post_ffn_norm`), `norm`. The output matrix is
    the embedding table (tied, as in every published Gemma 2).

    Args:
        config: `GemmaConfig` or its `to_dict()`.
        initializer: initializer of every matrix, default
            `RandomNormal(stddev=0.02)`; not saved in the config.

    Call arguments:
        token_ids: int tensor `(batch, seq_len)`.
        padding_mask: optional `(batch, seq_len)`, 1 for real tokens.
        training: bool, whether dropout is active.

    It is a causal LM in the sense of `keras_recipes.causal_lm`
    (`call_with_cache`, `init_caches`, `output_kernel`, `config`), so it
    gets `generate`, the SavedModel and TFLite exports, and the fused
    training loss (`hidden_states`, `output_weights`, `logit_soft_cap`). The
    forward pass is `call` below; `call_with_cache` restates it for cached
    decoding, held equal to it by
    `tests/test_gemma.py::test_cached_steps_equal_the_full_forward_pass`, and
    `call` equals keras-hub's `GemmaBackbone` by
    `tests/test_gemma.py::test_logits_equal_keras_hub_gemma2_on_the_same_weights`.

    Examples:

    >>> import numpy as np
    >>> model = build_gemma("tiny")
    >>> tuple(model(np.zeros((2, 20), "int32")).shape)
    (2, 20, 512)
    """

    def __init__(self, config: GemmaConfig | dict, initializer=None, **kwargs):
        super().__init__(**kwargs)
        cfg = config if isinstance(config, GemmaConfig) else GemmaConfig.from_dict(config)
        self.config = cfg
        init = initializer or keras.initializers.RandomNormal(stddev=0.02)
        policy = self.dtype_policy  # e.g. dtype="mixed_bfloat16" reaches every layer
        self.tok_embeddings = keras.layers.Embedding(
            cfg.vocab_size,
            cfg.dim,
            embeddings_initializer=init,
            dtype=policy,
            name="tok_embeddings",
        )
        sliding = set(cfg.sliding_layers())
        self.blocks = [
            GemmaBlock(
                cfg,
                sliding=i in sliding,
                kernel_initializer=initializer or "default",
                dtype=policy,
                name=f"layers_{i}",
            )
            for i in range(cfg.n_layers)
        ]
        self.norm = RMSNorm(cfg.norm_eps, unit_offset=True, dtype=policy, name="norm")
        self.build((None, None))

    def build(self, input_shape):
        hidden_shape = (None, None, self.config.dim)
        self.tok_embeddings.build(input_shape)
        for block in self.blocks:
            block.build(hidden_shape)
        self.norm.build(hidden_shape)
        self.built = True

    def embed(self, token_ids):
        """Token embeddings times `sqrt(dim)`, the factor rounded to the compute dtype."""
        x = self.tok_embeddings(token_ids)
        return x * ops.cast(math.sqrt(self.config.dim), x.dtype)

    def call(self, token_ids, padding_mask=None, training=None):
        return self.logits(self.hidden_states(token_ids, padding_mask, training))

    def hidden_states(self, token_ids, padding_mask=None, training=None):
        """The final hidden states `(B, T, dim)`, after the last norm (what `logits` maps)."""
        x = self.embed(token_ids)
        for block in self.blocks:
            x = block(x, padding_mask=padding_mask, training=training)
        return self.norm(x)

    def logits(self, x, output_kernel=None):
        """float32 soft-capped logits of hidden states `x` `(..., dim)`."""
        if output_kernel is None:
            embeddings = ops.cast(self.tok_embeddings.embeddings, x.dtype)
            logits = ops.matmul(x, ops.transpose(embeddings))
        else:
            logits = ops.matmul(x, ops.cast(output_kernel, x.dtype))
        return soft_cap(ops.cast(logits, "float32"), self.config.final_logit_softcap)

    def call_with_cache(
        self,
        token_ids,
        caches,
        start_index,
        padding_mask=None,
        output_kernel=None,
        cache_update=None,
    ):
        """One cached step: writes `token_ids`' keys/values at `start_index`.

        `caches` is a list of `(key_cache, value_cache)` per block. Returns
        the float32 logits of the last position `(B, vocab)` and the new
        caches; see `keras_recipes.causal_lm` for the arguments.
        """
        x = self.embed(token_ids)
        new_caches = []
        for block, (key_cache, value_cache) in zip(self.blocks, caches, strict=True):
            x, key_cache, value_cache = block(
                x,
                padding_mask,
                key_cache,
                value_cache,
                start_index=start_index,
                cache_update=cache_update,
            )
            new_caches.append((key_cache, value_cache))
        return self.logits(self.norm(x[:, -1]), output_kernel), new_caches

    def init_caches(self, batch, length: int):
        """Zero key/value caches, one `(key, value)` pair per block, each
        `(batch, length, n_kv_heads, head_dim)` in the compute dtype."""
        shape = (batch, length, self.config.n_kv_heads, self.config.head_dim)
        return [
            (ops.zeros(shape, self.compute_dtype), ops.zeros(shape, self.compute_dtype))
            for _ in self.blocks
        ]

    def output_kernel(self):
        """The `(dim, vocab)` output matrix: the transposed embedding table."""
        return ops.transpose(self.tok_embeddings.embeddings)

    def output_weights(self):
        """The output matrix's variable and that it is the embedding table (always tied)."""
        return self.tok_embeddings.embeddings, True

    def logit_soft_cap(self) -> float | None:
        """The final soft-cap `logits` applies (for the fused training loss)."""
        return self.config.final_logit_softcap

    def get_config(self):
        return {
            "config": self.config.to_dict(),
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def build_gemma(config: GemmaConfig | str) -> GemmaModel:
    """Build a randomly initialized Gemma 2 from a config or a preset name.

    Examples:

    >>> model = build_gemma("tiny")
    >>> model.count_params() == GemmaConfig.preset("tiny").num_parameters()
    True
    """
    if isinstance(config, str):
        config = GemmaConfig.preset(config)
    if not isinstance(config, GemmaConfig):
        raise ValueError(f"build_gemma: expected a GemmaConfig or preset name, got {type(config)}.")
    return GemmaModel(config)
