"""One sampler for every generation path: greedy, temperature, top-k, top-p, a seed.

Keras `generate` (XLA), the SavedModel's in-graph loop (TF Serving) and the
TFLite runner all pick tokens by the same rule, so a request gets the same
controls wherever it runs:

1. `temperature == 0` is greedy (argmax).
2. Otherwise the logits are divided by the temperature, only the `top_k`
   likeliest tokens are kept (all, when top-k is off), and of those the
   smallest set whose probability reaches `top_p` (always at least one;
   measured within the top-k, as Hugging Face does).
3. A token is drawn from what is left, seeded with `(seed, position)`, so
   one seed gives one continuation.

`sample_logits` (static greedy flag, for XLA-compiled loops) and
`sample_next` (every control a tensor, for graphs served as they are) are
the TensorFlow forms; `sample_numpy` is the same rule on numpy logits for
runtimes without TensorFlow (LiteRT). XLA, TensorFlow's kernels and numpy
draw different random numbers: each path is reproducible for a seed and
follows the same distribution, but the draws of one path are not another's.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def sample_logits(logits, position, temperature, top_k, top_p, seed, greedy: bool):
    """Next token ids `(B,)` from float32 logits `(B, vocab)`.

    `greedy` is static (greedy functions stay small and compile fast); the
    sampling settings are tensors (`top_k` in `[1, vocab]`, `top_p` in
    `(0, 1]`), so one compiled function serves every temperature / top-k /
    top-p: top-k and top-p become one threshold on the sorted logits.
    """
    if greedy:
        return tf.argmax(logits, axis=-1, output_type=tf.int32)
    scaled = logits / temperature
    ranked = tf.sort(scaled, axis=-1, direction="DESCENDING")
    ranked = tf.where(tf.range(tf.shape(ranked)[1]) < top_k, ranked, -np.inf)
    mass_before = tf.cumsum(tf.nn.softmax(ranked, axis=-1), axis=-1, exclusive=True)
    keep = tf.reduce_sum(tf.cast(mass_before < top_p, tf.int32), axis=-1)
    keep = tf.clip_by_value(keep, 1, top_k)
    threshold = tf.gather(ranked, keep - 1, axis=1, batch_dims=1)[:, None]
    candidates = tf.where(scaled >= threshold, scaled, -np.inf)
    draw_seed = tf.stack([seed, tf.cast(position, tf.int32)])
    return tf.random.stateless_categorical(candidates, 1, draw_seed, dtype=tf.int32)[:, 0]


def sample_next(logits, position, temperature, top_k, top_p, seed):
    """`sample_logits` with every control a tensor, as a served request sends them.

    Each control (and `position`) is a scalar for every row or one value per
    row `(B,)`, so the rows of one batch may use different settings: a row
    with `temperature == 0` is greedy; `top_k <= 0` and `top_p` outside
    `(0, 1)` switch that filter off. Each row draws with its own
    `(seed, position)`, one row at a time, so a row's token depends only on
    its logits and its own controls: the same row gets the same token alone
    or batched with others.
    """
    batch, vocab = tf.shape(logits)[0], tf.shape(logits)[-1]

    def per_row(value, dtype):
        return tf.broadcast_to(tf.cast(value, dtype), [batch])

    temperature = per_row(temperature, tf.float32)
    top_k, seed = per_row(top_k, tf.int32), per_row(seed, tf.int32)
    position = per_row(position, tf.int32)
    top_p = per_row(top_p, tf.float32)
    top_k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
    top_p = tf.where((top_p > 0.0) & (top_p < 1.0), top_p, 1.0)
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)

    def sampled():
        scaled = logits / tf.where(temperature > 0, temperature, 1.0)[:, None]
        ranked = tf.sort(scaled, axis=-1, direction="DESCENDING")
        ranked = tf.where(tf.range(vocab)[None, :] < top_k[:, None], ranked, -np.inf)
        mass_before = tf.cumsum(tf.nn.softmax(ranked, axis=-1), axis=-1, exclusive=True)
        keep = tf.reduce_sum(tf.cast(mass_before < top_p[:, None], tf.int32), axis=-1)
        keep = tf.clip_by_value(keep, 1, top_k)
        threshold = tf.gather(ranked, keep - 1, axis=1, batch_dims=1)[:, None]
        candidates = tf.where(scaled >= threshold, scaled, -np.inf)

        def draw(row):
            row_logits, row_seed, row_position = row
            draw_seed = tf.stack([row_seed, row_position])
            return tf.random.stateless_categorical(row_logits[None], 1, draw_seed, dtype=tf.int32)[
                0, 0
            ]

        draws = tf.map_fn(draw, (candidates, seed, position), fn_output_signature=tf.int32)
        return tf.where(temperature > 0, draws, greedy)

    return tf.cond(tf.reduce_any(temperature > 0), sampled, lambda: greedy)


def sample_numpy(logits, temperature: float, top_k: int | None, top_p: float | None, rng) -> int:
    """The same rule on one row of numpy logits `(vocab,)`; `rng` a `np.random.Generator`."""
    if temperature == 0:
        return int(np.argmax(logits))
    scaled = np.asarray(logits, np.float64) / temperature
    order = np.argsort(-scaled, kind="stable")
    ranked = scaled[order]
    keep = scaled.size if not top_k else min(int(top_k), scaled.size)
    if top_p is not None and 0 < top_p < 1:
        probs = np.exp(ranked[:keep] - ranked[0])
        mass_before = np.cumsum(probs / probs.sum()) - probs / probs.sum()
        keep = int(np.clip((mass_before < top_p).sum(), 1, keep))
    candidates = np.where(scaled >= ranked[keep - 1], scaled, -np.inf)
    probs = np.exp(candidates - candidates.max())
    return int(rng.choice(scaled.size, p=probs / probs.sum()))
