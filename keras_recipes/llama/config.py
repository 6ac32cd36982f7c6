"""`LlamaConfig`: LLaMA's hyper-parameters, validated, with its presets by name.

The presets themselves (the published shapes) are in `presets.py`.
"""

import dataclasses

from keras_recipes.layers import llama_hidden_dim
from keras_recipes.layers.rotary_embedding import CONVENTIONS
from keras_recipes.llama.presets import PRESETS

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
