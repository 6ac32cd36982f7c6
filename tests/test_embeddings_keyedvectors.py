"""KeyedVectors answers as gensim 4's KeyedVectors does, on the same vectors.

Every test loads one word2vec file into both (ours and
`gensim.models.KeyedVectors`) and asks both the same question: keys must be
equal, numbers equal to 1e-5, return types alike.
"""

import pickle

import numpy as np
import pytest
from gensim.models import KeyedVectors as GensimKeyedVectors
from gensim.test.utils import datapath

from keras_recipes.embeddings import KeyedVectors


def _words():
    """Words of gensim's analogy and word-pair files (upper and lower case), in file order."""
    words = []
    with open(datapath("questions-words.txt")) as lines:
        words += [w for line in lines if not line.startswith(":") for w in line.split()]
    with open(datapath("wordsim353.tsv")) as lines:
        words += [w for line in lines if not line.startswith("#") for w in line.split("\t")[:2]]
    words = list(dict.fromkeys(words))[:900]
    return words + [w.lower() for w in words[:300] if w.lower() not in words]


@pytest.fixture(scope="module")
def vector_file(tmp_path_factory):
    """A word2vec text file: random vectors, with king - man + woman close to queen."""
    keys = _words()
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(keys), 12)).astype(np.float32)
    row = {k: i for i, k in enumerate(keys)}
    vectors[row["queen"]] = vectors[row["king"]] - vectors[row["man"]] + vectors[row["woman"]]
    vectors[row["queen"]] += rng.normal(scale=0.1, size=12)
    path = tmp_path_factory.mktemp("vectors") / "vectors.txt"
    with open(path, "w") as f:
        f.write(f"{len(keys)} 12\n")
        for key, vector in zip(keys, vectors, strict=True):
            f.write(key + " " + " ".join(repr(float(v)) for v in vector) + "\n")
    return path


@pytest.fixture()
def both(vector_file):
    """(ours, gensim's), loaded from the same file, fresh for each test."""
    return (
        KeyedVectors.load_word2vec_format(vector_file),
        GensimKeyedVectors.load_word2vec_format(str(vector_file)),
    )


def assert_same_ranking(got, expected):
    assert [key for key, _ in got] == [key for key, _ in expected]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-5)
    assert all(type(s) is float for _, s in got)


# ---------------------------------------------------------------- lookups


def test_same_file_gives_same_keys_vectors_and_counts(both):
    ours, theirs = both
    assert ours.index_to_key == theirs.index_to_key
    assert ours.key_to_index == theirs.key_to_index
    np.testing.assert_array_equal(ours.vectors, theirs.vectors)
    assert ours.vectors.dtype == theirs.vectors.dtype == np.float32
    assert len(ours) == len(theirs) and ours.vector_size == theirs.vector_size == 12
    for key in ("king", "paris", ours.index_to_key[-1]):
        assert ours.get_vecattr(key, "count") == theirs.get_vecattr(key, "count")


def test_getitem_takes_a_key_a_row_number_or_a_list(both):
    ours, theirs = both
    for query in ("king", 3, np.int64(3), ["king", "queen", 7]):
        np.testing.assert_array_equal(ours[query], theirs[query])
        assert ours[query].shape == theirs[query].shape


def test_membership_and_indexes(both):
    ours, theirs = both
    for key in ("king", "no-such-word", 5, 10**6):
        assert (key in ours) == (key in theirs)
        assert ours.has_index_for(key) == theirs.has_index_for(key)
        assert ours.get_index(key, default=-7) == theirs.get_index(key, default=-7)
    with pytest.raises(KeyError, match="'no-such-word'"):
        ours.get_index("no-such-word")


def test_get_vector_normalized_and_read_only(both):
    ours, theirs = both
    np.testing.assert_allclose(ours.get_vector("king", norm=True), theirs.get_vector("king", norm=True), atol=1e-6)  # fmt: skip
    assert not ours.get_vector("king").flags.writeable
    np.testing.assert_allclose(ours.get_normed_vectors(), theirs.get_normed_vectors(), atol=1e-6)


# ---------------------------------------------------------------- most_similar


@pytest.mark.parametrize(
    "positive, negative",
    [
        ("king", None),
        (["king"], []),
        (["king", "woman"], ["man"]),
        (None, "paris"),
        ([("king", 2.0), "woman"], [("man", -0.5)]),
        ([3, 10], [1]),
    ],
    ids=["key", "list", "analogy", "negative-only", "weighted-pairs", "row-numbers"],
)
def test_most_similar_argument_forms(both, positive, negative):
    ours, theirs = both
    expected = theirs.most_similar(positive=positive, negative=negative, topn=7)
    assert_same_ranking(ours.most_similar(positive=positive, negative=negative, topn=7), expected)


