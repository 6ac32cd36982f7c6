"""Causal-LM generation as one TensorFlow graph: prefill, then a `tf.while_loop`.

`generate_in_graph` is what the SavedModel's `generate` and `generate_text`
signatures run: the whole KV-cached decoding loop inside the graph, so one
TF Serving request returns a whole continuation. It follows
`keras_recipes.llama.generate` step for step (prompts left-padded to the
same bucket, a key mask over the padding, the same sampler seeded with
`(seed, position)`), so greedy decoding returns exactly the tokens of
`model.generate`. It is not XLA-compiled (TF Serving runs XLA only when
started with `--xla_cpu_compilation_enabled`), so it holds no XLA op: the
prompt runs through the model with `cache_update=scatter_cache_update` (KV
caches written with a scatter, not the `XlaDynamicUpdateSlice` that the
layers' `keras.ops.slice_update` becomes), and each decoded token of a float32 model through
`FusedDecodeStep`, the same math in a fifth of the graph ops (368 against
1,668 non-constant nodes per step at the stories15M shape). XLA draws different
stateless random numbers than TensorFlow's kernels: sampled continuations
are reproducible for a seed and follow the same distribution and top-k
rule, but are not the same draws as `model.generate`'s.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from keras_recipes.causal_lm import takes_cache_update
from keras_recipes.layers.causal_self_attention import MASK_VALUE
from keras_recipes.llama.generate import PROMPT_MULTIPLE
from keras_recipes.llama.graph_ops import rms_norm, rope_tables, update_cache_slice
from keras_recipes.llama.sampling import sample_next


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
    model, token_ids, lengths, max_new_tokens, temperature, top_k, top_p, seed, jit_compile=False
):
    """KV-cached decoding of left-padded prompts inside one graph.

    Args:
        model: a causal LM (`keras_recipes.causal_lm`); a float32
            `LlamaModel` decodes through `FusedDecodeStep`.
        token_ids: int32 `(B, T)`, prompts left-padded with 0.
        lengths: int32 `(B,)`, the real length of each prompt.
        max_new_tokens, temperature, top_k, top_p, seed: scalar tensors
            (`keras_recipes.llama.sampling.sample_next`: top_k 0 and top_p
            outside (0, 1) switch those filters off).
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
    caches = model.init_caches(batch, context)
    controls = (temperature, top_k, top_p, seed)
    # Only the loop is (optionally) compiled: the prompt's length depends on
    # the request, and XLA wants static shapes. Without XLA, a model that
    # takes one writes its caches with a scatter, a plain TensorFlow op.
    plain_tf = {"cache_update": scatter_cache_update} if takes_cache_update(model) else {}
    extras = {} if jit_compile else plain_tf
    loop = tf.function(
        lambda *args: _decode_loop(model, *args, extras),
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
        first = sample_next(logits, padded, *controls)
        start = _write(tokens, padded, first)
        if not jit_compile and _fusable(model):
            step = FusedDecodeStep(model, kernel, key_mask)
            return _while_positions(
                step, start, step.time_major(new_caches), padded, total, controls, batch_axis=1
            )
        return loop(start, new_caches, padded, total, key_mask, controls, kernel)

    out = tf.cond(max_new_tokens > 0, run, lambda: tokens)
    return out[:, shift:total]


def _write(tokens, position, token):
    batch = tf.shape(tokens)[0]
    index = tf.stack([tf.range(batch), tf.fill([batch], position)], axis=1)
    return tf.tensor_scatter_nd_update(tokens, index, token)


def _decode_loop(model, tokens, caches, start, total, key_mask, controls, kernel, extras):
    """Feeds the token at each position from `start` and writes the next one."""

    def step(current, caches, position):
        return model.call_with_cache(
            current, caches, position, key_mask, output_kernel=kernel, **extras
        )

    return _while_positions(step, tokens, caches, start, total, controls)


def _while_positions(step, tokens, caches, start, total, controls, batch_axis=0):
    """`tf.while_loop` over positions `start .. total - 2`: feed one token, write the next.

    `step(current (B, 1), caches, position)` returns `(logits (B, vocab), caches)`;
    `batch_axis`: the caches' batch axis (1 for time-major caches).
    """

    def keep_going(position, tokens, caches):
        return position < total - 1

    def body(position, tokens, caches):
        current = tf.slice(tokens, [0, position], [-1, 1])
        logits, caches = step(current, caches, position)
        token = sample_next(logits, position + 1, *controls)
        return position + 1, _write(tokens, position + 1, token), caches

    def invariant(cache):  # the batch axis may vary
        return tf.TensorShape([None if i == batch_axis else n for i, n in enumerate(cache.shape)])

    _, tokens, _ = tf.while_loop(
        keep_going,
        body,
        (start, tokens, caches),
        shape_invariants=(
            tf.TensorShape([]),
            tf.TensorShape([None, tokens.shape[1]]),
            tf.nest.map_structure(invariant, caches),
        ),
    )
    return tokens


def _fusable(model) -> bool:
    """Whether `FusedDecodeStep` can run `model`: a LLaMA with float32 weights and math."""
    from keras_recipes.llama import LlamaModel

    return (
        isinstance(model, LlamaModel)
        and model.compute_dtype == "float32"
        and all(w.dtype == "float32" for w in model.weights)
    )


class FusedDecodeStep:
    """One decode step of a float32 `LlamaModel` in few, plain TensorFlow ops.

    TensorFlow's graph executor (TF Serving without XLA) pays a fixed cost
    per op, and at batch 1 a step of a small LLaMA is mostly small ops, so
    this step runs the model's math in as few of them as it can, on weights
    laid out once per request: the q, k, v projections as one matmul and
    w1, w3 as another (concatenated kernels); RoPE on queries and keys
    together as `x * cos + swap(x) * sin`, the signs in the `sin` table,
    the tables built for every position up front and the queries' 1/sqrt(hd)
    folded into them; the padding mask an additive bias built once per
    request; attention as products and sums over the slots written so far
    of the model's caches, transposed once per request to time-major
    `(S, B, kv_heads, head_dim)` (`time_major`: the slots are then a view)
    and each written in place by one strided-slice update. Greedy decoding
    returns `model.generate`'s tokens
    (tests/test_llama_graph.py checks the logits against `call_with_cache`).
    """

    def __init__(self, model, output_kernel, key_mask):
        cfg = model.config
        self.n_heads, self.n_kv, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.embeddings = tf.convert_to_tensor(model.tok_embeddings.embeddings)
        self.layers = []
        for block in model.blocks:
            attention, ffn = block.attention, block.feed_forward
            self.layers.append(
                (
                    _norm_weights(block.attention_norm),
                    tf.concat([attention.wq.kernel, attention.wk.kernel, attention.wv.kernel], 1),
                    tf.convert_to_tensor(attention.wo.kernel),
                    _norm_weights(block.ffn_norm),
                    tf.concat([ffn.w1.kernel, ffn.w3.kernel], 1),
                    tf.convert_to_tensor(ffn.w2.kernel),
                )
            )
        self.norm = _norm_weights(model.norm)
        self.output_kernel = output_kernel
        scale = [1.0 / math.sqrt(self.head_dim)] * self.n_heads + [1.0] * self.n_kv
        self.row_scale = tf.constant(scale)[:, None]
        rotary = model.blocks[0].attention.rotary
        self.rotate_half = rotary.convention == "rotate_half"
        self.cos, self.sin = rope_tables(
            cfg.head_dim, cfg.max_seq_len, rotary.rope_theta, rotary.scaling, rotary.convention
        )
        # 0 where a key may be attended, MASK_VALUE on left padding (exp() gives 0),
        # time-major like the caches: (S, B, 1, 1).
        self.padding_bias = tf.transpose(tf.where(key_mask, 0.0, MASK_VALUE))[:, :, None, None]

    @staticmethod
    def time_major(caches):
        """The model's `(B, S, kv, hd)` caches as this step reads them, `(S, B, kv, hd)`.

        Attention reads the first `position + 1` slots; slicing the leading
        axis of a tensor is a view in TensorFlow, slicing the second a copy.
        """
        return [tuple(tf.transpose(c, [1, 0, 2, 3]) for c in pair) for pair in caches]

    def __call__(self, current, caches, position):
        q_width, kv_width = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        x = tf.gather(self.embeddings, current[:, 0])  # (B, dim)
        # (heads + kv_heads, hd) each: the query rows also scale by 1/sqrt(hd).
        cos, sin = self.cos[position] * self.row_scale, self.sin[position] * self.row_scale
        # Attention reads the slots written so far (0 .. position), not the
        # whole context: without XLA a step's shapes may grow (at 1,024 slots,
        # reading every slot cost a 110M-parameter step half its time).
        visible = position + 1
        bias = self.padding_bias[:visible]
        begin = tf.stack([position, 0, 0, 0])
        end = begin + 1
        new_caches = []
        for (attention_norm, wqkv, wo, ffn_norm, w13, w2), (keys, values) in zip(
            self.layers, caches, strict=True
        ):
            qkv = tf.matmul(rms_norm(x, *attention_norm), wqkv)
            qk, v = tf.split(qkv, [q_width + kv_width, kv_width], axis=1)
            qk = tf.reshape(qk, [-1, self.n_heads + self.n_kv, self.head_dim])
            qk = qk * cos + self.swap(qk) * sin  # queries also scaled by 1/sqrt(hd)
            q, k = tf.split(qk, [self.n_heads, self.n_kv], axis=1)
            keys = update_cache_slice(keys, k[None], begin, end, axis=0)
            values = update_cache_slice(
                values, tf.reshape(v, [1, -1, self.n_kv, self.head_dim]), begin, end, axis=0
            )
            new_caches.append((keys, values))
            attended = self.attend(q, keys[:visible], values[:visible], bias)
            x = x + tf.matmul(attended, wo)
            gate, up = tf.split(tf.matmul(rms_norm(x, *ffn_norm), w13), 2, axis=1)
            x = x + tf.matmul(gate / (1.0 + tf.exp(-gate)) * up, w2)
        logits = tf.matmul(rms_norm(x, *self.norm), self.output_kernel)
        return logits, new_caches

    def attend(self, q, keys, values, bias):
        """Queries `(B, heads, hd)` over time-major `(S, B, kv, hd)` caches -> `(B, heads * hd)`.

        Products and sums rather than batched matmuls and `tf.nn.softmax`:
        at one query per head, those dispatch to oneDNN kernels that cost more
        than the math (and transpose the cache), while these read it in place.
        """
        if self.n_heads > self.n_kv:  # query heads in groups: (1, B, kv, groups, hd)
            q = tf.reshape(q, [1, -1, self.n_kv, self.n_heads // self.n_kv, self.head_dim])
            keys, values = tf.expand_dims(keys, 3), tf.expand_dims(values, 3)
        else:
            q = tf.expand_dims(q, 0)
            bias = tf.squeeze(bias, 3)
        scores = tf.reduce_sum(q * keys, axis=-1) + bias  # (S, B, kv[, groups])
        scores = tf.exp(scores - tf.reduce_max(scores, axis=0, keepdims=True))
        weights = scores / tf.reduce_sum(scores, axis=0, keepdims=True)
        attended = tf.reduce_sum(tf.expand_dims(weights, -1) * values, axis=0)
        return tf.reshape(attended, [-1, self.n_heads * self.head_dim])

    def swap(self, x):
        """The partner of each rotated feature: pairs `(0, 1), ...` or halves."""
        if self.rotate_half:
            halves = tf.reshape(x, [-1, 2, self.head_dim // 2])
            return tf.reshape(tf.reverse(halves, [1]), [-1, *x.shape[1:]])
        pairs = tf.reshape(x, [-1, self.head_dim // 2, 2])
        return tf.reshape(tf.reverse(pairs, [2]), [-1, *x.shape[1:]])


def _norm_weights(norm):
    return tf.convert_to_tensor(norm.scale), norm.epsilon


def weights_nbytes(model) -> int:
    """Bytes of the model's distinct weights (what a SavedModel should store once)."""
    seen, total = set(), 0
    for variable in model.weights:
        key = id(getattr(variable, "value", variable))
        if key not in seen:
            seen.add(key)
            total += int(np.prod(variable.shape)) * np.dtype(variable.dtype).itemsize
    return total
