"""A linear-chain conditional random field (CRF) output layer for taggers."""

import keras
from keras import ops


def _mask_or_ones(potentials, mask):
    if mask is None:
        return ops.ones(ops.shape(potentials)[:2], dtype="bool")
    return ops.cast(mask, "bool")


def _time_major(x):
    return ops.moveaxis(x, 1, 0)


# Each scan below reads ONE tensor (the per-step inputs concatenated on the
# last axis): Keras 3.15's TensorFlow `scan` fails when `xs` holds several
# tensors whose time length is unknown while tracing (`n_static` is None).
def _steps(*columns, dtype="float32"):
    return _time_major(ops.concatenate([ops.cast(c, dtype) for c in columns], axis=-1))


def crf_log_partition(potentials, transitions, start, end, mask=None):
    """log Z: the log-sum-exp of the scores of every tag sequence (forward algorithm).

    Args:
        potentials: float `(batch, time, num_tags)`, the per-step tag scores.
        transitions: float `(num_tags, num_tags)`; `[i, j]` scores tag `i`
            followed by tag `j`.
        start, end: float `(num_tags,)`, scores of the first and last tag.
        mask: bool `(batch, time)` or `None`. Masked steps are skipped: the
            chain joins the real steps on either side of them. A row with no
            real step has `log Z = 0`.

    Returns:
        float `(batch,)`.
    """
    potentials = ops.cast(potentials, "float32")
    mask = _mask_or_ones(potentials, mask)
    batch, num_tags = ops.shape(potentials)[0], ops.shape(potentials)[2]

    def step(carry, inputs):
        alpha, started = carry
        emission, real = inputs[:, :-1], ops.cast(inputs[:, -1], "bool")
        chained = ops.logsumexp(alpha[:, :, None] + transitions[None], axis=1) + emission
        first = start[None] + emission
        new = ops.where(started[:, None], chained, first)
        alpha = ops.where(real[:, None], new, alpha)
        carry = (alpha, ops.logical_or(started, real))
        return carry, carry

    init = (ops.zeros((batch, num_tags)), ops.zeros((batch,), dtype="bool"))
    (alpha, started), _ = ops.scan(step, init, _steps(potentials, mask[:, :, None]))
    return ops.where(started, ops.logsumexp(alpha + end[None], axis=1), 0.0)


def crf_sequence_score(potentials, tags, transitions, start, end, mask=None):
    """The score of one given tag sequence per row: emissions plus transitions.

    Arguments as in `crf_log_partition`, and `tags`, int `(batch, time)`;
    tags at masked steps are ignored. Returns float `(batch,)`.
    """
    potentials = ops.cast(potentials, "float32")
    mask = _mask_or_ones(potentials, mask)
    tags = ops.cast(tags, "int32")
    num_tags = ops.shape(potentials)[2]
    emitted = ops.take_along_axis(potentials, tags[:, :, None], axis=2)[:, :, 0]
    flat_transitions = ops.reshape(transitions, (-1,))

    def step(carry, inputs):
        score, previous, started = carry
        emission, tag = inputs[:, 0], ops.cast(inputs[:, 1], "int32")
        real = ops.cast(inputs[:, 2], "bool")
        chained = ops.take(flat_transitions, previous * num_tags + tag)
        first = ops.take(start, tag)
        gained = ops.where(started, chained, first) + emission
        score = score + ops.where(real, gained, 0.0)
        previous = ops.where(real, tag, previous)
        carry = (score, previous, ops.logical_or(started, real))
        return carry, carry

    batch = ops.shape(potentials)[0]
    init = (
        ops.zeros((batch,)),
        ops.zeros((batch,), dtype="int32"),
        ops.zeros((batch,), dtype="bool"),
    )
    xs = _steps(emitted[:, :, None], tags[:, :, None], mask[:, :, None])
    (score, last, started), _ = ops.scan(step, init, xs)
    return score + ops.where(started, ops.take(end, last), 0.0)


def crf_viterbi_decode(potentials, transitions, start, end, mask=None):
    """The best-scoring tag sequence per row (Viterbi), and its score.

    Arguments as in `crf_log_partition`. Returns `(tags, scores)`: int32
    `(batch, time)` with `0` at masked steps, and float `(batch,)`.
    """
    potentials = ops.cast(potentials, "float32")
    mask = _mask_or_ones(potentials, mask)
    batch, num_tags = ops.shape(potentials)[0], ops.shape(potentials)[2]
    stay = ops.broadcast_to(ops.arange(num_tags, dtype="int32")[None], (batch, num_tags))

    def forward(carry, inputs):
        delta, started, _ = carry
        emission, real = inputs[:, :-1], ops.cast(inputs[:, -1], "bool")
        candidates = delta[:, :, None] + transitions[None]  # (batch, from, to)
        chained = ops.max(candidates, axis=1) + emission
        first = start[None] + emission
        new = ops.where(started[:, None], chained, first)
        # where a step is masked, every tag points back to itself
        pointer = ops.where(
            ops.logical_and(real, started)[:, None],
            ops.cast(ops.argmax(candidates, axis=1), "int32"),
            stay,
        )
        delta = ops.where(real[:, None], new, delta)
        carry = (delta, ops.logical_or(started, real), pointer)
        return carry, carry

    init = (ops.zeros((batch, num_tags)), ops.zeros((batch,), dtype="bool"), stay)
    xs = _steps(potentials, mask[:, :, None])
    (delta, started, _), (_, _, pointers) = ops.scan(forward, init, xs)
    final = delta + end[None]
    last = ops.cast(ops.argmax(final, axis=1), "int32")
    scores = ops.where(started, ops.max(final, axis=1), 0.0)

    def backward(carry, inputs):
        tag, _ = carry
        pointer, real = inputs[:, :-1], ops.cast(inputs[:, -1], "bool")
        emitted = ops.where(real, tag, 0)
        previous = ops.take_along_axis(pointer, tag[:, None], axis=1)[:, 0]
        return (previous, emitted), (previous, emitted)

    xs = ops.concatenate([pointers, ops.cast(_time_major(mask), "int32")[:, :, None]], axis=-1)
    _, (_, tags) = ops.scan(backward, (last, ops.zeros_like(last)), xs, reverse=True)
    return _time_major(tags), scores


