"""KV-cached text generation for causal LMs: prefill once, then one token per step.

How it runs (TensorFlow backend, XLA-compiled):

1. Prompts are left-padded to a common length (rounded up to a multiple of
   16 so that nearby prompt lengths share one compiled prefill); padding is
   masked out of attention. RoPE depends only on relative positions, so the
   shift does not change the result.
2. *Prefill*: one compiled pass over the whole prompt fills the KV caches
   and samples the first new token.
3. *Decode*: a compiled `tf.while_loop` feeds one token per step against a
   fixed-size cache. The cache grows through a few fixed windows (256,
   512, 1024, ... up to the context); each window is one compiled loop that
   attends only over that window, so early tokens do not pay for a long
   context, and per-token time stays flat within a window. (Smaller windows
   would cost more XLA compilations, i.e. first-call latency, than they
   save in attention at the sizes measured.) The loop stops early when every
   sequence has produced `eos_id`.
4. *Streaming* (`callback=`): the first new token is handed over right
   after the prefill, then the same compiled loop runs in chunks, each a
   smaller `stop` (a tensor argument, so no retracing). A chunk holds as
   many tokens as the previous call's time per token says fit in
   `STREAM_INTERVAL` seconds (at least one), or more where a call's fixed
   cost, timed on a call that runs no step (once a minute), would be over
   `OVERHEAD_SHARE` of that (`stream_chunk`); a chunk that would leave
   fewer tokens than itself in its window takes them too. A large model
   thus streams token by token, while a small one, whose tokens come
   faster than anyone reads them, pays for only a few extra calls.

Every compiled function is traced once per (batch size, prompt bucket or
window, greedy or sampling) and reused across calls and sampler settings: `generate_trace_count(model)`
tells how many traces have happened. Tracing runs without autograph (the
loops are written as `tf.while_loop`), which halves it. A new process pays
the XLA compilation only once per machine: the compiled code is kept in
XLA's persistent cache (`keras_recipes.xla_cache`), and each trace starts
from aligned TensorFlow function names so that the cache's keys match.
"""

import time

import numpy as np
import tensorflow as tf

from keras_recipes._compat import align_function_uids
from keras_recipes.causal_lm.protocol import check_causal_lm
from keras_recipes.causal_lm.sampling import sample_logits
from keras_recipes.causal_lm.settings import GenerationConfig

PROMPT_MULTIPLE = 16
MIN_WINDOW = 256
# Streaming: seconds of decoding between two callbacks once tokens come that
# fast (faster than anyone reads), and the most of a chunk's time a compiled
# call's fixed cost may take (about a millisecond on an idle core, tens on a
# crowded one: chunks then grow to keep within it).
STREAM_INTERVAL = 0.1
OVERHEAD_SHARE = 0.03
OVERHEAD_MAX_AGE = 60.0  # seconds a timed call cost is trusted before it is timed again


class _Compiled:
    """The compiled prefill / decode functions of one model, by static key."""

    def __init__(self):
        self.functions = {}
        self.traces = 0
        self.call_overhead = None  # (seconds a no-step decode call took, when it was timed)


def generate_trace_count(model) -> int:
    """How many times `model`'s generation functions have been traced."""
    state = model.__dict__.get("_generate_compiled")
    return 0 if state is None else state.traces


def _compiled(model) -> _Compiled:
    state = model.__dict__.get("_generate_compiled")
    if state is None:
        state = _Compiled()
        object.__setattr__(model, "_generate_compiled", state)
    return state


def windows_for(context: int) -> list[int]:
    """The cache sizes decoding moves through: 256, 512, ... capped at `context`."""
    sizes, size = [], MIN_WINDOW
    while size < context:
        sizes.append(size)
        size *= 2
    return sizes + [context]


def grow_cache(cache, length: int):
    """A `(batch, S, ...)` cache zero-padded along its sequence axis to `length`."""
    grow = [[0, 0], [0, length - cache.shape[1]]] + [[0, 0]] * (len(cache.shape) - 2)
    return tf.pad(cache, grow)


