"""Causal-LM generation as one TensorFlow graph: prefill, then a `tf.while_loop`.

`generate_in_graph` is what the SavedModel's `generate` and `generate_text`
signatures run: the whole KV-cached decoding loop inside the graph, so one
TF Serving request returns a whole continuation. It follows
`keras_recipes.causal_lm.generation` step for step (prompts left-padded to the
same bucket, a key mask over the padding, the same sampler seeded with
`(seed, position)`, the same stop ids), so greedy decoding returns exactly
the tokens of `model.generate`. It is not XLA-compiled (TF Serving runs XLA
only when started with `--xla_cpu_compilation_enabled`), so it holds no XLA
op: the prompt runs through the model with `cache_update=scatter_cache_update`
(KV caches written with a scatter, not the `XlaDynamicUpdateSlice` that the
layers' `keras.ops.slice_update` becomes), and each decoded token through the
family's fused step when it offers one (the optional protocol hook
`model.fused_decode_step(output_kernel, key_mask)`, e.g. LLaMA's
`keras_recipes.llama.fused_decode.FusedDecodeStep`), or `call_with_cache`
otherwise. XLA draws different stateless random numbers than TensorFlow's
kernels: sampled continuations are reproducible for a seed and follow the
same distribution and top-k rule, but are not the same draws as
`model.generate`'s.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_recipes.causal_lm.generation import PROMPT_MULTIPLE
from keras_recipes.causal_lm.protocol import takes_cache_update
from keras_recipes.causal_lm.sampling import sample_next


def left_pad(ragged_ids, pad_id: int = 0):
    """A ragged `(B, None)` int32 tensor -> dense `(B, T)`, padding on the left."""
    lengths = tf.cast(ragged_ids.row_lengths(), tf.int32)
    width = tf.reduce_max(lengths)
    rows = tf.cast(ragged_ids.value_rowids(), tf.int32)
    starts = tf.cast(ragged_ids.row_starts(), tf.int32)
    within = tf.range(tf.size(ragged_ids.values, out_type=tf.int32)) - tf.gather(starts, rows)
    columns = width - tf.gather(lengths, rows) + within
    indices = tf.stack([rows, columns], axis=1)
    shape = tf.stack([tf.shape(lengths)[0], width])
    dense = tf.scatter_nd(indices, ragged_ids.values - pad_id, shape) + pad_id
    return dense, lengths


def scatter_cache_update(cache, values, start_index):
    """`cache[:, start_index : start_index + T] = values` with a scatter.

    The cache write of the graphs run by plain TensorFlow kernels, passed to
    `call_with_cache(cache_update=...)`: the layers' dynamic-update-slice is
    `XlaDynamicUpdateSlice` in a TensorFlow graph, which a stock TF Serving
    refuses unless started with `--xla_cpu_compilation_enabled`.
    `TensorScatterUpdate` is a core op.
    """
    values = tf.cast(values, cache.dtype)
    batch, steps = tf.shape(values)[0], tf.shape(values)[1]
    rows = tf.repeat(tf.range(batch), steps)
    slots = tf.tile(tf.range(steps) + tf.cast(start_index, tf.int32), [batch])
    flat = tf.reshape(values, tf.concat([[batch * steps], tf.shape(values)[2:]], 0))
    return tf.tensor_scatter_nd_update(cache, tf.stack([rows, slots], axis=1), flat)


def generate_in_graph(
    model,
    token_ids,
    lengths,
    max_new_tokens,
    temperature,
    top_k,
    top_p,
    seed,
    jit_compile=False,
    stop_ids=(),
):
    """KV-cached decoding of left-padded prompts inside one graph.

    Args:
        model: a causal LM (`keras_recipes.causal_lm.protocol`); one with the
            `fused_decode_step` hook decodes through the step it returns.
        token_ids: int32 `(B, T)`, prompts left-padded with 0.
        lengths: int32 `(B,)`, the real length of each prompt.
        max_new_tokens, temperature, top_k, top_p, seed: each a scalar tensor
            for every row or one value per row `(B,)`
            (`keras_recipes.causal_lm.sampling.sample_next`: temperature 0 is
            greedy, top_k 0 and top_p outside (0, 1) switch those filters
            off). The loop runs to the largest `max_new_tokens`; a row that
            has its own count gets 0 from then on. A row draws with its own
            seed at the position it would have alone (its own prompt, its own
            `max_new_tokens`), so it gets the same tokens alone or batched.
        jit_compile: bool. XLA-compile the decoding loop (TF Serving then
            needs `--xla_cpu_compilation_enabled=true`).
        stop_ids: tuple of ints, baked into the graph. A sequence stops after
            producing one (later positions hold 0), and the loop ends when
            every sequence has stopped.

    Returns:
        int32 `(B, T + max(max_new_tokens))`, prompts included.
    """
    context = model.config.max_seq_len
    batch, longest = tf.shape(token_ids)[0], tf.shape(token_ids)[1]

    def per_row(value, dtype):
        return tf.broadcast_to(tf.cast(value, dtype), [batch])

    budgets = per_row(max_new_tokens, tf.int32)
    temperature = per_row(temperature, tf.float32)
    top_k, top_p = per_row(top_k, tf.int32), per_row(top_p, tf.float32)
    seed = per_row(seed, tf.int32)
    most = tf.reduce_max(tf.concat([budgets, [0]], 0))
    tf.debugging.assert_less_equal(
        longest + most,
        context,
        message=f"generate: prompt length + max_new_tokens exceeds the context ({context}); "
        "shorten the prompt or ask for fewer tokens",
    )
    tf.debugging.assert_greater_equal(budgets, 0, message="generate: max_new_tokens must be >= 0")
    tf.debugging.assert_greater_equal(
        temperature, 0.0, message="generate: temperature must be >= 0 (0 = greedy)"
    )
    # The same left-padded bucket as model.generate, so the sampling seeds match.
    padded = _bucket(longest, most, context)
    total = padded + most
    shift = padded - longest
    tokens = tf.pad(token_ids, [[0, 0], [shift, context - padded]])
    n_pad = padded - lengths
    key_mask = tf.range(context)[None, :] >= n_pad[:, None]
    # Where each row's tokens would sit alone: its draws are seeded there.
    seed_offset = _bucket(lengths, budgets, context) - padded
    seed = tf.math.floormod(seed, 2**31 - 1)
    caches = model.init_caches(batch, context)
    controls = (temperature, top_k, top_p, seed)
    # Only the loop is (optionally) compiled: the prompt's length depends on
    # the request, and XLA wants static shapes. Without XLA, a model that
    # takes one writes its caches with a scatter, a plain TensorFlow op.
    plain_tf = {"cache_update": scatter_cache_update} if takes_cache_update(model) else {}
    extras = {} if jit_compile else plain_tf
    rows = (budgets, seed_offset)
    loop = tf.function(
        lambda *args: _decode_loop(model, *args, extras, stop_ids),
        jit_compile=jit_compile,
        autograph=False,
    )

    def run():
        # Transposed once per request, not at every step (tied embeddings).
        kernel = tf.convert_to_tensor(model.output_kernel())
        # The prefill is never compiled: the prompt's length varies.
        logits, new_caches = model.call_with_cache(
            tokens[:, :padded], caches, 0, key_mask, output_kernel=kernel, **plain_tf
        )
        first = sample_next(logits, padded + seed_offset, *controls)
        start = _write(tokens, padded, tf.where(budgets > 0, first, 0))
        fused = None if jit_compile else fused_step(model, kernel, key_mask)
        if fused is not None:
            return _while_positions(
                fused,
                start,
                fused.loop_caches(new_caches),
                padded,
                total,
                controls,
                rows,
                stop_ids,
                batch_axis=fused.batch_axis,
            )
        return loop(start, new_caches, padded, total, key_mask, controls, rows, kernel)

    out = tf.cond(most > 0, run, lambda: tokens)
    return out[:, shift:total]


def _bucket(longest, max_new_tokens, context):
    """Where `model.generate` starts decoding: the prompt rounded up to `PROMPT_MULTIPLE`,
    as far as the context leaves room for `max_new_tokens`."""
    bucket = (longest + PROMPT_MULTIPLE - 1) // PROMPT_MULTIPLE * PROMPT_MULTIPLE
    return tf.maximum(longest, tf.minimum(bucket, context - max_new_tokens))


def _write(tokens, position, token):
    batch = tf.shape(tokens)[0]
    index = tf.stack([tf.range(batch), tf.fill([batch], position)], axis=1)
    return tf.tensor_scatter_nd_update(tokens, index, token)


def _decode_loop(
    model, tokens, caches, start, total, key_mask, controls, rows, kernel, extras, stop_ids
):
    """Feeds the token at each position from `start` and writes the next one."""

    def step(current, caches, position):
        return model.call_with_cache(
            current, caches, position, key_mask, output_kernel=kernel, **extras
        )

    return _while_positions(step, tokens, caches, start, total, controls, rows, stop_ids)


def _while_positions(step, tokens, caches, start, total, controls, rows, stop_ids, batch_axis=0):
    """`tf.while_loop` over positions `start .. total - 2`: feed one token, write the next.

    `step(current (B, 1), caches, position)` returns `(logits (B, vocab), caches)`;
    `rows = (budgets, seed_offset)`, each `(B,)`: a row that has produced
    one of `stop_ids` or its `budget` of tokens (the first is at `start`)
    gets 0 from then on, and the loop ends when every row has; a row's
    draws are seeded at `position + seed_offset`. `batch_axis`: the caches'
    batch axis (1 for time-major caches).
    """
    budgets, seed_offset = rows
    stops = tf.constant(stop_ids or (-1,), tf.int32)

    def stopped(token):
        return tf.reduce_any(tf.equal(token[:, None], stops[None, :]), axis=1)

    def keep_going(position, tokens, caches, done):
        return tf.logical_and(position < total - 1, tf.logical_not(tf.reduce_all(done)))

    def body(position, tokens, caches, done):
        current = tf.slice(tokens, [0, position], [-1, 1])
        logits, caches = step(current, caches, position)
        token = sample_next(logits, position + 1 + seed_offset, *controls)
        token = tf.where(done, 0, token)
        tokens = _write(tokens, position + 1, token)
        finished = budgets <= position + 2 - start  # tokens written so far
        return position + 1, tokens, caches, done | stopped(token) | finished

    def invariant(cache):  # the batch axis may vary
        return tf.TensorShape([None if i == batch_axis else n for i, n in enumerate(cache.shape)])

    done = stopped(tokens[:, start]) | (budgets <= 1)
    _, tokens, _, _ = tf.while_loop(
        keep_going,
        body,
        (start, tokens, caches, done),
        shape_invariants=(
            tf.TensorShape([]),
            tf.TensorShape([None, tokens.shape[1]]),
            tf.nest.map_structure(invariant, caches),
            tf.TensorShape([None]),
        ),
    )
    return tokens


def fused_step(model, output_kernel, key_mask):
    """The family's fused decode step for `model`, or None (decode through `call_with_cache`).

    The optional protocol hook `model.fused_decode_step(output_kernel, key_mask)`
    returns None when it cannot run this model (e.g. quantized weights), or a
    callable `step(current (B, 1), caches, position) -> (logits (B, vocab), caches)`
    with `loop_caches(caches)` (the prefill's caches in the layout the step
    reads) and `batch_axis` (their batch axis).
    """
    hook = getattr(model, "fused_decode_step", None)
    return None if hook is None else hook(output_kernel, key_mask)


def weights_nbytes(model) -> int:
    """Bytes of the model's distinct weights (what a SavedModel should store once)."""
    seen, total = set(), 0
    for variable in model.weights:
        key = id(getattr(variable, "value", variable))
        if key not in seen:
            seen.add(key)
            total += int(np.prod(variable.shape)) * np.dtype(variable.dtype).itemsize
    return total
