"""Activation functions of the study notes, on `keras.ops` (any Keras backend).

The notes write SwiGLU as

    SwiGLU(x) = x * sigmoid(beta * x) + (1 - sigmoid(beta * x)) * x

which simplifies to `x` for every `beta` (the two sigmoid terms cancel): it is
the identity, not an activation. The real SwiGLU (Shazeer 2020, "GLU Variants
Improve Transformer", https://arxiv.org/abs/2002.05202) is a gated linear
unit whose gate is Swish:

    SwiGLU(x, W, V, beta) = Swish_beta(x W) * (x V)

and that is what LLaMA's feed-forward uses (with beta = 1, i.e. SiLU):
`w2(silu(w1 x) * w3 x)`. `swiglu` below implements that;
`notes_swiglu` keeps the notes' formula so the tests can show it is `x`.
"""

from keras import ops


def sigmoid(x):
    """Logistic sigmoid, sigma(x) = 1 / (1 + e^-x).

    Examples:

    >>> float(sigmoid(0.0))
    0.5
    """
    return ops.sigmoid(x)


def relu(x):
    """Rectified linear unit, f(x) = max(0, x)."""
    return ops.relu(x)


def swish(x, beta=1.0):
    """Swish, x * sigmoid(beta * x) (Ramachandran et al. 2017).

    Args:
        x: tensor.
        beta: float, default 1.0. With beta = 1 this is SiLU, LLaMA's gate.
    """
    return x * ops.sigmoid(beta * x)


def swiglu(x, w, v, beta=1.0):
    """SwiGLU gated linear unit, Swish_beta(x @ w) * (x @ v) (Shazeer 2020).

    Args:
        x: tensor of shape `(..., d_in)`.
        w: gate weights, shape `(d_in, d_hidden)`.
        v: value weights, shape `(d_in, d_hidden)`.
        beta: float, default 1.0 (LLaMA uses SiLU, beta = 1).

    Returns:
        Tensor of shape `(..., d_hidden)`. LLaMA's feed-forward then projects
        it back with a third matrix: `w2(swiglu(x, w1, w3))`.

    Examples:

    >>> import numpy as np
    >>> x = np.ones((2, 4), "float32")
    >>> w = v = np.eye(4, dtype="float32")
    >>> y = swiglu(x, w, v)
    >>> tuple(y.shape)
    (2, 4)
    >>> round(float(y[0, 0]), 4)  # swish(1) * 1 = sigmoid(1)
    0.7311
    """
    return swish(ops.matmul(x, w), beta) * ops.matmul(x, v)


def notes_swiglu(x, beta=1.0):
    """The study notes' formula, x*sigmoid(beta*x) + (1 - sigmoid(beta*x))*x.

    Kept to document the mistake: algebraically this is exactly `x` for
    every beta (see the module docstring). Use `swiglu` for the real thing.
    """
    gate = ops.sigmoid(beta * x)
    return x * gate + (1.0 - gate) * x
