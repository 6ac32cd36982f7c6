"""A character-level word encoder: one vector per word from its characters."""

import keras
from keras import ops

CHAR_ENCODERS = ("cnn", "lstm")


@keras.saving.register_keras_serializable(package="keras_recipes")
class CharacterEncoder(keras.layers.Layer):
    """Encodes each word from its characters, with a CNN or a bidirectional LSTM.

    A word embedding knows nothing about a word it never saw in training,
    and names are exactly such words. Its characters still say a lot:
    a capital letter, "-burg", "Mc", digits. Two published encoders:

    - `"cnn"` ([Ma & Hovy 2016](https://arxiv.org/abs/1603.01354)):
      character embeddings, a `Conv1D` over each word's characters and a
      max over them, `filters` features per word.
    - `"lstm"` ([Lample et al. 2016](https://arxiv.org/abs/1603.01360)):
      a bidirectional LSTM over each word's characters; the last states of
      both directions, `2 * units` features per word.

    Character id `0` pads (short words and padding words); a word whose
    characters are all `0` is padding: its vector is zeros and the layer's
    output mask is `False` there, so the mask reaches the tagger's
    recurrent layer and loss.

    Args:
        vocab_size: int. Number of character ids (id `0` pads).
        kind: str. `"cnn"` or `"lstm"`. Defaults to `"cnn"`.
        char_dim: int. Character embedding width. Defaults to `30`.
        units: int. CNN filters, or LSTM units per direction. Defaults to `50`.
        kernel_size: int. CNN window in characters. Defaults to `3`.
        dropout: float. Dropout on the character embeddings. Defaults to `0.0`.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        chars: int `(batch, words, chars_per_word)`.

    Returns float `(batch, words, output_dim)`, with
    `output_dim = units` (`"cnn"`) or `2 * units` (`"lstm"`).

    Examples:

    >>> import numpy as np
    >>> encoder = CharacterEncoder(vocab_size=40, kind="cnn", units=8)
    >>> chars = np.array([[[5, 6, 7], [8, 0, 0], [0, 0, 0]]])
    >>> tuple(encoder(chars).shape)
    (1, 3, 8)
    >>> np.asarray(encoder.compute_mask(chars)).tolist()
    [[True, True, False]]
    """

    def __init__(
        self,
        vocab_size,
        kind="cnn",
        char_dim=30,
        units=50,
        kernel_size=3,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if kind not in CHAR_ENCODERS:
            raise ValueError(
                f"CharacterEncoder: kind must be one of {CHAR_ENCODERS}, got {kind!r}."
            )
        for name, value in (("vocab_size", vocab_size), ("char_dim", char_dim), ("units", units)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"CharacterEncoder: {name} must be a positive integer, got {value!r}."
                )
        self.vocab_size = vocab_size
        self.kind = kind
        self.char_dim = char_dim
        self.units = units
        self.kernel_size = kernel_size
        self.dropout = float(dropout)
        self.output_dim = units if kind == "cnn" else 2 * units
        self.embedding = keras.layers.Embedding(vocab_size, char_dim, name="char_embedding")
        self.embedding_dropout = keras.layers.Dropout(self.dropout)
        if kind == "cnn":
            self.encoder = keras.layers.Conv1D(
                units, kernel_size, padding="same", activation="tanh", name="char_conv"
            )
        else:
            self.encoder = keras.layers.Bidirectional(keras.layers.LSTM(units), name="char_lstm")

    def build(self, input_shape):
        self.embedding.build(input_shape)
        self.encoder.build((None, None, self.char_dim))

    def call(self, chars, training=None):
        chars = ops.cast(chars, "int32")
        shape = ops.shape(chars)
        char_mask = ops.not_equal(chars, 0)
        x = self.embedding(chars) * ops.cast(char_mask, self.compute_dtype)[..., None]
        # zeros at padding characters: the CNN then sees what its own "same" padding shows
        x = self.embedding_dropout(x, training=training)
        # every word of every sentence becomes one row: (batch * words, chars, char_dim)
        x = ops.reshape(x, (-1, shape[2], self.char_dim))
        flat_mask = ops.reshape(char_mask, (-1, shape[2]))
        if self.kind == "cnn":
            features = self.encoder(x)
            features = ops.where(flat_mask[:, :, None], features, -1e9)
            features = ops.max(features, axis=1)
        else:
            features = self.encoder(x, mask=flat_mask, training=training)
        is_word = ops.any(flat_mask, axis=1)[:, None]
        features = ops.where(is_word, features, 0.0)
        return ops.reshape(features, (shape[0], shape[1], self.output_dim))

    def compute_mask(self, chars, mask=None):
        return ops.any(ops.not_equal(chars, 0), axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "kind": self.kind,
                "char_dim": self.char_dim,
                "units": self.units,
                "kernel_size": self.kernel_size,
                "dropout": self.dropout,
            }
        )
        return config
