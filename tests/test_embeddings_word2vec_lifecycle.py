"""Word2Vec's gensim life cycle: build_vocab, train, update, corpus files, callbacks, loss, save/load."""

import numpy as np
import pytest
from gensim.models import Word2Vec as GensimWord2Vec
from test_embeddings_word2vec import royal_corpus

from keras_recipes.embeddings import CallbackAny2Vec, KeyedVectors, Word2Vec

SMALL = dict(vector_size=24, window=3, min_count=1, sg=1, sample=0, seed=3, workers=1, batch_size=512)  # fmt: skip


def queen_is_found(wv):
    return wv.most_similar(positive=["king", "woman"], negative=["man"], topn=1)[0][0] == "queen"


@pytest.fixture(scope="module")
def trained():
    """gensim's way: an empty model, then build_vocab, then train."""
    model = Word2Vec(**SMALL)
    model.build_vocab(royal_corpus())
    result = model.train(royal_corpus(), total_examples=model.corpus_count, epochs=5)
    return model, result


def test_build_vocab_then_train_returns_gensims_word_counts(trained):
    model, result = trained
    theirs = GensimWord2Vec(**{k: v for k, v in SMALL.items() if k != "batch_size"})
    theirs.build_vocab(royal_corpus())
    expected = theirs.train(royal_corpus(), total_examples=theirs.corpus_count, epochs=5)
    assert result == expected == (5 * 1500 * 7, 5 * 1500 * 7)  # (trained, raw) words
    assert (model.corpus_count, model.corpus_total_words) == (theirs.corpus_count, theirs.corpus_total_words)  # fmt: skip
    assert model.epochs == 5 and model.train_count == 1
    assert queen_is_found(model.wv)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_count": 2},
        {"sorted_vocab": 0},
        {"max_final_vocab": 5},
        {"trim_rule": lambda word, count, min_count: 1 if word.startswith("w") else 0},  # discard
    ],
    ids=["min_count", "unsorted", "max_final_vocab", "trim_rule"],
)
def test_vocabulary_is_gensims_in_gensims_order(kwargs):
    sentences = royal_corpus(200) + [["rare", "words", "here"], ["words"]]
    rule = {"trim_rule": kwargs.pop("trim_rule")} if "trim_rule" in kwargs else {}
    ours, theirs = Word2Vec(**kwargs), GensimWord2Vec(**kwargs)
    ours.build_vocab(sentences, **rule)
    theirs.build_vocab(sentences, **rule)
    assert ours.wv.index_to_key == theirs.wv.index_to_key
    assert list(ours.wv.counts) == [theirs.wv.get_vecattr(k, "count") for k in theirs.wv.index_to_key]  # fmt: skip


def test_the_notes_line_trains():
    sentences = royal_corpus(300)
    model = Word2Vec(sentences, vector_size=100, window=5, min_count=1, workers=4)
    assert len(model.wv) == 20 and model.wv["king"].shape == (100,)


def test_update_adds_new_words_and_training_goes_on():
    copy = Word2Vec(**SMALL)
    copy.build_vocab(royal_corpus())
    copy.train(royal_corpus(), total_examples=copy.corpus_count, epochs=5)
    new = [[("prince" if w == "king" else w) for w in s] for s in royal_corpus(1500, seed=7)]
    before = copy.wv["queen"].copy()
    theirs = GensimWord2Vec(**{k: v for k, v in SMALL.items() if k != "batch_size"})
    theirs.build_vocab(royal_corpus())
    for m in (copy, theirs):
        m.build_vocab(new, update=True)
    assert copy.wv.index_to_key == theirs.wv.index_to_key and copy.wv.index_to_key[-1] == "prince"  # fmt: skip
    assert list(copy.wv.counts) == [theirs.wv.get_vecattr(k, "count") for k in theirs.wv.index_to_key]  # fmt: skip
    copy.train(new, total_examples=len(new), epochs=5)
    assert not np.array_equal(copy.wv["queen"], before)
    similarity = {w: copy.wv.similarity("prince", w) for w in ("king", "man", "woman", "farm")}
    assert max(similarity, key=similarity.get) == "king"