@keras.saving.register_keras_serializable(package="keras_recipes")
class CRF(keras.layers.Layer):
    """A linear-chain CRF over per-word tag scores: sequence-level training and Viterbi decoding.

    A softmax tagger picks each word's tag on its own, so it can output
    `I-PER` right after `O`, which BIO forbids. A CRF scores whole tag
    sequences: the score of tags `y` for scores `s` is
    `start[y_1] + sum_t s[t, y_t] + sum_t transitions[y_(t-1), y_t] + end[y_T]`,
    and training maximizes `log p(y) = score(y) - log Z`, where `log Z`
    sums over every sequence with the forward algorithm in log space.
    Decoding picks the best sequence with Viterbi. As in
    [Lample et al. 2016](https://arxiv.org/abs/1603.01360) and
    [Ma & Hovy 2016](https://arxiv.org/abs/1603.01354), the scores come from
    a BiLSTM's `Dense(num_tags)` head (no activation).

    Padding: masked steps are skipped, the chain joins the real steps on
    either side; the mask comes from Keras (`mask_zero=True` upstream) or
    the `mask` argument. Everything is `keras.ops` (`ops.scan` over time),
    so the layer runs on every backend.

    Args:
        num_tags: int, or `None` to take it from the input's last axis.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        potentials: float `(batch, time, num_tags)`.
        mask: bool `(batch, time)` or `None`.

    Returns the Viterbi tags, int32 `(batch, time)`, `0` at masked steps.
    `log_likelihood(potentials, tags, mask)` gives the training objective.

    Examples:

    >>> import numpy as np
    >>> crf = CRF(3)
    >>> scores = np.array([[[0.0, 2.0, 0.0], [0.0, 0.0, 3.0]]], "float32")
    >>> np.asarray(crf(scores)).tolist()
    [[1, 2]]
    >>> ll = crf.log_likelihood(scores, np.array([[1, 2]]))
    >>> bool(np.asarray(ll)[0] < 0.0)
    True
    """

    def __init__(self, num_tags=None, **kwargs):
        super().__init__(**kwargs)
        if num_tags is not None and (isinstance(num_tags, bool) or int(num_tags) < 1):
            raise ValueError(f"CRF: num_tags must be a positive integer, got {num_tags!r}.")
        self.num_tags = None if num_tags is None else int(num_tags)
        self.supports_masking = True

    def build(self, input_shape):
        num_tags = input_shape[-1]
        if self.num_tags is None:
            self.num_tags = num_tags
        elif num_tags is not None and num_tags != self.num_tags:
            raise ValueError(
                f"CRF({self.num_tags}) got scores for {num_tags} tags: the layer before it "
                f"must be Dense({self.num_tags}), one score per tag."
            )
        small = keras.initializers.RandomUniform(-0.1, 0.1)
        self.transitions = self.add_weight(
            name="transitions", shape=(self.num_tags, self.num_tags), initializer=small
        )
        self.start_transitions = self.add_weight(
            name="start_transitions", shape=(self.num_tags,), initializer=small
        )
        self.end_transitions = self.add_weight(
            name="end_transitions", shape=(self.num_tags,), initializer=small
        )

    def _weights(self):
        return (
            ops.cast(self.transitions, "float32"),
            ops.cast(self.start_transitions, "float32"),
            ops.cast(self.end_transitions, "float32"),
        )

    def call(self, potentials, mask=None):
        tags, _ = crf_viterbi_decode(potentials, *self._weights(), mask=mask)
        return tags

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def compute_output_spec(self, potentials, mask=None):
        return keras.KerasTensor(potentials.shape[:-1], dtype="int32")

    def log_partition(self, potentials, mask=None):
        """log Z per row, float `(batch,)`."""
        self._build_for(potentials)
        return crf_log_partition(potentials, *self._weights(), mask=mask)

    def log_likelihood(self, potentials, tags, mask=None):
        """log p(tags | potentials) per row, float `(batch,)`; minimize its negative."""
        self._build_for(potentials)
        transitions, start, end = self._weights()
        score = crf_sequence_score(potentials, tags, transitions, start, end, mask=mask)
        return score - crf_log_partition(potentials, transitions, start, end, mask=mask)

    def decode(self, potentials, mask=None):
        """Viterbi tags and their scores: int32 `(batch, time)`, float `(batch,)`."""
        self._build_for(potentials)
        return crf_viterbi_decode(potentials, *self._weights(), mask=mask)

    def _build_for(self, potentials):
        if not self.built:
            self.build(potentials.shape)
            self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({"num_tags": self.num_tags})
        return config
