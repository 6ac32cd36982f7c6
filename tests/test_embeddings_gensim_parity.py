"""gensim code runs on our Word2Vec and Doc2Vec with only the import switched.

Each test runs the same lines against gensim 4 (the oracle) and against
keras_recipes, and compares what gensim's own API answers. Corpora are
gensim's bundled test data (`gensim.test.utils.datapath`).
"""

import numpy as np
import pytest

gensim = pytest.importorskip("gensim")
from gensim.models import doc2vec as gensim_doc2vec  # noqa: E402
from gensim.models import word2vec as gensim_word2vec  # noqa: E402
from gensim.test.utils import common_texts, datapath  # noqa: E402

from keras_recipes.embeddings import Doc2Vec, TaggedDocument, Word2Vec  # noqa: E402

LEE = datapath("lee_background.cor")


def lee_sentences():
    return list(gensim_word2vec.LineSentence(LEE))


@pytest.mark.parametrize("module", [gensim_word2vec, "ours"])
@pytest.mark.parametrize("min_count", [0, 1])
def test_min_count_zero_keeps_every_word_as_in_gensim(module, min_count):
    cls = Word2Vec if module == "ours" else module.Word2Vec
    model = cls(vector_size=8, min_count=min_count)
    model.build_vocab(common_texts)
    assert len(model.wv) == len({w for s in common_texts for w in s}) == 12


@pytest.mark.parametrize("seed", [1, 7])
def test_initial_vectors_are_gensims_for_the_same_seed(seed):
    # gensim 4's prep_vectors: uniform in [-1, 1) / vector_size from
    # default_rng(seed); Doc2Vec's tags from seed + 7919; a grown vocabulary
    # keeps its rows and draws the new ones from the grown table.
    ours, theirs = (
        Word2Vec(vector_size=8, min_count=1, seed=seed),
        gensim_word2vec.Word2Vec(vector_size=8, min_count=1, seed=seed),
    )
    for corpus, update in ((common_texts, False), ([["new", "words"], ["human", "new"]], True)):
        ours.build_vocab(corpus, update=update)
        theirs.build_vocab(corpus, update=update)
        assert ours.wv.index_to_key == theirs.wv.index_to_key
        np.testing.assert_array_equal(ours.wv.vectors, theirs.wv.vectors)
    documents = [TaggedDocument(words, [i]) for i, words in enumerate(common_texts)]
    ours = Doc2Vec(vector_size=8, min_count=1, seed=seed)
    theirs = gensim_doc2vec.Doc2Vec(vector_size=8, min_count=1, seed=seed)
    ours.build_vocab(documents)
    theirs.build_vocab(documents)
    np.testing.assert_array_equal(ours.wv.vectors, theirs.wv.vectors)
    np.testing.assert_array_equal(ours.dv.vectors, theirs.dv.vectors)


@pytest.mark.parametrize(
    "kwargs", [{"max_vocab_size": 3000}, {"max_vocab_size": 500, "min_count": 2}]
)
def test_scan_vocab_and_max_vocab_size_prune_as_gensim_does(kwargs):
    sentences = lee_sentences()
    ours, theirs = (
        Word2Vec(vector_size=8, **kwargs),
        gensim_word2vec.Word2Vec(vector_size=8, **kwargs),
    )
    assert ours.scan_vocab(sentences) == theirs.scan_vocab(sentences)
    assert dict(ours.raw_vocab) == dict(theirs.raw_vocab)
    assert len(ours.raw_vocab) <= kwargs["max_vocab_size"]
    ours.build_vocab(sentences)
    theirs.build_vocab(sentences)
    assert ours.wv.index_to_key == theirs.wv.index_to_key
    assert ours.corpus_total_words == theirs.corpus_total_words


@pytest.mark.parametrize(
    "make_corpus",
    [
        lambda: gensim_word2vec.LineSentence(LEE),
        lambda: gensim_word2vec.Text8Corpus(LEE),
        lambda: (tuple(s) for s in gensim_word2vec.LineSentence(LEE)),
        lambda: [np.array(s) for s in gensim_word2vec.LineSentence(LEE)],
    ],
    ids=["LineSentence", "Text8Corpus", "generator-of-tuples", "numpy-arrays"],
)
def test_gensims_corpus_forms_build_the_same_vocabulary(make_corpus):
    ours, theirs = Word2Vec(vector_size=8), gensim_word2vec.Word2Vec(vector_size=8)
    ours.build_vocab(make_corpus())
    theirs.build_vocab(make_corpus())
    assert ours.wv.index_to_key == theirs.wv.index_to_key
    assert (ours.corpus_count, ours.corpus_total_words) == (
        theirs.corpus_count,
        theirs.corpus_total_words,
    )


def test_compressed_corpus_file_is_read(tmp_path):
    import bz2

    path = tmp_path / "lee.cor.bz2"
    path.write_bytes(bz2.compress(open(LEE, "rb").read()))
    model = Word2Vec(vector_size=8)
    model.build_vocab(corpus_file=path)
    theirs = gensim_word2vec.Word2Vec(vector_size=8)
    theirs.build_vocab(corpus_file=LEE)
    assert model.wv.index_to_key == theirs.wv.index_to_key


