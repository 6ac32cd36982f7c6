"""The signatures of a causal LM: `serving_default`, `generate`, `generate_padded`,
`generate_text`.

`_CausalLMSignatures` builds the `tf.function`s (the KV-cached loop runs
in-graph through `keras_recipes.causal_lm.graph_generate`), their warm-up
examples and their oracle (`generate()` on the Keras model).
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_recipes.causal_lm import graph_generate
from keras_recipes.causal_lm.generation import generate
from keras_recipes.export.saved_model.common import SERVING_DEFAULT, _tf_variables


def _tokenizer_proto(tokenizer):
    """The tokenizer `generate_text` runs: SentencePiece proto bytes, or a
    `TokenizerJson` (a `tokenizer.json` file, or a folder holding one and no
    `tokenizer.model`); None without one."""
    from keras_recipes.tokenizers import TokenizerJson

    if tokenizer is None or isinstance(tokenizer, TokenizerJson):
        return tokenizer
    if isinstance(tokenizer, (str, os.PathLike)):
        path = Path(tokenizer)
        if path.is_dir() and not (path / "tokenizer.model").is_file():
            path = path / "tokenizer.json"
        if path.suffix == ".json":
            return TokenizerJson(path)
    if isinstance(tokenizer, (bytes, str, os.PathLike)):
        from keras_recipes.tokenizers import SentencePieceTokenizer

        tokenizer = SentencePieceTokenizer(tokenizer)
    proto = getattr(tokenizer, "proto", None)
    if not isinstance(proto, bytes):
        raise ValueError(
            "export_saved_model: `tokenizer` must be a keras_recipes SentencePieceTokenizer, "
            "its proto bytes or a .model path, or a TokenizerJson or tokenizer.json path; got "
            f"{type(tokenizer).__name__}."
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
        # Quantized models (`quantized_for_export`) convert their weights once per loop.
        decoding = getattr(model, "decoding", contextlib.nullcontext)

        @tf.function(
            input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids")],
            autograph=False,
        )
        def serving_default(token_ids):
            token_ids = _checked_token_ids(token_ids, vocab_size)
            token_ids = _checked_length(token_ids, model.config.max_seq_len)
            return {"logits": model(token_ids, training=False)}

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None], tf.int32, name="token_ids"),
                *_control_specs(),
            ],
            autograph=False,
        )
        def generate(token_ids, max_new_tokens, temperature, top_k, top_p, seed):
            controls = _request_controls(
                tf.shape(token_ids)[0], max_new_tokens, temperature, top_k, top_p, seed
            )
            token_ids = _checked_token_ids(token_ids, vocab_size)
            lengths = tf.fill([tf.shape(token_ids)[0]], tf.shape(token_ids)[1])
            with decoding():
                out = graph_generate.generate_in_graph(
                    model, token_ids, lengths, *controls, jit_compile=self.jit_compile
                )
            return {"token_ids": out}

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None], tf.int32, name="token_ids"),
                tf.TensorSpec([None], tf.int32, name="lengths"),
                *_control_specs(),
            ],
            autograph=False,
        )
        def generate_padded(token_ids, lengths, max_new_tokens, temperature, top_k, top_p, seed):
            # TF Serving's batcher (`--enable_batching`, `pad_variable_length_inputs:
            # true`) concatenates requests on axis 0 and pads every other axis AFTER
            # the values, with the request's own first value as the pad
            # (tensorflow_serving/batching/batching_util.cc: `CreatePadding` pads
            # {0 before, max - size after}; `PadTensor` pads with
            # `input.flat<T>()(0)`). A shorter prompt thus gets copies of its first
            # token (often BOS) on the right; `lengths` says where each prompt ends.
            batch = tf.shape(token_ids)[0]
            controls = _request_controls(batch, max_new_tokens, temperature, top_k, top_p, seed)
            token_ids = _checked_token_ids(token_ids, vocab_size)
            lengths = _checked_lengths(lengths, batch, tf.shape(token_ids)[1])
            ragged = tf.RaggedTensor.from_tensor(token_ids, lengths=lengths)
            left_padded, lengths = graph_generate.left_pad(ragged)
            with decoding():
                out = graph_generate.generate_in_graph(
                    model, left_padded, lengths, *controls, jit_compile=self.jit_compile
                )
            # Back to each row's prompt first, 0 after its end.
            n_pad = tf.shape(left_padded)[1] - lengths
            kept = tf.range(tf.shape(out)[1])[None, :] >= n_pad[:, None]
            return {"token_ids": tf.ragged.boolean_mask(out, kept).to_tensor(0)}

        functions = {
            SERVING_DEFAULT: serving_default,
            "generate": generate,
            "generate_padded": generate_padded,
        }
        if self.proto is not None and not isinstance(self.proto, bytes):  # a tokenizer.json
            functions["generate_text"] = self._generate_text_json(decoding, _control_specs())
            return functions
        if self.proto is not None:
            import tensorflow_text as tf_text

            from keras_recipes.tokenizers import SentencePieceTokenizer

            sp = tf_text.SentencepieceTokenizer(model=self.proto, add_bos=True)
            eos_id = SentencePieceTokenizer(self.proto).eos_id

            @tf.function(
                input_signature=[
                    tf.TensorSpec([None], tf.string, name="prompt"),
                    *_control_specs(),
                ],
                autograph=False,
            )
            def generate_text(prompt, max_new_tokens, temperature, top_k, top_p, seed):
                controls = _request_controls(
                    tf.shape(prompt)[0], max_new_tokens, temperature, top_k, top_p, seed
                )
                ids = tf.cast(sp.tokenize(prompt), tf.int32)
                padded, lengths = graph_generate.left_pad(ids)
                padded = _checked_token_ids(padded, vocab_size)
                with decoding():
                    out = graph_generate.generate_in_graph(
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

    def _generate_text_json(self, decoding, control_specs):
        """`generate_text` for a `tokenizer.json`: its pipeline as graph ops
        (`keras_recipes.tokenizers.graph`), exact against the `tokenizers`
        library or refused at construction."""
        from keras_recipes.tokenizers.graph import GraphTokenizer

        model, tokenizer = self.model, self.proto
        vocab_size = model.config.vocab_size
        graph = GraphTokenizer(tokenizer, vocab_size=vocab_size)
        self.graph_tokenizer = graph
        bos_id, stop_ids = tokenizer.bos_id, self.stop_ids()

        @tf.function(
            input_signature=[tf.TensorSpec([None], tf.string, name="prompt"), *control_specs],
            autograph=False,
        )
        def generate_text(prompt, max_new_tokens, temperature, top_k, top_p, seed):
            controls = _request_controls(
                tf.shape(prompt)[0], max_new_tokens, temperature, top_k, top_p, seed
            )
            ids = graph.tokenize(prompt)
            if bos_id is not None:
                ids = _with_bos(ids, bos_id)
            padded, lengths = graph_generate.left_pad(ids)
            padded = _checked_token_ids(padded, vocab_size)
            with decoding():
                out = graph_generate.generate_in_graph(
                    model,
                    padded,
                    lengths,
                    *controls,
                    jit_compile=self.jit_compile,
                    stop_ids=stop_ids,
                )
            new = out[:, tf.shape(padded)[1] :]
            stopped = tf.zeros_like(new, tf.bool)
            for stop_id in stop_ids:
                stopped |= tf.equal(new, stop_id)
            before_stop = tf.cumsum(tf.cast(stopped, tf.int32), axis=1) == 0
            new = tf.ragged.boolean_mask(new, before_stop)
            # Special tokens are left out of the text (decode with skip_special_tokens).
            return {"text": graph.detokenize(tf.concat([ids, new], axis=1))}

        return generate_text

    def stop_ids(self) -> tuple[int, ...]:
        """The ids that end a `generate_text` answer: a `tokenizer.json`'s end
        token and the stop ids of `generation_config.json` / `config.json`
        beside it."""
        from keras_recipes.tokenizers.huggingface import stop_ids_of

        return stop_ids_of(self.proto)

    def resources(self) -> list:
        if self.proto is None:
            return []
        if isinstance(self.proto, bytes):
            return [self.sentencepiece]
        return self.graph_tokenizer.resources

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
            "generate_padded": {
                "token_ids": ids,
                "lengths": np.array([5, 3], np.int32),
                **controls,
            },
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
        kwargs = _row_controls(inputs, 0)
        # A model's own generate (quantized ones decode without XLA), else the generic one.
        decode = getattr(model, "generate", None) or functools.partial(generate, model)
        if name == "generate_padded":  # each row alone, then prompt first and 0 after
            rows = [
                np.asarray(decode(ids[None, :length], **_row_controls(inputs, i)))[0]
                for i, (ids, length) in enumerate(
                    zip(inputs["token_ids"], inputs["lengths"], strict=True)
                )
            ]
            out = np.zeros([len(rows), max(map(len, rows))], np.int32)
            for i, row in enumerate(rows):
                out[i, : len(row)] = row
            return {"token_ids": out}
        if name == "generate":
            return {"token_ids": decode(inputs["token_ids"], **kwargs)}
        from keras_recipes.tokenizers import SentencePieceTokenizer

        json_file = not isinstance(self.proto, bytes)
        tokenizer = self.proto if json_file else SentencePieceTokenizer(self.proto)
        stop_ids = self.stop_ids() if json_file else (tokenizer.eos_id,)
        texts = []
        for prompt in inputs["prompt"]:
            prompt = prompt.decode() if isinstance(prompt, bytes) else str(prompt)
            if json_file:
                ids = tokenizer.encode(prompt)
                if tokenizer.bos_id is not None and ids[:1] != [tokenizer.bos_id]:
                    ids = [tokenizer.bos_id, *ids]
            else:
                ids = tokenizer.encode(prompt, add_bos=True)
            out = decode([ids], stop_ids=stop_ids, **kwargs)[0, len(ids) :]
            ends = np.flatnonzero(np.isin(out, stop_ids))
            new = out[: ends[0]] if len(ends) else out
            if json_file:
                text = tokenizer.decode([*ids, *new], skip_special_tokens=True)
            else:
                text = tokenizer.decode([*ids, *new])
            texts.append(text.encode())
        return {"text": np.array(texts, object)}


def _row_controls(inputs: dict, row: int) -> dict:
    """The `generate` keyword arguments of one row of a request (one value = every row)."""

    def value(name):
        values = np.asarray(inputs[name]).reshape(-1)
        return values[row if values.size > 1 else 0]

    return dict(
        max_new_tokens=int(value("max_new_tokens")),
        temperature=float(value("temperature")),
        top_k=int(value("top_k")) or None,
        top_p=_top_p_or_none(float(value("top_p"))),
        seed=int(value("seed")),
    )


def _checked_lengths(lengths, batch, width):
    """`lengths`, once it holds one length per row, each in `[1, width]`."""
    check = tf.debugging.Assert(
        (tf.size(lengths) == batch) & tf.reduce_all((lengths >= 1) & (lengths <= width)),
        [
            "lengths must hold one prompt length per row of token_ids, each in [1, the "
            "width of token_ids]; rows, width and lengths:",
            batch,
            width,
            lengths,
        ],
    )
    with tf.control_dependencies([check]):
        return tf.identity(lengths)


def _with_bos(ids, bos_id: int):
    """Ragged `ids` with `bos_id` in front of each row that does not start with it
    (a chat template writes its own, as `<|begin_of_text|>`)."""
    first = ids[:, :1].to_tensor(default_value=-1)[:, 0]
    needs = tf.cast(tf.not_equal(first, bos_id), tf.int64)
    bos = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(needs)], tf.constant(bos_id, ids.dtype)), needs
    )
    return tf.concat([bos, ids], axis=1)


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


def _control_specs() -> list:
    """The per-row generation controls of `generate` and `generate_text`, in call order."""
    return [
        tf.TensorSpec([None], tf.int32, name="max_new_tokens"),
        tf.TensorSpec([None], tf.float32, name="temperature"),
        tf.TensorSpec([None], tf.int32, name="top_k"),
        tf.TensorSpec([None], tf.float32, name="top_p"),
        tf.TensorSpec([None], tf.int32, name="seed"),
    ]


def _checked_length(token_ids, context: int):
    """`token_ids`, once its length fits the model's context (`max_seq_len`)."""
    check = tf.debugging.Assert(
        tf.shape(token_ids)[1] <= context,
        [
            f"token_ids: the sequence is longer than the context of the model ({context} tokens, "
            "max_seq_len); send at most that many tokens. Length:",
            tf.shape(token_ids)[1],
        ],
    )
    with tf.control_dependencies([check]):
        return tf.identity(token_ids)


