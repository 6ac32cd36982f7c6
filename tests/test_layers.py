"""keras_recipes.layers against closed forms, numpy references and keras-hub."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_recipes.layers import (
    CausalSelfAttention,
    LlamaBlock,
    RMSNorm,
    RotaryEmbedding,
    SwiGLU,
    llama_hidden_dim,
    rope_inverse_frequencies,
)
from keras_recipes.layers.causal_self_attention import update_cache

RNG = np.random.default_rng(0)


def _rand(*shape):
    return RNG.standard_normal(shape).astype("float32")


# ---- RotaryEmbedding ----


def test_rope_rotates_each_pair_by_position_times_frequency():
    d, theta, pos = 8, 10000.0, 5
    x = np.zeros((1, pos + 1, 1, d), "float32")
    x[..., 0::2] = 1.0  # every interleaved pair is the unit vector (1, 0)
    y = np.asarray(RotaryEmbedding(theta, "interleaved")(x))[0, pos, 0]
    angles = pos * theta ** (-np.arange(0, d, 2) / d)
    np.testing.assert_allclose(y[0::2], np.cos(angles), atol=1e-6)
    np.testing.assert_allclose(y[1::2], np.sin(angles), atol=1e-6)


def test_rope_scores_depend_only_on_relative_position():
    rope = RotaryEmbedding(convention="rotate_half")
    q, k = _rand(1, 1, 1, 16), _rand(1, 1, 1, 16)

    def score(m, n):
        qm = np.asarray(rope(q, start_index=m))
        kn = np.asarray(rope(k, start_index=n))
        return float((qm * kn).sum())

    assert score(7, 3) == pytest.approx(score(104, 100), abs=1e-4)


def test_interleaved_equals_rotate_half_on_permuted_features():
    # The permutation HF applies to Meta's wq/wk when converting checkpoints.
    d = 16
    perm = np.concatenate([np.arange(0, d, 2), np.arange(1, d, 2)])
    x = _rand(2, 9, 3, d)
    meta = np.asarray(RotaryEmbedding(convention="interleaved")(x, start_index=4))
    hf = np.asarray(RotaryEmbedding(convention="rotate_half")(x[..., perm], start_index=4))
    np.testing.assert_allclose(hf[..., np.argsort(perm)], meta, atol=1e-6)


def test_rope_offset_equals_slice_of_full_sequence():
    rope, x = RotaryEmbedding(), _rand(1, 12, 2, 8)
    full = np.asarray(rope(x))
    np.testing.assert_allclose(np.asarray(rope(x[:, 9:], start_index=9)), full[:, 9:], atol=1e-6)


@pytest.mark.parametrize("scaled", [False, True])
def test_rope_matches_keras_hub_llama_rotary_embedding(scaled):
    hub = pytest.importorskip("keras_hub.src.models.llama.llama_rotary_embedding")
    scaling = dict(
        factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=64
    )
    theirs = hub.LlamaRotaryEmbedding(
        max_wavelength=500000.0,
        frequency_adjustment_factor=scaling["factor"] if scaled else None,
        low_freq_factor=scaling["low_freq_factor"] if scaled else None,
        high_freq_factor=scaling["high_freq_factor"] if scaled else None,
        pretraining_sequence_length=64 if scaled else None,
    )
    ours = RotaryEmbedding(500000.0, "rotate_half", scaling if scaled else None)
    x = _rand(2, 300, 2, 32)
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(theirs(x)), atol=1e-4)


def test_llama31_scaling_slows_only_long_wavelengths():
    plain = rope_inverse_frequencies(128, 500000.0)
    scaled = rope_inverse_frequencies(
        128,
        500000.0,
        dict(
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=8192,
        ),
    )
    wavelength = 2 * np.pi / plain
    np.testing.assert_allclose(scaled[wavelength < 8192 / 4], plain[wavelength < 8192 / 4])
    np.testing.assert_allclose(scaled[wavelength > 8192], plain[wavelength > 8192] / 8, rtol=1e-6)


def test_rope_rejects_unknown_convention_and_partial_scaling():
    with pytest.raises(ValueError, match="convention"):
        RotaryEmbedding(convention="meta")
    with pytest.raises(ValueError, match="low_freq_factor"):
        RotaryEmbedding(scaling={"factor": 8.0})


# ---- RMSNorm ----


def test_rmsnorm_closed_form():
    x = _rand(3, 10)
    norm = RMSNorm(epsilon=1e-5)
    norm.build(x.shape)
    norm.scale.assign(np.linspace(0.5, 2.0, 10).astype("float32"))
    expected = x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-5) * np.linspace(0.5, 2.0, 10)
    np.testing.assert_allclose(np.asarray(norm(x)), expected, rtol=1e-5, atol=1e-6)


def test_rmsnorm_computes_in_float32_under_mixed_precision():
    x = np.array([[1e3, 2e3, 3e3, 4e3]], "float32")  # squares overflow float16
    norm = RMSNorm(dtype="mixed_float16")
    y = norm(x)
    assert y.dtype == "float16" and norm.scale.dtype == "float32"
    expected = x / np.sqrt((x.astype("float64") ** 2).mean())
    np.testing.assert_allclose(np.asarray(y, "float32"), expected, rtol=2e-3)


# ---- SwiGLU ----


def test_swiglu_is_w2_of_silu_w1_times_w3():
    x = _rand(2, 5, 16)
    ffn = SwiGLU(hidden_dim=24)
    ffn.build(x.shape)
    w1, w2, w3 = (np.asarray(layer.kernel) for layer in (ffn.w1, ffn.w2, ffn.w3))
    a = x @ w1
    expected = ((a / (1 + np.exp(-a))) * (x @ w3)) @ w2
    np.testing.assert_allclose(np.asarray(ffn(x)), expected, atol=1e-5)
    assert not any("bias" in v.path for v in ffn.weights)


def test_swiglu_hidden_size_rule():
    assert llama_hidden_dim(4096) == 11008  # LLaMA 7B
    assert llama_hidden_dim(5120) == 13824  # LLaMA 13B
    assert llama_hidden_dim(8192, 4096, 1.3) == 28672  # Llama 2 70B
    assert SwiGLU(multiple_of=32).compute_hidden_dim(288) == 768  # stories15M


# ---- CausalSelfAttention ----


def _reference_attention(attn, x, padding_mask=None):
    """Plain numpy GQA: repeat k/v heads, causal (+ padding) mask, softmax."""
    b, t, _ = x.shape
    h, kv, hd = attn.n_heads, attn.n_kv_heads, attn.head_dim
    q = (x @ np.asarray(attn.wq.kernel)).reshape(b, t, h, hd)
    k = (x @ np.asarray(attn.wk.kernel)).reshape(b, t, kv, hd)
    v = (x @ np.asarray(attn.wv.kernel)).reshape(b, t, kv, hd)
    q, k = np.asarray(attn.rotary(q)), np.asarray(attn.rotary(k))
    k, v = np.repeat(k, h // kv, axis=2), np.repeat(v, h // kv, axis=2)
    scores = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(hd)
    allowed = np.tril(np.ones((t, t), bool))[None, None]
    if padding_mask is not None:
        allowed = allowed & padding_mask.astype(bool)[:, None, None, :]
    scores = np.where(allowed, scores, -1e30)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = np.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, h * hd)
    return out @ np.asarray(attn.wo.kernel)


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])  # MHA, GQA, MQA
def test_attention_matches_numpy_reference(n_kv_heads):
    x = _rand(2, 7, 32)
    attn = CausalSelfAttention(n_heads=4, n_kv_heads=n_kv_heads)
    np.testing.assert_allclose(np.asarray(attn(x)), _reference_attention(attn, x), atol=1e-5)


def test_attention_is_causal():
    x = _rand(1, 6, 32)
    attn = CausalSelfAttention(n_heads=4, n_kv_heads=2)
    changed = x.copy()
    changed[:, 4:] += 1.0
    np.testing.assert_allclose(
        np.asarray(attn(changed))[:, :4], np.asarray(attn(x))[:, :4], atol=1e-6
    )


def test_attention_padding_mask():
    x, mask = _rand(2, 6, 32), np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    attn = CausalSelfAttention(n_heads=4, n_kv_heads=2)
    got = np.asarray(attn(x, padding_mask=mask))
    expected = _reference_attention(attn, x, mask)
    np.testing.assert_allclose(got[0, 2:], expected[0, 2:], atol=1e-5)
    np.testing.assert_allclose(got[1], expected[1], atol=1e-5)
    assert np.isfinite(got).all()  # fully masked (padding) rows stay finite


def masked_cache_write(cache, values, start_index):
    """A cache write of the caller's own: new rows picked by a mask (no slice update)."""
    slots = ops.arange(ops.shape(cache)[1])
    steps = ops.shape(values)[1]
    placed = ops.take(values, ops.clip(slots - start_index, 0, steps - 1), axis=1)
    is_new = ((slots >= start_index) & (slots < start_index + steps))[None, :, None, None]
    return ops.where(is_new, ops.cast(placed, cache.dtype), cache)


