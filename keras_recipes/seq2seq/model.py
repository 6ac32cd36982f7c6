"""The notes' encoder-decoder: an RNN seq2seq with attention, greedy and beam decoding.

Data flows top to bottom as in this file:

1. `SequenceTokenizer`: text -> ids, character or word level, with the
   `<pad>`, `<unk>`, `<start>`, `<end>` markers.
2. `BahdanauAttention` (additive) and `LuongAttention` (multiplicative):
   how a decoder step scores every encoder step.
3. `Seq2Seq`: the encoder RNN (LSTM or GRU, optionally bidirectional) reads
   the source; its final state initializes the decoder RNN; attention lets each
   decoder step look at every encoder step. Trained with teacher forcing on
   cross-entropy averaged per target token, padding masked out.
4. Decoding until `<end>`: `greedy_search`, `beam_search` (beam width,
   GNMT length penalty), and `translate(["..."])`, strings in and out, with
   the attention weights for plotting.
5. `corpus_bleu`: corpus-level BLEU-4 (Papineni et al., 2002).

The tokenizers live inside the model, so one `.keras` file holds everything:
`model.save("dates.keras")`, then `keras.models.load_model("dates.keras")`
(after `import keras_recipes.seq2seq`, which registers the classes).

Serving: `model.translation_module()` returns a `tf.Module` whose `translate`
`tf.function` maps a string tensor `(batch,)` to a string tensor `(batch,)`
with TensorFlow ops only (tokenization by lookup table, a fixed-length
greedy loop); it saves as a SavedModel with a `translate` signature:

```python
module = model.translation_module()
module.translate(tf.constant(["9 May 2018"]))          # [b'2018-05-09']
tf.saved_model.save(module, path, signatures={"translate": module.translate})
tf.saved_model.load(path).signatures["translate"](texts=tf.constant(["9 May 2018"]))
```
"""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Iterable, Sequence

import keras
import numpy as np
from keras import ops

from keras_recipes.rnn import get_cell

PAD, UNK, START, END = "<pad>", "<unk>", "<start>", "<end>"
SPECIAL_TOKENS = (PAD, UNK, START, END)
PAD_ID, UNK_ID, START_ID, END_ID = range(4)
LEVELS = ("char", "word")
ATTENTIONS = ("bahdanau", "luong", "none")
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
    ```python
    tok = SequenceTokenizer.fit(["2018-05-09"], level="char")
    tok.encode("2018", markers=True)  # [2, ..., 3]
    tok.decode(tok.encode("2018"))    # "2018"
    ```
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


def _masked_softmax(scores, mask):
    """Softmax over the last axis of `scores` (B, Tq, Tk), ignoring keys where `mask` (B, Tk) is False."""
    if mask is not None:
        keep = ops.cast(ops.expand_dims(mask, 1), scores.dtype)
        scores = scores + (1.0 - keep) * -1e9
    return ops.softmax(scores, axis=-1)


