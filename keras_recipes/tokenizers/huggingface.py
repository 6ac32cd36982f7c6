"""A Hugging Face `tokenizer.json` byte-level BPE (Llama 3), tokenized by keras-hub."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keras_recipes._text import read_json_file


class BytePairTokenizerJson:
    """A Hugging Face `tokenizer.json` byte-level BPE (Llama 3) read by keras-hub.

    The vocabulary, merges and added (special) tokens of the file go to
    `keras_hub.tokenizers.BytePairTokenizer`, which tokenizes in-graph with
    tensorflow-text. The begin/end tokens come from `tokenizer_config.json`
    beside it when present (`bos_token`, `eos_token`), else from the names
    Llama 3 uses. keras-hub splits words with GPT-2's pattern, which agrees
    with the Hugging Face `tokenizers` library on ordinary text but can
    differ on rare whitespace and digit runs.

    Args:
        path: the `tokenizer.json` file.
    """

    def __init__(self, path: str | os.PathLike):

        import keras_hub

        path = Path(path)
        data = read_json_file(path)
        model = data.get("model", {})
        if model.get("type") != "BPE":
            raise ValueError(
                f"{path}: model type {model.get('type')!r}; only byte-level BPE "
                "tokenizer.json files (Llama 3) are read here."
            )
        vocab = dict(model["vocab"])
        merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
        special = [token["content"] for token in data.get("added_tokens", [])]
        vocab.update({token["content"]: token["id"] for token in data.get("added_tokens", [])})
        config_path = path.with_name("tokenizer_config.json")
        config = read_json_file(config_path) if config_path.is_file() else {}

        def token(key, default):
            value = config.get(key) or default
            return value["content"] if isinstance(value, dict) else value

        self.bos_token = token("bos_token", "<|begin_of_text|>")
        self.eos_token = token("eos_token", "<|end_of_text|>")
        for name in (self.bos_token, self.eos_token):
            if name not in vocab:
                raise ValueError(f"{path}: special token {name!r} is not in the vocabulary.")
        self.bos_id, self.eos_id = vocab[self.bos_token], vocab[self.eos_token]
        self.vocab_size = max(vocab.values()) + 1
        # What a converter to another runtime (GGUF, LiteRT-LM) needs besides the ids.
        self.path = path
        self.vocabulary = vocab
        self.merges = merges
        self.added_tokens = list(data.get("added_tokens", []))
        self.pre_tokenizer = data.get("pre_tokenizer")
        template = config.get("chat_template")
        self.chat_template = template if isinstance(template, str) else None
        self._tokenizer = keras_hub.tokenizers.BytePairTokenizer(
            vocabulary=vocab, merges=merges, unsplittable_tokens=special
        )

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = np.asarray(self._tokenizer(text)).tolist()
        return [self.bos_id] * add_bos + ids + [self.eos_id] * add_eos

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids if int(i) not in (self.bos_id, self.eos_id)]
        if not ids:
            return ""
        text = self._tokenizer.detokenize(ids)
        return text if isinstance(text, str) else np.asarray(text).item().decode("utf-8")
