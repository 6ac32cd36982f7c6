"""Tokenizers: SentencePiece training and loading, and llama2.c's tokenizer.bin.

A language model sees integers, not text. `train_sentencepiece` learns a
subword vocabulary from raw text (the same trainer keras-hub's
`compute_sentence_piece_proto` calls, with the same special ids: pad 0, unk 1,
bos 2, eos 3), and `SentencePieceTokenizer` turns text into ids and back in
plain Python, so it works before TensorFlow is involved and after a model has
produced numpy ids. `SentencePieceTokenizer.to_keras_hub()` hands the same
vocabulary to keras-hub when tokenizing inside a `tf.data` graph is wanted.

The vocabulary lives in one `.model` file (a serialized SentencePiece proto);
`save` writes it next to a checkpoint and `load_sentencepiece` reads it back.
"""

from __future__ import annotations

import heapq
import io
import os
import re
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import sentencepiece as spm

from keras_recipes._io import atomic_write

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
MODEL_TYPES = ("unigram", "bpe", "word", "char")


class SentencePieceTokenizer:
    """Text to ids and back with a trained SentencePiece model.

    A thin wrapper over `sentencepiece.SentencePieceProcessor` that speaks
    Python lists and numpy arrays, checks ids before decoding them, and
    remembers its serialized proto so the vocabulary can be saved beside a
    model checkpoint.

    Args:
        proto: bytes, str or `pathlib.Path`. A serialized SentencePiece model
            (what `train_sentencepiece` produces), or the path of a `.model`
            file.

    Examples:

    ```python
    tokenizer = train_sentencepiece(["the cat sat on the mat"] * 50, vocab_size=30)
    ids = tokenizer.encode("the cat sat", add_bos=True)
    tokenizer.decode(ids)  # "the cat sat"
    tokenizer.save("runs/demo/tokenizer.model")
    same = load_sentencepiece("runs/demo/tokenizer.model")
    ```
    """

    def __init__(self, proto: bytes | str | os.PathLike):
        if isinstance(proto, (str, os.PathLike)):
            path = Path(proto)
            if not path.is_file():
                raise ValueError(
                    f"No SentencePiece model at {str(path)!r}: pass the path of a `.model` "
                    "file written by `SentencePieceTokenizer.save` (or sentencepiece's trainer)."
                )
            proto = path.read_bytes()
        if not isinstance(proto, bytes) or not proto:
            raise ValueError(
                "`proto` must be the bytes of a serialized SentencePiece model or a path to "
                f"a `.model` file. Received: {type(proto).__name__}."
            )
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(proto)
        except (RuntimeError, OSError) as error:
            raise ValueError(
                "These bytes are not a SentencePiece model (the proto did not parse): "
                f"{error}. Train one with `train_sentencepiece` or load a `.model` file."
            ) from error
        self._proto = proto
        self._processor = processor

    @property
    def proto(self) -> bytes:
        """The serialized SentencePiece model."""
        return self._proto

    @property
    def vocab_size(self) -> int:
        return self._processor.GetPieceSize()

    @property
    def pad_id(self) -> int:
        """The padding id, or -1 when the model has none."""
        return self._processor.pad_id()

    @property
    def unk_id(self) -> int:
        return self._processor.unk_id()

    @property
    def bos_id(self) -> int:
        """The beginning-of-sequence id, or -1 when the model has none."""
        return self._processor.bos_id()

    @property
    def eos_id(self) -> int:
        """The end-of-sequence id, or -1 when the model has none."""
        return self._processor.eos_id()

    def encode(
        self, text: str | Sequence[str], add_bos: bool = False, add_eos: bool = False
    ) -> list[int] | list[list[int]]:
        """Ids of one string (a list of ints) or of many (a list of lists).

        Args:
            text: str or sequence of str.
            add_bos: bool. Put `bos_id` first. Defaults to `False`.
            add_eos: bool. Put `eos_id` last. Defaults to `False`.
        """
        if isinstance(text, str):
            return self._processor.Encode(text, add_bos=add_bos, add_eos=add_eos)
        if isinstance(text, bytes) or not all(isinstance(t, str) for t in text):
            raise ValueError("`encode` takes a str or a sequence of str; decode bytes first.")
        return self._processor.Encode(list(text), add_bos=add_bos, add_eos=add_eos)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str | list[str]:
        """Text of one id sequence (a str) or of a batch (a list of str).

        Padding, bos and eos ids decode to nothing. A 1-D list or array gives
        one string; a 2-D array (or list of lists) gives one string per row.
        Raises a `ValueError` naming the first id outside `[0, vocab_size)`.
        """
        array = np.asarray(ids)
        if array.size == 0:
            return "" if array.ndim <= 1 else [""] * len(array)
        if array.dtype == object or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"`decode` takes integer ids; received dtype {array.dtype}. Rows of "
                "different lengths must be decoded one at a time."
            )
        if array.ndim not in (1, 2):
            raise ValueError(f"`decode` takes a 1-D or 2-D set of ids; got shape {array.shape}.")
        bad = (array < 0) | (array >= self.vocab_size)
        if bad.any():
            raise ValueError(
                f"Token id {int(array[bad][0])} is outside this vocabulary's range "
                f"[0, {self.vocab_size}): was it produced with a different tokenizer?"
            )
        if array.ndim == 1:
            return self._processor.Decode(array.tolist())
        return [self._processor.Decode(row) for row in array.tolist()]

    def id_to_piece(self, token_id: int) -> str:
        return self._processor.IdToPiece(int(token_id))

    def piece_to_id(self, piece: str) -> int:
        return self._processor.PieceToId(piece)

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the `.model` proto to `path` (folders made as needed), atomically.

        A unique temporary file beside `path`, synced and renamed onto it
        (`keras_recipes._io.atomic_write`): a planted symlink is never
        followed and permissions follow the umask.
        """
        path = Path(path)
        with atomic_write(path) as f:
            f.write(self._proto)
        return path

    def to_keras_hub(self):
        """The same vocabulary as a `keras_hub.tokenizers.SentencePieceTokenizer` layer."""
        import keras_hub

        return keras_hub.tokenizers.SentencePieceTokenizer(proto=self._proto)

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer(vocab_size={self.vocab_size})"


def train_sentencepiece(
    texts: Iterable[str],
    vocab_size: int,
    model_type: str = "unigram",
    lowercase: bool = False,
    character_coverage: float = 1.0,
    **trainer_kwargs,
) -> SentencePieceTokenizer:
    """Learns a SentencePiece vocabulary from raw text.

    The special ids follow keras-hub's `compute_sentence_piece_proto`: pad 0,
    unk 1, bos 2, eos 3. Unlike that function, each text may be as long as a
    whole document (SentencePiece silently skips lines over 4192 bytes by
    default; here the limit grows to fit the longest text).

    Args:
        texts: iterable of str. The training text, e.g. one document per item.
        vocab_size: int. Number of pieces, special ids included. A corpus can
            only support so many; too large a value raises a `ValueError`
            that says the largest one this text allows.
        model_type: str. One of `"unigram"`, `"bpe"`, `"word"`, `"char"`.
            Defaults to `"unigram"`.
        lowercase: bool. Lower-case (NFKC case-fold) before learning.
            Defaults to `False`.
        character_coverage: float. Share of characters the vocabulary must
            cover; rarer ones map to unk. Defaults to `1.0` (all of them),
            right for small English corpora.
        **trainer_kwargs: further `sentencepiece.SentencePieceTrainer.train`
            options, e.g. `byte_fallback=True`, `split_digits=True`.

    Returns:
        A `SentencePieceTokenizer`.

    Examples:

    ```python
    from keras_recipes.data import load_builtin_corpus
    tokenizer = train_sentencepiece(load_builtin_corpus("lee_background"), vocab_size=1024)
    tokenizer.encode("Hundreds of people have been forced")
    ```
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"`model_type` must be one of {MODEL_TYPES}; received {model_type!r}.")
    if not isinstance(vocab_size, int) or vocab_size < 5:
        raise ValueError(
            f"`vocab_size` must be an int of at least 5 (4 special ids + 1 piece); "
            f"received {vocab_size!r}."
        )
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("`texts` holds no text to learn a vocabulary from: pass non-empty str.")
    longest = max(len(t.encode("utf-8")) for t in texts)
    writer = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=writer,
            vocab_size=vocab_size,
            model_type=model_type,
            normalization_rule_name="nmt_nfkc_cf" if lowercase else "nmt_nfkc",
            character_coverage=character_coverage,
            max_sentence_length=max(4192, longest + 1),
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            minloglevel=2,
            **trainer_kwargs,
        )
    except RuntimeError as error:
        message = str(error)
        limit = re.search(r"<= (\d+)", message)
        if "Vocabulary size" in message and limit:
            raise ValueError(
                f"vocab_size={vocab_size} is more than this text supports; use "
                f"vocab_size <= {limit.group(1)} or give more text."
            ) from error
        chars = re.search(r"smaller than required_chars\. \d+ vs (\d+)", message)
        if chars:
            raise ValueError(
                f"vocab_size={vocab_size} cannot hold every character of this text plus the "
                f"special ids; use vocab_size >= {chars.group(1)} or lower character_coverage."
            ) from error
        raise ValueError(f"SentencePiece training failed: {message}") from error
    return SentencePieceTokenizer(writer.getvalue())


