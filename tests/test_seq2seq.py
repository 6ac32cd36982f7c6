"""keras_recipes.seq2seq: tokenizer, attention, masked loss, greedy/beam decoding, saving, BLEU."""

import math

import keras
import numpy as np
import pytest

from keras_recipes.datasets.dates import load_dates
from keras_recipes.seq2seq import (
    END_ID,
    PAD_ID,
    BahdanauAttention,
    LuongAttention,
    Seq2Seq,
    SequenceTokenizer,
    corpus_bleu,
    masked_token_cross_entropy,
)

# End-to-end runs: out of the fast suite, run by `pytest -m "heavy and not slow"` (.ci/run runs them).
pytestmark = pytest.mark.heavy

PAIRS, HELD_OUT = load_dates(num_train=20, num_test=5, seed=1)


@pytest.fixture(scope="module")
def trained():
    """A small Bahdanau seq2seq trained until it has learnt the 20 pairs by heart."""
    keras.utils.set_random_seed(0)
    model = Seq2Seq.from_pairs(PAIRS, units=48, embed_dim=16, attention="bahdanau")
    x, y = model.prepare(PAIRS)
    model.compile(optimizer=keras.optimizers.Adam(0.02, clipnorm=1.0))
    for _ in range(10):
        model.fit(x, y, batch_size=20, epochs=30, verbose=0)
        if model.translate([s for s, _ in PAIRS]) == [t for _, t in PAIRS]:
            break
    return model


@pytest.fixture(scope="module")
def untrained():
    keras.utils.set_random_seed(1)
    return Seq2Seq.from_pairs(PAIRS, units=8, embed_dim=4, attention="luong")


def lstm_params(units, inputs):
    return 4 * (units * (units + inputs) + units)


def dense_params(units, inputs, bias=True):
    return units * inputs + (units if bias else 0)


# --- tokenizer --------------------------------------------------------------


def test_tokenizer_round_trips_char_and_word_level():
    chars = SequenceTokenizer.fit(["2018-05-09", "1999-12-31"], level="char")
    ids = chars.encode("2018-05-09", markers=True)
    assert ids[0] == 2 and ids[-1] == END_ID and len(ids) == 12
    assert chars.decode(ids) == "2018-05-09"
    assert chars.decode(chars.encode("2018-05-09") + [END_ID, 5, 6]) == "2018-05-09"
    words = SequenceTokenizer.fit(["Hello, world!", "hello there"], level="word", lowercase=True)
    assert words.split("Hello, World!") == ["hello", ",", "world", "!"]
    assert words.decode(words.encode("hello, world!")) == "hello , world !"
    assert words.encode("goodbye") == [1]  # unseen -> <unk>
    assert len(words) == 4 + 5


def test_tokenizer_max_tokens_keeps_most_frequent():
    tok = SequenceTokenizer.fit(["a a a b b c"], level="word", max_tokens=2)
    assert tok.tokens[4:] == ["a", "b"]


# --- attention layers -------------------------------------------------------


@pytest.mark.parametrize("layer", [BahdanauAttention(5), LuongAttention(6)])
def test_attention_weights_are_a_distribution_that_ignores_padding(layer):
    rng = np.random.default_rng(0)
    query = rng.normal(size=(2, 3, 6)).astype("float32")
    keys = rng.normal(size=(2, 4, 6)).astype("float32")
    mask = np.array([[True, True, True, True], [True, True, False, False]])
    context, weights = layer(query, keys, mask=mask)
    weights = keras.ops.convert_to_numpy(weights)
    assert context.shape == (2, 3, 6) and weights.shape == (2, 3, 4)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
    assert np.all(weights[1, :, 2:] < 1e-6)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(context), weights @ keys, rtol=1e-5, atol=1e-5
    )


def test_luong_score_is_query_w_key():
    layer = LuongAttention(3)
    rng = np.random.default_rng(1)
    query = rng.normal(size=(1, 2, 3)).astype("float32")
    keys = rng.normal(size=(1, 4, 3)).astype("float32")
    _, weights = layer(query, keys)
    w = keras.ops.convert_to_numpy(layer.wa.kernel)
    scores = query[0] @ w @ keys[0].T
    expected = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(weights)[0], expected, rtol=1e-5)


# --- model shapes, parameters, loss ----------------------------------------


