"""LLaMA: the configuration, the presets, and the whole forward pass.

Read top to bottom: `LlamaConfig` (the hyper-parameters, validated),
`PRESETS` (the real shapes), `LlamaModel` (embedding -> n_layers x
`LlamaBlock` -> RMSNorm -> output projection) and `build_llama`. The layers
live in `keras_recipes.layers`; KV-cached decoding in `generate.py`.
Paper: [LLaMA](https://arxiv.org/abs/2302.13971),
[Llama 2](https://arxiv.org/abs/2307.09288),
[Llama 3](https://arxiv.org/abs/2407.21783).
"""

import dataclasses

import keras
from keras import ops

from keras_recipes.layers import LlamaBlock, RMSNorm, llama_hidden_dim
from keras_recipes.layers.rotary_embedding import CONVENTIONS
from keras_recipes.llama.losses import FusedTrainStep
from keras_recipes.lora import LoRAMixin

_ROPE_SCALING_KEYS = (
    "factor",
    "low_freq_factor",
    "high_freq_factor",
    "original_max_position_embeddings",
)


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    """Hyper-parameters of a LLaMA model (names as in Meta's `ModelArgs`).

    Args:
        vocab_size: int, number of token ids.
        dim: int, model width.
        n_layers: int, number of `LlamaBlock`s.
        n_heads: int, query heads; must divide `dim`, `dim / n_heads` even.
        n_kv_heads: int or None (= `n_heads`); must divide `n_heads`.
        hidden_dim: int or None. SwiGLU width; None applies LLaMA's rule
            (2/3 * 4 * dim, times `ffn_dim_multiplier`, rounded up to
            `multiple_of`).
        max_seq_len: int, context length (KV cache size).
        rope_theta: float, RoPE base (10000; 500000 for Llama 3).
        norm_eps: float, RMSNorm epsilon.
        tie_embeddings: bool, whether the output projection reuses the
            token embedding matrix (llama2.c's stories models, Llama 3.2).
        multiple_of: int, default 256, see `hidden_dim`.
        ffn_dim_multiplier: float or None, see `hidden_dim`.
        rope_scaling: dict or None, Llama 3.1 RoPE scaling (keys `factor`,
            `low_freq_factor`, `high_freq_factor`,
            `original_max_position_embeddings`).
        rope_convention: `"interleaved"` (Meta, llama2.c) or
            `"rotate_half"` (Hugging Face checkpoints).
        dropout: float in [0, 1), training-time dropout.

    Examples:

    >>> cfg = LlamaConfig.preset("llama2-7b")
    >>> cfg.num_parameters()
    6738415616
    >>> LlamaConfig.preset("tiny", vocab_size=1000).vocab_size
    1000
    """

    vocab_size: int = 32000
    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int | None = None
    hidden_dim: int | None = None
    max_seq_len: int = 2048
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    multiple_of: int = 256
    ffn_dim_multiplier: float | None = None
    rope_scaling: dict | None = None
    rope_convention: str = "interleaved"
    dropout: float = 0.0

    def __post_init__(self):
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "max_seq_len", "multiple_of"):
            _require(getattr(self, name), name, "a positive int", lambda v: _is_int(v) and v > 0)
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        _require(self.n_kv_heads, "n_kv_heads", "a positive int", lambda v: _is_int(v) and v > 0)
        if self.hidden_dim is not None:
            _require(
                self.hidden_dim,
                "hidden_dim",
                "a positive int or None",
                lambda v: _is_int(v) and v > 0,
            )
        if self.dim % self.n_heads:
            raise ValueError(
                f"LlamaConfig: dim ({self.dim}) must be divisible by n_heads ({self.n_heads})."
            )
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"LlamaConfig: n_heads ({self.n_heads}) must be divisible by "
                f"n_kv_heads ({self.n_kv_heads})."
            )
        if self.head_dim % 2:
            raise ValueError(
                f"LlamaConfig: head_dim = dim / n_heads = {self.head_dim} must be even "
                "(RoPE rotates feature pairs); change dim or n_heads."
            )
        _require(self.rope_theta, "rope_theta", "a number > 0", lambda v: v > 0)
        _require(self.norm_eps, "norm_eps", "a number > 0", lambda v: v > 0)
        _require(self.dropout, "dropout", "in [0, 1)", lambda v: 0 <= v < 1)
        if self.ffn_dim_multiplier is not None:
            _require(self.ffn_dim_multiplier, "ffn_dim_multiplier", "> 0 or None", lambda v: v > 0)
        if self.rope_convention not in CONVENTIONS:
            raise ValueError(
                f"LlamaConfig: rope_convention must be one of {CONVENTIONS}, "
                f"got {self.rope_convention!r}."
            )
        if self.rope_scaling is not None:
            missing = [k for k in _ROPE_SCALING_KEYS if k not in self.rope_scaling]
            if missing:
                raise ValueError(
                    f"LlamaConfig: rope_scaling is missing {missing}; it needs all of "
                    f"{list(_ROPE_SCALING_KEYS)} (or None for no scaling)."
                )
            object.__setattr__(
                self, "rope_scaling", {k: self.rope_scaling[k] for k in _ROPE_SCALING_KEYS}
            )

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def ffn_hidden_dim(self) -> int:
        """The SwiGLU width actually used (explicit or by LLaMA's rule)."""
        if self.hidden_dim is not None:
            return self.hidden_dim
        return llama_hidden_dim(self.dim, self.multiple_of, self.ffn_dim_multiplier)

    def num_parameters(self) -> int:
        """Exact count of trainable parameters, without building the model."""
        kv_dim = self.n_kv_heads * self.head_dim
        attention = 2 * self.dim * self.dim + 2 * self.dim * kv_dim  # wq, wo, wk, wv
        block = attention + 3 * self.dim * self.ffn_hidden_dim + 2 * self.dim  # + w1-3, 2 norms
        embeddings = self.vocab_size * self.dim * (1 if self.tie_embeddings else 2)
        return embeddings + self.n_layers * block + self.dim  # + final norm

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config: dict) -> "LlamaConfig":
        unknown = set(config) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"LlamaConfig: unknown fields {sorted(unknown)}.")
        return cls(**config)

    def replace(self, **changes) -> "LlamaConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @staticmethod
    def presets() -> list[str]:
        """Names accepted by `LlamaConfig.preset`."""
        return list(PRESETS)

    @classmethod
    def preset(cls, name: str, **overrides) -> "LlamaConfig":
        """The config of a published model, optionally with fields changed."""
        if name not in PRESETS:
            raise ValueError(
                f"LlamaConfig: unknown preset {name!r}; choose one of {list(PRESETS)}."
            )
        return cls(**{**PRESETS[name], **overrides})


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require(value, field, rule, check):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not check(value):
        raise ValueError(f"LlamaConfig: {field} must be {rule}, got {value!r}.")


