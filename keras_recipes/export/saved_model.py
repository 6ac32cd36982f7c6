"""SavedModels that TF Serving serves as they are.

`export_saved_model` writes `base_dir/<version>/` with named signatures, a
warm-up file replaying one request per signature, and nothing else: the
folder is built beside its final place, loaded by TF Serving's own loader
(TensorFlow's C++ session loader, in a fresh process), its warm-up requests
checked against the Keras model, then renamed into place. An existing
version is never touched.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from keras_recipes._io import _fsync_path
from keras_recipes.causal_lm import is_causal_lm
from keras_recipes.export import llama_graph
from keras_recipes.llama.generate import generate
from keras_recipes.serving.check import check_saved_model
from keras_recipes.serving.warmup import WARMUP_FILE, write_warmup_requests

if TYPE_CHECKING:
    from keras_recipes.embeddings import KeyedVectors, Word2Vec

# Signature names, by model kind.
SERVING_DEFAULT = "serving_default"


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


def _tokenizer_proto(tokenizer) -> bytes:
    if tokenizer is None:
        return None
    if isinstance(tokenizer, (bytes, str, os.PathLike)):
        from keras_recipes.tokenizers import SentencePieceTokenizer

        tokenizer = SentencePieceTokenizer(tokenizer)
    proto = getattr(tokenizer, "proto", None)
    if not isinstance(proto, bytes):
        raise ValueError(
            "export_saved_model: `tokenizer` must be a keras_recipes SentencePieceTokenizer, "
            f"its proto bytes or a .model path; got {type(tokenizer).__name__}."
        )
    return proto


class _CausalLMSignatures:
    """The signatures of a causal LM (`LlamaModel` or any model of the protocol),
    their example inputs and their oracle."""

    def __init__(
        self, model, tokenizer_proto: bytes | None, example_prompt: str, jit_compile: bool
    ):
        self.model = model
        self.jit_compile = jit_compile
        self.proto = tokenizer_proto
        self.example_prompt = example_prompt

    def functions(self) -> dict:
        model = self.model
        vocab_size = model.config.vocab_size

        @tf.function(
            input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids")],
            autograph=False,
        )
        def serving_default(token_ids):
            token_ids = _checked_token_ids(token_ids, vocab_size)
            return {"logits": model(token_ids, training=False)}

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None], tf.int32, name="token_ids"),
                tf.TensorSpec([None], tf.int32, name="max_new_tokens"),
                tf.TensorSpec([None], tf.float32, name="temperature"),
                tf.TensorSpec([None], tf.int32, name="top_k"),
                tf.TensorSpec([None], tf.float32, name="top_p"),
                tf.TensorSpec([None], tf.int32, name="seed"),
            ],
            autograph=False,
        )
        def generate(token_ids, max_new_tokens, temperature, top_k, top_p, seed):
            controls = _request_scalars(max_new_tokens, temperature, top_k, top_p, seed)
            token_ids = _checked_token_ids(token_ids, vocab_size)
            lengths = tf.fill([tf.shape(token_ids)[0]], tf.shape(token_ids)[1])
            out = llama_graph.generate_in_graph(
                model, token_ids, lengths, *controls, jit_compile=self.jit_compile
            )
            return {"token_ids": out}

        functions = {SERVING_DEFAULT: serving_default, "generate": generate}
        if self.proto is not None:
            import tensorflow_text as tf_text

            from keras_recipes.tokenizers import SentencePieceTokenizer

            sp = tf_text.SentencepieceTokenizer(model=self.proto, add_bos=True)
            eos_id = SentencePieceTokenizer(self.proto).eos_id

            @tf.function(
                input_signature=[
                    tf.TensorSpec([None], tf.string, name="prompt"),
                    tf.TensorSpec([None], tf.int32, name="max_new_tokens"),
                    tf.TensorSpec([None], tf.float32, name="temperature"),
                    tf.TensorSpec([None], tf.int32, name="top_k"),
                    tf.TensorSpec([None], tf.float32, name="top_p"),
                    tf.TensorSpec([None], tf.int32, name="seed"),
                ],
                autograph=False,
            )
            def generate_text(prompt, max_new_tokens, temperature, top_k, top_p, seed):
                controls = _request_scalars(max_new_tokens, temperature, top_k, top_p, seed)
                ids = tf.cast(sp.tokenize(prompt), tf.int32)
                padded, lengths = llama_graph.left_pad(ids)
                padded = _checked_token_ids(padded, vocab_size)
                out = llama_graph.generate_in_graph(
                    model, padded, lengths, *controls, jit_compile=self.jit_compile
                )
                new = out[:, tf.shape(padded)[1] :]
                before_eos = tf.cumsum(tf.cast(tf.equal(new, eos_id), tf.int32), axis=1) == 0
                new = tf.ragged.boolean_mask(new, before_eos)
                # Decoding prompt and continuation together keeps the space
                # between them (a piece's leading "▁" is dropped at the start).
                return {"text": sp.detokenize(tf.concat([ids, new], axis=1))}

            functions["generate_text"] = generate_text
            self.sentencepiece = sp
        return functions

    def resources(self) -> list:
        return [self.sentencepiece] if self.proto is not None else []

    def variables(self) -> list:
        return _tf_variables(self.model)

    def examples(self) -> dict:
        vocab = self.model.config.vocab_size
        ids = (np.arange(10, dtype=np.int32).reshape(2, 5) * 7 + 3) % vocab
        controls = {
            "max_new_tokens": np.array([4, 4], np.int32),
            "temperature": np.array([0.0, 0.0], np.float32),
            "top_k": np.array([0, 0], np.int32),
            "top_p": np.array([1.0, 1.0], np.float32),
            "seed": np.array([0, 0], np.int32),
        }
        examples = {
            SERVING_DEFAULT: {"token_ids": ids},
            "generate": {"token_ids": ids, **controls},
        }
        if self.proto is not None:
            prompts = np.array([self.example_prompt.encode(), b"Hello"], object)
            examples["generate_text"] = {"prompt": prompts, **controls}
        return examples

    def expected(self, name: str, inputs: dict) -> dict:
        """What the Keras model answers to `inputs` (the verification oracle)."""
        model = self.model
        if name == SERVING_DEFAULT:
            return {"logits": np.asarray(model(inputs["token_ids"], training=False))}
        kwargs = dict(
            max_new_tokens=int(inputs["max_new_tokens"][0]),
            temperature=float(inputs["temperature"][0]),
            top_k=int(inputs["top_k"][0]) or None,
            top_p=_top_p_or_none(float(inputs["top_p"][0])),
            seed=int(inputs["seed"][0]),
        )
        if name == "generate":
            return {"token_ids": generate(model, inputs["token_ids"], **kwargs)}
        from keras_recipes.tokenizers import SentencePieceTokenizer

        tokenizer = SentencePieceTokenizer(self.proto)
        texts = []
        for prompt in inputs["prompt"]:
            prompt = prompt.decode() if isinstance(prompt, bytes) else str(prompt)
            ids = tokenizer.encode(prompt, add_bos=True)
            out = generate(model, [ids], eos_id=tokenizer.eos_id, **kwargs)[0, len(ids) :]
            ends = np.flatnonzero(out == tokenizer.eos_id)
            new = out[: ends[0]] if len(ends) else out
            texts.append(tokenizer.decode([*ids, *new]).encode())
        return {"text": np.array(texts, object)}


def _top_p_or_none(top_p: float) -> float | None:
    """A request's top_p as `generate` takes it: outside (0, 1) means off."""
    return top_p if 0.0 < top_p < 1.0 else None