@pytest.mark.parametrize("cache_update", [None, masked_cache_write])
def test_kv_cache_step_by_step_equals_full_pass(cache_update):
    # None: the layer's own dynamic-update-slice; or a write the caller passes.
    x = _rand(2, 9, 32)
    attn = CausalSelfAttention(n_heads=4, n_kv_heads=2)
    full = np.asarray(attn(x))
    k = v = np.zeros((2, 16, 2, 8), "float32")
    calls = []

    def write(cache, values, start_index):
        calls.append(start_index)
        return (cache_update or update_cache)(cache, values, start_index)

    out, k, v = attn(x[:, :5], key_cache=k, value_cache=v, start_index=0, cache_update=write)
    steps = [np.asarray(out)]
    for i in range(5, 9):
        out, k, v = attn(
            x[:, i : i + 1], key_cache=k, value_cache=v, start_index=i, cache_update=write
        )
        steps.append(np.asarray(out))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)
    assert not np.asarray(k)[:, 9:].any()  # slots past the end untouched
    assert calls == [0, 0, 5, 5, 6, 6, 7, 7, 8, 8]  # keys, then values, at every step


@pytest.mark.parametrize("steps", [1, 3])
def test_cache_update_writes_the_rows_at_start_index(steps):
    cache = _rand(2, 8, 2, 4)
    values = _rand(2, steps, 2, 4)
    expected = cache.copy()
    expected[:, 4 : 4 + steps] = values
    np.testing.assert_array_equal(np.asarray(update_cache(cache, values, 4)), expected)