@pytest.mark.parametrize(
    "cell,attention,bidirectional",
    [("lstm", "bahdanau", False), ("gru", "luong", True), ("lstm", "none", True)],
)
def test_forward_shapes(cell, attention, bidirectional):
    model = Seq2Seq.from_pairs(
        PAIRS, cell=cell, units=6, embed_dim=4, attention=attention, bidirectional=bidirectional
    )
    (source, target_in), target_out = model.prepare(PAIRS[:3])
    logits = model((source, target_in))
    assert logits.shape == (3, target_in.shape[1], len(model.target_tokenizer))
    assert target_out.shape == target_in.shape
    ids, attention_weights = model.greedy_search(source, max_length=4)
    assert ids.shape[0] == 3 and ids.shape[1] <= 4
    if attention == "none":
        assert attention_weights is None
    else:
        assert attention_weights.shape == (3, ids.shape[1], source.shape[1])


def test_parameter_count_closed_form():
    model = Seq2Seq.from_pairs(PAIRS, units=8, embed_dim=4, attention="bahdanau")
    vs, vt, u, e = len(model.source_tokenizer), len(model.target_tokenizer), 8, 4
    expected = (
        vs * e
        + lstm_params(u, e)  # encoder
        + vt * e
        + lstm_params(u, e)  # decoder
        + 2 * dense_params(u, u, bias=False)
        + dense_params(1, u, bias=False)  # W1, W2, v
        + dense_params(u, 2 * u)  # tanh(W [h; context])
        + dense_params(vt, u)  # softmax layer
    )
    assert model.count_params() == expected


def test_loss_is_mean_cross_entropy_over_real_tokens(untrained):
    x, y = untrained.prepare(PAIRS[:4])
    logits = keras.ops.convert_to_numpy(untrained(x))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probs, y[..., None], -1)[..., 0]
    expected = -picked[y != PAD_ID].mean()
    got = float(masked_token_cross_entropy(y, logits))
    assert got == pytest.approx(expected, rel=1e-5)


def test_padding_does_not_change_the_loss(untrained):
    (source, target_in), target_out = untrained.prepare(PAIRS[:4])
    base = float(masked_token_cross_entropy(target_out, untrained((source, target_in))))
    pad = lambda a, n: np.pad(a, ((0, 0), (0, n)))  # noqa: E731
    padded = untrained((pad(source, 7), pad(target_in, 5)))
    loss = float(masked_token_cross_entropy(pad(target_out, 5), padded))
    assert loss == pytest.approx(base, rel=1e-5)


# --- padding masks, end to end -----------------------------------------------
# The oracle for each check is the same model run on the source alone, cut to
# its real length (no padding exists, so no mask is involved).

MASK_CONFIGS = [("lstm", "bahdanau", False), ("gru", "luong", True), ("lstm", "none", True)]
MIXED = [s for s, _ in PAIRS[:6]]  # dates of different lengths: batches get padded


@pytest.fixture(scope="module", params=MASK_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def tiny(request):
    cell, attention, bidirectional = request.param
    keras.utils.set_random_seed(3)
    return Seq2Seq.from_pairs(
        PAIRS, cell=cell, units=6, embed_dim=4, attention=attention, bidirectional=bidirectional
    )


def alone(model, text):
    """Source ids of one text, no padding at all: `(1, its length)`."""
    return np.array([model.source_tokenizer.encode(text)], "int32")


def test_encoder_ignores_source_padding(tiny):
    batch = np.pad(tiny.encode_sources(MIXED), ((0, 0), (0, 5)))
    outputs, states, mask = tiny.encode(batch)
    outputs = keras.ops.convert_to_numpy(outputs)
    for row, text in enumerate(MIXED):
        ids = alone(tiny, text)
        n = ids.shape[1]
        assert keras.ops.convert_to_numpy(mask[row]).tolist() == [True] * n + [False] * (
            batch.shape[1] - n
        )
        # the encoder RNN itself, on unpadded input and without a mask
        ref_outputs, *ref_states = tiny.encoder_rnn(tiny.source_embedding(ids))
        if tiny.bidirectional:
            half = len(ref_states) // 2
            ref_states = [
                np.concatenate([f, b], -1)
                for f, b in zip(ref_states[:half], ref_states[half:], strict=True)
            ]
        for state, ref in zip(states, ref_states, strict=True):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(state)[row], ref[0], atol=1e-5)
        np.testing.assert_allclose(outputs[row, :n], ref_outputs[0], atol=1e-5)


