"""Embedding weights for a model's vocabulary from pretrained word vectors.

`pretrained_embeddings(keyed_vectors, vocabulary)` gives the rows an
`Embedding` starts from: row i is the vector of the vocabulary's i-th token.
It reads only `key_to_index` and `vectors`, the attributes gensim 4's
`KeyedVectors` and ours share, so vectors trained or loaded with either
library work. The result goes to the classifiers' `pretrained=` argument
(`keras_recipes.rnn.build_encoder`, `build_decoder`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

# keras.layers.TextVectorization's reserved tokens: "" pads, "[UNK]" is out of vocabulary.
TEXT_VECTORIZATION_PAD = ""
TEXT_VECTORIZATION_OOV = "[UNK]"


class PretrainedEmbeddings(NamedTuple):
    """What `pretrained_embeddings` returns.

    Attributes:
        matrix: float32 array `(len(vocabulary), vector_size)`.
        missing: list of str. The vocabulary's words the vectors lack, in
            vocabulary order; their rows are random. The reserved padding
            and out-of-vocabulary tokens are not counted.
    """

    matrix: np.ndarray
    missing: list[str]


def pretrained_embeddings(
    keyed_vectors, vocabulary, seed: int = 0, scale: float | None = None
) -> PretrainedEmbeddings:
    """Rows of an `Embedding` for `vocabulary`, taken from `keyed_vectors`.

    A word the vectors hold gets its vector. The padding row is zeros. A
    word they lack, and the out-of-vocabulary token, gets a random normal
    row (seeded) with the standard deviation of the vectors' own entries, so
    training sees them on the same scale as the rest.

    Args:
        keyed_vectors: our `KeyedVectors` (`Word2Vec(...).wv`, `load_vectors`)
            or gensim's: anything with `key_to_index` and `vectors`.
        vocabulary: a `keras_recipes.embeddings.Vocabulary` (padding and OOV
            are its reserved tokens) or a list of tokens in id order, such
            as `TextVectorization.get_vocabulary()` (`""` pads, `"[UNK]"` is
            out of vocabulary).
        seed: int. Seed of the random rows. Defaults to `0`.
        scale: float or None. Standard deviation of the random rows;
            `None` uses that of the vectors.

    Returns:
        `PretrainedEmbeddings(matrix, missing)`.

    Examples:

    >>> from keras_recipes.embeddings import KeyedVectors
    >>> kv = KeyedVectors(2)
    >>> kv.add_vectors(["good", "bad"], np.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> rows = pretrained_embeddings(kv, ["", "[UNK]", "good", "meh", "bad"])
    >>> rows.matrix[[0, 2, 4]].tolist(), rows.missing
    ([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], ['meh'])
    """
    if not hasattr(keyed_vectors, "key_to_index") or not hasattr(keyed_vectors, "vectors"):
        raise TypeError(
            f"keyed_vectors is a {type(keyed_vectors).__name__}; pass KeyedVectors "
            "(ours or gensim's, e.g. Word2Vec(...).wv), which have key_to_index and vectors."
        )
    if hasattr(vocabulary, "index_to_token"):
        tokens: Sequence[str] = vocabulary.index_to_token
        pad, oov = vocabulary.pad_token, vocabulary.oov_token
    else:
        tokens, pad, oov = list(vocabulary), TEXT_VECTORIZATION_PAD, TEXT_VECTORIZATION_OOV
    if not tokens:
        raise ValueError("The vocabulary is empty; pass its tokens in id order.")
    vectors = np.asarray(keyed_vectors.vectors, dtype=np.float32)
    if vectors.ndim != 2 or not len(vectors):
        raise ValueError(f"keyed_vectors holds no vectors (shape {vectors.shape}).")
    std = float(vectors.std()) if scale is None else float(scale)
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, std, (len(tokens), vectors.shape[1])).astype(np.float32)
    missing = []
    for row, token in enumerate(tokens):
        index = keyed_vectors.key_to_index.get(token)
        if token == pad:
            matrix[row] = 0.0
        elif index is not None:
            matrix[row] = vectors[index]
        elif token != oov:
            missing.append(token)
    return PretrainedEmbeddings(matrix, missing)
