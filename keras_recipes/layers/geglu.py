"""GeGLU feed-forward network of Gemma."""

import keras


@keras.saving.register_keras_serializable(package="keras_recipes")
class GeGLU(keras.layers.Layer):
    """GeGLU feed-forward network: `w2(gelu(w1 x) * w3 x)`, no biases.

    A gated linear unit whose gate is GELU (the tanh approximation, as
    Gemma and its `gelu_pytorch_tanh` checkpoints use): one projection
    (`w1`, Hugging Face's `gate_proj`) passes through GELU and multiplies a
    second (`w3`, `up_proj`) elementwise; `w2` (`down_proj`) projects back to
    the model width. One of the gated variants of
    [GLU Variants Improve Transformer](https://arxiv.org/abs/2002.05202);
    Gemma uses it in every block. The names follow `SwiGLU`'s, so the two
    feed-forward layers read alike.

    Args:
        hidden_dim: int, width of the gated layer (Hugging Face's
            `intermediate_size`).
        dropout: float, default 0. Dropout on the output (training only).
        kernel_initializer: initializer for the three matrices, default
            `RandomNormal(stddev=0.02)`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor `(..., dim)`.
        training: bool, whether dropout is active.

    Examples:

    >>> import numpy as np
    >>> ffn = GeGLU(hidden_dim=96)
    >>> tuple(ffn(np.zeros((2, 10, 32), "float32")).shape)
    (2, 10, 32)
    """

    def __init__(
        self,
        hidden_dim: int,
        dropout: float = 0.0,
        kernel_initializer="default",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(hidden_dim, bool) or not isinstance(hidden_dim, int) or hidden_dim <= 0:
            raise ValueError(f"GeGLU: hidden_dim must be a positive int, got {hidden_dim!r}.")
        if not 0 <= dropout < 1:
            raise ValueError(f"GeGLU: dropout must be in [0, 1), got {dropout!r}.")
        self.hidden_dim = hidden_dim
        self.dropout = float(dropout)
        if kernel_initializer == "default":
            kernel_initializer = keras.initializers.RandomNormal(stddev=0.02)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        dim = input_shape[-1]

        def dense(units, name):
            init = self.kernel_initializer.__class__.from_config(
                self.kernel_initializer.get_config()
            )
            return keras.layers.Dense(
                units, use_bias=False, kernel_initializer=init, dtype=self.dtype_policy, name=name
            )

        self.w1 = dense(self.hidden_dim, "w1")
        self.w3 = dense(self.hidden_dim, "w3")
        self.w2 = dense(dim, "w2")
        self.w1.build(input_shape)
        self.w3.build(input_shape)
        self.w2.build(tuple(input_shape[:-1]) + (self.hidden_dim,))
        self.output_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def call(self, inputs, training=None):
        gate = keras.activations.gelu(self.w1(inputs), approximate=True)
        return self.output_dropout(self.w2(gate * self.w3(inputs)), training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
