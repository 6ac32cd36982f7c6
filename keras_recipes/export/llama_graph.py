"""LLaMA generation as one TensorFlow graph: prefill, then a `tf.while_loop`.

`generate_in_graph` is what the SavedModel's `generate` and `generate_text`
signatures run: the whole KV-cached decoding loop inside the graph, so one
TF Serving request returns a whole continuation. It follows
`keras_recipes.llama.generate` step for step (prompts left-padded to the
same bucket, a key mask over the padding, the same sampler seeded with
`(seed, position)`), so greedy decoding returns exactly the tokens of
`model.generate`. It is not XLA-compiled (TF Serving runs XLA only when
started with `--xla_cpu_compilation_enabled`), so it holds no XLA op: the
model runs with `runtime="tf"`: KV caches written with a scatter, not the
`XlaDynamicUpdateSlice` that `keras.ops.slice_update` becomes, and
attention that does not transpose the cache at every step. XLA draws different
stateless random numbers than TensorFlow's kernels: sampled continuations
are reproducible for a seed and follow the same distribution and top-k
rule, but are not the same draws as `model.generate`'s.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_recipes.llama.generate import PROMPT_MULTIPLE, sample_logits


def sample_next(logits, position, temperature, top_k, seed):
    """Next ids `(B,)` from float32 logits `(B, vocab)`; the arguments are tensors.

    `temperature == 0` is greedy; `top_k == 0` samples from the whole
    vocabulary. The draw is `model.generate`'s own sampler, seeded with
    `(seed, position)`: the same seed gives the same tokens.
    """
    vocab = tf.shape(logits)[-1]
    top_k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)

    def greedy():
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    def sampled():
        return sample_logits(logits, position, temperature, top_k, tf.constant(1.0), seed, False)

    return tf.cond(temperature > 0, sampled, greedy)


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


def generate_in_graph(
    model, token_ids, lengths, max_new_tokens, temperature, top_k, seed, jit_compile=False
):
    """KV-cached decoding of left-padded prompts inside one graph.

    Args:
        model: a `LlamaModel`.
        token_ids: int32 `(B, T)`, prompts left-padded with 0.
        lengths: int32 `(B,)`, the real length of each prompt.
        max_new_tokens, temperature, top_k, seed: scalar tensors.
        jit_compile: bool. XLA-compile the decoding loop (TF Serving then
            needs `--xla_cpu_compilation_enabled=true`).

    Returns:
        int32 `(B, T + max_new_tokens)`, prompts included.
    """
    context = model.config.max_seq_len
    longest = tf.shape(token_ids)[1]
    tf.debugging.assert_less_equal(
        longest + max_new_tokens,
        context,
        message=f"generate: prompt length + max_new_tokens exceeds the context ({context}); "
        "shorten the prompt or ask for fewer tokens",
    )
    tf.debugging.assert_greater_equal(
        max_new_tokens, 0, message="generate: max_new_tokens must be >= 0"
    )
    tf.debugging.assert_greater_equal(
        temperature, 0.0, message="generate: temperature must be >= 0 (0 = greedy)"
    )
    cfg = model.config
    batch = tf.shape(token_ids)[0]
    # The same left-padded bucket as model.generate, so the sampling seeds match.
    bucket = (longest + PROMPT_MULTIPLE - 1) // PROMPT_MULTIPLE * PROMPT_MULTIPLE
    padded = tf.maximum(longest, tf.minimum(bucket, context - max_new_tokens))
    total = padded + max_new_tokens
    shift = padded - longest
    tokens = tf.pad(token_ids, [[0, 0], [shift, context - padded]])
    n_pad = padded - lengths
    key_mask = tf.range(context)[None, :] >= n_pad[:, None]
    seed = tf.math.floormod(seed, 2**31 - 1)
    cache_shape = tf.stack([batch, context, cfg.n_kv_heads, cfg.head_dim])
    dtype = model.compute_dtype
    caches = [(tf.zeros(cache_shape, dtype), tf.zeros(cache_shape, dtype)) for _ in model.blocks]
    # Only the loop is (optionally) compiled: the prompt's length depends on
    # the request, and XLA wants static shapes.
    runtime = "xla" if jit_compile else "tf"
    loop = tf.function(
        lambda *args: _decode_loop(model, *args, runtime),
        jit_compile=jit_compile,
        autograph=False,
    )

    def run():
        # Transposed once per request, not at every step (tied embeddings).
        kernel = tf.convert_to_tensor(model.output_kernel())
        # The prefill is never compiled: the prompt's length varies.
        logits, new_caches = model.call_with_cache(
            tokens[:, :padded], caches, 0, key_mask, output_kernel=kernel, runtime="tf"
        )
        first = sample_next(logits, padded, temperature, top_k, seed)
        start = _write(tokens, padded, first)
        return loop(start, new_caches, padded, total, key_mask, temperature, top_k, seed, kernel)

    out = tf.cond(max_new_tokens > 0, run, lambda: tokens)
    return out[:, shift:total]


def _write(tokens, position, token):
    batch = tf.shape(tokens)[0]
    index = tf.stack([tf.range(batch), tf.fill([batch], position)], axis=1)
    return tf.tensor_scatter_nd_update(tokens, index, token)


def _decode_loop(
    model, tokens, caches, start, total, key_mask, temperature, top_k, seed, kernel, runtime
):
    """Feeds the token at each position from `start` and writes the next one."""
    cfg = model.config

    def keep_going(position, tokens, caches):
        return position < total - 1

    def step(position, tokens, caches):
        current = tf.slice(tokens, [0, position], [-1, 1])
        logits, caches = model.call_with_cache(
            current, caches, position, key_mask, output_kernel=kernel, runtime=runtime
        )
        token = sample_next(logits, position + 1, temperature, top_k, seed)
        return position + 1, _write(tokens, position + 1, token), caches

    shape = tf.TensorShape([None, cfg.max_seq_len, cfg.n_kv_heads, cfg.head_dim])
    _, tokens, _ = tf.while_loop(
        keep_going,
        step,
        (start, tokens, caches),
        shape_invariants=(
            tf.TensorShape([]),
            tf.TensorShape([None, cfg.max_seq_len]),
            [(shape, shape) for _ in model.blocks],
        ),
    )
    return tokens


def weights_nbytes(model) -> int:
    """Bytes of the model's distinct weights (what a SavedModel should store once)."""
    seen, total = set(), 0
    for variable in model.weights:
        key = id(getattr(variable, "value", variable))
        if key not in seen:
            seen.add(key)
            total += int(np.prod(variable.shape)) * np.dtype(variable.dtype).itemsize
    return total
