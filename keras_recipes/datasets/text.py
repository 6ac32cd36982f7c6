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
"""

from __future__ import annotations

import os
from pathlib import Path

POLARITY_LABELS = {"__label__pos": 1, "__label__neg": 0}


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

    ```python
    texts, labels = load_polarity()
    len(texts), sum(labels)  # (200, 100)
    ```
    """
    path = polarity_path() if path is None else Path(path)
    if not path.is_file():
        raise ValueError(f"Polarity file {str(path)!r} does not exist; check the path.")
    texts, labels = [], []
    for number, line in enumerate(path.read_text(encoding=encoding).splitlines(), 1):
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

    ```python
    texts, labels = load_imdb("aclImdb", "test", max_per_class=1000)
    ```
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
