"""Word2Vec (skip-gram and CBOW with negative sampling) trained in TensorFlow, in-graph.

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
- noise words from the unigram^0.75 distribution (sampled exactly, with an
  alias table, instead of word2vec.c's 10^8-entry table); a noise word equal
  to the target is skipped, as in gensim;
- plain SGD whose learning rate falls linearly from `alpha` to `min_alpha`
  over all words of all epochs; input vectors start uniform in
  `[-0.5, 0.5) / vector_size`, output vectors at zero.

How it runs: per chunk of about `chunk_words` corpus words, one
`tf.function` subsamples, draws reduced windows, builds every pair with a
vectorized window mask and shuffles them (no Python loop per pair); then an
XLA-compiled step takes `batch_size` pairs at a time, gathers their rows,
computes the negative-sampling gradient in closed form and adds it back with
sparse scatter updates (`IndexedSlices`), like many Hogwild threads at once.
Shuffling matters: a batch of consecutive pairs from one article sums dozens
of updates to the same topic words and diverges, while shuffled batches
train as well as gensim's word-by-word SGD (measured in
`benchmarks/word2vec_bench.py`).

Differences from gensim, on purpose: sentences longer than
`max_sentence_length` are split (gensim silently truncates them), and the
exact sigmoid is used (gensim skips updates whose dot product is beyond
+-6).
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from keras_recipes.embeddings.vectors import KeyedVectors

# Each XLA step walks its batch in slices of about this many (centre, context)
# pairs, one after the other in an XLA while loop: the rows a slice gathers
# and scatters stay in the CPU's caches (2.3x faster per pair than one
# 16,384-pair slice, measured at vector_size 100), and consecutive slices
# see each other's updates, closer to word-by-word SGD.
SUB_BATCH_PAIRS = 512


def _in_sub_batches(tf, step, batch: int, rows: int):
    """`step` XLA-compiled over `batch` examples, run as consecutive slices of about `rows`."""
    parts = max(1, batch // max(1, rows))
    while batch % parts:  # equal slices
        parts -= 1

    def run(target, context, rate):
        if parts == 1:
            step(target, context, rate)
            return

        def body(i):
            def cut(x):
                return tf.reshape(x, [parts, batch // parts, *x.shape[1:]])[i]

            step(cut(target), cut(context), cut(rate))
            return (i + 1,)

        tf.while_loop(lambda i: i < parts, body, (tf.constant(0),))

    return tf.function(run, jit_compile=True, autograph=False)


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


def _set_threads(workers: int) -> None:
    """`workers` concurrent ops of one thread each, if TensorFlow's runtime has not started yet.

    An XLA step is a serial loop over small slices: splitting each op over
    threads only adds synchronisation (10.5 vs 7.3 ms per 16,384 pairs on
    two cores), so workers run whole steps side by side instead.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(max(2, workers))
    except RuntimeError:
        pass  # Already initialized: the thread pools are fixed for this process.


