"""`verify_tflite`: checks a `.tflite` export against the Keras model it came from.

A causal LM's file (LLaMA or any model of `keras_recipes.causal_lm`) must give the model's logits and greedy tokens (float32) or
logits close in cosine similarity (quantized); a `Seq2Seq` file the model's
greedy ids; any other model's `serving_default` its outputs. `export_tflite`
runs it on every file before renaming it into place.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_recipes.causal_lm import is_causal_lm
from keras_recipes.causal_lm.generation import generate
from keras_recipes.export.tflite.generator import TFLiteGenerator
from keras_recipes.export.tflite.interpreter import load_interpreter
from keras_recipes.export.tflite.translator import TFLiteTranslator


def verify_tflite(path, model, quantize: str | None = None, steps: int = 8) -> dict:
    """Checks a `.tflite` export against the Keras model; returns what it measured.

    Float32 exports must give the same greedy tokens and logits within
    1e-3 (relative to their scale); quantized ones logits whose cosine
    similarity to the Keras model's is at least 0.95.
    """
    if is_causal_lm(model):
        generator = TFLiteGenerator(path)
        prompt = (np.arange(7) * 11 + 1) % model.config.vocab_size
        steps = min(steps, model.config.max_seq_len - len(prompt))
        generator.prefill(prompt)
        got = generator.decode(int(prompt[-1]), len(prompt) - 1)
        want = np.asarray(model(prompt[None].astype("int32"), training=False))[0, -1]
        report = {"cosine": _cosine(got, want)}
        if quantize is None:
            worst = float(np.abs(got - want).max())
            if not worst <= 1e-3 * max(1.0, float(np.abs(want).max())):
                raise ValueError(f"verify_tflite: decode logits differ from Keras by {worst:g}.")
            tokens = generator.generate(prompt[None], steps)
            expected = generate(model, prompt[None], steps)
            if not np.array_equal(tokens, expected):
                raise ValueError(
                    f"verify_tflite: greedy tokens differ from generate():\n{tokens}\n{expected}"
                )
        elif not report["cosine"] >= 0.95:
            raise ValueError(
                f"verify_tflite: {quantize} logits are too far from the Keras model's "
                f"(cosine similarity {report['cosine']:.3f} < 0.95)."
            )
        return report
    from keras_recipes.seq2seq import Seq2Seq

    if isinstance(model, Seq2Seq):
        return _verify_seq2seq(path, model, quantize)
    interpreter = load_interpreter(path)
    runner = interpreter.get_signature_runner("serving_default")
    detail = runner.get_input_details()["inputs"]
    shape = tuple(detail["shape"])
    if np.issubdtype(detail["dtype"], np.integer):
        x = (np.arange(np.prod(shape)).reshape(shape) * 7 + 1) % _vocab(model)
    else:
        x = np.sin(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape)
    x = x.astype(detail["dtype"])
    got = runner(inputs=x)["outputs"]
    want = np.asarray(model(x, training=False), np.float32)
    tolerance = 1e-4 if quantize is None else 0.05
    worst = float(np.abs(got - want).max())
    if not worst <= tolerance * max(1.0, float(np.abs(want).max())):
        raise ValueError(f"verify_tflite: outputs differ from the Keras model by {worst:g}.")
    return {"max_abs_error": worst}


def _vocab(model) -> int:
    for layer in model.layers:
        if isinstance(layer, keras.layers.Embedding):
            return layer.input_dim
    return 2


def _cosine(a, b) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def _verify_seq2seq(path, model, quantize) -> dict:
    """Greedy ids of the `.tflite` equal the model's on a probe source (float32 exports)."""
    translator = TFLiteTranslator(path)
    vocab = len(model.source_tokenizer)
    length = model.max_source_length
    probe = ((np.arange(length) * 5 + 3) % max(1, vocab - 4) + 4).astype("int32")[None]
    got = translator.greedy_search(probe)
    want, _ = model.greedy_search(probe)
    report = {"greedy_equal": bool(np.array_equal(got, want))}
    if quantize is None and not report["greedy_equal"]:
        raise ValueError(f"verify_tflite: greedy ids differ from the Keras model's:\n{got}\n{want}")
    return report