def test_attention_gives_padding_zero_weight_and_logits_do_not_change(tiny):
    (source, target_in), _ = tiny.prepare(PAIRS[:6])
    padded = np.pad(source, ((0, 0), (0, 4)))
    encoded = tiny.encode(padded)
    logits, _, weights = tiny.decode(target_in, *encoded)
    for row, text in enumerate(MIXED):
        ids = alone(tiny, text)
        ref_logits, _, ref_weights = tiny.decode(target_in[row : row + 1], *tiny.encode(ids))
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(logits)[row], ref_logits[0], atol=1e-5
        )
        if weights is not None:
            w = keras.ops.convert_to_numpy(weights)[row]
            assert np.all(w[:, ids.shape[1] :] == 0.0)  # exactly: exp(-1e9) underflows
            np.testing.assert_allclose(w[:, : ids.shape[1]], ref_weights[0], atol=1e-6)


def test_translations_do_not_change_with_padding(tiny):
    texts = MIXED[:3]
    ids = np.pad(tiny.encode_sources(texts), ((0, 0), (0, 6)))  # padded twice over
    greedy, _ = tiny.greedy_search(ids, max_length=4)
    beam, _ = tiny.beam_search(ids, beam_width=2, length_penalty=0.6, max_length=4)
    decode = tiny.target_tokenizer.decode
    for row, text in enumerate(texts):
        ref_greedy, _ = tiny.greedy_search(alone(tiny, text), max_length=4)
        ref_beam, _ = tiny.beam_search(alone(tiny, text), 2, 0.6, max_length=4)
        assert decode(greedy[row]) == decode(ref_greedy[0])
        assert decode(beam[row]) == decode(ref_beam[0])


def test_training_gradients_ignore_padding(tiny):
    import tensorflow as tf

    def gradients(source, target_in, target_out):
        with tf.GradientTape() as tape:
            loss = masked_token_cross_entropy(target_out, tiny((source, target_in), training=True))
        return [
            tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, tiny.trainable_variables)
        ]

    (source, target_in), target_out = tiny.prepare(PAIRS[:6])
    pad = lambda a, n: np.pad(a, ((0, 0), (0, n)))  # noqa: E731
    base = gradients(source, target_in, target_out)
    padded = gradients(pad(source, 5), pad(target_in, 3), pad(target_out, 3))
    for g, h in zip(base, padded, strict=True):
        np.testing.assert_allclose(h, g, atol=1e-6)


# --- decoding --------------------------------------------------------------


def test_overfits_twenty_pairs(trained):
    predictions = trained.translate([s for s, _ in PAIRS])
    assert predictions == [t for _, t in PAIRS]


def test_beam_width_one_equals_greedy(trained, untrained):
    for model in (trained, untrained):
        source = model.encode_sources([s for s, _ in PAIRS + HELD_OUT])
        greedy_ids, greedy_attention = model.greedy_search(source)
        beam_ids, beam_attention = model.beam_search(source, beam_width=1, length_penalty=0.7)
        np.testing.assert_array_equal(beam_ids, greedy_ids)
        np.testing.assert_allclose(beam_attention, greedy_attention, atol=1e-6)


def sequence_log_prob(model, source_ids, output_ids):
    """log p(output | source) by teacher forcing: an independent scorer for beam search."""
    target_in = np.concatenate([np.full((len(output_ids), 1), 2), output_ids[:, :-1]], 1)
    logits = keras.ops.convert_to_numpy(model((source_ids, target_in.astype("int32"))))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probs, output_ids[..., None], -1)[..., 0]
    return (picked * (output_ids != PAD_ID)).sum(1)


def test_beam_search_scores_are_true_log_probs_and_at_least_greedys(untrained):
    source = untrained.encode_sources([s for s, _ in PAIRS[:6]])
    width = len(untrained.target_tokenizer)  # wide enough to keep the greedy path
    greedy, _ = untrained.greedy_search(source, max_length=3)
    beam, _ = untrained.beam_search(source, beam_width=width, max_length=3)
    greedy_lp = sequence_log_prob(
        untrained, source, np.pad(greedy, ((0, 0), (0, 3 - greedy.shape[1])))
    )
    beam_lp = sequence_log_prob(untrained, source, np.pad(beam, ((0, 0), (0, 3 - beam.shape[1]))))
    assert np.all(beam_lp >= greedy_lp - 1e-4)


def test_translate_returns_attention_per_text(trained):
    texts, maps = trained.translate([PAIRS[0][0], PAIRS[1][0]], beam_width=3, return_attention=True)
    assert texts == [PAIRS[0][1], PAIRS[1][1]]
    for (source, target), weights in zip(PAIRS[:2], maps, strict=True):
        assert weights.shape == (len(target) + 1, len(source))  # + <end>
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)


