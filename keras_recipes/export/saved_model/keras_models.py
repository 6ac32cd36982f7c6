"""The signatures of the package's other Keras models: `classify`, `tag`, `translate`."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_recipes.export.saved_model.common import SERVING_DEFAULT, _tf_variables


class _KerasSignatures:
    """Signatures of the package's other models: classifiers, taggers, seq2seq."""

    def __init__(self, model, labels):
        self.model = model
        self.labels = None if labels is None else [str(label) for label in labels]
        self.kind = self._kind(model)

    @staticmethod
    def _kind(model) -> str:
        from keras_recipes.seq2seq import Seq2Seq

        if isinstance(model, Seq2Seq):
            return "translate"
        if len(model.inputs or []) != 1 or len(model.outputs or []) != 1:
            raise ValueError(
                f"export_saved_model: cannot tell which signatures {model.name!r} needs: it has "
                f"{len(model.inputs or [])} inputs and {len(model.outputs or [])} outputs; the "
                "exporter knows LlamaModel, Seq2Seq and one-input one-output classifiers/taggers."
            )
        rank = len(model.outputs[0].shape)
        if rank == 2:
            return "classify"
        if rank == 3:
            return "tag"
        raise ValueError(
            f"export_saved_model: output of {model.name!r} has rank {rank}; a classifier "
            "gives (batch, classes) and a tagger (batch, time, classes)."
        )

    def _binary(self) -> bool:
        return int(self.model.outputs[0].shape[-1]) == 1

    def _labels(self) -> list[str]:
        classes = 2 if self._binary() else int(self.model.outputs[0].shape[-1])
        labels = self.labels or [str(i) for i in range(classes)]
        if len(labels) != classes:
            raise ValueError(
                f"export_saved_model: {len(labels)} labels given for {classes} classes "
                "(a single sigmoid output has two: below and above 0.5)."
            )
        return labels

    def _spec(self):
        spec = self.model.inputs[0]
        dtype = tf.as_dtype(spec.dtype)
        return tf.TensorSpec([None, *spec.shape[1:]], dtype, name="inputs")

    def functions(self) -> dict:
        model = self.model
        if self.kind == "translate":
            self._translator = model.translation_module()
            translator = self._translator

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
            def translate(text):
                return {"translation": translator.translate(text)}

            return {"translate": translate, SERVING_DEFAULT: translate}
        label_table = tf.constant(self._labels())
        binary = self._binary()

        @tf.function(input_signature=[self._spec()], autograph=False)
        def predict(inputs):
            scores = tf.cast(model(inputs, training=False), tf.float32)
            if binary:  # one sigmoid unit: the label is whether it passes 0.5
                index = tf.cast(scores[..., 0] > 0.5, tf.int32)
            else:
                index = tf.argmax(scores, -1, output_type=tf.int32)
            return {"scores": scores, "labels": tf.gather(label_table, index)}

        return {self.kind: predict, SERVING_DEFAULT: predict}

    def resources(self) -> list:
        # Seq2Seq's translator holds the tokenizer's lookup table.
        return [self._translator] if self.kind == "translate" else []

    def variables(self) -> list:
        return _tf_variables(self.model)

    def examples(self) -> dict:
        if self.kind == "translate":
            return {"translate": {"text": np.array(_source_examples(self.model), object)}}
        spec = self.model.inputs[0]
        shape = [2] + [d if d is not None else 6 for d in spec.shape[1:]]
        if "int" in str(spec.dtype):
            vocab = _input_vocab(self.model)
            x = (np.arange(np.prod(shape)).reshape(shape) * 7 + 1) % vocab
        else:
            x = np.sin(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape)
        return {self.kind: {"inputs": x.astype(spec.dtype)}}

    def expected(self, name: str, inputs: dict) -> dict:
        if self.kind == "translate":
            texts = [t.decode() for t in inputs["text"]]
            return {
                "translation": np.array([t.encode() for t in self.model.translate(texts)], object)
            }
        scores = np.asarray(self.model(inputs["inputs"], training=False), np.float32)
        index = (scores[..., 0] > 0.5).astype(int) if self._binary() else scores.argmax(-1)
        labels = np.array([label.encode() for label in self._labels()], object)
        return {"scores": scores, "labels": labels[index]}


def _source_examples(model) -> list[bytes]:
    """Two texts made of the Seq2Seq's own source tokens, for its warm-up request.

    The likeliest tokens first (the vocabulary is sorted by frequency), so
    whatever the model translates (dates, English, code), its warm-up
    request is text it has seen, not another task's.
    """
    from keras_recipes.seq2seq.tokenizer import SPECIAL_TOKENS

    tokenizer = model.source_tokenizer
    words = tokenizer.tokens[len(SPECIAL_TOKENS) :]
    joiner = "" if tokenizer.level == "char" else " "
    width = max(1, min(8, (model.max_source_length or 8) - 2))
    first, second = words[:width], words[width : 2 * width] or words[:1]
    return [joiner.join(first).encode("utf-8"), joiner.join(second).encode("utf-8")]


def _input_vocab(model) -> int:
    for layer in model.layers:
        if isinstance(layer, keras.layers.Embedding):
            return layer.input_dim
    return 2
