"""Word2Vec (skip-gram and CBOW; negative sampling and hierarchical softmax) in TensorFlow.

The algorithm is word2vec.c's, with gensim's parameter names and defaults,
so a gensim user needs no new vocabulary:

- vocabulary: words seen at least `min_count` times, by descending count;
  out-of-vocabulary words are dropped before windowing (windows span them);
- frequent-word subsampling with gensim's formula: a word of count `c` is
  kept with probability `(sqrt(c / t) + 1) * t / c`, `t = sample * total`;
- reduced windows: each centre word draws its window uniformly in
  `1..window`, as word2vec.c and gensim do;
- skip-gram (`sg=1`): each (centre, context) pair trains the context word's
  input vector to predict the centre word against `negative` noise words;
  CBOW (`sg=0`): the mean of the context input vectors (`cbow_mean=1`) or
  their sum predicts the centre word, and each context vector receives the
  whole error, as in gensim;
- hierarchical softmax (`hs=1`): gensim's Huffman tree over the counts
  (`huffman_tree`, the same codes and points as gensim's), each node on the
  target word's path a sigmoid trained towards `1 - code` with its own
  output vector (`syn1`); alone (`negative=0`) or beside negative sampling,
  the two errors summed, as in gensim; `score()` gives gensim's sentence
  log probabilities;
- noise words from the unigram^0.75 distribution (sampled exactly, with an
  alias table, instead of word2vec.c's 10^8-entry table); a noise word equal
  to the target is skipped, as in gensim;
- plain SGD whose learning rate falls linearly from `alpha` to `min_alpha`
  over all words of all epochs; input vectors start as gensim 4's, uniform
  in `[-1, 1) / vector_size` (the same numbers for the same seed), output
  vectors at zero.

How it runs: per chunk of about `chunk_words` corpus words, one
`tf.function` subsamples, draws reduced windows, builds the examples with
vectorized ops and shuffles them (no Python loop per pair): skip-gram's
(centre, context) pairs, or for CBOW and PV-DM one word position each,
whose window the step reads from the chunk. An XLA-compiled step then takes
`batch_size` examples at a time, gathers their rows, computes the gradient
in closed form and adds it back with sparse scatter updates
(`IndexedSlices`), like many Hogwild threads at once. Shuffling matters for
negative sampling: a batch of consecutive pairs from one article sums
dozens of updates to the same topic words, while shuffled batches train as
well as gensim's word-by-word SGD or better (measured in
`benchmarks/word2vec_bench.py`). Hierarchical softmax alone keeps the
corpus order from step to step instead (`Word2Vec._local_order`).

The life cycle is gensim's: `Word2Vec()` then `build_vocab(corpus)` then
`train(corpus, total_examples=..., epochs=...)` (returning gensim's
`(trained_words, raw_words)`), `build_vocab(more, update=True)` to add
words, `corpus_file=` for LineSentence files, `callbacks` (`CallbackAny2Vec`),
`compute_loss=True` with `get_latest_training_loss()`, and `save` / `load`
in one `.npz` file (no pickle) that a loaded model trains on from.
`wv.vectors_lockf` (set by `wv.intersect_word2vec_format(..., lockf=0.0)`)
scales each input-vector update, as in gensim. gensim's own saved models
load with `load(path, allow_pickle=True)` (`gensim_files`).

Differences from gensim, on purpose: sentences longer than
`max_sentence_length` are split (gensim silently truncates them), and the
exact sigmoid is used (gensim skips updates whose dot product is beyond
+-6).
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from keras_recipes._compat import align_function_uids
from keras_recipes.embeddings import gensim_files, vector_files
from keras_recipes.embeddings.vectors import KeyedVectors
from keras_recipes.embeddings.vectors import _top as _top_rows

# Our model classes by gensim's class name, for `Word2Vec.load(allow_pickle=True)`
# of a gensim Doc2Vec (doc2vec.py adds itself; word2vec.py must not import it).
_MODEL_CLASSES: dict[str, type] = {}

# gensim's padding word for `null_word=1` (Doc2Vec's dm_concat): outside a
# document, a window slot holds this word's vector.
NULL_WORD = "\0"

# Each XLA step walks its batch in slices of about this many (centre, context)
# pairs, one after the other in an XLA while loop: the rows a slice gathers
# and scatters stay in the CPU's caches (faster per pair than one
# 16,384-pair slice: benchmarks/word2vec_bench.py), and consecutive slices
# see each other's updates, closer to word-by-word SGD.
SUB_BATCH_PAIRS = 512
# Hierarchical softmax splits its examples by tree depth (`_bucket_depths`)
# only from this depth on: a small vocabulary's few levels are not worth a
# second compilation.
_MIN_SPLIT_DEPTH = 12
# Settings a `train` call may change without the traced functions seeing it
# (the rates and epochs are arguments; the seed reseeds the generator).
# The examples' random generator is seeded with the model's seed plus this.
_PAIR_SEED_OFFSET = 7919
_PER_CALL_SETTINGS = ("alpha", "min_alpha", "epochs", "seed", "workers", "verbose", "comment")


def _in_sub_batches(tf, step, batch: int, rows: int, prepare=None):
    """`step` XLA-compiled over `batch` examples, run as consecutive slices of about `rows`.

    The result is called as `run(examples, arrays)`: `examples` a tuple of
    tensors with `batch` rows, `arrays` a tuple of the chunk's tensors. With
    `prepare`, `prepare(*examples, *arrays)` makes the examples the step
    takes (`Word2Vec._windowed`: the words around each position), once per
    call before the slices: the chunk's arrays stay out of the slices' XLA
    while loop, whose state XLA would copy them into on every call.
    """
    parts = max(1, batch // max(1, rows))
    while batch % parts:  # equal slices
        parts -= 1

    def run(examples, arrays):
        if prepare is not None:
            examples = prepare(*examples, *arrays)
        if parts == 1:
            step(*examples)
            return

        def body(i):
            def cut(x):
                return tf.reshape(x, [parts, batch // parts, *x.shape[1:]])[i]

            step(*(cut(x) for x in examples))
            return (i + 1,)

        tf.while_loop(lambda i: i < parts, body, (tf.constant(0),))

    compiled = tf.function(run, jit_compile=True, autograph=False)
    concrete = {}

    def call(examples, arrays=()):
        # Training calls a step thousands of times with the same shapes: the
        # concrete function skips tf.function's per-call signature matching.
        examples, arrays = tuple(examples), tuple(arrays)
        shapes = tuple(tuple(x.shape) for x in examples + arrays)
        if shapes not in concrete:
            concrete[shapes] = compiled.get_concrete_function(examples, arrays)
        return concrete[shapes](examples, arrays)

    return call


@contextlib.contextmanager
def _full_collections_paused():
    """Python's cyclic garbage collector leaves the objects that exist at entry alone.

    A full collection walks every object the process holds, and with
    TensorFlow and Keras loaded that is millions: one lands in a training
    loop every so many steps, a pause as long as many steps (README, "Word
    embeddings"). `gc.freeze` takes the objects made before the loop out
    of its reach until the loop ends; garbage the loop makes is still
    collected. A program that freezes objects itself is left as it is.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _alias_table(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias method: draw from `probabilities` with one uniform index and one coin."""
    n = len(probabilities)
    scaled = probabilities * n / probabilities.sum()
    accept = np.ones(n, np.float64)
    alias = np.arange(n, dtype=np.int32)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        accept[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    return accept.astype(np.float32), alias


def _subsample(tf, rng, ids, sentence_ids, keep_probability):
    """The corpus words (and their sentence numbers) that frequent-word subsampling keeps."""
    kept = rng.uniform(tf.shape(ids)) < tf.gather(keep_probability, ids)
    return tf.boolean_mask(ids, kept), tf.boolean_mask(sentence_ids, kept)


def _reduced_windows(tf, rng, n, window: int, shrink: bool):
    """`(n,)` int32: each word's window, drawn uniformly in `1..window` when `shrink`."""
    if shrink:
        return window - rng.uniform([n], 0, window, dtype=tf.int32)
    return tf.fill([n], window)


def _windows(tf, rng, words, sentences, window: int, shrink: bool):
    """`(context, valid)`, each `(n, 2 * window)`: every word's neighbours and which count.

    A neighbour counts if it lies in the same sentence and within the word's
    window, drawn uniformly in `1..window` per word when `shrink`.
    """
    offsets = tf.constant([d for d in range(-window, window + 1) if d != 0], tf.int32)
    n = tf.size(words)
    reduced = _reduced_windows(tf, rng, n, window, shrink)
    where = tf.range(n)[:, None] + offsets[None, :]
    clipped = tf.clip_by_value(where, 0, tf.maximum(n - 1, 0))
    valid = (
        (where >= 0)
        & (where < n)
        & (tf.abs(offsets)[None, :] <= reduced[:, None])
        & (tf.gather(sentences, clipped) == sentences[:, None])
    )
    return tf.gather(words, clipped), valid


def _window_reach(tf, rng, sentences, window: int, shrink: bool):
    """`(n, 2)` int32: how many words each word's window takes on its left and its right.

    The same windows as `_windows` (drawn with the same generator state, the
    same ones), as two numbers per word instead of a `(n, 2 * window)` mask:
    the reduced window, cut at the sentence's first and last word. Sentence
    numbers must not decrease along the corpus (`Word2Vec._index`).
    """
    n = tf.size(sentences)
    reduced = _reduced_windows(tf, rng, n, window, shrink)
    position = tf.range(n)
    starts = tf.not_equal(sentences, tf.concat([[-1], sentences], 0)[:-1])
    segment = tf.cumsum(tf.cast(starts, tf.int32)) - 1
    first = tf.gather(tf.math.segment_min(position, segment), segment)
    last = tf.gather(tf.math.segment_max(position, segment), segment)
    return tf.stack(
        [tf.minimum(position - first, reduced), tf.minimum(last - position, reduced)], 1
    )


def _position_examples(tf, rng, words, sentences, window: int, shrink: bool, capacity):
    """One example per kept word, its position, and the chunk's arrays its step reads.

    Returns `((positions,), (words, reach))`, the arrays padded to
    `capacity` rows (reach with -1: no window), for `_window_context`.
    """
    reach = _window_reach(tf, rng, sentences, window, shrink)
    arrays = (_padded(tf, words, capacity), _padded(tf, reach, capacity, -1))
    return (tf.range(tf.size(words)),), arrays


def _window_context(tf, positions, words, reach, window: int):
    """`(target, context)` of the words at `positions`: their window's words, -1 outside it.

    `words` and `reach` (`_window_reach`) are the whole chunk's, so a step
    reads each example's window itself (in XLA, fused) instead of taking a
    `(batch, 2 * window)` array built for the whole chunk.
    """
    offsets = tf.constant([d for d in range(-window, window + 1) if d != 0], tf.int32)
    side = tf.constant([0] * window + [1] * window, tf.int32)
    limit = tf.gather(tf.gather(reach, positions), side, axis=1)  # (B, 2 * window)
    where = tf.clip_by_value(positions[:, None] + offsets[None, :], 0, tf.size(words) - 1)
    inside = tf.abs(offsets)[None, :] <= limit
    return tf.gather(words, positions), tf.where(inside, tf.gather(words, where), -1)


def _padded(tf, x, capacity, value=0):
    """`x` padded with `value` along its first axis to `capacity` rows."""
    rank = len(x.shape)
    return tf.pad(x, [[0, capacity - tf.shape(x)[0]]] + [[0, 0]] * (rank - 1), constant_values=value)  # fmt: skip


def _shuffled_batches(tf, rng, examples, alpha_start, alpha_end, batch, local=False):
    """Shuffles the examples and cuts them into `(steps, batch, ...)` with a learning rate each.

    `examples` is a tuple of tensors, one row per example (a target and its
    context, or a word position); the result is that tuple batched, then the
    rates. The rate falls linearly from `alpha_start` to `alpha_end` along
    the shuffled examples; padding examples get rate 0 (and context -1 where
    a tensor has a second axis), so they change nothing. With `local`, the
    examples keep their corpus order from step to step and are shuffled
    only within each step's batch (`Word2Vec._local_order` says when).
    """
    m = tf.shape(examples[0])[0]
    if not local:
        order = tf.random.experimental.stateless_shuffle(tf.range(m), rng.make_seeds(1)[:, 0])
        examples = tuple(tf.gather(x, order) for x in examples)
    pad = (-m) % batch
    steps = (m + pad) // batch
    rate = alpha_start + (alpha_end - alpha_start) * tf.cast(tf.range(m), tf.float32) / (
        tf.cast(tf.maximum(m, 1), tf.float32)
    )
    batched = [
        tf.reshape(
            _padded(tf, x, m + pad, -1 if x.shape.rank > 1 else 0), [steps, batch, *x.shape[1:]]
        )
        for x in (*examples, rate)
    ]
    if local:  # one permutation of the columns: a step's slices take examples across it
        within = tf.random.experimental.stateless_shuffle(tf.range(batch), rng.make_seeds(1)[:, 0])
        batched = [tf.gather(x, within, axis=1) for x in batched]
    return tuple(batched)


def _bucketed_batches(
    tf, rng, examples, targets, alpha_start, alpha_end, batch, lengths, depths, local=False
):
    """`_shuffled_batches` of each bucket of examples whose target's tree path fits its depth.

    With `depths` `[d1, d2, ...]` (hierarchical softmax, `Word2Vec._bucket_depths`)
    the examples whose target word (`targets`, one per example) has a code
    of at most `d1` nodes form the first bucket, those with
    `d1 < length <= d2` the next, and so on, each batched (and given its
    rates) on its own; one depth means one bucket. `lengths` holds every
    word's code length.
    """
    if len(depths) == 1:
        return (_shuffled_batches(tf, rng, examples, alpha_start, alpha_end, batch, local),)
    length = tf.gather(lengths, targets)
    buckets, low = [], 0
    for depth in depths:
        inside = (length > low) & (length <= depth)
        bucket = tuple(tf.boolean_mask(x, inside) for x in examples)
        buckets.append(_shuffled_batches(tf, rng, bucket, alpha_start, alpha_end, batch, local))
        low = depth
    return tuple(buckets)


def _log_sigmoid_table(size: int = 1000, max_exp: int = 6) -> np.ndarray:
    """word2vec.c's (and gensim's) `log sigmoid` table over `(-max_exp, max_exp)`, in float32."""
    x = (np.arange(size, dtype=np.float32) / np.float32(size) * 2 - 1) * np.float32(max_exp)
    e = np.exp(x.astype(np.float64)).astype(np.float32)
    e = e / (e + np.float32(1.0))
    return np.log(e.astype(np.float64)).astype(np.float32)


_EXP_TABLE_SIZE, _MAX_EXP = 1000, 6
_LOG_SIGMOID_TABLE = _log_sigmoid_table(_EXP_TABLE_SIZE, _MAX_EXP)


class _Node(tuple):
    """`(count, index, left, right)` compared by count only, as gensim's `Heapitem`."""

    def __new__(cls, *fields):
        return tuple.__new__(cls, fields)

    def __lt__(self, other) -> bool:
        return self[0] < other[0]


def huffman_tree(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each word's Huffman code and path of inner nodes, built exactly as gensim builds them.

    gensim's `_build_heap` / `_assign_binary_codes`: a `heapq` of nodes
    ordered by count alone (ties fall where the heap puts them, so the
    same heap operations are needed to get gensim's codes) merges the two
    smallest nodes into inner node `len + i` at step `i`; a word's code is its path of left (0) / right (1) turns from the
    root and its points are the inner nodes on the way, numbered
    `node - len(counts)` (the root is the last merged, `len - 2`). So the
    codes of a vocabulary equal gensim's `wv.get_vecattr(word, "code")`
    and `"point"`, frequent words getting the shortest codes.

    Args:
        counts: int array, the words' counts in vocabulary order.

    Returns:
        `(codes, points)`: object arrays holding a `uint8` and a `uint32`
        array per word.

    Examples:

    >>> codes, points = huffman_tree(np.array([5, 3, 1, 1]))
    >>> [c.tolist() for c in codes], [p.tolist() for p in points]
    ([[0], [1, 1], [1, 0, 0], [1, 0, 1]], [[2], [2, 1], [2, 1, 0], [2, 1, 0]])
    """
    import heapq

    n = len(counts)
    heap = [_Node(int(c), i, None, None) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    for i in range(n - 1):
        low, high = heapq.heappop(heap), heapq.heappop(heap)
        heapq.heappush(heap, _Node(low[0] + high[0], i + n, low, high))
    codes = np.empty(n, object)
    points = np.empty(n, object)
    stack = [(heap[0], (), ())] if heap else []
    while stack:
        node, code, point = stack.pop()
        if node[1] < n:
            codes[node[1]] = np.array(code, np.uint8)
            points[node[1]] = np.array(point, np.uint32)
        else:
            point = (*point, node[1] - n)
            stack.append((node[2], (*code, 0), point))
            stack.append((node[3], (*code, 1), point))
    return codes, points


def _padded_tree(codes: np.ndarray, points: np.ndarray):
    """`(points, labels, mask)`, each `(words, depth)`: the tree as rectangular arrays.

    `labels` is `1 - code` (gensim's target for the node's sigmoid), `mask`
    1.0 on the word's own path and 0.0 on the padding.
    """
    depth = max((len(c) for c in codes), default=0)
    shape = (len(codes), max(depth, 1))
    padded_points = np.zeros(shape, np.int32)
    labels = np.zeros(shape, np.float32)
    mask = np.zeros(shape, np.float32)
    for row, (code, point) in enumerate(zip(codes, points, strict=True)):
        padded_points[row, : len(point)] = point
        labels[row, : len(code)] = 1.0 - code
        mask[row, : len(code)] = 1.0
    return padded_points, labels, mask


def _raise_for_non_string_token(pieces) -> None:
    """Raises a `ValueError` naming the first token of `pieces` that is not a `str`."""
    offset = 0
    for piece in pieces:
        for position, token in enumerate(piece):
            if not isinstance(token, str):
                raise ValueError(
                    f"Word2Vec tokens must be strings; corpus token {offset + position} is "
                    f"{token!r} ({type(token).__name__}) in the sentence starting "
                    f"{list(piece[:5])!r}. Convert the tokens first, e.g. "
                    "`[[str(t) for t in sentence] for sentence in sentences]`."
                )
        offset += len(piece)


def _keep_word(word: str, count: int, min_count: int, trim_rule) -> bool:
    """gensim's `keep_vocab_item`: `trim_rule` returns 2 (keep), 1 (drop) or 0 (count decides)."""
    rule = trim_rule(word, count, min_count) if trim_rule is not None else 0
    return rule == 2 or (rule == 0 and count >= min_count)


def use_word2vec_threads(workers: int) -> bool:
    """Sets TensorFlow's thread pools for `Word2Vec` training: `workers` one-thread ops.

    An XLA training step is a serial loop over small slices: splitting each
    op over threads only adds synchronisation (slower per pair on two
    cores), so one thread per op is fastest, and `Word2Vec(workers=N)`
    builds the next chunk's examples beside the running steps instead.
    The pools belong to the whole process (every TensorFlow op in it), so
    `Word2Vec` never sets them itself: call this first, before anything
    runs a TensorFlow op, in a process that mostly trains vectors (the
    word2vec / doc2vec recipes and benchmarks do).

    Args:
        workers: int, the `workers` the models will train with.

    Returns:
        True if the pools were set; False if TensorFlow had already started
        (its pools are then fixed for this process, and nothing changed).

    Call `use_word2vec_threads(2)` at the top of the script, then train
    with `Word2Vec(sentences, workers=2)`. (No doctest: by the time one
    runs, TensorFlow has started and the call returns False.)
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(max(2, int(workers)))
    except RuntimeError:
        return False
    return True


class CallbackAny2Vec:
    """Base class of training callbacks, as `gensim.models.callbacks.CallbackAny2Vec`.

    Subclass it and override any of `on_train_begin`, `on_epoch_begin`,
    `on_epoch_end`, `on_train_end`; each gets the model. At `on_epoch_end`
    the model's `wv` holds the vectors as trained so far and
    `get_latest_training_loss()` the loss so far (with `compute_loss=True`).
    A gensim callback object works as well: only these methods are called.

    Examples:

    >>> class EpochLoss(CallbackAny2Vec):
    ...     def __init__(self):
    ...         self.losses = []
    ...
    ...     def on_epoch_end(self, model):
    ...         self.losses.append(model.get_latest_training_loss())
    >>> sentences = [["the", "king", "rules"], ["the", "queen", "rules"]] * 20
    >>> epoch_loss = EpochLoss()
    >>> _ = Word2Vec(sentences, vector_size=8, min_count=1, sample=0, epochs=2,
    ...              compute_loss=True, callbacks=[epoch_loss])
    >>> len(epoch_loss.losses)
    2
    """

    def on_epoch_begin(self, model) -> None:
        pass

    def on_epoch_end(self, model) -> None:
        pass

    def on_train_begin(self, model) -> None:
        pass

    def on_train_end(self, model) -> None:
        pass


def _call(callbacks, event: str, model) -> None:
    for callback in callbacks:
        method = getattr(callback, event, None)
        if method is not None:
            method(model)


def _open_text(path: str | os.PathLike):
    """A UTF-8 text file, decompressed on the fly if its name ends in `.gz` or `.bz2`."""
    name = os.fspath(path)
    if name.endswith(".gz"):
        import gzip

        return gzip.open(name, "rt", encoding="utf-8")
    if name.endswith(".bz2"):
        import bz2

        return bz2.open(name, "rt", encoding="utf-8")
    return open(name, encoding="utf-8")


def line_sentences(path: str | os.PathLike, max_sentence_length: int = 10000):
    """Sentences of a LineSentence file (gensim's `corpus_file=` format).

    One sentence per line, tokens separated by whitespace, UTF-8; lines
    longer than `max_sentence_length` tokens are cut into pieces.
    """
    with _open_text(path) as lines:
        for line in lines:
            tokens = line.split()
            for start in range(0, len(tokens), max_sentence_length):
                yield tokens[start : start + max_sentence_length]


# The settings `save` stores and `load` passes back to the constructor.
_SETTINGS = (
    "vector_size", "alpha", "window", "min_count", "sample", "seed", "workers", "min_alpha",
    "sg", "hs", "negative", "ns_exponent", "cbow_mean", "epochs", "sorted_vocab", "compute_loss",
    "max_final_vocab", "max_vocab_size", "shrink_windows", "max_sentence_length", "batch_size", "chunk_words",
    "shared_negatives", "verbose", "comment", "null_word",
)  # fmt: skip


class Word2Vec:
    """Word2Vec embeddings, trained with TensorFlow, with gensim 4's API and life cycle.

    Constructing it with `sentences` (or `corpus_file`) builds the
    vocabulary and trains at once, as `gensim.models.Word2Vec` does; without
    them, call `build_vocab(corpus)` then `train(corpus, total_examples=...,
    epochs=...)`. The vectors are in `.wv`, a `KeyedVectors` with gensim's
    query API. `build_vocab(more, update=True)` adds words and `train(more,
    ...)` continues; `save` / `load` keep everything training needs (one
    `.npz` file, no pickle). See the module docstring for the algorithm.

    Args:
        sentences: iterable of sentences, each a list (or tuple, array) of
            string tokens: a list of lists, a generator (read once: the
            corpus is indexed in memory), or gensim's streams
            (`LineSentence`, `Text8Corpus`, `PathLineSentences`). None to
            call `build_vocab` and `train` yourself.
        corpus_file: path of a LineSentence file (one sentence a line,
            whitespace-separated tokens; `.gz` / `.bz2` read compressed),
            instead of `sentences`.
        vector_size: int. Dimension of the word vectors. Defaults to 100.
        alpha: float. Initial learning rate. Defaults to 0.025.
        window: int. Maximum distance between centre and context words;
            each centre word uses a window drawn uniformly in `1..window`
            (`shrink_windows=True`). Defaults to 5.
        min_count: int. Words seen fewer times are dropped (0 and 1 keep
            every word). Defaults to 5.
        max_vocab_size: int or None. Prune rare words while counting, as
            gensim does, whenever more than this many distinct words are
            held (see `scan_vocab`). Defaults to None (no pruning).
        sample: float. Subsampling threshold for frequent words; 0 turns
            subsampling off. Defaults to 1e-3.
        seed: int. Seed for the initial vectors and every random draw.
            Defaults to 1.
        workers: int. Above 1, a second thread builds the next chunk's
            examples while the update steps run (gensim's threads each run
            steps, Hogwild; here TensorFlow locks the variables a compiled
            step updates while it runs, so steps can only take turns). The
            vectors are the same for any `workers`. Set TensorFlow's pools
            with `use_word2vec_threads(workers)` first; `Word2Vec` never
            changes the process's thread settings itself. Defaults to 3, as
            gensim.
        min_alpha: float. Final learning rate. Defaults to 1e-4.
        sg: int. 1 for skip-gram, 0 for CBOW. Defaults to 0, as gensim.
        hs: int. 1 adds hierarchical softmax (gensim's Huffman tree; use
            `negative=0` for it alone). Defaults to 0.
        negative: int. Noise words per positive example; 0 turns negative
            sampling off (then `hs=1` is needed). Defaults to 5.
        ns_exponent: float. Noise words are drawn with probability
            proportional to count ** ns_exponent. Defaults to 0.75.
        cbow_mean: int. 1 averages the context vectors in CBOW, 0 sums them.
        hashfxn: accepted for gensim's signature; unused (`seed` decides
            the initial vectors).
        epochs: int. Passes over the corpus. Defaults to 5.
        null_word: int. 1 adds gensim's padding word `"\\0"` (count 1) to the
            vocabulary, as Doc2Vec's `dm_concat=1` needs. Defaults to 0.
        trim_rule: optional callable `(word, count, min_count)` returning
            0 (default rule), 1 (discard) or 2 (keep), as gensim's; applied
            to `sentences` only, not stored (as in gensim).
        sorted_vocab: int. 1 orders the vocabulary by descending count
            (ties as gensim orders them); 0 keeps first-seen order.
        batch_words: accepted for gensim's signature; `batch_size` sets
            the update step here.
        compute_loss: bool. Track the training loss
            (`get_latest_training_loss`). Defaults to False.
        callbacks: sequence of `CallbackAny2Vec` (or gensim callbacks).
        comment: str or None. Kept with the model.
        max_final_vocab: int or None. Keep at most this many words, raising
            the effective `min_count` as gensim does.
        shrink_windows: bool. False uses the full `window` for every word.
        max_sentence_length: int. Longer sentences are split into pieces of
            this many words. Defaults to 10000 (gensim's limit).
        batch_size: int. (centre, context) pairs per update step for
            skip-gram; CBOW and `shared_negatives` skip-gram take
            `batch_size // 4` centre words (windows) per step. Defaults to
            16384.
        chunk_words: int. Corpus words whose pairs are built and shuffled
            together. Defaults to 2,000,000.
        shared_negatives: bool. Skip-gram only. False (the default) draws
            `negative` noise words for every (centre, context) pair, as
            gensim does. True draws them once per centre word and shares them
            among that word's context pairs (BlazingText's layout, Gupta and
            Khare 2017, https://arxiv.org/abs/1710.04948): each pair still
            sees `negative` words from the same distribution, but the pairs
            of one window share them, which turns many row gathers and
            scatters into small matrix products (faster on CPU).
        verbose: int. 1 shows a Keras progress bar per epoch.

    Examples:

    >>> sentences = [["the", "king", "rules"], ["the", "queen", "rules"]] * 200
    >>> model = Word2Vec(sentences, vector_size=16, min_count=1, sg=1, epochs=2)
    >>> model.wv["king"].shape
    (16,)

    Saved and loaded as in gensim (one pickle-free file):

    >>> import tempfile
    >>> scratch = tempfile.TemporaryDirectory()
    >>> model.save(f"{scratch.name}/word2vec.model")
    >>> model = Word2Vec.load(f"{scratch.name}/word2vec.model")
    >>> model.wv["king"].shape
    (16,)
    >>> scratch.cleanup()

    The rest of gensim's life cycle works as written there:
    `model = Word2Vec(vector_size=100, window=5, min_count=1, workers=4)`,
    `model.build_vocab(sentences)`,
    `model.train(sentences, total_examples=model.corpus_count, epochs=model.epochs)`,
    and to go on training on new text,
    `model.build_vocab(more_sentences, update=True)` then
    `model.train(more_sentences, total_examples=len(more_sentences), epochs=model.epochs)`.
    """

    def __init__(
        self,
        sentences: Iterable[Sequence[str]] | None = None,
        corpus_file: str | os.PathLike | None = None,
        vector_size: int = 100,
        alpha: float = 0.025,
        window: int = 5,
        min_count: int = 5,
        max_vocab_size: int | None = None,
        sample: float = 1e-3,
        seed: int = 1,
        workers: int = 3,
        min_alpha: float = 1e-4,
        sg: int = 0,
        hs: int = 0,
        negative: int = 5,
        ns_exponent: float = 0.75,
        cbow_mean: int = 1,
        hashfxn=hash,
        epochs: int = 5,
        null_word: int = 0,
        trim_rule=None,
        sorted_vocab: int = 1,
        batch_words: int = 10000,
        compute_loss: bool = False,
        callbacks: Sequence = (),
        comment: str | None = None,
        max_final_vocab: int | None = None,
        shrink_windows: bool = True,
        max_sentence_length: int = 10000,
        batch_size: int = 16384,
        chunk_words: int = 2_000_000,
        shared_negatives: bool = False,
        verbose: int = 0,
    ):
        for name, value in (
            ("vector_size", vector_size),
            ("window", window),
            ("epochs", epochs),
            ("workers", workers),
            ("max_sentence_length", max_sentence_length),
            ("batch_size", batch_size),
            ("chunk_words", chunk_words),
        ):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        if hs not in (0, 1):
            raise ValueError(f"hs must be 1 (hierarchical softmax) or 0, got {hs!r}.")
        if not isinstance(negative, (int, np.integer)) or negative < 0:
            raise ValueError(f"negative must be an integer >= 0, got {negative!r}.")
        if not hs and not negative:
            raise ValueError(
                "hs=0 with negative=0 trains nothing: set hs=1 (hierarchical softmax), "
                "negative > 0 (negative sampling, e.g. 5), or both."
            )
        if hs and shared_negatives:
            raise ValueError(
                "shared_negatives=True shares noise words within a window; it does not apply "
                "to hs=1. Use shared_negatives=False with hierarchical softmax."
            )
        if not isinstance(min_count, (int, np.integer)) or min_count < 0:
            raise ValueError(
                f"min_count must be an integer >= 0 (0 and 1 keep every word), got {min_count!r}."
            )
        if max_vocab_size is not None and (
            not isinstance(max_vocab_size, (int, np.integer)) or max_vocab_size < 1
        ):
            raise ValueError(
                f"max_vocab_size must be None or an integer >= 1, got {max_vocab_size!r}."
            )
        if sg not in (0, 1):
            raise ValueError(f"sg must be 1 (skip-gram) or 0 (CBOW), got {sg!r}.")
        if cbow_mean not in (0, 1):
            raise ValueError(f"cbow_mean must be 1 (mean) or 0 (sum), got {cbow_mean!r}.")
        if sample < 0:
            raise ValueError(f"sample must be >= 0 (0 turns subsampling off), got {sample}.")
        if not 0 <= min_alpha <= alpha:
            raise ValueError(
                f"Need 0 <= min_alpha <= alpha, got alpha={alpha}, min_alpha={min_alpha}."
            )
        if sentences is not None and corpus_file is not None:
            raise TypeError("Pass sentences or corpus_file, not both.")
        self.vector_size = int(vector_size)
        self.alpha = float(alpha)
        self.window = int(window)
        self.min_count = int(min_count)
        self.max_vocab_size = None if max_vocab_size is None else int(max_vocab_size)
        self.sample = float(sample)
        self.seed = int(seed)
        self.workers = int(workers)
        self.min_alpha = float(min_alpha)
        self.sg = int(sg)
        self.hs = int(hs)
        self.negative = int(negative)
        self.ns_exponent = float(ns_exponent)
        self.cbow_mean = int(cbow_mean)
        self.epochs = int(epochs)
        self.sorted_vocab = int(sorted_vocab)
        self.compute_loss = bool(compute_loss)
        self.callbacks = tuple(callbacks)
        self.comment = comment
        self.max_final_vocab = max_final_vocab
        self.shrink_windows = bool(shrink_windows)
        self.max_sentence_length = int(max_sentence_length)
        self.batch_size = int(batch_size)
        self.chunk_words = int(chunk_words)
        self.shared_negatives = bool(shared_negatives)
        self.verbose = verbose
        self.null_word = int(null_word)
        self.wv: KeyedVectors | None = None
        self.corpus_count = 0
        self.corpus_total_words = 0
        self.train_count = 0
        self.running_training_loss = 0.0
        self._corpus = None
        self._build_and_train(sentences, corpus_file, trim_rule)

    def _build_and_train(self, corpus, corpus_file, trim_rule) -> None:
        """What gensim's constructor does when given a corpus: `build_vocab`, then `train`."""
        if corpus is None and corpus_file is None:
            return
        self.build_vocab(corpus, corpus_file=corpus_file, trim_rule=trim_rule)
        self.train(
            total_examples=self.corpus_count,
            epochs=self.epochs,
            compute_loss=self.compute_loss,
            callbacks=self.callbacks,
        )

    def __str__(self) -> str:
        size = 0 if self.wv is None else len(self.wv)
        return f"Word2Vec<vocab={size}, vector_size={self.vector_size}, alpha={self.alpha}>"

    @property
    def syn1neg(self) -> np.ndarray:
        """The output (context) vectors of negative sampling, one row per word."""
        return self._output_vectors

    @property
    def syn1(self) -> np.ndarray:
        """The output vectors of hierarchical softmax, one row per inner node of the Huffman tree.

        Row `p` belongs to the node numbered `p` in the words' `"point"`
        attributes (`wv.get_vecattr(word, "point")`), as in gensim.
        """
        return self._hs_vectors

    # ------------------------------------------------------------------ vocabulary

    def _pieces(self, corpus_iterable, corpus_file) -> list[list[str]]:
        """The corpus as token lists of at most `max_sentence_length`, checked."""
        if corpus_file is not None:
            if corpus_iterable is not None:
                raise TypeError("Pass corpus_iterable or corpus_file, not both.")
            return list(line_sentences(corpus_file, self.max_sentence_length))
        if corpus_iterable is None:
            raise TypeError("Pass corpus_iterable (a list of token lists) or corpus_file.")
        pieces = []
        for number, sentence in enumerate(corpus_iterable):
            if isinstance(sentence, str):
                raise ValueError(
                    f"Sentence {number} is a string ({sentence[:40]!r}); Word2Vec wants each "
                    "sentence as a list of tokens, e.g. `[line.split() for line in lines]`."
                )
            sentence = list(sentence)
            for start in range(0, len(sentence), self.max_sentence_length):
                pieces.append(sentence[start : start + self.max_sentence_length])
        return pieces

    def build_vocab(
        self,
        corpus_iterable: Iterable[Sequence[str]] | None = None,
        corpus_file: str | os.PathLike | None = None,
        update: bool = False,
        progress_per: int = 10000,
        keep_raw_vocab: bool = False,
        trim_rule=None,
        **kwargs,
    ) -> None:
        """Counts words and keeps those seen `min_count` times (gensim's `build_vocab`).

        Args:
            corpus_iterable: iterable of token lists.
            corpus_file: path of a LineSentence file, instead.
            update: bool. Add this corpus's new words to a trained model's
                vocabulary (new vectors start random) and add its counts to
                the known words', as gensim does; then `train` on it.
            progress_per, keep_raw_vocab: accepted for gensim's signature.
            trim_rule: optional callable `(word, count, min_count)`, see the
                class docstring. Used by this call only, as in gensim (the
                constructor's applies to the corpus given to it).

        Sets `corpus_count` (sentences) and `corpus_total_words` (tokens).
        """
        pieces = self._pieces(corpus_iterable, corpus_file)
        total, _ = self._scan(pieces, trim_rule)
        counts = self.raw_vocab
        if total == 0:
            raise ValueError(
                "The corpus is empty: Word2Vec got no tokens. Pass a list of tokenized "
                "sentences, e.g. `[line.split() for line in open(path)]`."
            )
        if update and self.wv is None:
            raise ValueError(
                "build_vocab(update=True) adds to an existing vocabulary; this model has none "
                "yet. Call build_vocab(corpus) first."
            )
        min_count = self.min_count
        if self.max_final_vocab is not None and self.max_final_vocab < len(counts):
            ranked = sorted(counts.values(), reverse=True)
            min_count = max(min_count, ranked[self.max_final_vocab] + 1)

        kept = [(t, c) for t, c in counts.items() if _keep_word(t, c, min_count, trim_rule)]
        if self.null_word and not update and NULL_WORD not in dict(kept):
            kept.append((NULL_WORD, 1))  # gensim's padding word, sorted in like any other
        if not kept and not update:
            word, count = counts.most_common(1)[0]
            raise ValueError(
                f"Every word appears fewer than min_count={min_count} times (the most "
                f"frequent, {word!r}, appears {count} times), so the vocabulary is empty. "
                "Lower min_count or give a larger corpus."
            )
        self.corpus_count = len(pieces)
        self.corpus_total_words = total
        if update:
            self._add_words(kept)
        else:
            counts_kept = np.array([c for _, c in kept], np.int64)
            order = np.arange(len(kept))
            if self.sorted_vocab:  # gensim's order: by count, ties latest-seen first
                order = np.lexsort((-order, -counts_kept))
            keys = [kept[i][0] for i in order]
            vectors = self._initial_vectors(len(keys), self.seed)
            self.wv = KeyedVectors(keys, vectors, counts=counts_kept[order])
            self._output_vectors = np.zeros((len(keys), self._layer1_size()), np.float32)
            self._hs_vectors = np.zeros_like(self._output_vectors)
        self.word_counts = self.wv.counts
        self._set_sampling()
        self._corpus = self._index(pieces)
        self._ids, self._sentence_ids, self._chunks, _ = self._corpus

    def scan_vocab(
        self,
        corpus_iterable: Iterable[Sequence[str]] | None = None,
        corpus_file: str | os.PathLike | None = None,
        progress_per: int = 10000,
        workers: int | None = None,
        trim_rule=None,
    ) -> tuple[int, int]:
        """Counts every word of a corpus into `raw_vocab` (gensim's first step of `build_vocab`).

        With `max_vocab_size`, the counts are pruned as gensim prunes them:
        whenever more than `max_vocab_size` distinct words are held, the
        words seen fewer than 1, then 2, 3, ... times so far are dropped
        (`trim_rule` can keep them).

        Args:
            corpus_iterable: iterable of token lists.
            corpus_file: path of a LineSentence file, instead.
            progress_per, workers: accepted for gensim's signature.
            trim_rule: optional callable `(word, count, min_count)`.

        Returns:
            `(total_words, corpus_count)`: tokens and sentences seen.

        Examples:

        >>> model = Word2Vec(min_count=1)
        >>> model.scan_vocab([["a", "b", "a"], ["c"]])
        (4, 2)
        >>> dict(model.raw_vocab)
        {'a': 2, 'b': 1, 'c': 1}
        """
        return self._scan(self._pieces(corpus_iterable, corpus_file), trim_rule)

    def _scan(self, pieces, trim_rule) -> tuple[int, int]:
        """`scan_vocab` on pieces already read: sets `raw_vocab`, returns `(words, sentences)`."""
        try:
            if self.max_vocab_size is None:
                counts = Counter(token for piece in pieces for token in piece)
            else:
                counts, floor = Counter(), 1
                for piece in pieces:
                    counts.update(piece)
                    if len(counts) > self.max_vocab_size:
                        for word, count in list(counts.items()):
                            if not _keep_word(word, count, floor, trim_rule):
                                del counts[word]
                        floor += 1
        except TypeError:  # an unhashable token (a list, a dict)
            counts = None
        if counts is None or not all(isinstance(token, str) for token in counts):
            _raise_for_non_string_token(pieces)
        self.raw_vocab = counts
        return sum(len(piece) for piece in pieces), len(pieces)

    def _add_words(self, kept) -> None:
        """`build_vocab(update=True)`: more counts for known words, new rows for new ones."""
        counts = self.wv.counts.copy()
        new = []
        for word, count in kept:
            if word in self.wv.key_to_index:
                counts[self.wv.key_to_index[word]] += count
            else:
                new.append((word, count))
        rows = self._initial_vectors(len(self.wv) + len(new), self.seed, first=len(self.wv))
        lockf = getattr(self.wv, "vectors_lockf", None)
        self.wv.expandos["count"] = counts
        if new:
            self.wv.add_vectors(
                [w for w, _ in new], rows, extras={"count": np.array([c for _, c in new])}
            )
        if lockf is not None:
            self.wv.vectors_lockf = np.concatenate([lockf, np.ones(len(new), lockf.dtype)])
        self._output_vectors = np.concatenate(
            [self._output_vectors, np.zeros((len(new), self.vector_size), np.float32)]
        )
        self._hs_vectors = np.concatenate(
            [self._hs_vectors, np.zeros((len(new), self.vector_size), np.float32)]
        )

    def _set_sampling(self) -> None:
        """Keep probabilities (subsampling) and the noise-word table, from the counts."""
        retained = float(self.word_counts.sum())
        if self.sample > 0:
            # gensim: a fraction of the retained words, or (>= 1) an absolute count.
            if self.sample < 1.0:
                threshold = self.sample * retained
            else:
                threshold = float(int(self.sample * (3 + np.sqrt(5)) / 2))
            keep = (np.sqrt(self.word_counts / threshold) + 1) * (threshold / self.word_counts)
            self._keep_probability = np.minimum(keep, 1.0).astype(np.float32)
        else:
            self._keep_probability = np.ones(len(self.wv), np.float32)
        self._noise_accept, self._noise_alias = _alias_table(
            self.word_counts.astype(np.float64) ** self.ns_exponent
        )
        if self.hs:
            codes, points = huffman_tree(self.word_counts)
            self.wv.expandos["code"], self.wv.expandos["point"] = codes, points

    def _index(self, pieces):
        """`(ids, sentence_ids, chunks, raw_words)`: the corpus as vocabulary rows, in chunks."""
        index = self.wv.key_to_index
        ids, sentence_ids, chunk_bounds, chunk_raw = [], [], [0], [0]
        for number, piece in enumerate(pieces):
            coded = [index[t] for t in piece if t in index]
            ids.extend(coded)
            sentence_ids.extend([number] * len(coded))
            chunk_raw[-1] += len(piece)
            if chunk_raw[-1] >= self.chunk_words:
                chunk_bounds.append(len(ids))
                chunk_raw.append(0)
        if chunk_raw[-1] == 0 and len(chunk_raw) > 1:
            chunk_raw.pop()
        else:
            chunk_bounds.append(len(ids))
        chunks = list(zip(chunk_bounds[:-1], chunk_bounds[1:], chunk_raw, strict=True))
        raw = sum(chunk_raw)
        return np.array(ids, np.int32), np.array(sentence_ids, np.int32), chunks, raw

    # ------------------------------------------------------------------ training

    def train(
        self,
        corpus_iterable: Iterable[Sequence[str]] | None = None,
        corpus_file: str | os.PathLike | None = None,
        total_examples: int | None = None,
        total_words: int | None = None,
        epochs: int | None = None,
        start_alpha: float | None = None,
        end_alpha: float | None = None,
        word_count: int = 0,
        queue_factor: int = 2,
        report_delay: float = 1.0,
        compute_loss: bool = False,
        callbacks: Sequence = (),
        **kwargs,
    ) -> tuple[int, int]:
        """Trains `epochs` passes over a corpus (gensim's `train`).

        The learning rate falls linearly from `alpha` to `min_alpha` over all
        words of all epochs of this call. Words the vocabulary lacks are
        skipped (`build_vocab(..., update=True)` adds them first).

        Args:
            corpus_iterable: iterable of token lists; None trains on the
                corpus given to `build_vocab` (this package's shortcut).
            corpus_file: path of a LineSentence file, instead.
            total_examples, total_words: accepted as in gensim; the corpus
                is indexed before training, so its size is known exactly.
            epochs: int. Passes; defaults to the model's `epochs` (gensim
                requires it). Becomes the model's `epochs`, as in gensim.
            start_alpha, end_alpha: floats replacing `alpha` / `min_alpha`.
            compute_loss: bool. Track the loss (`get_latest_training_loss`).
            callbacks: `CallbackAny2Vec` objects; their `on_train_begin`,
                `on_epoch_begin`, `on_epoch_end`, `on_train_end` are called.
            word_count, queue_factor, report_delay: accepted, unused.

        Returns:
            `(trained_word_count, raw_word_count)`: in-vocabulary words kept
            by subsampling, and all corpus words, summed over epochs.

        Also sets `train_seconds` and `words_per_second` (corpus words,
        out-of-vocabulary ones included, times epochs, over the training
        time with indexing, graph building and XLA compilation included),
        and `seconds`: the time spent building pairs, in update steps, and
        in the first step (which includes XLA compilation, on the first
        call only while the settings and vocabulary stay: later calls reuse
        the compiled step, so a loop of one-epoch `train` calls is cheap).
        """
        if self.wv is None:
            raise ValueError("Call build_vocab(corpus) before train().")
        start = time.perf_counter()
        if corpus_iterable is not None or corpus_file is not None:
            pieces = self._pieces(corpus_iterable, corpus_file)
            try:
                corpus = self._index(pieces)
            except TypeError:  # an unhashable token
                _raise_for_non_string_token(pieces)
                raise
            self._ids, self._sentence_ids, self._chunks, _ = corpus
        elif self._corpus is not None:
            corpus = self._corpus
        else:
            raise ValueError(
                "train() needs a corpus: train(corpus_iterable, total_examples=..., epochs=...) "
                "(a loaded model keeps no corpus)."
            )
        self.alpha = start_alpha or self.alpha
        self.min_alpha = end_alpha or self.min_alpha
        self.epochs = int(epochs or self.epochs)
        self.compute_loss = bool(compute_loss)
        self.running_training_loss = 0.0
        callbacks = tuple(callbacks)
        import keras
        import tensorflow as tf

        ids_array, sentence_array, chunks, raw_words = corpus
        grouped = not self.sg or self.shared_negatives
        batch = max(1, self.batch_size // 4) if grouped else self.batch_size
        _, syn0, syn1, syn1_hs, loss, pairs_fn, step_fns = self._trainer(tf, batch)
        ids = tf.constant(ids_array)
        sentence_ids = tf.constant(sentence_array)
        chunk_tensors = [(ids[lo:hi], sentence_ids[lo:hi]) for lo, hi, _ in chunks]
        batch_tensor = tf.constant(batch, tf.int32)
        capacity = tf.constant(max(hi - lo for lo, hi, _ in chunks), tf.int32)
        total = float(self.epochs * raw_words)
        trained_words = 0
        self.trained_examples = 0
        self.seconds = {"pairs": 0.0, "steps": 0.0}
        # With workers > 1 a second thread builds the next chunk's examples while
        # this one runs the steps; the steps themselves run one at a time, in
        # order (TensorFlow locks the variables a compiled step updates, so
        # Hogwild threads would only take turns).
        ahead = ThreadPoolExecutor(1) if self.workers > 1 else None
        schedule = [(epoch, number) for epoch in range(self.epochs) for number in range(len(chunks))]  # fmt: skip
        rates = np.concatenate([[0.0], np.cumsum([raw for _ in range(self.epochs) for _, _, raw in chunks])])  # fmt: skip
        rates = self.alpha - (self.alpha - self.min_alpha) * rates / max(total, 1.0)

        def examples(index):
            """The steps of `schedule[index]`'s chunk: `(steps, arrays, kept words)`."""
            _, number = schedule[index]
            buckets, arrays, kept = pairs_fn(
                *chunk_tensors[number],
                tf.constant(rates[index], tf.float32),
                tf.constant(rates[index + 1], tf.float32),
                batch_tensor,
                capacity,
            )
            # Every bucket's steps, interleaved in proportion along the chunk.
            columns = [[tf.unstack(x) for x in bucket] for bucket in buckets]
            order = sorted(
                ((s + 0.5) / len(c[0]), k, s)
                for k, c in enumerate(columns)
                for s in range(len(c[0]))
            )
            steps = [(step_fns[k], tuple(x[s] for x in columns[k])) for _, k, s in order]
            return steps, arrays, int(kept)

        _call(callbacks, "on_train_begin", self)
        # The traces that follow get the same names in every process that runs
        # the same calls, so XLA's disk cache (keras_recipes.xla_cache) answers
        # a script's train() calls from its second run on.
        align_function_uids()
        try:
            with _full_collections_paused():
                mark = time.perf_counter()
                coming = ahead.submit(examples, 0) if ahead is not None and schedule else None
                for index, (epoch, number) in enumerate(schedule):
                    if number == 0:
                        _call(callbacks, "on_epoch_begin", self)
                        progress = keras.utils.Progbar(len(chunks), unit_name="chunk") if self.verbose else None  # fmt: skip
                    if coming is None:
                        steps, arrays, kept = examples(index)
                    else:
                        steps, arrays, kept = coming.result()
                    trained_words += kept
                    self.trained_examples += len(steps) * batch
                    made = time.perf_counter()
                    self.seconds["pairs"] += made - mark
                    if steps and "first_step" not in self.seconds:  # tracing and XLA compilation
                        function, first = steps[0]
                        function(first, arrays)
                        _ = syn0[0, 0].numpy()
                        self.seconds["first_step"] = time.perf_counter() - made
                        steps = steps[1:]
                    if coming is not None and index + 1 < len(schedule):
                        # After the first step's tracing: traces keep one order (XLA's cache).
                        coming = ahead.submit(examples, index + 1)
                    for function, step_examples in steps:
                        function(step_examples, arrays)
                    _ = syn0[0, 0].numpy()
                    mark = time.perf_counter()
                    self.seconds["steps"] += mark - made
                    if progress is not None:
                        progress.update(number + 1, [("epoch", epoch + 1)])
                    if number == len(chunks) - 1:
                        if callbacks:  # they may read the vectors and the loss so far
                            self._sync(syn0, syn1, loss, syn1_hs)
                        _call(callbacks, "on_epoch_end", self)
        finally:
            if ahead is not None:
                ahead.shutdown(cancel_futures=True)
        if self.trained_examples == 0:
            warnings.warn(
                f"Word2Vec trained on no (centre, context) pairs: after subsampling "
                f"(sample={self.sample}) no sentence of the corpus ({raw_words} "
                "words) kept two in-vocabulary words, so the vectors keep their random "
                "initial values. Give a larger corpus, lower min_count, or set sample=0.",
                stacklevel=2,
            )
        self._sync(syn0, syn1, loss, syn1_hs)
        self.train_seconds = time.perf_counter() - start
        self.words_per_second = total / self.train_seconds
        self.train_count += 1
        _call(callbacks, "on_train_end", self)
        return trained_words, int(total)

    def _trainer(self, tf, batch: int):
        """The training variables and traced functions, reused by every `train` they fit.

        They are traced and XLA-compiled once and kept while nothing they
        capture changes (settings, vocabulary, sampling and noise tables,
        lock factors, shapes): gensim code often calls `train` once per
        epoch, lowering `alpha` in between, and compiling the step again
        would take longer than an epoch. Each call loads the current vectors
        into the variables and reseeds the generator, as a fresh start would.
        """
        vectors = self._input_vectors()  # Doc2Vec's joins two tables: made once
        arrays = [self._keep_probability, self._noise_accept, self._noise_alias, self.word_counts]
        arrays += [getattr(self.wv, "vectors_lockf", None), *self._captured_arrays()]
        key = (
            type(self),
            tuple(
                repr(getattr(self, name, None))
                for name in self._settings()
                if name not in _PER_CALL_SETTINGS
            ),
            vectors.shape,
            batch,
            bool(self.compute_loss),
            tuple(None if a is None else hash(np.ascontiguousarray(a).tobytes()) for a in arrays),
        )
        state = getattr(self, "_trained_functions", None)
        seed = self.seed + self.train_count
        # The examples and the steps draw from generators of their own, so that
        # building the next chunk's examples beside the steps (workers > 1)
        # draws the same numbers as building them in turn.
        pair_seed = seed + _PAIR_SEED_OFFSET
        if state is not None and state[0] == key:
            (rng, pair_rng), syn0, syn1, syn1_hs, loss, pairs_fn, step_fns = state[1]
            rng.reset_from_seed(seed)
            pair_rng.reset_from_seed(pair_seed)
            syn0.assign(vectors)
            syn1.assign(self._output_vectors)
            if syn1_hs is not None:
                syn1_hs.assign(self._hs_vectors)
            if loss is not None:
                loss.assign(0.0)
            return state[1]
        rng = tf.random.Generator.from_seed(seed)
        pair_rng = tf.random.Generator.from_seed(pair_seed)
        syn0 = tf.Variable(vectors, name="input_vectors")
        syn1 = tf.Variable(self._output_vectors, name="output_vectors")
        syn1_hs = tf.Variable(self._hs_vectors, name="tree_vectors") if self.hs else None
        loss = tf.Variable(0.0, dtype=tf.float64, name="loss") if self.compute_loss else None
        pairs_fn = self._pair_function(tf, pair_rng)
        step_fns = [
            self._step_function(tf, rng, syn0, syn1, batch, loss, syn1_hs, depth)
            for depth in self._bucket_depths()
        ]
        functions = ((rng, pair_rng), syn0, syn1, syn1_hs, loss, pairs_fn, step_fns)
        self._trained_functions = (key, functions)
        return functions

    def _captured_arrays(self) -> list:
        """Arrays besides the vocabulary's that the training functions capture (Doc2Vec's tags)."""
        return []

    def _input_vectors(self) -> np.ndarray:
        """The rows the input side of training updates (Doc2Vec appends its document vectors)."""
        return self.wv.vectors

    def _sync(self, syn0, syn1, loss, syn1_hs=None) -> None:
        """Copies the training variables back into `wv`, `syn1neg`, `syn1` and the loss."""
        self.wv.vectors[:] = syn0.numpy()
        self.wv.fill_norms(force=True)
        self._sync_outputs(syn1, loss, syn1_hs)

    def _sync_outputs(self, syn1, loss, syn1_hs) -> None:
        self._output_vectors = syn1.numpy()
        if syn1_hs is not None:
            self._hs_vectors = syn1_hs.numpy()
        if loss is not None:
            self.running_training_loss = float(loss.numpy())

    def get_latest_training_loss(self) -> float:
        """The summed loss (negative sampling and/or hierarchical softmax) of the latest `train`.

        Needs `compute_loss=True`; 0.0 otherwise, as in gensim. Like
        gensim's, it is summed over all epochs of the call (take differences
        between `on_epoch_end` callbacks for per-epoch figures); each term is
        `-log sigmoid(+-u.v)` of a positive or noise word, computed exactly.
        """
        return self.running_training_loss

    def score(
        self,
        sentences: Iterable[Sequence[str]],
        total_sentences: int = int(1e6),
        chunksize: int = 100,
        queue_factor: int = 2,
        report_delay: float = 1,
    ) -> np.ndarray:
        """The log probability of each sentence under a hierarchical-softmax model (gensim's).

        Taddy's "Document Classification by Inversion of Distributed
        Language Representations" (2015, https://arxiv.org/abs/1504.07295),
        computed as gensim computes it: skip-gram sums `log sigmoid(+-u.v)`
        over every (context word, node on the centre word's path) of the
        full window; CBOW uses the mean (or sum) of the window's vectors.
        Out-of-vocabulary words are dropped first, nothing is subsampled,
        and, as in gensim, each term comes from word2vec.c's 1000-entry
        table of `log sigmoid` over `(-6, 6)` and terms beyond `+-6` are
        skipped. The model does not change.

        Args:
            sentences: iterable of token lists.
            total_sentences: int. Score at most this many sentences.
            chunksize, queue_factor, report_delay: accepted for gensim's
                signature.

        Returns:
            float32 array, one log probability per scored sentence.

        Examples:

        >>> sentences = [["the", "king", "rules"], ["the", "queen", "rules"]] * 20
        >>> model = Word2Vec(sentences, vector_size=8, min_count=1, sg=1, hs=1, negative=0, seed=1)
        >>> scores = model.score([["the", "king", "rules"]])
        >>> scores.shape, bool(scores[0] < 0)
        ((1,), True)
        """
        if self.wv is None or not len(self.wv):
            raise RuntimeError("you must first build vocabulary before scoring new data")
        if not self.hs:
            raise RuntimeError(
                "score() is implemented for hierarchical softmax only (as in gensim): train "
                "with hs=1 (and negative=0) to score sentences."
            )
        points, labels, mask = _padded_tree(self.wv.expandos["code"], self.wv.expandos["point"])
        signs = (2.0 * labels - 1.0).astype(np.float32)
        index = self.wv.key_to_index
        vectors, tree = self.wv.vectors, self._hs_vectors
        scores = []
        for number, sentence in enumerate(sentences):
            if number >= total_sentences:
                break
            ids = np.array([index[w] for w in sentence if w in index][:10000], np.int64)
            n = len(ids)
            where = np.arange(n)[:, None] + np.arange(-self.window, self.window + 1)[None, :]
            valid = (where >= 0) & (where < n) & (where != np.arange(n)[:, None])
            context = ids[np.clip(where, 0, max(n - 1, 0))] if n else where
            if self.sg:  # every (context word, centre word) pair of the window
                centre, other = np.nonzero(valid)
                hidden = vectors[context[centre, other]]
                words = ids[centre]
            else:  # the window's mean (or sum) predicts the centre word
                count = valid.sum(axis=1, keepdims=True).astype(np.float32)
                hidden = np.einsum("nc,ncd->nd", valid.astype(np.float32), vectors[context])
                if self.cbow_mean:
                    hidden = hidden / np.maximum(count, 1.0)
                words = ids
            f = np.einsum("nd,nld->nl", hidden, tree[points[words]]) * signs[words]
            used = (mask[words] > 0) & (f > -_MAX_EXP) & (f < _MAX_EXP)
            # gensim compiles `EXP_TABLE_SIZE / MAX_EXP / 2` as C integer division: 83.
            table = ((f + _MAX_EXP) * (_EXP_TABLE_SIZE // _MAX_EXP // 2)).astype(np.int64)
            table = np.clip(table, 0, _EXP_TABLE_SIZE - 1)
            scores.append(np.float32(_LOG_SIGMOID_TABLE[table][used].sum(dtype=np.float32)))
        return np.array(scores, np.float32)

    def reset_from(self, other_model: Word2Vec) -> None:
        """Takes `other_model`'s vocabulary and corpus, with fresh random vectors (gensim's).

        The keys, their attributes (counts, Huffman codes) and the sampling
        tables are shared with `other_model`, as in gensim, so neither should
        grow its vocabulary afterwards; the word vectors start anew from this
        model's `seed` and `vector_size`, the output weights at zero. Useful
        to train several settings on one corpus without counting it again.

        Args:
            other_model: a `Word2Vec` whose vocabulary is built.

        Examples:

        >>> first = Word2Vec([["a", "b", "a"], ["b", "c"]] * 20, min_count=1, vector_size=8)
        >>> second = Word2Vec(vector_size=4, sg=1, seed=2)
        >>> second.reset_from(first)
        >>> second.wv.index_to_key == first.wv.index_to_key, second.wv.vectors.shape
        (True, (3, 4))
        """
        if other_model.wv is None:
            raise ValueError("reset_from needs a model whose vocabulary is built (build_vocab).")
        keys = other_model.wv.index_to_key
        self.wv = KeyedVectors(keys, self._initial_vectors(len(keys), self.seed))
        self.wv.key_to_index = other_model.wv.key_to_index
        self.wv.expandos = other_model.wv.expandos
        self._output_vectors = np.zeros((len(keys), self._layer1_size()), np.float32)
        self._hs_vectors = np.zeros_like(self._output_vectors)
        self.word_counts = self.wv.counts
        self._set_sampling()
        self.corpus_count = other_model.corpus_count
        self.corpus_total_words = other_model.corpus_total_words
        self._corpus = other_model._corpus
        if self._corpus is not None:
            self._ids, self._sentence_ids, self._chunks, _ = self._corpus

    def _layer1_size(self) -> int:
        """Width of the hidden layer, so of the output vectors (Doc2Vec's dm_concat widens it)."""
        return self.vector_size

    def _initial_vectors(self, rows: int, seed, first: int = 0) -> np.ndarray:
        """Rows `first:rows` of the input vectors gensim 4 starts with for `seed`.

        gensim's `prep_vectors`: uniform in `[-1, 1) / vector_size`, from
        `numpy.random.default_rng(seed)`, in float32; the same seed and
        vocabulary give gensim's very numbers. A vocabulary grown by
        `build_vocab(update=True)` keeps its rows and takes the new ones
        from the grown table, as gensim does.
        """
        vectors = np.random.default_rng(seed).random((rows, self.vector_size), np.float32)
        vectors *= 2.0
        vectors -= 1.0
        vectors /= self.vector_size
        return vectors[first:]

    def predict_output_word(self, context_words_list: Sequence[str], topn: int = 10):
        """The `topn` words most probable at the centre of `context_words_list` (gensim's).

        A softmax over the output vectors of the mean (or sum, `cbow_mean=0`)
        of the context words' vectors. None (with a warning) if no context
        word is known.
        """
        rows = [self.wv.get_index(w) for w in context_words_list if w in self.wv]
        if not rows:
            warnings.warn("All the input context words are out-of-vocabulary.", stacklevel=2)
            return None
        hidden = np.sum(self.wv.vectors[rows], axis=0)
        if self.cbow_mean:
            hidden /= len(rows)
        scores = np.exp(hidden @ self._output_vectors.T)
        scores /= scores.sum()
        return [(self.wv.index_to_key[i], scores[i]) for i in _top_rows(scores, topn)]

    # ------------------------------------------------------------------ files

    def save(self, fname: str | os.PathLike, *args, **kwargs) -> None:
        """Saves the model, enough to go on training, to one `.npz` file (no pickle).

        gensim's extra arguments (`separately`, `sep_limit`, `ignore`,
        `pickle_protocol`) are accepted and have no effect. Callbacks and
        `trim_rule` (code) are not saved.
        """
        wv_meta, arrays = self._words_archive()
        meta = {
            "class": "Word2Vec",
            "settings": {name: getattr(self, name) for name in _SETTINGS},
            "wv": wv_meta,
            "state": {
                "corpus_count": self.corpus_count,
                "corpus_total_words": self.corpus_total_words,
                "train_count": self.train_count,
                "running_training_loss": self.running_training_loss,
            },
        }
        vector_files.save_archive(fname, meta, arrays)

    @classmethod
    def load(
        cls, fname: str | os.PathLike, mmap: str | None = None, allow_pickle: bool = False
    ) -> Word2Vec:
        """Loads what `save` wrote, or (with `allow_pickle=True`) what gensim's `save()` wrote.

        Our files are read with `numpy.load(..., allow_pickle=False)`. A
        gensim file is a pickle, refused by default with an error naming
        `allow_pickle`; with `allow_pickle=True`, a gensim 4 (or 3) Word2Vec
        is read through a restricted unpickler that maps only gensim's own
        classes and numpy arrays (`gensim_files`), with the arrays gensim
        stored beside it, and converted to this class: vectors, output
        weights, counts and settings, ready to query or train on. (A gensim
        Doc2Vec comes back as our `Doc2Vec`, as gensim's `Word2Vec.load`
        returns it.)

        Args:
            fname: the file.
            mmap: None, or a `numpy.load` `mmap_mode` for gensim's arrays
                stored beside its pickle; ignored for our `.npz` files.
            allow_pickle: bool. Read gensim's pickled models. Defaults to
                False.

        Examples:

        >>> import tempfile
        >>> import gensim
        >>> scratch = tempfile.TemporaryDirectory()
        >>> sentences = [["the", "king", "rules"], ["the", "queen", "rules"]] * 20
        >>> gensim_model = gensim.models.Word2Vec(sentences, vector_size=8, min_count=1, workers=1)
        >>> gensim_model.save(f"{scratch.name}/w2v.model")  # in gensim
        >>> model = Word2Vec.load(f"{scratch.name}/w2v.model", allow_pickle=True)
        >>> bool((model.wv["king"] == gensim_model.wv["king"]).all())
        True
        >>> model.wv.most_similar("king") == gensim_model.wv.most_similar("king")
        True
        >>> scratch.cleanup()
        """
        if allow_pickle and gensim_files.is_pickle(fname):
            return cls._from_gensim(gensim_files.read(fname, mmap), fname)
        meta, arrays = vector_files.load_archive(fname, cls.__name__)
        model = cls(**meta["settings"])
        model.wv = KeyedVectors._from_archive(meta["wv"], arrays, prefix="wv.")
        model._restore_outputs(arrays)
        for name, value in meta["state"].items():
            setattr(model, name, value)
        return model

    def _words_archive(self) -> tuple[dict, dict]:
        """`wv` and the output weights for `save_archive`; the Huffman codes are rebuilt on load."""
        wv_meta, arrays = self.wv._archive(prefix="wv.")
        arrays["syn1neg"] = self._output_vectors
        if self.hs:
            arrays["syn1"] = self._hs_vectors
        return wv_meta, arrays

    def _restore_outputs(self, arrays) -> None:
        self._output_vectors = arrays["syn1neg"]
        self._hs_vectors = arrays.get("syn1", np.zeros_like(self._output_vectors))
        self.word_counts = self.wv.counts
        self._set_sampling()

    @classmethod
    def _from_gensim(cls, saved, fname) -> Word2Vec:
        """Our model from a gensim model read by `gensim_files.read`."""
        kind = gensim_files.saved_class(saved)
        if (
            kind in _MODEL_CLASSES
            and issubclass(_MODEL_CLASSES[kind], cls)
            and kind != cls.__name__
        ):
            return _MODEL_CLASSES[kind]._from_gensim(saved, fname)  # gensim's Doc2Vec, via Word2Vec
        if kind != cls.__name__:
            raise ValueError(
                f"{fname} holds a gensim {saved.gensim_class}, not a {cls.__name__}; load it with "
                f"{kind}.load(path, allow_pickle=True)."
            )
        model = cls(**gensim_files.model_settings(saved, cls._settings()))
        model._restore_gensim(saved)
        return model

    @classmethod
    def _settings(cls) -> tuple[str, ...]:
        return _SETTINGS

    def _restore_gensim(self, saved) -> None:
        """Vectors, output weights, counts and state of a saved gensim model."""
        words = getattr(saved, "wv", None) or saved  # gensim < 1.0 kept them on the model
        self.wv = gensim_files.keyed_vectors(words, KeyedVectors)
        if self.wv.counts is None:
            raise ValueError(
                "The gensim model keeps no word counts, which training and sampling need; "
                "load its vectors with KeyedVectors.load(path, allow_pickle=True) instead."
            )
        output = gensim_files.output_vectors(saved, "syn1neg")
        self._output_vectors = (
            np.zeros((len(self.wv), self._layer1_size()), np.float32)
            if output is None
            else np.array(output, np.float32)
        )
        tree = gensim_files.output_vectors(saved, "syn1")
        self._hs_vectors = (
            np.zeros_like(self._output_vectors) if tree is None else np.array(tree, np.float32)
        )
        self.word_counts = self.wv.counts
        self._set_sampling()
        for name in ("corpus_count", "corpus_total_words", "train_count"):
            setattr(self, name, int(getattr(saved, name, 0) or 0))
        self.running_training_loss = float(getattr(saved, "running_training_loss", 0.0) or 0.0)

    def _bucket_depths(self) -> list:
        """The tree depths the training examples are grouped by, one step function each.

        Without `hs`, `[None]` (no tree). With it, each example gathers and
        updates its target word's path of inner nodes, padded to a fixed
        depth; padding every path to the deepest word's wastes the work of
        the difference, since frequent words have short codes. So when it
        saves a tenth of the tree's rows or more (by the words' counts after
        subsampling, the noise rows of `negative` counted too), the examples
        split into two buckets: paths up to `d1` nodes, padded to `d1`, and
        the rest, padded to the deepest. Small vocabularies keep one bucket
        (one compilation).
        """
        if not self.hs:
            return [None]
        lengths = np.array([len(code) for code in self.wv.expandos["code"]])
        deepest = int(lengths.max(initial=1))
        weights = self.word_counts * self._keep_probability
        weights = weights / max(float(weights.sum()), 1e-12)
        extra = self.negative + 1 if self.negative else 0
        best, cost = deepest, float(deepest + extra)
        for depth in range(1, deepest):
            short = float(weights[lengths <= depth].sum())
            split = short * (depth + extra) + (1.0 - short) * (deepest + extra)
            if split < cost:
                best, cost = depth, split
        if deepest < _MIN_SPLIT_DEPTH or cost > 0.9 * (deepest + extra):
            return [deepest]
        return [best, deepest]

    def _local_order(self) -> bool:
        """Whether training keeps the corpus order from step to step (see `_shuffled_batches`).

        Hierarchical softmax alone learns better in corpus order, the order
        gensim trains in: with every example of a chunk shuffled, CBOW's
        WordSim-353 Spearman fell well below gensim's on the benchmark corpus
        (README, "Word embeddings"). Each step's batch is still shuffled, so
        the slices that update at once take examples from all over it rather
        than neighbours that share their context words. Negative sampling
        learns better fully shuffled, so it stays so.
        """
        return bool(self.hs and not self.negative)

    def _code_lengths(self, tf):
        """Each word's Huffman code length as an int32 tensor, or None without `hs`."""
        if not self.hs:
            return None
        return tf.constant([len(code) for code in self.wv.expandos["code"]], tf.int32)

    def _windowed(self) -> bool:
        """Whether an example is a word position whose window the step reads (CBOW's layout).

        CBOW (and skip-gram with `shared_negatives`) trains one example per
        corpus word with its whole window: the pair function then hands out
        word positions, and the step reads each position's window from the
        chunk's words (`_window_context`), instead of a `(words, 2 * window)`
        array built outside XLA. Skip-gram's examples are (centre, context)
        pairs, built as before.
        """
        return not self.sg or self.shared_negatives

    def _pair_function(self, tf, rng):
        """One tf.function: subsample, draw windows, build, shuffle and batch the examples.

        Called per chunk as `pairs(ids, sentence_ids, alpha_start, alpha_end,
        batch, capacity)`, it returns `(buckets, arrays, kept)`: each bucket
        the batched examples and their rates (`_bucketed_batches`), `arrays`
        the chunk's tensors the steps read whole, padded to `capacity` rows
        so that every chunk gives them one shape (one compilation), and the
        number of corpus words subsampling kept.
        """
        window, shrink, windowed = self.window, self.shrink_windows, self._windowed()
        keep_probability = tf.constant(self._keep_probability)
        depths, lengths = self._bucket_depths(), self._code_lengths(tf)
        local = self._local_order()

        @tf.function(reduce_retracing=True, autograph=False)
        def pairs(ids, sentence_ids, alpha_start, alpha_end, batch, capacity):
            words, sentences = _subsample(tf, rng, ids, sentence_ids, keep_probability)
            if windowed:
                # One example per kept word: its position (the step reads the window).
                examples, arrays = _position_examples(
                    tf, rng, words, sentences, window, shrink, capacity
                )
                target = words
            else:
                # Skip-gram: the context word's input vector predicts the centre word.
                context, valid = _windows(tf, rng, words, sentences, window, shrink)
                target = tf.boolean_mask(tf.broadcast_to(words[:, None], tf.shape(context)), valid)
                examples, arrays = (target, tf.boolean_mask(context, valid)), ()
            buckets = _bucketed_batches(
                tf, rng, examples, target, alpha_start, alpha_end, batch, lengths, depths, local
            )
            return buckets, arrays, tf.size(words)

        return pairs

    def _step_function(self, tf, rng, syn0, syn1, batch, loss=None, syn1_hs=None, depth=None):
        """The XLA-compiled SGD step: gather rows, closed-form gradients, scatter-add.

        Negative sampling updates `syn1` (syn1neg); hierarchical softmax
        (`syn1_hs`, with `hs=1`) the tree's inner-node vectors along the
        target word's path, each node's sigmoid trained towards `1 - code`.
        With both, as in gensim, the two errors are summed into the input
        update. `depth` (hs) pads the tree paths to that many nodes: the
        step trains only examples whose target's path fits
        (`_bucket_depths`). With `loss` (a float64 variable) each step adds its loss;
        with `wv.vectors_lockf` (not all ones) each input-vector update is
        scaled by its row's lock factor, as gensim does.
        """
        lockf = getattr(self.wv, "vectors_lockf", None)
        lock = None if lockf is None or np.all(lockf == 1) else tf.constant(lockf, tf.float32)
        signs = tf.constant([1.0] + [-1.0] * self.negative)

        def add_loss(logits, skip, weight):
            if loss is not None:
                terms = tf.where(skip, 0.0, -tf.math.log_sigmoid(logits * signs)) * weight
                loss.assign_add(tf.cast(tf.reduce_sum(terms), tf.float64))

        def locked(update, rows):
            if lock is None:
                return update
            return update * tf.expand_dims(tf.gather(lock, rows), -1)

        negative, sg, cbow_mean = self.negative, self.sg, self.cbow_mean
        vocab = len(self.wv)
        dim = self.vector_size
        hidden_dim = self._layer1_size()
        accept = tf.constant(self._noise_accept)
        alias = tf.constant(self._noise_alias)
        labels = tf.constant([1.0] + [0.0] * negative)

        def noise(shape):
            # One 64-bit draw per noise word: the low 32 bits pick an alias-table
            # column, the top 24 bits are the coin (half the RNG work of two draws).
            bits = rng.uniform_full_int(shape, dtype=tf.int64)
            low = tf.cast(tf.bitwise.bitwise_and(bits, 0xFFFFFFFF), tf.float32)
            column = tf.minimum(tf.cast(low * (vocab / 4294967296.0), tf.int32), vocab - 1)
            coin = tf.cast(
                tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 40), 0xFFFFFF), tf.float32
            ) * (1.0 / 16777216.0)
            return tf.where(coin < tf.gather(accept, column), column, tf.gather(alias, column))

        if syn1_hs is not None:  # paths padded to `depth` (its bucket's words fit)
            tree_points, tree_labels, tree_mask = (
                tf.constant(a[:, :depth])
                for a in _padded_tree(self.wv.expandos["code"], self.wv.expandos["point"])
            )

        def tree_gradient(hidden, target, rate):
            # Hierarchical softmax: the word's path of inner nodes, each a binary decision.
            points = tf.gather(tree_points, target)  # (B, depth)
            labels_hs = tf.gather(tree_labels, target)
            mask = tf.gather(tree_mask, target) * tf.cast(rate[:, None] > 0, tf.float32)
            outputs = tf.gather(syn1_hs, points)
            logits = tf.einsum("bd,bld->bl", hidden, outputs)
            g = (labels_hs - tf.sigmoid(logits)) * rate[:, None] * mask
            if loss is not None:
                terms = -tf.math.log_sigmoid(logits * (2.0 * labels_hs - 1.0)) * mask
                loss.assign_add(tf.cast(tf.reduce_sum(terms), tf.float64))
            hidden_error = tf.einsum("bl,bld->bd", g, outputs)
            syn1_hs.scatter_add(
                tf.IndexedSlices(
                    tf.reshape(g[:, :, None] * hidden[:, None, :], [-1, hidden_dim]),
                    tf.reshape(points, [-1]),
                )
            )
            return hidden_error

        def gradient(hidden, target, rate):
            if syn1_hs is None:
                return sampled_gradient(hidden, target, rate)
            error = tree_gradient(hidden, target, rate)
            if negative:
                error = error + sampled_gradient(hidden, target, rate)
            return error

        def sampled_gradient(hidden, target, rate):
            negatives = noise(tf.concat([tf.shape(target), [negative]], 0))
            outputs_ids = tf.concat([target[:, None], negatives], axis=1)
            outputs = tf.gather(syn1, outputs_ids)
            logits = tf.einsum("bd,bkd->bk", hidden, outputs)
            g = (labels - tf.sigmoid(logits)) * rate[:, None]
            skip = tf.concat(
                [tf.zeros_like(target[:, None], tf.bool), negatives == target[:, None]], 1
            )
            g = tf.where(skip, 0.0, g)
            add_loss(logits, skip, tf.cast(rate[:, None] > 0, tf.float32))
            hidden_error = tf.einsum("bk,bkd->bd", g, outputs)
            syn1.scatter_add(
                tf.IndexedSlices(
                    tf.reshape(g[:, :, None] * hidden[:, None, :], [-1, hidden_dim]),
                    tf.reshape(outputs_ids, [-1]),
                )
            )
            return hidden_error

        def skip_gram_step(target, context, rate):
            hidden = tf.gather(syn0, context)
            error = locked(gradient(hidden, target, rate), context)
            syn0.scatter_add(tf.IndexedSlices(error, context))

        def cbow_step(target, context, rate):
            present = tf.cast(context >= 0, tf.float32)
            rows = tf.maximum(context, 0)
            summed = tf.reduce_sum(tf.gather(syn0, rows) * present[:, :, None], axis=1)
            count = tf.reduce_sum(present, axis=1, keepdims=True)
            hidden = summed / tf.maximum(count, 1.0) if cbow_mean else summed
            error = gradient(hidden, target, rate)
            if not cbow_mean:
                error = error / tf.maximum(count, 1.0)
            spread = locked(error[:, None, :] * present[:, :, None], rows)
            syn0.scatter_add(
                tf.IndexedSlices(tf.reshape(spread, [-1, dim]), tf.reshape(rows, [-1]))
            )

        def concat_step(target, context, rate):
            # PV-DM with dm_concat: the tag and window vectors side by side form
            # one wide input; each slot's vector gets its slice of the error.
            rows = tf.maximum(context, 0)  # padding examples (rate 0) change nothing
            slots = rows.shape[1]
            hidden = tf.reshape(tf.gather(syn0, rows), [-1, slots * dim])
            error = tf.reshape(gradient(hidden, target, rate), [-1, slots, dim])
            syn0.scatter_add(
                tf.IndexedSlices(tf.reshape(locked(error, rows), [-1, dim]), tf.reshape(rows, [-1]))
            )

        def shared_skip_gram_step(target, context, rate):
            # One window per row: its context words' input vectors each predict
            # the centre word against the same `negative` noise words.
            present = tf.cast(context >= 0, tf.float32)
            rows = tf.maximum(context, 0)
            hidden = tf.gather(syn0, rows)  # (B, 2W, D)
            negatives = noise(tf.concat([tf.shape(target), [negative]], 0))
            outputs_ids = tf.concat([target[:, None], negatives], axis=1)
            outputs = tf.gather(syn1, outputs_ids)  # (B, K+1, D)
            logits = tf.einsum("bcd,bkd->bck", hidden, outputs)
            g = (labels - tf.sigmoid(logits)) * (rate[:, None] * present)[:, :, None]
            skip = tf.concat(
                [tf.zeros_like(target[:, None], tf.bool), negatives == target[:, None]], 1
            )
            g = tf.where(skip[:, None, :], 0.0, g)
            add_loss(logits, skip[:, None, :], tf.cast((rate[:, None] * present)[:, :, None] > 0, tf.float32))  # fmt: skip
            syn1.scatter_add(
                tf.IndexedSlices(
                    tf.reshape(tf.einsum("bck,bcd->bkd", g, hidden), [-1, dim]),
                    tf.reshape(outputs_ids, [-1]),
                )
            )
            syn0.scatter_add(
                tf.IndexedSlices(
                    tf.reshape(locked(tf.einsum("bck,bkd->bcd", g, outputs), rows), [-1, dim]),
                    tf.reshape(rows, [-1]),
                )
            )

        window = self.window

        def from_positions(positions, rate, words, reach, tags=None):
            # Examples are word positions; `tags` (PV-DM) are the chunk's tag rows per word.
            target, context = _window_context(tf, positions, words, reach, window)
            if tags is not None:
                context = tf.concat([tf.gather(tags, positions), context], axis=1)
            return target, context, rate

        prepare = from_positions if self._windowed() else None
        if getattr(self, "dm_concat", 0):
            step, rows = concat_step, SUB_BATCH_PAIRS // (2 * self.window)
        elif not sg:
            step, rows = cbow_step, SUB_BATCH_PAIRS // (2 * self.window)
        elif self.shared_negatives:
            step, rows = shared_skip_gram_step, SUB_BATCH_PAIRS // (2 * self.window)
        else:
            # Slices of about as many output rows as 512 pairs of negative=5 touch:
            # a tree path of 16 nodes makes a pair's rows 16, not 6.
            outputs = (tree_points.shape[1] if syn1_hs is not None else 0) + (negative + 1 if negative else 0)  # fmt: skip
            step, rows = skip_gram_step, max(1, SUB_BATCH_PAIRS * 6 // outputs)
        return _in_sub_batches(tf, step, batch, rows, prepare)
