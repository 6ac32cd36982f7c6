"""Builders for the study notes' recurrent models.

Every builder returns a built `keras.Model`, so `model.summary()` and
`model.count_params()` work straight away. The defaults reproduce the notes'
Keras snippets layer for layer; the arguments generalize them.

- `build_encoder`, `build_decoder`: the notes' two `Sequential` snippets
  (a pooled-embedding classifier and a bidirectional-LSTM classifier).
  Options for real text: `mask_zero=True` makes id 0 padding that the
  pooling and the LSTM skip, and `pretrained=` starts the embedding from
  word vectors (`keras_recipes.embeddings.pretrained_embeddings`).
- `build_lstm`, `build_gru`: the notes' one-layer LSTM/GRU regressors,
  compiled with adam/mse, plus stacking, `return_sequences` and dropout.
- `build_bidirectional`: a bidirectional RNN with the four merge modes.
- `build_rnn`: the three RNN types of the notes, many-to-one,
  many-to-many and one-to-many, over a simple, LSTM or GRU cell.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from keras_recipes.layers.masked_pooling import MaskedGlobalAveragePooling1D

CELLS = {
    "simple": keras.layers.SimpleRNN,
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
}
MERGE_MODES = ("concat", "sum", "mul", "ave")
RNN_KINDS = ("many_to_one", "many_to_many", "one_to_many")


def get_cell(cell: str) -> type[keras.layers.Layer]:
    """The Keras recurrent layer class for a cell name: "simple", "lstm" or "gru"."""
    key = str(cell).lower()
    if key not in CELLS:
        raise ValueError(
            f"Unknown cell {cell!r}. Use one of {sorted(CELLS)} "
            '("simple" is keras.layers.SimpleRNN).'
        )
    return CELLS[key]


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return value


def _units_list(units: int | Sequence[int]) -> list[int]:
    layers = [units] if isinstance(units, int) else list(units)
    if not layers:
        raise ValueError("`units` is empty: give an int or a non-empty list, one per layer.")
    return [_positive_int("units", u) for u in layers]


def _embedding(
    vocab_size: int,
    embed_dim: int | None,
    mask_zero: bool,
    pretrained,
    trainable: bool,
    dropout: float,
) -> list[keras.layers.Layer]:
    """The classifiers' `Embedding` (the notes' `Embedding(vocab_size, 64)` unless told
    more), and a `Dropout` after it when `dropout` is above 0."""
    _positive_int("vocab_size", vocab_size)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` is a rate in [0, 1), got {dropout!r}.")
    after = [keras.layers.Dropout(dropout)] if dropout > 0 else []
    if pretrained is None:
        embed_dim = 64 if embed_dim is None else _positive_int("embed_dim", embed_dim)
        embedding = keras.layers.Embedding(
            vocab_size, embed_dim, mask_zero=bool(mask_zero), trainable=trainable
        )
        return [embedding, *after]
    matrix = np.asarray(getattr(pretrained, "matrix", pretrained), dtype="float32")
    if matrix.ndim != 2 or matrix.shape[0] != vocab_size:
        raise ValueError(
            f"`pretrained` has shape {matrix.shape}; it needs one row per token id, "
            f"(vocab_size={vocab_size}, width). Build it for the same vocabulary with "
            "keras_recipes.embeddings.pretrained_embeddings(keyed_vectors, vocabulary)."
        )
    if embed_dim is not None and embed_dim != matrix.shape[1]:
        raise ValueError(
            f"embed_dim={embed_dim} but the pretrained vectors are {matrix.shape[1]} wide; "
            "leave embed_dim out (it follows the vectors) or pass their width."
        )
    embedding = keras.layers.Embedding(
        vocab_size,
        matrix.shape[1],
        mask_zero=bool(mask_zero),
        weights=[matrix],
        trainable=trainable,
    )
    return [embedding, *after]


def build_encoder(
    vocab_size: int,
    embed_dim: int | None = None,
    units: int = 64,
    sequence_length: int | None = None,
    *,
    mask_zero: bool = False,
    pretrained=None,
    trainable: bool = True,
    dropout: float = 0.0,
) -> keras.Model:
    """The notes' encoder snippet: a pooled-embedding sequence classifier.

    `Embedding(vocab_size, 64) -> GlobalAveragePooling1D -> Dense(64, relu)
    -> Dense(1, sigmoid)`, layer for layer, with the sizes as arguments.
    On padded text, pass `mask_zero=True`: without it the average is taken
    over every position, padding included, so a short text's words are
    diluted by its padding (issue #17 saw the unmasked model not learn on
    movie reviews padded to 200 tokens). With it the pooling is `MaskedGlobalAveragePooling1D`,
    Keras's layer made safe for a text with no real token (zeros, not NaN).

    Args:
        vocab_size: int. Number of token ids the embedding accepts.
        embed_dim: int or None. Embedding width. Defaults to `64`, or the
            width of `pretrained`.
        units: int. Width of the hidden dense layer. Defaults to `64`.
        sequence_length: int or None. Fixed input length, or `None` for any.
        mask_zero: bool. Treat token id 0 as padding: the embedding emits a
            mask, so `GlobalAveragePooling1D` averages only the real tokens
            and recurrent layers skip the padded steps. Defaults to `False`
            (the notes' snippet, which averages padding in).
        pretrained: None, a 2-D array `(vocab_size, embed_dim)`, or the
            `PretrainedEmbeddings` that
            `keras_recipes.embeddings.pretrained_embeddings(keyed_vectors,
            vocabulary)` returns: the embedding starts from these rows.
            Defaults to `None` (random initialization).
        trainable: bool. Whether training updates the embedding; `False`
            freezes pretrained vectors. Defaults to `True`.
        dropout: float. When above 0, a `Dropout` layer with this rate follows
            the embedding (it passes the mask on). Defaults to `0.0` (none,
            as in the notes).

    Examples:

    >>> model = build_encoder(vocab_size=1000)
    >>> tuple(model(np.ones((2, 12), "int32")).shape)
    (2, 1)
    >>> model = build_encoder(vocab_size=1000, mask_zero=True)  # id 0 is padding
    """
    return keras.Sequential(
        [
            keras.Input(shape=(sequence_length,), dtype="int32"),
            *_embedding(vocab_size, embed_dim, mask_zero, pretrained, trainable, dropout),
            MaskedGlobalAveragePooling1D() if mask_zero else keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ],
        name="encoder",
    )


def build_decoder(
    vocab_size: int,
    embed_dim: int | None = None,
    units: int = 64,
    sequence_length: int | None = None,
    *,
    mask_zero: bool = False,
    pretrained=None,
    trainable: bool = True,
    dropout: float = 0.0,
) -> keras.Model:
    """The notes' decoder snippet: a bidirectional-LSTM sequence classifier.

    `Embedding(vocab_size, 64) -> Bidirectional(LSTM(64)) -> Dense(64, relu)
    -> Dense(1, sigmoid)`, layer for layer, with the sizes as arguments.
    (The encoder-decoder that generates text is `keras_recipes.seq2seq`.)
    With `mask_zero=True` both directions skip the padding, so the forward
    LSTM's last output is the one at the last real token, whatever the
    padded length.

    Args:
        vocab_size: int. Number of token ids the embedding accepts.
        embed_dim: int or None. Embedding width. Defaults to `64`, or the
            width of `pretrained`.
        units: int. LSTM units per direction and dense width. Defaults to `64`.
        sequence_length: int or None. Fixed input length, or `None` for any.
        mask_zero: bool. Treat token id 0 as padding: the embedding emits a
            mask, so `GlobalAveragePooling1D` averages only the real tokens
            and recurrent layers skip the padded steps. Defaults to `False`
            (the notes' snippet, which averages padding in).
        pretrained: None, a 2-D array `(vocab_size, embed_dim)`, or the
            `PretrainedEmbeddings` that
            `keras_recipes.embeddings.pretrained_embeddings(keyed_vectors,
            vocabulary)` returns: the embedding starts from these rows.
            Defaults to `None` (random initialization).
        trainable: bool. Whether training updates the embedding; `False`
            freezes pretrained vectors. Defaults to `True`.
        dropout: float. When above 0, a `Dropout` layer with this rate follows
            the embedding (it passes the mask on). Defaults to `0.0` (none,
            as in the notes).

    Examples:

    >>> model = build_decoder(vocab_size=1000)
    >>> tuple(model(np.ones((2, 12), "int32")).shape)
    (2, 1)
    >>> model = build_decoder(vocab_size=1000, mask_zero=True)  # id 0 is padding
    """
    return keras.Sequential(
        [
            keras.Input(shape=(sequence_length,), dtype="int32"),
            *_embedding(vocab_size, embed_dim, mask_zero, pretrained, trainable, dropout),
            keras.layers.Bidirectional(keras.layers.LSTM(units)),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ],
        name="decoder",
    )


def _build_stacked(
    cell: str,
    input_shape: tuple,
    units: int | Sequence[int],
    return_sequences: bool,
    dropout: float,
    recurrent_dropout: float,
    optimizer,
    loss,
    name: str,
) -> keras.Model:
    layer_units = _units_list(units)
    layer_class = get_cell(cell)
    layers = [keras.Input(shape=tuple(input_shape))]
    for i, n in enumerate(layer_units):
        last = i == len(layer_units) - 1
        layers.append(
            layer_class(
                n,
                return_sequences=return_sequences or not last,
                dropout=dropout,
                recurrent_dropout=recurrent_dropout,
            )
        )
    model = keras.Sequential(layers, name=name)
    if optimizer is not None:
        model.compile(optimizer=optimizer, loss=loss)
    return model


def build_lstm(
    input_shape: tuple = (50, 1),
    units: int | Sequence[int] = 1,
    return_sequences: bool = False,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    optimizer="adam",
    loss="mse",
) -> keras.Model:
    """The notes' LSTM snippet, `Sequential([LSTM(1, input_shape=(50, 1))])`.

    With the defaults this is exactly the notes' model, compiled with
    `optimizer="adam", loss="mse"`: the LSTM is also the output layer.
    A list of `units` stacks one LSTM per entry (the inner ones return
    sequences so the next one has a sequence to read).

    Args:
        input_shape: tuple. `(timesteps, features)`; `timesteps` may be `None`.
            Defaults to `(50, 1)`.
        units: int or list of int. Units of the LSTM, or one entry per stacked
            layer. Defaults to `1`.
        return_sequences: bool. Whether the last layer returns every step,
            `(batch, timesteps, units)`, instead of the last, `(batch, units)`.
        dropout: float. Dropout on each layer's inputs. Defaults to `0.0`.
        recurrent_dropout: float. Dropout on the recurrent state. Defaults to `0.0`.
        optimizer: optimizer or name passed to `compile`, or `None` to leave the
            model uncompiled. Defaults to `"adam"`.
        loss: loss passed to `compile`. Defaults to `"mse"`.

    Examples:

    The notes' model has `4 * (units * (units + features) + units)` weights:

    >>> model = build_lstm()
    >>> model.input_shape, model.output_shape, model.count_params()
    ((None, 50, 1), (None, 1), 12)
    >>> model = build_lstm((None, 3), units=[32, 16], dropout=0.2)
    >>> model.output_shape
    (None, 16)
    """
    return _build_stacked(
        "lstm",
        input_shape,
        units,
        return_sequences,
        dropout,
        recurrent_dropout,
        optimizer,
        loss,
        "lstm",
    )


def build_gru(
    input_shape: tuple = (20, 1),
    units: int | Sequence[int] = 1,
    return_sequences: bool = False,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    optimizer="adam",
    loss="mse",
) -> keras.Model:
    """The notes' GRU snippet, `Sequential([GRU(1, input_shape=(20, 1))])`.

    With the defaults this is exactly the notes' model, compiled with
    `optimizer="adam", loss="mse"`. Keras 3's GRU uses `reset_after=True`
    (two bias vectors), so a GRU has `3 * (units * (units + features) + 2 * units)`
    weights. Arguments as in `build_lstm`.

    Examples:

    >>> model = build_gru()  # the notes' model
    >>> model.count_params()
    12
    >>> model = build_gru((None, 3), units=[32, 16], return_sequences=True)
    >>> model.output_shape
    (None, None, 16)
    """
    return _build_stacked(
        "gru",
        input_shape,
        units,
        return_sequences,
        dropout,
        recurrent_dropout,
        optimizer,
        loss,
        "gru",
    )


def build_bidirectional(
    cell: str = "lstm",
    units: int = 64,
    merge_mode: str = "concat",
    input_shape: tuple = (None, 1),
    return_sequences: bool = False,
    num_outputs: int | None = None,
    output_activation: str | None = None,
) -> keras.Model:
    """A bidirectional RNN: one cell reads forward, a second reads backward.

    The two directions' outputs are merged by concatenation (width
    `2 * units`), or element-wise sum, product or mean (width `units`).
    With `return_sequences=True` and `num_outputs` it is a per-step tagger
    (the notes' named-entity-recognition use).

    Args:
        cell: str. `"simple"`, `"lstm"` or `"gru"`. Defaults to `"lstm"`.
        units: int. Units per direction. Defaults to `64`.
        merge_mode: str. `"concat"`, `"sum"`, `"mul"` or `"ave"`.
        input_shape: tuple. `(timesteps, features)`. Defaults to `(None, 1)`.
        return_sequences: bool. Output every step instead of the last.
        num_outputs: int or None. Adds a `Dense(num_outputs)` head when set.
        output_activation: str or None. Activation of that head.

    Examples:

    >>> tagger = build_bidirectional("gru", 32, "sum", (None, 8),
    ...                              return_sequences=True, num_outputs=5,
    ...                              output_activation="softmax")
    >>> tagger.output_shape
    (None, None, 5)
    """
    if merge_mode not in MERGE_MODES:
        raise ValueError(f"Unknown merge_mode {merge_mode!r}. Use one of {list(MERGE_MODES)}.")
    layer_class = get_cell(cell)
    layers = [
        keras.Input(shape=tuple(input_shape)),
        keras.layers.Bidirectional(
            layer_class(_positive_int("units", units), return_sequences=return_sequences),
            merge_mode=merge_mode,
        ),
    ]
    if num_outputs is not None:
        layers.append(
            keras.layers.Dense(
                _positive_int("num_outputs", num_outputs), activation=output_activation
            )
        )
    return keras.Sequential(layers, name=f"bidirectional_{cell}")


def build_rnn(
    kind: str,
    cell: str = "simple",
    units: int = 32,
    input_dim: int = 1,
    output_dim: int = 1,
    timesteps: int | None = None,
    output_steps: int | None = None,
    output_activation: str | None = None,
) -> keras.Model:
    """One of the notes' three RNN types over a simple, LSTM or GRU cell.

    - `"many_to_one"`: a sequence in, one output per sequence (sentiment):
      `(batch, timesteps, input_dim) -> (batch, output_dim)`.
    - `"many_to_many"`: a sequence in, one output per step (tagging):
      `(batch, timesteps, input_dim) -> (batch, timesteps, output_dim)`.
    - `"one_to_many"`: one vector in, a sequence out (music generation): the
      input is repeated `output_steps` times and read by the RNN,
      `(batch, input_dim) -> (batch, output_steps, output_dim)`.

    Args:
        kind: str. `"many_to_one"`, `"many_to_many"` or `"one_to_many"`.
        cell: str. `"simple"`, `"lstm"` or `"gru"`. Defaults to `"simple"`.
        units: int. Recurrent units. Defaults to `32`.
        input_dim: int. Features per input step (or of the single input).
        output_dim: int. Features per output. Defaults to `1`.
        timesteps: int or None. Input length for the many-input kinds.
        output_steps: int. Output length; required for `"one_to_many"`.
        output_activation: str or None. Activation of the output layer.

    Examples:

    >>> model = build_rnn("one_to_many", "gru", units=16, input_dim=4, output_steps=8)
    >>> tuple(model(np.zeros((2, 4))).shape)
    (2, 8, 1)
    """
    if kind not in RNN_KINDS:
        raise ValueError(f"Unknown kind {kind!r}. Use one of {list(RNN_KINDS)}.")
    layer_class = get_cell(cell)
    _positive_int("units", units)
    _positive_int("input_dim", input_dim)
    _positive_int("output_dim", output_dim)
    if kind == "one_to_many":
        if output_steps is None:
            raise ValueError('kind="one_to_many" needs `output_steps`, the output length.')
        layers = [
            keras.Input(shape=(input_dim,)),
            keras.layers.RepeatVector(_positive_int("output_steps", output_steps)),
            layer_class(units, return_sequences=True),
        ]
    else:
        layers = [
            keras.Input(shape=(timesteps, input_dim)),
            layer_class(units, return_sequences=kind == "many_to_many"),
        ]
    layers.append(keras.layers.Dense(output_dim, activation=output_activation))
    return keras.Sequential(layers, name=kind)
