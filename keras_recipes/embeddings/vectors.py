"""Word vectors: `KeyedVectors` queries and evaluations, vector files, subword fallback.

`KeyedVectors` answers the questions people ask of embeddings, with gensim's
names and semantics: `most_similar` (cosine over unit-normalized vectors, the
query words excluded), `similarity`, `doesnt_match`, the analogy test
(`evaluate_word_analogies`, word2vec.c's `compute-accuracy`) and the
word-pair test (`evaluate_word_pairs`, Pearson and Spearman). It reads and
writes the word2vec.c text and binary formats that gensim and word2vec.c
use, reads GloVe files (no header line) through `load_vectors`, and builds
the weight matrix of a `keras.layers.Embedding` for a `Vocabulary`.

Out-of-vocabulary words (fastText style, from word vectors alone): a word is
cut into character n-grams of `min_n..max_n` characters of `"<" + word +
">"`, each n-gram hashed with 32-bit FNV-1a over its UTF-8 bytes (bytes
sign-extended as fastText does) into `bucket` buckets. `build_subwords`
gives each bucket the mean of the vectors of the known words that contain
one of its n-grams; an unknown word's vector is the mean of its n-grams'
bucket vectors (an error if none of them was seen). fastText trains its
n-gram vectors jointly with the words; a `.vec` file does not hold them, so
this builds them from the words instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

from keras_recipes._io import atomic_write


def fnv1a_32(data: bytes) -> int:
    """fastText's string hash: 32-bit FNV-1a over bytes read as signed chars."""
    h = 2166136261
    for byte in data:
        h ^= (byte - 256 if byte > 127 else byte) & 0xFFFFFFFF
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def char_ngrams(word: str, min_n: int = 3, max_n: int = 6) -> list[str]:
    """The character n-grams of `"<" + word + ">"` of length `min_n..max_n`."""
    wrapped = f"<{word}>"
    return [
        wrapped[i : i + n] for n in range(min_n, max_n + 1) for i in range(len(wrapped) - n + 1)
    ]


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks starting at 1, ties sharing their average rank (as Spearman needs)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    return float((x @ y) / np.sqrt((x @ x) * (y @ y)))


