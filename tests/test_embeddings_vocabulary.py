"""keras_recipes.embeddings vocabulary, integer and one-hot codes, and TF-IDF."""

import math

import numpy as np
import pytest

from keras_recipes.embeddings import build_vocabulary, one_hot, tf_idf, vocab_size

SENTENCES = [["the", "king", "rules"], ["the", "queen", "rules", "the", "land"], ["a", "king"]]


def test_vocab_size_counts_unique_tokens_as_the_notes_do():
    all_words = [word for sentence in SENTENCES for word in sentence]
    assert vocab_size(SENTENCES) == len(list(set(all_words))) == 6


def test_vocabulary_reserves_padding_and_oov_and_orders_by_count():
    vocab = build_vocabulary(SENTENCES)
    assert vocab.index_to_token[:4] == ["[PAD]", "[UNK]", "the", "king"]
    assert len(vocab) == 2 + vocab_size(SENTENCES)
    assert vocab.lookup("emperor") == vocab.oov_index == 1
    assert vocab.counts[2] == 3


def test_min_count_and_max_size_drop_rare_tokens():
    vocab = build_vocabulary(SENTENCES, min_count=2)
    assert vocab.index_to_token == ["[PAD]", "[UNK]", "the", "king", "rules"]
    assert build_vocabulary(SENTENCES, max_size=3).index_to_token == ["[PAD]", "[UNK]", "the"]


def test_integer_encoding_pads_with_zero_and_decodes_back():
    vocab = build_vocabulary(SENTENCES)
    ids = vocab.encode([["the", "king"], ["queen", "of", "the", "land"]])
    assert ids.dtype == np.int32 and ids.shape == (2, 4)
    assert ids[0].tolist() == [2, 3, 0, 0] and ids[1, 1] == 1
    assert vocab.decode(ids[0]) == ["the", "king"]
    assert vocab.encode([["the", "king", "rules"]], sequence_length=2).tolist() == [[2, 3]]


def test_one_hot_rows_sum_to_one_except_padding():
    vocab = build_vocabulary(SENTENCES)
    codes = vocab.one_hot([["the", "nobody"]], sequence_length=3)
    assert codes.shape == (1, 3, len(vocab))
    assert codes[0, 0, 2] == 1.0 and codes[0, 1, 1] == 1.0
    assert codes[0].sum(axis=1).tolist() == [1.0, 1.0, 0.0]
    assert np.array_equal(one_hot([1, 0], 2), np.eye(2)[[1, 0]])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: build_vocabulary([]), "empty"),
        (lambda: build_vocabulary([[]]), "empty"),
        (lambda: build_vocabulary(SENTENCES, min_count=0), "min_count"),
        (lambda: vocab_size(["a sentence as a string"]), "list of string tokens"),
        (lambda: one_hot([3], 3), r"\[0, 3\)"),
        (lambda: build_vocabulary(SENTENCES).decode([99]), "outside"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_tf_idf_matches_the_closed_form():
    documents = ["the cat sat on the mat", "the dog sat", "a cat and a dog", "birds fly"]
    matrix, vocabulary, layer = tf_idf(documents)
    tokenized = [d.split() for d in documents]
    n = len(documents)
    expected = np.zeros((n, len(vocabulary)), np.float32)
    idf = {}
    for token in vocabulary[1:]:
        df = sum(token in doc for doc in tokenized)
        idf[token] = math.log(1 + n / (1 + df))
    for row, doc in enumerate(tokenized):
        for token in doc:
            expected[row, vocabulary.index(token)] += idf[token]
    assert vocabulary[0] == "[UNK]"
    np.testing.assert_allclose(matrix, expected, rtol=1e-5)
    # Unknown words are counted at index 0 with the mean idf of the vocabulary.
    unknown = np.asarray(layer(np.array(["zebra zebra cat"])))
    assert unknown[0, 0] == pytest.approx(2 * np.mean(list(idf.values())), rel=1e-5)
    assert unknown[0, vocabulary.index("cat")] == pytest.approx(idf["cat"], rel=1e-5)