_LLAMA_7B = dict(vocab_size=32000, dim=4096, n_layers=32, n_heads=32, hidden_dim=11008)
_LLAMA3 = dict(vocab_size=128256, n_kv_heads=8, rope_theta=500000.0, rope_convention="rotate_half")
PRESETS = {
    # LLaMA 1 (Touvron et al. 2023, table 2): 2K context, eps 1e-6.
    "llama-7b": dict(_LLAMA_7B, max_seq_len=2048, norm_eps=1e-6),
    # Llama 2: 4K context.
    "llama2-7b": dict(_LLAMA_7B, max_seq_len=4096),
    "llama2-13b": dict(
        vocab_size=32000, dim=5120, n_layers=40, n_heads=40, hidden_dim=13824, max_seq_len=4096
    ),
    # Llama 3 / 3.2 (as published on the Hugging Face hub, hence rotate_half).
    "llama3-8b": dict(
        _LLAMA3, dim=4096, n_layers=32, n_heads=32, hidden_dim=14336, max_seq_len=8192
    ),
    "llama3.2-1b": dict(
        _LLAMA3,
        dim=2048,
        n_layers=16,
        n_heads=32,
        hidden_dim=8192,
        max_seq_len=131072,
        tie_embeddings=True,
        rope_scaling=dict(
            factor=32.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=8192,
        ),
    ),
    # llama2.c's TinyStories models (Karpathy).
    "stories15M": dict(
        vocab_size=32000,
        dim=288,
        n_layers=6,
        n_heads=6,
        hidden_dim=768,
        max_seq_len=256,
        tie_embeddings=True,
    ),
    "stories260K": dict(
        vocab_size=512,
        dim=64,
        n_layers=5,
        n_heads=8,
        n_kv_heads=4,
        hidden_dim=172,
        max_seq_len=512,
        tie_embeddings=True,
    ),
    # For tests and quick recipes: builds and runs in well under a second.
    "tiny": dict(
        vocab_size=512, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=192, max_seq_len=256
    ),
}


