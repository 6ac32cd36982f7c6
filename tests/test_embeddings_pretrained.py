"""keras_recipes.embeddings.pretrained_embeddings against the vectors' own lookups."""

import numpy as np
import pytest
from gensim.models import KeyedVectors as GensimKeyedVectors

from keras_recipes.embeddings import KeyedVectors, build_vocabulary, pretrained_embeddings

WORDS = ["good", "bad", "film", "plot", "acting", "dull"]
VECTORS = np.random.default_rng(0).normal(0.0, 0.3, (len(WORDS), 8)).astype(np.float32)


def both_kinds():
    ours, gensims = KeyedVectors(8), GensimKeyedVectors(8)
    for kv in (ours, gensims):
        kv.add_vectors(WORDS, VECTORS)
    return ours, gensims


@pytest.mark.parametrize("kv", both_kinds(), ids=["ours", "gensim"])
def test_rows_are_the_vectors_lookups_and_missing_words_are_counted(kv):
    # TextVectorization's order: padding "", "[UNK]", then words by frequency.
    vocabulary = ["", "[UNK]", "film", "zany", "good", "plot", "xyzzy", "dull"]
    rows = pretrained_embeddings(kv, vocabulary, seed=3)
    assert rows.matrix.shape == (8, 8) and rows.matrix.dtype == np.float32
    for row, token in enumerate(vocabulary):
        if token in WORDS:
            np.testing.assert_array_equal(rows.matrix[row], kv[token])
    assert rows.missing == ["zany", "xyzzy"]
    assert not rows.matrix[0].any()
    assert all(rows.matrix[row].any() for row in (1, 3, 6))  # [UNK] and missing: random


def test_random_rows_are_seeded_and_on_the_vectors_scale():
    kv, _ = both_kinds()
    unknown = [f"unknown{i}" for i in range(400)]
    first = pretrained_embeddings(kv, ["", "[UNK]", *unknown], seed=5).matrix
    again = pretrained_embeddings(kv, ["", "[UNK]", *unknown], seed=5).matrix
    other = pretrained_embeddings(kv, ["", "[UNK]", *unknown], seed=6).matrix
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first[1:], other[1:])
    assert first[2:].std() == pytest.approx(VECTORS.std(), rel=0.1)
    scaled = pretrained_embeddings(kv, ["", "[UNK]", *unknown], scale=0.01).matrix
    assert scaled[2:].std() == pytest.approx(0.01, rel=0.1)


def test_a_vocabulary_object_names_its_own_reserved_tokens():
    kv, _ = both_kinds()
    vocabulary = build_vocabulary([["good", "good", "film", "meh"]], pad_token="<pad>")
    rows = pretrained_embeddings(kv, vocabulary)
    assert vocabulary.index_to_token == ["<pad>", "[UNK]", "good", "film", "meh"]
    np.testing.assert_array_equal(rows.matrix[2], kv["good"])
    assert rows.missing == ["meh"] and not rows.matrix[0].any()


def test_bad_arguments_are_named():
    kv, _ = both_kinds()
    with pytest.raises(TypeError, match="pass KeyedVectors"):
        pretrained_embeddings({"good": VECTORS[0]}, ["", "good"])
    with pytest.raises(ValueError, match="vocabulary is empty"):
        pretrained_embeddings(kv, [])
