"""Vector files, GloVe loading, Keras Embedding layers and subword vectors.

The gensim API of KeyedVectors, method by method: test_embeddings_keyedvectors.py.
"""

import numpy as np
import pytest
from gensim.models import KeyedVectors as GensimKeyedVectors
from gensim.models.fasttext import ft_hash_bytes
from gensim.test.utils import datapath

from keras_recipes.embeddings import (
    KeyedVectors,
    build_vocabulary,
    char_ngrams,
    fnv1a_32,
    load_vectors,
)


def _data_words():
    """Every word of the analogy and word-pair files, plus some lower-case ones."""
    words = []
    with open(datapath("questions-words.txt")) as lines:
        for line in lines:
            if not line.startswith(":"):
                words.extend(line.split())
    with open(datapath("wordsim353.tsv")) as lines:
        for line in lines:
            if not line.startswith("#"):
                words.extend(line.split("\t")[:2])
    return list(dict.fromkeys(words))


@pytest.fixture(scope="module")
def random_pair():
    """The same random vectors as ours and gensim's KeyedVectors."""
    rng = np.random.default_rng(0)
    keys = _data_words()[:900]
    keys += [k.lower() for k in keys[:300] if k.lower() not in keys]
    vectors = rng.normal(size=(len(keys), 12)).astype(np.float32)
    # Make analogies answerable: queen ~ king - man + woman for a few.
    theirs = GensimKeyedVectors(12)
    theirs.add_vectors(keys, vectors)
    return KeyedVectors(keys, vectors), theirs


def royal_vectors():
    """Hand-made vectors: royalty, gender and noise axes."""
    axes = {"king": [1, 1, 0], "queen": [1, -1, 0], "man": [0, 1, 0.1], "woman": [0, -1, 0.1]}
    axes.update({"apple": [0, 0, 1], "crown": [1, 0, -0.2]})
    return KeyedVectors(list(axes), np.array(list(axes.values()), np.float32))


def test_analogy_accuracy_is_one_on_hand_made_vectors(tmp_path):
    questions = tmp_path / "q.txt"
    questions.write_text(": royal\nman king woman queen\nMAN KING WOMAN QUEEN\nman king x y\n")
    score, sections = royal_vectors().evaluate_word_analogies(questions)
    assert score == 1.0 and len(sections[-1]["correct"]) == 2


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_format_round_trips_through_gensim(tmp_path, binary, random_pair):
    ours, _ = random_pair
    path = tmp_path / "ours.bin"
    ours.save_word2vec_format(path, binary=binary)
    theirs = GensimKeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert theirs.index_to_key == ours.index_to_key
    np.testing.assert_array_equal(theirs.vectors, ours.vectors)
    back = tmp_path / "theirs.bin"
    theirs.save_word2vec_format(str(back), binary=binary)
    again = KeyedVectors.load_word2vec_format(back, binary=binary)
    assert again.index_to_key == ours.index_to_key
    np.testing.assert_array_equal(again.vectors, ours.vectors)


def test_load_vectors_reads_glove_and_vec_files(tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("the 0.1 0.2 0.3\nking 1 0 -1\n")
    vec = tmp_path / "ft.vec"
    vec.write_text("2 3\nthe 0.1 0.2 0.3\nking 1 0 -1\n")
    for path in (glove, vec):
        kv = load_vectors(path)
        assert kv.index_to_key == ["the", "king"]
        np.testing.assert_allclose(kv["king"], [1, 0, -1])


@pytest.mark.parametrize(
    "text, message",
    [
        ("the 0.1 0.2 0.3\nking 1 0\n", r"line 2: word 'king' has 2 values .* 3"),
        ("the 0.1 0.2 0.3\nking 1 0 1 5\n", r"line 2: word 'king' has 4 values"),
        ("2 3\nthe 0.1 0.2 0.3\n", "header promises 2 words"),
        ("the 0.1 x 0.3\n", "line 1"),
    ],
)
def test_bad_vector_files_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        load_vectors(path)
    assert "bad.txt" in str(error.value)


def test_embedding_layer_holds_the_vectors_and_can_be_frozen():
    kv = royal_vectors()
    vocab = build_vocabulary([["king", "queen", "queen", "dragon"]])
    matrix = kv.embedding_matrix(vocab)
    assert matrix.shape == (len(vocab), 3)
    np.testing.assert_array_equal(matrix[vocab.lookup("queen")], kv["queen"])
    assert not matrix[0].any() and not matrix[vocab.lookup("dragon")].any()
    assert kv.missing_tokens == ["[UNK]", "dragon"]
    frozen = kv.embedding_layer(vocab, trainable=False)
    trainable = kv.embedding_layer(vocab, trainable=True)
    assert not frozen.trainable_weights and len(trainable.trainable_weights) == 1
    out = np.asarray(frozen(np.array([[vocab.lookup("king")]])))
    np.testing.assert_allclose(out[0, 0], kv["king"])


def test_fnv1a_hash_matches_fasttext_as_gensim_computes_it():
    for text in ["<ki", "king>", "naïve", "日本語", ""]:
        data = text.encode("utf-8")
        assert fnv1a_32(data) == ft_hash_bytes(data)
    assert char_ngrams("ab", 3, 4) == ["<ab", "ab>", "<ab>"]


def test_subword_vectors_give_unknown_words_their_relatives_meaning():
    rng = np.random.default_rng(1)
    keys = ["kingdom", "kingly", "queenly", "queens", "apple", "apples"]
    vectors = rng.normal(size=(len(keys), 16)).astype(np.float32)
    kv = KeyedVectors(keys, vectors)
    kv.build_subwords(min_n=3, max_n=6)
    unknown = kv.get_vector("kingship")
    # Closed form without hashing: mean over the word's seen n-grams of the
    # mean vector of the known words that contain each n-gram.
    holders = {}
    for key, vector in zip(keys, vectors, strict=True):
        for gram in set(char_ngrams(key)):
            holders.setdefault(gram, []).append(vector)
    seen = [np.mean(holders[g], axis=0) for g in char_ngrams("kingship") if g in holders]
    np.testing.assert_allclose(unknown, np.mean(seen, axis=0), rtol=1e-5, atol=1e-6)
    cosine = {k: unknown @ kv[k] / np.linalg.norm(unknown) / np.linalg.norm(kv[k]) for k in keys}
    assert max(cosine, key=cosine.get) in ("kingdom", "kingly")
    with pytest.raises(KeyError, match="zzzz"):
        kv.get_vector("zzzz")
    # Unknown words take part in queries through their subword vector.
    assert kv.most_similar("kingship", topn=1)[0][0] in ("kingdom", "kingly")