@keras.saving.register_keras_serializable(package="keras_recipes")
class LlamaModel(FusedTrainStep, LoRAMixin, keras.Model):
    """A LLaMA decoder: int32 token ids `(B, T)` -> float32 logits `(B, T, vocab)`.

    Build it with `build_llama(config)`. Layer names are Meta's and
    llama2.c's: `tok_embeddings`, `layers_{i}` (each with `attention.wq/wk/
    wv/wo`, `feed_forward.w1/w2/w3`, `attention_norm`, `ffn_norm`), `norm`,
    `output` (absent when `tie_embeddings`).

    Args:
        config: `LlamaConfig` or its `to_dict()`.
        initializer: initializer of every matrix, default
            `RandomNormal(stddev=0.02)`; not saved in the config (it only
            matters before training or loading).

    Call arguments:
        token_ids: int tensor `(batch, seq_len)`.
        padding_mask: optional `(batch, seq_len)`, 1 for real tokens.
        training: bool, whether dropout is active.

    The forward pass is `call` below. For speed it is restated in a few
    places; each restatement is held equal to `call` by a test:

    - `call_with_cache` (KV-cached steps, `generate`):
      `tests/test_llama_generate.py::test_greedy_equals_uncached_argmax_across_cache_windows`
      and keras-hub's Llama, `tests/test_llama_model.py::test_logits_match_keras_hub_on_the_same_checkpoint`,
      and with the export's scatter cache write (`cache_update=`, the SavedModel
      graph without XLA): `tests/test_llama_graph.py::test_fused_and_layer_by_layer_loops_agree`;
    - `FusedDecodeStep` (`keras_recipes/export/llama_graph.py`, the SavedModel's
      decode step): `tests/test_llama_graph.py::test_fused_step_equals_the_models_cached_call`;
    - TFLite's prefill/decode functions (`keras_recipes/export/tflite`):
      `tests/test_export_tflite.py::test_teacher_forced_float32_logits_match_keras`;
    - the fused head + cross-entropy of training (`keras_recipes/llama/losses.py`):
      `tests/test_llama_losses.py::test_fused_equals_logits_then_cross_entropy`.
    - `QuantizedLlama` (`keras_recipes/llama/quantize.py`, int8 / bfloat16
      weights for decoding): equal to `call` on the weights int8 stands for,
      `tests/test_quantize.py::test_int8_forward_pass_equals_call_on_the_dequantized_weights`,
      and within bfloat16 error, `tests/test_quantize.py::test_bfloat16_logits_within_bfloat16_error`.

    It is a causal LM in the sense of `keras_recipes.causal_lm`
    (`call_with_cache`, `init_caches`, `output_kernel`, `config`).

    `enable_lora(rank, alpha=..., targets=("wq", "wv"))` freezes it and adds
    LoRA adapters to the named projections (`keras_recipes.lora`);
    `merge_lora()` folds them back into the kernels.

    Examples:

    >>> import numpy as np
    >>> model = build_llama(LlamaConfig.preset("tiny"))
    >>> tuple(model(np.zeros((2, 16), "int32")).shape)
    (2, 16, 512)
    >>> out = model.generate([[1, 5, 9]], max_new_tokens=8)  # greedy
    >>> out.shape
    (1, 11)
    """

    def __init__(self, config: "LlamaConfig | dict", initializer=None, **kwargs):
        super().__init__(**kwargs)
        cfg = config if isinstance(config, LlamaConfig) else LlamaConfig.from_dict(config)
        self.config = cfg
        # Weights about to be overwritten (checkpoint loading) start as "zeros":
        # random draws of a large embedding cost several times its size.
        init = initializer or keras.initializers.RandomNormal(stddev=0.02)
        self.tok_embeddings = keras.layers.Embedding(
            cfg.vocab_size, cfg.dim, embeddings_initializer=init, name="tok_embeddings"
        )
        self.blocks = [
            LlamaBlock(
                cfg.n_heads,
                cfg.n_kv_heads,
                cfg.ffn_hidden_dim,
                cfg.multiple_of,
                cfg.ffn_dim_multiplier,
                cfg.norm_eps,
                cfg.rope_theta,
                cfg.rope_convention,
                cfg.rope_scaling,
                cfg.dropout,
                kernel_initializer=initializer or "default",
                name=f"layers_{i}",
            )
            for i in range(cfg.n_layers)
        ]
        self.norm = RMSNorm(cfg.norm_eps, name="norm")
        self.output_projection = None
        if not cfg.tie_embeddings:
            self.output_projection = keras.layers.Dense(
                cfg.vocab_size, use_bias=False, kernel_initializer=init, name="output"
            )
        self.build((None, None))

    def build(self, input_shape):
        hidden_shape = (None, None, self.config.dim)
        self.tok_embeddings.build(input_shape)
        for block in self.blocks:
            block.build(hidden_shape)
        self.norm.build(hidden_shape)
        if self.output_projection is not None:
            self.output_projection.build(hidden_shape)
        self.built = True

    def call(self, token_ids, padding_mask=None, training=None):
        return self.logits(self.hidden_states(token_ids, padding_mask, training))

    def hidden_states(self, token_ids, padding_mask=None, training=None):
        """The final hidden states `(B, T, dim)`, after the last norm (what `logits` maps)."""
        x = self.tok_embeddings(token_ids)
        for block in self.blocks:
            x = block(x, padding_mask=padding_mask, training=training)
        return self.norm(x)

    def output_weights(self):
        """The output matrix's variable and whether it is the embedding table.

        Tied: `(tok_embeddings.embeddings, True)` (vocab x dim, used
        transposed); untied: `(output.kernel, False)` (dim x vocab). What the
        fused training step (`FusedTrainStep`) differentiates.
        """
        if self.output_projection is None:
            return self.tok_embeddings.embeddings, True
        return self.output_projection.kernel, False

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
        the logits of the last position `(B, vocab)` and the new caches.
        `output_kernel` optionally gives the `(dim, vocab)` output matrix
        (`output_kernel()`), so a decode loop need not transpose tied
        embeddings at every step. `cache_update` optionally replaces the
        cache write (`CausalSelfAttention`'s dynamic-update-slice).
        """
        x = self.tok_embeddings(token_ids)
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
        """The `(dim, vocab)` output matrix (the transposed embeddings when tied)."""
        if self.output_projection is None:
            return ops.transpose(self.tok_embeddings.embeddings)
        return self.output_projection.kernel

    def logits(self, x, output_kernel=None):
        if output_kernel is not None:
            return ops.cast(ops.matmul(x, ops.cast(output_kernel, x.dtype)), "float32")
        if self.output_projection is None:
            embeddings = ops.cast(self.tok_embeddings.embeddings, x.dtype)
            return ops.cast(ops.matmul(x, ops.transpose(embeddings)), "float32")
        return ops.cast(self.output_projection(x), "float32")

    def generate(
        self,
        prompt_ids,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        eos_id: int | None = None,
        pad_id: int = 0,
        callback=None,
    ):
        """Continue prompts with KV-cached decoding; see `keras_recipes.llama.generate`."""
        from keras_recipes.llama.generate import generate

        return generate(
            self,
            prompt_ids,
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            eos_id=eos_id,
            pad_id=pad_id,
            callback=callback,
        )

    def get_config(self):
        config = {"config": self.config.to_dict(), "name": self.name, "trainable": self.trainable}
        if getattr(self, "_lora_settings", None):
            config["lora"] = dict(self._lora_settings)  # rebuilt with adapters on loading
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        lora = config.pop("lora", None)
        model = cls(**config)
        if lora:
            model.enable_lora(lora["rank"], lora["alpha"], tuple(lora["targets"]))
        return model


def build_llama(config: "LlamaConfig | str") -> LlamaModel:
    """Build a randomly initialized LLaMA from a config or a preset name.

    Args:
        config: `LlamaConfig`, or a name from `LlamaConfig.presets()`.

    Returns:
        A built `LlamaModel` (a `keras.Model`): int32 `(B, T)` -> float32
        logits `(B, T, vocab)`, with `.generate(...)`.

    Examples:

    >>> model = build_llama("tiny")
    >>> model.count_params() == LlamaConfig.preset("tiny").num_parameters()
    True
    """
    if isinstance(config, str):
        config = LlamaConfig.preset(config)
    if not isinstance(config, LlamaConfig):
        raise ValueError(f"build_llama: expected a LlamaConfig or preset name, got {type(config)}.")
    return LlamaModel(config)
