"""Text <-> token ids for the seq2seq model: `SequenceTokenizer` and the padded batches it feeds.

Character- or word-level vocabularies whose ids 0-3 are the markers
`<pad>`, `<unk>`, `<start>`, `<end>` (`PAD_ID`, `UNK_ID`, `START_ID`,
`END_ID`, the ids every decoder and runtime in the package agrees on), and
`encode_sources` / `pad_sequences`, which turn lists of texts or ids into
the right-padded int32 arrays the model reads.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Sequence

import numpy as np

PAD, UNK, START, END = "<pad>", "<unk>", "<start>", "<end>"
SPECIAL_TOKENS = (PAD, UNK, START, END)
PAD_ID, UNK_ID, START_ID, END_ID = range(4)
LEVELS = ("char", "word")
WORD_PATTERN = r"\w+|[^\w\s]"


class SequenceTokenizer:
    """Text <-> ids at character or word level, with start/end markers.

    Ids 0-3 are `<pad>`, `<unk>`, `<start>`, `<end>`; the vocabulary follows
    in the order given. Word level splits into runs of word characters and
    single punctuation marks ("it's 9." -> `it ' s 9 .`) and joins with spaces.

    Args:
        vocabulary: list of str. The tokens, without the four markers.
        level: str. `"char"` or `"word"`. Defaults to `"char"`.
        lowercase: bool. Lower-case text before splitting. Defaults to `False`.

    Examples:

    >>> tok = SequenceTokenizer.fit(["2018-05-09"], level="char")
    >>> tok.encode("2018", markers=True)  # <start> ... <end>
    [2, 7, 4, 6, 9, 3]
    >>> tok.decode(tok.encode("2018"))
    '2018'
    """

    def __init__(self, vocabulary: Sequence[str], level: str = "char", lowercase: bool = False):
        if level not in LEVELS:
            raise ValueError(f"Unknown tokenizer level {level!r}. Use one of {list(LEVELS)}.")
        vocabulary = [t for t in vocabulary if t not in SPECIAL_TOKENS]
        if not vocabulary:
            raise ValueError(
                "The vocabulary is empty: fit the tokenizer on non-empty texts "
                "(an empty training set, or texts that are all whitespace?)."
            )
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("The vocabulary has repeated tokens; give each token once.")
        self.level = level
        self.lowercase = bool(lowercase)
        self.tokens = list(SPECIAL_TOKENS) + list(vocabulary)
        self.index = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def fit(
        cls,
        texts: Iterable[str],
        level: str = "char",
        lowercase: bool = False,
        max_tokens: int | None = None,
        min_count: int = 1,
    ) -> SequenceTokenizer:
        """A tokenizer whose vocabulary is the tokens of `texts`, most frequent first.

        `max_tokens` caps the vocabulary (markers not counted); tokens seen
        fewer than `min_count` times are left out and read as `<unk>`.
        """
        if level not in LEVELS:
            raise ValueError(f"Unknown tokenizer level {level!r}. Use one of {list(LEVELS)}.")
        probe = cls(["x"], level, lowercase)
        counts = collections.Counter(t for text in texts for t in probe.split(text))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        vocabulary = [t for t, c in ranked if c >= min_count and t not in SPECIAL_TOKENS]
        return cls(vocabulary[:max_tokens], level, lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    def split(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        if self.level == "char":
            return list(text)
        return re.findall(WORD_PATTERN, text)

    def encode(self, text: str, markers: bool = False) -> list[int]:
        ids = [self.index.get(t, UNK_ID) for t in self.split(text)]
        return [START_ID, *ids, END_ID] if markers else ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`, stopping at `<end>` and skipping `<pad>` and `<start>`."""
        out = []
        for i in ids:
            i = int(i)
            if i == END_ID:
                break
            if i in (PAD_ID, START_ID):
                continue
            out.append(self.tokens[i])
        return ("" if self.level == "char" else " ").join(out)

    def get_config(self) -> dict:
        return {
            "vocabulary": self.tokens[len(SPECIAL_TOKENS) :],
            "level": self.level,
            "lowercase": self.lowercase,
        }

    @classmethod
    def from_config(cls, config: dict) -> SequenceTokenizer:
        return cls(**config)


def encode_sources(
    tokenizer: SequenceTokenizer, texts: Sequence[str], max_source_length: int
) -> np.ndarray:
    """Source texts -> padded int32 ids `(batch, longest)`; a source too long raises ValueError."""
    if isinstance(texts, str):
        raise ValueError("Give a list of source texts, e.g. translate([text]), not one string.")
    ids = [tokenizer.encode(t) for t in texts]
    for text, seq in zip(texts, ids, strict=True):
        if len(seq) > max_source_length:
            raise ValueError(
                f"Source {text[:60]!r} has {len(seq)} tokens, more than this model's "
                f"max_source_length={max_source_length}. Shorten it, or build the "
                "model with a larger max_source_length and train it again."
            )
    return pad_sequences(ids)


def pad_sequences(sequences: Sequence[Sequence[int]], length: int | None = None) -> np.ndarray:
    """Right-pads id lists with `<pad>` (0) into an int32 array `(batch, length)`."""
    length = length or max((len(s) for s in sequences), default=1)
    out = np.zeros((len(sequences), max(length, 1)), "int32")
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = seq
    return out