def test_corpus_file_trains_as_the_same_sentences(tmp_path):
    sentences = royal_corpus(400)
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(" ".join(s) for s in sentences) + "\n")
    from_file = Word2Vec(corpus_file=str(path), **SMALL, epochs=2)
    from_list = Word2Vec(sentences, **SMALL, epochs=2)
    assert from_file.wv.index_to_key == from_list.wv.index_to_key
    assert from_file.corpus_count == 400
    np.testing.assert_allclose(from_file.wv.vectors, from_list.wv.vectors, atol=1e-6)


class Recorder(CallbackAny2Vec):
    def __init__(self):
        self.events, self.losses, self.kings = [], [], []

    def on_train_begin(self, model):
        self.events.append("train_begin")

    def on_epoch_end(self, model):
        self.events.append("epoch_end")
        self.losses.append(model.get_latest_training_loss())
        self.kings.append(model.wv["king"].copy())

    def on_train_end(self, model):
        self.events.append("train_end")


def test_callbacks_see_every_epoch_with_its_vectors_and_loss():
    recorder = Recorder()
    model = Word2Vec(royal_corpus(), **SMALL, epochs=4, compute_loss=True, callbacks=[recorder])
    assert recorder.events == ["train_begin"] + ["epoch_end"] * 4 + ["train_end"]
    per_epoch = np.diff([0.0, *recorder.losses])
    assert per_epoch[0] > per_epoch[1] > per_epoch[-1] > 0  # the loss falls
    # At the start every logit is 0 (output vectors are zero): 6 terms of log 2 an example.
    examples = model.trained_examples / 4
    assert per_epoch[0] < examples * 6 * np.log(2)
    assert model.get_latest_training_loss() == recorder.losses[-1]
    assert not np.allclose(recorder.kings[0], recorder.kings[-1])
    np.testing.assert_array_equal(recorder.kings[-1], model.wv["king"])


def test_loss_is_zero_unless_asked_for(trained):
    model, _ = trained
    assert model.get_latest_training_loss() == 0.0


def test_save_load_and_train_on(trained, tmp_path):
    model, _ = trained
    model.save(tmp_path / "w2v.model")
    with np.load(tmp_path / "w2v.model", allow_pickle=False) as archive:
        assert {"wv.vectors", "syn1neg"} <= set(archive.files)
    again = Word2Vec.load(tmp_path / "w2v.model")
    assert again.wv.index_to_key == model.wv.index_to_key
    np.testing.assert_array_equal(again.wv.vectors, model.wv.vectors)
    np.testing.assert_array_equal(again.syn1neg, model.syn1neg)
    assert (again.sg, again.window, again.epochs, again.corpus_count) == (1, 3, 5, model.corpus_count)  # fmt: skip
    assert again.wv.most_similar("king") == model.wv.most_similar("king")
    with pytest.raises(ValueError, match="needs a corpus"):
        again.train()
    before = again.wv["king"].copy()
    again.train(royal_corpus(300), total_examples=300, epochs=1)
    assert not np.array_equal(again.wv["king"], before) and queen_is_found(again.wv)
    with pytest.raises(ValueError, match="holds a Word2Vec"):
        KeyedVectors.load(tmp_path / "w2v.model")


def test_a_gensim_model_pickle_is_refused_naming_the_way_out(tmp_path):
    GensimWord2Vec(royal_corpus(50), min_count=1, vector_size=8).save(str(tmp_path / "g.model"))
    with pytest.raises(ValueError, match="pickle.*load_word2vec_format"):
        Word2Vec.load(tmp_path / "g.model")


def test_no_training_objective_is_refused_clearly():
    with pytest.raises(ValueError, match=r"hs=0 with negative=0 trains nothing"):
        Word2Vec(royal_corpus(10), hs=0, negative=0)


def test_locked_rows_keep_their_vectors(tmp_path):
    model = Word2Vec(**SMALL)
    model.build_vocab(royal_corpus())
    path = tmp_path / "pretrained.txt"
    path.write_text("2 24\nking" + " 0.5" * 24 + "\nqueen" + " -0.5" * 24 + "\n")
    model.wv.intersect_word2vec_format(path, lockf=0.0)
    man = model.wv["man"].copy()
    model.train(royal_corpus(), total_examples=model.corpus_count, epochs=1)
    np.testing.assert_array_equal(model.wv["king"], np.full(24, 0.5, np.float32))
    assert not np.allclose(model.wv["man"], man)  # unlocked rows train


