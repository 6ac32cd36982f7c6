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
