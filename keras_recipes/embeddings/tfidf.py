"""TF-IDF document vectors with `keras.layers.TextVectorization(output_mode="tf_idf")`.

Keras 3.15 computes, for token t of a vocabulary learned by `adapt` on N
documents (`keras/src/layers/preprocessing/index_lookup.py`,
`_inverse_document_frequency`):

    idf(t) = log(1 + N / (1 + df(t)))       df(t): documents containing t
    tf_idf(d, t) = count of t in d * idf(t)

Index 0 is the OOV token `[UNK]`; its idf is the mean idf of the vocabulary
(Keras cannot know the true document frequency of unseen words).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def tf_idf(
    documents: Sequence[str],
    max_tokens: int | None = None,
    standardize: str | None = "lower_and_strip_punctuation",
    vocabulary_documents: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[str], object]:
    """TF-IDF vectors of `documents`, learned with Keras's `TextVectorization`.

    Args:
        documents: list of str, the documents to vectorize.
        max_tokens: int or None. Vocabulary size cap, `[UNK]` included.
        standardize: `TextVectorization`'s standardization; None keeps text
            as is. Defaults to lowercasing and stripping punctuation.
        vocabulary_documents: list of str or None. Documents to learn the
            vocabulary and idf from (`adapt`); defaults to `documents`.

    Returns:
        `(matrix, vocabulary, layer)`: float32 `(len(documents),
        len(vocabulary))`, the vocabulary (index 0 is `[UNK]`), and the
        adapted layer for new text.

    Examples:

    >>> matrix, vocabulary, _ = tf_idf(["the cat sat on the mat", "the dog sat", "a cat"])
    >>> vocabulary[:2], matrix.shape
    (['[UNK]', 'the'], (3, 8))
    """
    import keras

    documents = list(documents)
    fit_on = list(documents if vocabulary_documents is None else vocabulary_documents)
    for name, docs in (("documents", documents), ("vocabulary_documents", fit_on)):
        if not docs:
            raise ValueError(f"tf_idf: {name} is empty; give at least one document.")
        for i, doc in enumerate(docs):
            if not isinstance(doc, str):
                raise ValueError(
                    f"tf_idf: {name}[{i}] is {type(doc).__name__}, not str; join tokens "
                    "with spaces first."
                )
    layer = keras.layers.TextVectorization(
        max_tokens=max_tokens, standardize=standardize, output_mode="tf_idf"
    )
    layer.adapt(fit_on, batch_size=max(1, len(fit_on)))
    vocabulary = [str(token) for token in layer.get_vocabulary()]
    if len(vocabulary) <= 1:
        raise ValueError("tf_idf: the documents hold no tokens after standardization.")
    matrix = np.asarray(keras.ops.convert_to_numpy(layer(np.array(documents))), np.float32)
    return matrix, vocabulary, layer
