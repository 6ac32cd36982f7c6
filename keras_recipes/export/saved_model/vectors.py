"""The `lookup` signature of word vectors (`KeyedVectors`, or a `Word2Vec`'s `wv`)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_recipes.export.saved_model.common import SERVING_DEFAULT


class _VectorSignatures:
    """The `lookup` signature of word vectors (`KeyedVectors`, or a `Word2Vec`'s `wv`).

    Words are looked up in the graph by a `tf.lookup.StaticHashTable` (word
    -> row); the vectors are one variable, gathered by row. A word outside
    the vocabulary gets a zero vector and `in_vocabulary` False (subword
    vectors from `build_subwords` are not exported).
    """

    def __init__(self, wv):
        if len(wv) == 0:
            raise ValueError("export_saved_model: the word vectors have no words to export.")
        self.wv = wv
        self.vectors = tf.Variable(wv.vectors, trainable=False, name="vectors")
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([key.encode("utf-8") for key in wv.index_to_key], tf.string),
                tf.range(len(wv), dtype=tf.int64),
            ),
            default_value=-1,
        )

    def functions(self) -> dict:
        table, vectors = self.table, self.vectors

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words")])
        def lookup(words):
            rows = table.lookup(words)
            known = rows >= 0
            found = tf.gather(vectors, tf.maximum(rows, 0))
            return {
                "vectors": tf.where(known[:, None], found, tf.zeros_like(found)),
                "in_vocabulary": known,
            }

        return {"lookup": lookup, SERVING_DEFAULT: lookup}

    def resources(self) -> list:
        return [self.table]

    def variables(self) -> list:
        return [self.vectors]

    def examples(self) -> dict:
        unknown = "[OOV]"
        while unknown in self.wv:
            unknown += "_"
        words = [*self.wv.index_to_key[:2], unknown]
        return {"lookup": {"words": np.array([w.encode("utf-8") for w in words], object)}}

    def expected(self, name: str, inputs: dict) -> dict:
        words = [w.decode("utf-8") if isinstance(w, bytes) else str(w) for w in inputs["words"]]
        known = np.array([w in self.wv.key_to_index for w in words], bool)
        zeros = np.zeros(self.wv.vector_size, np.float32)
        vectors = [self.wv[w] if k else zeros for w, k in zip(words, known, strict=True)]
        return {
            "vectors": np.stack(vectors).astype(np.float32).reshape(len(words), -1),
            "in_vocabulary": known,
        }
