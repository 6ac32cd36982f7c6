"""The in-graph decoding loop of the SavedModel `generate` signatures."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_recipes.causal_lm import graph_generate
from keras_recipes.causal_lm.graph_generate import (
    generate_in_graph,
    left_pad,
    scatter_cache_update,
)
from keras_recipes.llama.fused_decode import FusedDecodeStep

PROMPTS = [[5, 9, 2, 7, 30, 11], [8, 3], [40, 1, 17]]


def small_peaky(peaky_llama, **overrides):
    return peaky_llama(seed=5, vocab_size=64, max_seq_len=32, **overrides)


@pytest.fixture(scope="module", params=["interleaved", "rotate_half"])
def llama(request, peaky_llama):
    return small_peaky(peaky_llama, rope_convention=request.param)


def prefill(model, prompts):
    """Left-padded prompts through the model's own cached call, as generate_in_graph does."""
    ids, lengths = left_pad(tf.ragged.constant(prompts, tf.int32))
    context, cfg = model.config.max_seq_len, model.config
    tokens = tf.pad(ids, [[0, 0], [0, context - ids.shape[1]]])
    key_mask = tf.range(context)[None, :] >= (ids.shape[1] - lengths)[:, None]
    shape = (len(prompts), context, cfg.n_kv_heads, cfg.head_dim)
    caches = [(tf.zeros(shape), tf.zeros(shape)) for _ in model.blocks]
    _, caches = model.call_with_cache(ids, caches, 0, key_mask, cache_update=scatter_cache_update)
    return tokens, key_mask, caches


@pytest.mark.parametrize("steps", [1, 3])
def test_scatter_cache_update_writes_the_rows_at_start_index(steps):
    rng = np.random.default_rng(steps)
    cache = rng.standard_normal((2, 8, 2, 4)).astype("float32")
    values = rng.standard_normal((2, steps, 2, 4)).astype("float32")
    expected = cache.copy()
    expected[:, 4 : 4 + steps] = values
    got = scatter_cache_update(tf.constant(cache), tf.constant(values), tf.constant(4))
    np.testing.assert_array_equal(got.numpy(), expected)
    graph = tf.function(scatter_cache_update).get_concrete_function(
        tf.TensorSpec(cache.shape), tf.TensorSpec(values.shape), tf.TensorSpec([], tf.int32)
    )
    assert not [n.op for n in graph.graph.as_graph_def().node if n.op.startswith("Xla")]


def test_fused_step_equals_the_models_cached_call(llama):
    width = max(map(len, PROMPTS))
    tokens, key_mask, caches = prefill(llama, PROMPTS)
    step = FusedDecodeStep(llama, llama.output_kernel(), key_mask)
    fused = step.loop_caches(caches)
    rng = np.random.default_rng(0)
    for position in range(width, width + 4):
        current = tf.constant(rng.integers(1, 64, (len(PROMPTS), 1)), tf.int32)
        want, caches = llama.call_with_cache(
            current, caches, position, key_mask, cache_update=scatter_cache_update
        )
        got, fused = step(current, fused, position)
        np.testing.assert_allclose(got, want, atol=2e-5)
    for (keys, values), (fused_keys, fused_values) in zip(caches, fused, strict=True):
        np.testing.assert_allclose(np.swapaxes(fused_keys, 0, 1), keys, atol=1e-6)
        np.testing.assert_allclose(np.swapaxes(fused_values, 0, 1), values, atol=1e-6)


def run_graph(model, prompts, new_tokens, temperature=0.0, top_k=0, seed=0, top_p=1.0):
    ids, lengths = left_pad(tf.ragged.constant(prompts, tf.int32))
    controls = [tf.constant(new_tokens), tf.constant(temperature), tf.constant(top_k)]
    controls += [tf.constant(top_p), tf.constant(seed)]
    return generate_in_graph(model, ids, lengths, *controls).numpy()


def test_ragged_greedy_batch_equals_each_prompt_alone(llama):
    out = run_graph(llama, PROMPTS, 12)
    width = max(map(len, PROMPTS))
    for row, prompt in zip(out, PROMPTS, strict=True):
        alone = llama.generate([prompt], 12)[0]
        np.testing.assert_array_equal(row[width:], alone[len(prompt) :])


def test_fused_and_layer_by_layer_loops_agree(llama, monkeypatch):
    fused_greedy = run_graph(llama, PROMPTS, 10)
    fused_sampled = run_graph(llama, PROMPTS, 10, temperature=1.0, top_k=8, seed=4)
    monkeypatch.setattr(graph_generate, "fused_step", lambda *args: None)
    np.testing.assert_array_equal(run_graph(llama, PROMPTS, 10), fused_greedy)
    sampled = run_graph(llama, PROMPTS, 10, temperature=1.0, top_k=8, seed=4)
    np.testing.assert_array_equal(sampled, fused_sampled)


def test_bfloat16_model_takes_the_layer_by_layer_loop(peaky_llama):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = small_peaky(peaky_llama)
    finally:
        keras.config.set_dtype_policy("float32")
    assert model.fused_decode_step(model.output_kernel(), None) is None
    out = run_graph(model, PROMPTS[:1], 5)
    assert out.shape == (1, len(PROMPTS[0]) + 5) and (out >= 0).all() and (out < 64).all()
