"""Root-mean-square layer normalization (RMSNorm)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_recipes")
class RMSNorm(keras.layers.Layer):
    """Root-mean-square normalization with a learned per-feature scale.

    `y = x / sqrt(mean(x^2) + epsilon) * scale`. Unlike LayerNorm it neither
    subtracts the mean nor adds a bias: re-scaling invariance is what
    stabilises training, and dropping the centring saves work. LLaMA
    normalizes the input of every sub-layer with it (pre-norm). Defined in
    [Zhang & Sennrich 2019](https://arxiv.org/abs/1910.07467).

    The statistic is computed in float32 whatever the compute dtype, so the
    layer is safe under `mixed_bfloat16` / `mixed_float16`; the output is
    cast back to the compute dtype.

    Args:
        epsilon: float, default `1e-5` (LLaMA 2/3; LLaMA 1 used `1e-6`).
            Added to the mean square before the square root.
        unit_offset: bool, default False. When True the learned scale is
            stored as an offset from 1: `y = x / rms(x) * (1 + scale)`, with
            `scale` starting at zeros (Gemma's convention, whose checkpoints
            store the offset).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor `(..., dim)`.

    Examples:

    >>> import numpy as np
    >>> norm = RMSNorm(epsilon=1e-5)
    >>> y = norm(np.array([[3.0, 4.0]], "float32"))
    >>> np.asarray(y, "float64").round(4).tolist()  # rms of (3, 4) is sqrt(12.5)
    [[0.8485, 1.1314]]
    """

    def __init__(self, epsilon: float = 1e-5, unit_offset: bool = False, **kwargs):
        super().__init__(**kwargs)
        if not epsilon > 0:
            raise ValueError(f"RMSNorm: epsilon must be > 0, got {epsilon}.")
        self.epsilon = float(epsilon)
        self.unit_offset = bool(unit_offset)

    def build(self, input_shape):
        self.scale = self.add_weight(
            name="scale",
            shape=(input_shape[-1],),
            initializer="zeros" if self.unit_offset else "ones",
            dtype=self.variable_dtype,
        )

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        x = x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + self.epsilon)
        scale = ops.cast(self.scale, "float32")
        if self.unit_offset:
            scale = 1.0 + scale
        return ops.cast(x * scale, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon, "unit_offset": self.unit_offset})
        return config
