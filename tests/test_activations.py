"""activations: closed forms, and the notes' SwiGLU shown to be the identity."""

import numpy as np
import pytest

from keras_recipes import activations

X = np.linspace(-6.0, 6.0, 49).astype("float32")


def test_sigmoid_matches_closed_form():
    np.testing.assert_allclose(activations.sigmoid(X), 1.0 / (1.0 + np.exp(-X)), rtol=1e-6)
    assert float(activations.sigmoid(0.0)) == 0.5


def test_relu_is_max_zero_x():
    np.testing.assert_array_equal(activations.relu(X), np.maximum(0.0, X))


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_swish_is_x_times_sigmoid_beta_x(beta):
    expected = X / (1.0 + np.exp(-beta * X))
    np.testing.assert_allclose(activations.swish(X, beta), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("beta", [0.1, 1.0, 3.0, 10.0])
def test_notes_swiglu_reduces_to_identity_for_every_beta(beta):
    np.testing.assert_allclose(activations.notes_swiglu(X, beta), X, rtol=1e-6, atol=1e-6)


def test_swiglu_is_swish_gate_times_linear_value():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 8)).astype("float32")
    w = rng.normal(size=(8, 5)).astype("float32")
    v = rng.normal(size=(8, 5)).astype("float32")
    xw, xv = x @ w, x @ v
    expected = xw / (1.0 + np.exp(-1.5 * xw)) * xv
    out = np.asarray(activations.swiglu(x, w, v, beta=1.5))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(out[:, :5], x[:, :5]), "real SwiGLU is not the identity"
