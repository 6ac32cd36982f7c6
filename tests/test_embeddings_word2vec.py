"""Word2Vec trained in-graph: gensim's vocabulary, subsampling, pairs and a king-queen corpus."""

import numpy as np
import pytest
from gensim.models import Word2Vec as GensimWord2Vec

from keras_recipes.embeddings import Word2Vec
from keras_recipes.embeddings.word2vec import _alias_table

ROYAL = ["crown", "throne", "palace", "court"]
COMMON = ["farm", "field", "market", "street"]
MALE = ["he", "his", "beard", "him"]
FEMALE = ["she", "her", "dress", "hers"]
WHO = {"king": (ROYAL, MALE), "queen": (ROYAL, FEMALE), "man": (COMMON, MALE), "woman": (COMMON, FEMALE)}  # fmt: skip


def royal_corpus(n=1500, seed=0):
    """Sentences where each of king/queen/man/woman appears only among its two traits' words."""
    rng = np.random.default_rng(seed)
    names = list(WHO)
    sentences = []
    for _ in range(n):
        word = names[rng.integers(4)]
        status, gender = WHO[word]
        context = list(rng.choice(status, 3)) + list(rng.choice(gender, 3))
        rng.shuffle(context)
        sentences.append(context[:3] + [word] + context[3:])
    return sentences


@pytest.fixture(scope="module", params=[(1, False), (0, False), (1, True)],
                ids=["skip-gram", "cbow", "skip-gram-shared-negatives"])  # fmt: skip
def royal_model(request):
    sg, shared = request.param
    return Word2Vec(
        royal_corpus(), vector_size=24, window=3, min_count=1, sg=sg, shared_negatives=shared,
        negative=5, sample=0, epochs=5, seed=3, batch_size=512, workers=1,
    )  # fmt: skip


def test_king_minus_man_plus_woman_is_queen(royal_model):
    best = royal_model.wv.most_similar(positive=["king", "woman"], negative=["man"], topn=1)
    assert best[0][0] == "queen"
    assert royal_model.wv.similarity("king", "queen") > royal_model.wv.similarity("king", "farm")
    assert royal_model.wv.doesnt_match(["crown", "throne", "palace", "farm"]) == "farm"


def test_training_reports_speed_and_every_example(royal_model):
    assert royal_model.words_per_second > 0 and royal_model.train_seconds > 0
    words = 1500 * 7
    assert royal_model.corpus_total_words == words
    if royal_model.sg and not royal_model.shared_negatives:  # 1 to 6 neighbours a word
        assert words * 5 <= royal_model.trained_examples <= words * 6 * 5 + 512 * 5
    else:  # one example per centre word (batches of batch_size // 4 centres)
        assert words * 5 <= royal_model.trained_examples <= words * 5 + 128 * 5


def test_vocabulary_and_subsampling_match_gensim():
    sentences = royal_corpus(300) + [["rare", "word"]] * 2
    ours = Word2Vec(min_count=3, sample=1e-2)
    ours.build_vocab(sentences)
    theirs = GensimWord2Vec(min_count=3, sample=1e-2)
    theirs.build_vocab(sentences)
    assert sorted(ours.wv.index_to_key) == sorted(theirs.wv.index_to_key)
    assert "rare" not in ours.wv
    for word in ours.wv.index_to_key:
        keep = ours._keep_probability[ours.wv.key_to_index[word]]
        assert keep == pytest.approx(theirs.wv.get_vecattr(word, "sample_int") / 2**32, abs=1e-6)
        assert ours.word_counts[ours.wv.key_to_index[word]] == theirs.wv.get_vecattr(word, "count")


def test_noise_distribution_is_unigram_to_the_three_quarters():
    counts = np.array([100, 40, 10, 3, 1], np.float64)
    accept, alias = _alias_table(counts**0.75)
    mass = accept / len(counts)
    for column in range(len(counts)):
        mass[alias[column]] += (1 - accept[column]) / len(counts)
    np.testing.assert_allclose(mass, counts**0.75 / (counts**0.75).sum(), atol=1e-6)


def test_pairs_respect_windows_sentences_and_decay():
    import tensorflow as tf

    model = Word2Vec(window=3, min_count=1, sample=0, sg=1, alpha=0.025, min_alpha=0.005)
    model.build_vocab([[f"w{i}" for i in range(50)], [f"v{i}" for i in range(30)]])
    pairs = model._pair_function(tf, tf.random.Generator.from_seed(0))
    ids, sentences = tf.constant(model._ids), tf.constant(model._sentence_ids)
    ((target, context, rate),), arrays, kept = pairs(  # one bucket: no hs
        ids, sentences, tf.constant(0.02), tf.constant(0.01), tf.constant(64), tf.size(ids)
    )
    assert arrays == ()  # skip-gram's examples are whole (centre, context) pairs
    assert int(kept) == 80  # sample=0 keeps every word
    rate = rate.numpy().ravel()
    real = rate > 0
    target, context = target.numpy().ravel()[real], context.numpy().ravel()[real]
    position = {w: (w[0], int(w[1:])) for w in model.wv.index_to_key}
    keys = model.wv.index_to_key
    distances = []
    for t, c in zip(target, context, strict=True):
        (ts, tp), (cs, cp) = position[keys[t]], position[keys[c]]
        assert ts == cs, "a pair crossed a sentence boundary"
        distances.append(abs(tp - cp))
    # Reduced windows: distance d is used with probability (window - d + 1) / window.
    counts = np.bincount(distances, minlength=4)[1:]
    assert counts[0] > counts[1] > counts[2] > 0 and max(distances) <= 3
    # Learning rate falls linearly from the chunk's start to its end value.
    assert rate[real].max() == pytest.approx(0.02) and rate[real].min() > 0.01


