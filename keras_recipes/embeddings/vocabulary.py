"""Word vocabularies: unique-token counts, token <-> index maps, integer and one-hot codes.

The study notes list three ways to turn words into numbers: option 1, a
unique integer per word; option 2, a one-hot vector per word; option 3, a
learned embedding. This module is options 1 and 2 and the vocabulary all
three start from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

PAD_TOKEN = "[PAD]"
OOV_TOKEN = "[UNK]"


def _check_tokenized(sentences: Iterable[Sequence[str]]) -> list[list[str]]:
    sentences = list(sentences)
    for line, sentence in enumerate(sentences):
        if isinstance(sentence, str):
            raise ValueError(
                f"Sentence {line} is a string ({sentence[:40]!r}); every sentence must be a "
                "list of string tokens, e.g. `text.split()`."
            )
        sentences[line] = sentence = list(sentence)
        for token in sentence:
            if not isinstance(token, str):
                raise ValueError(
                    f"Sentence {line} holds {token!r} ({type(token).__name__}); every sentence "
                    "must be a list of string tokens, e.g. `text.split()`, not a string."
                )
    return sentences


def vocab_size(sentences: Iterable[Sequence[str]]) -> int:
    """Counts the unique tokens of a tokenized corpus, as the study notes do.

    `len(set(all_words))`: every distinct token counts once, however rare.
    An `Embedding` layer fed by `build_vocabulary` needs this plus the two
    reserved rows (padding and out-of-vocabulary).

    Args:
        sentences: iterable of sentences, each a list of string tokens.

    Returns:
        The number of distinct tokens.

    Examples:

    >>> vocab_size([["the", "king"], ["the", "queen"]])
    3
    """
    return len({token for sentence in _check_tokenized(sentences) for token in sentence})


class Vocabulary:
    """A token <-> index map with index 0 for padding and 1 for unknown tokens.

    Tokens are ordered by descending count (ties in order of first
    appearance), so index 2 is the most frequent word. `encode` gives the
    notes' option 1 (one integer per word, padded with 0) and `one_hot` their
    option 2 (one vector of `len(vocabulary)` per word).

    Args:
        tokens: list of str. The vocabulary without the reserved tokens.
        counts: optional list of int, the corpus count of each token.
        pad_token: str. The token at index 0. Defaults to `"[PAD]"`.
        oov_token: str. The token at index 1 that every unknown word maps
            to. Defaults to `"[UNK]"`.

    Examples:

    >>> vocab = build_vocabulary([["the", "king"], ["the", "queen"]])
    >>> vocab.index_to_token[:3]
    ['[PAD]', '[UNK]', 'the']
    >>> vocab.encode([["the", "queen", "rules"]], sequence_length=4).tolist()
    [[2, 4, 1, 0]]
    """

    def __init__(
        self,
        tokens: Sequence[str],
        counts: Sequence[int] | None = None,
        pad_token: str = PAD_TOKEN,
        oov_token: str = OOV_TOKEN,
    ):
        if pad_token == oov_token:
            raise ValueError(f"pad_token and oov_token must differ; both are {pad_token!r}.")
        self.pad_token = pad_token
        self.oov_token = oov_token
        self.index_to_token = [pad_token, oov_token, *tokens]
        self.token_to_index = {}
        for index, token in enumerate(self.index_to_token):
            if token in self.token_to_index:
                raise ValueError(
                    f"Token {token!r} appears twice in the vocabulary (indices "
                    f"{self.token_to_index[token]} and {index}); tokens must be unique and "
                    "must not repeat the reserved pad/oov tokens."
                )
            self.token_to_index[token] = index
        self.counts = None if counts is None else [0, 0, *counts]

    @property
    def pad_index(self) -> int:
        return 0

    @property
    def oov_index(self) -> int:
        return 1

    def __len__(self) -> int:
        return len(self.index_to_token)

    def __contains__(self, token: str) -> bool:
        return token in self.token_to_index

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, first={self.index_to_token[2:7]})"

    def lookup(self, token: str) -> int:
        """The index of `token`, or 1 (`oov_index`) if it is unknown."""
        return self.token_to_index.get(token, 1)

    def encode(
        self, sentences: Iterable[Sequence[str]], sequence_length: int | None = None
    ) -> np.ndarray:
        """Option 1: each token becomes its integer index.

        Args:
            sentences: iterable of token lists.
            sequence_length: int or None. Pad with 0 / cut to this length;
                None pads to the longest sentence.

        Returns:
            int32 array `(num_sentences, sequence_length)`.
        """
        sentences = _check_tokenized(sentences)
        if sequence_length is None:
            sequence_length = max((len(s) for s in sentences), default=0)
        if sequence_length < 0:
            raise ValueError(f"sequence_length must be >= 0, got {sequence_length}.")
        ids = np.zeros((len(sentences), sequence_length), np.int32)
        for row, sentence in enumerate(sentences):
            codes = [self.lookup(token) for token in sentence[:sequence_length]]
            ids[row, : len(codes)] = codes
        return ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of integer `ids`, padding (0) dropped."""
        tokens = []
        for index in ids:
            index = int(index)
            if not 0 <= index < len(self):
                raise ValueError(f"Index {index} is outside this vocabulary of size {len(self)}.")
            if index != 0:
                tokens.append(self.index_to_token[index])
        return tokens

    def one_hot(
        self, sentences: Iterable[Sequence[str]], sequence_length: int | None = None
    ) -> np.ndarray:
        """Option 2: each token becomes a one-hot row of `len(self)` floats.

        Padding positions are all-zero rows (index 0 is reserved, never hot).

        Returns:
            float32 array `(num_sentences, sequence_length, len(self))`.
        """
        ids = self.encode(sentences, sequence_length)
        codes = one_hot(ids, len(self))
        codes[..., 0] = 0.0
        return codes


