"""Sequence taggers: the notes' BiLSTM tagger, plus character features and a CRF.

`build_tagger(vocab_size, num_tags)` with no other argument is the notes'
named-entity tagger layer for layer: `Embedding(mask_zero=True) ->
Bidirectional(LSTM(return_sequences=True)) -> Dense(num_tags, softmax)`
(the bidirectional part comes from `keras_recipes.rnn.build_bidirectional`).
The options add what taggers on real text use (Lample et al. 2016, Ma & Hovy
2016):

- `char_encoder="cnn"` or `"lstm"`: a `CharacterEncoder` vector per word,
  concatenated to its word embedding (the model then takes
  `{"words": (batch, time), "chars": (batch, time, chars_per_word)}`);
- `dropout`: on the word representations and on the BiLSTM's outputs;
- `crf=True`: a `CRF` output layer instead of the softmax; the model is a
  `CRFTagger`, trained on the CRF's negative log-likelihood, whose
  `predict` returns Viterbi tags.

Word id `0` pads everywhere: it is masked from the embedding on, so padding
never counts in the loss, and taggers' predictions there are meaningless
(the CRF outputs `0`).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_recipes._ids import check_ids
from keras_recipes.layers.char_encoder import CHAR_ENCODERS, CharacterEncoder
from keras_recipes.layers.crf import CRF
from keras_recipes.rnn import build_bidirectional


def _word_ids(inputs):
    return inputs["words"] if isinstance(inputs, dict) else inputs


@keras.saving.register_keras_serializable(package="keras_recipes")
class CRFTagger(keras.Model):
    """A tagger whose scores feed a CRF: trained on log-likelihood, decoded by Viterbi.

    Wraps a `backbone` model that maps the inputs to per-word tag scores
    `(batch, time, num_tags)` (no softmax). `fit` and `evaluate` minimize the
    mean negative log-likelihood of the gold tag sequences (no `loss` to
    pass to `compile`); `predict` returns the Viterbi tags, int32
    `(batch, time)`; calling the model returns the scores. Word id `0`
    (in `inputs` or `inputs["words"]`) is padding.

    Args:
        backbone: `keras.Model`, inputs to scores.
        **kwargs: base `keras.Model` arguments.

    Examples:

    >>> import numpy as np
    >>> tagger = build_tagger(vocab_size=20, num_tags=3, embed_dim=8, units=8, crf=True)
    >>> word_ids = np.array([[1, 2, 3, 0], [4, 5, 0, 0]], "int32")  # 0 pads
    >>> scores = tagger(word_ids)
    >>> tuple(scores.shape)  # (batch, time, num_tags)
    (2, 4, 3)
    >>> tags, _ = tagger.crf.decode(scores, tagger.padding_mask(word_ids))  # Viterbi
    >>> np.asarray(tags)[1, 2:].tolist()  # padding is tagged 0
    [0, 0]

    Train and tag with `tagger.compile(optimizer="adam")`,
    `tagger.fit(word_ids, tag_ids, epochs=5)` and `tagger.predict(word_ids)`,
    which returns the Viterbi tag ids `(batch, time)`.
    """

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.crf = CRF(backbone.output_shape[-1], name="crf")
        self.crf.build(backbone.output_shape)
        self.built = True  # every weight exists: the backbone is built, and the CRF just was

    def call(self, inputs, training=None):
        return self.backbone(inputs, training=training)

    def _check(self, x=None, y=None, who="CRFTagger"):
        """Word ids in `[0, vocab)` and tag ids in `[0, num_tags)`, for concrete arrays."""
        if x is not None:
            embedding = next(
                (layer for layer in self.backbone.layers if layer.name == "word_embedding"), None
            )
            if embedding is not None:
                check_ids(_word_ids(x), embedding.input_dim, "word id", who)
        if y is not None:
            check_ids(y, self.crf.num_tags, "tag id", who)

    def __call__(self, inputs, *args, **kwargs):
        self._check(inputs, who="CRFTagger")
        return super().__call__(inputs, *args, **kwargs)

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check(x, y, who="CRFTagger.fit")
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check(x, y, who="CRFTagger.evaluate")
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._check(x, who="CRFTagger.predict")
        return super().predict(x, *args, **kwargs)

    def padding_mask(self, inputs):
        """`True` at real words: word id not `0`."""
        return ops.not_equal(_word_ids(inputs), 0)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        log_likelihood = self.crf.log_likelihood(y_pred, y, self.padding_mask(x))
        if sample_weight is not None:
            log_likelihood = log_likelihood * ops.cast(sample_weight, log_likelihood.dtype)
        loss = -ops.mean(log_likelihood)
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        tags, _ = self.crf.decode(self(x, training=False), self.padding_mask(x))
        return tags

    def get_config(self):
        config = super().get_config()
        config["backbone"] = keras.saving.serialize_keras_object(self.backbone)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def build_tagger(
    vocab_size: int,
    num_tags: int,
    embed_dim: int = 64,
    units: int = 64,
    merge_mode: str = "concat",
    cell: str = "lstm",
    char_vocab_size: int | None = None,
    char_encoder: str | None = None,
    char_dim: int = 30,
    char_units: int = 50,
    dropout: float = 0.0,
    crf: bool = False,
    name: str | None = None,
) -> keras.Model:
    """A bidirectional-RNN sequence tagger; the defaults are the notes' NER tagger.

    Args:
        vocab_size: int. Word ids the embedding accepts (id `0` pads).
        num_tags: int. Tags per word (tag ids `0 .. num_tags - 1`).
        embed_dim: int. Word embedding width. Defaults to `64`.
        units: int. Recurrent units per direction. Defaults to `64`.
        merge_mode: str. How the directions merge: `"concat"`, `"sum"`,
            `"mul"` or `"ave"`. Defaults to `"concat"`.
        cell: str. `"simple"`, `"lstm"` or `"gru"`. Defaults to `"lstm"`.
        char_vocab_size: int or None. Character ids (id `0` pads); needed
            with `char_encoder`.
        char_encoder: `None`, `"cnn"` or `"lstm"`. Adds a `CharacterEncoder`;
            the inputs become `{"words", "chars"}`. Defaults to `None`.
        char_dim: int. Character embedding width. Defaults to `30`.
        char_units: int. CNN filters or char-LSTM units per direction.
        dropout: float. Dropout on word representations and BiLSTM outputs
            (and on character embeddings). Defaults to `0.0`.
        crf: bool. A `CRF` output layer (a `CRFTagger`) instead of the softmax.
        name: str or None. Model name.

    Returns:
        `keras.Model`: softmax taggers output tag probabilities
        `(batch, time, num_tags)`; a `CRFTagger` predicts tag ids.

    Examples:

    >>> tagger = build_tagger(vocab_size=100, num_tags=5, embed_dim=8, units=4)
    >>> [type(layer).__name__ for layer in tagger.layers]
    ['Embedding', 'Bidirectional', 'Dense']
    """
    if char_encoder is not None and char_encoder not in CHAR_ENCODERS:
        raise ValueError(
            f"char_encoder must be None or one of {CHAR_ENCODERS}, got {char_encoder!r}."
        )
    if char_encoder is not None and not char_vocab_size:
        raise ValueError(
            f'char_encoder="{char_encoder}" needs char_vocab_size, the number of character ids.'
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
    char_width = {None: 0, "cnn": char_units, "lstm": 2 * char_units}[char_encoder]
    bidirectional = build_bidirectional(
        cell,
        units,
        merge_mode,
        input_shape=(None, embed_dim + char_width),
        return_sequences=True,
        num_outputs=num_tags,
        output_activation=None if crf else "softmax",
    )
    recurrent, head = bidirectional.layers  # Bidirectional(cell), Dense(num_tags)
    name = name or f"bi{cell}_{merge_mode}" + (f"_char{char_encoder}" if char_encoder else "") + (
        "_crf" if crf else ""
    )
    embedding = keras.layers.Embedding(vocab_size, embed_dim, mask_zero=True, name="word_embedding")
    if char_encoder is None and dropout == 0.0 and not crf:
        # the notes' tagger, as one Sequential so the padding mask reaches the loss
        return keras.Sequential(
            [keras.Input(shape=(None,), dtype="int32"), embedding, recurrent, head], name=name
        )

    words = keras.Input(shape=(None,), dtype="int32", name="words")
    inputs = words
    x = embedding(words)
    if char_encoder is not None:
        chars = keras.Input(shape=(None, None), dtype="int32", name="chars")
        inputs = {"words": words, "chars": chars}
        encoded = CharacterEncoder(
            char_vocab_size,
            char_encoder,
            char_dim,
            char_units,
            dropout=dropout,
            name="char_encoder",
        )(chars)
        x = keras.layers.Concatenate(name="word_and_chars")([x, encoded])
    if dropout:
        x = keras.layers.Dropout(dropout, name="input_dropout")(x)
    x = recurrent(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="output_dropout")(x)
    scores = head(x)
    if not crf:
        return keras.Model(inputs, scores, name=name)
    backbone = keras.Model(inputs, scores, name=f"{name}_scores")
    return CRFTagger(backbone, name=name)