class Word2Vec:
    """Word2Vec embeddings, trained with TensorFlow, with gensim's API.

    Constructing it with `sentences` builds the vocabulary and trains at
    once, as `gensim.models.Word2Vec` does; the vectors are then in `.wv`, a
    `KeyedVectors` with `most_similar`, `similarity`, the analogy and
    word-pair evaluations and word2vec-format files. See the module
    docstring for the algorithm and how it runs in-graph.

    Args:
        sentences: iterable of sentences, each a list of string tokens (or
            None to call `build_vocab` and `train` yourself).
        vector_size: int. Dimension of the word vectors. Defaults to 100.
        window: int. Maximum distance between centre and context words;
            each centre word uses a window drawn uniformly in `1..window`.
            Defaults to 5.
        min_count: int. Words seen fewer times are dropped. Defaults to 5.
        sg: int. 1 for skip-gram, 0 for CBOW. Defaults to 0, as gensim.
        negative: int. Noise words per positive example. Defaults to 5.
        sample: float. Subsampling threshold for frequent words; 0 turns
            subsampling off. Defaults to 1e-3.
        alpha: float. Initial learning rate. Defaults to 0.025.
        min_alpha: float. Final learning rate. Defaults to 1e-4.
        epochs: int. Passes over the corpus. Defaults to 5.
        seed: int. Seed for the initial vectors and every random draw.
            Defaults to 1.
        workers: int. Threads that run update steps side by side on the
            shared vectors (Hogwild, as gensim's worker threads), each op
            on one CPU thread; the thread setting applies only if the
            TensorFlow runtime has not started yet in this process.
            Defaults to 3, as gensim.
        cbow_mean: int. 1 averages the context vectors in CBOW, 0 sums them.
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
    """

    def __init__(
        self,
        sentences: Iterable[Sequence[str]] | None = None,
        vector_size: int = 100,
        window: int = 5,
        min_count: int = 5,
        sg: int = 0,
        negative: int = 5,
        sample: float = 1e-3,
        alpha: float = 0.025,
        min_alpha: float = 1e-4,
        epochs: int = 5,
        seed: int = 1,
        workers: int = 3,
        cbow_mean: int = 1,
        max_sentence_length: int = 10000,
        batch_size: int = 16384,
        chunk_words: int = 2_000_000,
        shared_negatives: bool = False,
        verbose: int = 0,
    ):
        for name, value in (
            ("vector_size", vector_size),
            ("window", window),
            ("min_count", min_count),
            ("negative", negative),
            ("epochs", epochs),
            ("workers", workers),
            ("max_sentence_length", max_sentence_length),
            ("batch_size", batch_size),
            ("chunk_words", chunk_words),
        ):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
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
        self.vector_size = int(vector_size)
        self.window = int(window)
        self.min_count = int(min_count)
        self.sg = int(sg)
        self.negative = int(negative)
        self.sample = float(sample)
        self.alpha = float(alpha)
        self.min_alpha = float(min_alpha)
        self.epochs = int(epochs)
        self.seed = int(seed)
        self.workers = int(workers)
        self.cbow_mean = int(cbow_mean)
        self.max_sentence_length = int(max_sentence_length)
        self.batch_size = int(batch_size)
        self.chunk_words = int(chunk_words)
        self.shared_negatives = bool(shared_negatives)
        self.verbose = verbose
        self.wv: KeyedVectors | None = None
        if sentences is not None:
            self.build_vocab(sentences)
            self.train()

    # ------------------------------------------------------------------ vocabulary

    def build_vocab(self, sentences: Iterable[Sequence[str]]) -> None:
        """Counts words, keeps those seen `min_count` times, indexes the corpus."""
        pieces = []
        for number, sentence in enumerate(sentences):
            if isinstance(sentence, str):
                raise ValueError(
                    f"Sentence {number} is a string ({sentence[:40]!r}); Word2Vec wants each "
                    "sentence as a list of tokens, e.g. `[line.split() for line in lines]`."
                )
            sentence = list(sentence)
            for start in range(0, len(sentence), self.max_sentence_length):
                pieces.append(sentence[start : start + self.max_sentence_length])
        try:
            counts = Counter(token for piece in pieces for token in piece)
        except TypeError:  # an unhashable token (a list, a dict)
            counts = None
        if counts is None or not all(isinstance(token, str) for token in counts):
            _raise_for_non_string_token(pieces)
        self.corpus_total_words = sum(counts.values())
        if self.corpus_total_words == 0:
            raise ValueError(
                "The corpus is empty: Word2Vec got no tokens. Pass a list of tokenized "
                "sentences, e.g. `[line.split() for line in open(path)]`."
            )
        by_count = sorted(counts.items(), key=lambda tc: -tc[1])
        kept = [(t, c) for t, c in by_count if c >= self.min_count]
        if not kept:
            word, count = by_count[0]
            raise ValueError(
                f"Every word appears fewer than min_count={self.min_count} times (the most "
                f"frequent, {word!r}, appears {count} times), so the vocabulary is empty. "
                "Lower min_count or give a larger corpus."
            )
        keys = [t for t, _ in kept]
        self.word_counts = np.array([c for _, c in kept], np.int64)
        index = {t: i for i, t in enumerate(keys)}

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
        self._ids = np.array(ids, np.int32)
        self._sentence_ids = np.array(sentence_ids, np.int32)
        self._chunks = list(zip(chunk_bounds[:-1], chunk_bounds[1:], chunk_raw, strict=True))

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
            self._keep_probability = np.ones(len(keys), np.float32)
        self._noise_accept, self._noise_alias = _alias_table(self.word_counts**0.75)

        rng = np.random.default_rng(self.seed)
        vectors = (rng.random((len(keys), self.vector_size), np.float32) - 0.5) / self.vector_size
        self.wv = KeyedVectors(keys, vectors, counts=self.word_counts)
        self._output_vectors = np.zeros_like(vectors)

    # ------------------------------------------------------------------ training

    def train(self) -> None:
        """Trains `epochs` passes over the corpus given to `build_vocab`.

        Sets `train_seconds` and `words_per_second` (corpus words, out-of-
        vocabulary ones included, times epochs, over the training time with
        graph building and XLA compilation included), and `seconds`: the
        time spent building pairs, in update steps, and in the first step
        (which includes XLA compilation).
        """
        if self.wv is None:
            raise ValueError("Call build_vocab(sentences) before train().")
        _set_threads(self.workers)
        import keras
        import tensorflow as tf

        start = time.perf_counter()
        rng = tf.random.Generator.from_seed(self.seed)
        syn0 = tf.Variable(self.wv.vectors, name="input_vectors")
        syn1 = tf.Variable(self._output_vectors, name="output_vectors")
        pairs_fn = self._pair_function(tf, rng)
        grouped = not self.sg or self.shared_negatives
        batch = max(1, self.batch_size // 4) if grouped else self.batch_size
        step_fn = self._step_function(tf, rng, syn0, syn1, batch)
        ids = tf.constant(self._ids)
        sentence_ids = tf.constant(self._sentence_ids)
        total = float(self.epochs * self.corpus_total_words)
        done = 0
        self.trained_examples = 0
        self.seconds = {"pairs": 0.0, "steps": 0.0}
        pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        mark = time.perf_counter()
        for epoch in range(self.epochs):
            progress = (
                keras.utils.Progbar(len(self._chunks), unit_name="chunk") if self.verbose else None
            )
            for number, (lo, hi, raw) in enumerate(self._chunks):
                alpha_start = self.alpha - (self.alpha - self.min_alpha) * done / total
                done += raw
                alpha_end = self.alpha - (self.alpha - self.min_alpha) * done / total
                targets, contexts, rates = pairs_fn(
                    ids[lo:hi],
                    sentence_ids[lo:hi],
                    tf.constant(alpha_start, tf.float32),
                    tf.constant(alpha_end, tf.float32),
                    tf.constant(batch, tf.int32),
                )
                steps = int(targets.shape[0])
                self.trained_examples += steps * batch
                made = time.perf_counter()
                self.seconds["pairs"] += made - mark
                if steps == 0:  # no word kept with a neighbour in this chunk, this epoch
                    mark = made
                    continue
                if "first_step" not in self.seconds:  # tracing and XLA compilation
                    step_fn(targets[0], contexts[0], rates[0])
                    _ = syn0[0, 0].numpy()
                    self.seconds["first_step"] = time.perf_counter() - made
                    first = 1
                else:
                    first = 0

                def run(indices, targets=targets, contexts=contexts, rates=rates):
                    for s in indices:
                        step_fn(targets[s], contexts[s], rates[s])

                if pool is None:
                    run(range(first, steps))
                else:  # Hogwild: workers update the shared vectors without locks of their own
                    every = self.workers
                    list(pool.map(run, [range(first + k, steps, every) for k in range(every)]))
                _ = syn0[0, 0].numpy()
                mark = time.perf_counter()
                self.seconds["steps"] += mark - made
                if progress is not None:
                    progress.update(number + 1, [("epoch", epoch + 1)])
        if pool is not None:
            pool.shutdown()
        if self.trained_examples == 0:
            warnings.warn(
                f"Word2Vec trained on no (centre, context) pairs: after subsampling "
                f"(sample={self.sample}) no sentence of the corpus ({self.corpus_total_words} "
                "words) kept two in-vocabulary words, so the vectors keep their random "
                "initial values. Give a larger corpus, lower min_count, or set sample=0.",
                stacklevel=2,
            )
        self.wv.vectors[:] = syn0.numpy()
        self.wv.fill_norms(force=True)
        self._output_vectors = syn1.numpy()
        self.train_seconds = time.perf_counter() - start
        self.words_per_second = total / self.train_seconds

    def _pair_function(self, tf, rng):
        """One tf.function: subsample, draw windows, build, shuffle and batch the examples."""
        window = self.window
        sg = self.sg and not self.shared_negatives  # shared: grouped like CBOW
        keep_probability = tf.constant(self._keep_probability)
        offsets = tf.constant([d for d in range(-window, window + 1) if d != 0], tf.int32)

        @tf.function(reduce_retracing=True, autograph=False)
        def pairs(ids, sentence_ids, alpha_start, alpha_end, batch):
            kept = rng.uniform(tf.shape(ids)) < tf.gather(keep_probability, ids)
            words = tf.boolean_mask(ids, kept)
            sentences = tf.boolean_mask(sentence_ids, kept)
            n = tf.size(words)
            reduced = window - rng.uniform([n], 0, window, dtype=tf.int32)
            where = tf.range(n)[:, None] + offsets[None, :]
            clipped = tf.clip_by_value(where, 0, tf.maximum(n - 1, 0))
            valid = (
                (where >= 0)
                & (where < n)
                & (tf.abs(offsets)[None, :] <= reduced[:, None])
                & (tf.gather(sentences, clipped) == sentences[:, None])
            )
            context = tf.gather(words, clipped)
            if sg:
                # Skip-gram: the context word's input vector predicts the centre word.
                target = tf.boolean_mask(tf.broadcast_to(words[:, None], tf.shape(context)), valid)
                context = tf.boolean_mask(context, valid)
            else:
                has_context = tf.reduce_any(valid, axis=1)
                target = tf.boolean_mask(words, has_context)
                context = tf.boolean_mask(tf.where(valid, context, -1), has_context)
            m = tf.size(target)
            order = tf.random.experimental.stateless_shuffle(tf.range(m), rng.make_seeds(1)[:, 0])
            target, context = tf.gather(target, order), tf.gather(context, order)
            pad = (-m) % batch
            steps = (m + pad) // batch
            rate = alpha_start + (alpha_end - alpha_start) * tf.cast(tf.range(m), tf.float32) / (
                tf.cast(tf.maximum(m, 1), tf.float32)
            )
            # Padding examples get learning rate 0, so they change nothing.
            target = tf.reshape(tf.pad(target, [[0, pad]]), [steps, batch])
            rate = tf.reshape(tf.pad(rate, [[0, pad]]), [steps, batch])
            if sg:
                context = tf.reshape(tf.pad(context, [[0, pad]]), [steps, batch])
            else:
                context = tf.pad(context, [[0, pad], [0, 0]], constant_values=-1)
                context = tf.reshape(context, [steps, batch, 2 * window])
            return target, context, rate

        return pairs

    def _step_function(self, tf, rng, syn0, syn1, batch):
        """The XLA-compiled SGD step: gather rows, closed-form NS gradient, scatter-add."""
        negative, sg, cbow_mean = self.negative, self.sg, self.cbow_mean
        vocab = len(self.wv)
        dim = self.vector_size
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

        def gradient(hidden, target, rate):
            negatives = noise(tf.concat([tf.shape(target), [negative]], 0))
            outputs_ids = tf.concat([target[:, None], negatives], axis=1)
            outputs = tf.gather(syn1, outputs_ids)
            logits = tf.einsum("bd,bkd->bk", hidden, outputs)
            g = (labels - tf.sigmoid(logits)) * rate[:, None]
            skip = tf.concat(
                [tf.zeros_like(target[:, None], tf.bool), negatives == target[:, None]], 1
            )
            g = tf.where(skip, 0.0, g)
            hidden_error = tf.einsum("bk,bkd->bd", g, outputs)
            syn1.scatter_add(
                tf.IndexedSlices(
                    tf.reshape(g[:, :, None] * hidden[:, None, :], [-1, dim]),
                    tf.reshape(outputs_ids, [-1]),
                )
            )
            return hidden_error

        def skip_gram_step(target, context, rate):
            hidden = tf.gather(syn0, context)
            syn0.scatter_add(tf.IndexedSlices(gradient(hidden, target, rate), context))

        def cbow_step(target, context, rate):
            present = tf.cast(context >= 0, tf.float32)
            rows = tf.maximum(context, 0)
            summed = tf.reduce_sum(tf.gather(syn0, rows) * present[:, :, None], axis=1)
            count = tf.reduce_sum(present, axis=1, keepdims=True)
            hidden = summed / tf.maximum(count, 1.0) if cbow_mean else summed
            error = gradient(hidden, target, rate)
            if not cbow_mean:
                error = error / tf.maximum(count, 1.0)
            spread = error[:, None, :] * present[:, :, None]
            syn0.scatter_add(
                tf.IndexedSlices(tf.reshape(spread, [-1, dim]), tf.reshape(rows, [-1]))
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
            syn1.scatter_add(
                tf.IndexedSlices(
                    tf.reshape(tf.einsum("bck,bcd->bkd", g, hidden), [-1, dim]),
                    tf.reshape(outputs_ids, [-1]),
                )
            )
            syn0.scatter_add(
                tf.IndexedSlices(
                    tf.reshape(tf.einsum("bck,bkd->bcd", g, outputs), [-1, dim]),
                    tf.reshape(rows, [-1]),
                )
            )

        if not sg:
            step, rows = cbow_step, SUB_BATCH_PAIRS // (2 * self.window)
        elif self.shared_negatives:
            step, rows = shared_skip_gram_step, SUB_BATCH_PAIRS // (2 * self.window)
        else:
            step, rows = skip_gram_step, SUB_BATCH_PAIRS
        return _in_sub_batches(tf, step, batch, rows)
