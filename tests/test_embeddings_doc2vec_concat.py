"""Doc2Vec's concatenative PV-DM (`dm_concat=1`), against gensim's.

The corpus makes the document vector necessary: topic words alternate with
topic-neutral filler words and the window is 1, so a topic word's window
holds only filler, and only the document's vector can tell its topic.
"""

import numpy as np
import pytest

gensim = pytest.importorskip("gensim")
from gensim.models import Doc2Vec as GensimDoc2Vec  # noqa: E402
from test_embeddings_doc2vec import ANIMALS, FINANCE, within_minus_across  # noqa: E402

from keras_recipes.embeddings import Doc2Vec, TaggedDocument  # noqa: E402

FILLER = "the a of and to in".split()
SETTINGS = dict(dm_concat=1, vector_size=16, window=1, min_count=1, epochs=40, sample=0)


def filler_corpus(seed=0, tags=lambda i: [i]):
    """20 animal then 20 finance documents: filler, topic word, filler, topic word, ..."""
    rng = np.random.default_rng(seed)
    corpus = []
    for topic in (ANIMALS, FINANCE):
        for _ in range(20):
            words = [
                str(w)
                for pair in zip(rng.choice(FILLER, 15), rng.choice(topic, 15), strict=True)
                for w in pair
            ]
            corpus.append(TaggedDocument(words, tags(len(corpus))))
    return corpus


def topic_gap(model, vector):
    similarity = model.dv.cosine_similarities(vector, model.dv.vectors[:40])
    return similarity[:20].mean() - similarity[20:].mean()


@pytest.fixture(scope="module")
def gensim_model():
    return GensimDoc2Vec(filler_corpus(), seed=1, workers=1, **SETTINGS)


@pytest.fixture(scope="module")
def model():
    return Doc2Vec(filler_corpus(), seed=1, **SETTINGS)


def test_null_word_and_layer_sizes_are_gensims(model, gensim_model):
    assert model.wv.index_to_key == gensim_model.wv.index_to_key and "\0" in model.wv
    assert model.syn1neg.shape == gensim_model.syn1neg.shape == (len(model.wv), (1 + 2) * 16)
    assert str(model).startswith("Doc2Vec<dm/c,")


# gensim 4.4 with these settings (seed 1, one worker): within-minus-across 0.92,
# inferred-vector topic gap 1.15.
def test_concatenated_pv_dm_learns_the_document_topics(model):
    assert within_minus_across(model) > 0.6
    assert topic_gap(model, model.infer_vector(filler_corpus(seed=5)[3].words)) > 0.6


def test_inference_on_gensims_weights_lands_in_the_topic(gensim_model, tmp_path):
    # Our slot layout (tag, then window offsets -w..-1, 1..w) must be gensim's
    # for gensim's trained output weights to make sense of a new document.
    gensim_model.save(str(tmp_path / "dmc.model"))
    loaded = Doc2Vec.load(tmp_path / "dmc.model", allow_pickle=True)
    assert (loaded.dm_concat, loaded.dm_tag_count, loaded.window) == (1, 1, 1)
    animal, finance = filler_corpus(seed=5)[3].words, filler_corpus(seed=5)[30].words
    assert topic_gap(loaded, loaded.infer_vector(animal)) > 0.6
    assert topic_gap(loaded, loaded.infer_vector(finance)) < -0.6


def test_documents_without_dm_tag_count_tags_are_skipped_as_in_gensim():
    corpus = filler_corpus(tags=lambda i: [i, f"topic{i // 20}"] if i % 2 == 0 else [i])
    model = Doc2Vec(corpus, dm_tag_count=2, seed=1, **{**SETTINGS, "epochs": 5})
    start = Doc2Vec(dm_tag_count=2, seed=1, **SETTINGS)
    start.build_vocab(corpus)  # the initial vectors, same seed
    odd = [model.dv.get_index(i) for i in range(1, 40, 2)]
    even = [model.dv.get_index(i) for i in range(0, 40, 2)]
    np.testing.assert_array_equal(model.dv.vectors[odd], start.dv.vectors[odd])
    assert not np.allclose(model.dv.vectors[even], start.dv.vectors[even])
    assert model.syn1neg.shape[1] == (2 + 2) * 16


def test_concat_model_saves_and_loads(model, tmp_path):
    model.save(tmp_path / "dmc.npz")
    loaded = Doc2Vec.load(tmp_path / "dmc.npz")
    assert (loaded.dm_concat, loaded.dm_tag_count) == (1, 1)
    np.testing.assert_array_equal(loaded.syn1neg, model.syn1neg)
    words = filler_corpus(seed=5)[3].words
    np.testing.assert_allclose(loaded.infer_vector(words), model.infer_vector(words), rtol=1e-5)
