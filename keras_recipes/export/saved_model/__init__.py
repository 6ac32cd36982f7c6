"""SavedModels that TF Serving serves as they are.

`export_saved_model` writes `base_dir/<version>/` with named signatures, a
warm-up file replaying one request per signature, and nothing else: the
folder is built beside its final place, loaded by TF Serving's own loader
(TensorFlow's C++ session loader, in a fresh process), its warm-up requests
checked against the Keras model, then renamed into place. An existing
version is never touched.

The signatures of each model family live beside this file: `causal_lm.py`
(`serving_default`, `generate`, `generate_text`), `keras_models.py`
(`classify`, `tag`, `translate`), `vectors.py` (`lookup`); `common.py`
holds what they share.
"""

from __future__ import annotations

import inspect
import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from keras_recipes._io import _fsync_path, atomic_write
from keras_recipes.causal_lm import is_causal_lm
from keras_recipes.causal_lm.protocol import WEIGHT_DTYPES
from keras_recipes.export.saved_model.causal_lm import _CausalLMSignatures, _tokenizer_proto
from keras_recipes.export.saved_model.common import SERVING_DEFAULT
from keras_recipes.export.saved_model.keras_models import _KerasSignatures
from keras_recipes.export.saved_model.vectors import _VectorSignatures
from keras_recipes.serving.batching import BATCHING_PARAMETERS_FILE, batching_parameters_text
from keras_recipes.serving.check import check_saved_model
from keras_recipes.serving.warmup import WARMUP_FILE, write_warmup_requests

if TYPE_CHECKING:
    from keras_recipes.embeddings import KeyedVectors, Word2Vec

__all__ = ["SERVING_DEFAULT", "export_saved_model", "verify_saved_model"]


def _partial_prefix(version: int) -> str:
    """How an export in progress on this machine is named: `.partial-<version>-<host>`.

    The full name adds the exporting process id and a random part. TF
    Serving ignores folders whose name is not a number.
    """
    return f".partial-{version}-{socket.gethostname()}"


def _remove_abandoned_partials(base_dir: Path) -> None:
    """Deletes partial exports whose process is gone (killed mid-export on this machine)."""
    for folder in base_dir.glob(".partial-*"):
        prefix, _, rest = folder.name.rpartition("-")[0].rpartition("-")
        pid = rest if rest.isdigit() else ""
        if not pid or not prefix.endswith(f"-{socket.gethostname()}"):
            continue  # another machine's export, or not ours at all
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