def stream_chunk(call_seconds: float, steps: int, overhead: float = 0.0) -> int:
    """How many tokens the next streaming chunk decodes.

    A chunk lasts about `STREAM_INTERVAL` seconds, or longer where a
    compiled call's fixed cost (`overhead`) would otherwise exceed
    `OVERHEAD_SHARE` of it: about `max(STREAM_INTERVAL, overhead /
    OVERHEAD_SHARE)` seconds of steps.

    Args:
        call_seconds: wall time of the last compiled call (the prefill's
            before the first chunk: a prefill reads every weight as a step
            does, so it bounds a step from above).
        steps: the tokens that call produced.
        overhead: seconds a call costs that runs no step (timed at most
            once every `OVERHEAD_MAX_AGE` seconds per model); a step's own time is taken as `call_seconds -
            overhead` (at least half of `call_seconds`) over `steps`.

    Returns:
        An int >= 1.

    Examples:

    >>> stream_chunk(0.5, 1)  # a slow model: one token a chunk
    1
    >>> stream_chunk(0.2, 100)  # 2 ms a token: fifty fit in STREAM_INTERVAL
    50
    >>> stream_chunk(0.13, 100, overhead=0.03)  # a costly call: chunks of 1 s
    1000
    """
    step = max(call_seconds - overhead, call_seconds / 2) / max(steps, 1)
    interval = max(STREAM_INTERVAL, overhead / OVERHEAD_SHARE)
    return max(1, int(interval / max(step, 1e-9)))


def check_prompts(
    prompt_ids, settings: GenerationConfig, vocab_size: int, context: int, who: str = "generate"
) -> list[list[int]]:
    """The prompts as lists of ids, checked: ids in `[0, vocab_size)`, length within `context`.

    Every generation path (Keras, quantized, TFLite) checks its prompts here.
    """
    if isinstance(prompt_ids, np.ndarray) or hasattr(prompt_ids, "shape"):
        array = np.asarray(prompt_ids)
        if array.ndim == 1:
            array = array[None]
        if array.ndim != 2:
            raise ValueError(
                f"{who}: prompt_ids must be (batch, length) ids or a list of lists, "
                f"got shape {array.shape}."
            )
        prompts = [list(row) for row in array]
    else:
        prompts = list(prompt_ids)
        if prompts and not isinstance(prompts[0], (list, tuple, np.ndarray)):
            prompts = [prompts]  # one prompt given as a flat list
        prompts = [list(p) for p in prompts]
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError(f"{who}: empty prompt; give at least one token id per prompt (e.g. BOS).")
    for i, prompt in enumerate(prompts):
        ids = np.asarray(prompt)
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"{who}: prompt {i} holds non-integer values ({ids.dtype}).")
        bad = ids[(ids < 0) | (ids >= vocab_size)]
        if bad.size:
            raise ValueError(
                f"{who}: prompt {i} has token id {int(bad[0])} outside [0, {vocab_size}) "
                "(the model's vocab_size); check the tokenizer matches the model."
            )
    max_new_tokens = settings.max_new_tokens
    longest = max(len(p) for p in prompts)
    if longest + max_new_tokens > context:
        raise ValueError(
            f"{who}: prompt length {longest} + max_new_tokens {max_new_tokens} = "
            f"{longest + max_new_tokens} exceeds the context max_seq_len={context}; "
            "shorten the prompt or ask for fewer tokens."
        )
    settings.check_ids(vocab_size, who)
    return prompts


def _make_prefill(model, state, greedy):
    def prefill(ids, key_mask, caches, temperature, top_k, top_p, seed):
        state.traces += 1
        # The output matrix is used as stored: for one position XLA multiplies
        # by the transposed embeddings without copying them.
        logits, caches = model.call_with_cache(ids, caches, 0, key_mask)
        position = tf.shape(ids)[1]
        return sample_logits(logits, position, temperature, top_k, top_p, seed, greedy), caches

    return tf.function(prefill, jit_compile=True, reduce_retracing=False, autograph=False)