def load_sentencepiece(path: str | os.PathLike) -> SentencePieceTokenizer:
    """Loads a `.model` file written by `SentencePieceTokenizer.save`."""
    return SentencePieceTokenizer(path)


class Llama2cTokenizer:
    """llama2.c's `tokenizer.bin`: a SentencePiece BPE vocabulary with scores.

    The file holds an int32 max token length, then for each token a float32
    merge score, an int32 byte length and the bytes. `encode` and `decode`
    follow llama2.c's `run.c` exactly: a dummy-prefix space before non-empty
    text, UTF-8 code points looked up whole or split into byte-fallback tokens
    `<0xNN>` (id = byte + 3), then greedy merges of the adjacent pair whose
    concatenation has the highest score; decoding drops the leading space of
    the first piece after BOS and turns `<0xNN>` pieces back into raw bytes.

    Args:
        pieces: list of `bytes`, the token strings, indexed by id.
        scores: list of float merge scores, one per piece.
        bos_id: int, default 1. eos_id: int, default 2.

    Examples:

    >>> tok = Llama2cTokenizer.load("tokenizer.bin")      # doctest: +SKIP
    >>> tok.decode(tok.encode("Once upon a time"))        # doctest: +SKIP
    'Once upon a time'
    """

    def __init__(self, pieces, scores, bos_id: int = 1, eos_id: int = 2):
        if len(pieces) != len(scores) or not pieces:
            raise ValueError(
                f"Llama2cTokenizer needs one score per piece and at least one piece; "
                f"got {len(pieces)} pieces and {len(scores)} scores."
            )
        self.pieces = [bytes(p) for p in pieces]
        self.scores = [float(s) for s in scores]
        self.bos_id, self.eos_id = bos_id, eos_id
        self.max_token_length = max(len(p) for p in self.pieces)
        self._ids = {}
        for i, piece in enumerate(self.pieces):
            self._ids.setdefault(piece, i)

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    @classmethod
    def load(cls, path, vocab_size: int | None = None) -> Llama2cTokenizer:
        """Reads `tokenizer.bin`; `vocab_size` (from the model) checks the count."""
        path = Path(path)
        data = path.read_bytes()
        if len(data) < 4:
            raise ValueError(f"{path}: too short for a llama2.c tokenizer.bin.")
        offset, pieces, scores = 4, [], []
        while offset < len(data):
            if offset + 8 > len(data):
                raise ValueError(f"{path}: truncated at token {len(pieces)} (byte {offset}).")
            score, length = struct.unpack_from("<fi", data, offset)
            offset += 8
            if length < 0 or offset + length > len(data):
                raise ValueError(
                    f"{path}: token {len(pieces)} claims {length} bytes at byte {offset}, "
                    f"past the end of the file ({len(data)} bytes); the file is truncated "
                    "or not a llama2.c tokenizer.bin."
                )
            pieces.append(data[offset : offset + length])
            scores.append(score)
            offset += length
            if vocab_size is not None and len(pieces) == vocab_size:
                break
        if vocab_size is not None and len(pieces) != vocab_size:
            raise ValueError(
                f"{path}: holds {len(pieces)} tokens but the model's vocab_size is "
                f"{vocab_size}; use the tokenizer the checkpoint was trained with."
            )
        return cls(pieces, scores)

    def save(self, path) -> Path:
        """Writes `tokenizer.bin` in llama2.c's format, atomically (`_io.atomic_write`)."""
        path = Path(path)
        body = [struct.pack("<i", self.max_token_length)]
        for piece, score in zip(self.pieces, self.scores, strict=True):
            body.append(struct.pack("<fi", score, len(piece)) + piece)
        with atomic_write(path) as f:
            f.write(b"".join(body))
        return path

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = False) -> list[int]:
        """Token ids of `text`, as `run.c`'s `encode`."""
        raw = text.encode("utf-8")
        tokens = [self.bos_id] if add_bos else []
        if raw:
            tokens.append(self._ids[b" "])
        i = 0
        while i < len(raw):
            # A UTF-8 code point: the lead byte and its continuation bytes.
            j = i + 1
            while j < len(raw) and (raw[j] & 0xC0) == 0x80 and j - i < 4:
                j += 1
            point = raw[i:j]
            if point in self._ids:
                tokens.append(self._ids[point])
            else:
                tokens.extend(byte + 3 for byte in point)
            i = j
        return self._merge(tokens) + ([self.eos_id] if add_eos else [])

    def _merge(self, tokens: list[int]) -> list[int]:
        """run.c's merge loop — always the best-scoring adjacent pair, leftmost on
        ties — with a heap over a linked list instead of a rescan per merge."""
        following = list(range(1, len(tokens))) + [-1]
        preceding = list(range(-1, len(tokens) - 1))
        heap = []

        def push(i):
            j = following[i]
            if i >= 0 and j >= 0:
                merged = self._ids.get(self.pieces[tokens[i]] + self.pieces[tokens[j]])
                if merged is not None:
                    heapq.heappush(heap, (-self.scores[merged], i, tokens[i], tokens[j], merged))

        for i in range(len(tokens) - 1):
            push(i)
        alive = [True] * len(tokens)
        while heap:
            _, i, left, right, merged = heapq.heappop(heap)
            j = following[i]
            if not alive[i] or j < 0 or tokens[i] != left or tokens[j] != right:
                continue  # Stale: one side was merged away since this was pushed.
            tokens[i], alive[j] = merged, False
            following[i] = following[j]
            if following[j] >= 0:
                preceding[following[j]] = i
            push(preceding[i])
            push(i)
        return [token for token, keep in zip(tokens, alive, strict=True) if keep]

    def piece_bytes(self, previous: int, token: int) -> bytes:
        """The bytes `token` adds after `previous`, as `run.c`'s `decode`."""
        piece = self.pieces[token]
        if previous == self.bos_id and piece.startswith(b" "):
            piece = piece[1:]
        if len(piece) == 6 and piece.startswith(b"<0x") and piece.endswith(b">"):
            try:
                return bytes([int(piece[3:5], 16)])
            except ValueError:
                return piece
        return piece

    def decode(self, ids) -> str:
        """Text of a sequence of ids (BOS/EOS dropped), invalid UTF-8 replaced."""
        ids = [int(t) for t in ids]
        out, previous = [], self.bos_id
        for token in ids:
            if token in (self.bos_id, self.eos_id):
                previous = token
                continue
            out.append(self.piece_bytes(previous, token))
            previous = token
        return b"".join(out).decode("utf-8", errors="replace")


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
        import json

        import keras_hub

        path = Path(path)
        data = json.loads(path.read_text(encoding="utf-8"))
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
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}

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


TOKENIZER_FILES = ("tokenizer.model", "tokenizer.bin", "tokenizer.json")


def load_tokenizer(path: str | os.PathLike, vocab_size: int | None = None):
    """A tokenizer from a file: SentencePiece `.model`, llama2.c `tokenizer.bin`,
    or a Hugging Face byte-level BPE `tokenizer.json` (Llama 3).

    A folder is searched for `tokenizer.model`, `tokenizer.bin`, then
    `tokenizer.json` (the names Hugging Face and llama2.c use). Every
    returned type offers `encode(text, add_bos=...)`, `decode(ids)`,
    `bos_id`, `eos_id` and `vocab_size`.
    """
    path = Path(path)
    if path.is_dir():
        found = [path / name for name in TOKENIZER_FILES if (path / name).is_file()]
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
    tokenizer = (
        BytePairTokenizerJson(path) if path.suffix == ".json" else SentencePieceTokenizer(path)
    )
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
    for name in TOKENIZER_FILES:
        if (folder / name).is_file():
            return folder / name
    return None