def test_most_similar_takes_vectors_and_mixes(both):
    ours, theirs = both
    vector = theirs["king"] - theirs["man"]
    for positive in (vector, np.stack([vector, theirs["paris"]]), [vector, "woman"]):
        assert_same_ranking(
            ours.most_similar(positive=positive, negative=["berlin"]),
            theirs.most_similar(positive=positive, negative=["berlin"]),
        )


def test_king_minus_man_plus_woman_is_queen(both):
    ours, _ = both
    assert ours.most_similar(positive=["king", "woman"], negative=["man"], topn=1)[0][0] == "queen"


def test_topn_none_returns_every_cosine(both):
    ours, theirs = both
    got = ours.most_similar("king", topn=None)
    assert isinstance(got, np.ndarray) and got.shape == (len(ours),)
    np.testing.assert_allclose(got, theirs.most_similar("king", topn=None), atol=1e-6)
    assert ours.most_similar("king", topn=0) == theirs.most_similar("king", topn=0) == []


def test_restrict_vocab_and_clipping(both):
    ours, theirs = both
    assert_same_ranking(ours.most_similar("king", restrict_vocab=200), theirs.most_similar("king", restrict_vocab=200))  # fmt: skip
    assert_same_ranking(
        ours.most_similar("king", clip_start=100, clip_end=600),
        theirs.most_similar("king", clip_start=100, clip_end=600),
    )
    np.testing.assert_allclose(
        ours.most_similar("king", topn=None, clip_start=100, clip_end=600),
        theirs.most_similar("king", topn=None, clip_start=100, clip_end=600),
        atol=1e-6,
    )


def test_indexer_is_refused_with_the_reason(both):
    ours, _ = both
    with pytest.raises(NotImplementedError, match="indexer"):
        ours.most_similar("king", indexer=object())


def test_unknown_keys_name_the_key(both):
    ours, _ = both
    with pytest.raises(KeyError, match="'emperor'"):
        ours.most_similar(positive=["king", "emperor"])
    with pytest.raises(KeyError, match="'emperor'"):
        ours["emperor"]


def test_similar_by_word_key_and_vector(both):
    ours, theirs = both
    assert_same_ranking(ours.similar_by_word("king", topn=5), theirs.similar_by_word("king", topn=5))  # fmt: skip
    assert_same_ranking(ours.similar_by_key("paris", restrict_vocab=300), theirs.similar_by_key("paris", restrict_vocab=300))  # fmt: skip
    vector = theirs["king"] + theirs["paris"]
    assert_same_ranking(ours.similar_by_vector(vector), theirs.similar_by_vector(vector))


@pytest.mark.parametrize(
    "positive, negative",
    [(["king", "woman"], ["man"]), ("king", None), (["king"], ["paris", "berlin"])],
)
def test_most_similar_cosmul(both, positive, negative):
    ours, theirs = both
    assert_same_ranking(
        ours.most_similar_cosmul(positive, negative), theirs.most_similar_cosmul(positive, negative)
    )
    np.testing.assert_allclose(
        ours.most_similar_cosmul(positive, negative, topn=None),
        theirs.most_similar_cosmul(positive, negative, topn=None),
        rtol=1e-5,
    )


# ---------------------------------------------------------------- similarities and distances


def test_similarity_and_distance_of_two_keys(both):
    ours, theirs = both
    for method in ("similarity", "distance"):
        got, expected = getattr(ours, method)("king", "queen"), getattr(theirs, method)("king", "queen")  # fmt: skip
        assert got == pytest.approx(expected, abs=1e-6)
        assert type(got) is type(expected)


def test_distances_to_every_key_or_to_some(both):
    ours, theirs = both
    np.testing.assert_allclose(ours.distances("king"), theirs.distances("king"), atol=1e-6)
    others = ["queen", "paris", "man"]
    np.testing.assert_allclose(ours.distances(ours["king"], others), theirs.distances(theirs["king"], others), atol=1e-6)  # fmt: skip
    rows = theirs.vectors[:5]
    np.testing.assert_allclose(
        KeyedVectors.cosine_similarities(rows[0], rows),
        GensimKeyedVectors.cosine_similarities(rows[0], rows),
        atol=1e-6,
    )


