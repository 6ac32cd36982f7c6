"""Word vectors: `KeyedVectors`, gensim 4's API on numpy, plus Keras layers and subwords.

`KeyedVectors` is a drop-in for `gensim.models.KeyedVectors` (gensim 4.4):
the same methods, signatures, argument forms and return types, and the
same results on the same vectors, so code written for gensim runs with only
its import switched. Checked method by method against gensim itself in
`tests/test_embeddings_keyedvectors.py`.

- lookups: `kv[key]` / `kv[[keys]]`, `get_vector(key, norm=)`, `get_index`,
  `key in kv`, `has_index_for`, `len(kv)`, `index_to_key`, `key_to_index`,
  `vectors`, `get_vecattr` / `set_vecattr` (e.g. `"count"`);
- queries: `most_similar` (positive/negative as a key, a list of keys,
  vectors, `(key, weight)` pairs or a mix; `topn=None` gives the whole
  similarity array; `clip_start` / `clip_end` / `restrict_vocab`),
  `most_similar_cosmul`, `similar_by_word` / `similar_by_key` /
  `similar_by_vector`, `similarity`, `n_similarity`, `distance`,
  `distances`, `cosine_similarities`, `closer_than`, `rank`,
  `relative_cosine_similarity`, `rank_by_centrality`, `doesnt_match`,
  `most_similar_to_given`, `get_mean_vector`;
- evaluations: `evaluate_word_analogies` (word2vec.c's compute-accuracy)
  and `evaluate_word_pairs` (Pearson and Spearman from `scipy.stats`, as
  gensim returns them: `(statistic, pvalue)` results, and the OOV ratio);
- editing: `add_vector`, `add_vectors`, `kv[key] = vector`,
  `vectors_for_all`, `fill_norms`, `get_normed_vectors`,
  `unit_normalize_all`, `sort_by_descending_frequency`,
  `intersect_word2vec_format`;
- files: `save_word2vec_format` / `load_word2vec_format` (word2vec.c text
  and binary, with `limit`, `no_header`, `fvocab`, `unicode_errors`,
  `datatype`, `write_header`, `prefix`, `append`, `sort_attr`), and
  `save` / `load`, which write one `.npz` file read back with
  `allow_pickle=False` (gensim pickles). A gensim pickle is refused by
  default, naming the way out; `load(path, allow_pickle=True)` reads
  gensim's own saved KeyedVectors through a restricted unpickler
  (`gensim_files.py`).

Differences from gensim, on purpose: `most_similar(indexer=...)` (Annoy,
NMSLIB) raises `NotImplementedError` (the search is exact);
`most_similar_cosmul` honours `restrict_vocab` (gensim 4.4 accepts and
ignores it) and `evaluate_word_analogies` honours
`similarity_function="most_similar_cosmul"` (gensim ignores that too);
`add_vectors` resets the cached norms (gensim keeps stale ones);
`wmdistance` is not provided (it needs the POT library). Errors for an
unknown key name it and the vocabulary size.

Beyond gensim: `embedding_matrix` / `embedding_layer` build a Keras
`Embedding` for a `Vocabulary`, and `build_subwords` gives unknown words
fastText-style vectors from the word vectors alone: a word is cut into
character n-grams of `min_n..max_n` characters of `"<" + word + ">"`, each
n-gram hashed with 32-bit FNV-1a over its UTF-8 bytes (bytes sign-extended
as fastText does) into `bucket` buckets; each bucket gets the mean of the
vectors of the known words that contain one of its n-grams, and an unknown
word's vector is the mean of its n-grams' bucket vectors (an error if none
of them was seen). fastText trains its n-gram vectors jointly with the
words; a `.vec` file does not hold them, so this builds them from the words.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Iterable, Sequence
from numbers import Integral

import numpy as np

from keras_recipes._io import atomic_write
from keras_recipes.embeddings import gensim_files, vector_files

logger = logging.getLogger(__name__)

# What gensim accepts as one key (ints are row numbers when not keys themselves).
_KEY_TYPES = (str, int, np.integer)


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


def _ensure_list(value) -> list:
    """A key, a 1-D vector or a 2-D array of vectors becomes a list; lists pass through."""
    if value is None:
        return []
    if isinstance(value, _KEY_TYPES) or (isinstance(value, np.ndarray) and value.ndim == 1):
        return [value]
    if isinstance(value, np.ndarray) and value.ndim == 2:
        return list(value)
    return list(value)


def _top(values: np.ndarray, topn: int) -> np.ndarray:
    """Indices of the `topn` largest values, largest first (gensim's `matutils.argsort`)."""
    negated = -np.asarray(values)
    if topn >= negated.size:
        return np.argsort(negated)[:topn]
    best = np.argpartition(negated, topn)[:topn]
    return best.take(np.argsort(negated.take(best)))


def _unitvec(vector: np.ndarray) -> np.ndarray:
    """`vector` scaled to unit length in its own float type; a zero vector stays zero."""
    length = np.linalg.norm(vector)
    if length > 0:
        return (vector * (1.0 / length)).astype(vector.dtype)
    return vector


class KeyedVectors:
    """Key -> vector lookups and the queries people ask of word vectors, as gensim has them.

    Two ways to build one: ours, from keys and their vectors; or gensim's,
    empty with a vector size (then `add_vector` / `add_vectors`). Row order
    is meaningful: `restrict_vocab` arguments keep the first rows, so the
    most frequent keys come first by convention (`Word2Vec` does so).

    Args:
        keys_or_vector_size: a list of keys (str, or int for document tags),
            one per row of `vectors`; or an int, the vector size of an
            empty `KeyedVectors` (gensim's `KeyedVectors(vector_size)`).
        vectors: float array `(len(keys), vector_size)` when keys are
            given. (With a vector size, an int here is gensim's `count`.)
        counts: optional int array, the corpus count of each key (the
            `"count"` attribute of `get_vecattr`).
        count: int. With a vector size: rows to preallocate for
            `add_vector` to fill. Defaults to 0.
        dtype: the float type of `vectors`. Defaults to float32.
        vector_size: int, keyword only. gensim's spelling of the first
            argument: `KeyedVectors(vector_size=100)`.

    Examples:

    >>> kv = KeyedVectors(["king", "queen", "apple"], np.eye(3)[[0, 0, 1]] + [0, 0.1, 0])
    >>> kv.most_similar("king", topn=1)[0][0]
    'queen'
    >>> empty = KeyedVectors(3)           # gensim's way
    >>> empty.add_vectors(["a", "b"], np.eye(3)[:2])
    >>> empty["b"].tolist()
    [0.0, 1.0, 0.0]
    """

    def __init__(
        self,
        keys_or_vector_size: Sequence | int | None = None,
        vectors: np.ndarray | int | None = None,
        counts: Sequence[int] | np.ndarray | None = None,
        count: int = 0,
        dtype=np.float32,
        mapfile_path: str | None = None,
        *,
        vector_size: int | None = None,
    ):
        if vector_size is not None:  # gensim's keyword: KeyedVectors(vector_size=100)
            if keys_or_vector_size is not None:
                raise TypeError("Pass keys (with vectors) or vector_size, not both.")
            keys_or_vector_size = vector_size
        if keys_or_vector_size is None:
            raise TypeError("KeyedVectors needs keys and vectors, or a vector_size.")
        self.expandos: dict[str, np.ndarray] = {}
        self.norms = None
        self._subwords = None
        self.mapfile_path = mapfile_path
        if isinstance(keys_or_vector_size, Integral):
            if isinstance(vectors, Integral):
                count, vectors = int(vectors), None
            if vectors is not None:
                raise ValueError(
                    "KeyedVectors(vector_size, ...) builds an empty set to fill with "
                    "add_vectors(keys, vectors); to give vectors at once, pass the keys first: "
                    "KeyedVectors(keys, vectors)."
                )
            self.index_to_key = [None] * int(count)
            self.key_to_index = {}
            self.vectors = np.zeros((int(count), int(keys_or_vector_size)), dtype=dtype)
            self.next_index = 0
            return
        keys = list(keys_or_vector_size)
        vectors = np.asarray(vectors, dtype)
        if vectors.ndim != 2 or vectors.shape[0] != len(keys):
            raise ValueError(
                f"vectors must be (len(keys), vector_size) = ({len(keys)}, d); got shape "
                f"{vectors.shape}."
            )
        self.index_to_key = keys
        self.key_to_index = {}
        for index, key in enumerate(keys):
            if key in self.key_to_index:
                raise ValueError(
                    f"Key {key!r} appears twice (rows {self.key_to_index[key]}, {index})."
                )
            self.key_to_index[key] = index
        self.vectors = vectors
        self.next_index = len(keys)
        if counts is not None:
            self.expandos["count"] = np.asarray(counts, np.int64)

    # ------------------------------------------------------------------ lookups

    @property
    def vector_size(self) -> int:
        return self.vectors.shape[1]

    @property
    def counts(self) -> np.ndarray | None:
        """The `"count"` attribute of every row (None if the vectors came without counts)."""
        return self.expandos.get("count")

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, key) -> bool:
        return self.has_index_for(key)

    def has_index_for(self, key) -> bool:
        """Whether `key` has a row of its own (subword vectors do not count)."""
        return self.get_index(key, -1) >= 0

    def __str__(self) -> str:
        return f"{type(self).__name__}<vector_size={self.vector_size}, {len(self)} keys>"

    def __repr__(self) -> str:
        return f"KeyedVectors({len(self)} keys, vector_size={self.vector_size})"

    def get_index(self, key, default: int | None = None) -> int:
        """The row of `key`; an int that is not a key is taken as a row number.

        Args:
            key: a key, or an int row number.
            default: returned for an unknown key instead of raising.

        Raises:
            KeyError: `key` is unknown and no `default` is given.
        """
        index = self.key_to_index.get(key, -1)
        if index >= 0:
            return index
        if isinstance(key, Integral) and 0 <= key < len(self.index_to_key):
            return int(key)
        if default is not None:
            return default
        raise KeyError(f"Key {key!r} is not in the vocabulary ({len(self)} keys).")

    def get_vector(self, key, norm: bool = False) -> np.ndarray:
        """The vector of `key` (read-only), unit length if `norm`.

        An unknown word gets its subword vector if `build_subwords` ran.
        """
        index = self.get_index(key, -1)
        if index >= 0:
            if norm:
                self.fill_norms()
                vector = self.vectors[index] / self.norms[index]
            else:
                vector = self.vectors[index]
        elif self._subwords is not None and isinstance(key, str):
            vector = self._subword_vector(key)
            if norm:
                vector = vector / np.linalg.norm(vector)
        else:
            hint = " Call build_subwords() to get vectors for unknown words." if isinstance(key, str) else ""  # fmt: skip
            raise KeyError(f"Key {key!r} is not in the vocabulary ({len(self)} keys).{hint}")
        vector.setflags(write=False)  # a write would make the cached norms wrong
        return vector

    def word_vec(self, *args, **kwargs) -> np.ndarray:
        """Deprecated in gensim 4: use `get_vector`."""
        warnings.warn("Use get_vector instead of word_vec.", DeprecationWarning, stacklevel=2)
        return self.get_vector(*args, **kwargs)

    def __getitem__(self, key_or_keys) -> np.ndarray:
        """One key's vector (1-D), or the vectors of a list of keys (2-D)."""
        if isinstance(key_or_keys, _KEY_TYPES):
            return self.get_vector(key_or_keys)
        return np.vstack([self.get_vector(key) for key in key_or_keys])

    def allocate_vecattrs(self, attrs=None, types=None) -> None:
        """Makes sure the per-key attribute arrays exist and have one entry per key."""
        if attrs is None:
            attrs = list(self.expandos)
            types = [self.expandos[a].dtype for a in attrs]
        size = len(self.index_to_key)
        for attr, kind in zip(attrs, types, strict=True):
            kind = np.int64 if kind is int else kind
            if kind is str:
                raise ValueError(
                    f"Attribute {attr!r}: string attributes would need pickle to be saved; "
                    "store numbers."
                )
            if attr not in self.expandos:
                self.expandos[attr] = np.zeros(size, dtype=kind)
                continue
            old = self.expandos[attr]
            if len(old) != size:
                grown = np.zeros(size, dtype=old.dtype)
                grown[: min(len(old), size)] = old[:size]
                self.expandos[attr] = grown

    def set_vecattr(self, key, attr: str, val) -> None:
        """Sets attribute `attr` (e.g. `"count"`) of `key`."""
        kind = type(val)
        kind = np.int64 if isinstance(val, Integral) else kind
        kind = np.float64 if isinstance(val, float) else kind
        self.allocate_vecattrs([attr], [kind])
        self.expandos[attr][self.get_index(key)] = val

    def get_vecattr(self, key, attr: str):
        """Attribute `attr` (e.g. `"count"`) of `key`."""
        if attr not in self.expandos:
            raise KeyError(f"No attribute {attr!r}; these vectors have {sorted(self.expandos)}.")
        return self.expandos[attr][self.get_index(key)]

    # ------------------------------------------------------------------ editing

    def add_vector(self, key, vector: np.ndarray) -> int:
        """Adds one key, into a preallocated row if one is free; returns its row."""
        target = self.next_index
        if target >= len(self) or self.index_to_key[target] is not None:
            target = len(self)
            self.add_vectors([key], [vector])
            self.allocate_vecattrs()
        else:
            self.index_to_key[target] = key
            self.key_to_index[key] = target
            self.vectors[target] = vector
            self.norms = None
        self.next_index = target + 1
        return target

    def add_vectors(self, keys, weights, extras: dict | None = None, replace: bool = False) -> None:
        """Appends keys and their vectors; a key already present keeps its vector unless `replace`.

        Args:
            keys: a key or a list of keys.
            weights: a vector, a list of vectors or a 2-D array.
            extras: optional dict `attribute -> array` with one value per key.
            replace: bool. Whether vectors of keys already present are replaced.
        """
        if isinstance(keys, _KEY_TYPES):
            keys, weights = [keys], np.asarray(weights).reshape(1, -1)
        weights = np.asarray(weights)
        if weights.ndim != 2 or len(weights) != len(keys) or weights.shape[1] != self.vector_size:
            raise ValueError(
                f"add_vectors needs one vector of size {self.vector_size} per key: "
                f"{len(keys)} keys, weights of shape {weights.shape}."
            )
        extras = extras or {}
        self.allocate_vecattrs(list(extras), [np.asarray(v).dtype for v in extras.values()])
        known = np.array([key in self.key_to_index for key in keys], bool)
        fresh = [i for i in np.flatnonzero(~known) if keys[i] not in self.key_to_index]
        for i in fresh:
            self.key_to_index[keys[i]] = len(self.index_to_key)
            self.index_to_key.append(keys[i])
        self.vectors = np.vstack((self.vectors, weights[fresh].astype(self.vectors.dtype)))
        self.allocate_vecattrs()
        for attr, values in extras.items():
            self.expandos[attr][len(self) - len(fresh) :] = np.asarray(values)[fresh]
        if replace and known.any():
            rows = [self.key_to_index[keys[i]] for i in np.flatnonzero(known)]
            self.vectors[rows] = weights[known]
            for attr, values in extras.items():
                self.expandos[attr][rows] = np.asarray(values)[known]
        self.norms = None

    def __setitem__(self, keys, weights) -> None:
        """`kv[key] = vector` (or lists of both): adds, or replaces an existing vector."""
        if not isinstance(keys, list):
            keys, weights = [keys], np.asarray(weights).reshape(1, -1)
        self.add_vectors(keys, weights, replace=True)

    def fill_norms(self, force: bool = False) -> None:
        """Computes the length of every vector (cached until the vectors change)."""
        if self.norms is None or force:
            self.norms = np.linalg.norm(self.vectors, axis=1)

    def get_normed_vectors(self) -> np.ndarray:
        """All vectors scaled to unit length, `(len(self), vector_size)`."""
        self.fill_norms()
        return self.vectors / self.norms[..., np.newaxis]

    def unit_normalize_all(self) -> None:
        """Scales every vector to unit length in place (training cannot go on after this)."""
        self.fill_norms()
        self.vectors /= self.norms[..., np.newaxis]
        self.norms = np.ones((len(self.vectors),))

    def init_sims(self, replace: bool = False) -> None:
        """Deprecated in gensim 4: `fill_norms()`, and `unit_normalize_all()` if `replace`."""
        self.fill_norms()
        if replace:
            self.unit_normalize_all()

    def sort_by_descending_frequency(self) -> None:
        """Reorders the rows by descending `"count"` (ties: later rows first, as gensim)."""
        if not len(self):
            return
        if "count" not in self.expandos:
            raise ValueError(
                "sort_by_descending_frequency needs counts: build with counts=..., or set them "
                "with set_vecattr(key, 'count', n)."
            )
        counts = np.asarray(self.expandos["count"], np.int64)
        order = np.lexsort((-np.arange(len(counts)), -counts))
        self.index_to_key = [self.index_to_key[i] for i in order]
        self.allocate_vecattrs()
        for attr in self.expandos:
            self.expandos[attr] = self.expandos[attr][order]
        if len(self.vectors):
            self.vectors = self.vectors[order]
        if getattr(self, "vectors_lockf", None) is not None:
            self.vectors_lockf = self.vectors_lockf[order]
        self.key_to_index = {key: i for i, key in enumerate(self.index_to_key)}
        self.norms = None

    def vectors_for_all(
        self, keys: Iterable, allow_inference: bool = True, copy_vecattrs: bool = False
    ) -> KeyedVectors:
        """A new `KeyedVectors` with the vectors of `keys` that exist (deduplicated, in order).

        Args:
            keys: iterable of keys.
            allow_inference: bool. Also give unknown words their subword
                vector, if `build_subwords` ran and one exists.
            copy_vecattrs: bool. Copy the per-key attributes (e.g. counts).
        """
        vocab, seen = [], set()
        for key in keys:
            if key in seen:
                continue
            seen.add(key)
            if self.has_index_for(key):
                vocab.append(key)
            elif allow_inference and self._subwords is not None and isinstance(key, str):
                if self._subword_vector(key, strict=False) is not None:
                    vocab.append(key)
        vectors = np.stack([self[k] for k in vocab]) if vocab else np.zeros((0, self.vector_size))
        # gensim gives the new vectors made-up counts, in descending order.
        kv = KeyedVectors(
            vocab, vectors.astype(self.vectors.dtype), counts=np.arange(len(vocab), 0, -1)
        )
        if copy_vecattrs:
            for attr, values in self.expandos.items():
                rows = [i for i, k in enumerate(vocab) if self.has_index_for(k)]
                kv.allocate_vecattrs([attr], [values.dtype])
                kv.expandos[attr][rows] = values[[self.get_index(vocab[i]) for i in rows]]
        return kv

    # ------------------------------------------------------------------ queries

    def get_mean_vector(
        self,
        keys,
        weights=None,
        pre_normalize: bool = True,
        post_normalize: bool = False,
        ignore_missing: bool = True,
    ) -> np.ndarray:
        """The weighted mean of the vectors of `keys` (keys, row numbers or vectors).

        Args:
            keys: list of keys, ints (rows) or 1-D vectors (used as given).
            weights: optional list or array, one weight per key (default 1).
                The sum is divided by the sum of the absolute weights.
            pre_normalize: bool. Use the keys' unit vectors. Defaults to True.
            post_normalize: bool. Scale the mean to unit length.
            ignore_missing: bool. Skip unknown keys; False raises `KeyError`.

        Returns:
            A 1-D vector of `vector_size` values.
        """
        if len(keys) == 0:
            raise ValueError("cannot compute mean with no input")
        if weights is None:
            weights = np.ones(len(keys), dtype=self.vectors.dtype)
        weights = np.asarray(weights, dtype=self.vectors.dtype)
        if len(keys) != weights.shape[0]:
            raise ValueError("keys and weights array must have same number of elements")
        mean = np.zeros(self.vector_size, self.vectors.dtype)
        total = 0.0
        for weight, key in zip(weights, keys, strict=True):
            if isinstance(key, np.ndarray):
                mean += weight * key
            elif self.has_index_for(key) or (self._subwords is not None and isinstance(key, str)):
                mean += weight * self.get_vector(key, norm=pre_normalize)
            elif not ignore_missing:
                raise KeyError(f"Key {key!r} is not in the vocabulary ({len(self)} keys).")
            else:
                continue
            total += abs(weight)
        if total > 0:
            mean = mean / total
        if post_normalize:
            mean = _unitvec(mean).astype(np.float32)
        return mean

    def most_similar(
        self,
        positive=None,
        negative=None,
        topn: int | None = 10,
        clip_start: int = 0,
        clip_end: int | None = None,
        restrict_vocab: int | None = None,
        indexer=None,
    ) -> list[tuple[str, float]] | np.ndarray:
        """The `topn` keys closest (cosine) to the weighted mean of positive minus negative.

        As gensim: each positive key's unit vector is weighted +1, each
        negative one -1 (or the weight of a `(key, weight)` pair), vectors
        are used as given, the mean is normalized, and the query keys
        themselves are left out of the answer. `king - man + woman` is
        `most_similar(positive=["king", "woman"], negative=["man"])`.

        Args:
            positive: a key, a vector, or a list of keys, vectors and
                `(key_or_vector, weight)` pairs that pull towards the answer.
            negative: the same, pushing away from it.
            topn: int or None. How many `(key, cosine)` pairs to return;
                None returns the cosine of every row searched, as an array.
            clip_start: int. First row searched.
            clip_end: int or None. Row after the last one searched.
            restrict_vocab: int or None. Search only the first rows
                (overrides `clip_start` / `clip_end`).
            indexer: not supported (an approximate index, in gensim); the
                search is exact.

        Returns:
            list of `(key, cosine)`, most similar first; or, with
            `topn=None`, a 1-D array of cosines for rows
            `clip_start..clip_end`.

        Examples:

        >>> kv = KeyedVectors(["paris", "france", "rome", "italy"],
        ...                   np.array([[1, 0, 1], [1, 0, 0], [0, 1, 1], [0, 1, 0]], "float32"))
        >>> [key for key, _ in kv.most_similar(positive=["paris", "italy"],
        ...                                    negative=["france"], topn=3)]
        ['rome']
        >>> kv.most_similar(kv["paris"] - kv["france"] + kv["italy"], topn=1)  # vectors too
        [('rome', 1.0)]
        >>> [round(float(c), 3) for c in kv.most_similar("paris", topn=None)]  # one a row
        [1.0, 0.707, 0.5, 0.0]
        """
        if indexer is not None:
            raise NotImplementedError(
                "most_similar(indexer=...): approximate nearest-neighbour indexers (Annoy, "
                "NMSLIB) are not supported here; leave indexer=None for the exact search."
            )
        return self._most_similar(
            positive, negative, topn, clip_start, clip_end, restrict_vocab, self.get_index
        )

    def _most_similar(
        self, positive, negative, topn, clip_start, clip_end, restrict_vocab, index_of
    ):
        if isinstance(topn, Integral) and topn < 1:
            return []
        positive, negative = _ensure_list(positive), _ensure_list(negative)
        self.fill_norms()
        clip_end = clip_end or len(self.vectors)
        if restrict_vocab:
            clip_start, clip_end = 0, restrict_vocab
        items = positive + negative
        weight = np.concatenate((np.ones(len(positive)), -np.ones(len(negative))))
        rows, query = [], []
        for i, item in enumerate(items):
            if isinstance(item, tuple):  # (key or vector, weight)
                item, weight[i] = item
            if isinstance(item, np.ndarray):
                query.append(item)
                continue
            if not isinstance(item, _KEY_TYPES):
                raise TypeError(
                    f"most_similar: {item!r} is neither a key, a vector nor a (key, weight) pair."
                )
            try:
                row = index_of(item)
            except KeyError:
                if self._subwords is None or not isinstance(item, str):
                    raise
                row = -1  # an unknown word with a subword vector
            if row >= 0:
                rows.append(row)
                query.append(self.vectors[row] / self.norms[row])
            else:
                query.append(self.get_vector(item, norm=True))
        if not query:
            raise ValueError("most_similar needs at least one positive or negative key or vector.")
        mean = self.get_mean_vector(query, weight, pre_normalize=True, post_normalize=True)
        dists = self.vectors[clip_start:clip_end] @ mean / self.norms[clip_start:clip_end]
        if not topn:
            return dists
        best = _top(dists, topn + len(rows))
        found = [(self.index_to_key[i + clip_start], float(dists[i])) for i in best if i + clip_start not in rows]  # fmt: skip
        return found[:topn]

    def similar_by_word(self, word, topn: int | None = 10, restrict_vocab: int | None = None):
        """`most_similar(positive=[word], ...)` (gensim's older name)."""
        return self.similar_by_key(word, topn, restrict_vocab)

    def similar_by_key(self, key, topn: int | None = 10, restrict_vocab: int | None = None):
        """The `topn` keys most similar to `key`; `topn=None` gives every cosine."""
        return self.most_similar(positive=[key], topn=topn, restrict_vocab=restrict_vocab)

    def similar_by_vector(
        self, vector: np.ndarray, topn: int | None = 10, restrict_vocab: int | None = None
    ):
        """The `topn` keys most similar to `vector` (no key is left out)."""
        return self.most_similar(positive=[vector], topn=topn, restrict_vocab=restrict_vocab)

    def most_similar_cosmul(
        self, positive=None, negative=None, topn: int | None = 10, restrict_vocab: int | None = None
    ):
        """Nearest keys by 3CosMul (Levy and Goldberg 2014, https://aclweb.org/anthology/W14-1618).

        Each candidate scores the product of its shifted cosines `(1 + cos) / 2`
        to the positive keys over the product to the negative ones (+ 1e-6).
        Query keys are left out. Same argument forms as `most_similar`
        except `(key, weight)` pairs; `restrict_vocab` searches the first rows.

        Returns:
            list of `(key, score)`, best first; with `topn=None`, the array
            of scores.
        """
        if isinstance(topn, Integral) and topn < 1:
            return []
        positive, negative = _ensure_list(positive), _ensure_list(negative)
        self.fill_norms()
        skip = {
            self.get_index(k) for k in positive + negative
            if isinstance(k, _KEY_TYPES) and self.has_index_for(k)
        }  # fmt: skip
        positive = [self.get_vector(k, norm=True) if isinstance(k, _KEY_TYPES) else k for k in positive]  # fmt: skip
        negative = [self.get_vector(k, norm=True) if isinstance(k, _KEY_TYPES) else k for k in negative]  # fmt: skip
        if not positive:
            raise ValueError("cannot compute similarity with no input")
        end = restrict_vocab or len(self.vectors)
        vectors, norms = self.vectors[:end], self.norms[:end]
        pos = [(1 + vectors @ term / norms) / 2 for term in positive]
        neg = [(1 + vectors @ term / norms) / 2 for term in negative]
        dists = np.prod(pos, axis=0) / (np.prod(neg, axis=0) + 0.000001)
        if not topn:
            return dists
        best = _top(dists, topn + len(skip))
        return [(self.index_to_key[i], float(dists[i])) for i in best if i not in skip][:topn]

    def most_similar_to_given(self, key1, keys_list: Sequence):
        """The key of `keys_list` most similar to `key1`."""
        return keys_list[int(np.argmax([self.similarity(key1, key) for key in keys_list]))]

    @staticmethod
    def cosine_similarities(vector_1: np.ndarray, vectors_all: np.ndarray) -> np.ndarray:
        """Cosine of `vector_1` `(dim,)` with every row of `vectors_all` `(n, dim)`."""
        norm = np.linalg.norm(vector_1)
        all_norms = np.linalg.norm(vectors_all, axis=1)
        return vectors_all @ vector_1 / (norm * all_norms)

    def similarity(self, w1, w2) -> np.floating:
        """Cosine similarity of two keys."""
        return np.dot(_unitvec(self[w1]), _unitvec(self[w2]))

    def distance(self, w1, w2) -> np.floating:
        """Cosine distance, `1 - similarity(w1, w2)`."""
        return 1 - self.similarity(w1, w2)

    def distances(self, word_or_vector, other_words: Sequence = ()) -> np.ndarray:
        """Cosine distances from a key or vector to `other_words` (default: every row)."""
        if isinstance(word_or_vector, _KEY_TYPES):
            word_or_vector = self.get_vector(word_or_vector)
        if not other_words:
            others = self.vectors
        else:
            others = self.vectors[[self.get_index(word) for word in other_words]]
        return 1 - self.cosine_similarities(word_or_vector, others)

    def n_similarity(self, ws1: Sequence, ws2: Sequence) -> np.floating:
        """Cosine between the means of two lists of keys (raw vectors; unknown keys skipped)."""
        if not (len(ws1) and len(ws2)):
            raise ZeroDivisionError("At least one of the passed list is empty.")
        mean1 = self.get_mean_vector(ws1, pre_normalize=False)
        mean2 = self.get_mean_vector(ws2, pre_normalize=False)
        return np.dot(_unitvec(mean1), _unitvec(mean2))

    def closer_than(self, key1, key2) -> list:
        """Every key closer to `key1` than `key2` is (by cosine distance), in row order."""
        all_distances = self.distances(key1)
        e1, e2 = self.get_index(key1), self.get_index(key2)
        closer = np.flatnonzero(all_distances < all_distances[e2])
        return [self.index_to_key[i] for i in closer if i != e1]

    def words_closer_than(self, word1, word2) -> list:
        """Deprecated in gensim 4: use `closer_than`."""
        return self.closer_than(word1, word2)

    def rank(self, key1, key2) -> int:
        """1 + the number of keys closer to `key1` than `key2` is."""
        return len(self.closer_than(key1, key2)) + 1

    def relative_cosine_similarity(self, wa, wb, topn: int = 10) -> float:
        """`similarity(wa, wb)` over the summed similarities of `wa`'s `topn` neighbours.

        Leeuwenberg et al. 2016, "A Minimally Supervised Approach for
        Synonym Extraction with Word Embeddings", equation (1).
        """
        sims = self.similar_by_word(wa, topn)
        if not sims:
            raise ValueError("Cannot calculate relative cosine similarity without any similar words.")  # fmt: skip
        return float(self.similarity(wa, wb)) / sum(sim for _, sim in sims)

    def rank_by_centrality(self, words: Sequence, use_norm: bool = True) -> list[tuple]:
        """`(cosine to the centroid, word)` for the known `words`, most central first."""
        self.fill_norms()
        used = [word for word in words if word in self]
        if len(used) != len(words):
            logger.warning("vectors for words %s are not present; ignoring them", set(words) - set(used))  # fmt: skip
        if not used:
            raise ValueError("cannot select a word from an empty list")
        vectors = np.vstack([self.get_vector(w, norm=use_norm) for w in used]).astype(np.float32)
        mean = self.get_mean_vector(vectors, post_normalize=True)
        return sorted(zip(vectors @ mean, used, strict=True), reverse=True)

    def doesnt_match(self, words: Sequence):
        """The word farthest from the centroid of the others' unit vectors (unknown ones ignored)."""
        return self.rank_by_centrality(words)[-1][1]

    # ------------------------------------------------------------------ evaluations

    def _ok_vocab(self, restrict_vocab: int, case_insensitive: bool) -> dict:
        keys = self.index_to_key[:restrict_vocab]
        if case_insensitive:
            # Reversed, so the first (most frequent) of several case variants wins.
            return {k.upper(): self.get_index(k) for k in reversed(keys)}
        return {k: self.get_index(k) for k in reversed(keys)}

    def evaluate_word_analogies(
        self,
        analogies: str | os.PathLike,
        restrict_vocab: int = 300000,
        case_insensitive: bool = True,
        dummy4unknown: bool = False,
        similarity_function: str = "most_similar",
    ) -> tuple[float, list[dict]]:
        """Analogy accuracy on a questions-words file (word2vec.c's compute-accuracy).

        The file has `: section` lines and lines `a b c expected`; an answer
        is right when the nearest word to `b - a + c` among the first
        `restrict_vocab` words, other than a, b and c, is `expected`.

        Args:
            analogies: path of the file (e.g. gensim's `questions-words.txt`).
            restrict_vocab: int. Only the first rows count as known words.
            case_insensitive: bool. Compare upper-cased words (the first
                case variant of a word wins).
            dummy4unknown: bool. Count questions with unknown words as
                wrong instead of skipping them.
            similarity_function: `"most_similar"` (3CosAdd) or
                `"most_similar_cosmul"` (3CosMul).

        Returns:
            `(accuracy, sections)`: accuracy over every question answered,
            and per section a dict with `section`, `correct`, `incorrect`
            (lists of 4-tuples); the last is `"Total accuracy"`.
        """
        if similarity_function not in ("most_similar", "most_similar_cosmul"):
            raise ValueError(
                f"similarity_function must be 'most_similar' or 'most_similar_cosmul', got "
                f"{similarity_function!r}."
            )
        ok_vocab = self._ok_vocab(restrict_vocab, case_insensitive)
        sections, section = [], None
        with open(analogies, "rb") as lines:
            for number, line in enumerate(lines):
                line = line.decode("utf-8")
                if line.startswith(": "):
                    if section:
                        sections.append(section)
                    section = {"section": line.lstrip(": ").strip(), "correct": [], "incorrect": []}
                    continue
                if not section:
                    raise ValueError(f"Missing section header before line #{number} in {analogies}")
                words = [w.upper() for w in line.split()] if case_insensitive else line.split()
                if len(words) != 4:
                    continue
                a, b, c, expected = words
                if not all(w in ok_vocab for w in words):
                    if dummy4unknown:
                        section["incorrect"].append((a, b, c, expected))
                    continue
                if similarity_function == "most_similar":
                    sims = self._most_similar(
                        [b, c], [a], 5, 0, None, restrict_vocab, ok_vocab.__getitem__
                    )
                else:
                    sims = self._cosmul_rows(ok_vocab, [b, c], [a], restrict_vocab)
                ignore, predicted = {a, b, c}, None
                for candidate, _ in sims:
                    predicted = candidate.upper() if case_insensitive else candidate
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

    def _cosmul_rows(self, ok_vocab, positive, negative, restrict_vocab):
        self.fill_norms()
        rows = [ok_vocab[w] for w in positive + negative]
        unit = [self.vectors[r] / self.norms[r] for r in rows]
        vectors, norms = self.vectors[:restrict_vocab], self.norms[:restrict_vocab]
        shifted = [(1 + vectors @ u / norms) / 2 for u in unit]
        dists = np.prod(shifted[: len(positive)], axis=0) / (
            np.prod(shifted[len(positive) :], axis=0) + 0.000001
        )
        best = _top(dists, 5 + len(rows))
        return [(self.index_to_key[i], float(dists[i])) for i in best if i not in rows][:5]

    def evaluate_word_pairs(
        self,
        pairs: str | os.PathLike,
        delimiter: str = "\t",
        encoding: str = "utf8",
        restrict_vocab: int = 300000,
        case_insensitive: bool = True,
        dummy4unknown: bool = False,
    ) -> tuple:
        """Correlation of cosine similarity with human scores (e.g. WordSim-353).

        Lines are `word1<delimiter>word2<delimiter>score`; `#` lines are
        comments. Pairs with a word outside the first `restrict_vocab` are
        left out (or scored 0 with `dummy4unknown`) and counted in the OOV
        ratio, as in gensim.

        Returns:
            `(pearson, spearman, oov_ratio)`: `scipy.stats.pearsonr` and
            `scipy.stats.spearmanr` results, each a `(statistic, pvalue)`
            pair (`spearman[0]` is the correlation), and the percentage of
            pairs with an unknown word.

        Examples:

        gensim ships WordSim-353 (`gensim.test.utils.datapath("wordsim353.tsv")`);
        a file of four pairs here, one with an unknown word:

        >>> import tempfile
        >>> from pathlib import Path
        >>> kv = KeyedVectors(["paris", "france", "rome", "italy"],
        ...                   np.array([[1, 0, 1], [1, 0, 0], [0, 1, 1], [0, 1, 0]], "float32"))
        >>> scratch = tempfile.TemporaryDirectory()
        >>> path = Path(scratch.name, "pairs.tsv")
        >>> _ = path.write_text("# word1\\tword2\\tscore\\nparis\\tfrance\\t9.0\\n"
        ...                     "paris\\titaly\\t5.0\\nrome\\tfrance\\t3.0\\nrome\\tunicorn\\t1.0\\n")
        >>> (pearson, _), (spearman, pvalue), oov = kv.evaluate_word_pairs(path)
        >>> round(float(pearson), 3), round(float(spearman), 3), oov
        (0.945, 0.866, 25.0)
        >>> scratch.cleanup()
        """
        from scipy import stats

        ok_vocab = self._ok_vocab(restrict_vocab, case_insensitive)
        unit = None
        gold, model, oov = [], [], 0
        with open(pairs, encoding=encoding) as lines:
            for line in lines:
                if not line or line.startswith("#"):
                    continue
                fields = line.split(delimiter)
                try:
                    a, b, score = [w.upper() for w in fields] if case_insensitive else fields
                    score = float(score)
                except (ValueError, TypeError):
                    continue
                if a not in ok_vocab or b not in ok_vocab:
                    oov += 1
                    if dummy4unknown:
                        model.append(0.0)
                        gold.append(score)
                    continue
                if unit is None:
                    unit = self.get_normed_vectors()
                gold.append(score)
                model.append(np.dot(unit[ok_vocab[a]], unit[ok_vocab[b]]))
        if not gold:
            raise ValueError(
                f"No valid similarity judgements found in {pairs}: either invalid format or "
                f"all are out-of-vocabulary in {self}"
            )
        spearman = stats.spearmanr(gold, model)
        pearson = stats.pearsonr(gold, model)
        oov_ratio = 100.0 * oov / (len(gold) if dummy4unknown else len(gold) + oov)
        return pearson, spearman, oov_ratio

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

    def save_word2vec_format(
        self,
        fname: str | os.PathLike,
        fvocab: str | os.PathLike | None = None,
        binary: bool = False,
        total_vec: int | None = None,
        write_header: bool = True,
        prefix: str = "",
        append: bool = False,
        sort_attr: str = "count",
    ) -> None:
        """Writes word2vec.c's format: a `count dim` header, then one key per line.

        Text: `key v1 v2 ...`. Binary: `key ` then `dim` little-endian
        float32 values, then a newline (what word2vec.c writes; gensim reads
        it). Written atomically (`vector_files.write_word2vec`).

        Args:
            fname: the file.
            fvocab: optional second file, `key count` per line (word2vec.c's
                `-save-vocab`), from the `sort_attr` attribute.
            binary: bool. Binary instead of text.
            total_vec: int or None. The count written in the header.
            write_header: bool. False leaves the header out (GloVe's layout).
            prefix: str. Put before every key.
            append: bool. Add to the end of an existing file.
            sort_attr: str. Keys are written by descending value of this
                attribute when it exists (most frequent first), else in row
                order. Leading int keys `0, 1, ...` (document tags) come first.
        """
        total_vec = len(self.index_to_key) if total_vec is None else total_vec
        if sort_attr in self.expandos:
            values = self.expandos[sort_attr]
            order = sorted(self.key_to_index, key=lambda k: -values[self.key_to_index[k]])
        else:
            if fvocab is not None:
                raise ValueError(
                    f"Cannot store vocabulary with '{sort_attr}' because that attribute does "
                    "not exist"
                )
            order = self.index_to_key
        leading = 0
        for i, key in enumerate(self.index_to_key):
            if i != key:
                break
            leading += 1
        if fvocab is not None:  # gensim keeps leading int tags out of its vocabulary, and here
            values = self.expandos[sort_attr]
            with atomic_write(fvocab) as out:
                if append and os.path.exists(fvocab):
                    with open(fvocab, "rb") as old:
                        shutil.copyfileobj(old, out)
                for key in order:
                    if not (isinstance(key, Integral) and 0 <= key < leading):
                        out.write(f"{prefix}{key} {values[self.key_to_index[key]]}\n".encode())
        keys = [*range(leading), *(k for k in order if not (isinstance(k, Integral) and k < leading))]  # fmt: skip
        vector_files.write_word2vec(
            fname, ((key, self.vectors[self.get_index(key)]) for key in keys), total_vec,
            self.vector_size, binary=binary, write_header=write_header, prefix=prefix,
            append=append,
        )  # fmt: skip

    @classmethod
    def load_word2vec_format(
        cls,
        fname: str | os.PathLike,
        fvocab: str | os.PathLike | None = None,
        binary: bool = False,
        encoding: str = "utf8",
        unicode_errors: str = "strict",
        limit: int | None = None,
        datatype=np.float32,
        no_header: bool = False,
    ) -> KeyedVectors:
        """Reads a word2vec.c text or binary file.

        Args:
            fname: the file.
            fvocab: optional `key count` file (word2vec.c's `-save-vocab`)
                giving the counts; without it, made-up descending counts
                (as gensim), so `save_word2vec_format` keeps the file's order.
            binary: bool. The binary format.
            encoding: str. Encoding of the keys.
            unicode_errors: str. `"strict"`, `"ignore"` or `"replace"`, for
                keys cut inside a multi-byte character.
            limit: int or None. Read at most this many keys.
            datatype: the float type of the vectors. Defaults to float32.
            no_header: bool. A text file without the `count dim` line (GloVe).

        Returns:
            A `KeyedVectors` in the file's order. A repeated key keeps its
            first vector (with a warning), as in gensim.

        Raises:
            ValueError: naming the file and line, for a truncated file, a
                line with the wrong number of values, or a missing header.
        """
        if binary and no_header:
            raise NotImplementedError("no_header only available for text-format files")
        if binary:
            keys, vectors = vector_files.read_binary(
                fname, limit, encoding, unicode_errors, datatype
            )
            size = len(keys)
        else:
            keys, vectors, declared = vector_files.read_text(
                fname, limit, encoding, unicode_errors, header=not no_header, datatype=datatype
            )
            size = len(keys) if declared is None else min(declared, limit or declared)
        rows = {}
        for row, key in enumerate(keys):
            if key in rows:
                warnings.warn(
                    f"{fname}: duplicate key {key!r}; keeping its first vector.", stacklevel=2
                )
            else:
                rows[key] = row
        if len(rows) != len(keys):
            keys, vectors = list(rows), vectors[list(rows.values())]
        counts = np.arange(size, size - len(keys), -1)
        if fvocab is not None:
            found = {}
            with open(fvocab, "rb") as lines:
                for line in lines:
                    word, count = line.decode(encoding, unicode_errors).strip().split()
                    found[word] = int(count)
            missing = [k for k in keys if k not in found]
            if missing:
                warnings.warn(
                    f"{fvocab}: no count for {len(missing)} keys (first {missing[0]!r}); "
                    "they get 0.",
                    stacklevel=2,
                )
            counts = [found.get(k, 0) for k in keys]
        return cls(keys, vectors, counts=counts, dtype=datatype)

    def intersect_word2vec_format(
        self,
        fname: str | os.PathLike,
        lockf: float = 0.0,
        binary: bool = False,
        encoding: str = "utf8",
        unicode_errors: str = "strict",
    ) -> None:
        """Copies the file's vectors onto the keys both have; no key is added.

        The rows taken from the file get `lockf` in `vectors_lockf` (0.0:
        `Word2Vec` training leaves them unchanged; 1.0: they train freely).
        """
        if binary:
            keys, vectors = vector_files.read_binary(fname, None, encoding, unicode_errors)
        else:
            keys, vectors, _ = vector_files.read_text(
                fname, None, encoding, unicode_errors, header=True
            )
        if vectors.shape[1] != self.vector_size:
            raise ValueError(f"incompatible vector size {vectors.shape[1]} in file {fname}")
        if getattr(self, "vectors_lockf", None) is None or len(self.vectors_lockf) != len(self):
            self.vectors_lockf = np.ones(len(self), np.float32)
        for key, vector in zip(keys, vectors, strict=True):
            if key in self.key_to_index:
                self.vectors[self.key_to_index[key]] = vector
                self.vectors_lockf[self.key_to_index[key]] = lockf
        self.norms = None

    def _archive(self, prefix: str = "") -> tuple[dict, dict]:
        """`(meta, arrays)` of these vectors for `vector_files.save_archive`."""
        keys = [int(k) if isinstance(k, np.integer) else k for k in self.index_to_key]
        if not all(isinstance(k, (str, int)) for k in keys):
            raise ValueError("Only str and int keys can be saved (JSON holds them).")
        meta = {"keys": keys, "vector_size": self.vector_size}
        arrays = {f"{prefix}vectors": self.vectors}
        for attr, values in self.expandos.items():
            if np.asarray(values).dtype != object:  # Huffman codes: rebuilt from the counts
                arrays[f"{prefix}vecattr.{attr}"] = values
        if getattr(self, "vectors_lockf", None) is not None:
            arrays[f"{prefix}vectors_lockf"] = self.vectors_lockf
        if self._subwords is not None:
            table = self._subwords
            meta["subwords"] = {k: table[k] for k in ("min_n", "max_n", "bucket")}
            hashes = np.fromiter(table["vectors"], np.int64, len(table["vectors"]))
            arrays[f"{prefix}subword_hashes"] = hashes
            arrays[f"{prefix}subword_vectors"] = np.stack([table["vectors"][h] for h in hashes])
        return meta, arrays

    @classmethod
    def _from_archive(cls, meta: dict, arrays: dict, prefix: str = "") -> KeyedVectors:
        vectors = arrays[f"{prefix}vectors"]
        kv = cls(meta["keys"], vectors, dtype=vectors.dtype)
        for name, values in arrays.items():
            if name.startswith(f"{prefix}vecattr."):
                kv.expandos[name[len(prefix) + len("vecattr.") :]] = values
        kv.vectors_lockf = arrays.get(f"{prefix}vectors_lockf")
        if "subwords" in meta:
            hashes, sub = arrays[f"{prefix}subword_hashes"], arrays[f"{prefix}subword_vectors"]
            kv._subwords = {
                **meta["subwords"],
                "vectors": {int(h): v for h, v in zip(hashes, sub, strict=True)},
            }
        return kv

    def save(self, fname: str | os.PathLike, *args, **kwargs) -> None:
        """Saves to one `.npz` file at `fname`, loaded by `KeyedVectors.load` without pickle.

        gensim's extra arguments (`separately`, `sep_limit`, `ignore`,
        `pickle_protocol`) are accepted and have no effect.
        """
        meta, arrays = self._archive()
        vector_files.save_archive(fname, {"class": "KeyedVectors", **meta}, arrays)

    @classmethod
    def load(
        cls, fname: str | os.PathLike, mmap: str | None = None, allow_pickle: bool = False
    ) -> KeyedVectors:
        """Loads what `save` wrote, or (with `allow_pickle=True`) gensim's saved KeyedVectors.

        Our files are read with `numpy.load(..., allow_pickle=False)`. A
        gensim file is a pickle, refused by default with an error naming
        `allow_pickle` and `load_word2vec_format`; with `allow_pickle=True`
        gensim 4's (and 3's) `KeyedVectors.save()` files are read through a
        restricted unpickler that maps only gensim's classes and numpy
        arrays (`gensim_files`). `mmap` applies to the arrays gensim stored
        beside its pickle; an `.npz` file is read into memory.
        """
        if allow_pickle and gensim_files.is_pickle(fname):
            saved = gensim_files.read(fname, mmap)
            if gensim_files.saved_class(saved) != "KeyedVectors":
                raise ValueError(
                    f"{fname} holds a gensim {saved.gensim_class}, not KeyedVectors; load it "
                    f"with {gensim_files.saved_class(saved)}.load(path, allow_pickle=True) and "
                    "take its .wv."
                )
            return gensim_files.keyed_vectors(saved, cls)
        meta, arrays = vector_files.load_archive(fname, "KeyedVectors")
        return cls._from_archive(meta, arrays)


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
    have them): the last `d` fields are the values. Undecodable bytes in a
    word are replaced (U+FFFD).

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

    >>> import tempfile
    >>> from pathlib import Path
    >>> scratch = tempfile.TemporaryDirectory()
    >>> path = Path(scratch.name, "glove.6B.2d.txt")  # e.g. "glove.6B.100d.txt"
    >>> _ = path.write_text("the 0.1 0.2\\nking 0.3 0.4\\n")
    >>> kv = load_vectors(path)
    >>> len(kv), kv.vector_size, kv["king"].tolist()
    (2, 2, [0.30000001192092896, 0.4000000059604645])
    >>> layer = kv.embedding_layer(["", "[UNK]", "the", "king"], trainable=False)
    >>> layer.input_dim, layer.output_dim
    (4, 2)
    >>> scratch.cleanup()
    """
    keys, vectors, _ = vector_files.read_text(path, limit, encoding, "replace", header)
    return KeyedVectors(keys, vectors)
