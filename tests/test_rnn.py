"""keras_recipes.rnn: the notes' snippets layer for layer, closed-form parameter counts, shapes."""

import keras
import numpy as np
import pytest

from keras_recipes.rnn import (
    build_bidirectional,
    build_decoder,
    build_encoder,
    build_gru,
    build_lstm,
    build_rnn,
)


def lstm_params(units, inputs):
    return 4 * (units * (units + inputs) + units)


def gru_params(units, inputs):  # Keras 3 default reset_after=True: two bias vectors
    return 3 * (units * (units + inputs) + 2 * units)


def simple_params(units, inputs):
    return units * (units + inputs) + units


def dense_params(units, inputs):
    return units * inputs + units


def layer_types(model):
    return [type(layer).__name__ for layer in model.layers]


def test_encoder_is_the_notes_snippet():
    model = build_encoder(vocab_size=100)
    assert layer_types(model) == ["Embedding", "GlobalAveragePooling1D", "Dense", "Dense"]
    assert model.layers[2].units == 64 and model.layers[2].activation.__name__ == "relu"
    assert model.layers[3].units == 1 and model.layers[3].activation.__name__ == "sigmoid"
    assert model.count_params() == 100 * 64 + dense_params(64, 64) + dense_params(1, 64)
    assert model.predict(np.ones((3, 7), "int32"), verbose=0).shape == (3, 1)


def test_decoder_is_the_notes_snippet():
    model = build_decoder(vocab_size=50, embed_dim=8, units=6)
    assert layer_types(model) == ["Embedding", "Bidirectional", "Dense", "Dense"]
    assert type(model.layers[1].forward_layer).__name__ == "LSTM"
    expected = 50 * 8 + 2 * lstm_params(6, 8) + dense_params(6, 12) + dense_params(1, 6)
    assert model.count_params() == expected
    assert model.predict(np.ones((2, 5), "int32"), verbose=0).shape == (2, 1)


def test_decoder_default_sizes_match_the_notes():
    model = build_decoder(vocab_size=10)
    expected = 10 * 64 + 2 * lstm_params(64, 64) + dense_params(64, 128) + dense_params(1, 64)
    assert model.count_params() == expected


def test_lstm_default_is_the_notes_model_compiled_adam_mse():
    model = build_lstm()
    assert layer_types(model) == ["LSTM"]
    assert model.input_shape == (None, 50, 1) and model.output_shape == (None, 1)
    assert model.count_params() == lstm_params(1, 1) == 12
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert model.loss == "mse"


def test_gru_default_is_the_notes_model_compiled_adam_mse():
    model = build_gru()
    assert layer_types(model) == ["GRU"]
    assert model.input_shape == (None, 20, 1) and model.output_shape == (None, 1)
    assert model.count_params() == gru_params(1, 1) == 12
    assert isinstance(model.optimizer, keras.optimizers.Adam)


@pytest.mark.parametrize("builder,count", [(build_lstm, lstm_params), (build_gru, gru_params)])
def test_stacked_layers_return_sequences_and_dropout(builder, count):
    model = builder(
        (None, 3), units=[5, 4], return_sequences=True, dropout=0.1, recurrent_dropout=0.2
    )
    assert [layer.return_sequences for layer in model.layers] == [True, True]
    assert model.layers[0].dropout == 0.1 and model.layers[1].recurrent_dropout == 0.2
    assert model.count_params() == count(5, 3) + count(4, 5)
    assert model.predict(np.zeros((2, 6, 3)), verbose=0).shape == (2, 6, 4)
    last_only = builder((None, 3), units=[5, 4])
    assert [layer.return_sequences for layer in last_only.layers] == [True, False]
    assert last_only.predict(np.zeros((2, 6, 3)), verbose=0).shape == (2, 4)


@pytest.mark.parametrize("merge_mode,width", [("concat", 14), ("sum", 7), ("mul", 7), ("ave", 7)])
def test_bidirectional_merge_modes(merge_mode, width):
    model = build_bidirectional("gru", 7, merge_mode, input_shape=(None, 2))
    assert model.count_params() == 2 * gru_params(7, 2)
    assert model.predict(np.zeros((3, 4, 2)), verbose=0).shape == (3, width)


def test_bidirectional_merge_is_what_the_mode_says():
    x = np.random.default_rng(0).normal(size=(2, 5, 2)).astype("float32")
    concat = build_bidirectional("simple", 3, "concat", (None, 2), return_sequences=True)
    forward, backward = np.split(concat.predict(x, verbose=0), 2, axis=-1)
    for mode, combine in [
        ("sum", np.add),
        ("mul", np.multiply),
        ("ave", lambda a, b: (a + b) / 2),
    ]:
        other = build_bidirectional("simple", 3, mode, (None, 2), return_sequences=True)
        other.set_weights(concat.get_weights())
        np.testing.assert_allclose(
            other.predict(x, verbose=0), combine(forward, backward), atol=1e-6
        )


def test_bidirectional_tagger_head():
    model = build_bidirectional(
        "lstm",
        4,
        input_shape=(None, 3),
        return_sequences=True,
        num_outputs=5,
        output_activation="softmax",
    )
    out = model.predict(np.zeros((2, 6, 3)), verbose=0)
    assert out.shape == (2, 6, 5)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
    assert model.count_params() == 2 * lstm_params(4, 3) + dense_params(5, 8)


@pytest.mark.parametrize(
    "cell,count", [("simple", simple_params), ("lstm", lstm_params), ("gru", gru_params)]
)
def test_rnn_kinds_shapes_and_counts(cell, count):
    many_to_one = build_rnn("many_to_one", cell, units=6, input_dim=3, output_dim=2)
    assert many_to_one.predict(np.zeros((4, 9, 3)), verbose=0).shape == (4, 2)
    assert many_to_one.count_params() == count(6, 3) + dense_params(2, 6)
    many_to_many = build_rnn("many_to_many", cell, units=6, input_dim=3, output_dim=2)
    assert many_to_many.predict(np.zeros((4, 9, 3)), verbose=0).shape == (4, 9, 2)
    one_to_many = build_rnn("one_to_many", cell, units=6, input_dim=3, output_dim=2, output_steps=7)
    assert one_to_many.predict(np.zeros((4, 3)), verbose=0).shape == (4, 7, 2)
    assert one_to_many.count_params() == count(6, 3) + dense_params(2, 6)


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="Unknown cell 'transformer'.*gru"):
        build_rnn("many_to_one", "transformer")
    with pytest.raises(ValueError, match="Unknown cell"):
        build_bidirectional("rnn")
    with pytest.raises(ValueError, match="Unknown kind 'one_to_one'"):
        build_rnn("one_to_one")
    with pytest.raises(ValueError, match="output_steps"):
        build_rnn("one_to_many", "lstm")
    with pytest.raises(ValueError, match="merge_mode 'max'"):
        build_bidirectional("lstm", 4, "max")
    with pytest.raises(ValueError, match="units"):
        build_lstm(units=[])
    with pytest.raises(ValueError, match="vocab_size"):
        build_encoder(vocab_size=0)
