"""How a decoder step scores every encoder step: Bahdanau (additive) and Luong (multiplicative) attention.

Both layers take the decoder states as the query and the encoder outputs as
keys and values, ignore source padding through `mask`, and return the
context vectors with the attention weights (for plotting alignments). They
use `keras.ops` only and are registered under `package="keras_recipes"`.
"""

import keras
from keras import ops


def _masked_softmax(scores, mask):
    """Softmax over the last axis of `scores` (B, Tq, Tk), ignoring keys where `mask` (B, Tk) is False."""
    if mask is not None:
        keep = ops.cast(ops.expand_dims(mask, 1), scores.dtype)
        scores = scores + (1.0 - keep) * -1e9
    return ops.softmax(scores, axis=-1)


@keras.saving.register_keras_serializable(package="keras_recipes")
class BahdanauAttention(keras.layers.Layer):
    """Additive attention: `score(q, k) = v^T tanh(W1 q + W2 k)`.

    Bahdanau, Cho & Bengio, "Neural Machine Translation by Jointly Learning
    to Align and Translate" (https://arxiv.org/abs/1409.0473).

    Args:
        units: int. Width of the hidden layer inside the score.

    Call arguments:
        query: float tensor `(batch, query_steps, query_dim)`, decoder states.
        keys: float tensor `(batch, key_steps, key_dim)`, encoder outputs
            (also the values).
        mask: bool tensor `(batch, key_steps)`, False at source padding.

    Returns:
        `(context, weights)`: `(batch, query_steps, key_dim)` and
        `(batch, query_steps, key_steps)`, each weight row summing to 1.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # the mask comes in as `mask`; no output mask
        self.units = units
        self.w1 = keras.layers.Dense(units, use_bias=False, name="w1")
        self.w2 = keras.layers.Dense(units, use_bias=False, name="w2")
        self.v = keras.layers.Dense(1, use_bias=False, name="v")

    def call(self, query, keys, mask=None):
        hidden = ops.tanh(ops.expand_dims(self.w1(query), 2) + ops.expand_dims(self.w2(keys), 1))
        weights = _masked_softmax(ops.squeeze(self.v(hidden), -1), mask)
        return ops.matmul(weights, keys), weights

    def compute_mask(self, query, keys, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="keras_recipes")
class LuongAttention(keras.layers.Layer):
    """Multiplicative ("general") attention: `score(q, k) = q^T W k`.

    Luong, Pham & Manning, "Effective Approaches to Attention-based Neural
    Machine Translation" (https://arxiv.org/abs/1508.04025).

    Args:
        key_dim: int. Width of the keys (the encoder outputs).

    Call arguments and returns as in `BahdanauAttention`.
    """

    def __init__(self, key_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # the mask comes in as `mask`; no output mask
        self.key_dim = key_dim
        self.wa = keras.layers.Dense(key_dim, use_bias=False, name="wa")

    def call(self, query, keys, mask=None):
        scores = ops.matmul(self.wa(query), ops.transpose(keys, (0, 2, 1)))
        weights = _masked_softmax(scores, mask)
        return ops.matmul(weights, keys), weights

    def compute_mask(self, query, keys, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "key_dim": self.key_dim}
