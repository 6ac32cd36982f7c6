"""Rotary positional embedding (RoPE), LLaMA's position signal."""

import math

import keras
import numpy as np
from keras import ops

CONVENTIONS = ("interleaved", "rotate_half")


def rope_inverse_frequencies(
    head_dim: int,
    rope_theta: float = 10000.0,
    scaling: dict | None = None,
) -> np.ndarray:
    """Per-pair rotation speeds `theta^(-2i/d)`, with Llama 3.1 scaling.

    Args:
        head_dim: int, the (even) size of one attention head.
        rope_theta: float, the base `theta` (10000 in LLaMA 1/2, 500000 in 3).
        scaling: dict or None. Llama 3.1 frequency scaling with keys
            `factor`, `low_freq_factor`, `high_freq_factor` and
            `original_max_position_embeddings`: long wavelengths are slowed
            by `factor`, short ones kept, the band between interpolated.

    Returns:
        float32 array of shape `(head_dim // 2,)`.
    """
    exponents = np.arange(0, head_dim, 2, dtype=np.float64) / head_dim
    inv_freq = 1.0 / (float(rope_theta) ** exponents)
    if scaling:
        factor = float(scaling["factor"])
        low = float(scaling["low_freq_factor"])
        high = float(scaling["high_freq_factor"])
        original = float(scaling["original_max_position_embeddings"])
        wavelen = 2.0 * math.pi / inv_freq
        smooth = (original / wavelen - low) / (high - low)
        smoothed = (1.0 - smooth) * inv_freq / factor + smooth * inv_freq
        inv_freq = np.where(
            wavelen < original / high,
            inv_freq,
            np.where(wavelen > original / low, inv_freq / factor, smoothed),
        )
    return inv_freq.astype(np.float32)


@keras.saving.register_keras_serializable(package="keras_recipes")
class RotaryEmbedding(keras.layers.Layer):
    """Rotary positional embedding (RoPE).

    RoPE encodes a token's absolute position by rotating each pair of
    features of a query or key by an angle proportional to the position, at
    a different speed per pair. A query at position `m` and a key at
    position `n` then meet at an angle that depends only on `m - n`, so
    attention sees relative positions without any learned position table.
    LLaMA applies it to queries and keys in every layer. Defined in
    [RoFormer](https://arxiv.org/abs/2104.09864); LLaMA in
    [Touvron et al. 2023](https://arxiv.org/abs/2302.13971).

    Two layouts of the pairs exist in the wild and they are not
    interchangeable for a given checkpoint:
    `"interleaved"` rotates features `(0, 1), (2, 3), ...` (Meta's original
    code and llama2.c); `"rotate_half"` rotates `(i, i + d/2)` (Hugging Face
    checkpoints, whose `q_proj`/`k_proj` rows are permuted to match).

    Args:
        rope_theta: float, default `10000.0`. The base of the geometric
            progression of rotation speeds.
        convention: str, `"interleaved"` (default) or `"rotate_half"`.
        scaling: dict or None, default None. Llama 3.1 frequency scaling:
            `{"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor `(batch, seq_len, num_heads, head_dim)`, `head_dim`
            even.
        start_index: int or scalar int tensor, default 0. The position of
            `inputs[:, 0]`; during cached decoding it is the number of tokens
            already in the cache.

    Examples:

    >>> import numpy as np
    >>> rope = RotaryEmbedding(rope_theta=10000.0)
    >>> q = np.random.rand(2, 8, 4, 16).astype("float32")
    >>> tuple(rope(q).shape)
    (2, 8, 4, 16)
    >>> # The last token, rotated on its own at its true position:
    >>> last = rope(q[:, 7:], start_index=7)
    """

    def __init__(
        self,
        rope_theta: float = 10000.0,
        convention: str = "interleaved",
        scaling: dict | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if convention not in CONVENTIONS:
            raise ValueError(
                f"RotaryEmbedding: convention must be one of {CONVENTIONS}, got {convention!r}."
            )
        if scaling is not None:
            needed = {"factor", "low_freq_factor", "high_freq_factor"}
            needed.add("original_max_position_embeddings")
            missing = needed - set(scaling)
            if missing:
                raise ValueError(
                    f"RotaryEmbedding: scaling is missing {sorted(missing)}; "
                    "Llama 3.1 scaling needs all of " + ", ".join(sorted(needed)) + "."
                )
        self.rope_theta = float(rope_theta)
        self.convention = convention
        self.scaling = dict(scaling) if scaling else None

    def call(self, inputs, start_index=0):
        seq_len, head_dim = ops.shape(inputs)[1], inputs.shape[-1]
        if head_dim % 2:
            raise ValueError(f"RotaryEmbedding: head_dim must be even, got {head_dim}.")
        inv_freq = rope_inverse_frequencies(head_dim, self.rope_theta, self.scaling)
        positions = ops.arange(seq_len, dtype="float32") + ops.cast(start_index, "float32")
        angles = positions[:, None] * ops.convert_to_tensor(inv_freq)[None, :]
        cos = ops.cast(ops.cos(angles), inputs.dtype)[None, :, None, :]
        sin = ops.cast(ops.sin(angles), inputs.dtype)[None, :, None, :]
        if self.convention == "rotate_half":
            x1, x2 = inputs[..., : head_dim // 2], inputs[..., head_dim // 2 :]
            return ops.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
        pairs = ops.reshape(inputs, ops.shape(inputs)[:-1] + (head_dim // 2, 2))
        x1, x2 = pairs[..., 0], pairs[..., 1]
        rotated = ops.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
        return ops.reshape(rotated, ops.shape(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"rope_theta": self.rope_theta, "convention": self.convention, "scaling": self.scaling}
        )
        return config