@keras.saving.register_keras_serializable(package="keras_recipes")
class BahdanauAttention(keras.layers.Layer):
    """Additive attention: `score(q, k) = v^T tanh(W1 q + W2 k)`.

    Bahdanau, Cho & Bengio, "Neural Machine Translation by Jointly Learning
    to Align and Translate" (https://arxiv.org/abs/1409.0473).

    Args:
        units: int. Width of the hidden layer inside the score.

    Call arguments:
        query: float tensor `(batch, query_steps, query_dim)`, decoder states.
        keys: float tensor `(batch, key_steps, key_dim)`, encoder outputs
            (also the values).
        mask: bool tensor `(batch, key_steps)`, False at source padding.

    Returns:
        `(context, weights)`: `(batch, query_steps, key_dim)` and
        `(batch, query_steps, key_steps)`, each weight row summing to 1.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # the mask comes in as `mask`; no output mask
        self.units = units
        self.w1 = keras.layers.Dense(units, use_bias=False, name="w1")
        self.w2 = keras.layers.Dense(units, use_bias=False, name="w2")
        self.v = keras.layers.Dense(1, use_bias=False, name="v")

    def call(self, query, keys, mask=None):
        hidden = ops.tanh(ops.expand_dims(self.w1(query), 2) + ops.expand_dims(self.w2(keys), 1))
        weights = _masked_softmax(ops.squeeze(self.v(hidden), -1), mask)
        return ops.matmul(weights, keys), weights

    def compute_mask(self, query, keys, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="keras_recipes")
class LuongAttention(keras.layers.Layer):
    """Multiplicative ("general") attention: `score(q, k) = q^T W k`.

    Luong, Pham & Manning, "Effective Approaches to Attention-based Neural
    Machine Translation" (https://arxiv.org/abs/1508.04025).

    Args:
        key_dim: int. Width of the keys (the encoder outputs).

    Call arguments and returns as in `BahdanauAttention`.
    """

    def __init__(self, key_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # the mask comes in as `mask`; no output mask
        self.key_dim = key_dim
        self.wa = keras.layers.Dense(key_dim, use_bias=False, name="wa")

    def call(self, query, keys, mask=None):
        scores = ops.matmul(self.wa(query), ops.transpose(keys, (0, 2, 1)))
        weights = _masked_softmax(scores, mask)
        return ops.matmul(weights, keys), weights

    def compute_mask(self, query, keys, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "key_dim": self.key_dim}


def masked_token_cross_entropy(target_ids, logits):
    """Cross-entropy averaged over the target tokens that are not `<pad>`.

    Every real token of the batch weighs the same, however the batch is
    padded: extra padding changes neither the sum nor the count.
    """
    mask = ops.cast(ops.not_equal(target_ids, PAD_ID), "float32")
    per_token = keras.losses.sparse_categorical_crossentropy(target_ids, logits, from_logits=True)
    return ops.sum(per_token * mask) / ops.maximum(ops.sum(mask), 1.0)


@keras.saving.register_keras_serializable(package="keras_recipes")
class Seq2Seq(keras.Model):
    """An RNN encoder-decoder with attention that translates strings to strings.

    The encoder (an LSTM or GRU, optionally bidirectional) reads the source
    tokens; its final state becomes the decoder's initial state (both
    directions concatenated when bidirectional, so the decoder then has
    `2 * units`). At each decoder step the attention scores every encoder
    output against the decoder output, and `tanh(W [decoder; context])`
    (Luong's attentional state) feeds the softmax over the target vocabulary.
    With `attention="none"` the final encoder state is the only context.

    Training is teacher forcing: the model reads `(source_ids, target_in)`,
    `target_in = <start> y1 .. yn`, and predicts `target_out = y1 .. yn <end>`;
    the loss is cross-entropy per real target token (`compute_loss` masks
    `<pad>`). Build one from text pairs with `Seq2Seq.from_pairs`, turn pairs
    into arrays with `prepare`, then `compile` and `fit` as any Keras model.

    Args:
        source_tokenizer: `SequenceTokenizer` (or its config) for the source.
        target_tokenizer: `SequenceTokenizer` (or its config) for the target.
        cell: str. `"lstm"` or `"gru"`. Defaults to `"lstm"`.
        units: int. Encoder units (per direction). Defaults to `64`.
        embed_dim: int. Token embedding width. Defaults to `32`.
        attention: str. `"bahdanau"`, `"luong"` or `"none"`.
        bidirectional: bool. Bidirectional encoder. Defaults to `False`.
        dropout: float. Dropout on the decoder's embeddings and attentional
            state during training. Defaults to `0.0`.
        max_source_length: int. Longest source, in tokens, the model accepts.
        max_target_length: int. Most tokens decoding generates (`<end>` included).

    Examples:
    ```python
    model = Seq2Seq.from_pairs(pairs, level="char", attention="bahdanau")
    x, y = model.prepare(pairs)
    model.compile(optimizer="adam")
    model.fit(x, y, epochs=10)
    model.translate(["9 May 2018"], beam_width=4)   # ["2018-05-09"]
    texts, attention = model.translate(["9 May 2018"], return_attention=True)
    ```
    """

    def __init__(
        self,
        source_tokenizer: SequenceTokenizer | dict,
        target_tokenizer: SequenceTokenizer | dict,
        cell: str = "lstm",
        units: int = 64,
        embed_dim: int = 32,
        attention: str = "bahdanau",
        bidirectional: bool = False,
        dropout: float = 0.0,
        max_source_length: int = 64,
        max_target_length: int = 64,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(source_tokenizer, dict):
            source_tokenizer = SequenceTokenizer.from_config(source_tokenizer)
        if isinstance(target_tokenizer, dict):
            target_tokenizer = SequenceTokenizer.from_config(target_tokenizer)
        if str(cell).lower() not in ("lstm", "gru"):
            raise ValueError(f"Unknown cell {cell!r} for Seq2Seq. Use 'lstm' or 'gru'.")
        if attention not in ATTENTIONS:
            raise ValueError(f"Unknown attention {attention!r}. Use one of {list(ATTENTIONS)}.")
        for name, value in [
            ("units", units),
            ("embed_dim", embed_dim),
            ("max_source_length", max_source_length),
            ("max_target_length", max_target_length),
        ]:
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.cell = str(cell).lower()
        self.units = units
        self.embed_dim = embed_dim
        self.attention_kind = attention
        self.bidirectional = bool(bidirectional)
        self.dropout_rate = float(dropout)
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length

        rnn_class = get_cell(self.cell)
        decoder_units = units * (2 if self.bidirectional else 1)
        self.source_embedding = keras.layers.Embedding(len(source_tokenizer), embed_dim)
        encoder_rnn = rnn_class(units, return_sequences=True, return_state=True)
        self.encoder_rnn = (
            keras.layers.Bidirectional(encoder_rnn) if self.bidirectional else encoder_rnn
        )
        self.target_embedding = keras.layers.Embedding(len(target_tokenizer), embed_dim)
        self.decoder_rnn = rnn_class(decoder_units, return_sequences=True, return_state=True)
        if attention == "bahdanau":
            self.attention = BahdanauAttention(decoder_units)
        elif attention == "luong":
            self.attention = LuongAttention(decoder_units)
        else:
            self.attention = None
        if self.attention is not None:
            self.attentional_state = keras.layers.Dense(decoder_units, activation="tanh")
        self.dropout = keras.layers.Dropout(self.dropout_rate)
        self.output_projection = keras.layers.Dense(len(target_tokenizer))
        self.token_accuracy = keras.metrics.Mean(name="token_accuracy")
        # Create every variable now, so weights load straight into a fresh instance.
        self.call((np.ones((1, 2), "int32"), np.ones((1, 2), "int32")))
        self.built = True

    # --- the forward pass -------------------------------------------------

    def encode(self, source_ids, training=False):
        """Source ids `(B, S)` -> `(encoder_outputs, decoder_initial_states, source_mask)`."""
        source_mask = ops.not_equal(source_ids, PAD_ID)
        x = self.source_embedding(source_ids)
        outputs, *states = self.encoder_rnn(x, mask=source_mask, training=training)
        if self.bidirectional:  # [forward states..., backward states...] -> concatenated
            half = len(states) // 2
            states = [
                ops.concatenate([f, b], axis=-1)
                for f, b in zip(states[:half], states[half:], strict=True)
            ]
        return outputs, states, source_mask

    def decode(self, target_in, encoder_outputs, states, source_mask, training=False):
        """Decoder ids `(B, T)` -> `(logits (B, T, V), states, attention (B, T, S) or None)`."""
        y = self.dropout(self.target_embedding(target_in), training=training)
        y, *states = self.decoder_rnn(y, initial_state=states, training=training)
        weights = None
        if self.attention is not None:
            context, weights = self.attention(y, encoder_outputs, mask=source_mask)
            y = self.attentional_state(ops.concatenate([y, context], axis=-1))
        y = self.dropout(y, training=training)
        return self.output_projection(y), states, weights

    def call(self, inputs, training=None):
        source_ids, target_in = inputs
        encoder_outputs, states, source_mask = self.encode(source_ids, training=training)
        logits, _, _ = self.decode(target_in, encoder_outputs, states, source_mask, training)
        return logits

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = masked_token_cross_entropy(y, y_pred)
        mask = ops.cast(ops.not_equal(y, PAD_ID), "float32")
        hits = ops.cast(ops.equal(ops.argmax(y_pred, axis=-1), ops.cast(y, "int32")), "float32")
        self.token_accuracy.update_state(ops.sum(hits * mask) / ops.maximum(ops.sum(mask), 1.0))
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss

    # --- text in, arrays out ----------------------------------------------

    @classmethod
    def from_pairs(
        cls,
        pairs: Sequence[tuple[str, str]],
        level: str = "char",
        lowercase: bool = False,
        max_tokens: int | None = None,
        **kwargs,
    ) -> Seq2Seq:
        """A model whose tokenizers are fitted on `(source, target)` pairs.

        The maximum lengths default to the longest source and target in
        `pairs` (the target plus one, for `<end>`); other keyword arguments go
        to `Seq2Seq`.
        """
        if not pairs:
            raise ValueError("No (source, target) pairs given: the vocabulary would be empty.")
        source = SequenceTokenizer.fit((s for s, _ in pairs), level, lowercase, max_tokens)
        target = SequenceTokenizer.fit((t for _, t in pairs), level, lowercase, max_tokens)
        kwargs.setdefault("max_source_length", max(len(source.split(s)) for s, _ in pairs) or 1)
        kwargs.setdefault("max_target_length", max(len(target.split(t)) for _, t in pairs) + 1)
        return cls(source, target, **kwargs)

    def encode_sources(self, texts: Sequence[str]) -> np.ndarray:
        """Source texts -> padded int32 ids `(batch, longest)`; too long raises ValueError."""
        return encode_sources(self.source_tokenizer, texts, self.max_source_length)

    def prepare(self, pairs: Sequence[tuple[str, str]]):
        """Teacher-forcing arrays: `((source_ids, target_in), target_out)`."""
        source_ids = self.encode_sources([s for s, _ in pairs])
        targets = [self.target_tokenizer.encode(t, markers=True) for _, t in pairs]
        return (source_ids, pad_sequences([t[:-1] for t in targets])), pad_sequences(
            [t[1:] for t in targets]
        )

    # --- decoding ---------------------------------------------------------

    def greedy_search(self, source_ids, max_length: int | None = None):
        """Most likely next token at every step, until `<end>` or `max_length`.

        Returns:
            `(ids, attention)`: int32 `(B, L)` (after `<end>` all `<pad>`) and
            float32 `(B, L, S)`, or `None` without attention.
        """
        max_length = max_length or self.max_target_length
        encoder_outputs, states, source_mask = self.encode(source_ids)
        batch = ops.shape(source_ids)[0]
        tokens = np.full((batch, 1), START_ID, "int32")
        done = np.zeros(batch, bool)
        steps, weights = [], []
        for _ in range(max_length):
            logits, states, w = self.decode(tokens, encoder_outputs, states, source_mask)
            tokens = ops.convert_to_numpy(ops.argmax(logits[:, -1], axis=-1)).astype("int32")
            tokens = np.where(done, PAD_ID, tokens)[:, None]
            steps.append(tokens[:, 0])
            if w is not None:
                weights.append(ops.convert_to_numpy(w[:, -1]))
            done |= tokens[:, 0] == END_ID
            if done.all():
                break
        attention = np.stack(weights, axis=1) if weights else None
        return np.stack(steps, axis=1), attention

    def beam_search(
        self,
        source_ids,
        beam_width: int = 4,
        length_penalty: float = 0.0,
        max_length: int | None = None,
    ):
        """Keeps the `beam_width` best partial translations at each step.

        Hypotheses are ranked by `log p / ((5 + length) / 6) ** length_penalty`
        (GNMT, https://arxiv.org/abs/1609.08144): `0.0` ranks by log
        probability alone, larger values favour longer outputs. A finished
        hypothesis (one that produced `<end>`) keeps its score. With
        `beam_width=1` this is greedy search.

        Returns:
            `(ids, attention)` of the best hypothesis per row, as in `greedy_search`.
        """
        max_length = max_length or self.max_target_length
        k = _check_beam_width(beam_width)
        encoder_outputs, states, source_mask = self.encode(source_ids)
        encoder_outputs = ops.repeat(encoder_outputs, k, axis=0)
        source_mask = ops.repeat(source_mask, k, axis=0)

        def step(tokens, states):
            logits, states, weights = self.decode(tokens, encoder_outputs, states, source_mask)
            return logits[:, -1], states, None if weights is None else weights[:, -1]

        states = [ops.repeat(s, k, axis=0) for s in states]
        return beam_search(
            step,
            states,
            int(ops.shape(source_ids)[0]),
            k,
            max_length,
            length_penalty,
            lambda states, rows: [ops.take(s, rows, axis=0) for s in states],
        )

    def translate(
        self,
        texts: Sequence[str],
        beam_width: int = 1,
        length_penalty: float = 0.0,
        max_length: int | None = None,
        batch_size: int = 256,
        return_attention: bool = False,
    ):
        """Translates source strings to target strings.

        Args:
            texts: list of str. Source texts.
            beam_width: int. `1` is greedy search, more is beam search.
            length_penalty: float. GNMT length-penalty exponent for beam search.
            max_length: int or None. Most target tokens; defaults to
                `max_target_length`.
            batch_size: int. Sources decoded together.
            return_attention: bool. Also return, per text, the attention
                weights `(output tokens incl. <end>, source tokens)`.

        Returns:
            A list of str, or `(list of str, list of np.ndarray)`.
        """
        source_ids = self.encode_sources(texts)
        outputs, maps = [], []
        for start in range(0, len(texts), batch_size):
            chunk = source_ids[start : start + batch_size]
            chunk = chunk[:, : max(1, int((chunk != PAD_ID).sum(1).max()))]
            if beam_width == 1:
                ids, attention = self.greedy_search(chunk, max_length)
            else:
                ids, attention = self.beam_search(chunk, beam_width, length_penalty, max_length)
            for row, seq in enumerate(ids):
                outputs.append(self.target_tokenizer.decode(seq))
                if return_attention:
                    ends = np.flatnonzero(seq == END_ID)
                    steps = int(ends[0]) + 1 if len(ends) else len(seq)
                    src_len = int((chunk[row] != PAD_ID).sum())
                    maps.append(None if attention is None else attention[row, :steps, :src_len])
        return (outputs, maps) if return_attention else outputs

    # --- serving ----------------------------------------------------------

    def translation_module(self, max_length: int | None = None):
        """A `tf.Module` whose `translate` maps a string tensor `(batch,)` to one `(batch,)`.

        `translate` is a `tf.function` made of TensorFlow ops only: the
        tokenizer is a lookup table (word level splits with the RE2 pattern
        `[\\pL\\pN_]+|[^\\pL\\pN_\\s]`, Python's `\\w` spelled for RE2),
        decoding is greedy for a fixed `max_length` steps, cut at `<end>`.
        Sources longer than `max_source_length` tokens are truncated. The
        module holds the model and the table, so it saves as a SavedModel
        with a `translate` signature (TensorFlow backend only):

        ```python
        module = model.translation_module()
        module.translate(tf.constant(["9 May 2018"]))   # [b"2018-05-09"]
        tf.saved_model.save(module, path, signatures={"translate": module.translate})
        ```
        """
        import tensorflow as tf

        model = self
        max_length = max_length or self.max_target_length
        source, target = self.source_tokenizer, self.target_tokenizer
        separator = "" if target.level == "char" else " "

        class Translator(tf.Module):
            def __init__(self):
                super().__init__(name="seq2seq_translator")
                self.model = model
                self.source_table = tf.lookup.StaticHashTable(
                    tf.lookup.KeyValueTensorInitializer(
                        tf.constant(source.tokens), tf.range(len(source), dtype=tf.int64)
                    ),
                    default_value=UNK_ID,
                )
                self.target_tokens = tf.constant(target.tokens)

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
            def translate(self, texts):
                if source.lowercase:
                    texts = tf.strings.lower(texts, encoding="utf-8")
                if source.level == "char":
                    pieces = tf.strings.unicode_split(texts, "UTF-8")
                else:
                    pieces = tf.strings.split(
                        tf.strings.regex_replace(texts, r"([\pL\pN_]+|[^\pL\pN_\s])", r" \1 ")
                    )
                ids = tf.cast(self.source_table.lookup(pieces), tf.int32)
                ids = ids[:, : model.max_source_length].to_tensor(PAD_ID)
                ids = tf.concat([ids, tf.zeros([tf.shape(ids)[0], 1], tf.int32)], axis=1)
                encoder_outputs, states, source_mask = model.encode(ids)
                tokens = tf.fill([tf.shape(ids)[0], 1], START_ID)
                out = []
                for _ in range(max_length):
                    logits, states, _ = model.decode(tokens, encoder_outputs, states, source_mask)
                    tokens = tf.cast(tf.argmax(logits[:, -1], axis=-1), tf.int32)[:, None]
                    out.append(tokens)
                out = tf.concat(out, axis=1)
                alive = tf.cumsum(tf.cast(tf.equal(out, END_ID), tf.int32), axis=1) == 0
                keep = alive & (out != PAD_ID) & (out != START_ID)  # as SequenceTokenizer.decode
                words = tf.ragged.boolean_mask(tf.gather(self.target_tokens, out), keep)
                return tf.strings.reduce_join(words, axis=1, separator=separator)

        return Translator()

    # --- saving -----------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "source_tokenizer": self.source_tokenizer.get_config(),
            "target_tokenizer": self.target_tokenizer.get_config(),
            "cell": self.cell,
            "units": self.units,
            "embed_dim": self.embed_dim,
            "attention": self.attention_kind,
            "bidirectional": self.bidirectional,
            "dropout": self.dropout_rate,
            "max_source_length": self.max_source_length,
            "max_target_length": self.max_target_length,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# --- evaluation -------------------------------------------------------------


def _check_beam_width(beam_width) -> int:
    if not isinstance(beam_width, int) or isinstance(beam_width, bool) or beam_width < 1:
        raise ValueError(f"`beam_width` must be a positive integer, got {beam_width!r}.")
    return beam_width


def beam_search(step, states, batch: int, beam_width: int, max_length: int, length_penalty, take):
    """Beam search over any decoder that can run one step for `batch * beam_width` rows.

    The one search behind `Seq2Seq.beam_search` and `TFLiteTranslator`.
    Hypotheses are ranked by `log p / ((5 + length) / 6) ** length_penalty`
    (GNMT); a finished one (it produced `<end>`) keeps its score and
    continues with padding.

    Args:
        step: `step(tokens (batch * k, 1) int32, states)` returns
            `(logits (batch * k, vocab), states, attention (batch * k, source)
            or None)`; the rows of source `i` are `i * k .. i * k + k - 1`.
        states: the decoder states after the encoder, already repeated per beam.
        batch, beam_width, max_length: ints.
        length_penalty: float, the GNMT exponent (0 ranks by log probability).
        take: `take(states, rows)` returns the states of `rows`, in that order.

    Returns:
        `(ids (batch, steps), attention (batch, steps, source) or None)`, the
        best hypothesis per source.
    """
    k = _check_beam_width(beam_width)
    scores = np.full((batch, k), -np.inf)
    scores[:, 0] = 0.0  # one live beam at the start, so beams do not repeat
    lengths = np.zeros((batch, k))
    done = np.zeros((batch, k), bool)
    sequences = np.zeros((batch, k, 0), "int32")
    history = None
    tokens = np.full((batch * k, 1), START_ID, "int32")

    def penalty(length):
        return ((5.0 + length) / 6.0) ** length_penalty

    for _ in range(max_length):
        logits, states, weights = step(tokens, states)
        logp = ops.convert_to_numpy(ops.log_softmax(logits, axis=-1))
        logp = logp.reshape(batch, k, -1).astype("float64")
        vocab = logp.shape[-1]
        logp[done] = -np.inf
        logp[done, PAD_ID] = 0.0  # a finished hypothesis only continues with padding
        candidates = scores[:, :, None] + logp
        new_lengths = lengths + ~done
        ranked = candidates / penalty(new_lengths)[:, :, None]
        best = np.argsort(-ranked.reshape(batch, -1), axis=1, kind="stable")[:, :k]
        parent, token = best // vocab, (best % vocab).astype("int32")
        scores = np.take_along_axis(candidates.reshape(batch, -1), best, axis=1)
        lengths = np.take_along_axis(new_lengths, parent, axis=1)
        done = np.take_along_axis(done, parent, axis=1) | (token == END_ID)
        sequences = np.concatenate(
            [np.take_along_axis(sequences, parent[:, :, None], axis=1), token[:, :, None]],
            axis=2,
        )
        states = take(states, (np.arange(batch)[:, None] * k + parent).reshape(-1))
        if weights is not None:
            weights = ops.convert_to_numpy(weights).reshape(batch, k, 1, -1)
            history = weights if history is None else np.concatenate([history, weights], axis=2)
            # rows are still the parents' here: reorder the whole history to the children
            history = np.take_along_axis(history, parent[:, :, None, None], axis=1)
        tokens = token.reshape(-1, 1)
        if done.all():
            break
    winner = np.argmax(scores / penalty(lengths), axis=1)
    ids = sequences[np.arange(batch), winner]
    attention = None if history is None else history[np.arange(batch), winner]
    return ids, attention


def _ngrams(tokens: Sequence[str], n: int) -> collections.Counter:
    return collections.Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(
    references: Sequence[Sequence[str] | Sequence[Sequence[str]]],
    hypotheses: Sequence[Sequence[str]],
    max_n: int = 4,
) -> float:
    """Corpus-level BLEU (Papineni et al., 2002), in [0, 1], no smoothing.

    Clipped n-gram counts for n = 1..`max_n` are summed over the whole corpus
    before dividing; the score is the geometric mean of the `max_n`
    precisions times the brevity penalty `exp(1 - r / c)` when the total
    hypothesis length `c` is below the total closest-reference length `r`.
    It is 0 when some n-gram order has no match at all.

    Args:
        references: per hypothesis, one token list or a list of token lists.
        hypotheses: token lists.
        max_n: int. Highest n-gram order. Defaults to `4`.

    Examples:
    ```python
    corpus_bleu([["the", "cat", "sat", "on", "the", "mat"]],
                [["the", "cat", "sat", "on", "the", "mat"]])   # 1.0
    ```
    """
    if len(references) != len(hypotheses):
        raise ValueError(
            f"{len(references)} references for {len(hypotheses)} hypotheses: give one each."
        )
    matches, totals = [0] * max_n, [0] * max_n
    hyp_length = ref_length = 0
    for refs, hyp in zip(references, hypotheses, strict=True):
        if refs and isinstance(refs[0], str):
            refs = [refs]
        hyp = list(hyp)
        hyp_length += len(hyp)
        ref_length += min((len(r) for r in refs), key=lambda n: (abs(n - len(hyp)), n))
        for n in range(1, max_n + 1):
            counts = _ngrams(hyp, n)
            most = collections.Counter()
            for ref in refs:
                most |= _ngrams(list(ref), n)
            matches[n - 1] += sum(min(c, most[g]) for g, c in counts.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    if hyp_length == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / max_n
    brevity = 1.0 if hyp_length >= ref_length else math.exp(1.0 - ref_length / hyp_length)
    return brevity * math.exp(log_precision)