def test_n_similarity_of_two_lists(both):
    ours, theirs = both
    pair = (["king", "queen", "unknown-word"], ["man", "woman"])
    assert ours.n_similarity(*pair) == pytest.approx(theirs.n_similarity(*pair), abs=1e-6)
    with pytest.raises(ZeroDivisionError):
        ours.n_similarity([], ["man"])


def test_closer_than_and_rank(both):
    ours, theirs = both
    assert ours.closer_than("king", "queen") == theirs.closer_than("king", "queen")
    for key in ("queen", "paris", ours.index_to_key[-1]):
        assert ours.rank("king", key) == theirs.rank("king", key)


def test_relative_cosine_similarity(both):
    ours, theirs = both
    got = ours.relative_cosine_similarity("king", "queen", topn=5)
    assert got == pytest.approx(theirs.relative_cosine_similarity("king", "queen", topn=5), abs=1e-6)  # fmt: skip


def test_centrality_doesnt_match_and_most_similar_to_given(both):
    ours, theirs = both
    words = ["king", "queen", "man", "woman", "paris", "no-such-word"]
    got, expected = ours.rank_by_centrality(words), theirs.rank_by_centrality(words)
    assert [w for _, w in got] == [w for _, w in expected]
    np.testing.assert_allclose([s for s, _ in got], [s for s, _ in expected], atol=1e-6)
    assert ours.doesnt_match(words) == theirs.doesnt_match(words)
    assert ours.most_similar_to_given("king", words[:5]) == theirs.most_similar_to_given("king", words[:5])  # fmt: skip


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"pre_normalize": False}, {"post_normalize": True}, {"weights": [1.0, -2.0, 0.5]}],
)
def test_get_mean_vector(both, kwargs):
    ours, theirs = both
    keys = ["king", "queen", "unknown-word"] if "weights" not in kwargs else ["king", 4, ours["paris"]]  # fmt: skip
    np.testing.assert_allclose(ours.get_mean_vector(keys, **kwargs), theirs.get_mean_vector(keys, **kwargs), atol=1e-6)  # fmt: skip
    with pytest.raises(KeyError, match="unknown-word"):
        ours.get_mean_vector(["king", "unknown-word"], ignore_missing=False)


# ---------------------------------------------------------------- evaluations


@pytest.mark.parametrize(
    "kwargs", [{}, {"restrict_vocab": 400}, {"case_insensitive": False}, {"dummy4unknown": True}]
)
def test_word_pairs_give_scipy_results_as_gensim(both, kwargs):
    ours, theirs = both
    pearson, spearman, oov = ours.evaluate_word_pairs(datapath("wordsim353.tsv"), **kwargs)
    g_pearson, g_spearman, g_oov = theirs.evaluate_word_pairs(datapath("wordsim353.tsv"), **kwargs)
    statistic, pvalue = spearman  # a (statistic, pvalue) pair, as scipy returns it
    assert spearman[0] == statistic == pytest.approx(g_spearman[0], abs=1e-5)
    assert pvalue == pytest.approx(g_spearman[1], rel=1e-4)
    assert spearman.statistic == pytest.approx(g_spearman.statistic, abs=1e-5)
    np.testing.assert_allclose(tuple(pearson), tuple(g_pearson), rtol=1e-4, atol=1e-6)
    assert oov == pytest.approx(g_oov) and type(oov) is type(g_oov)


@pytest.fixture(scope="module")
def analogies(tmp_path_factory):
    """Every section of gensim's questions-words.txt, every 10th question (a fast test)."""
    path = tmp_path_factory.mktemp("analogies") / "questions.txt"
    with open(datapath("questions-words.txt")) as lines:
        kept = [line for n, line in enumerate(lines) if line.startswith(":") or n % 10 == 0]
    path.write_text("".join(kept))
    return str(path)


@pytest.mark.parametrize("kwargs", [{}, {"restrict_vocab": 500}, {"dummy4unknown": True}])
def test_word_analogies_as_gensim(both, analogies, kwargs):
    ours, theirs = both
    score, sections = ours.evaluate_word_analogies(analogies, **kwargs)
    g_score, g_sections = theirs.evaluate_word_analogies(analogies, **kwargs)
    assert score == pytest.approx(g_score)
    assert sections == g_sections


# ---------------------------------------------------------------- editing


