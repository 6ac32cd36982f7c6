"""`TFLiteGenerator`: runs a causal LM `.tflite` export's `prefill` / `decode` signatures on LiteRT.

The caller side of the generative convention described in
`keras_recipes.export.tflite`: the KV caches come back from every call as
tensors and go into the next one. Tokens are picked by the package's one
sampler (`keras_recipes.causal_lm.sampling`: greedy, temperature, top-k, top-p)
in its numpy form.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keras_recipes._compat import litert_signature_in_place
from keras_recipes.causal_lm.generation import check_prompts
from keras_recipes.causal_lm.sampling import sample_numpy
from keras_recipes.causal_lm.settings import GenerationConfig
from keras_recipes.export.tflite.interpreter import load_interpreter


class TFLiteGenerator:
    """Generate text token ids with an exported causal LM `.tflite` (LLaMA or any) and LiteRT.

    Runs the `prefill` and `decode` signatures of a file written by
    `export_tflite`, carrying the KV caches between calls.

    Args:
        path: str or path of the `.tflite` file.
        num_threads: int or None, LiteRT CPU threads (None: its default).

    After `export_tflite(model, "llama.tflite")`,
    `TFLiteGenerator("llama.tflite").generate([[1, 5, 9]], max_new_tokens=32)`
    returns what `model.generate` does (`tests/test_export_tflite.py`
    checks it; conversion takes seconds, too long for a doctest).
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"TFLiteGenerator: no .tflite file at {path}.")
        self.interpreter = load_interpreter(path, num_threads)
        signatures = self.interpreter.get_signature_list()
        if not {"prefill", "decode"} <= set(signatures):
            raise ValueError(
                f"TFLiteGenerator: {path} has signatures {sorted(signatures)}; a LLaMA export "
                "has `prefill` and `decode` (write it with export_tflite(llama_model, ...))."
            )
        # The caches live in the interpreter's own tensors, the decode inputs
        # holding the current ones: a step copies each new cache once, from its
        # output tensor to its input tensor, and nothing else.
        self._prefill = _InPlace(self.interpreter, "prefill")
        self._decode = _InPlace(self.interpreter, "decode")
        # `decode_<length>` (LLaMA exports): the first `length` slots only, new rows
        # out. The caches then live in the shortest one's inputs that holds the
        # position, and move to a longer one (or to `decode`'s) when it is full.
        self._short = {}
        for key in sorted(signatures, key=lambda k: (len(k), k)):
            if key.startswith("decode_") and key[len("decode_") :].isdigit():
                short = _InPlace(self.interpreter, key)
                for view in short.inputs.values():
                    view.fill(0)  # arena memory: no NaN may sit under the mask
                self._short[int(key[len("decode_") :])] = short
        self._active = None  # the decode_<length> holding the caches; None: `decode`
        self.cache_names = sorted(n for n in self._decode.inputs if "_cache_" in n)
        self.cache_shapes = {n: self._decode.inputs[n].shape for n in self.cache_names}
        self.context = int(self.cache_shapes[self.cache_names[0]][1])
        self.prefill_len = int(self._prefill.inputs["tokens"].shape[1])
        self.vocab_size = int(self._decode.outputs["logits"].shape[-1])

    def prefill(self, prompt: np.ndarray) -> None:
        """Fills the caches with the prompt's tokens, all but the last one (fed to `decode`)."""
        caches = self._decode.inputs
        for name in self.cache_names:
            caches[name].fill(0.0)
        body = np.asarray(prompt, np.int32)[:-1]
        for start in range(0, len(body), self.prefill_len):
            piece = body[start : start + self.prefill_len]
            tokens = self._prefill.inputs["tokens"]
            tokens.fill(0)
            tokens[0, : len(piece)] = piece
            self._prefill.inputs["input_pos"][:] = start
            for name in self.cache_names:
                np.copyto(self._prefill.inputs[name], caches[name])
            self._prefill.invoke()
            for name in self.cache_names:
                np.copyto(caches[name], self._prefill.outputs[name])
        self._active = None
        self._hold(len(body))

    def _hold(self, position: int) -> _InPlace:
        """The signature whose inputs hold the caches for a step at `position`.

        Moving to another copies the slots written so far (`:position`).
        """
        length = next((n for n in self._short if position < n), None)
        if length != self._active:
            source = self._decode if self._active is None else self._short[self._active]
            target = self._decode if length is None else self._short[length]
            for name in self.cache_names:
                target.inputs[name][:, :position] = source.inputs[name][:, :position]
            self._active = length
        return self._decode if length is None else self._short[length]

    def decode(self, token: int, position: int) -> np.ndarray:
        """Logits `(vocab,)` after feeding `token` at `position`; the caches move on by one."""
        step = self._hold(position)
        step.inputs["tokens"][:] = token
        step.inputs["input_pos"][:] = position
        step.invoke()
        logits = step.outputs["logits"][0].copy()
        for name in self.cache_names:
            if step is self._decode:
                np.copyto(step.inputs[name], step.outputs[name])
            else:  # only the new row came back
                step.inputs[name][:, position] = step.outputs[name.replace("cache", "row")][:, 0]
        return logits

    def logits(self, token_ids) -> np.ndarray:
        """Logits `(T, vocab)` after each token of one sequence (teacher forcing).

        Row `t` is the prediction for token `t + 1`, as `model(ids)[0, t]`;
        comparing its argmax with a reference continuation measures how
        often a quantized file picks the same next token.
        """
        ids = np.asarray(token_ids, np.int32).reshape(-1)
        if not 0 < len(ids) <= self.context:
            raise ValueError(f"TFLiteGenerator.logits: need 1 to {self.context} token ids.")
        self.prefill(ids[:1])  # empty caches
        return np.stack([self.decode(int(token), position) for position, token in enumerate(ids)])

    def generate(
        self,
        prompt_ids,
        max_new_tokens: int | None = None,
        *,
        settings: GenerationConfig | None = None,
        **controls,
    ) -> np.ndarray:
        """Continue each prompt; the settings are `keras_recipes.causal_lm.GenerationConfig`'s.

        Returns:
            np.int32 `(batch, longest_prompt + max_new_tokens)`, prompts
            included and left-padded with `pad_id`; positions after a stop
            id hold `pad_id`. Sampling (temperature > 0) follows the
            package's one rule (`keras_recipes.causal_lm.sampling`) with
            numpy's generator seeded with `seed`: reproducible, but not the
            same draws as `model.generate`'s.
        """
        if max_new_tokens is not None:
            controls["max_new_tokens"] = max_new_tokens
        settings = GenerationConfig.of(settings, **controls)
        prompts = check_prompts(
            prompt_ids, settings, self.vocab_size, self.context, "TFLiteGenerator.generate"
        )
        max_new_tokens, pad_id = settings.max_new_tokens, settings.pad_id
        temperature, top_k, top_p, seed = (
            settings.temperature,
            settings.top_k,
            settings.top_p,
            settings.seed,
        )
        longest = max(len(p) for p in prompts)
        rng = np.random.default_rng(seed)
        out = np.full((len(prompts), longest + max_new_tokens), pad_id, np.int32)
        for row, prompt in enumerate(prompts):
            prompt = np.asarray(prompt, np.int32)
            offset = longest - len(prompt)
            out[row, offset:longest] = prompt
            if max_new_tokens == 0:
                continue
            self.prefill(prompt)
            token, position = int(prompt[-1]), len(prompt) - 1
            for step in range(max_new_tokens):
                logits = self.decode(token, position)
                token = sample_numpy(logits, temperature, top_k, top_p, rng)
                position += 1
                out[row, longest + step] = token
                if token in settings.stop_ids:
                    break
        return out


class _InPlace:
    """One signature's input and output tensors as numpy views, and `invoke()`."""

    def __init__(self, interpreter, key: str):
        self.invoke, view = litert_signature_in_place(interpreter, key)
        runner = interpreter.get_signature_runner(key)
        self.inputs = {n: view(d["index"]) for n, d in runner.get_input_details().items()}
        self.outputs = {n: view(d["index"]) for n, d in runner.get_output_details().items()}
