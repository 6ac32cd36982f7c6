"""Doc2Vec (paragraph vectors, PV-DM and PV-DBOW) trained in TensorFlow, with gensim's API.

Le and Mikolov, "Distributed Representations of Sentences and Documents"
(2014, https://arxiv.org/abs/1405.4053), as gensim implements it. Every
document tag owns a vector, trained beside the word vectors:

- PV-DM (`dm=1`): the tag vectors of a document plus its context words'
  vectors, averaged (`dm_mean=1`, gensim's default) or summed (`dm_mean=0`),
  predict the centre word against `negative` noise words. This is Word2Vec's
  CBOW with the document's tags as extra context that is never out of the
  window; every context row gets the whole error, as in gensim.
- PV-DBOW (`dm=0`): each tag vector alone predicts every (kept) word of its
  document, which is skip-gram with the tag as the only context;
  `dbow_words=1` also trains skip-gram word vectors, interleaved (shuffled
  together) with the document pairs.

Training reuses `Word2Vec`'s machinery unchanged: the vocabulary, the
subsampling probabilities and the noise table come from `build_vocab`; the
tag vectors are appended below the word vectors in one input matrix, so the
pair builder emits tag rows as context ids and the same XLA-compiled
step (CBOW layout for PV-DM, skip-gram layout for PV-DBOW; negative
sampling and/or hierarchical softmax, `hs=1`) updates words and documents
with sparse scatter-adds.

`infer_vector` is gensim's: a fresh vector, seeded from the words, trained
for `epochs` passes over the document with the word and output vectors
frozen, the learning rate falling linearly per epoch from `alpha` to
`min_alpha`. Only the new vector changes, so the windows, noise words and
their dot products with the frozen vectors are drawn at once with NumPy, and
the word-by-word SGD on the one vector runs as an XLA while loop.

`dm_concat=1` is gensim's concatenative PV-DM: the tag vectors and the
full window's word vectors side by side (null-word padded) feed output
weights `(dm_tag_count + 2 * window) * vector_size` wide; every slot gets its
slice of the error. Not supported: `build_vocab(update=True)` (refused). Tags keep first-seen order in `dv`
(gensim puts plain-int tags first, by value; for the usual tags `0..n-1` in
order, the two agree).
"""

from __future__ import annotations

import os
import warnings
from collections import namedtuple
from collections.abc import Iterable, Sequence

import numpy as np

from keras_recipes.embeddings import gensim_files, vector_files
from keras_recipes.embeddings.vectors import KeyedVectors, fnv1a_32
from keras_recipes.embeddings.word2vec import (
    _MODEL_CLASSES,
    NULL_WORD,
    Word2Vec,
    _bucketed_batches,
    _full_collections_paused,
    _open_text,
    _padded,
    _padded_tree,
    _position_examples,
    _raise_for_non_string_token,
    _subsample,
    _windows,
)
from keras_recipes.embeddings.word2vec import (
    _SETTINGS as _WORD2VEC_SETTINGS,
)


class TaggedDocument(namedtuple("TaggedDocument", "words tags")):
    """A document for `Doc2Vec`: `words`, a list of string tokens, and `tags`, a list of keys.

    The same shape as `gensim.models.doc2vec.TaggedDocument`; a tag is a
    string or an int, usually one per document (`TaggedDocument(words, [i])`).
    """

    def __str__(self) -> str:
        return f"{self.__class__.__name__}<{self.words}, {self.tags}>"


_SETTINGS = tuple(s for s in _WORD2VEC_SETTINGS if s not in ("sg", "null_word")) + (
    "dm", "dbow_words", "dm_concat", "dm_tag_count",
)  # fmt: skip

# Rows (kept words) of one XLA call of `infer_vector`'s SGD loop: longer runs
# take several calls and shorter ones are padded, so one compiled size serves
# every document (compiling a size takes longer than inferring hundreds); the
# loop stops at the last real row, so padding costs only its transfer.
_INFER_ROWS = 8192
# infer_vector's words per step of its SGD loop (see `_sequential_sgd`).
_INFER_GROUP = 32


