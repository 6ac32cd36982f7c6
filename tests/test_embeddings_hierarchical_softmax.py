"""Hierarchical softmax (`hs=1`): gensim's Huffman tree, training, `score()`, files.

Oracles: gensim 4's own tree (`wv.get_vecattr(word, "code")` / `"point"`)
and `score()` on the same saved model; training is checked on corpora whose
answer is known (two topics with disjoint words).
"""

import numpy as np
import pytest

gensim = pytest.importorskip("gensim")
from gensim.models import Word2Vec as GensimWord2Vec  # noqa: E402
from gensim.models.word2vec import LineSentence  # noqa: E402
from gensim.test.utils import datapath  # noqa: E402
from test_embeddings_doc2vec import topic_corpus, within_minus_across  # noqa: E402

from keras_recipes.embeddings import Doc2Vec, Word2Vec  # noqa: E402
from keras_recipes.embeddings.word2vec import huffman_tree  # noqa: E402

LEE = list(LineSentence(datapath("lee_background.cor")))
ANIMALS = "cat dog purr bark fur paw tail whisker kitten puppy meow leash".split()
FINANCE = "bank loan interest credit rate money stock bond market price trade debt".split()


def topic_sentences(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return [list(rng.choice((ANIMALS, FINANCE)[i % 2], 8)) for i in range(n)]


def topic_margin(wv):
    """Mean cosine of same-topic word pairs minus that of cross-topic pairs."""
    vectors = wv.get_normed_vectors()[[wv.get_index(w) for w in ANIMALS + FINANCE]]
    similarity = vectors @ vectors.T
    n = len(ANIMALS)
    same = np.add.outer(np.arange(2 * n) < n, np.arange(2 * n) < n) != 1
    return similarity[same & ~np.eye(2 * n, dtype=bool)].mean() - similarity[~same].mean()


@pytest.mark.parametrize("min_count", [1, 5])
def test_codes_and_points_equal_gensims(min_count):
    ours = Word2Vec(hs=1, negative=0, min_count=min_count)
    ours.build_vocab(LEE)
    theirs = GensimWord2Vec(hs=1, negative=0, min_count=min_count)
    theirs.build_vocab(LEE)
    assert ours.wv.index_to_key == theirs.wv.index_to_key
    for word in ours.wv.index_to_key:
        for attr in ("code", "point"):
            mine, reference = ours.wv.get_vecattr(word, attr), theirs.wv.get_vecattr(word, attr)
            assert mine.dtype == reference.dtype and np.array_equal(mine, reference), (word, attr)


def test_huffman_tree_of_a_known_vocabulary():
    codes, points = huffman_tree(np.array([5, 3, 1, 1]))
    # Frequent words get shorter codes; every word's path starts at the root (node 2).
    assert [len(c) for c in codes] == [1, 2, 3, 3]
    assert all(p[0] == 2 for p in points)
    assert len({tuple(c) for c in codes}) == 4  # a prefix code: all distinct


@pytest.mark.parametrize(
    "kwargs",
    [{"sg": 1, "negative": 0}, {"sg": 0, "negative": 0}, {"sg": 1, "negative": 5}],
    ids=["skip-gram", "cbow", "skip-gram+negative"],
)
def test_word2vec_with_hs_learns_the_topics(kwargs):
    model = Word2Vec(
        topic_sentences(), hs=1, vector_size=16, window=3, min_count=1, epochs=10, sample=0, seed=2,
        **kwargs,
    )  # fmt: skip
    assert model.syn1.shape == (len(model.wv), 16) and np.abs(model.syn1).sum() > 0
    assert topic_margin(model.wv) > 0.3


@pytest.mark.parametrize("dm, margin", [(0, 0.5), (1, 0.15)])
def test_doc2vec_with_hs_learns_and_infers(dm, margin):
    corpus = topic_corpus()
    model = Doc2Vec(
        corpus, dm=dm, hs=1, negative=0, vector_size=16, window=3, min_count=1, epochs=30,
        sample=0, seed=3,
    )  # fmt: skip
    assert within_minus_across(model) > margin
    inferred = model.infer_vector(corpus[0].words)
    similarity = model.dv.cosine_similarities(inferred, model.dv.vectors)
    assert similarity[:20].mean() > similarity[20:].mean() + 0.2  # among the animal documents


@pytest.fixture(scope="module")
def gensim_hs_models(tmp_path_factory):
    """gensim hs=1 models (skip-gram and CBOW) saved, and ours loaded from each."""
    folder = tmp_path_factory.mktemp("hs")
    models = {}
    for sg in (1, 0):
        theirs = GensimWord2Vec(
            LEE[:100], vector_size=16, min_count=2, workers=1, epochs=3, hs=1, negative=0, sg=sg
        )
        theirs.save(str(folder / f"sg{sg}.model"))
        models[sg] = theirs, Word2Vec.load(folder / f"sg{sg}.model", allow_pickle=True)
    return models


@pytest.mark.parametrize("sg", [1, 0])
def test_score_equals_gensims(gensim_hs_models, sg):
    theirs, ours = gensim_hs_models[sg]
    np.testing.assert_array_equal(ours.syn1, theirs.syn1)
    expected = theirs.score(LEE[100:130], total_sentences=30)
    scores = ours.score(LEE[100:130], total_sentences=30)
    assert scores.dtype == np.float32 and scores.shape == (30,)
    np.testing.assert_allclose(scores, expected, rtol=1e-4)


def test_score_needs_hierarchical_softmax():
    model = Word2Vec(min_count=1, vector_size=8)
    model.build_vocab(topic_sentences(20))
    with pytest.raises(RuntimeError, match="hierarchical softmax"):
        model.score([["cat", "dog"]])


def test_hs_model_saves_loads_and_trains_on(tmp_path):
    model = Word2Vec(
        topic_sentences(), hs=1, negative=0, sg=1, vector_size=8, min_count=1, epochs=2
    )
    model.save(tmp_path / "hs.npz")
    loaded = Word2Vec.load(tmp_path / "hs.npz")
    np.testing.assert_array_equal(loaded.syn1, model.syn1)
    np.testing.assert_array_equal(loaded.score([ANIMALS]), model.score([ANIMALS]))
    for word in ("cat", "bank"):
        assert np.array_equal(
            loaded.wv.get_vecattr(word, "code"), model.wv.get_vecattr(word, "code")
        )
    loaded.train(topic_sentences(50), total_examples=50, epochs=1)
    assert not np.array_equal(loaded.syn1, model.syn1)


def quality(wv):
    """WordSim-353 Spearman and analogy accuracy (gensim's bundled files)."""
    spearman = wv.evaluate_word_pairs(datapath("wordsim353.tsv"))[1][0]
    return spearman, wv.evaluate_word_analogies(datapath("questions-words.txt"))[0]


def head500_sentences():
    """gensim's head500.noblanks.cor, its lines cut into 10,000-word sentences as LineSentence does."""
    return list(LineSentence(datapath("head500.noblanks.cor")))


@pytest.mark.slow
@pytest.mark.parametrize("sg", [1, 0], ids=["skip-gram", "cbow"])
def test_quality_is_within_gensims_seed_to_seed_spread(sg):
    # Same corpus (gensim's head500.noblanks.cor, as benchmarks/word2vec_bench.py
    # trains), gensim's default settings, eight seeds each, in the same run:
    # our mean must reach gensim's range. CBOW here once fell short (WordSim-353
    # Spearman 0.48-0.50 against gensim's 0.58-0.60) while every example of a
    # chunk was shuffled; see Word2Vec._local_order. Measured 2026-12-07, CBOW:
    # Spearman ours 0.547-0.596 (mean 0.568), gensim 0.557-0.602 (mean 0.582);
    # analogies 1.3-2.2% and 1.5-2.3% (both means 1.85%). Three seeds were too
    # few: gensim's first three are its best.
    sentences = head500_sentences()
    settings = dict(sg=sg, hs=1, negative=0, workers=1)
    seeds = range(1, 9)
    theirs = np.array([quality(GensimWord2Vec(sentences, seed=s, **settings).wv) for s in seeds])
    ours = np.array([quality(Word2Vec(sentences, seed=s, **settings).wv) for s in seeds])
    # Not worse than gensim's worst seed (better than its best would be no fault).
    assert np.all(ours.mean(axis=0) >= theirs.min(axis=0) - 1e-9), (ours, theirs)


def test_examples_split_by_tree_depth_train_as_with_the_deepest_padding(monkeypatch):
    # Examples whose target's path is short are padded only to their bucket's
    # depth: the step over them must equal the step padded to the deepest path.
    import tensorflow as tf

    import keras_recipes.embeddings.word2vec as word2vec

    monkeypatch.setattr(word2vec, "_MIN_SPLIT_DEPTH", 2)
    model = Word2Vec(hs=1, negative=0, vector_size=8, min_count=1, sample=0, seed=1, sg=1)
    model.build_vocab(LEE)
    depths = model._bucket_depths()
    lengths = np.array([len(code) for code in model.wv.expandos["code"]])
    assert len(depths) == 2 and depths[0] < depths[1] == lengths.max()
    # Every example lands in the bucket its target's path fits, none lost.
    pairs = model._pair_function(tf, tf.random.Generator.from_seed(0))
    ids, sentences = tf.constant(model._ids[:4000]), tf.constant(model._sentence_ids[:4000])
    buckets, _, _ = pairs(
        ids, sentences, tf.constant(0.02), tf.constant(0.01), tf.constant(256), tf.size(ids)
    )
    real = [
        (t.numpy()[r.numpy() > 0], depth) for (t, _, r), depth in zip(buckets, depths, strict=True)
    ]
    assert all(lengths[t].max() <= depth for t, depth in real)
    assert lengths[real[1][0]].min() > depths[0]
    total = sum(len(t) for t, _ in real)
    monkeypatch.setattr(word2vec, "_MIN_SPLIT_DEPTH", 10**6)  # one bucket
    one = model._pair_function(tf, tf.random.Generator.from_seed(0))
    ((_, _, rate),), _, _ = one(
        ids, sentences, tf.constant(0.02), tf.constant(0.01), tf.constant(256), tf.size(ids)
    )
    assert total == int((rate.numpy() > 0).sum())
    # The short bucket's step, padded to its depth, equals the deepest padding's.
    target, context, rate = (x[0] for x in buckets[0])
    results = []
    for depth in (depths[0], None):
        syn0 = tf.Variable(model.wv.vectors)
        syn1 = tf.Variable(model._output_vectors)
        tree = tf.Variable(np.random.default_rng(2).normal(size=model._hs_vectors.shape).astype("float32"))  # fmt: skip
        step = model._step_function(tf, None, syn0, syn1, 256, None, tree, depth)
        step((target, context, rate))
        results.append((syn0.numpy(), tree.numpy()))
    for short, full in zip(*results, strict=True):
        np.testing.assert_allclose(short, full, rtol=1e-6, atol=1e-7)


def test_hierarchical_softmax_alone_keeps_the_corpus_order_from_step_to_step():
    # hs alone learns better in corpus order (gensim's), so each step takes the
    # next batch of examples, shuffled only within it; with negative sampling
    # the chunk's examples are shuffled across steps.
    import tensorflow as tf

    from keras_recipes.embeddings.word2vec import _shuffled_batches

    assert Word2Vec(hs=1, negative=0)._local_order()
    assert not Word2Vec(hs=1, negative=5)._local_order()
    assert not Word2Vec(hs=0, negative=5)._local_order()
    m, batch = 1000, 128
    rng = tf.random.Generator.from_seed(0)
    corpus = tf.range(m)
    rates = 0.025 - 0.025 * np.arange(m) / m  # the corpus-order schedule
    local = _shuffled_batches(tf, rng, (corpus, corpus), 0.025, 0.0, batch, local=True)
    target, context, rate = (x.numpy() for x in local)
    assert target.shape == (8, batch)
    np.testing.assert_array_equal(target, context)
    for step in range(len(target)):
        real = target[step][rate[step] > 0]  # padding has rate 0
        np.testing.assert_array_equal(np.sort(real), np.arange(step * batch, min(m, (step + 1) * batch)))  # fmt: skip
        np.testing.assert_allclose(rate[step][rate[step] > 0], rates[real], atol=1e-8)
    assert not np.array_equal(target[0], np.arange(batch))
    target, _, rate = (
        x.numpy() for x in _shuffled_batches(tf, rng, (corpus, corpus), 0.025, 0.0, batch)
    )
    assert target[0].max() >= batch  # shuffled across steps
    np.testing.assert_array_equal(np.sort(target[rate > 0]), np.arange(m))