@pytest.mark.parametrize(
    "sentences, kwargs, message",
    [
        ([], {}, "corpus is empty"),
        ([[], []], {}, "corpus is empty"),
        ([["a", "b"], ["a"]], {"min_count": 5}, r"min_count=5 .*'a', appears 2 times"),
        (["a plain string"], {}, "is a string"),
        ([["a"]], {"sg": 2}, "sg must be"),
        ([["a"]], {"window": 0}, "window must be"),
    ],
)
def test_bad_corpora_and_settings_are_named(sentences, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Word2Vec(sentences, **kwargs)


@pytest.mark.parametrize("token", [1, None, 2.5, b"bytes", ["nested"]])
def test_tokens_that_are_not_strings_are_refused_up_front(token):
    with pytest.raises(ValueError, match=rf"tokens must be strings; corpus token 3 is .*{type(token).__name__}"):  # fmt: skip
        Word2Vec([["a", "b"], ["c", token]], min_count=1)


def test_tiny_corpora_train_instead_of_crashing_in_tensorflow():
    # No word has a neighbour: nothing to train, as in gensim, and a warning says so.
    with pytest.warns(UserWarning, match=r"trained on no \(centre, context\) pairs"):
        model = Word2Vec([["hello"]], min_count=1, vector_size=8)
    assert model.wv["hello"].shape == (8,) and np.isfinite(model.wv.vectors).all()
    # 120 tokens at the default sample=1e-3: subsampling keeps no pair in some epochs
    # (those crashed with "slice index 0 ... out of bounds") and some pairs in others.
    model = Word2Vec([["the", "cat", "sat"]] * 40, min_count=1, vector_size=8, seed=1)
    assert model.trained_examples > 0 and np.isfinite(model.wv.vectors).all()


@pytest.mark.parametrize("sg", [1, 0], ids=["skip-gram", "cbow"])
def test_corpus_in_several_chunks_trains_every_chunk_with_decaying_rate(sg):
    # CBOW's steps read windows from each chunk's arrays, padded to the longest
    # chunk: chunks of other lengths must train as well.
    model = Word2Vec(
        royal_corpus(600), vector_size=16, window=3, min_count=1, sg=sg, sample=0,
        epochs=2, seed=1, batch_size=256, chunk_words=1000, workers=1,
    )  # fmt: skip
    assert len(model._chunks) == 5  # 4200 words, cut at sentence ends after 1000
    assert len({hi - lo for lo, hi, _ in model._chunks}) > 1  # of different lengths
    assert sum(raw for _, _, raw in model._chunks) == model.corpus_total_words
    assert model.trained_examples >= 2 * 4200  # every centre word has neighbours
    best = model.wv.most_similar(positive=["king", "woman"], negative=["man"], topn=1)
    assert best[0][0] == "queen"


def test_sample_above_one_is_an_absolute_count_as_in_gensim():
    sentences = royal_corpus(200)
    ours = Word2Vec(min_count=1, sample=50)
    ours.build_vocab(sentences)
    theirs = GensimWord2Vec(min_count=1, sample=50)
    theirs.build_vocab(sentences)
    for word in ours.wv.index_to_key:
        keep = ours._keep_probability[ours.wv.key_to_index[word]]
        assert keep == pytest.approx(theirs.wv.get_vecattr(word, "sample_int") / 2**32, abs=1e-6)


@pytest.mark.parametrize("shrink", [True, False])
def test_window_reach_gives_the_windows_of_the_window_mask(shrink):
    # CBOW and PV-DM steps read each word's window from two numbers per word
    # (`_window_reach`, `_window_context`); they must be the windows the
    # (n, 2 * window) mask of `_windows` draws from the same generator state.
    import tensorflow as tf

    from keras_recipes.embeddings.word2vec import _window_context, _window_reach, _windows

    rng = np.random.default_rng(3)
    n, window = 400, 4
    words = tf.constant(rng.integers(0, 50, n), tf.int32)
    lengths = [1, 2, 7, 3, 60, 1, 150, 9]  # sentences of one word too
    sentences = tf.constant(np.repeat(np.arange(len(lengths)) * 3, lengths)[:n], tf.int32)
    n = int(tf.size(sentences))
    words = words[:n]
    mask = _windows(tf, tf.random.Generator.from_seed(1), words, sentences, window, shrink)
    expected = tf.where(mask[1], mask[0], -1).numpy()
    reach = _window_reach(tf, tf.random.Generator.from_seed(1), sentences, window, shrink)
    positions = tf.constant(rng.permutation(n), tf.int32)
    target, context = _window_context(tf, positions, words, reach, window)
    np.testing.assert_array_equal(target.numpy(), words.numpy()[positions.numpy()])
    np.testing.assert_array_equal(context.numpy(), expected[positions.numpy()])
    assert (context.numpy() >= 0).sum() > n  # windows were drawn, not all empty
    empty = _window_reach(tf, tf.random.Generator.from_seed(1), sentences[:0], window, shrink)
    assert empty.shape == (0, 2)