def _next_version(base_dir: Path) -> int:
    versions = [int(p.name) for p in base_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def _tolerance(model) -> float:
    """How far a served float may be from the Keras model's, relative to the largest.

    float32 computations agree to 1e-5. Under a bfloat16 compute policy the
    graph and eager Keras sum in other orders, and one bfloat16 rounding step
    is 2**-8 of a value: two steps at the largest magnitude are allowed.
    """
    policy = getattr(model, "dtype_policy", None)
    compute = getattr(policy, "compute_dtype", "float32")
    return 2.0**-6 if compute in ("bfloat16", "float16") else 1e-5


def _signatures_for(model, tokenizer, labels, example_prompt, jit_compile):
    from keras_recipes.embeddings import KeyedVectors, Word2Vec

    if isinstance(model, (KeyedVectors, Word2Vec)):
        wv = model if isinstance(model, KeyedVectors) else getattr(model, "wv", None)
        if wv is None:
            raise ValueError(
                "export_saved_model: this Word2Vec has no vectors yet; pass `sentences` "
                "(or call build_vocab and train) before exporting it."
            )
        if tokenizer is not None or labels is not None:
            raise ValueError(
                "export_saved_model: word vectors take neither `tokenizer` nor `labels`; "
                "their vocabulary is their own keys."
            )
        return _VectorSignatures(wv)
    if not isinstance(model, keras.Model) and not is_causal_lm(model):
        raise ValueError(
            f"export_saved_model: expected a keras.Model, got {type(model).__name__}; "
            "load a checkpoint with keras.models.load_model first (word vectors: pass "
            "KeyedVectors or Word2Vec)."
        )
    if is_causal_lm(model):
        return _CausalLMSignatures(model, _tokenizer_proto(tokenizer), example_prompt, jit_compile)
    if tokenizer is not None:
        raise ValueError(
            "export_saved_model: `tokenizer` is for a causal LM's generate_text signature; "
            f"{type(model).__name__} carries its own vocabulary."
        )
    return _KerasSignatures(model, labels)


def verify_saved_model(path, signatures, examples: dict | None = None) -> None:
    """Runs `examples` (default: the signatures' own) through TF Serving's loader.

    The SavedModel at `path` is loaded by TensorFlow's C++ session loader in
    a fresh process (`keras_recipes.serving.check_saved_model`) and every
    answer is compared with the Keras model's: floats within 1e-5 of the
    largest magnitude (two bfloat16 steps for a bfloat16 model), token ids
    and strings exactly.
    """
    requests = list((examples or signatures.examples()).items())
    check_saved_model(
        path,
        expected=signatures.expected,
        requests=requests,
        atol=_tolerance(getattr(signatures, "model", None)),
        allow_xla=getattr(signatures, "jit_compile", False),
    )


def export_saved_model(
    model: keras.Model | KeyedVectors | Word2Vec,
    base_dir: str | os.PathLike,
    version: int | None = None,
    tokenizer=None,
    labels: list[str] | None = None,
    model_name: str | None = None,
    example_prompt: str = "Once upon a time",
    verify: bool = True,
    jit_compile: bool = False,
    weights: str = "float32",
    allow_nonfinite: bool = False,
    batching: dict | None = None,
) -> Path:
    """Export a model as a TF Serving SavedModel in `base_dir/<version>/`.

    The signatures depend on the model (inputs and outputs are named):

    - `LlamaModel`, or any causal LM (`keras_recipes.causal_lm`):
      `serving_default` (`token_ids` int32 `(B, T)` -> `logits`
      `(B, T, vocab)`); `generate` (`token_ids`, and per-row
      `max_new_tokens`, `temperature` (0: greedy), `top_k` (0: off), `top_p`
      (1.0: off), `seed`, all rows of one request holding the same values,
      sampled by `keras_recipes.causal_lm.sampling` -> `token_ids` `(B, T + N)`),
      running the KV-cached loop inside the graph; with a `tokenizer`,
      `generate_text` (string `prompt` and the same controls -> string
      `text`, the prompt and its continuation decoded together), tokenized
      by tensorflow-text in the graph.
    - `Seq2Seq`: `translate` (string `text` -> string `translation`).
    - One-input classifiers: `classify` (`inputs` -> `scores`, `labels`);
      taggers (per-step outputs): `tag`, the same per step.
    - Word vectors (`KeyedVectors`, or a trained `Word2Vec`): `lookup`
      (string `words` `(B,)` -> float32 `vectors` `(B, vector_size)` and
      bool `in_vocabulary` `(B,)`; an unknown word gets zeros), an in-graph
      hash table over one variable holding the vectors.

    The folder is written beside `base_dir` under a temporary name, given a
    warm-up file (`assets.extra/tf_serving_warmup_requests`, one request per
    signature), loaded by TF Serving's own loader (TensorFlow's C++ session
    loader, in a fresh process with no op library but tensorflow-text's)
    with every warm-up request checked against the Keras model (`verify`),
    and only then renamed to `base_dir/<version>`. TF Serving serves the
    highest version number.

    Args:
        model: a `LlamaModel`, `Seq2Seq`, a classifier/tagger built by
            `keras_recipes.rnn`, or word vectors (`KeyedVectors`, `Word2Vec`).
        base_dir: str or path, the model's folder (`saved_models/NAME`).
        version: int or None. None takes the next integer after the highest
            existing version. An existing version is an error, never
            overwritten.
        tokenizer: `SentencePieceTokenizer`, its proto bytes or `.model`
            path; a `TokenizerJson`, a `tokenizer.json` path or a Hugging
            Face folder holding one; or None. Adds `generate_text` to a
            LLaMA export. A `tokenizer.json` runs as graph ops exact against
            the `tokenizers` library (`keras_recipes.tokenizers.graph`), or
            the export is refused with the reason; the begin token is added
            unless the prompt starts with it, and special tokens are left
            out of the returned text.
        labels: list of str or None, class names of a classifier or tagger.
        model_name: str or None, the name TF Serving serves it under (used in
            the warm-up requests); defaults to `base_dir`'s name.
        example_prompt: str, the warm-up prompt of `generate_text`.
        verify: bool, default True. Replay the warm-up requests through TF
            Serving's loader and compare every answer with the Keras model
            before the folder is renamed into place
            (`keras_recipes.serving.check_saved_model`).
        jit_compile: bool, default False. XLA-compile LLaMA's decoding loop:
            faster, but TF Serving must then run with
            `--xla_cpu_compilation_enabled=true` (it refuses XLA otherwise).
        weights: `"float32"` (default), `"bfloat16"` or `"int8"`. A
            `LlamaModel`'s matrices stored in 2 or 1 bytes
            (`keras_recipes.llama.quantize_for_decoding`, int8 with a
            float32 scale per output channel) and read as such by every
            signature; the checks compare with the quantized model's own
            Keras-side answers. Not with `jit_compile`.
        allow_nonfinite: bool, default False. Export weights (or vectors)
            holding NaN or Inf instead of refusing them, naming the weight.
        batching: optional dict of TF Serving batching settings
            (`keras_recipes.serving.batching.batching_parameters_text`:
            `max_batch_size`, `batch_timeout_micros`, `num_batch_threads`,
            `max_enqueued_batches`, `pad_variable_length_inputs`,
            `allowed_batch_sizes`; `{}` for the defaults). Writes
            `base_dir/batching_parameters.txt` (replacing an older one),
            which TF Serving reads when started with `--enable_batching
            --batching_parameters_file=/models/NAME/batching_parameters.txt`.
            A batching server pads prompts: send them to `generate_padded`.

    Returns:
        The `Path` of the version folder.

    `export_saved_model(build_llama("tiny"), "saved_models/llama")` writes
    and returns `saved_models/llama/1` (then `2`, ...), which TF Serving
    serves with `docker run -p 8501:8501 -v
    $PWD/saved_models/llama:/models/llama -e MODEL_NAME=llama
    tensorflow/serving`. Word vectors export the same way:
    `export_saved_model(Word2Vec(sentences, vector_size=100, min_count=5).wv,
    "saved_models/word2vec")` gives a `lookup` signature. (Exports trace
    and verify graphs for seconds, so `tests/test_export_saved_model.py`
    runs them rather than a doctest.)
    """
    base_dir = Path(base_dir)
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1
    ):
        raise ValueError(f"export_saved_model: version must be a positive int, got {version!r}.")
    from keras_recipes._finite import check_finite, model_weights

    if isinstance(model, keras.Model):
        named = model_weights(model)
    else:  # word vectors: a KeyedVectors, or a Word2Vec's `wv`
        named = [("vectors", getattr(getattr(model, "wv", model), "vectors", []))]
    check_finite(named, "export_saved_model", allow_nonfinite)
    if weights not in WEIGHT_DTYPES:
        raise ValueError(
            f"export_saved_model: weights must be one of {list(WEIGHT_DTYPES)}, got {weights!r}."
        )
    if weights != "float32":
        if jit_compile:
            raise ValueError(
                f"export_saved_model: weights={weights!r} decodes without XLA; "
                "drop jit_compile=True."
            )
        if not hasattr(model, "quantized_for_export"):
            raise ValueError(
                f"export_saved_model: weights={weights!r} needs a model that offers "
                f"quantized_for_export (LLaMA does); {type(model).__name__} does not. "
                "Export it with weights='float32'."
            )
        model = model.quantized_for_export(weights)
    batching_text = None
    if batching is not None:
        if not isinstance(batching, dict):
            raise ValueError(
                "export_saved_model: `batching` must be a dict of TF Serving batching "
                f"settings, e.g. {{'max_batch_size': 8}}; got {type(batching).__name__}."
            )
        unknown = set(batching) - set(inspect.signature(batching_parameters_text).parameters)
        if unknown:
            raise ValueError(
                f"export_saved_model: unknown batching settings {sorted(unknown)}; known: "
                f"{list(inspect.signature(batching_parameters_text).parameters)}."
            )
        batching_text = batching_parameters_text(**batching)
    signatures = _signatures_for(model, tokenizer, labels, example_prompt, jit_compile)
    base_dir.mkdir(parents=True, exist_ok=True)
    version = _next_version(base_dir) if version is None else int(version)
    final = base_dir / str(version)
    if final.exists():
        raise ValueError(
            f"export_saved_model: {final} already exists; versions are never overwritten. "
            "Pass another version, or version=None for the next one."
        )
    model_name = model_name or base_dir.resolve().name
    functions = signatures.functions()

    # Track the variables (each once, however many ops read it) and the
    # tokenizer resources, not the Keras objects: the graph holds only the
    # signatures.
    root = tf.Module()
    root.model_variables = signatures.variables()
    root.resources = signatures.resources()
    _remove_abandoned_partials(base_dir)
    partial = base_dir / f"{_partial_prefix(version)}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tf.saved_model.save(
            root,
            str(partial),
            signatures={name: f.get_concrete_function() for name, f in functions.items()},
        )
        write_warmup_requests(partial / WARMUP_FILE, model_name, signatures.examples())
        if verify:  # the warm-up records, replayed as TF Serving replays them
            check_saved_model(
                partial,
                expected=signatures.expected,
                atol=_tolerance(model),
                allow_xla=jit_compile,
            )
        for root, _, files in os.walk(partial):  # on disk before the name says "done"
            for name in files:
                _fsync_path(Path(root) / name)
            _fsync_path(Path(root), directory=True)
        if final.exists():
            raise ValueError(f"export_saved_model: {final} appeared while exporting; not replaced.")
        os.rename(partial, final)
        _fsync_path(base_dir, directory=True)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    if batching_text is not None:
        with atomic_write(base_dir / BATCHING_PARAMETERS_FILE, "w") as f:
            f.write(batching_text)
    return final
