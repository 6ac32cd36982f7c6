"""The fused head + cross-entropy: same loss and gradients as logits + SparseCategoricalCrossentropy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_recipes.causal_lm.losses import LanguageModelLoss, fused_head_cross_entropy
from keras_recipes.llama import LlamaConfig, build_llama

RNG = np.random.default_rng(0)


def plain_loss_and_grads(hidden, kernel, labels, kernel_is_embedding):
    kernel = tf.Variable(kernel)
    with tf.GradientTape() as tape:
        tape.watch(hidden)
        w = tf.transpose(kernel) if kernel_is_embedding else kernel
        logits = tf.matmul(tf.reshape(hidden, [-1, hidden.shape[-1]]), w)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
            tf.reshape(labels, [-1]), logits
        )
    return [loss.numpy()] + [g.numpy() for g in tape.gradient(loss, [hidden, kernel])]


def fused_loss_and_grads(hidden, kernel, labels, kernel_is_embedding, chunk_rows):
    kernel = tf.Variable(kernel)
    with tf.GradientTape() as tape:
        tape.watch(hidden)
        loss = fused_head_cross_entropy(
            hidden, kernel, labels, kernel_is_embedding=kernel_is_embedding, chunk_rows=chunk_rows
        )
        doubled = 2.0 * loss  # the gradient scales with the upstream value
    return [loss.numpy()] + [g.numpy() / 2 for g in tape.gradient(doubled, [hidden, kernel])]


@pytest.mark.parametrize("kernel_is_embedding", [False, True])
@pytest.mark.parametrize("chunk_rows", [4, 7, 1024])  # several chunks, a ragged last one, one
def test_fused_equals_logits_then_cross_entropy(kernel_is_embedding, chunk_rows):
    dim, vocab = 8, 50
    hidden = tf.constant(RNG.normal(size=(3, 5, dim)).astype("float32"))
    shape = (vocab, dim) if kernel_is_embedding else (dim, vocab)
    kernel = RNG.normal(size=shape).astype("float32")
    labels = tf.constant(RNG.integers(0, vocab, size=(3, 5)).astype("int32"))
    want = plain_loss_and_grads(hidden, kernel, labels, kernel_is_embedding)
    got = fused_loss_and_grads(hidden, kernel, labels, kernel_is_embedding, chunk_rows)
    assert got[0] == pytest.approx(want[0], rel=1e-6)
    np.testing.assert_allclose(got[1], want[1].reshape(got[1].shape), atol=1e-6)
    np.testing.assert_allclose(got[2], want[2], atol=1e-6)


def test_language_model_loss_on_logits_is_sparse_categorical_crossentropy():
    logits = RNG.normal(size=(2, 5, 7)).astype("float32")
    targets = RNG.integers(0, 7, size=(2, 5))
    reference = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(targets, logits)
    assert float(LanguageModelLoss()(targets, logits)) == pytest.approx(float(reference))
    restored = keras.losses.deserialize(keras.losses.serialize(LanguageModelLoss(chunk_rows=64)))
    assert isinstance(restored, LanguageModelLoss) and restored.chunk_rows == 64
    with pytest.raises(ValueError, match="chunk_rows"):
        LanguageModelLoss(chunk_rows=0)


def one_step(tie_embeddings, loss, sample_weight=None):
    keras.utils.set_random_seed(1)
    model = build_llama(LlamaConfig.preset("tiny", tie_embeddings=tie_embeddings))
    x = RNG_STEP.integers(0, model.config.vocab_size, size=(2, 16)).astype("int32")
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss=loss)
    logs = model.train_on_batch(x, np.roll(x, -1, axis=1), sample_weight=sample_weight)
    return model, logs


RNG_STEP = np.random.default_rng(5)


@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_fused_train_step_updates_weights_like_keras_step(tie_embeddings, monkeypatch):
    import keras_recipes.causal_lm.losses as losses

    calls = []
    original = losses.fused_head_cross_entropy
    monkeypatch.setattr(
        losses, "fused_head_cross_entropy", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    state = RNG_STEP.bit_generator.state
    fused, fused_loss = one_step(tie_embeddings, LanguageModelLoss(chunk_rows=12))
    assert calls, "LlamaModel.train_step did not take the fused path"
    RNG_STEP.bit_generator.state = state
    plain, plain_loss = one_step(
        tie_embeddings, keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    assert fused_loss == pytest.approx(plain_loss, rel=1e-5)
    for a, b in zip(fused.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_sample_weights_take_the_fused_path_and_match_keras_step(monkeypatch):
    import keras_recipes.causal_lm.losses as losses

    calls = []
    original = losses.fused_head_cross_entropy
    monkeypatch.setattr(
        losses, "fused_head_cross_entropy", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    weights = np.ones((2, 16), "float32")
    weights[:, :6] = 0.0  # a prompt the loss ignores
    state = RNG_STEP.bit_generator.state
    fused, fused_loss = one_step(True, LanguageModelLoss(chunk_rows=12), sample_weight=weights)
    assert calls, "LlamaModel.train_step did not take the fused path with sample weights"
    RNG_STEP.bit_generator.state = state
    plain, plain_loss = one_step(
        True, keras.losses.SparseCategoricalCrossentropy(from_logits=True), sample_weight=weights
    )
    assert fused_loss == pytest.approx(plain_loss, rel=1e-5)
    for a, b in zip(fused.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
