"""Sentiment data: the polarity sentences gensim ships and the aclImdb reader.

`load_polarity` reads `pang_lee_polarity.cor` from gensim's test data: 200
movie-review sentences (100 positive, 100 negative) from Pang and Lee's
sentence polarity data set, one per line in fastText's format,
`__label__pos text` / `__label__neg text`. The file is Windows-1252 text
(it has `0x97` em dashes), not UTF-8. Labels are 1 for positive, 0 for
negative.

`load_imdb` reads the Large Movie Review Dataset as unpacked from
`aclImdb_v1.tar.gz`: `aclImdb/{train,test}/{pos,neg}/*.txt`, one review per
file, with `<br />` line breaks.

`load_sst2` reads the Stanford Sentiment Treebank's binary task as GLUE
distributes it: `SST-2/train.tsv` and `SST-2/dev.tsv`, tab-separated with a
header row naming the columns (`sentence` and `label`, in either order;
`test.tsv` has no labels and is not read). The sentences are lower-cased and
tokenized already (`it 's a charming journey .`), and train holds phrases of
the treebank's sentences as well as whole ones. GLUE's dev split is used as
the test set, so `sst2_validation_split` holds out whole training sentences
to tune on, with their phrases taken out of training.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from keras_recipes._text import format_lines, read_text_file

POLARITY_LABELS = {"__label__pos": 1, "__label__neg": 0}
SST2_SPLITS = ("train", "dev")
# GLUE calls the text column "sentence"; some copies of dev.tsv call it "content".
SST2_TEXT_COLUMNS = ("sentence", "content")


def polarity_path() -> Path:
    """Where gensim keeps `pang_lee_polarity.cor`."""
    from gensim.test.utils import datapath

    path = Path(datapath("pang_lee_polarity.cor"))
    if not path.is_file():
        raise ValueError(
            f"gensim's test data file {path} is missing; reinstall gensim "
            "(`pip install --force-reinstall gensim`)."
        )
    return path


def load_polarity(
    path: str | os.PathLike | None = None, encoding: str = "cp1252"
) -> tuple[list[str], list[int]]:
    """Labelled sentences in fastText format, by default gensim's Pang-Lee sample.

    Args:
        path: path or None. A file of `__label__pos text` / `__label__neg text`
            lines; `None` reads `pang_lee_polarity.cor` from gensim.
        encoding: str. The file's encoding. Defaults to `"cp1252"`, the
            encoding of the gensim file.

    Returns:
        `(texts, labels)`: lists of str and of int (1 positive, 0 negative).

    Examples:

    >>> texts, labels = load_polarity()
    >>> len(texts), sum(labels)
    (200, 100)
    """
    path = polarity_path() if path is None else Path(path)
    if not path.is_file():
        raise ValueError(f"Polarity file {str(path)!r} does not exist; check the path.")
    texts, labels = [], []
    for number, line in enumerate(format_lines(read_text_file(path, encoding)), 1):
        if not line.strip():
            continue
        label, _, text = line.partition(" ")
        if label not in POLARITY_LABELS:
            raise ValueError(
                f"{path}:{number}: line starts with {label!r}; expected "
                f"{' or '.join(POLARITY_LABELS)} followed by the text."
            )
        texts.append(" ".join(text.split()))
        labels.append(POLARITY_LABELS[label])
    if not texts:
        raise ValueError(f"Polarity file {str(path)!r} holds no labelled lines.")
    return texts, labels


def load_imdb(
    directory: str | os.PathLike, split: str = "train", max_per_class: int | None = None
) -> tuple[list[str], list[int]]:
    """Reviews and labels from an unpacked aclImdb folder.

    Args:
        directory: path of the `aclImdb` folder (holding `train/` and `test/`).
        split: str. `"train"` or `"test"`. Defaults to `"train"`.
        max_per_class: int or None. Read at most this many reviews of each
            class (in sorted file order), for quick runs.

    Returns:
        `(texts, labels)`, negatives first: lists of str and of int
        (1 positive, 0 negative).

    Examples:

    >>> import tempfile
    >>> scratch = tempfile.TemporaryDirectory()
    >>> for label, review in (("neg", "Dull.<br />Long."), ("pos", "A gem.")):
    ...     folder = Path(scratch.name, "aclImdb", "test", label)
    ...     folder.mkdir(parents=True)
    ...     _ = (folder / "0_1.txt").write_text(review)
    >>> load_imdb(Path(scratch.name, "aclImdb"), "test", max_per_class=1000)
    (['Dull. Long.', 'A gem.'], [0, 1])
    >>> scratch.cleanup()
    """
    if split not in ("train", "test"):
        raise ValueError(f"`split` must be 'train' or 'test', got {split!r}.")
    texts, labels = [], []
    for label_name, label in (("neg", 0), ("pos", 1)):
        folder = Path(directory) / split / label_name
        if not folder.is_dir():
            raise ValueError(
                f"{str(folder)!r} is not a folder. Pass the aclImdb folder, the one "
                "holding train/{pos,neg}/*.txt and test/{pos,neg}/*.txt."
            )
        files = sorted(folder.glob("*.txt"))[:max_per_class]
        if not files:
            raise ValueError(f"{str(folder)!r} holds no *.txt reviews.")
        for file in files:
            text = file.read_text(encoding="utf-8").replace("<br />", " ")
            texts.append(" ".join(text.split()))
            labels.append(label)
    return texts, labels


def load_sst2(directory: str | os.PathLike, split: str = "train") -> tuple[list[str], list[int]]:
    """Sentences and labels of one split of GLUE's SST-2 folder.

    Columns are found by the header's names, so both `sentence<TAB>label`
    (GLUE's files) and `label<TAB>sentence` work; the text column may also be
    named `content`.

    Args:
        directory: path of the `SST-2` folder holding `train.tsv` and `dev.tsv`.
        split: str. `"train"` or `"dev"` (GLUE's test split has no labels).
            Defaults to `"train"`.

    Returns:
        `(texts, labels)` in file order: lists of str and of int
        (1 positive, 0 negative).

    Examples:

    GLUE's `dev.tsv` holds 872 sentences; a two-line one here:

    >>> import tempfile
    >>> scratch = tempfile.TemporaryDirectory()
    >>> _ = Path(scratch.name, "dev.tsv").write_text(
    ...     "sentence\\tlabel\\nit 's a charming journey . \\t1\\nunfunny . \\t0\\n")
    >>> load_sst2(scratch.name, "dev")
    (["it 's a charming journey .", 'unfunny .'], [1, 0])
    >>> scratch.cleanup()
    """
    if split not in SST2_SPLITS:
        raise ValueError(
            f"`split` must be one of {SST2_SPLITS}, got {split!r} (GLUE's test.tsv has no labels)."
        )
    path = Path(directory) / f"{split}.tsv"
    if not path.is_file():
        raise ValueError(
            f"{str(path)!r} does not exist. Pass the SST-2 folder, the one holding "
            "train.tsv and dev.tsv (GLUE format)."
        )
    lines = format_lines(read_text_file(path))
    header = lines[0].split("\t") if lines else []
    text_names = [name for name in SST2_TEXT_COLUMNS if name in header]
    if "label" not in header or not text_names:
        raise ValueError(
            f"{path}: the first line should be a header naming the columns 'sentence' and "
            f"'label' (tab-separated, in either order), got {lines[0][:80] if lines else ''!r}."
        )
    text_column, label_column = header.index(text_names[0]), header.index("label")
    texts, labels = [], []
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise ValueError(
                f"{path}:{number}: {len(fields)} tab-separated fields, the header has "
                f"{len(header)}."
            )
        if fields[label_column] not in ("0", "1"):
            raise ValueError(
                f"{path}:{number}: label {fields[label_column]!r}; SST-2 labels are 0 "
                "(negative) or 1 (positive)."
            )
        texts.append(" ".join(fields[text_column].split()))
        labels.append(int(fields[label_column]))
    if not texts:
        raise ValueError(f"{path} holds a header but no labelled sentences.")
    return texts, labels


def _spans(words: tuple, min_length: int, max_length: int):
    for length in range(min_length, max_length + 1):
        for start in range(len(words) - length + 1):
            yield words[start : start + length]


def sst2_validation_split(
    texts: list[str], labels: list[int], num_sentences: int = 1000, seed: int = 0
) -> tuple[tuple[list[str], list[int]], tuple[list[str], list[int]]]:
    """Holds out whole sentences of SST-2's train split, and their phrases.

    SST-2's train split holds each treebank sentence and many of its
    phrases, so a random slice of it is mostly short phrases whose sentence
    stayed in training. This picks `num_sentences` *whole* sentences (items
    of at least 8 tokens that are no phrase of another item, like dev's
    sentences) and takes every phrase of them (any item that occurs in one,
    at word boundaries) out of training.

    Args:
        texts: list of str. The train split's sentences (`load_sst2`).
        labels: list of int. Their labels.
        num_sentences: int. Sentences to hold out. Defaults to `1000`.
        seed: int. Which sentences are picked. Defaults to `0`.

    Returns:
        `((train_texts, train_labels), (validation_texts, validation_labels))`.

    Examples:

    >>> texts = ["a sweet , funny film", "sweet", "funny film", "a dull and long movie",
    ...          "dull", "long movie", "it is a sad tale of woe ."]
    >>> (train, _), (held_out, _) = sst2_validation_split(
    ...     texts, [1, 1, 1, 0, 0, 0, 0], num_sentences=1, seed=0)
    >>> held_out, len(train)
    (['it is a sad tale of woe .'], 6)
    """
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels; pass one label per text.")
    if num_sentences < 1:
        raise ValueError(f"num_sentences must be >= 1, got {num_sentences}.")
    tokens = [tuple(text.split()) for text in texts]
    long_items = Counter(words for words in tokens if len(words) >= 8)
    # An item of 8 tokens or more can only be a phrase of another such item.
    phrases_of_others = {
        span
        for words in long_items
        for span in _spans(words, min_length=8, max_length=len(words) - 1)
        if span in long_items
    }
    held_out = []
    for index in np.random.default_rng(seed).permutation(len(texts)):
        words = tokens[index]
        if long_items.get(words) == 1 and words not in phrases_of_others:
            held_out.append(int(index))
            if len(held_out) == num_sentences:
                break
    if len(held_out) < num_sentences:
        raise ValueError(
            f"Found only {len(held_out)} whole sentences of 8 or more tokens to hold out, "
            f"fewer than num_sentences={num_sentences}; ask for fewer."
        )
    held_out.sort()
    held_phrases = {span for i in held_out for span in _spans(tokens[i], 1, len(tokens[i]))}
    train = [i for i in range(len(texts)) if tokens[i] not in held_phrases]
    return tuple(
        ([texts[i] for i in part], [labels[i] for i in part]) for part in (train, held_out)
    )
