"""keras_recipes.taggers: the notes' tagger by default; character encoders, CRF and padding masks."""

import string

import keras
import numpy as np
import pytest

from keras_recipes.layers import CharacterEncoder
from keras_recipes.rnn import build_bidirectional
from keras_recipes.taggers import CRFTagger, build_tagger

VOCAB, TAGS, CHARS = 30, 4, 20


def batch(seed=0, rows=6, length=5, width=4):
    """Word ids, char ids and tags with the last two steps of every row padded."""
    rng = np.random.default_rng(seed)
    words = rng.integers(1, VOCAB, (rows, length)).astype("int32")
    chars = rng.integers(1, CHARS, (rows, length, width)).astype("int32")
    tags = rng.integers(1, TAGS, (rows, length)).astype("int32")
    words[:, -2:], chars[:, -2:], tags[:, -2:] = 0, 0, 0
    return words, chars, tags


@pytest.fixture(scope="module")
def crf_tagger():
    keras.utils.set_random_seed(0)
    tagger = build_tagger(
        VOCAB, TAGS, embed_dim=6, units=4, char_vocab_size=CHARS, char_encoder="cnn",
        char_units=5, crf=True,
    )  # fmt: skip
    tagger.compile(optimizer="adam", run_eagerly=True)  # tracing the scans costs more than 6 rows
    return tagger


def test_default_is_the_notes_tagger_layer_for_layer():
    tagger = build_tagger(VOCAB, TAGS, embed_dim=8, units=5)
    embedding, bidirectional, head = tagger.layers
    assert isinstance(embedding, keras.layers.Embedding) and embedding.mask_zero
    assert isinstance(bidirectional.forward_layer, keras.layers.LSTM)
    assert bidirectional.forward_layer.return_sequences and bidirectional.merge_mode == "concat"
    assert head.units == TAGS and head.activation.__name__ == "softmax"
    reference = build_bidirectional(
        "lstm", 5, "concat", (None, 8), return_sequences=True, num_outputs=TAGS,
        output_activation="softmax",
    )  # fmt: skip
    assert tagger.count_params() == VOCAB * 8 + reference.count_params()


@pytest.mark.parametrize("crf", [False, True])
def test_padding_never_counts_in_the_loss(crf):
    """More padding columns, and any labels under them, leave the loss unchanged."""
    keras.utils.set_random_seed(1)
    tagger = build_tagger(VOCAB, TAGS, embed_dim=6, units=4, crf=crf)
    loss = None if crf else "sparse_categorical_crossentropy"
    tagger.compile(optimizer="adam", loss=loss, run_eagerly=True)  # no tracing: 3 shapes
    words, _, tags = batch()
    loss = tagger.evaluate(words, tags, verbose=0)
    noisy = tags.copy()
    noisy[:, -2:] = 3
    longer_words = np.pad(words, ((0, 0), (0, 3)))
    longer_tags = np.pad(noisy, ((0, 0), (0, 3)), constant_values=2)
    np.testing.assert_allclose(tagger.evaluate(words, noisy, verbose=0), loss, rtol=1e-5)
    np.testing.assert_allclose(
        tagger.evaluate(longer_words, longer_tags, verbose=0), loss, rtol=1e-5
    )


@pytest.mark.parametrize("kind, width", [("cnn", 7), ("lstm", 14)])
def test_character_encoder_shapes_and_masks(kind, width):
    encoder = CharacterEncoder(CHARS, kind, char_dim=5, units=7)
    _, chars, _ = batch()
    features = np.asarray(encoder(chars))
    assert features.shape == (6, 5, width)
    mask = np.asarray(encoder.compute_mask(chars))
    np.testing.assert_array_equal(mask, np.arange(5)[None].repeat(6, 0) < 3)
    assert (features[:, -2:] == 0).all()  # padding words are zeros
    # a word's vector does not depend on how much character padding follows it
    wider = np.pad(chars, ((0, 0), (0, 0), (0, 3)))
    np.testing.assert_allclose(np.asarray(encoder(wider)), features, atol=1e-6)


def test_character_encoder_learns_capitalisation():
    """Random letter strings, tagged by whether they start with a capital."""
    rng = np.random.default_rng(3)
    letters = string.ascii_letters
    char_id = {ch: i + 1 for i, ch in enumerate(letters)}

    def sentences(n):
        chars = np.zeros((n, 6, 5), "int32")
        tags = np.zeros((n, 6), "int32")
        for row in range(n):
            for col in range(6):
                word = "".join(rng.choice(list(string.ascii_lowercase), rng.integers(1, 6)))
                capital = rng.random() < 0.5
                word = word.capitalize() if capital else word
                chars[row, col, : len(word)] = [char_id[ch] for ch in word]
                tags[row, col] = 1 if capital else 2
        return {"words": np.ones((n, 6), "int32"), "chars": chars}, tags

    x_train, y_train = sentences(200)
    x_test, y_test = sentences(50)
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((None, None), dtype="int32"),
            CharacterEncoder(len(letters) + 1, "cnn", char_dim=8, units=8),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.03), "sparse_categorical_crossentropy")
    model.fit(x_train["chars"], y_train, epochs=3, batch_size=16, verbose=0)
    accuracy = (model.predict(x_test["chars"], verbose=0).argmax(-1) == y_test).mean()
    assert accuracy > 0.95, accuracy


def test_crf_tagger_trains_and_predicts_viterbi_tags(crf_tagger):
    words, chars, tags = batch()
    x = {"words": words, "chars": chars}
    before = crf_tagger.evaluate(x, tags, verbose=0)
    crf_tagger.fit(x, tags, epochs=3, verbose=0)
    assert crf_tagger.evaluate(x, tags, verbose=0) < before
    predicted = crf_tagger.predict(x, verbose=0)
    assert predicted.shape == words.shape and predicted.dtype == np.int32
    assert (predicted[:, -2:] == 0).all()
    scores = np.asarray(crf_tagger(x))
    expected, _ = crf_tagger.crf.decode(scores, words != 0)
    np.testing.assert_array_equal(predicted, np.asarray(expected))


def test_crf_tagger_round_trips_through_a_keras_file(crf_tagger, tmp_path):
    words, chars, tags = batch(seed=5)
    x = {"words": words, "chars": chars}
    crf_tagger.save(tmp_path / "tagger.keras")
    loaded = keras.models.load_model(tmp_path / "tagger.keras")
    assert isinstance(loaded, CRFTagger)
    loaded.run_eagerly = True
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), crf_tagger.predict(x, verbose=0))
    np.testing.assert_allclose(
        loaded.evaluate(x, tags, verbose=0), crf_tagger.evaluate(x, tags, verbose=0), rtol=1e-5
    )


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="char_vocab_size"):
        build_tagger(VOCAB, TAGS, char_encoder="cnn")
    with pytest.raises(ValueError, match="char_encoder"):
        build_tagger(VOCAB, TAGS, char_vocab_size=CHARS, char_encoder="gru")