def _make_decode(model, state, greedy):
    def decode(
        tokens,
        key_mask,
        caches,
        output_kernel,
        done,
        start,
        stop,
        temperature,
        top_k,
        top_p,
        seed,
        stop_ids,
        pad_id,
    ):
        state.traces += 1

        def keep_going(position, tokens, done, caches):
            return tf.logical_and(position < stop, tf.logical_not(tf.reduce_all(done)))

        def step(position, tokens, done, caches):
            current = tf.slice(tokens, [0, position], [-1, 1])
            logits, caches = model.call_with_cache(
                current, caches, position, key_mask, output_kernel
            )
            token = sample_logits(logits, position + 1, temperature, top_k, top_p, seed, greedy)
            token = tf.where(done, pad_id, token)
            tokens = tf.tensor_scatter_nd_update(
                tokens,
                tf.stack(
                    [tf.range(tf.shape(tokens)[0]), tf.fill(tf.shape(token), position + 1)], 1
                ),
                token,
            )
            stopped = tf.reduce_any(tf.equal(token[:, None], stop_ids[None, :]), axis=1)
            return position + 1, tokens, tf.logical_or(done, stopped), caches

        position, tokens, done, caches = tf.while_loop(
            keep_going, step, (start, tokens, done, caches)
        )
        return tokens, done, caches, position

    return tf.function(decode, jit_compile=True, reduce_retracing=False, autograph=False)