def _checked_token_ids(token_ids, vocab_size: int):
    """`token_ids`, once every id is in `[0, vocab_size)`.

    Otherwise the request fails with the first bad id in the message, as
    `model.generate` does: an embedding lookup would wrap a negative id to
    another row, and TF's gather on CPU fails without saying which id.
    """
    bad = tf.boolean_mask(token_ids, (token_ids < 0) | (token_ids >= vocab_size))
    check = tf.debugging.Assert(
        tf.equal(tf.size(bad), 0),
        [f"token_ids: token id outside [0, {vocab_size}) (the model's vocab_size):", bad[:1]],
    )
    with tf.control_dependencies([check]):
        return tf.identity(token_ids)


def _request_scalars(max_new_tokens, temperature, top_k, top_p, seed):
    """The first value of each control; a request must use one value for all rows."""
    scalars = []
    for name, value in (
        ("max_new_tokens", max_new_tokens),
        ("temperature", temperature),
        ("top_k", top_k),
        ("top_p", top_p),
        ("seed", seed),
    ):
        tf.debugging.assert_equal(
            value,
            value[0],
            message=f"{name} must be the same for every row of a request "
            "(send rows with different settings as separate requests)",
        )
        scalars.append(value[0])
    return scalars


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


def _tolerance(model) -> float:
    """How far a served float may be from the Keras model's, relative to the largest.

    float32 computations agree to 1e-5. Under a bfloat16 compute policy the
    graph and eager Keras sum in other orders, and one bfloat16 rounding step
    is 2**-8 of a value: two steps at the largest magnitude are allowed.
    """
    policy = getattr(model, "dtype_policy", None)
    compute = getattr(policy, "compute_dtype", "float32")
    return 2.0**-6 if compute in ("bfloat16", "float16") else 1e-5


def _tf_variables(model: keras.Model) -> list:
    """The model's `tf.Variable`s themselves, each once.

    Keras 3 wraps each `tf.Variable` in a `keras.Variable`. Saving the
    wrappers, the MetaGraph's saver restores nothing the graph reads: the TF2
    object loader (`tf.saved_model.load`) still works, but TF Serving's
    session loader fails with "Could not find variable". Saving `.value`
    (the `tf.Variable`) gives a saver that restores every variable the
    signatures read, as Keras's own `model.export()` does.
    """
    return [variable.value for variable in model.variables]


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
    if not isinstance(model, keras.Model):
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
) -> Path:
    """Export a model as a TF Serving SavedModel in `base_dir/<version>/`.

    The signatures depend on the model (inputs and outputs are named):

    - `LlamaModel`, or any causal LM (`keras_recipes.causal_lm`):
      `serving_default` (`token_ids` int32 `(B, T)` -> `logits`
      `(B, T, vocab)`); `generate` (`token_ids`, and per-row
      `max_new_tokens`, `temperature` (0: greedy), `top_k` (0: off), `top_p`
      (1.0: off), `seed`, all rows of one request holding the same values,
      sampled by `keras_recipes.llama.sampling` -> `token_ids` `(B, T + N)`),
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
            path, or None. Adds `generate_text` to a LLaMA export.
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

    Returns:
        The `Path` of the version folder.

    Examples:

    ```python
    model = build_llama("tiny")
    path = export_saved_model(model, "saved_models/llama")   # saved_models/llama/1
    # docker run -p 8501:8501 -v $PWD/saved_models/llama:/models/llama \\
    #     -e MODEL_NAME=llama tensorflow/serving
    wv = Word2Vec(sentences, vector_size=100, min_count=5).wv
    export_saved_model(wv, "saved_models/word2vec")            # signature "lookup"
    ```
    """
    base_dir = Path(base_dir)
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1
    ):
        raise ValueError(f"export_saved_model: version must be a positive int, got {version!r}.")
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
    return final
