"""model.generate: KV-cached decoding, compiled once, equal to the uncached argmax."""

import time

import keras
import numpy as np
import pytest

from keras_recipes.causal_lm import generation as gen
from keras_recipes.causal_lm.generation import generate_trace_count, windows_for
from keras_recipes.llama import LlamaConfig, build_llama


@pytest.fixture(scope="module", autouse=True)
def small_windows():
    """Windows of 64, 128, 256 on the tiny model, so tests cross windows."""
    saved, gen.MIN_WINDOW = gen.MIN_WINDOW, 64
    yield
    gen.MIN_WINDOW = saved


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    m = build_llama("tiny")  # context 256: windows 64, 128, 256
    # Larger weights than the 0.02 init so the argmax is decisive, not a near tie.
    for v in m.trainable_weights:
        if len(v.shape) == 2:
            v.assign(np.asarray(v) * 8.0)
    return m


def _assert_greedy(model, prompts, out):
    """Every generated token is the argmax of the full, uncached forward pass."""
    longest = max(len(p) for p in prompts)
    for row, prompt in zip(out, prompts, strict=True):
        seq = row[longest - len(prompt) :]
        np.testing.assert_array_equal(seq[: len(prompt)], prompt)
        argmax = np.asarray(model(seq[None]))[0].argmax(-1)
        np.testing.assert_array_equal(argmax[len(prompt) - 1 : -1], seq[len(prompt) :])


def test_greedy_equals_uncached_argmax_across_cache_windows(model):
    prompt = [[3, 14, 15, 92, 65]]
    out = model.generate(prompt, max_new_tokens=100)  # crosses from window 64 to 128
    assert out.shape == (1, 105) and out.dtype == np.int32
    _assert_greedy(model, prompt, out)


def test_ragged_batch_is_left_padded_and_each_row_greedy(model):
    prompts = [[1, 2, 3, 4, 5, 6, 7], [9], [40, 41, 42]]
    out = model.generate(prompts, max_new_tokens=30, pad_id=0)
    assert out.shape == (3, 37)
    assert (out[1, :6] == 0).all() and (out[2, :4] == 0).all()
    _assert_greedy(model, prompts, out)


def test_batch_rows_equal_single_prompt_runs(model):
    prompts = [[5, 6, 7], [100, 200, 300, 400, 11]]
    batched = model.generate(prompts, max_new_tokens=12)
    for row, prompt in zip(batched, prompts, strict=True):
        alone = model.generate([prompt], max_new_tokens=12)[0]
        np.testing.assert_array_equal(row[-len(alone) :], alone)


def test_array_and_flat_list_prompts(model):
    ids = np.array([[1, 2, 3], [4, 5, 6]], "int64")
    assert model.generate(ids, 4).shape == (2, 7)
    assert model.generate([1, 2, 3], 4).shape == (1, 7)
    np.testing.assert_array_equal(model.generate(ids, 0), ids)


def test_compiled_once_no_retrace_per_position_or_call(model):
    prompt = [[7, 7, 7, 7]]
    model.generate(prompt, max_new_tokens=100, temperature=0.0)
    after_first = generate_trace_count(model)
    model.generate(prompt, max_new_tokens=100)
    model.generate([[1, 2, 3, 4, 5, 6]], max_new_tokens=90)  # same 16-token prompt bucket
    model.generate(prompt, max_new_tokens=30)
    assert generate_trace_count(model) == after_first


def test_one_trace_per_window_not_per_token():
    m = build_llama(LlamaConfig.preset("tiny", n_layers=1, max_seq_len=128))
    m.generate([[1, 2]], max_new_tokens=120)
    # prefill + one decode loop per cache window used (64, 128), not one per token.
    assert generate_trace_count(m) == 1 + len(windows_for(128)) == 3


def test_windows_double_up_to_the_context():
    assert windows_for(256) == [64, 128, 256]
    assert windows_for(2048)[-1] == 2048 and windows_for(50) == [50]
    gen.MIN_WINDOW = 256  # the default
    try:
        assert windows_for(4096) == [256, 512, 1024, 2048, 4096] and windows_for(256) == [256]
    finally:
        gen.MIN_WINDOW = 64


def test_sampling_is_reproducible_with_a_seed(model):
    kw = dict(max_new_tokens=20, temperature=1.0, top_k=20, top_p=0.9)
    a = model.generate([[1, 2, 3]], seed=7, **kw)
    b = model.generate([[1, 2, 3]], seed=7, **kw)
    c = model.generate([[1, 2, 3]], seed=8, **kw)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_top_k_one_and_tiny_top_p_are_greedy(model):
    greedy = model.generate([[8, 9]], max_new_tokens=15)
    for kw in (dict(top_k=1), dict(top_p=1e-6)):
        sampled = model.generate([[8, 9]], max_new_tokens=15, temperature=1.5, seed=3, **kw)
        np.testing.assert_array_equal(sampled, greedy)


