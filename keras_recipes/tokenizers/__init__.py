"""Tokenizers: SentencePiece training and loading, llama2.c's tokenizer.bin, Hugging Face tokenizer.json.

A language model sees integers, not text. One file per format:
`sentencepiece.py` (`train_sentencepiece`, `SentencePieceTokenizer`,
`load_sentencepiece`), `llama2c.py` (`Llama2cTokenizer`, llama2.c's
`tokenizer.bin`), `huggingface.py` (`TokenizerJson`, a Hugging Face
`tokenizer.json` tokenized by the `tokenizers` library), `chat.py`
(`ChatTemplate`: `tokenizer_config.json`'s chat template rendered as
`transformers` renders it), `graph.py` (`GraphTokenizer`: a `tokenizer.json` as
TensorFlow ops, for the SavedModel's `generate_text`). `load_tokenizer` picks the format from the
file; `find_tokenizer` finds the one beside a checkpoint. `streaming.py`
(`IncrementalDecoder`) turns a growing id sequence into text piece by piece,
for printing tokens as they are generated.
"""

from __future__ import annotations

import os
from pathlib import Path

from keras_recipes.tokenizers.chat import ChatTemplate, render_chat
from keras_recipes.tokenizers.huggingface import BytePairTokenizerJson, TokenizerJson
from keras_recipes.tokenizers.llama2c import Llama2cTokenizer
from keras_recipes.tokenizers.sentencepiece import (
    BOS_ID,
    EOS_ID,
    MODEL_TYPES,
    PAD_ID,
    UNK_ID,
    SentencePieceTokenizer,
    load_sentencepiece,
    train_sentencepiece,
)
from keras_recipes.tokenizers.streaming import IncrementalDecoder

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "MODEL_TYPES",
    "PAD_ID",
    "TOKENIZER_FILES",
    "UNK_ID",
    "BytePairTokenizerJson",
    "ChatTemplate",
    "IncrementalDecoder",
    "Llama2cTokenizer",
    "SentencePieceTokenizer",
    "TokenizerJson",
    "find_tokenizer",
    "load_sentencepiece",
    "load_tokenizer",
    "render_chat",
    "train_sentencepiece",
]


TOKENIZER_FILES = ("tokenizer.model", "tokenizer.bin", "tokenizer.json")


def _search_order(folder: Path) -> tuple[str, ...]:
    """The tokenizer file names to look for in `folder`, first found wins.

    A Hugging Face tokenizer folder (tokenizer.json beside a
    tokenizer_config.json) is read through its tokenizer.json, as
    `transformers` reads it, even when a tokenizer.model sits beside it
    (Llama 2 chat folders ship both; the chat template's special tokens
    need the added vocabulary of tokenizer.json).
    """
    if (folder / "tokenizer.json").is_file() and (folder / "tokenizer_config.json").is_file():
        return ("tokenizer.json", *TOKENIZER_FILES)
    return TOKENIZER_FILES


def load_tokenizer(path: str | os.PathLike, vocab_size: int | None = None):
    """A tokenizer from a file: SentencePiece `.model`, llama2.c `tokenizer.bin`,
    or a Hugging Face `tokenizer.json` (Llama 3, SmolLM2, TinyLlama, ...).

    A folder is searched for `tokenizer.model`, `tokenizer.bin`, then
    `tokenizer.json` (the names Hugging Face and llama2.c use); a Hugging
    Face folder with `tokenizer_config.json` for its `tokenizer.json` first. Every
    returned type offers `encode(text, add_bos=...)`, `decode(ids)`,
    `bos_id`, `eos_id` and `vocab_size`.
    """
    path = Path(path)
    if path.is_dir():
        found = [path / name for name in _search_order(path) if (path / name).is_file()]
        if not found:
            raise ValueError(
                f"{path}: no {', '.join(TOKENIZER_FILES)} in this folder; pass --tokenizer."
            )
        path = found[0]
    if not path.is_file():
        raise ValueError(
            f"No tokenizer at {path}: pass a .model, tokenizer.bin or tokenizer.json file."
        )
    if path.suffix == ".bin":
        return Llama2cTokenizer.load(path, vocab_size=vocab_size)
    tokenizer = TokenizerJson(path) if path.suffix == ".json" else SentencePieceTokenizer(path)
    if vocab_size is not None and tokenizer.vocab_size > vocab_size:
        raise ValueError(
            f"{path}: {tokenizer.vocab_size} tokens but the model's vocab_size is {vocab_size}; "
            "use the tokenizer the model was trained with."
        )
    return tokenizer


def find_tokenizer(checkpoint: str | os.PathLike) -> Path | None:
    """The tokenizer file that belongs to a checkpoint: beside it, or in its folder."""
    checkpoint = Path(checkpoint)
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    for name in _search_order(folder):
        if (folder / name).is_file():
            return folder / name
    return None
