"""Models gensim's `save()` wrote load into our classes with `allow_pickle=True`, and only then.

gensim writes every file here itself (in `tmp_path`); the oracle is gensim's
own `load` and query API on the same file.
"""

import os
import pickle

import numpy as np
import pytest

gensim = pytest.importorskip("gensim")
from gensim.models import Doc2Vec as GensimDoc2Vec  # noqa: E402
from gensim.models import KeyedVectors as GensimKeyedVectors  # noqa: E402
from gensim.models import Word2Vec as GensimWord2Vec  # noqa: E402
from gensim.models.doc2vec import TaggedDocument  # noqa: E402
from gensim.models.word2vec import LineSentence  # noqa: E402
from gensim.test.utils import datapath  # noqa: E402

from keras_recipes.embeddings import Doc2Vec, KeyedVectors, Word2Vec  # noqa: E402

SENTENCES = list(LineSentence(datapath("lee_background.cor")))[:100]


@pytest.fixture(scope="module")
def gensim_word2vec():
    return GensimWord2Vec(SENTENCES, vector_size=16, min_count=2, workers=1, epochs=2, seed=5)


@pytest.fixture(scope="module")
def gensim_doc2vec():
    documents = [TaggedDocument(words, [i]) for i, words in enumerate(SENTENCES)]
    return GensimDoc2Vec(documents, vector_size=16, min_count=2, workers=1, epochs=2, seed=5)


@pytest.mark.parametrize(
    "name, save_kwargs",
    [("w2v.model", {}), ("w2v.model", {"sep_limit": 10}), ("w2v.model.gz", {"sep_limit": 10})],
    ids=["one-pickle", "arrays-beside", "compressed"],
)
def test_word2vec_saved_by_gensim_loads_with_its_vectors(
    gensim_word2vec, tmp_path, name, save_kwargs
):
    path = str(tmp_path / name)
    gensim_word2vec.save(path, **save_kwargs)
    if save_kwargs:
        assert len(os.listdir(tmp_path)) > 1  # gensim did store arrays beside the pickle
    model = Word2Vec.load(path, allow_pickle=True)
    reference = GensimWord2Vec.load(path)
    assert model.wv.index_to_key == reference.wv.index_to_key
    np.testing.assert_array_equal(model.wv.vectors, reference.wv.vectors)
    np.testing.assert_array_equal(model.syn1neg, reference.syn1neg)
    np.testing.assert_array_equal(model.wv.counts, reference.wv.expandos["count"])
    assert (model.vector_size, model.window, model.sg, model.negative, model.min_count) == (
        16, 5, 0, 5, 2,
    )  # fmt: skip
    word = reference.wv.index_to_key[3]
    ours, theirs = model.wv.most_similar(word, topn=5), reference.wv.most_similar(word, topn=5)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=1e-5)


def test_a_loaded_gensim_model_trains_on(gensim_word2vec, tmp_path):
    gensim_word2vec.save(str(tmp_path / "w2v.model"))
    model = Word2Vec.load(tmp_path / "w2v.model", allow_pickle=True)
    before = model.wv.vectors.copy()
    model.train(SENTENCES, total_examples=len(SENTENCES), epochs=1)
    assert not np.array_equal(model.wv.vectors, before)
    model.save(tmp_path / "ours.npz")
    np.testing.assert_array_equal(Word2Vec.load(tmp_path / "ours.npz").wv.vectors, model.wv.vectors)


@pytest.mark.parametrize("cls", [Word2Vec, Doc2Vec, KeyedVectors])
def test_without_the_flag_the_error_says_pickle_and_names_it(gensim_word2vec, tmp_path, cls):
    gensim_word2vec.save(str(tmp_path / "w2v.model"))
    with pytest.raises(ValueError, match=r"pickle.*allow_pickle=True"):
        cls.load(tmp_path / "w2v.model")


