"""LoRA on LLaMA (`keras_recipes.causal_lm.lora`) and the masked, fused fine-tuning loss."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_recipes.causal_lm import lora
from keras_recipes.causal_lm.losses import LanguageModelLoss, fused_head_cross_entropy
from keras_recipes.llama import LlamaConfig, build_llama

RNG = np.random.default_rng(0)
CONFIG = LlamaConfig.preset("tiny", vocab_size=97, max_seq_len=32)


def tokens(batch=2, length=12, seed=0):
    return (
        np.random.default_rng(seed).integers(1, CONFIG.vocab_size, (batch, length)).astype("int32")
    )


def adapted(targets=lora.LLAMA_TARGETS, seed=1, **config):
    """A tiny LLaMA with adapters on `targets` and non-zero B (so the adapters change the logits)."""
    keras.utils.set_random_seed(seed)
    model = build_llama(CONFIG.replace(**config))
    model.enable_lora(4, alpha=8, targets=targets, seed=seed)
    rng = np.random.default_rng(seed)
    for name, variable in lora.lora_weights(model).items():
        if name.endswith("lora_b"):
            variable.assign(rng.normal(scale=0.05, size=variable.shape).astype("float32"))
    return model


def test_enable_lora_leaves_only_the_adapters_trainable_and_starts_as_the_base():
    keras.utils.set_random_seed(0)
    model = build_llama(CONFIG)
    before = model(tokens()).numpy()
    layers = model.enable_lora(2, targets=("wq", "wv", "w2"))
    assert list(layers) == [
        f"layers_{i}/{kind}"
        for i in range(2)
        for kind in ("attention/wq", "attention/wv", "feed_forward/w2")
    ]
    trainable = [w.path for w in model.trainable_weights]
    assert trainable == [f"{p}/{ab}" for p in layers for ab in ("lora_a", "lora_b")]
    np.testing.assert_array_equal(model(tokens()).numpy(), before)  # B starts at zero


@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_merged_logits_equal_the_adapter_models(tie_embeddings):
    model = adapted(tie_embeddings=tie_embeddings)
    x = tokens()
    with_adapters = model(x).numpy()

    def order(m):
        return [(w.path.partition("/")[2], tuple(w.shape)) for w in m.weights]

    fresh_order = order(build_llama(model.config))
    model.merge_lora()
    np.testing.assert_allclose(model(x).numpy(), with_adapters, atol=1e-5, rtol=0)
    assert not lora.lora_layers(model)
    # Plain again, weights in a fresh model's order: set_weights by position is safe.
    assert order(model) == fresh_order
    assert len(model.trainable_weights) == len(model.weights)


def test_adapter_model_generates_and_its_kernel_reads_merged():
    model = adapted(targets=("wq",))
    layer = model.blocks[0].attention.wq
    want = layer.base.kernel.numpy() + 2.0 * layer.lora_a.numpy() @ layer.lora_b.numpy()
    np.testing.assert_allclose(np.asarray(layer.kernel), want, atol=1e-6)
    out = model.generate(tokens(1, 4), max_new_tokens=3)
    assert out.shape == (1, 7)


def test_adapters_save_alone_and_load_into_the_base(tmp_path):
    model = adapted()
    path = model.save_lora_weights(tmp_path / "adapter.safetensors")
    adapter_bytes = sum(int(np.prod(v.shape)) * 4 for v in lora.lora_weights(model).values())
    assert path.stat().st_size < adapter_bytes + 4096  # the adapters, nothing else
    base = build_llama(model.config)
    base.set_weights([w.numpy() for w in model.weights if "lora_" not in w.path])
    base.load_lora_weights(path)
    np.testing.assert_array_equal(base(tokens()).numpy(), model(tokens()).numpy())
    other = build_llama(CONFIG.replace(dim=32, n_heads=2, n_kv_heads=1))
    with pytest.raises(ValueError, match="another shape"):
        other.load_lora_weights(path)


def test_bad_targets_and_twice_are_refused():
    model = build_llama(CONFIG)
    with pytest.raises(ValueError, match=r"\['output'\] cannot take adapters.*'w3'"):
        model.enable_lora(2, targets=("wq", "output"))
    with pytest.raises(ValueError, match=r"no Dense layer named \['query'\].*'wq'"):
        lora.enable_lora(model, 2, targets=("query",))
    model.enable_lora(2)
    with pytest.raises(ValueError, match="already"):
        model.enable_lora(2)


def weighted_plain(hidden, kernel, labels, weights, reduction):
    kernel = tf.Variable(kernel)
    with tf.GradientTape() as tape:
        tape.watch(hidden)
        logits = tf.matmul(hidden, kernel)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)(
            labels, logits, sample_weight=weights
        )
    return [loss.numpy()] + [g.numpy() for g in tape.gradient(loss, [hidden, kernel])]


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean_with_sample_weight"])
def test_fused_loss_with_sample_weight_equals_keras(reduction):
    hidden = tf.constant(RNG.normal(size=(2, 6, 8)).astype("float32"))
    kernel = RNG.normal(size=(8, 40)).astype("float32")
    labels = tf.constant(RNG.integers(0, 40, (2, 6)).astype("int32"))
    weights = tf.constant((RNG.random((2, 6)) > 0.4).astype("float32"))
    want = weighted_plain(hidden, kernel, labels, weights, reduction)
    variable = tf.Variable(kernel)
    with tf.GradientTape() as tape:
        tape.watch(hidden)
        loss = fused_head_cross_entropy(
            hidden,
            variable,
            labels,
            chunk_rows=5,
            sample_weight=weights,
            mean_over_weights=reduction == "mean_with_sample_weight",
        )
    got = [loss.numpy()] + [g.numpy() for g in tape.gradient(loss, [hidden, variable])]
    assert got[0] == pytest.approx(want[0], rel=1e-6)
    np.testing.assert_allclose(got[1], want[1], atol=1e-6)
    np.testing.assert_allclose(got[2], want[2], atol=1e-6)


def test_masked_positions_contribute_zero_gradient():
    """Changing the targets where the mask is 0 changes no gradient, bit for bit."""
    model = adapted()
    x = tokens(2, 12)
    y = tokens(2, 12, seed=1)
    mask = np.zeros((2, 12), "float32")
    mask[:, 7:] = 1.0
    y_other = y.copy()
    y_other[:, :7] = (y[:, :7] + 5) % CONFIG.vocab_size
    kernel, tied = model.output_weights()

    def gradients(targets):
        with tf.GradientTape() as tape:
            hidden = model.hidden_states(x, training=True)
            loss = fused_head_cross_entropy(
                hidden,
                kernel,
                targets,
                tied,
                sample_weight=mask,
                mean_over_weights=True,
                kernel_gradient=False,
            )
        return [g.numpy() for g in tape.gradient(loss, model.trainable_weights)]

    for a, b in zip(gradients(y), gradients(y_other), strict=True):
        np.testing.assert_array_equal(a, b)
    # and where it is 1, they do change
    y_other[:, 9] = (y[:, 9] + 5) % CONFIG.vocab_size
    assert any(
        not np.array_equal(a, b) for a, b in zip(gradients(y), gradients(y_other), strict=True)
    )
    # the hidden state of a masked position gets exactly zero from the loss
    hidden = tf.constant(RNG.normal(size=(2, 12, 64)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(hidden)
        loss = fused_head_cross_entropy(hidden, kernel, y, tied, sample_weight=mask)
    dh = tape.gradient(loss, hidden).numpy()
    assert not dh[:, :7].any() and dh[:, 7:].all()


def one_lora_step(loss, x, y, weights):
    model = adapted(seed=3)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
    frozen = {w.path: w.numpy().copy() for w in model.weights if "lora_" not in w.path}
    logs = model.train_on_batch(x, y, sample_weight=weights, return_dict=True)
    return model, frozen, logs["loss"]


def test_fused_lora_step_with_mask_equals_keras_step_and_leaves_the_base_bit_for_bit(monkeypatch):
    import keras_recipes.causal_lm.losses as losses

    calls = []
    original = losses.fused_head_cross_entropy
    monkeypatch.setattr(
        losses, "fused_head_cross_entropy", lambda *a, **k: calls.append(k) or original(*a, **k)
    )
    x, y = tokens(2, 12, seed=4), tokens(2, 12, seed=5)
    weights = (np.arange(12)[None, :] >= 5).astype("float32").repeat(2, 0)
    fused, frozen, fused_loss = one_lora_step(
        LanguageModelLoss(chunk_rows=7, reduction="mean_with_sample_weight"), x, y, weights
    )
    assert calls and calls[0]["kernel_gradient"] is False
    plain, _, plain_loss = one_lora_step(
        keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        ),
        x,
        y,
        weights,
    )
    assert fused_loss == pytest.approx(plain_loss, rel=1e-5)
    for a, b in zip(fused.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for w in fused.weights:
        if "lora_" not in w.path:
            np.testing.assert_array_equal(w.numpy(), frozen[w.path])
    assert any(
        not np.array_equal(w.numpy(), a.numpy())
        for w, a in zip(fused.trainable_weights, adapted(seed=3).trainable_weights, strict=True)
    )


def test_an_adapter_model_round_trips_through_a_keras_file(tmp_path):
    model = adapted(targets=("wq", "w1"))
    model.save(tmp_path / "adapted.keras")
    loaded = keras.models.load_model(tmp_path / "adapted.keras")
    assert list(lora.lora_layers(loaded)) == list(lora.lora_layers(model))
    assert [w.path for w in loaded.trainable_weights] == [w.path for w in model.trainable_weights]
    np.testing.assert_array_equal(loaded(tokens()).numpy(), model(tokens()).numpy())
