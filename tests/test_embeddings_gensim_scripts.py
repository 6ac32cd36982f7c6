"""A gensim script that uses this issue's features runs with only its import line switched.

The same text runs twice, once importing gensim's classes and once ours;
what it computes must agree wherever the answer is deterministic (the
vocabulary, the Huffman codes, file layouts, shapes, types), and be sane
where training randomness differs.
"""

import numpy as np
import pytest

pytest.importorskip("gensim")

SCRIPT = """
from gensim.models.word2vec import LineSentence
from gensim.test.utils import datapath

sentences = list(LineSentence(datapath("lee_background.cor")))[:120]
model = Word2Vec(vector_size=16, window=3, min_count=0, sg=1, hs=1, negative=0, epochs=1, workers=1)
total_words, corpus_count = model.scan_vocab(sentences)
model.build_vocab(sentences)
model.train(sentences, total_examples=model.corpus_count, epochs=model.epochs)
scores = model.score(sentences[:4], total_sentences=4)
model.save(folder + "/w2v.model")
loaded = Word2Vec.load(folder + "/w2v.model")
fresh = Word2Vec(vector_size=8, workers=1)
fresh.reset_from(loaded)

documents = [TaggedDocument(words, [i]) for i, words in enumerate(sentences)]
d2v = Doc2Vec(documents, dm=1, dm_concat=1, window=2, vector_size=16, min_count=1, hs=1,
              negative=0, epochs=1, workers=1)
d2v.save_word2vec_format(folder + "/d2v.txt", doctag_vec=True, word_vec=True, prefix="*dt_")
similarity = d2v.similarity_unseen_docs(sentences[0], sentences[1])
result = {
    "scan": (total_words, corpus_count),
    "vocab": model.wv.index_to_key,
    "codes": [model.wv.get_vecattr(w, "code").tolist() for w in model.wv.index_to_key],
    "points": [model.wv.get_vecattr(w, "point").tolist() for w in model.wv.index_to_key],
    "scores": scores,
    "loaded_vocab": loaded.wv.index_to_key,
    "fresh": (fresh.wv.index_to_key == model.wv.index_to_key, fresh.wv.vectors.shape),
    "d2v_vocab": d2v.wv.index_to_key,
    "d2v_layer": d2v.syn1.shape,
    "d2v_file": open(folder + "/d2v.txt").read().splitlines(),
    "similarity": similarity,
    "getitem": (d2v[0].shape, d2v["the"].shape, d2v[[0, "the"]].shape),
}
"""

IMPORTS = {
    "gensim": "from gensim.models import Word2Vec, Doc2Vec\n"
    "from gensim.models.doc2vec import TaggedDocument\n",
    "ours": "from keras_recipes.embeddings import Word2Vec, Doc2Vec, TaggedDocument\n",
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = {}
    for name, imports in IMPORTS.items():
        folder = tmp_path_factory.mktemp(name)
        namespace = {"folder": str(folder)}
        exec(imports + SCRIPT, namespace)  # noqa: S102 - the script is this file's constant
        out[name] = namespace["result"]
    return out


@pytest.mark.parametrize(
    "key", ["scan", "vocab", "codes", "points", "loaded_vocab", "fresh", "d2v_vocab", "d2v_layer"]
)
def test_deterministic_answers_equal_gensims(results, key):
    assert results["ours"][key] == results["gensim"][key]


def test_score_has_gensims_shape_and_type(results):
    ours, theirs = results["ours"]["scores"], results["gensim"]["scores"]
    assert ours.dtype == theirs.dtype == np.float32 and ours.shape == theirs.shape == (4,)
    assert np.all(ours < 0) and np.all(theirs < 0)


def test_doc2vec_file_has_gensims_layout(results):
    ours, theirs = results["ours"]["d2v_file"], results["gensim"]["d2v_file"]
    assert ours[0] == theirs[0]  # header: words + tags, dimension
    # gensim 4.4 writes plain-int tags twice (its leading range, then again among the
    # sorted keys), one more row each than its header counts; ours writes each once.
    keys = [line.split(" ", 1)[0] for line in ours[1:]]
    assert len(keys) == len(set(keys)) == int(ours[0].split()[0])
    assert keys == list(dict.fromkeys(line.split(" ", 1)[0] for line in theirs[1:]))
    assert all(len(line.split(" ")) == 17 for line in ours[1:])


def test_similarity_and_getitem_answer_as_gensims(results):
    ours, theirs = results["ours"], results["gensim"]
    assert isinstance(ours["similarity"], type(theirs["similarity"]))
    assert -1.0 <= float(ours["similarity"]) <= 1.0
    assert ours["getitem"] == theirs["getitem"] == ((16,), (16,), (2, 16))