def test_top_k_restricts_samples_to_the_k_most_likely(model):
    out = model.generate([[3, 4]], max_new_tokens=1, temperature=5.0, top_k=3, seed=0)
    allowed = np.argsort(np.asarray(model(np.array([[3, 4]])))[0, -1])[-3:]
    samples = {
        int(model.generate([[3, 4]], max_new_tokens=1, temperature=5.0, top_k=3, seed=s)[0, -1])
        for s in range(12)
    }
    assert int(out[0, -1]) in allowed and samples <= set(allowed.tolist()) and len(samples) > 1


def test_eos_stops_a_sequence_and_pads_after_it(model):
    greedy = model.generate([[1, 2, 3]], max_new_tokens=20)[0]
    eos = int(greedy[6])  # the 4th generated token
    first = 3 + int(np.argmax(greedy[3:] == eos))
    out = model.generate([[1, 2, 3]], max_new_tokens=20, eos_id=eos, pad_id=0)[0]
    np.testing.assert_array_equal(out[: first + 1], greedy[: first + 1])
    assert (out[first + 1 :] == 0).all() and out.shape == (23,)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (([[1, 600]], 4), {}, "outside"),
        (([[1, -1]], 4), {}, "outside"),
        (([[1] * 200], 57), {}, "max_seq_len"),
        (([[]], 4), {}, "empty"),
        (([], 4), {}, "empty"),
        (([[1]], 4), dict(temperature=-0.1), "temperature"),
        (([[1]], 4), dict(temperature=1.0, top_p=0.0), "top_p"),
        (([[1]], 4), dict(temperature=1.0, top_p=1.5), "top_p"),
        (([[1]], 4), dict(top_k=0), "top_k"),
        (([[1]], -1), {}, "max_new_tokens"),
    ],
)
def test_bad_input_fails_before_any_work(model, args, kwargs, message):
    before = generate_trace_count(model)
    with pytest.raises(ValueError, match=message):
        model.generate(*args, **kwargs)
    assert generate_trace_count(model) == before


def _record_calls(model, events):
    """Wraps the model's compiled functions so that each call appends its kind to `events`."""
    functions = gen._compiled(model).functions
    originals = dict(functions)
    for key, function in originals.items():

        def wrapped(*args, _function=function, _kind=key[0], **kwargs):
            events.append(_kind)
            return _function(*args, **kwargs)

        functions[key] = wrapped
    return originals


@pytest.mark.parametrize("interval", [0.0, 1e9, None])
def test_streaming_callback_gets_a_growing_prefix_ending_at_the_plain_result(
    model, monkeypatch, interval
):
    # 0: one token a chunk; 1e9: one chunk up to each window's end; None: the default policy.
    if interval is not None:
        monkeypatch.setattr(gen, "STREAM_INTERVAL", interval)
        monkeypatch.setattr(gen, "OVERHEAD_SHARE", float("inf"))  # the call's cost ignored
    prompt, new = [[2, 3, 4]], 70  # crosses the 64-token window: a second decode function
    plain = model.generate(prompt, max_new_tokens=new)
    before = generate_trace_count(model)
    events, seen = [], []
    originals = _record_calls(model, events)
    try:
        streamed = model.generate(
            prompt, max_new_tokens=new, callback=lambda ids: (seen.append(ids), events.append("cb"))
        )
    finally:
        gen._compiled(model).functions.update(originals)
    np.testing.assert_array_equal(streamed, plain)
    assert generate_trace_count(model) == before  # every chunk reuses the compiled loop
    # The first token is handed over right after the prefill, before any decode step.
    assert events[:2] == ["prefill", "cb"] and seen[0].shape == (1, 4)
    widths = [ids.shape[1] for ids in seen]
    assert widths == sorted(set(widths)) and widths[-1] == 3 + new  # grows, ends at the result
    for ids in seen:  # each a prefix of the result, as int32 ids
        assert ids.dtype == np.int32
        np.testing.assert_array_equal(ids, plain[:, : ids.shape[1]])
    # One callback per compiled call (the prefill, each decode chunk), but for
    # the call that times a call's fixed cost (runs no step, once a minute).
    assert all(events[i - 1] == "decode" for i, e in enumerate(events) if e == "cb" and i > 1)
    assert events.count("decode") - events.count("cb") in (-1, 0)
    if interval == 0.0:
        assert widths == list(range(4, 4 + new))  # token by token
    if interval == 1e9:
        assert len(seen) == 3  # the prefill's token, the rest of window 64, the rest


def test_a_costly_call_makes_streaming_chunks_longer(model, monkeypatch):
    prompt, new = [[2, 3, 4]], 70
    plain = model.generate(prompt, max_new_tokens=new)
    state = gen._compiled(model)
    # A call that costs 10 s: chunks of 10 / OVERHEAD_SHARE s, i.e. each window's rest at once.
    state.call_overhead = (10.0, time.monotonic())
    seen = []
    np.testing.assert_array_equal(model.generate(prompt, new, callback=seen.append), plain)
    assert [ids.shape[1] for ids in seen] == [4, 3 + 1 + (64 - 16), 3 + new]
    # Too old a timing is timed again (on a call that runs no step).
    monkeypatch.setattr(gen, "OVERHEAD_MAX_AGE", 0.0)
    model.generate(prompt, new, callback=seen.append)
    assert state.call_overhead[0] < 10.0