def test_attention_rejects_bad_head_counts():
    with pytest.raises(ValueError, match="n_kv_heads"):
        CausalSelfAttention(n_heads=6, n_kv_heads=4)
    with pytest.raises(ValueError, match="divide"):
        CausalSelfAttention(n_heads=5)(np.zeros((1, 2, 32), "float32"))


# ---- LlamaBlock ----


def test_block_is_prenorm_residual():
    x = _rand(2, 5, 32)
    block = LlamaBlock(n_heads=4, n_kv_heads=2, hidden_dim=48)
    block.build(x.shape)
    h = x + np.asarray(block.attention(block.attention_norm(x)))
    expected = h + np.asarray(block.feed_forward(block.ffn_norm(h)))
    np.testing.assert_allclose(np.asarray(block(x)), expected, atol=1e-5)


# ---- serialization ----

LAYERS = [
    lambda: RotaryEmbedding(500000.0, "rotate_half"),
    lambda: RMSNorm(1e-6),
    lambda: SwiGLU(multiple_of=16),
    lambda: CausalSelfAttention(4, 1, rope_convention="rotate_half"),
    lambda: LlamaBlock(4, 2, hidden_dim=48, norm_eps=1e-6),
]


@pytest.mark.parametrize("make", LAYERS)
def test_layer_round_trips_through_keras_file(make, tmp_path):
    layer = make()
    shape = (3, 4, 8) if isinstance(layer, RotaryEmbedding) else (3, 32)
    inputs = keras.Input(shape)
    model = keras.Model(inputs, layer(inputs))
    x = _rand(2, *shape)
    path = tmp_path / "layer.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    restored = loaded.layers[-1]
    assert type(restored) is type(layer) and restored.get_config() == layer.get_config()
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
