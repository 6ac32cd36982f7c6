"""Turning words into numbers: vocabularies, one-hot, TF-IDF, Word2Vec, pretrained vectors.

- `vocabulary.py`: `vocab_size`, `build_vocabulary` / `Vocabulary` (padding 0,
  OOV 1), integer and one-hot codes (the study notes' options 1 and 2).
- `tfidf.py`: `tf_idf` with `keras.layers.TextVectorization(output_mode="tf_idf")`.
- `word2vec.py`: `Word2Vec`, skip-gram and CBOW with negative sampling,
  trained in-graph with TensorFlow, gensim's parameter names.
- `doc2vec.py`: `Doc2Vec` (PV-DM, PV-DBOW) and `TaggedDocument`, gensim's
  API (`dv[tag]`, `infer_vector`), trained on Word2Vec's machinery.
- `vectors.py`: `KeyedVectors`, gensim 4's KeyedVectors API (most_similar
  in all its argument forms, similarities and distances, analogies, word
  pairs, add_vectors, save/load), plus Embedding weights and subword vectors
  for unknown words; `load_vectors` for GloVe and `.vec` files.
- `pretrained.py`: `pretrained_embeddings`, the rows of an `Embedding` for a
  model's vocabulary from KeyedVectors (ours or gensim's), missing words
  random and listed; the classifiers in `keras_recipes.rnn` take them as
  `pretrained=`.
- `vector_files.py`: word2vec.c's text and binary formats, and the
  pickle-free `.npz` archive that `save` / `load` use.

Examples:

`Word2Vec(sentences, vector_size=100, window=5, min_count=5, sg=1,
negative=5, epochs=5).wv` is a `KeyedVectors` (training one traces a
TensorFlow graph, seconds, so `Word2Vec`'s own docstring trains a tiny one
and these are written by hand):

>>> import numpy as np
>>> from keras_recipes.embeddings import KeyedVectors, build_vocabulary
>>> wv = KeyedVectors(["king", "queen", "man", "woman"],
...                   np.array([[1, 1, 0], [1, 0, 1], [0, 1, 0], [0, 0, 1]], "float32"))
>>> wv.most_similar(positive=["king", "woman"], negative=["man"], topn=1)[0][0]
'queen'
>>> sentences = [["the", "king", "rules"], ["the", "queen", "rules"]]
>>> layer = wv.embedding_layer(build_vocabulary(sentences), trainable=False)
>>> layer.input_dim, layer.output_dim  # pad, OOV and 4 words; 3 dimensions
(6, 3)
"""

from keras_recipes.embeddings.doc2vec import Doc2Vec, TaggedDocument
from keras_recipes.embeddings.pretrained import PretrainedEmbeddings, pretrained_embeddings
from keras_recipes.embeddings.tfidf import tf_idf
from keras_recipes.embeddings.vectors import KeyedVectors, char_ngrams, fnv1a_32, load_vectors
from keras_recipes.embeddings.vocabulary import (
    OOV_TOKEN,
    PAD_TOKEN,
    Vocabulary,
    build_vocabulary,
    one_hot,
    vocab_size,
)
from keras_recipes.embeddings.word2vec import (
    CallbackAny2Vec,
    Word2Vec,
    line_sentences,
    use_word2vec_threads,
)

__all__ = [
    "use_word2vec_threads",
    "CallbackAny2Vec",
    "Doc2Vec",
    "OOV_TOKEN",
    "PAD_TOKEN",
    "PretrainedEmbeddings",
    "TaggedDocument",
    "KeyedVectors",
    "Vocabulary",
    "Word2Vec",
    "build_vocabulary",
    "char_ngrams",
    "fnv1a_32",
    "line_sentences",
    "load_vectors",
    "one_hot",
    "pretrained_embeddings",
    "tf_idf",
    "vocab_size",
]