def test_save_load_round_trip(trained, tmp_path):
    path = tmp_path / "dates.keras"
    trained.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, Seq2Seq)
    assert loaded.get_config()["source_tokenizer"] == trained.get_config()["source_tokenizer"]
    sources = [s for s, _ in PAIRS + HELD_OUT]
    assert loaded.translate(sources, beam_width=2) == trained.translate(sources, beam_width=2)


def test_translation_module_is_strings_to_strings(trained):
    import tensorflow as tf

    sources = [s for s, _ in PAIRS[:5] + HELD_OUT]
    module = trained.translation_module(max_length=4)  # four steps keep the graph small to trace
    out = [b.decode() for b in module.translate(tf.constant(sources)).numpy()]
    assert out == trained.translate(sources, max_length=4)
    assert all(len(text) == 4 for text in out)


@pytest.mark.slow  # SavedModel writing traces every function again
def test_translation_module_saves_with_a_translate_signature(trained, tmp_path):
    import tensorflow as tf

    sources = [s for s, _ in PAIRS[:5] + HELD_OUT]
    module = trained.translation_module(max_length=4)
    out = [b.decode() for b in module.translate(tf.constant(sources)).numpy()]
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"translate": module.translate})
    serve = tf.saved_model.load(str(tmp_path / "sm")).signatures["translate"]
    served = serve(texts=tf.constant(sources))
    assert [b.decode() for b in next(iter(served.values())).numpy()] == out


def test_translation_module_tokenizes_words_like_python():
    import tensorflow as tf

    pairs = [("Où est l'été ?", "Where is summer?"), ("Ça va, Zoë!", "All good, Zoë!")]
    keras.utils.set_random_seed(2)
    model = Seq2Seq.from_pairs(
        pairs, level="word", lowercase=True, units=4, embed_dim=4, max_source_length=12
    )
    sources = ["OÙ est l'été, Zoë ?", "ça va bien !", "été_2 est là."]
    module = model.translation_module(max_length=3)
    out = [b.decode() for b in module.translate(tf.constant(sources)).numpy()]
    assert out == model.translate(sources, max_length=3)


# --- bad input --------------------------------------------------------------


def test_bad_input_raises_clear_errors(untrained):
    with pytest.raises(ValueError, match="vocabulary is empty"):
        SequenceTokenizer.fit(["", "   "], level="word")
    with pytest.raises(ValueError, match="No .source, target. pairs"):
        Seq2Seq.from_pairs([])
    with pytest.raises(ValueError, match="Unknown cell 'transformer'"):
        Seq2Seq.from_pairs(PAIRS, cell="transformer")
    with pytest.raises(ValueError, match="Unknown attention 'dot'"):
        Seq2Seq.from_pairs(PAIRS, attention="dot")
    with pytest.raises(ValueError, match="Unknown tokenizer level 'byte'"):
        Seq2Seq.from_pairs(PAIRS, level="byte")
    too_long = "x" * (untrained.max_source_length + 1)
    with pytest.raises(
        ValueError, match=f"more than this model's max_source_length={untrained.max_source_length}"
    ):
        untrained.translate([too_long])
    with pytest.raises(ValueError, match="list of source texts"):
        untrained.translate("9 May 2018")
    with pytest.raises(ValueError, match="beam_width"):
        untrained.beam_search(untrained.encode_sources(["1"]), beam_width=0)


# --- BLEU -------------------------------------------------------------------


def test_corpus_bleu_hand_computed():
    # p1 = 9/10, p2 = 6/8, p3 = 3/6, p4 = 1/4, equal lengths (brevity 1): worked by hand.
    refs = ["the cat is on the mat".split(), "a b c d".split()]
    hyps = ["the cat sat on the mat".split(), "a b c d".split()]
    expected = (9 / 10 * 6 / 8 * 3 / 6 * 1 / 4) ** 0.25
    assert corpus_bleu(refs, hyps) == pytest.approx(expected)
    assert expected == pytest.approx(0.53896, abs=1e-5)


def test_corpus_bleu_brevity_penalty_and_clipping():
    assert corpus_bleu([["a", "b", "c", "d", "e", "f"]], [["a", "b", "c", "d"]]) == pytest.approx(
        math.exp(1 - 6 / 4)
    )
    # Papineni et al.'s example: "the" x7 scores a clipped unigram precision of 2/7.
    refs = [["the cat is on the mat".split(), "there is a cat on the mat".split()]]
    assert corpus_bleu(refs, [["the"] * 7], max_n=1) == pytest.approx(2 / 7)
    assert corpus_bleu([["x", "y"]], [["p", "q"]]) == 0.0
    with pytest.raises(ValueError, match="one each"):
        corpus_bleu([["a"]], [])
