"""keras_recipes.layers.CRF: forward algorithm, sequence score and Viterbi against brute force."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_recipes.layers import CRF
from keras_recipes.layers.crf import crf_log_partition, crf_sequence_score, crf_viterbi_decode

NUM_TAGS, LENGTH = 3, 4
# full, left-aligned padding, empty, a hole in the middle, padding on both sides, length 1
MASKS = np.array(
    [[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 1], [0, 1, 1, 0], [1, 0, 0, 0]], bool
)


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(7)
    potentials = rng.normal(size=(len(MASKS), LENGTH, NUM_TAGS)).astype("float32")
    transitions = rng.normal(size=(NUM_TAGS, NUM_TAGS)).astype("float32")
    start = rng.normal(size=NUM_TAGS).astype("float32")
    end = rng.normal(size=NUM_TAGS).astype("float32")
    return potentials, transitions, start, end


def enumerate_scores(potentials, transitions, start, end, row):
    """{tags at the real steps: score}, every sequence written out, in float64."""
    steps = np.flatnonzero(MASKS[row])
    scores = {}
    if not len(steps):
        return steps, scores
    for tags in itertools.product(range(NUM_TAGS), repeat=len(steps)):
        score = float(start[tags[0]]) + float(end[tags[-1]])
        for k, (step, tag) in enumerate(zip(steps, tags, strict=True)):
            score += float(potentials[row, step, tag])
            if k:
                score += float(transitions[tags[k - 1], tag])
        scores[tags] = score
    return steps, scores


def test_log_partition_equals_log_sum_exp_over_all_sequences(problem):
    log_z = np.asarray(crf_log_partition(*problem, mask=MASKS))
    for row in range(len(MASKS)):
        steps, scores = enumerate_scores(*problem, row)
        expected = np.logaddexp.reduce(list(scores.values())) if len(steps) else 0.0
        np.testing.assert_allclose(log_z[row], expected, rtol=1e-5, atol=1e-5)


def test_viterbi_finds_the_best_sequence_and_its_score(problem):
    tags, best_scores = crf_viterbi_decode(*problem, mask=MASKS)
    tags, best_scores = np.asarray(tags), np.asarray(best_scores)
    for row in range(len(MASKS)):
        steps, scores = enumerate_scores(*problem, row)
        assert (tags[row][~MASKS[row]] == 0).all()  # padding gets tag 0
        if not len(steps):
            assert best_scores[row] == 0.0
            continue
        best = max(scores, key=scores.get)
        assert tuple(tags[row][steps]) == best
        np.testing.assert_allclose(best_scores[row], scores[best], rtol=1e-5, atol=1e-5)


def test_sequence_score_of_every_sequence(problem):
    potentials, transitions, start, end = problem
    row = 3  # the row with a hole: transitions join the real steps across it
    steps, scores = enumerate_scores(*problem, row)
    candidates = list(scores)
    tags = np.zeros((len(candidates), LENGTH), "int32")
    tags[:, steps] = candidates
    tags[:, ~MASKS[row]] = 2  # ignored
    repeated = np.repeat(potentials[row : row + 1], len(candidates), axis=0)
    mask = np.repeat(MASKS[row : row + 1], len(candidates), axis=0)
    got = np.asarray(crf_sequence_score(repeated, tags, transitions, start, end, mask=mask))
    np.testing.assert_allclose(got, [scores[c] for c in candidates], rtol=1e-5, atol=1e-5)


def test_gradient_of_log_partition_is_the_tag_marginals(problem):
    """d log Z / d potentials[t, k] = P(tag at t is k): the forward algorithm's gradient
    against marginals summed from the enumeration."""
    potentials, transitions, start, end = problem
    variable = tf.Variable(potentials)
    with tf.GradientTape() as tape:
        log_z = tf.reduce_sum(crf_log_partition(variable, transitions, start, end, mask=MASKS))
    gradient = tape.gradient(log_z, variable).numpy()
    for row in range(len(MASKS)):
        steps, scores = enumerate_scores(*problem, row)
        marginals = np.zeros((LENGTH, NUM_TAGS))
        if len(steps):
            log_z_row = np.logaddexp.reduce(list(scores.values()))
            for tags, score in scores.items():
                marginals[steps, list(tags)] += np.exp(score - log_z_row)
        np.testing.assert_allclose(gradient[row], marginals, atol=1e-5)


def test_layer_trains_towards_the_gold_sequence():
    """Gradient reaches the transitions and the scores: a few steps raise log p(gold)."""
    crf = CRF(NUM_TAGS)
    potentials = tf.Variable(np.zeros((2, LENGTH, NUM_TAGS), "float32"))
    gold = np.array([[0, 1, 2, 1], [2, 2, 0, 0]])
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
    optimizer = keras.optimizers.Adam(0.3)
    first = None
    for _ in range(8):
        with tf.GradientTape() as tape:
            nll = -tf.reduce_mean(crf.log_likelihood(tf.identity(potentials), gold, mask))
        variables = [potentials, *crf.trainable_variables]
        gradients = tape.gradient(nll, variables)
        assert all(g is not None and np.isfinite(np.asarray(g)).all() for g in gradients)
        assert np.abs(np.asarray(gradients[1])).sum() > 0  # the transitions learn
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        first = float(nll) if first is None else first
    assert float(nll) < first / 4
    tags = np.asarray(crf(potentials, mask=mask))
    np.testing.assert_array_equal(tags, gold * mask)


def test_mask_from_embedding_reaches_the_crf():
    words = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(10, 4, mask_zero=True)(words)
    tags = CRF(NUM_TAGS)(keras.layers.Dense(NUM_TAGS)(x))
    model = keras.Model(words, tags)
    out = np.asarray(model(np.array([[3, 4, 0, 0], [5, 0, 0, 0]])))
    assert out.shape == (2, 4) and out.dtype == np.int32
    assert (out[:, 2:] == 0).all() and out[1, 1] == 0


def test_crf_in_a_saved_model_round_trips(tmp_path):
    words = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(10, 4, mask_zero=True)(words)
    model = keras.Model(words, CRF(NUM_TAGS, name="crf")(keras.layers.Dense(NUM_TAGS)(x)))
    crf = model.get_layer("crf")
    crf.transitions.assign(np.random.default_rng(1).normal(size=(NUM_TAGS, NUM_TAGS)))
    x_ids = np.array([[3, 4, 5, 0], [5, 6, 0, 0]])
    model.save(tmp_path / "crf.keras")
    loaded = keras.models.load_model(tmp_path / "crf.keras")
    np.testing.assert_array_equal(np.asarray(loaded(x_ids)), np.asarray(model(x_ids)))
    np.testing.assert_array_equal(
        loaded.get_layer("crf").transitions.numpy(), crf.transitions.numpy()
    )
    assert loaded.get_layer("crf").get_config()["num_tags"] == NUM_TAGS


def test_wrong_number_of_scores_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Dense\(3\)"):
        CRF(3)(np.zeros((1, 2, 5), "float32"))
    with pytest.raises(ValueError, match="num_tags"):
        CRF(0)