def _request_controls(batch, max_new_tokens, temperature, top_k, top_p, seed):
    """One value of each control per row, checked as `generate` checks it.

    A control holds one value per row (`batch` values) or one for all rows;
    rows may differ (each row is decoded with its own settings).
    """
    controls = []
    for name, value in (
        ("max_new_tokens", max_new_tokens),
        ("temperature", temperature),
        ("top_k", top_k),
        ("top_p", top_p),
        ("seed", seed),
    ):
        size = tf.size(value)
        counted = tf.debugging.Assert(
            (size == 1) | (size == batch),
            [
                f"{name} must hold one value per row of token_ids or a single value; rows "
                "and values:",
                batch,
                size,
            ],
        )
        with tf.control_dependencies([counted]):
            controls.append(tf.broadcast_to(value, [batch]))
    max_new_tokens, temperature, top_k, top_p, seed = controls
    checks = [
        tf.debugging.assert_greater_equal(
            top_k, 0, message="top_k must be >= 0 (0 = off), as in Keras generate"
        ),
        tf.debugging.Assert(
            tf.reduce_all((top_p >= 0.0) & (top_p <= 1.0)),
            ["top_p must be in [0, 1] (0 or 1 = off), as in Keras generate; got", top_p],
        ),
        tf.debugging.Assert(
            tf.reduce_all((temperature >= 0.0) & (temperature < np.inf)),
            [
                "temperature must be >= 0 (0 = greedy) and finite, as in Keras generate; got",
                temperature,
            ],
        ),
    ]
    with tf.control_dependencies(checks):
        return [tf.identity(value) for value in controls]