def test_building_from_empty_with_add_vector_add_vectors_and_assignment(both):
    source, _ = both
    keys, vectors = source.index_to_key[:6], source.vectors[:6]
    kinds = [
        (KeyedVectors(12), GensimKeyedVectors(12)),
        (KeyedVectors(vector_size=12, count=3), GensimKeyedVectors(vector_size=12, count=3)),
    ]
    for ours, theirs in kinds:
        for kv in (ours, theirs):
            assert kv.add_vector(keys[0], vectors[0]) == 0
            kv.add_vectors(keys[1:4], vectors[1:4])
            kv.add_vectors([keys[1], keys[4]], vectors[[5, 4]])  # keys[1] already there: kept
            kv[keys[5]] = vectors[5]
            kv[[keys[2], keys[3]]] = vectors[[0, 0]]  # replaces
        assert ours.index_to_key == theirs.index_to_key
        np.testing.assert_array_equal(ours.vectors, theirs.vectors)
        assert ours.most_similar(keys[0], topn=3) == theirs.most_similar(keys[0], topn=3)


def test_add_vectors_replace(both):
    ours, theirs = both
    new = np.ones((2, 12), np.float32)
    for kv in both:
        kv.add_vectors(["king", "brand-new"], new, replace=True)
    np.testing.assert_array_equal(ours["king"], theirs["king"])
    assert ours.index_to_key == theirs.index_to_key
    assert ours.most_similar("king", topn=3)[0][0] == "brand-new"  # norms were refreshed


def test_vectors_for_all(both):
    ours, theirs = both
    wanted = ["paris", "king", "no-such-word", "paris", "queen"]
    got, expected = ours.vectors_for_all(wanted), theirs.vectors_for_all(wanted)
    assert isinstance(got, KeyedVectors)
    assert got.index_to_key == expected.index_to_key == ["paris", "king", "queen"]
    np.testing.assert_array_equal(got.vectors, expected.vectors)
    assert list(got.counts) == [expected.get_vecattr(k, "count") for k in expected.index_to_key]
    copied = ours.vectors_for_all(wanted, copy_vecattrs=True)
    assert copied.get_vecattr("king", "count") == theirs.get_vecattr("king", "count")


def test_unit_normalize_all_and_fill_norms(both):
    for kv in both:
        kv.fill_norms()
        kv.unit_normalize_all()
    np.testing.assert_allclose(both[0].vectors, both[1].vectors, atol=1e-6)
    np.testing.assert_allclose(both[0].norms, both[1].norms)


def test_sort_by_descending_frequency(both):
    ours, theirs = both
    rng = np.random.default_rng(5)
    counts = rng.integers(1, 20, len(ours))  # many ties
    for kv in both:
        for key, count in zip(list(kv.index_to_key), counts, strict=True):
            kv.set_vecattr(key, "count", int(count))
        kv.sort_by_descending_frequency()
    assert ours.index_to_key == theirs.index_to_key
    np.testing.assert_array_equal(ours.vectors, theirs.vectors)
    assert_same_ranking(ours.most_similar("king"), theirs.most_similar("king"))


def test_intersect_word2vec_format_copies_shared_keys_and_locks_them(both, tmp_path):
    ours, theirs = both
    path = tmp_path / "other.txt"
    path.write_text("3 12\nking" + " 1" * 12 + "\nnewcomer" + " 2" * 12 + "\nparis" + " 3" * 12 + "\n")  # fmt: skip
    theirs.vectors_lockf = np.ones(len(theirs), np.float32)  # gensim's Word2Vec sets this
    for kv in both:
        kv.intersect_word2vec_format(str(path), lockf=0.0)
    assert "newcomer" not in ours and len(ours) == len(theirs)
    np.testing.assert_array_equal(ours.vectors, theirs.vectors)
    np.testing.assert_array_equal(ours.vectors_lockf, theirs.vectors_lockf)


# ---------------------------------------------------------------- files


@pytest.mark.parametrize(
    "kwargs",
    [
        {"binary": True},
        {"binary": False},
        {"write_header": False},
        {"prefix": "w_"},
        {"total_vec": 5000},
    ],
)
def test_saved_word2vec_files_read_the_same_in_gensim(both, tmp_path, kwargs):
    ours, theirs = both
    for kv in both:  # counts decide the order of the written keys
        kv.set_vecattr("paris", "count", 10**6)
    ours.save_word2vec_format(tmp_path / "ours", **kwargs)
    theirs.save_word2vec_format(str(tmp_path / "theirs"), **kwargs)
    read = {"binary": kwargs.get("binary", False), "no_header": not kwargs.get("write_header", True)}  # fmt: skip
    if "total_vec" in kwargs:  # gensim reads as many as the header promises: compare the text
        assert (tmp_path / "ours").read_text().split("\n")[0] == (tmp_path / "theirs").read_text().split("\n")[0]  # fmt: skip
        return
    a = GensimKeyedVectors.load_word2vec_format(str(tmp_path / "ours"), **read)
    b = GensimKeyedVectors.load_word2vec_format(str(tmp_path / "theirs"), **read)
    assert a.index_to_key == b.index_to_key and a.index_to_key[0] == kwargs.get("prefix", "") + "paris"  # fmt: skip
    np.testing.assert_allclose(a.vectors, b.vectors, rtol=1e-6)


