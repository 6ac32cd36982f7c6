"""`Seq2Seq`: the notes' RNN encoder-decoder with attention, trained by teacher forcing.

The encoder RNN (LSTM or GRU, optionally bidirectional) reads the source;
its final state initializes the decoder RNN; attention lets each decoder
step look at every encoder step. Training averages cross-entropy per target
token, padding masked out (`masked_token_cross_entropy`). Decoding runs
until `<end>`: `greedy_search`, `beam_search` (beam width, GNMT length
penalty) and `translate(["..."])`, strings in and out, with the attention
weights for plotting. The tokenizers live inside the model, so one `.keras`
file holds everything.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from keras_recipes.rnn import get_cell
from keras_recipes.seq2seq import serving
from keras_recipes.seq2seq.attention import BahdanauAttention, LuongAttention
from keras_recipes.seq2seq.search import beam_search, check_beam_width
from keras_recipes.seq2seq.tokenizer import (
    END_ID,
    PAD_ID,
    START_ID,
    SequenceTokenizer,
    encode_sources,
    pad_sequences,
)

ATTENTIONS = ("bahdanau", "luong", "none")


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

    >>> from keras_recipes.datasets.dates import load_dates
    >>> pairs, _ = load_dates(num_train=8, num_test=1, seed=0)
    >>> model = Seq2Seq.from_pairs(pairs, level="char", attention="bahdanau", units=8)
    >>> x, y = model.prepare(pairs)  # ((source_ids, target_in), target_out)
    >>> [ids.shape for ids in x], y.shape
    ([(8, 24), (8, 11)], (8, 11))
    >>> texts = model.translate(["9 May 2018"], max_length=3)  # untrained: any 3 tokens
    >>> len(texts)
    1

    Train with `model.compile(optimizer="adam")` then `model.fit(x, y,
    epochs=10)` (no `loss`: the model's own is the masked per-token
    cross-entropy). A trained dates model answers
    `model.translate(["9 May 2018"], beam_width=4)` with `["2018-05-09"]`;
    `texts, attention = model.translate(texts, return_attention=True)` also
    returns the attention weights.
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
        k = check_beam_width(beam_width)
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

        TensorFlow ops only (lookup-table tokenizers, greedy decoding for
        `max_length` steps, default `max_target_length`), so it saves as a
        SavedModel with a `translate` signature (TensorFlow backend only);
        details in `keras_recipes.seq2seq.serving.translation_module`.

        `module = model.translation_module()`, then
        `module.translate(tf.constant(["9 May 2018"]))` gives
        `[b"2018-05-09"]` for a trained dates model, and
        `tf.saved_model.save(module, path, signatures={"translate": module.translate})`
        writes the SavedModel.
        """
        return serving.translation_module(self, max_length)

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