class KeyedVectors:
    """Word -> vector lookups and the queries people ask of word vectors.

    Args:
        keys: list of str, one per row of `vectors` (most frequent first, by
            convention: `restrict_vocab` arguments keep the first rows).
        vectors: float array `(len(keys), vector_size)`.
        counts: optional int array, the corpus count of each key.

    Examples:

    >>> kv = KeyedVectors(["a", "b"], np.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> round(kv.similarity("a", "b"), 3)
    0.0
    """

    def __init__(
        self,
        keys: Sequence[str],
        vectors: np.ndarray,
        counts: Sequence[int] | np.ndarray | None = None,
    ):
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(keys):
            raise ValueError(
                f"vectors must be (len(keys), vector_size) = ({len(keys)}, d); got shape "
                f"{vectors.shape}."
            )
        self.index_to_key = list(keys)
        self.key_to_index = {}
        for index, key in enumerate(self.index_to_key):
            if key in self.key_to_index:
                raise ValueError(
                    f"Key {key!r} appears twice (rows {self.key_to_index[key]}, {index})."
                )
            self.key_to_index[key] = index
        self.vectors = vectors
        self.counts = None if counts is None else np.asarray(counts, np.int64)
        self.norms = None
        self._subwords = None

    @property
    def vector_size(self) -> int:
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, key: str) -> bool:
        return key in self.key_to_index

    def __repr__(self) -> str:
        return f"KeyedVectors({len(self)} keys, vector_size={self.vector_size})"

    def fill_norms(self, force: bool = False) -> None:
        if self.norms is None or force:
            self.norms = np.linalg.norm(self.vectors, axis=1)

    def get_index(self, key: str) -> int:
        if key not in self.key_to_index:
            raise KeyError(f"Word {key!r} is not in the vocabulary ({len(self)} words).")
        return self.key_to_index[key]

    def get_vector(self, key: str, norm: bool = False) -> np.ndarray:
        """The vector of `key`; for an unknown word, its subword vector if `build_subwords` ran."""
        if key in self.key_to_index:
            vector = self.vectors[self.key_to_index[key]]
        elif self._subwords is not None:
            vector = self._subword_vector(key)
        else:
            raise KeyError(
                f"Word {key!r} is not in the vocabulary ({len(self)} words); call "
                "build_subwords() to get fastText-style vectors for unknown words."
            )
        if norm:
            length = np.linalg.norm(vector)
            vector = vector / length if length > 0 else vector
        return vector

    def __getitem__(self, key: str | Sequence[str]) -> np.ndarray:
        if isinstance(key, str):
            return self.get_vector(key)
        return np.stack([self.get_vector(k) for k in key])

    def get_normed_vectors(self) -> np.ndarray:
        self.fill_norms()
        return self.vectors / np.maximum(self.norms, 1e-12)[:, None]

    # ------------------------------------------------------------------ queries

    def _require(self, words: Iterable[str], what: str) -> None:
        for word in words:
            if word not in self.key_to_index:
                raise KeyError(
                    f"{what}: word {word!r} is not in the vocabulary ({len(self)} words)."
                )

    def most_similar(
        self,
        positive: str | Sequence[str] | None = None,
        negative: str | Sequence[str] | None = None,
        topn: int = 10,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]]:
        """The `topn` words closest (cosine) to `mean(positive) - mean(negative)`.

        As gensim: each query word's unit vector is weighted +1 (positive) or
        -1 (negative), the weighted mean is normalized, and the query words
        themselves are left out of the answer. `king - man + woman` is
        `most_similar(positive=["king", "woman"], negative=["man"])`.

        Args:
            positive: a word or list of words that pull towards the answer.
            negative: a word or list of words that push away from it.
            topn: int. How many (word, cosine) pairs to return.
            restrict_vocab: int or None. Search only the first rows.

        Returns:
            list of `(word, cosine)`, most similar first.
        """
        positive = [positive] if isinstance(positive, str) else list(positive or [])
        negative = [negative] if isinstance(negative, str) else list(negative or [])
        if not positive and not negative:
            raise ValueError("most_similar needs at least one positive or negative word.")
        self._require(positive + negative, "most_similar")
        query = np.zeros(self.vector_size, np.float64)
        for word in positive:
            query += self.get_vector(word, norm=True)
        for word in negative:
            query -= self.get_vector(word, norm=True)
        query /= len(positive) + len(negative)
        query /= max(np.linalg.norm(query), 1e-12)
        end = len(self) if restrict_vocab is None else min(restrict_vocab, len(self))
        self.fill_norms()
        cosines = (self.vectors[:end] @ query) / np.maximum(self.norms[:end], 1e-12)
        exclude = {self.key_to_index[w] for w in positive + negative}
        order = np.argsort(-cosines, kind="stable")[: topn + len(exclude)]
        return [(self.index_to_key[i], float(cosines[i])) for i in order if i not in exclude][:topn]

    def similarity(self, w1: str, w2: str) -> float:
        """Cosine similarity of two words."""
        self._require([w1, w2], "similarity")
        return float(np.dot(self.get_vector(w1, norm=True), self.get_vector(w2, norm=True)))

    def doesnt_match(self, words: Sequence[str]) -> str:
        """The word farthest from the mean of the others' unit vectors (unknown words ignored)."""
        used = [w for w in words if w in self.key_to_index]
        if not used:
            raise ValueError(f"doesnt_match: none of {list(words)!r} is in the vocabulary.")
        unit = np.stack([self.get_vector(w, norm=True) for w in used])
        mean = unit.mean(axis=0)
        mean /= max(np.linalg.norm(mean), 1e-12)
        return used[int(np.argmin(unit @ mean))]

    # ------------------------------------------------------------------ evaluations

    def _ok_vocab(self, restrict_vocab: int, case_insensitive: bool) -> dict[str, int]:
        keys = self.index_to_key[:restrict_vocab]
        if case_insensitive:
            # Reversed, so the most frequent of several case variants wins.
            return {k.upper(): self.key_to_index[k] for k in reversed(keys)}
        return {k: self.key_to_index[k] for k in reversed(keys)}

    def evaluate_word_analogies(
        self,
        analogies: str | os.PathLike,
        restrict_vocab: int = 300000,
        case_insensitive: bool = True,
    ) -> tuple[float, list[dict]]:
        """Analogy accuracy on a questions-words file (word2vec.c's compute-accuracy).

        The file has `: section` lines and lines `a b c expected`; an answer
        is right when the nearest word to `b - a + c` among the first
        `restrict_vocab` words, other than a, b and c, is `expected`.
        Questions with a word outside those are skipped, as in gensim.

        Returns:
            `(accuracy, sections)`: accuracy over every question answered,
            and per section a dict with `section`, `correct`, `incorrect`
            (lists of 4-tuples); the last is `"Total accuracy"`.
        """
        ok_vocab = self._ok_vocab(restrict_vocab, case_insensitive)
        unit = self.get_normed_vectors()
        sections, section = [], None
        with open(analogies, encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                if line.startswith(": "):
                    if section:
                        sections.append(section)
                    section = {"section": line.lstrip(": ").strip(), "correct": [], "incorrect": []}
                    continue
                if section is None:
                    raise ValueError(
                        f"{analogies}, line {number}: a question before any ': section' line."
                    )
                words = line.split()
                if len(words) != 4:
                    continue
                if case_insensitive:
                    words = [w.upper() for w in words]
                a, b, c, expected = words
                if not all(w in ok_vocab for w in words):
                    continue
                query_rows = [ok_vocab[a], ok_vocab[b], ok_vocab[c]]
                query = unit[query_rows[1]] - unit[query_rows[0]] + unit[query_rows[2]]
                cosines = unit[:restrict_vocab] @ query
                # As gensim: the 5 best rows other than the query rows, then the
                # first whose word (any case variant) is none of a, b, c.
                best = [i for i in np.argsort(-cosines, kind="stable")[:8] if i not in query_rows]
                ignore = {a, b, c}
                predicted = None
                for i in best[:5]:
                    predicted = self.index_to_key[i]
                    predicted = predicted.upper() if case_insensitive else predicted
                    if predicted in ok_vocab and predicted not in ignore:
                        break
                key = "correct" if predicted == expected else "incorrect"
                section[key].append((a, b, c, expected))
        if section:
            sections.append(section)
        total = {
            "section": "Total accuracy",
            "correct": [q for s in sections for q in s["correct"]],
            "incorrect": [q for s in sections for q in s["incorrect"]],
        }
        answered = len(total["correct"]) + len(total["incorrect"])
        sections.append(total)
        return (len(total["correct"]) / answered if answered else 0.0), sections

    def evaluate_word_pairs(
        self,
        pairs: str | os.PathLike,
        delimiter: str = "\t",
        restrict_vocab: int = 300000,
        case_insensitive: bool = True,
    ) -> tuple[float, float, float]:
        """Correlation of cosine similarity with human scores (e.g. WordSim-353).

        Lines are `word1<delimiter>word2<delimiter>score`; `#` lines are
        comments. Pairs with a word outside the first `restrict_vocab` are
        left out and counted in the OOV ratio, as in gensim.

        Returns:
            `(pearson, spearman, oov_ratio_percent)`. (gensim returns the
            correlations with their p-values; these are the statistics.)
        """
        ok_vocab = self._ok_vocab(restrict_vocab, case_insensitive)
        unit = self.get_normed_vectors()
        gold, model, oov = [], [], 0
        with open(pairs, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if not line.strip() or line.startswith("#"):
                    continue
                fields = line.rstrip("\n").split(delimiter)
                if len(fields) != 3:
                    continue
                a, b, score = fields
                try:
                    score = float(score)
                except ValueError:
                    continue
                if case_insensitive:
                    a, b = a.upper(), b.upper()
                if a not in ok_vocab or b not in ok_vocab:
                    oov += 1
                    continue
                gold.append(score)
                model.append(float(unit[ok_vocab[a]] @ unit[ok_vocab[b]]))
        if len(gold) < 2:
            raise ValueError(
                f"{pairs}: fewer than two word pairs are in the vocabulary ({oov} are not); "
                "no correlation can be computed."
            )
        gold, model = np.array(gold), np.array(model)
        spearman = _pearson(_ranks(gold), _ranks(model))
        return _pearson(gold, model), spearman, 100.0 * oov / (len(gold) + oov)

    # ------------------------------------------------------------------ Keras

    def embedding_matrix(self, vocabulary, oov: str = "zeros", seed: int = 0) -> np.ndarray:
        """Weights of an `Embedding` layer for `vocabulary` (a `Vocabulary` or a token list).

        Row i holds the vector of the vocabulary's i-th token. Tokens without
        a vector (padding, `[UNK]`, words these vectors lack) get the subword
        vector if `build_subwords` ran and one exists, else zeros
        (`oov="zeros"`) or small normal noise (`oov="random"`, std 0.01).
        A `Vocabulary`'s padding row is always zero.
        """
        if oov not in ("zeros", "random"):
            raise ValueError(f"oov must be 'zeros' or 'random', got {oov!r}.")
        tokens = getattr(vocabulary, "index_to_token", vocabulary)
        pad = getattr(vocabulary, "pad_token", None)
        rng = np.random.default_rng(seed)
        matrix = np.zeros((len(tokens), self.vector_size), np.float32)
        self.missing_tokens = []
        for row, token in enumerate(tokens):
            if token == pad:
                continue
            if token in self.key_to_index:
                matrix[row] = self.vectors[self.key_to_index[token]]
                continue
            vector = self._subword_vector(token, strict=False) if self._subwords else None
            if vector is not None:
                matrix[row] = vector
            else:
                self.missing_tokens.append(token)
                if oov == "random":
                    matrix[row] = rng.normal(0.0, 0.01, self.vector_size)
        return matrix

    def embedding_layer(self, vocabulary, trainable: bool = False, **kwargs):
        """A `keras.layers.Embedding` initialized with `embedding_matrix(vocabulary)`.

        Args:
            vocabulary: a `Vocabulary` or a token list.
            trainable: bool. False freezes the pretrained vectors.
            **kwargs: passed to `embedding_matrix` (`oov`, `seed`).
        """
        import keras

        matrix = self.embedding_matrix(vocabulary, **kwargs)
        layer = keras.layers.Embedding(
            matrix.shape[0],
            matrix.shape[1],
            embeddings_initializer=keras.initializers.Constant(matrix),
            trainable=trainable,
        )
        layer.build((None,))
        return layer

    # ------------------------------------------------------------------ subwords

    def build_subwords(self, min_n: int = 3, max_n: int = 6, bucket: int = 2_000_000) -> None:
        """Builds hashed character n-gram vectors from the word vectors (module docstring)."""
        if not 1 <= min_n <= max_n:
            raise ValueError(f"Need 1 <= min_n <= max_n, got min_n={min_n}, max_n={max_n}.")
        sums: dict[int, np.ndarray] = {}
        counts: dict[int, int] = {}
        for key, vector in zip(self.index_to_key, self.vectors, strict=True):
            for gram in set(char_ngrams(key, min_n, max_n)):
                h = fnv1a_32(gram.encode("utf-8")) % bucket
                if h in sums:
                    sums[h] += vector
                    counts[h] += 1
                else:
                    sums[h] = vector.astype(np.float64)
                    counts[h] = 1
        self._subwords = {
            "min_n": min_n,
            "max_n": max_n,
            "bucket": bucket,
            "vectors": {h: (s / counts[h]).astype(np.float32) for h, s in sums.items()},
        }

    def _subword_vector(self, word: str, strict: bool = True) -> np.ndarray | None:
        table = self._subwords
        grams = char_ngrams(word, table["min_n"], table["max_n"])
        found = [
            table["vectors"][h]
            for h in (fnv1a_32(g.encode("utf-8")) % table["bucket"] for g in grams)
            if h in table["vectors"]
        ]
        if found:
            return np.mean(found, axis=0)
        if strict:
            raise KeyError(
                f"Word {word!r} is not in the vocabulary and none of its character "
                f"{table['min_n']}-{table['max_n']}-grams was seen in a known word."
            )
        return None

    # ------------------------------------------------------------------ files

    def save_word2vec_format(self, path: str | os.PathLike, binary: bool = False) -> None:
        """Writes word2vec.c's format: a `count dim` header, then one word per line.

        Text: `word v1 v2 ...`. Binary: `word ` then `dim` little-endian
        float32 values, then a newline (what word2vec.c and gensim write).

        The file is written atomically (`keras_recipes._io.atomic_write`): a
        temporary file beside `path`, synced, then renamed onto it, so an
        existing file survives a failed or killed write whole.
        """
        for key in self.index_to_key:
            if not key or any(c.isspace() for c in key):
                raise ValueError(
                    f"Word {key!r} is empty or contains whitespace; the word2vec format "
                    "cannot store it."
                )
        with atomic_write(path) as out:
            out.write(f"{len(self)} {self.vector_size}\n".encode())
            for key, vector in zip(self.index_to_key, self.vectors, strict=True):
                if binary:
                    out.write(key.encode("utf-8") + b" " + vector.astype("<f4").tobytes() + b"\n")
                else:
                    values = " ".join(repr(float(v)) for v in vector)
                    out.write(f"{key} {values}\n".encode())

    @classmethod
    def load_word2vec_format(
        cls,
        path: str | os.PathLike,
        binary: bool = False,
        limit: int | None = None,
        encoding: str = "utf-8",
    ) -> KeyedVectors:
        """Reads a word2vec.c text or binary file (with its `count dim` header)."""
        if not binary:
            return load_vectors(path, limit=limit, encoding=encoding, header=True)
        with open(path, "rb") as f:
            header = f.readline().split()
            if len(header) != 2 or not all(h.isdigit() for h in header):
                raise ValueError(
                    f"{path}: the first line should be '<count> <dim>' in the binary "
                    f"word2vec format, got {b' '.join(header)[:60]!r}."
                )
            count, dim = int(header[0]), int(header[1])
            if limit is not None:
                count = min(count, limit)
            keys, vectors = [], np.empty((count, dim), np.float32)
            for row in range(count):
                word = bytearray()
                while True:
                    ch = f.read(1)
                    if ch == b"":
                        raise ValueError(
                            f"{path}: the file ends inside entry {row + 1} of {count}; it is "
                            "truncated or not in the binary word2vec format."
                        )
                    if ch == b" ":
                        break
                    if ch != b"\n":  # the newline that ends the previous vector
                        word += ch
                data = f.read(4 * dim)
                if len(data) != 4 * dim:
                    raise ValueError(
                        f"{path}: entry {row + 1} ({word.decode(encoding, 'replace')!r}) has "
                        f"{len(data) // 4} of its {dim} values; the file is truncated."
                    )
                keys.append(word.decode(encoding, errors="replace"))
                vectors[row] = np.frombuffer(data, "<f4")
        return cls(keys, vectors)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_vectors(
    path: str | os.PathLike,
    limit: int | None = None,
    encoding: str = "utf-8",
    header: bool | None = None,
) -> KeyedVectors:
    """Reads a text vector file: GloVe (no header) or word2vec / fastText `.vec`.

    A first line of exactly two integers (`count dim`) is a header (the
    word2vec and fastText `.vec` layout); otherwise every line is
    `word v1 ... vd` (GloVe). Words may contain spaces (some GloVe files
    have them): the last `d` fields are the values.

    Args:
        path: the file.
        limit: int or None. Read at most this many words.
        encoding: str. Text encoding, "utf-8" by default.
        header: bool or None. None detects the header; True/False forces it.

    Returns:
        A `KeyedVectors`. Rows keep the file's order.

    Raises:
        ValueError: naming the file and line, for a line whose number of
            values differs from the others', values that are not numbers,
            or a word count that disagrees with the header: a file with a
            header that ends before `count` words (or before `limit` words,
            when `limit` is smaller) is truncated, and refused rather than
            read in part.

    Examples:

    ```python
    kv = load_vectors("glove.6B.100d.txt")
    layer = kv.embedding_layer(vocabulary, trainable=False)
    ```
    """
    keys, rows = [], []
    declared = dim = None
    with open(path, encoding=encoding, errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            fields = line.rstrip("\n").rstrip(" ").split(" ")
            if number == 1 and header is not False:
                is_header = len(fields) == 2 and all(f.isdigit() for f in fields)
                if header and not is_header:
                    raise ValueError(
                        f"{path}, line 1: expected a '<count> <dim>' header, got {line[:60]!r}."
                    )
                if is_header:
                    declared, dim = int(fields[0]), int(fields[1])
                    continue
            if not line.strip():
                continue
            if limit is not None and len(keys) >= limit:
                break
            if dim is None:
                dim = len(fields) - 1
                if dim < 1:
                    raise ValueError(f"{path}, line {number}: no vector values after {line!r}.")
            if len(fields) < dim + 1:
                ends = (
                    ""
                    if line.endswith("\n")
                    else "; the file ends inside this line: it is truncated"
                )
                raise ValueError(
                    f"{path}, line {number}: word {fields[0]!r} has {len(fields) - 1} values "
                    f"but the file's vectors have {dim} (inconsistent dimensions{ends})."
                )
            if len(fields) > dim + 1 and _is_number(fields[1]):
                raise ValueError(
                    f"{path}, line {number}: word {fields[0]!r} has {len(fields) - 1} values "
                    f"but the file's vectors have {dim} (inconsistent dimensions)."
                )
            word = " ".join(fields[: len(fields) - dim])
            try:
                vector = np.array(fields[len(fields) - dim :], np.float32)
            except ValueError:
                raise ValueError(
                    f"{path}, line {number}: word {word!r} has {len(fields) - 1} fields, not "
                    f"{dim} numbers (inconsistent dimensions or a non-numeric value)."
                ) from None
            keys.append(word)
            rows.append(vector)
    if declared is not None:
        wanted = declared if limit is None else min(limit, declared)
        if len(keys) < wanted:
            raise ValueError(
                f"{path}: the header promises {declared} words but the file ends after "
                f"{len(keys)}; it is truncated (an interrupted download or write). "
                "Re-create or re-download it."
            )
        if limit is None and len(keys) > declared:
            raise ValueError(
                f"{path}: the header promises {declared} words but the file holds {len(keys)}."
            )
    if not keys:
        raise ValueError(f"{path}: no word vectors found.")
    return KeyedVectors(keys, np.stack(rows))