def generate(
    model,
    prompt_ids,
    max_new_tokens: int | None = None,
    *,
    settings: GenerationConfig | None = None,
    callback=None,
    **controls,
) -> np.ndarray:
    """Continue token-id prompts with a causal LM, KV-cached.

    Written once against the causal-LM protocol (`keras_recipes.causal_lm.protocol`):
    any decoder with `call_with_cache`, `init_caches`, `output_kernel` and a
    config with `vocab_size` / `max_seq_len` gets it.

    Args:
        model: a causal LM: a `LlamaModel`, a `GemmaModel`, or any model
            following the protocol.
        prompt_ids: int array `(batch, length)`, one flat list of ids, or a
            list of lists of different lengths (left-padded internally).
        max_new_tokens: int >= 0, tokens to add to every prompt (default:
            the settings', 64).
        settings: a `GenerationConfig`, or None for the defaults.
        callback: callable or None. For streaming: called with the np.int32
            `(batch, longest_prompt + n)` ids so far (prompts included, laid
            out as the result), first right after the prefill with the first
            new token (`n == 1`), then once per decoded chunk with all of the
            chunk's new tokens at once (`n` grows by one or more per call;
            the last call's ids equal the result). Chunks are sized so that
            each takes about `STREAM_INTERVAL` seconds (see `stream_chunk`),
            by re-running the same compiled loop with an earlier stop (no
            retracing); the ids are those of a call without a callback.
        **controls: `GenerationConfig` fields that replace the settings'
            (`temperature`, `top_k`, `top_p`, `seed`, `stop_ids`, `pad_id`),
            and `eos_id` (one more stop id).

    Returns:
        np.int32 array `(batch, longest_prompt + max_new_tokens)`, prompts
        included (shorter ones left-padded with `pad_id`; positions after a
        stop id hold `pad_id`).

    Examples:

    >>> from keras_recipes.llama import build_llama
    >>> model = build_llama("tiny")
    >>> generate(model, [[1, 2, 3], [1, 7]], max_new_tokens=4).shape
    (2, 7)
    >>> generate(model, [[1, 2]], 4, temperature=0.8, top_k=5, seed=0).shape
    (1, 6)
    """
    if max_new_tokens is not None:
        controls["max_new_tokens"] = max_new_tokens
    settings = GenerationConfig.of(settings, **controls)
    check_causal_lm(model, "generate")
    prompts = check_prompts(prompt_ids, settings, model.config.vocab_size, model.config.max_seq_len)
    max_new_tokens, pad_id = settings.max_new_tokens, settings.pad_id
    temperature, top_k, top_p, seed = (
        settings.temperature,
        settings.top_k,
        settings.top_p,
        settings.seed,
    )
    cfg = model.config
    batch, longest = len(prompts), max(len(p) for p in prompts)
    if max_new_tokens == 0:
        out = np.full((batch, longest), pad_id, np.int32)
        for row, prompt in zip(out, prompts, strict=True):
            row[longest - len(prompt) :] = prompt
        return out

    # Left-pad to a bucketed length so that nearby prompt lengths share a trace.
    padded = -(-longest // PROMPT_MULTIPLE) * PROMPT_MULTIPLE
    padded = max(longest, min(padded, cfg.max_seq_len - max_new_tokens))
    total = padded + max_new_tokens
    tokens = np.full((batch, cfg.max_seq_len), pad_id, np.int32)
    n_pad = np.array([padded - len(p) for p in prompts], np.int32)
    for row, prompt, n in zip(tokens, prompts, n_pad, strict=True):
        row[n:padded] = prompt

    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    scalars = dict(
        temperature=tf.constant(float(temperature), tf.float32),
        top_k=tf.constant(cfg.vocab_size if top_k is None else min(int(top_k), cfg.vocab_size)),
        top_p=tf.constant(1.0 if top_p is None else float(top_p), tf.float32),
        seed=tf.constant(int(seed) % (2**31 - 1), tf.int32),
    )
    state = _compiled(model)
    greedy = temperature == 0
    windows = windows_for(cfg.max_seq_len)
    window = next(w for w in windows if w > padded)

    def key_mask(size):
        return tf.constant(np.arange(size)[None, :] >= n_pad[:, None])

    caches = model.init_caches(batch, window)
    key = ("prefill", batch, padded, window, greedy)
    if key not in state.functions:
        state.functions[key] = _make_prefill(model, state, greedy)
        align_function_uids()  # the same names, so XLA's disk cache hits in a new process
    called = time.perf_counter()
    first, caches = state.functions[key](
        tf.constant(tokens[:, :padded]), key_mask(window), caches, **scalars
    )
    first = first.numpy()
    last_call = (time.perf_counter() - called, 1)  # (seconds, tokens) for stream_chunk
    tokens[:, padded] = first
    if callback is not None:
        callback(tokens[:, padded - longest : padded + 1].copy())
    stop_ids = np.array(settings.stop_ids or (-1,), np.int32)
    done = np.isin(first, stop_ids)
    tokens = tf.constant(tokens)
    loop_constants = dict(stop_ids=tf.constant(stop_ids), pad_id=tf.constant(pad_id, tf.int32))
    key_masks, overhead = {}, state.call_overhead
    if overhead is not None and time.monotonic() - overhead[1] > OVERHEAD_MAX_AGE:
        overhead = None

    def decode(function, key_mask, tokens, done, caches, start, stop):
        """Steps feed positions [start, stop); returns (tokens, done, caches, reached)."""
        tokens, done, caches, reached = function(
            tokens,
            key_mask,
            caches,
            output_kernel,
            tf.constant(done),
            tf.constant(start, tf.int32),
            tf.constant(stop, tf.int32),
            **loop_constants,
            **scalars,
        )
        return tokens, done.numpy(), caches, int(reached)

    position = padded  # the token at `position` is the next one to feed
    if position < total - 1:
        # Transposed once here, after the first token: inside the loop XLA
        # would re-transpose tied embeddings (vocab x dim) at every step.
        output_kernel = tf.identity(model.output_kernel())
    while position < total - 1 and not done.all():
        window = next(w for w in windows if w > position)
        size = tf.nest.flatten(caches)[0].shape[1]
        if size < window:
            caches = tf.nest.map_structure(
                lambda cache, size=window: grow_cache(cache, size), caches
            )
        key = ("decode", batch, window, greedy)
        compiled = key in state.functions
        if not compiled:
            state.functions[key] = _make_decode(model, state, greedy)
            align_function_uids()
        if window not in key_masks:
            key_masks[window] = key_mask(window)
        function = state.functions[key]

        stop = min(window, total - 1)
        if callback is not None:
            if overhead is None:  # time a call that runs no step: what every chunk pays
                if not compiled:  # compiles, outside the timing
                    decode(function, key_masks[window], tokens, done, caches, position, position)
                called = time.perf_counter()
                tokens, done, caches, _ = decode(
                    function, key_masks[window], tokens, done, caches, position, position
                )
                overhead = state.call_overhead = (time.perf_counter() - called, time.monotonic())
            chunk = stream_chunk(*last_call, overhead[0])
            if stop - position >= 2 * chunk:  # else the window's rest: no short tail call
                stop = position + chunk
        called = time.perf_counter()
        tokens, done, caches, reached = decode(
            function, key_masks[window], tokens, done, caches, position, stop
        )
        last_call = (time.perf_counter() - called, reached - position)
        position = reached
        if callback is not None:
            callback(tokens.numpy()[:, padded - longest : position + 1])
        if position < stop:  # every sequence hit a stop id
            break
    out = tokens.numpy()[:, :total]
    out[:, position + 1 :] = pad_id
    # Undo the bucketing pad: return (batch, longest + max_new_tokens).
    return np.ascontiguousarray(out[:, padded - longest :], dtype=np.int32)