def build_vocabulary(
    sentences: Iterable[Sequence[str]],
    min_count: int = 1,
    max_size: int | None = None,
    pad_token: str = PAD_TOKEN,
    oov_token: str = OOV_TOKEN,
) -> Vocabulary:
    """Builds a `Vocabulary` from a tokenized corpus.

    Args:
        sentences: iterable of sentences, each a list of string tokens.
        min_count: int. Tokens seen fewer times are left out (they encode
            as the OOV index 1). Defaults to 1.
        max_size: int or None. Keep at most this many rows in all,
            the two reserved ones included. None keeps every token.
        pad_token: str. The token at index 0.
        oov_token: str. The token at index 1.

    Returns:
        A `Vocabulary`, tokens by descending count.

    Examples:

    >>> vocab = build_vocabulary([["a", "b", "a"], ["c", "a"]], min_count=2)
    >>> vocab.index_to_token
    ['[PAD]', '[UNK]', 'a']
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}.")
    if max_size is not None and max_size < 2:
        raise ValueError(f"max_size must be >= 2 (padding and OOV take two rows), got {max_size}.")
    counts = Counter(token for sentence in _check_tokenized(sentences) for token in sentence)
    if not counts:
        raise ValueError("The corpus is empty: there are no tokens to build a vocabulary from.")
    # Counter keeps first-appearance order; a stable sort keeps it among ties.
    kept = [(t, c) for t, c in sorted(counts.items(), key=lambda tc: -tc[1]) if c >= min_count]
    kept = [(t, c) for t, c in kept if t not in (pad_token, oov_token)]
    if max_size is not None:
        kept = kept[: max_size - 2]
    return Vocabulary([t for t, _ in kept], [c for _, c in kept], pad_token, oov_token)


def one_hot(ids: np.ndarray | Sequence[int], depth: int) -> np.ndarray:
    """One-hot float32 codes of integer `ids` (any shape) with `depth` classes.

    Examples:

    >>> one_hot([2, 0], depth=3).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= depth):
        raise ValueError(
            f"one_hot ids must lie in [0, {depth}); got min {ids.min()} and max {ids.max()}."
        )
    return np.eye(depth, dtype=np.float32)[ids]