def test_tagged_line_document_trains_doc2vec():
    documents = gensim_doc2vec.TaggedLineDocument(LEE)
    ours = Doc2Vec(vector_size=8, min_count=0, epochs=1)
    ours.build_vocab(documents)
    theirs = gensim_doc2vec.Doc2Vec(vector_size=8, min_count=0, epochs=1)
    theirs.build_vocab(documents)
    assert ours.dv.index_to_key == theirs.dv.index_to_key
    assert ours.wv.index_to_key == theirs.wv.index_to_key
    assert ours.corpus_count == theirs.corpus_count == 300


def test_negative_min_count_is_refused():
    with pytest.raises(ValueError, match="min_count must be an integer >= 0"):
        Word2Vec(common_texts, min_count=-1)


def test_tagged_document_class_is_gensims_shape():
    assert TaggedDocument(["a"], [0]) == gensim_doc2vec.TaggedDocument(["a"], [0])


# ---------------------------------------------------------------------- the rest of the API


@pytest.fixture(scope="module")
def doc2vec_pair(tmp_path_factory):
    """A gensim Doc2Vec (int and string tags) and ours loaded from its save()."""
    documents = [
        TaggedDocument(words, [i, f"topic{i % 3}"]) for i, words in enumerate(lee_sentences()[:60])
    ]
    theirs = gensim_doc2vec.Doc2Vec(documents, vector_size=8, min_count=2, workers=1, epochs=3)
    path = str(tmp_path_factory.mktemp("d2v") / "d2v.model")
    theirs.save(path)
    return theirs, Doc2Vec.load(path, allow_pickle=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"doctag_vec": True},
        {"doctag_vec": True, "word_vec": False},
        {"doctag_vec": True, "prefix": "D:"},
    ],
)
def test_doc2vec_save_word2vec_format_writes_gensims_bytes(doc2vec_pair, tmp_path, kwargs):
    theirs, ours = doc2vec_pair
    theirs.save_word2vec_format(
        str(tmp_path / "theirs.txt"), fvocab=str(tmp_path / "theirs.voc"), **kwargs
    )
    ours.save_word2vec_format(tmp_path / "ours.txt", fvocab=tmp_path / "ours.voc", **kwargs)
    assert (tmp_path / "ours.txt").read_bytes() == (tmp_path / "theirs.txt").read_bytes()
    assert (tmp_path / "ours.voc").read_bytes() == (tmp_path / "theirs.voc").read_bytes()


def test_doc2vec_save_word2vec_format_binary_reads_back_in_gensim(doc2vec_pair, tmp_path):
    theirs, ours = doc2vec_pair
    ours.save_word2vec_format(tmp_path / "both.bin", doctag_vec=True, binary=True)
    read = gensim.models.KeyedVectors.load_word2vec_format(str(tmp_path / "both.bin"), binary=True)
    assert len(read) == len(theirs.wv) + len(theirs.dv)
    np.testing.assert_array_equal(read["*dt_topic1"], theirs.dv["topic1"])
    np.testing.assert_array_equal(read["*dt_5"], theirs.dv[5])
    np.testing.assert_array_equal(read["the"], theirs.wv["the"])


@pytest.mark.parametrize("key", ["the", 4, "topic2", ["the", 4, "topic2"]])
def test_doc2vec_getitem_is_a_word_then_a_tag_as_in_gensim(doc2vec_pair, key):
    theirs, ours = doc2vec_pair
    np.testing.assert_array_equal(ours[key], theirs[key])


def test_similarity_unseen_docs_is_the_cosine_of_inferred_vectors(doc2vec_pair):
    _, ours = doc2vec_pair
    first, second = lee_sentences()[70], lee_sentences()[71]
    similarity = ours.similarity_unseen_docs(first, second, epochs=20)
    a, b = ours.infer_vector(first, epochs=20), ours.infer_vector(second, epochs=20)
    assert similarity == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), rel=1e-6)
    assert ours.similarity_unseen_docs(first, first, epochs=20) == pytest.approx(1.0, abs=1e-6)


def test_reset_from_shares_the_vocabulary_with_fresh_vectors():
    sentences = lee_sentences()
    models = {}
    for name, cls in (("theirs", gensim_word2vec.Word2Vec), ("ours", Word2Vec)):
        first = cls(vector_size=8, min_count=3, workers=1, seed=1)
        first.build_vocab(sentences)
        second = cls(vector_size=12, sg=1, seed=2, workers=1)
        second.reset_from(first)
        assert second.wv.index_to_key == first.wv.index_to_key
        assert second.corpus_count == first.corpus_count == 300
        models[name] = second
    ours, theirs = models["ours"], models["theirs"]
    assert ours.wv.index_to_key == theirs.wv.index_to_key
    assert ours.wv.vectors.shape == theirs.wv.vectors.shape == (len(theirs.wv), 12)
    before = ours.wv.vectors.copy()
    ours.train(sentences, total_examples=ours.corpus_count, epochs=1)
    assert not np.array_equal(ours.wv.vectors, before)
