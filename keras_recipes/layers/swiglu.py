"""SwiGLU feed-forward network of LLaMA."""

import keras

from keras_recipes.activations import swish


def llama_hidden_dim(
    dim: int, multiple_of: int = 256, ffn_dim_multiplier: float | None = None
) -> int:
    """LLaMA's feed-forward width: 2/3 of 4*dim, scaled, rounded up.

    SwiGLU has three matrices instead of two, so LLaMA shrinks the hidden
    size to 2/3 of the usual `4 * dim` to keep the parameter count, applies
    `ffn_dim_multiplier` if given (Llama 2 70B, Llama 3) and rounds up to a
    multiple of `multiple_of`.

    Examples:

    >>> llama_hidden_dim(4096, multiple_of=256)  # LLaMA 7B
    11008
    >>> llama_hidden_dim(4096, multiple_of=1024, ffn_dim_multiplier=1.3)  # Llama 3 8B
    14336
    """
    hidden = int(2 * (4 * dim) / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


@keras.saving.register_keras_serializable(package="keras_recipes")
class SwiGLU(keras.layers.Layer):
    """SwiGLU feed-forward network: `w2(silu(w1 x) * w3 x)`, no biases.

    A gated linear unit whose gate is Swish/SiLU: one projection (`w1`) is
    passed through SiLU and multiplies a second projection (`w3`)
    elementwise; `w2` projects back to the model width. Shazeer found the
    gated variants train to lower perplexity than a ReLU MLP at equal cost
    ([GLU Variants Improve Transformer](https://arxiv.org/abs/2002.05202));
    LLaMA uses it in every block. The names `w1`, `w2`, `w3` are Meta's and
    llama2.c's, so checkpoints map one to one.

    Args:
        hidden_dim: int or None, default None. Width of the gated layer. When
            None it follows LLaMA's rule (`llama_hidden_dim`): 2/3 * 4 * dim,
            times `ffn_dim_multiplier`, rounded up to `multiple_of`.
        multiple_of: int, default 256. Rounding of the computed hidden size.
        ffn_dim_multiplier: float or None, default None.
        dropout: float, default 0. Dropout on the output (training only).
        kernel_initializer: initializer for the three matrices, default
            `RandomNormal(stddev=0.02)` as in llama2.c.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor `(..., dim)`.
        training: bool, whether dropout is active.

    Examples:

    >>> import numpy as np
    >>> ffn = SwiGLU(hidden_dim=768)
    >>> tuple(ffn(np.zeros((2, 10, 288), "float32")).shape)
    (2, 10, 288)
    >>> SwiGLU(multiple_of=32).compute_hidden_dim(288)  # stories15M
    768
    """

    def __init__(
        self,
        hidden_dim: int | None = None,
        multiple_of: int = 256,
        ffn_dim_multiplier: float | None = None,
        dropout: float = 0.0,
        kernel_initializer="default",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if hidden_dim is not None and int(hidden_dim) <= 0:
            raise ValueError(f"SwiGLU: hidden_dim must be a positive int, got {hidden_dim}.")
        if int(multiple_of) <= 0:
            raise ValueError(f"SwiGLU: multiple_of must be a positive int, got {multiple_of}.")
        self.hidden_dim = None if hidden_dim is None else int(hidden_dim)
        self.multiple_of = int(multiple_of)
        self.ffn_dim_multiplier = ffn_dim_multiplier
        self.dropout = float(dropout)
        if kernel_initializer == "default":
            kernel_initializer = keras.initializers.RandomNormal(stddev=0.02)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def compute_hidden_dim(self, dim: int) -> int:
        if self.hidden_dim is not None:
            return self.hidden_dim
        return llama_hidden_dim(dim, self.multiple_of, self.ffn_dim_multiplier)

    def build(self, input_shape):
        dim = input_shape[-1]
        hidden = self.compute_hidden_dim(dim)

        def dense(units, name):
            layer = keras.layers.Dense(
                units,
                use_bias=False,
                kernel_initializer=keras.initializers.get(
                    self.kernel_initializer.__class__.from_config(
                        self.kernel_initializer.get_config()
                    )
                ),
                dtype=self.dtype_policy,
                name=name,
            )
            return layer

        self.w1 = dense(hidden, "w1")
        self.w3 = dense(hidden, "w3")
        self.w2 = dense(dim, "w2")
        self.w1.build(input_shape)
        self.w3.build(input_shape)
        self.w2.build(tuple(input_shape[:-1]) + (hidden,))
        self.output_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def call(self, inputs, training=None):
        gate = swish(self.w1(inputs))
        return self.output_dropout(self.w2(gate * self.w3(inputs)), training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "multiple_of": self.multiple_of,
                "ffn_dim_multiplier": self.ffn_dim_multiplier,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
