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

Every compiled function is traced once per (batch size, prompt bucket or
window, greedy or sampling) and reused across calls and sampler settings: `generate_trace_count(model)`
tells how many traces have happened. Tracing runs without autograph (the
loops are written as `tf.while_loop`), which halves it. A new process pays
the XLA compilation only once per machine: the compiled code is kept in
XLA's persistent cache (`keras_recipes.xla_cache`), and each trace starts
from aligned TensorFlow function names so that the cache's keys match.
"""

import numpy as np
import tensorflow as tf

from keras_recipes._compat import align_function_uids
from keras_recipes.causal_lm.protocol import check_causal_lm
from keras_recipes.causal_lm.sampling import sample_logits
from keras_recipes.causal_lm.settings import GenerationConfig

PROMPT_MULTIPLE = 16
MIN_WINDOW = 256


class _Compiled:
    """The compiled prefill / decode functions of one model, by static key."""

    def __init__(self):
        self.functions = {}
        self.traces = 0


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
        callback: callable or None. For streaming: called after every new
            token with the np.int32 `(batch, longest_prompt + n)` ids so far.
            Decoding then runs the same compiled loop one step per call (no
            retracing), which costs a little speed.
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
    first, caches = state.functions[key](
        tf.constant(tokens[:, :padded]), key_mask(window), caches, **scalars
    )
    first = first.numpy()
    tokens[:, padded] = first
    if callback is not None:
        callback(tokens[:, padded - longest : padded + 1].copy())
    stop_ids = np.array(settings.stop_ids or (-1,), np.int32)
    done = tf.constant(np.isin(first, stop_ids))
    tokens = tf.constant(tokens)

    position = padded  # the token at `position` is the next one to feed
    if position < total - 1:
        # Transposed once here, after the first token: inside the loop XLA
        # would re-transpose tied embeddings (vocab x dim) at every step.
        output_kernel = tf.identity(model.output_kernel())
    while position < total - 1 and not bool(tf.reduce_all(done)):
        window = next(w for w in windows if w > position)
        size = tf.nest.flatten(caches)[0].shape[1]
        if size < window:
            caches = tf.nest.map_structure(
                lambda cache, size=window: grow_cache(cache, size), caches
            )
        stop = min(window, total - 1)  # steps feed positions [position, stop)
        if callback is not None:
            stop = min(stop, position + 1)
        key = ("decode", batch, window, greedy)
        if key not in state.functions:
            state.functions[key] = _make_decode(model, state, greedy)
            align_function_uids()
        tokens, done, caches, reached = state.functions[key](
            tokens,
            key_mask(window),
            caches,
            output_kernel,
            done,
            tf.constant(position, tf.int32),
            tf.constant(stop, tf.int32),
            stop_ids=tf.constant(stop_ids),
            pad_id=tf.constant(pad_id, tf.int32),
            **scalars,
        )
        position = int(reached)
        if callback is not None:
            callback(tokens.numpy()[:, padded - longest : position + 1])
        if position < stop:  # every sequence hit a stop id
            break
    out = tokens.numpy()[:, :total]
    out[:, position + 1 :] = pad_id
    # Undo the bucketing pad: return (batch, longest + max_new_tokens).
    return np.ascontiguousarray(out[:, padded - longest :], dtype=np.int32)
