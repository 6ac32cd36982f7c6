"""keras_recipes.rnn: the padding mask and pretrained vectors in the notes' two classifiers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_recipes.layers.masked_pooling import MaskedGlobalAveragePooling1D
from keras_recipes.rnn import build_decoder, build_encoder

# Two texts padded with id 0: three real tokens, and one.
IDS = np.array([[3, 4, 5, 0, 0, 0], [6, 0, 0, 0, 0, 0]], "int32")
LENGTHS = [3, 1]


def more_padding(ids, extra=9):
    return np.concatenate([ids, np.zeros((len(ids), extra), "int32")], axis=1)


@pytest.fixture(scope="module")
def masked():
    keras.utils.set_random_seed(1)
    return {
        "encoder": build_encoder(12, embed_dim=5, units=4, mask_zero=True),
        "decoder": build_decoder(12, embed_dim=5, units=4, mask_zero=True),
    }


def test_defaults_stay_the_notes_snippets_without_a_mask():
    for model in (build_encoder(12), build_decoder(12)):
        embedding = model.layers[0]
        assert not embedding.mask_zero and embedding.trainable and embedding.output_dim == 64
        assert embedding.compute_mask(IDS) is None
    assert type(build_encoder(12).layers[1]) is keras.layers.GlobalAveragePooling1D


def test_masked_mean_is_numpys_mean_over_the_real_tokens(masked):
    model = masked["encoder"]
    assert isinstance(model.layers[1], keras.layers.GlobalAveragePooling1D)
    pooled = keras.Model(model.inputs, model.layers[1].output).predict(IDS, verbose=0)
    table = model.layers[0].get_weights()[0]
    for row, length in enumerate(LENGTHS):
        np.testing.assert_allclose(pooled[row], table[IDS[row, :length]].mean(axis=0), rtol=1e-6)


@pytest.mark.parametrize("name", ["encoder", "decoder"])
def test_masked_output_does_not_change_with_more_padding(masked, name):
    model = masked[name]
    padded = model.predict(IDS, verbose=0)
    np.testing.assert_allclose(model.predict(more_padding(IDS), verbose=0), padded, atol=1e-6)
    for row, length in enumerate(LENGTHS):  # and equals the text with no padding at all
        alone = model.predict(IDS[row : row + 1, :length], verbose=0)
        np.testing.assert_allclose(alone[0], padded[row], atol=1e-6)


@pytest.mark.parametrize("build", [build_encoder, build_decoder])
def test_without_the_mask_padding_changes_the_output(build):
    keras.utils.set_random_seed(1)
    model = build(12, embed_dim=5, units=4)
    change = model.predict(more_padding(IDS), verbose=0) - model.predict(IDS, verbose=0)
    assert np.abs(change).max() > 1e-4


def test_a_text_of_padding_only_pools_to_zeros_with_finite_gradients(masked):
    ids = np.array([[0, 0, 0], [7, 8, 0]], "int32")
    embedded = masked["encoder"].layers[0](ids)
    mask = masked["encoder"].layers[0].compute_mask(ids)
    # Keras's own layer gives 0/0 here; that NaN is why the masked classifier uses ours.
    assert np.isnan(np.asarray(keras.layers.GlobalAveragePooling1D()(embedded, mask=mask))).any()
    np.testing.assert_array_equal(MaskedGlobalAveragePooling1D()(embedded, mask=mask)[0], 0.0)
    for model in masked.values():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(ids))
        gradients = tape.gradient(loss, model.trainable_weights)
        assert all(np.isfinite(tf.convert_to_tensor(g).numpy()).all() for g in gradients)


def test_masked_encoder_round_trips_through_a_keras_file(masked, tmp_path):
    path = tmp_path / "encoder.keras"
    masked["encoder"].save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.layers[1]) is MaskedGlobalAveragePooling1D
    np.testing.assert_allclose(
        loaded.predict(IDS, verbose=0), masked["encoder"].predict(IDS, verbose=0), atol=1e-6
    )


@pytest.mark.parametrize("build", [build_encoder, build_decoder])
def test_pretrained_rows_start_the_embedding_and_can_be_frozen(build):
    rows = np.random.default_rng(0).normal(size=(12, 3)).astype("float32")
    model = build(12, units=4, pretrained=rows, trainable=False, mask_zero=True)
    embedding = model.layers[0]
    assert embedding.output_dim == 3 and not embedding.trainable_weights
    np.testing.assert_array_equal(embedding.get_weights()[0], rows)
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="binary_crossentropy")
    model.fit(IDS, np.array([1.0, 0.0]), epochs=1, verbose=0)
    np.testing.assert_array_equal(embedding.get_weights()[0], rows)
    trainable = build(12, units=4, pretrained=rows)
    assert len(trainable.layers[0].trainable_weights) == 1


def test_pretrained_shape_mismatches_are_named():
    rows = np.zeros((12, 3), "float32")
    with pytest.raises(ValueError, match=r"one row per token id, \(vocab_size=10"):
        build_encoder(10, pretrained=rows)
    with pytest.raises(ValueError, match="embed_dim=8 but the pretrained vectors are 3 wide"):
        build_decoder(12, embed_dim=8, pretrained=rows)


@pytest.mark.parametrize("build", [build_encoder, build_decoder])
def test_dropout_follows_the_embedding_and_passes_the_mask_on(build):
    keras.utils.set_random_seed(2)
    model = build(12, embed_dim=5, units=4, mask_zero=True, dropout=0.5)
    assert type(model.layers[1]) is keras.layers.Dropout and model.layers[1].rate == 0.5
    padded = model.predict(IDS, verbose=0)  # inference: dropout off, padding still skipped
    np.testing.assert_allclose(model.predict(more_padding(IDS), verbose=0), padded, atol=1e-6)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in build(12).layers)
    with pytest.raises(ValueError, match=r"`dropout` is a rate in \[0, 1\), got 1.0"):
        build(12, dropout=1.0)
