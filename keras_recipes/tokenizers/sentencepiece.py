"""SentencePiece: training a subword vocabulary and tokenizing with it.

`train_sentencepiece` learns a subword vocabulary from raw text (the same
trainer keras-hub's `compute_sentence_piece_proto` calls, with the same
special ids: pad 0, unk 1, bos 2, eos 3), and `SentencePieceTokenizer` turns
text into ids and back in plain Python, so it works before TensorFlow is
involved and after a model has produced numpy ids.
`SentencePieceTokenizer.to_keras_hub()` hands the same vocabulary to
keras-hub when tokenizing inside a `tf.data` graph is wanted. The
vocabulary lives in one `.model` file (a serialized SentencePiece proto);
`save` writes it next to a checkpoint and `load_sentencepiece` reads it back.
"""

from __future__ import annotations

import io
import os
import re
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

    >>> import tempfile
    >>> tokenizer = train_sentencepiece(["the cat sat on the mat"] * 50, vocab_size=16)
    >>> tokenizer
    SentencePieceTokenizer(vocab_size=16)
    >>> ids = tokenizer.encode("the cat sat", add_bos=True)
    >>> ids[0] == tokenizer.bos_id, tokenizer.decode(ids)
    (True, 'the cat sat')
    >>> scratch = tempfile.TemporaryDirectory()
    >>> path = tokenizer.save(Path(scratch.name, "tokenizer.model"))
    >>> same = load_sentencepiece(path)
    >>> same.encode("the cat sat", add_bos=True) == ids
    True
    >>> scratch.cleanup()
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

    The 50 articles of the built-in `"lee"` corpus (`"lee_background"`, 300
    articles, supports `vocab_size=1024` and takes a few seconds):

    >>> from keras_recipes.data import load_builtin_corpus
    >>> tokenizer = train_sentencepiece(load_builtin_corpus("lee"), vocab_size=256)
    >>> ids = tokenizer.encode("Hundreds of people have been forced")
    >>> max(ids) < 256, tokenizer.decode(ids)
    (True, 'Hundreds of people have been forced')
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
