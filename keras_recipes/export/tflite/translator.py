"""`TFLiteTranslator`: translates strings with a `Seq2Seq` `.tflite` export on LiteRT.

It runs the file's `encode` once per source and `decode_step` once per
output token, carrying the decoder state between calls, with the same
greedy and beam searches as the Keras model; the tokenizers are read from
the file's `tokenizers` signature, so the file alone translates text.
"""

from __future__ import annotations

import json
import os

import numpy as np

from keras_recipes.export.tflite.interpreter import load_interpreter
from keras_recipes.seq2seq import (
    END_ID,
    PAD_ID,
    START_ID,
    SequenceTokenizer,
    beam_search,
    check_beam_width,
    encode_sources,
)


class TFLiteTranslator:
    """Translate strings with a `Seq2Seq` exported by `export_tflite`, on LiteRT.

    One source at a time: `encode` once, then one `decode_step` per output
    token (per hypothesis, for beam search), the decoder state and encoder
    outputs carried between calls. Greedy and beam search return the Keras
    model's translations. The tokenizers come from the file itself.

    Args:
        path: the `.tflite` file.
        num_threads: LiteRT threads (None: its default).

    After `export_tflite(model, "dates.tflite")` of a trained dates
    `Seq2Seq`, `TFLiteTranslator("dates.tflite").translate(["9 May 2018"])`
    gives `["2018-05-09"]`, and `.translate(["9 May 2018"], beam_width=4)`
    decodes by beam search (`tests/test_export_tflite.py` checks both
    against the Keras model; conversion takes seconds, too long for a
    doctest).
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        interpreter = load_interpreter(path, num_threads)
        names = interpreter.get_signature_list()
        if not {"encode", "decode_step", "tokenizers"} <= set(names):
            raise ValueError(
                f"TFLiteTranslator: {path} has signatures {sorted(names)}, not a Seq2Seq export "
                "(encode, decode_step, tokenizers)."
            )
        self._encode = interpreter.get_signature_runner("encode")
        self._decode = interpreter.get_signature_runner("decode_step")
        configs = interpreter.get_signature_runner("tokenizers")()["configs"][0]
        configs = json.loads(configs.decode() if isinstance(configs, bytes) else configs)
        self.source_tokenizer = SequenceTokenizer.from_config(configs["source"])
        self.target_tokenizer = SequenceTokenizer.from_config(configs["target"])
        self.max_source_length = int(self._encode.get_input_details()["source_ids"]["shape"][1])
        self.max_target_length = int(configs["max_target_length"])

    def _check_sources(self, source_ids) -> np.ndarray:
        source_ids = np.asarray(source_ids, np.int32)
        if source_ids.ndim != 2 or source_ids.shape[1] > self.max_source_length:
            raise ValueError(
                f"TFLiteTranslator: source ids must be (batch, <= {self.max_source_length}), "
                f"got shape {source_ids.shape}."
            )
        return source_ids

    def _encode_row(self, row):
        """`(context, states)` of one source: the inputs `decode_step` takes besides the token."""
        padded = np.full((1, self.max_source_length), PAD_ID, np.int32)
        padded[0, : len(row)] = row
        encoded = self._encode(source_ids=padded)
        context = {k: encoded[k] for k in ("encoder_outputs", "source_mask")}
        return context, self._states(encoded)

    @staticmethod
    def _states(outputs) -> dict:
        return {k: v for k, v in outputs.items() if k.startswith("state_")}

    def greedy_search(self, source_ids, max_length: int | None = None) -> np.ndarray:
        """Greedy target ids `(B, L)` for source ids `(B, S)`, as `Seq2Seq.greedy_search`."""
        max_length = max_length or self.max_target_length
        rows = []
        for row in self._check_sources(source_ids):
            context, states = self._encode_row(row)
            token, out = START_ID, []
            for _ in range(max_length):
                step = self._decode(token=np.array([[token]], np.int32), **context, **states)
                states = self._states(step)
                token = int(np.argmax(step["logits"][0]))
                out.append(token)
                if token == END_ID:
                    break
            rows.append(out)
        width = max(len(r) for r in rows)
        return np.array([r + [PAD_ID] * (width - len(r)) for r in rows], np.int32)

    def beam_search(
        self,
        source_ids,
        beam_width: int = 4,
        length_penalty: float = 0.0,
        max_length: int | None = None,
    ) -> np.ndarray:
        """Target ids `(B, L)` of the best hypothesis per source, as `Seq2Seq.beam_search`.

        The same search (`keras_recipes.seq2seq.beam_search`, GNMT length
        penalty), each hypothesis stepped through the file's `decode_step`.
        """
        k = check_beam_width(beam_width)
        contexts, states = [], []
        for row in self._check_sources(source_ids):
            context, state = self._encode_row(row)
            contexts += [context] * k
            states += [state] * k

        def step(tokens, states):
            outputs = [
                self._decode(token=tokens[i : i + 1], **contexts[i], **state)
                for i, state in enumerate(states)
            ]
            logits = np.concatenate([out["logits"] for out in outputs])
            return logits, [self._states(out) for out in outputs], None

        ids, _ = beam_search(
            step,
            states,
            len(states) // k,
            k,
            max_length or self.max_target_length,
            length_penalty,
            lambda states, rows: [states[row] for row in rows],
        )
        return ids

    def translate(
        self,
        texts,
        beam_width: int = 1,
        length_penalty: float = 0.0,
        max_length: int | None = None,
    ) -> list[str]:
        """Source strings -> target strings: greedy, or beam search for `beam_width > 1`."""
        ids = encode_sources(self.source_tokenizer, texts, self.max_source_length)
        if beam_width == 1:
            out = self.greedy_search(ids, max_length)
        else:
            out = self.beam_search(ids, beam_width, length_penalty, max_length)
        return [self.target_tokenizer.decode(row) for row in out]
