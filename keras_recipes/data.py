"""Data: built-in corpora, text-file loaders and `tf.data` pipelines.

Nothing here downloads. The built-in corpora are text files that gensim ships
with its tests (news articles from the Lee corpus, one document per line), so
every recipe has real English to train on out of the box; `load_text_files`
reads your own.

For language modelling, `language_model_datasets` turns documents into a
training and a validation `tf.data.Dataset` of `(inputs, targets)` windows:
documents are shuffled once with a fixed seed, encoded into one token stream
(bos/eos around each document), the stream's tail is held out for validation,
and each part is cut into windows of `seq_len + 1` tokens, where the targets
are the inputs shifted left by one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

# name -> (file in gensim's test data folder, its encoding); one document per line.
BUILTIN_CORPORA = {
    "lee_background": ("lee_background.cor", "utf-8"),  # 300 news articles, 360 KB
    "lee": ("lee.cor", "latin-1"),  # 50 news articles, 25 KB (has a latin-1 pound sign)
}
DOCUMENT_UNITS = ("line", "paragraph", "file")


def builtin_corpus_path(name: str = "lee_background") -> Path:
    """The path of a built-in corpus file (one of `BUILTIN_CORPORA`)."""
    if name not in BUILTIN_CORPORA:
        raise ValueError(
            f"Unknown built-in corpus {name!r}; choose one of {sorted(BUILTIN_CORPORA)} "
            "or read your own files with `load_text_files`."
        )
    from gensim.test.utils import datapath

    path = Path(datapath(BUILTIN_CORPORA[name][0]))
    if not path.is_file():
        raise ValueError(
            f"gensim's test data file {path} is missing; reinstall gensim "
            "(`pip install --force-reinstall gensim`)."
        )
    return path


def load_builtin_corpus(name: str = "lee_background") -> list[str]:
    """The documents of a built-in corpus, one str each.

    Args:
        name: str. A key of `BUILTIN_CORPORA`: `"lee_background"` (300 news
            articles from the Lee corpus, about 60,000 words) or `"lee"` (50
            more). Defaults to `"lee_background"`.

    Examples:

    >>> documents = load_builtin_corpus()
    >>> len(documents)
    300
    """
    return load_text_files([builtin_corpus_path(name)], encoding=BUILTIN_CORPORA[name][1])


def load_text_files(
    paths: Sequence[str | os.PathLike], unit: str = "line", encoding: str = "utf-8"
) -> list[str]:
    """Reads text files into a list of documents.

    Args:
        paths: sequence of paths. Text files, or folders whose `*.txt` files
            (searched recursively, in sorted order) are read.
        unit: str. What one document is: `"line"` (each non-blank line, the
            convention of `.cor` corpora and one-sentence-per-line files),
            `"paragraph"` (blocks separated by blank lines, their lines joined
            with spaces: hard-wrapped books) or `"file"`. Defaults to `"line"`.
        encoding: str. The files' encoding. Defaults to `"utf-8"`.

    Returns:
        A list of non-empty, stripped str.
    """
    if unit not in DOCUMENT_UNITS:
        raise ValueError(f"`unit` must be one of {DOCUMENT_UNITS}; received {unit!r}.")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise ValueError("No corpus files given: pass one or more text file paths.")
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.rglob("*.txt"))
            if not found:
                raise ValueError(f"Folder {str(path)!r} holds no *.txt files to read.")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"Corpus file {str(path)!r} does not exist; check the path.")
    documents = []
    for path in files:
        try:
            text = path.read_text(encoding=encoding)
        except UnicodeDecodeError as error:
            raise ValueError(
                f"{str(path)!r} is not {encoding} text ({error.reason} at byte "
                f"{error.start}); pass encoding=... or convert the file."
            ) from error
        if unit == "file":
            documents.append(text.strip())
        elif unit == "line":
            documents.extend(line.strip() for line in text.splitlines())
        else:
            blocks = text.replace("\r\n", "\n").split("\n\n")
            documents.extend(" ".join(block.split()) for block in blocks)
    documents = [d for d in documents if d]
    if not documents:
        raise ValueError(f"The corpus files {[str(f) for f in files]} hold no text.")
    return documents


def encode_documents(
    documents: Sequence[str], tokenizer, add_bos: bool = True, add_eos: bool = True
) -> np.ndarray:
    """One int32 token stream: each document's ids, wrapped in bos/eos, end to end.

    Args:
        documents: sequence of str.
        tokenizer: anything with `encode(list_of_str, add_bos=, add_eos=)`
            returning lists of ids, e.g. a `SentencePieceTokenizer`.
        add_bos: bool. Start each document with the bos id. Defaults to `True`.
        add_eos: bool. End each document with the eos id. Defaults to `True`.
    """
    encoded = tokenizer.encode(list(documents), add_bos=add_bos, add_eos=add_eos)
    if not encoded:
        return np.zeros((0,), dtype=np.int32)
    return np.concatenate([np.asarray(ids, dtype=np.int32) for ids in encoded])


def windows_dataset(
    tokens: np.ndarray,
    seq_len: int,
    batch_size: int,
    stride: int | None = None,
    shuffle: bool = False,
    drop_remainder: bool = False,
    seed: int | None = None,
):
    """A `tf.data.Dataset` of `(inputs, targets)` batches cut from a token stream.

    Window `i` covers `tokens[s : s + seq_len + 1]` with `s = i * stride`;
    inputs are its first `seq_len` tokens, targets its last `seq_len` (the
    next token at every position). Both are int32 `(batch, seq_len)`.

    Args:
        tokens: 1-D int array. The token stream.
        seq_len: int. Tokens per training example.
        batch_size: int. Examples per batch.
        stride: int. Step between window starts; `seq_len` (the default) makes
            the windows' targets tile the stream without overlap, smaller
            values overlap them.
        shuffle: bool. Reshuffle the windows every epoch. Defaults to `False`.
        drop_remainder: bool. Drop a last, smaller batch. Defaults to `False`.
        seed: int. Shuffle seed. Defaults to `None`.

    Examples:

    >>> ds = windows_dataset(np.arange(100), seq_len=8, batch_size=4)
    >>> x, y = next(iter(ds))
    >>> x[0].numpy().tolist(), y[0].numpy().tolist()
    ([0, 1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8])
    """
    import tensorflow as tf

    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(
            f"`tokens` must be a 1-D integer array; got shape {tokens.shape}, dtype {tokens.dtype}."
        )
    for name, value in (("seq_len", seq_len), ("batch_size", batch_size)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive int; received {value!r}.")
    stride = seq_len if stride is None else stride
    if not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"`stride` must be a positive int; received {stride!r}.")
    if len(tokens) < seq_len + 1:
        raise ValueError(
            f"{len(tokens)} tokens cannot fill one window of seq_len + 1 = {seq_len + 1}; "
            "use a smaller seq_len or more text."
        )
    starts = np.arange(0, len(tokens) - seq_len, stride, dtype=np.int64)
    if drop_remainder and len(starts) < batch_size:
        raise ValueError(
            f"Only {len(starts)} windows of {seq_len + 1} tokens, fewer than one batch of "
            f"{batch_size}; use a smaller batch_size or seq_len, or more text."
        )
    stream = tf.constant(tokens.astype(np.int32))
    offsets = tf.range(seq_len + 1, dtype=tf.int64)

    def cut(start):
        window = tf.gather(stream, start + offsets)
        return window[:-1], window[1:]

    ds = tf.data.Dataset.from_tensor_slices(starts)
    if shuffle:
        ds = ds.shuffle(len(starts), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(cut, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def epoch_windows_dataset(
    tokens: np.ndarray,
    seq_len: int,
    batch_size: int,
    epochs: int,
    first_epoch: int = 0,
    seed: int = 0,
):
    """Training batches for epochs `first_epoch .. epochs - 1`, as one stream.

    Each epoch visits the windows of `windows_dataset` (stride `seq_len`) in
    its own order, a function of `(seed, epoch)` only, and keeps its full
    batches: `steps_per_epoch(len(tokens), seq_len, batch_size)` of them. A
    run that restarts at epoch `e` (from a backup) therefore sees exactly the
    batches an uninterrupted run sees from `e` on, on any number of workers.
    Pass it to `fit` with `steps_per_epoch`, so one iterator runs through the
    whole stream.

    Args:
        tokens: 1-D int array. The token stream.
        seq_len: int. Tokens per training example.
        batch_size: int. Examples per (global) batch.
        epochs: int. The run's last epoch, exclusive (`fit`'s `epochs`).
        first_epoch: int. The epoch the stream starts at. Defaults to `0`.
        seed: int. Seed of every epoch's order. Defaults to `0`.

    Examples:

    >>> ds = epoch_windows_dataset(np.arange(1000), seq_len=8, batch_size=4, epochs=3)
    >>> [tuple(spec.shape) for spec in ds.element_spec]
    [(4, 8), (4, 8)]
    >>> steps_per_epoch(1000, 8, 4)
    31

    Train with `model.fit(ds, epochs=3, steps_per_epoch=steps_per_epoch(1000, 8, 4))`.
    """
    import tensorflow as tf

    steps = steps_per_epoch(len(tokens), seq_len, batch_size)
    if not 0 <= first_epoch < epochs:
        raise ValueError(f"Need 0 <= first_epoch < epochs; got {first_epoch} and {epochs}.")
    starts = np.arange(0, len(tokens) - seq_len, seq_len, dtype=np.int64)
    order = np.concatenate(
        [
            np.random.default_rng([seed, epoch]).permutation(starts)[: steps * batch_size]
            for epoch in range(first_epoch, epochs)
        ]
    )
    stream = tf.constant(np.asarray(tokens).astype(np.int32))
    offsets = tf.range(seq_len + 1, dtype=tf.int64)

    def cut(start):
        window = tf.gather(stream, start + offsets)
        return window[:-1], window[1:]

    ds = tf.data.Dataset.from_tensor_slices(order).map(cut, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(num_tokens: int, seq_len: int, batch_size: int) -> int:
    """Full batches of `seq_len + 1`-token windows (stride `seq_len`) in `num_tokens`."""
    for name, value in (("seq_len", seq_len), ("batch_size", batch_size)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive int; received {value!r}.")
    windows = max(0, -(-(num_tokens - seq_len) // seq_len))
    if windows < batch_size:
        raise ValueError(
            f"{num_tokens} tokens make {windows} windows of {seq_len + 1} tokens, fewer than "
            f"one batch of {batch_size}; use a smaller batch_size or seq_len, or more text."
        )
    return windows // batch_size


class LanguageModelData(NamedTuple):
    """What `language_model_datasets` returns."""

    train: object  # tf.data.Dataset of (inputs, targets)
    validation: object  # tf.data.Dataset of (inputs, targets)
    train_tokens: np.ndarray
    validation_tokens: np.ndarray


def language_model_datasets(
    documents: Sequence[str],
    tokenizer,
    seq_len: int,
    batch_size: int,
    validation_split: float = 0.1,
    seed: int = 0,
) -> LanguageModelData:
    """Training and validation windows for next-token prediction.

    The documents are shuffled once with `seed` (so a rerun, e.g. a resumed
    training run, sees the same split), encoded into one stream with bos/eos
    around each, and the last `validation_split` of the stream is held out.
    Training windows are reshuffled every epoch and the last, partial batch
    is dropped (every step sees `batch_size * seq_len` tokens); validation
    windows keep their order and every window is scored.

    Args:
        documents: sequence of str.
        tokenizer: a `SentencePieceTokenizer` (or anything with its `encode`).
        seq_len: int. Tokens per example.
        batch_size: int. Examples per batch.
        validation_split: float in (0, 1). Share of tokens held out.
            Defaults to `0.1`.
        seed: int. Seed of the document order and of the window shuffling.
            Defaults to `0`.

    Returns:
        A `LanguageModelData(train, validation, train_tokens, validation_tokens)`.
    """
    if not 0.0 < validation_split < 1.0:
        raise ValueError(
            f"`validation_split` must be between 0 and 1 (exclusive); received {validation_split}."
        )
    order = np.random.default_rng(seed).permutation(len(documents))
    stream = encode_documents([documents[i] for i in order], tokenizer)
    cut = int(round(len(stream) * (1.0 - validation_split)))
    train_tokens, validation_tokens = stream[:cut], stream[cut:]
    for name, part in (("training", train_tokens), ("validation", validation_tokens)):
        if len(part) < seq_len + 1:
            raise ValueError(
                f"The {name} part has {len(part)} tokens, fewer than one window of "
                f"seq_len + 1 = {seq_len + 1} (corpus: {len(stream)} tokens, "
                f"validation_split={validation_split}); lower seq_len or give more text."
            )
    return LanguageModelData(
        train=windows_dataset(
            train_tokens, seq_len, batch_size, shuffle=True, drop_remainder=True, seed=seed
        ),
        validation=windows_dataset(validation_tokens, seq_len, batch_size),
        train_tokens=train_tokens,
        validation_tokens=validation_tokens,
    )