def test_predict_output_word_is_a_softmax_over_output_vectors(trained):
    model, _ = trained
    ranked = model.predict_output_word(["crown", "throne", "he"], topn=3)
    assert len(ranked) == 3 and ranked[0][1] >= ranked[1][1] >= ranked[2][1]
    hidden = model.wv[["crown", "throne", "he"]].mean(axis=0)
    scores = np.exp(hidden @ model.syn1neg.T)
    assert ranked[0][0] == model.wv.index_to_key[int(np.argmax(scores))]
    assert ranked[0][1] == pytest.approx(scores.max() / scores.sum(), rel=1e-5)


@pytest.mark.parametrize("cls", ["Word2Vec", "Doc2Vec"])
def test_a_second_train_reuses_its_compiled_step_and_trains_as_a_fresh_one(cls):
    # gensim code calls train() once per epoch, lowering alpha in between.
    from keras_recipes.embeddings import Doc2Vec, TaggedDocument

    text = royal_corpus()[:60]
    if cls == "Doc2Vec":
        corpus = [TaggedDocument(words, [i]) for i, words in enumerate(text)]
        make = lambda: Doc2Vec(vector_size=8, min_count=1, epochs=1, seed=5)  # noqa: E731
    else:
        corpus = text
        make = lambda: Word2Vec(vector_size=8, min_count=1, epochs=1, seed=5)  # noqa: E731
    reused, rebuilt = make(), make()
    for model in (reused, rebuilt):
        model.build_vocab(corpus)
    for number in range(3):
        for model in (reused, rebuilt):
            if model is rebuilt:
                model._trained_functions = None  # traced and compiled anew
            model.train(corpus, total_examples=len(corpus), epochs=1)
            model.alpha -= 0.005
            model.wv.vectors[:2] *= 0.5  # edits between calls are trained on
        if number == 0:
            first = reused._trained_functions[1]
    assert reused._trained_functions[1] is first  # the same variables and functions
    np.testing.assert_allclose(reused.wv.vectors, rebuilt.wv.vectors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reused.syn1neg, rebuilt.syn1neg, rtol=1e-5, atol=1e-6)
    # A new setting or vocabulary changes what the functions capture: made anew.
    reused.window += 1
    reused.train(corpus, total_examples=len(corpus), epochs=1)
    assert reused._trained_functions[1] is not first
    if cls == "Word2Vec":
        second = reused._trained_functions[1]
        reused.build_vocab([["brand", "new", "words"] * 3], update=True)
        reused.train([["brand", "new", "words"] * 3], total_examples=1, epochs=1)
        assert reused._trained_functions[1] is not second


def test_training_keeps_full_collections_off_older_objects_and_restores_the_collector():
    # train() (and Doc2Vec.infer_vector) freeze the objects that exist when they
    # start, so that a full garbage collection in the loop walks only new ones;
    # afterwards nothing stays frozen, and a program's own freeze is left alone.
    import gc

    seen = []

    class Watch(CallbackAny2Vec):
        def on_epoch_end(self, model):
            seen.append(gc.get_freeze_count())

    assert gc.get_freeze_count() == 0
    model = Word2Vec(royal_corpus(200), **{**SMALL, "epochs": 2}, callbacks=[Watch()])
    assert len(seen) == 2 and min(seen) > 0
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        model.train(royal_corpus(200), total_examples=200, epochs=1)
        assert 0 < gc.get_freeze_count() <= frozen  # still frozen (some objects freed)
    finally:
        gc.unfreeze()

    class Stop(CallbackAny2Vec):
        def on_epoch_end(self, model):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # a train stopped midway leaves nothing frozen
        model.train(royal_corpus(200), total_examples=200, epochs=1, callbacks=[Stop()])
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("sg", [1, 0], ids=["skip-gram", "cbow"])
def test_any_workers_train_the_same_vectors(sg):
    # workers > 1 builds the next chunk's examples on a second thread while the
    # steps run in order; the examples draw from their own generator, so the
    # vectors are those of workers=1, chunk after chunk.
    settings = {**SMALL, "sg": sg, "epochs": 2, "chunk_words": 1500}
    one, three = (Word2Vec(royal_corpus(600), **{**settings, "workers": w}) for w in (1, 3))
    assert len(one._chunks) > 1
    np.testing.assert_array_equal(one.wv.vectors, three.wv.vectors)
    assert one.trained_examples == three.trained_examples