def test_keyed_vectors_saved_by_gensim_load(gensim_word2vec, tmp_path):
    path = str(tmp_path / "vectors.kv")
    gensim_word2vec.wv.save(path)
    vectors = KeyedVectors.load(path, allow_pickle=True)
    reference = GensimKeyedVectors.load(path)
    assert vectors.index_to_key == reference.index_to_key
    np.testing.assert_array_equal(vectors.vectors, reference.vectors)
    with pytest.raises(ValueError, match=r"holds a gensim Word2Vec.*Word2Vec.load"):
        gensim_word2vec.save(str(tmp_path / "w2v.model"))
        KeyedVectors.load(tmp_path / "w2v.model", allow_pickle=True)


def test_doc2vec_saved_by_gensim_loads_and_infers(gensim_doc2vec, tmp_path):
    path = str(tmp_path / "d2v.model")
    gensim_doc2vec.save(path, sep_limit=10)
    model = Doc2Vec.load(path, allow_pickle=True)
    reference = GensimDoc2Vec.load(path)
    assert model.dv.index_to_key == reference.dv.index_to_key
    np.testing.assert_array_equal(model.dv.vectors, reference.dv.vectors)
    np.testing.assert_array_equal(model.wv.vectors, reference.wv.vectors)
    assert (model.dm, model.cbow_mean, model.epochs) == (1, 1, 2)
    ours = [t for t, _ in model.dv.most_similar(7, topn=5)]
    assert ours == [t for t, _ in reference.dv.most_similar(7, topn=5)]
    # infer_vector runs on the loaded weights: a training document lands near itself.
    inferred = model.infer_vector(SENTENCES[7], epochs=50)
    assert inferred.shape == (16,) and np.isfinite(inferred).all()
    assert isinstance(Word2Vec.load(path, allow_pickle=True), Doc2Vec)  # as gensim's


@pytest.mark.parametrize(
    "cls, name",
    [
        (Word2Vec, "old_w2v_models/w2v_3.4.0.mdl"),
        (Word2Vec, "model-from-gensim-3.8.0.w2v"),
        (Doc2Vec, "old_d2v_models/d2v_3.4.0.mdl"),
        (KeyedVectors, "old_keyedvectors_320.dat"),
    ],
)
def test_older_gensim_releases_files_load(cls, name):
    model = cls.load(datapath(name), allow_pickle=True)
    vectors = model if cls is KeyedVectors else model.wv
    reference = GensimKeyedVectors.load(datapath(name)) if cls is KeyedVectors else None
    if cls is Word2Vec:
        reference = GensimWord2Vec.load(datapath(name)).wv
    if reference is not None:  # gensim 4.4 reads these; it cannot read its old Doc2Vec files
        assert vectors.index_to_key == reference.index_to_key
        np.testing.assert_array_equal(vectors.vectors, reference.vectors)
    else:
        assert len(model.dv) == 2 and model.dv.vectors.shape == (2, model.vector_size)


class _RunsCode:
    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_pickle_naming_other_code_is_refused_and_nothing_runs(tmp_path):
    evil = _RunsCode()
    evil.path = str(tmp_path / "was-run")
    (tmp_path / "evil.model").write_bytes(pickle.dumps(evil))
    with pytest.raises(ValueError, match=r"names (posix|os|nt)\.mkdir, which is not one of gensim"):
        Word2Vec.load(tmp_path / "evil.model", allow_pickle=True)
    assert not (tmp_path / "was-run").exists()


def test_a_missing_array_file_is_named(gensim_word2vec, tmp_path):
    gensim_word2vec.save(str(tmp_path / "w2v.model"), sep_limit=10)
    os.remove(tmp_path / "w2v.model.syn1neg.npy")
    with pytest.raises(ValueError, match=r"w2v\.model\.syn1neg\.npy, which is missing"):
        Word2Vec.load(tmp_path / "w2v.model", allow_pickle=True)
