"""Beam search over any step-by-step decoder: the one search behind `Seq2Seq` and `TFLiteTranslator`.

`beam_search` keeps the `beam_width` best hypotheses per source, ranked with
the GNMT length penalty, given only a function that runs one decoder step
for all of them and one that reorders the decoder states; `check_beam_width`
is the argument check both callers share.
"""

import numpy as np
from keras import ops

from keras_recipes.seq2seq.tokenizer import END_ID, PAD_ID, START_ID


def check_beam_width(beam_width) -> int:
    if not isinstance(beam_width, int) or isinstance(beam_width, bool) or beam_width < 1:
        raise ValueError(f"`beam_width` must be a positive integer, got {beam_width!r}.")
    return beam_width


def beam_search(step, states, batch: int, beam_width: int, max_length: int, length_penalty, take):
    """Beam search over any decoder that can run one step for `batch * beam_width` rows.

    The one search behind `Seq2Seq.beam_search` and `TFLiteTranslator`.
    Hypotheses are ranked by `log p / ((5 + length) / 6) ** length_penalty`
    (GNMT); a finished one (it produced `<end>`) keeps its score and
    continues with padding.

    Args:
        step: `step(tokens (batch * k, 1) int32, states)` returns
            `(logits (batch * k, vocab), states, attention (batch * k, source)
            or None)`; the rows of source `i` are `i * k .. i * k + k - 1`.
        states: the decoder states after the encoder, already repeated per beam.
        batch, beam_width, max_length: ints.
        length_penalty: float, the GNMT exponent (0 ranks by log probability).
        take: `take(states, rows)` returns the states of `rows`, in that order.

    Returns:
        `(ids (batch, steps), attention (batch, steps, source) or None)`, the
        best hypothesis per source.
    """
    k = check_beam_width(beam_width)
    scores = np.full((batch, k), -np.inf)
    scores[:, 0] = 0.0  # one live beam at the start, so beams do not repeat
    lengths = np.zeros((batch, k))
    done = np.zeros((batch, k), bool)
    sequences = np.zeros((batch, k, 0), "int32")
    history = None
    tokens = np.full((batch * k, 1), START_ID, "int32")

    def penalty(length):
        return ((5.0 + length) / 6.0) ** length_penalty

    for _ in range(max_length):
        logits, states, weights = step(tokens, states)
        logp = ops.convert_to_numpy(ops.log_softmax(logits, axis=-1))
        logp = logp.reshape(batch, k, -1).astype("float64")
        vocab = logp.shape[-1]
        logp[done] = -np.inf
        logp[done, PAD_ID] = 0.0  # a finished hypothesis only continues with padding
        candidates = scores[:, :, None] + logp
        new_lengths = lengths + ~done
        ranked = candidates / penalty(new_lengths)[:, :, None]
        best = np.argsort(-ranked.reshape(batch, -1), axis=1, kind="stable")[:, :k]
        parent, token = best // vocab, (best % vocab).astype("int32")
        scores = np.take_along_axis(candidates.reshape(batch, -1), best, axis=1)
        lengths = np.take_along_axis(new_lengths, parent, axis=1)
        done = np.take_along_axis(done, parent, axis=1) | (token == END_ID)
        sequences = np.concatenate(
            [np.take_along_axis(sequences, parent[:, :, None], axis=1), token[:, :, None]],
            axis=2,
        )
        states = take(states, (np.arange(batch)[:, None] * k + parent).reshape(-1))
        if weights is not None:
            weights = ops.convert_to_numpy(weights).reshape(batch, k, 1, -1)
            history = weights if history is None else np.concatenate([history, weights], axis=2)
            # rows are still the parents' here: reorder the whole history to the children
            history = np.take_along_axis(history, parent[:, :, None, None], axis=1)
        tokens = token.reshape(-1, 1)
        if done.all():
            break
    winner = np.argmax(scores / penalty(lengths), axis=1)
    ids = sequences[np.arange(batch), winner]
    attention = None if history is None else history[np.arange(batch), winner]
    return ids, attention