def test_append_and_vocabulary_files(both, tmp_path):
    ours, theirs = both
    small = [kv.vectors_for_all(["king", "queen"]) for kv in both]
    for name, kv in zip(("ours", "theirs"), small, strict=True):
        kv.save_word2vec_format(str(tmp_path / name), fvocab=str(tmp_path / f"{name}.vocab"))
        kv.save_word2vec_format(str(tmp_path / name), prefix="x_", append=True, write_header=False)  # fmt: skip
    assert (tmp_path / "ours.vocab").read_text() == (tmp_path / "theirs.vocab").read_text()
    assert [line.split()[0] for line in (tmp_path / "ours").read_text().splitlines()] == ["2", "king", "queen", "x_king", "x_queen"]  # fmt: skip
    again = KeyedVectors.load_word2vec_format(tmp_path / "ours", fvocab=tmp_path / "ours.vocab", limit=2)  # fmt: skip
    assert again.get_vecattr("king", "count") == small[1].get_vecattr("king", "count")


def test_load_options_on_a_gensim_written_file(both, tmp_path):
    _, theirs = both
    theirs.save_word2vec_format(str(tmp_path / "g.bin"), binary=True)
    theirs.save_word2vec_format(str(tmp_path / "g.txt"), write_header=False)
    cases = [
        ("g.bin", {"binary": True, "limit": 50}),
        ("g.txt", {"no_header": True, "limit": 30}),
        ("g.bin", {"binary": True, "datatype": np.float64}),
    ]
    for name, kwargs in cases:
        got = KeyedVectors.load_word2vec_format(tmp_path / name, **kwargs)
        expected = GensimKeyedVectors.load_word2vec_format(str(tmp_path / name), **kwargs)
        assert got.index_to_key == expected.index_to_key
        assert got.vectors.dtype == expected.vectors.dtype
        np.testing.assert_allclose(got.vectors, expected.vectors, rtol=1e-6)
        assert list(got.counts) == [expected.get_vecattr(k, "count") for k in expected.index_to_key]  # fmt: skip
    with pytest.raises(NotImplementedError, match="no_header"):
        KeyedVectors.load_word2vec_format(tmp_path / "g.bin", binary=True, no_header=True)


def test_unicode_errors_for_keys_cut_mid_character(tmp_path):
    path = tmp_path / "cut.bin"
    path.write_bytes(b"2 2\nna\xc3 " + np.ones(2, "<f4").tobytes() + b"\nok " + np.zeros(2, "<f4").tobytes())  # fmt: skip
    with pytest.raises(UnicodeDecodeError):
        KeyedVectors.load_word2vec_format(path, binary=True)
    for errors in ("ignore", "replace"):
        got = KeyedVectors.load_word2vec_format(path, binary=True, unicode_errors=errors)
        expected = GensimKeyedVectors.load_word2vec_format(str(path), binary=True, unicode_errors=errors)  # fmt: skip
        assert got.index_to_key == expected.index_to_key


def test_save_and_load_round_trip_without_pickle(both, tmp_path):
    ours, _ = both
    ours.set_vecattr("king", "count", 42)
    ours.save(tmp_path / "vectors.kv")
    with np.load(tmp_path / "vectors.kv", allow_pickle=False) as archive:  # no code runs
        assert "vectors" in archive.files
    again = KeyedVectors.load(tmp_path / "vectors.kv")
    assert again.index_to_key == ours.index_to_key
    np.testing.assert_array_equal(again.vectors, ours.vectors)
    assert again.get_vecattr("king", "count") == 42
    assert again.most_similar("king") == ours.most_similar("king")


def test_a_gensim_pickle_is_refused_pointing_to_the_word2vec_format(both, tmp_path):
    _, theirs = both
    theirs.save(str(tmp_path / "gensim.kv"))
    with pytest.raises(ValueError, match="load_word2vec_format") as error:
        KeyedVectors.load(tmp_path / "gensim.kv")
    assert "pickle" in str(error.value)
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="pickle"):
        KeyedVectors.load(tmp_path / "plain.pkl")
