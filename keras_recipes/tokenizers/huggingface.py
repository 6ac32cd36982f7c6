"""A Hugging Face `tokenizer.json`, tokenized by the Hugging Face `tokenizers` library.

`tokenizer.json` describes a whole pipeline: added (special) tokens, a
normalizer, a pre-tokenizer (Llama 3's split pattern, GPT-2's byte-level
split, SentencePiece's metaspace), the model (BPE) and a decoder. The
`tokenizers` library is the reference implementation of that format, so
`TokenizerJson` hands the file to it whole: its ids are the library's ids
for every file it reads (Llama 3, SmolLM2, TinyLlama, ...).

`tokenizer_config.json` beside the file gives the begin and end tokens
(`bos_token`, `eos_token`) and the chat template (`chat_template`, or a
`chat_template.jinja` file), as `transformers` reads them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keras_recipes._text import read_json_file
from keras_recipes.tokenizers.chat import template_from_config, token_content

# Names a tokenizer.json uses for its begin / end token when no
# tokenizer_config.json says (Llama 3, SentencePiece-derived, GPT-2-style).
_BOS_NAMES = ("<|begin_of_text|>", "<s>")
_EOS_NAMES = ("<|end_of_text|>", "</s>", "<|endoftext|>")


def read_tokenizer_config(folder: str | os.PathLike) -> dict:
    """`tokenizer_config.json` of a folder as a dict ({} when absent).

    A `chat_template.jinja` file (where recent `transformers` versions save
    the template) fills `chat_template` when the config has none.
    """
    folder = Path(folder)
    path = folder / "tokenizer_config.json"
    config = {}
    if path.is_file():
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error}).") from None
        if not isinstance(config, dict):
            raise ValueError(f"{path}: holds a JSON {type(config).__name__}, not an object.")
    jinja = folder / "chat_template.jinja"
    if not config.get("chat_template") and jinja.is_file():
        config["chat_template"] = jinja.read_text(encoding="utf-8")
    return config


class TokenizerJson:
    """A Hugging Face `tokenizer.json`, tokenized by the `tokenizers` library.

    Every kind of file the library reads works here: byte-level BPE with
    Llama 3's split pattern or GPT-2's, SentencePiece-derived BPE with byte
    fallback (TinyLlama, Llama 2), and added tokens such as
    `<|eot_id|>` written inside the text. `encode` never applies the file's
    post-processor (which adds the begin token for some files and not for
    others); `add_bos` says whether to add it.

    Args:
        path: the `tokenizer.json` file.

    Attributes:
        bos_token, eos_token: the begin / end token strings, from
            `tokenizer_config.json` beside the file when present, else the
            names Llama 3, Llama 2 and GPT-2-style files use (None if absent).
        bos_id, eos_id: their ids (None if absent).
        vocab_size: ids in use, added tokens included.
        config: the `tokenizer_config.json` dict ({} when absent).

    On Llama 3.2's file, `TokenizerJson(folder + "/tokenizer.json").encode(
    "rose 12345 in 2024", add_bos=True)` splits the digits as Llama 3 does
    (`' '`, `'123'`, `'45'`), and `decode` gives the text back
    (`tests/test_hf_tokenizer.py` checks such files against the `tokenizers`
    library itself).
    """

    def __init__(self, path: str | os.PathLike):
        from tokenizers import Tokenizer

        self.path = Path(path)
        self.spec = read_json_file(self.path)  # bad JSON: named with its line and column
        try:
            self._tokenizer = Tokenizer.from_file(str(self.path))
        except Exception as error:  # the library raises plain Exception for a bad file
            raise ValueError(
                f"{self.path}: the tokenizers library cannot read this tokenizer.json ({error})."
            ) from None
        self.config = read_tokenizer_config(self.path.parent)
        vocab = self._tokenizer.get_vocab(with_added_tokens=True)
        self.vocab_size = max(vocab.values()) + 1

        def special(key, names):
            name = token_content(self.config.get(key))
            if name is not None:
                if name not in vocab:
                    raise ValueError(
                        f"{self.path}: tokenizer_config.json's {key} {name!r} is not in the "
                        "vocabulary; the config belongs to another tokenizer."
                    )
                return name
            return next((n for n in names if n in vocab), None)

        self.bos_token = special("bos_token", _BOS_NAMES)
        self.eos_token = special("eos_token", _EOS_NAMES)
        self.bos_id = vocab.get(self.bos_token)
        self.eos_id = vocab.get(self.eos_token)
        self.special_ids = frozenset(
            token["id"] for token in self.spec.get("added_tokens", []) if token.get("special")
        )
        # What a converter to another runtime (GGUF, LiteRT-LM) needs besides the ids.
        model = self.spec.get("model") or {}
        self.vocabulary = vocab
        self.merges = [" ".join(m) if isinstance(m, list) else m for m in model.get("merges", [])]
        self.added_tokens = list(self.spec.get("added_tokens", []))
        self.pre_tokenizer = self.spec.get("pre_tokenizer")

    @property
    def chat_template(self) -> str | None:
        """The template of `tokenizer_config.json` (None when it has none)."""
        return template_from_config(self.config)

    def token_to_id(self, token: str) -> int | None:
        return self._tokenizer.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self._tokenizer.id_to_token(int(token_id))

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """The ids of `text` (special tokens written in it included), with
        the begin / end token added when asked and defined."""
        ids = self._tokenizer.encode(text, add_special_tokens=False).ids
        if add_bos and self.bos_id is not None:
            ids = [self.bos_id, *ids]
        if add_eos and self.eos_id is not None:
            ids = [*ids, self.eos_id]
        return ids

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """The text of `ids`, as the `tokenizers` library decodes them.

        The begin and end tokens are always left out (as the other
        tokenizers of this package do); `skip_special_tokens` leaves out
        every special added token (`<|eot_id|>`, `<|im_start|>`, ...).
        """
        drop = self.special_ids if skip_special_tokens else {self.bos_id, self.eos_id}
        ids = [int(i) for i in ids if int(i) not in drop]
        return self._tokenizer.decode(ids, skip_special_tokens=False)


def folder_stop_ids(folder: str | os.PathLike) -> tuple[int, ...]:
    """The stop ids a Hugging Face folder declares: `eos_token_id` (an int or
    a list) of `generation_config.json`, then of `config.json`.

    Llama 3 Instruct lists `[128001, 128008, 128009]` there (end of text,
    end of message, end of turn); generation must stop on each.
    """
    folder = Path(folder)
    ids = []
    for name in ("generation_config.json", "config.json"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            value = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id")
        except (json.JSONDecodeError, AttributeError):
            raise ValueError(f"{path}: not a JSON object; eos_token_id cannot be read.") from None
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is None:
                continue
            if not isinstance(item, int) or isinstance(item, bool) or item < 0:
                raise ValueError(
                    f"{path}: eos_token_id holds {item!r}; it must be an id or a list of ids."
                )
            ids.append(item)
    return tuple(dict.fromkeys(ids))


def stop_ids_of(tokenizer) -> tuple[int, ...]:
    """A tokenizer's end id followed by the stop ids of its folder
    (`folder_stop_ids`), each once."""
    ids = [tokenizer.eos_id] if getattr(tokenizer, "eos_id", None) is not None else []
    path = getattr(tokenizer, "path", None)
    if path is not None:
        ids += folder_stop_ids(Path(path).parent)
    return tuple(dict.fromkeys(ids))


# The name this class had when keras-hub's BytePairTokenizer read the file.
BytePairTokenizerJson = TokenizerJson