class Doc2Vec(Word2Vec):
    """Paragraph vectors (PV-DM, PV-DBOW) trained with TensorFlow, with gensim 4's API.

    Constructing it with `documents` builds the vocabulary and trains, as
    `gensim.models.Doc2Vec` does; without them, call `build_vocab(documents)`
    then `train(documents, total_examples=..., epochs=...)`. Document vectors
    are in `.dv` (a `KeyedVectors` keyed by tag: `dv[tag]`,
    `dv.most_similar(...)`), word vectors in `.wv`. See the module docstring
    for the algorithm.

    Args:
        documents: iterable of `TaggedDocument(words, tags)` (or None).
        corpus_file: path of a LineSentence file instead; line `i` is the
            document tagged `i`, as in gensim.
        vector_size: int. Dimension of word and document vectors. Defaults
            to 100.
        dm: int. 1 for PV-DM, 0 for PV-DBOW. Defaults to 1.
        dm_mean: int or None. PV-DM: 1 averages the document and context
            vectors, 0 sums them; None keeps `cbow_mean` (default 1).
        dbow_words: int. PV-DBOW: 1 also trains skip-gram word vectors.
            Defaults to 0.
        dm_concat: int. PV-DM only: 1 concatenates the `dm_tag_count` tag
            vectors and the `2 * window` context word vectors into one wide
            input (gensim's `dm_concat`; the full window, padded with the
            null word `"\\0"` at document edges; much larger output
            weights, slower). Defaults to 0 (mean or sum).
        dm_tag_count: int. With `dm_concat=1`, the tags every document has;
            documents with another number are skipped, as in gensim.
            Defaults to 1.
        dv, dv_mapfile: must be None (accepted for gensim's signature).
        window: int. Maximum distance between centre and context words.
            Defaults to 5.
        epochs: int. Passes over the corpus. Defaults to 10, as gensim.
        alpha, min_alpha, min_count, sample, seed, workers, negative,
        ns_exponent, hs, cbow_mean, max_final_vocab, shrink_windows,
        max_sentence_length, batch_size, chunk_words, compute_loss,
        callbacks, trim_rule, comment, verbose: as in `Word2Vec` (gensim's
            meanings and defaults).

    Examples:

    >>> docs = [TaggedDocument(["cats", "purr", "and", "meow"], [0]),
    ...         TaggedDocument(["dogs", "bark", "and", "growl"], [1])] * 50
    >>> model = Doc2Vec(docs, vector_size=16, min_count=1, epochs=5)
    >>> model.dv[0].shape
    (16,)
    >>> vector = model.infer_vector(["cats", "purr"])
    >>> vector.shape
    (16,)
    >>> len(model.dv.most_similar([vector], topn=len(model.dv)))  # every document, ranked
    2

    gensim's tutorial runs with only the import switched:
    `model = Doc2Vec(vector_size=50, min_count=2, epochs=40)`, then
    `model.build_vocab(train_corpus)`,
    `model.train(train_corpus, total_examples=model.corpus_count, epochs=model.epochs)`,
    `vector = model.infer_vector(["only", "you", "can", "prevent", "forest", "fires"])`
    and `model.dv.most_similar([vector], topn=len(model.dv))`.
    """

    def __init__(
        self,
        documents: Iterable[TaggedDocument] | None = None,
        corpus_file: str | os.PathLike | None = None,
        vector_size: int = 100,
        dm_mean: int | None = None,
        dm: int = 1,
        dbow_words: int = 0,
        dm_concat: int = 0,
        dm_tag_count: int = 1,
        dv=None,
        dv_mapfile=None,
        comment: str | None = None,
        trim_rule=None,
        callbacks: Sequence = (),
        window: int = 5,
        epochs: int = 10,
        shrink_windows: bool = True,
        **kwargs,
    ):
        if dm not in (0, 1):
            raise ValueError(f"dm must be 1 (PV-DM) or 0 (PV-DBOW), got {dm!r}.")
        if dm_concat not in (0, 1):
            raise ValueError(f"dm_concat must be 1 (concatenated PV-DM) or 0, got {dm_concat!r}.")
        if not isinstance(dm_tag_count, (int, np.integer)) or dm_tag_count < 1:
            raise ValueError(f"dm_tag_count must be an integer >= 1, got {dm_tag_count!r}.")
        if dv is not None or dv_mapfile is not None:
            raise ValueError("dv= and dv_mapfile= are not supported; leave them None.")
        if dm_mean is not None:
            kwargs["cbow_mean"] = dm_mean
        kwargs.pop("sg", None)
        kwargs["null_word"] = int(dm_concat)  # gensim pads concatenated windows with "\0"
        self.dm, self.dm_concat, self.dm_tag_count = int(dm), int(dm_concat), int(dm_tag_count)
        super().__init__(
            vector_size=vector_size,
            sg=1 - dm,
            window=window,
            epochs=epochs,
            shrink_windows=shrink_windows,
            comment=comment,
            callbacks=callbacks,
            **kwargs,
        )
        self.dm = int(dm)
        self.dm_mean = None if dm_mean is None else int(dm_mean)
        self.dbow_words = int(dbow_words)
        self.dv: KeyedVectors | None = None
        self._corpus_tags: list[list] = []
        self._infer_step = None
        self._build_and_train(documents, corpus_file, trim_rule)

    def __str__(self) -> str:
        mode = (
            f"dm/{'c' if self.dm_concat else 'm' if self.cbow_mean else 's'}" if self.dm else "dbow"
        )
        if not self.dm and self.dbow_words:
            mode += f"+w,w{self.window}"
        elif self.dm:
            mode += f",w{self.window}"
        return f"Doc2Vec<{mode},d{self.vector_size},n{self.negative},mc{self.min_count},t{self.workers}>"  # fmt: skip

    def __getitem__(self, tag):
        """The vector of a word or, if no word has that name, of a document tag (gensim's).

        Args:
            tag: a str or int key, or a list of them.

        Returns:
            `(vector_size,)` for one key, `(len(tag), vector_size)` for a list.
        """
        if isinstance(tag, (str, int, np.integer)):
            return self.wv[tag] if tag in self.wv else self.dv[tag]
        return np.vstack([self[key] for key in tag])

    def similarity_unseen_docs(
        self,
        doc_words1: Sequence[str],
        doc_words2: Sequence[str],
        alpha: float | None = None,
        min_alpha: float | None = None,
        epochs: int | None = None,
    ) -> np.floating:
        """Cosine similarity of two new documents' inferred vectors (gensim's).

        Each document gets `infer_vector(doc_words, alpha, min_alpha,
        epochs)`; the model does not change.

        For a trained model,
        `model.similarity_unseen_docs(["cats", "purr"], ["kittens", "meow"])`
        is the cosine of the two inferred vectors (no doctest: inference is
        random, so the figure changes from run to run).
        """
        first = self.infer_vector(doc_words1, alpha=alpha, min_alpha=min_alpha, epochs=epochs)
        second = self.infer_vector(doc_words2, alpha=alpha, min_alpha=min_alpha, epochs=epochs)
        return np.dot(first / np.linalg.norm(first), second / np.linalg.norm(second))

    def save_word2vec_format(
        self,
        fname: str | os.PathLike,
        doctag_vec: bool = False,
        word_vec: bool = True,
        prefix: str = "*dt_",
        fvocab: str | os.PathLike | None = None,
        binary: bool = False,
    ) -> None:
        """Word and/or document vectors in word2vec.c's format, in one file (gensim's).

        Args:
            fname: the file.
            doctag_vec: bool. Write the document vectors. Defaults to False.
            word_vec: bool. Write the word vectors. Defaults to True.
            prefix: str. Put before every document tag, so tags and words
                cannot collide. Defaults to `"*dt_"`.
            fvocab: optional file for the `key count` vocabulary.
            binary: bool. Binary instead of text.

        With both, the header counts words and tags and the tags follow the
        words, as gensim writes them; `KeyedVectors.load_word2vec_format`
        (ours or gensim's) reads the file back.
        """
        if word_vec:
            total = len(self.wv) + len(self.dv) if doctag_vec else None
            self.wv.save_word2vec_format(fname, fvocab, binary, total)
        if doctag_vec:
            self.dv.save_word2vec_format(
                fname, prefix=prefix, fvocab=fvocab, binary=binary, write_header=not word_vec,
                append=bool(word_vec), sort_attr="doc_count",
            )  # fmt: skip

    def reset_from(self, other_model: Doc2Vec) -> None:
        """Takes `other_model`'s words, tags and corpus, with fresh random vectors (gensim's).

        See `Word2Vec.reset_from`; the document tags (and their counts) are
        shared too, and the tag vectors start anew.
        """
        super().reset_from(other_model)
        keys = other_model.dv.index_to_key
        self.dv = KeyedVectors(keys, self._initial_vectors(len(keys), self.seed + 7919))
        self.dv.key_to_index = other_model.dv.key_to_index
        self.dv.expandos = other_model.dv.expandos
        self._corpus_tags = other_model._corpus_tags
        self._document_count = getattr(other_model, "_document_count", other_model.corpus_count)

    # ------------------------------------------------------------------ corpus

    def _pieces(self, corpus_iterable, corpus_file) -> list[list[str]]:
        """The documents' word lists (checked, split at `max_sentence_length`); keeps their tags."""
        if corpus_file is not None:
            if corpus_iterable is not None:
                raise TypeError("Pass documents or corpus_file, not both.")
            with _open_text(corpus_file) as lines:
                corpus_iterable = [TaggedDocument(line.split(), [i]) for i, line in enumerate(lines)]  # fmt: skip
        if corpus_iterable is None:
            raise TypeError("Pass documents (TaggedDocument(words, tags) items) or corpus_file.")
        pieces, tags = [], []
        for number, document in enumerate(corpus_iterable):
            words = getattr(document, "words", None)
            document_tags = getattr(document, "tags", None)
            if words is None or document_tags is None or isinstance(words, str):
                raise ValueError(
                    f"Document {number} is {_short(document)}, not a TaggedDocument: Doc2Vec "
                    "wants each document as TaggedDocument(words=[tokens...], tags=[tag]), e.g. "
                    "`[TaggedDocument(line.split(), [i]) for i, line in enumerate(lines)]`."
                )
            if isinstance(document_tags, (str, int, np.integer)):
                raise ValueError(
                    f"Document {number}'s tags is {document_tags!r}; tags must be a list of "
                    f"tags, e.g. TaggedDocument(words, [{document_tags!r}])."
                )
            document_tags = [int(t) if isinstance(t, np.integer) else t for t in document_tags]
            if any(isinstance(t, (bool, np.bool_)) for t in document_tags):
                raise ValueError(
                    f"Document {number}'s tags {document_tags!r} hold a bool; True and 1 (False "
                    "and 0) would be one tag. Use ints or strings."
                )
            if not all(isinstance(t, (str, int)) for t in document_tags):
                raise ValueError(
                    f"Document {number}'s tags {document_tags!r} must be strings or ints."
                )
            words = list(words)
            for start in range(0, max(len(words), 1), self.max_sentence_length):
                pieces.append(words[start : start + self.max_sentence_length])
                tags.append(document_tags)
        if not pieces:
            raise ValueError(
                "The corpus is empty: Doc2Vec got no documents. Pass a list of "
                "TaggedDocument(words, tags)."
            )
        self._corpus_tags = tags
        self._document_count = number + 1
        return pieces

    def build_vocab(
        self,
        corpus_iterable: Iterable[TaggedDocument] | None = None,
        corpus_file: str | os.PathLike | None = None,
        update: bool = False,
        progress_per: int = 10000,
        keep_raw_vocab: bool = False,
        trim_rule=None,
        **kwargs,
    ) -> None:
        """Counts words (kept if seen `min_count` times) and collects the tags (gensim's).

        Sets `corpus_count` (documents), `corpus_total_words`, `wv` (random
        word vectors) and `dv` (one random vector per distinct tag).
        """
        if update:
            raise ValueError(
                "Doc2Vec.build_vocab(update=True) is not supported; build a new model on the "
                "whole corpus (infer_vector gives vectors for new documents)."
            )
        super().build_vocab(corpus_iterable, corpus_file=corpus_file, trim_rule=trim_rule)
        keys, seen = [], set()
        for tags in self._corpus_tags:
            for tag in tags:
                if tag not in seen:
                    seen.add(tag)
                    keys.append(tag)
        if not keys:
            raise ValueError("No document has a tag: give each TaggedDocument tags, e.g. [i].")
        # Tag vectors start as gensim's do, from the seed plus the 1000th prime.
        self.dv = KeyedVectors(keys, self._initial_vectors(len(keys), self.seed + 7919))
        counts = np.zeros(len(keys), np.int64)
        for tags in self._corpus_tags:
            for tag in tags:
                counts[self.dv.key_to_index[tag]] += 1
        self.dv.expandos["doc_count"] = counts
        self.corpus_count = self._document_count

    # ------------------------------------------------------------------ training

    def _input_vectors(self) -> np.ndarray:
        return np.concatenate([self.wv.vectors, self.dv.vectors])

    def _sync(self, syn0, syn1, loss, syn1_hs=None) -> None:
        vectors = syn0.numpy()
        self.dv.vectors[:] = vectors[len(self.wv) :]
        self.dv.fill_norms(force=True)
        self._infer_step = None
        self.wv.vectors[:] = vectors[: len(self.wv)]
        self.wv.fill_norms(force=True)
        self._sync_outputs(syn1, loss, syn1_hs)

    def _layer1_size(self) -> int:
        """PV-DM with `dm_concat=1`: `dm_tag_count` tag slots and `2 * window` word slots."""
        if self.dm and self.dm_concat:
            return (self.dm_tag_count + 2 * self.window) * self.vector_size
        return self.vector_size

    def _tag_rows(self) -> np.ndarray:
        """`(pieces, most tags)` int32: each piece's tag rows in the input matrix, -1 padded."""
        if self.dv is None:
            raise ValueError("Call build_vocab(documents) before train().")
        width = max(1, max(len(tags) for tags in self._corpus_tags))
        rows = np.full((len(self._corpus_tags), width), -1, np.int32)
        index = self.dv.key_to_index
        for number, tags in enumerate(self._corpus_tags):
            for position, tag in enumerate(tags):
                if tag not in index:
                    raise ValueError(
                        f"Tag {tag!r} (document {number}) was not in the corpus given to "
                        "build_vocab; train on the documents the vocabulary was built from."
                    )
                rows[number, position] = len(self.wv) + index[tag]
        return rows

    def _captured_arrays(self) -> list:
        return [self._tag_rows()]

    def _windowed(self) -> bool:
        """PV-DM (but not dm_concat) reads each word's window in the step, as CBOW does."""
        return bool(self.dm and not self.dm_concat)

    def _pair_function(self, tf, rng):
        """Examples of PV-DM (tags + context -> word) or PV-DBOW (tag -> word) per chunk.

        Called as `Word2Vec._pair_function`'s function is, with the same results.
        """
        window, shrink, dm, dbow_words = self.window, self.shrink_windows, self.dm, self.dbow_words
        keep_probability = tf.constant(self._keep_probability)
        tag_rows = tf.constant(self._tag_rows())
        concat, tag_count = self.dm and self.dm_concat, self.dm_tag_count
        null = self.wv.get_index(NULL_WORD, 0)
        depths, lengths = self._bucket_depths(), self._code_lengths(tf)
        local = self._local_order()

        @tf.function(reduce_retracing=True, autograph=False)
        def pairs(ids, sentence_ids, alpha_start, alpha_end, batch, capacity):
            words, sentences = _subsample(tf, rng, ids, sentence_ids, keep_probability)
            tags = tf.gather(tag_rows, sentences)  # (n, most tags)
            arrays = ()
            if concat:
                # gensim's dm_concat: the full window, padded with the null word at
                # the document's edges; documents without exactly dm_tag_count tags
                # are skipped.
                context, inside = _windows(tf, rng, words, sentences, window, False)
                context = tf.where(inside, context, null)
                width = max(0, tag_count - tags.shape[1])
                tags = tf.pad(tags, [[0, 0], [0, width]], constant_values=-1)
                has_count = tf.reduce_sum(tf.cast(tags >= 0, tf.int32), axis=1) == tag_count
                context = tf.boolean_mask(tf.concat([tags[:, :tag_count], context], 1), has_count)
                target = tf.boolean_mask(words, has_count)
                examples = (target, context)
            elif dm:
                # Every kept word is a target, with or without context words: its
                # position, the step reads its tags and window (`_windowed`).
                examples, arrays = _position_examples(
                    tf, rng, words, sentences, window, shrink, capacity
                )
                target, arrays = words, (*arrays, _padded(tf, tags, capacity, -1))
            else:
                # Each word's (tag, word) examples, then with dbow_words its
                # skip-gram ones, word by word in corpus order.
                context, valid = tags, tags >= 0
                if dbow_words:
                    near, inside = _windows(tf, rng, words, sentences, window, shrink)
                    context, valid = tf.concat([context, near], 1), tf.concat([valid, inside], 1)
                target = tf.boolean_mask(tf.broadcast_to(words[:, None], tf.shape(context)), valid)
                examples = (target, tf.boolean_mask(context, valid))
            buckets = _bucketed_batches(
                tf, rng, examples, target, alpha_start, alpha_end, batch, lengths, depths, local
            )
            return buckets, arrays, tf.size(words)

        return pairs

    @classmethod
    def _settings(cls) -> tuple[str, ...]:
        return _SETTINGS

    def _restore_gensim(self, saved) -> None:
        super()._restore_gensim(saved)
        tags = getattr(saved, "dv", None) or getattr(saved, "docvecs", None)
        if tags is None:
            raise ValueError("The gensim Doc2Vec holds no document vectors (dv).")
        self.dv = gensim_files.keyed_vectors(tags, KeyedVectors)

    # ------------------------------------------------------------------ inference

    def infer_vector(
        self,
        doc_words: Sequence[str],
        alpha: float | None = None,
        min_alpha: float | None = None,
        epochs: int | None = None,
        seed: int | None = None,
    ) -> np.ndarray:
        """A vector for a new document, trained against the frozen model (gensim's).

        The vector starts random and is trained for `epochs` passes over
        `doc_words` (PV-DM or PV-DBOW, as the model was trained), the
        learning rate falling linearly per pass from `alpha` to `min_alpha`;
        words and output vectors do not change. Unknown words are skipped.

        Args:
            doc_words: list of string tokens.
            alpha, min_alpha, epochs: default to the model's.
            seed: int or None. Seeds the start vector and the random draws;
                None derives it from the model's seed and the words, so the
                same words give the same vector (gensim's differ per call).

        Returns:
            float32 array `(vector_size,)`.
        """
        if self.dv is None or self._output_vectors is None:
            raise ValueError("Train the model (build_vocab, train) before infer_vector().")
        if isinstance(doc_words, str):
            raise ValueError(
                f"doc_words is a string ({doc_words[:40]!r}); pass a list of tokens, "
                "e.g. `text.split()`."
            )
        doc_words = list(doc_words)
        _raise_for_non_string_token([doc_words])
        for name, value in (("alpha", alpha), ("min_alpha", min_alpha)):
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, float, np.number))
                or not 0 <= value < np.inf
            ):
                raise ValueError(
                    f"infer_vector: {name} must be a finite number >= 0, got {value!r}."
                )
        if epochs is not None and (
            isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0
        ):
            raise ValueError(f"infer_vector: epochs must be an int >= 0, got {epochs!r}.")
        alpha = self.alpha if alpha is None else float(alpha)
        min_alpha = self.min_alpha if min_alpha is None else float(min_alpha)
        epochs = self.epochs if epochs is None else int(epochs)
        if seed is None:
            seed = [self.seed, fnv1a_32(" ".join(doc_words).encode("utf-8"))]
        rng = np.random.default_rng(seed)
        dim = self.vector_size
        vector = ((rng.random(dim, np.float32) - 0.5) / dim).astype(np.float32)
        index = self.wv.key_to_index
        ids = np.array([index[w] for w in doc_words if w in index], np.int64)
        if len(ids) == 0 or epochs < 1:
            return vector
        rates = alpha - (alpha - min_alpha) * np.arange(epochs) / max(epochs - 1, 1)
        per_call = max(1, 16 * _INFER_ROWS // len(ids))  # epochs drawn together
        with _full_collections_paused():  # a loop of calls would meet them often
            for first in range(0, epochs, per_call):
                examples = self._infer_examples(ids, rng, rates[first : first + per_call])
                vector = self._infer_run(vector, examples)
        return vector

    def _infer_examples(self, ids: np.ndarray, rng: np.random.Generator, rates: np.ndarray):
        """Inference passes (one per rate) as small index arrays, one row per kept word.

        Each pass subsamples and draws windows and noise words anew; windows
        stay inside their pass, as in gensim's epochs. Returns `(output_ids,
        labels, rates, context_ids, context_weights, scale_in, scale_out)`:
        rows of the stacked output table (`syn1` nodes, then `syn1neg`
        rows) with the label each is trained towards and its rate (0 where
        masked), and the context word rows the PV-DM logits add. The
        vectors themselves are gathered inside the XLA loop.
        """
        flat = np.tile(ids, len(rates))
        keep = rng.random(len(flat)) < self._keep_probability[flat]
        words = flat[keep]
        passes = np.repeat(np.arange(len(rates)), len(ids))[keep]
        n = len(words)
        output_ids, labels, mask = [], [], []
        if self.hs:  # the word's path in the Huffman tree, each node towards 1 - code
            points, tree_labels, tree_mask = self._tree_arrays()
            output_ids.append(points[words])
            labels.append(tree_labels[words])
            mask.append(tree_mask[words] > 0)
        if self.negative:  # the word against `negative` noise words
            negatives = self._noise(rng, (n, self.negative))
            rows = np.concatenate([words[:, None], negatives], 1) + len(self._hs_vectors) * self.hs
            output_ids.append(rows)
            labels.append(np.tile(np.float32([1.0] + [0.0] * self.negative), (n, 1)))
            mask.append(np.concatenate([np.ones((n, 1), bool), negatives != words[:, None]], 1))
        output_ids = np.concatenate(output_ids, axis=1).astype(np.int32)
        labels, mask = np.concatenate(labels, axis=1), np.concatenate(mask, axis=1)
        rates = np.where(mask, rates[passes][:, None], 0.0).astype(np.float32)
        ones = np.ones(n, np.float32)
        if not self.dm:
            zeros = np.zeros((n, 1), np.int32)
            return output_ids, labels, rates, zeros, zeros.astype(np.float32), ones, ones
        window = self.window
        offsets = np.array([d for d in range(-window, window + 1) if d != 0])
        where = np.arange(n)[:, None] + offsets[None, :]
        clipped = np.clip(where, 0, max(n - 1, 0))
        inside = (where >= 0) & (where < n) & (passes[clipped] == passes[:, None])
        if self.dm_concat:
            # The new vector fills the one tag slot; the full window's word slots
            # (null-padded) give a fixed part of every logit.
            context = np.where(inside, words[clipped], self.wv.get_index(NULL_WORD))
            if self.dm_tag_count != 1:  # gensim trains nothing then: one tag slot != dm_tag_count
                warnings.warn(
                    f"infer_vector with dm_concat=1 fills one tag slot, but dm_tag_count="
                    f"{self.dm_tag_count}: as in gensim, the vector is not trained.",
                    stacklevel=3,
                )
                rates = np.zeros_like(rates)
            weights = np.ones(context.shape, np.float32)
            return output_ids, labels, rates, context.astype(np.int32), weights, ones, ones
        reduced = window - rng.integers(0, window, n) if self.shrink_windows else np.full(n, window)  # fmt: skip
        valid = inside & (np.abs(offsets)[None, :] <= reduced[:, None])
        inverse = (1.0 / (1.0 + valid.sum(axis=1))).astype(np.float32)
        scale_in = inverse if self.cbow_mean else ones
        scale_out = ones if self.cbow_mean else inverse
        context = words[clipped].astype(np.int32)
        return output_ids, labels, rates, context, valid.astype(np.float32), scale_in, scale_out

    def _tree_arrays(self):
        """The Huffman tree as `(points, labels, mask)` arrays, built once per vocabulary."""
        if getattr(self, "_tree_cache", (None,))[0] is not self.wv.expandos.get("code"):
            codes = self.wv.expandos["code"]
            self._tree_cache = (codes, _padded_tree(codes, self.wv.expandos["point"]))
        return self._tree_cache[1]

    def _noise(self, rng: np.random.Generator, shape) -> np.ndarray:
        """Noise words from the alias table `build_vocab` made (counts ** ns_exponent)."""
        column = rng.integers(0, len(self._noise_accept), shape)
        coin = rng.random(shape, np.float32)
        return np.where(coin < self._noise_accept[column], column, self._noise_alias[column])

    def _infer_run(self, vector: np.ndarray, examples) -> np.ndarray:
        """Word-by-word SGD on `vector` over `examples`, in XLA calls of `_INFER_ROWS` rows.

        The last block is padded (the loop stops before the padding), so one
        compiled size serves documents of every length; the examples travel as one int and
        one float array, and the frozen output and word vectors live in
        variables made once per trained model.
        """
        if self._infer_step is None:
            import tensorflow as tf

            outputs = [self._hs_vectors] * self.hs + [self._output_vectors] * bool(self.negative)
            table = tf.Variable(np.concatenate(outputs), trainable=False)
            words = tf.Variable(self.wv.vectors, trainable=False)
            mode = "concat" if self.dm and self.dm_concat else "dm" if self.dm else "dbow"
            self._infer_step = _sequential_sgd(
                table, words, mode, self.vector_size, examples[0].shape[1], examples[3].shape[1]
            )
        rows = len(examples[0])
        width = examples[0].shape[1] + examples[3].shape[1]
        ids = np.zeros((-(-rows // _INFER_ROWS) * _INFER_ROWS, width), np.int32)
        np.concatenate([examples[0], examples[3]], axis=1, out=ids[:rows])
        floats = np.zeros((len(ids), 2 * examples[1].shape[1] + examples[4].shape[1] + 2), np.float32)  # fmt: skip
        np.concatenate(
            [examples[1], examples[2], examples[4], examples[5][:, None], examples[6][:, None]],
            axis=1,
            out=floats[:rows],
        )
        for start in range(0, rows, _INFER_ROWS):  # the loop stops before the padding
            block = slice(start, start + _INFER_ROWS)
            count = np.int32(min(_INFER_ROWS, rows - start))
            vector = self._infer_step(vector, ids[block], floats[block], count).numpy()
        return vector

    # ------------------------------------------------------------------ files

    def save(self, fname: str | os.PathLike, *args, **kwargs) -> None:
        """Saves the model to one `.npz` file (no pickle); `load` continues from it.

        gensim's extra arguments are accepted and have no effect.
        """
        wv_meta, arrays = self._words_archive()
        dv_meta, dv_arrays = self.dv._archive(prefix="dv.")
        arrays.update(dv_arrays)
        meta = {
            "class": "Doc2Vec",
            "settings": {name: getattr(self, name) for name in _SETTINGS},
            "wv": wv_meta,
            "dv": dv_meta,
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
    ) -> Doc2Vec:
        """Loads what `save` wrote, or (with `allow_pickle=True`) a gensim Doc2Vec's `save()`.

        As `Word2Vec.load`: gensim's pickles are refused unless
        `allow_pickle=True`, then read through a restricted unpickler (only
        gensim's classes and numpy arrays) and converted, tag vectors in
        `dv`, ready for `infer_vector` and `dv.most_similar`.

        Examples:

        >>> import tempfile
        >>> import gensim
        >>> scratch = tempfile.TemporaryDirectory()
        >>> docs = [gensim.models.doc2vec.TaggedDocument(["cats", "purr", "and", "meow"], [0]),
        ...         gensim.models.doc2vec.TaggedDocument(["dogs", "bark", "and", "growl"], [1])] * 20
        >>> gensim_model = gensim.models.Doc2Vec(docs, vector_size=8, min_count=1, workers=1)
        >>> gensim_model.save(f"{scratch.name}/d2v.model")  # in gensim
        >>> model = Doc2Vec.load(f"{scratch.name}/d2v.model", allow_pickle=True)
        >>> bool((model.dv[1] == gensim_model.dv[1]).all())
        True
        >>> [tag for tag, _ in model.dv.most_similar([model.dv[0]])]
        [0, 1]
        >>> scratch.cleanup()

        Then `model.dv.most_similar([model.infer_vector(["human", "interface"])])`
        ranks the documents for new text (inference's first call compiles
        for seconds, so it is not run here).
        """
        if allow_pickle and gensim_files.is_pickle(fname):
            return cls._from_gensim(gensim_files.read(fname, mmap), fname)
        meta, arrays = vector_files.load_archive(fname, "Doc2Vec")
        model = cls(**meta["settings"])
        model.wv = KeyedVectors._from_archive(meta["wv"], arrays, prefix="wv.")
        model.dv = KeyedVectors._from_archive(meta["dv"], arrays, prefix="dv.")
        model._restore_outputs(arrays)
        for name, value in meta["state"].items():
            setattr(model, name, value)
        return model


_MODEL_CLASSES["Doc2Vec"] = Doc2Vec


def _sequential_sgd(table, words, mode: str, dim: int, output_width: int, context_width: int):
    """XLA: a vector trained word by word (gensim's order) against frozen outputs.

    Each loop step takes `_INFER_GROUP` consecutive words, their gradients
    taken at the same vector and added together: one step per word costs
    more in loop overhead than the arithmetic of a word (a few dot products),
    and the vector's updates are small, so a group of words barely differs
    from word-by-word SGD.

    `table` holds the output vectors (tree nodes, then negative-sampling
    rows), `words` the word vectors; `mode` is `"dbow"` (the vector alone
    predicts the word), `"dm"` (the vector plus the window's words, mean or
    sum by `scale_in` / `scale_out`) or `"concat"` (the vector in the first
    slot of the concatenated input). Rows from `count` on are padding: the
    loop stops before them.
    """
    import tensorflow as tf

    id_width = output_width + context_width
    float_width = 2 * output_width + context_width + 2

    def run(vector, ids, floats, count):
        # Read the frozen vectors once, outside the loop (not one variable read a step).
        outputs_table, word_vectors = tf.identity(table), tf.identity(words)
        # ids: output rows | context rows; floats: labels | rates | context weights |
        # scale_in | scale_out. (rows, ...) -> (rows / group, group, ...).
        groups = [-1, _INFER_GROUP]
        k, c = output_width, ids.shape[1] - output_width
        output_ids = tf.reshape(ids[:, :k], groups + [k])
        context_ids = tf.reshape(ids[:, k:], groups + [c])
        labels = tf.reshape(floats[:, :k], groups + [k])
        rates = tf.reshape(floats[:, k : 2 * k], groups + [k])
        context_weights = tf.reshape(floats[:, 2 * k : 2 * k + c], groups + [c])
        scale_in = tf.reshape(floats[:, -2], groups)
        scale_out = tf.reshape(floats[:, -1], groups)

        def body(i, v):
            u = tf.gather(outputs_table, output_ids[i])  # (group, outputs per word, layer1)
            if mode == "dbow":
                logits = tf.einsum("gkd,d->gk", u, v)
            else:
                context = tf.gather(word_vectors, context_ids[i]) * context_weights[i][:, :, None]
                if mode == "concat":
                    fixed = tf.einsum("gkd,gd->gk", u[:, :, dim:], tf.reshape(context, [_INFER_GROUP, -1]))  # fmt: skip
                    u = u[:, :, :dim]
                else:
                    fixed = tf.einsum("gkd,gd->gk", u, tf.reduce_sum(context, axis=1))
                logits = scale_in[i][:, None] * (tf.einsum("gkd,d->gk", u, v) + fixed)
            g = (labels[i] - tf.sigmoid(logits)) * rates[i] * scale_out[i][:, None]
            return i + 1, v + tf.einsum("gk,gkd->d", g, u)

        steps = (count + _INFER_GROUP - 1) // _INFER_GROUP  # the groups with real rows
        _, vector = tf.while_loop(lambda i, v: i < steps, body, (tf.constant(0), vector))
        return vector

    # Called through its concrete function: a `tf.function` call spends longer
    # matching its arguments to a trace than the SGD of a short document takes.
    return tf.function(run, jit_compile=True, autograph=False).get_concrete_function(
        tf.TensorSpec([dim], tf.float32),
        tf.TensorSpec([_INFER_ROWS, id_width], tf.int32),
        tf.TensorSpec([_INFER_ROWS, float_width], tf.float32),
        tf.TensorSpec([], tf.int32),
    )


def _short(value) -> str:
    text = repr(value)
    return f"{text[:60]}..." if len(text) > 60 else text
