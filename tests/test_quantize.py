"""quantize_for_decoding: int8 / bfloat16 weights against the float32 model they came from."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_recipes.llama import LlamaConfig, build_llama, quantize_for_decoding
from keras_recipes.llama.quantize import QuantizedLlama

# End-to-end runs: out of the fast suite, run by `pytest -m "heavy and not slow"` (.ci/run runs them).
pytestmark = pytest.mark.heavy

VOCAB = 128


def markov_batches(rng, batch, length, successors):
    """Token sequences where each token is followed by one of its two successors (3:1)."""
    ids = np.empty((batch, length), np.int32)
    ids[:, 0] = rng.integers(0, VOCAB, batch)
    for t in range(1, length):
        pick = (rng.random(batch) < 0.25).astype(int)
        ids[:, t] = successors[ids[:, t - 1], pick]
    return ids


@pytest.fixture(scope="module")
def trained():
    """A tiny LLaMA trained a few dozen steps on a two-successor Markov chain, and held-out text."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    successors = rng.integers(0, VOCAB, (VOCAB, 2))
    model = build_llama(LlamaConfig.preset("tiny", vocab_size=VOCAB, max_seq_len=64))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    train = markov_batches(rng, 512, 33, successors)
    model.fit(train[:, :-1], train[:, 1:], batch_size=32, epochs=2, verbose=0)
    held_out = markov_batches(rng, 16, 33, successors)
    return model, held_out


def perplexity(logits, targets):
    logits = np.asarray(logits, np.float64)
    logits -= logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probs, targets[..., None], -1)
    return float(np.exp(-picked.mean()))


@pytest.mark.parametrize("weights, agreement", [("int8", 0.98), ("bfloat16", 0.99)])
def test_teacher_forced_agreement_and_perplexity(trained, weights, agreement):
    model, text = trained
    inputs, targets = text[:, :-1], text[:, 1:]
    reference = np.asarray(model(inputs))
    quantized = decoding_logits(quantize_for_decoding(model, weights), inputs)
    assert perplexity(reference, targets) < 4.0  # it learned the chain (uniform: 128)
    same = (quantized.argmax(-1) == reference.argmax(-1)).mean()
    assert same >= agreement
    assert perplexity(quantized, targets) == pytest.approx(perplexity(reference, targets), rel=0.01)


def dequantized_float_model(model, quantized):
    """A float32 LlamaModel holding exactly the weights `quantized` multiplies by."""
    twin = build_llama(model.config)
    twin.set_weights(model.get_weights())

    def kernel(matrix):
        return matrix.dequantized().T  # (in, out)

    for block, layer in zip(twin.blocks, quantized.layers, strict=True):
        attention, ffn = block.attention, block.feed_forward
        widths = [attention.wq.kernel.shape[1], attention.wk.kernel.shape[1]]
        q, k, v = np.split(kernel(layer["wqkv"]), np.cumsum(widths), axis=1)
        attention.wq.kernel.assign(q)
        attention.wk.kernel.assign(k)
        attention.wv.kernel.assign(v)
        attention.wo.kernel.assign(kernel(layer["wo"]))
        w1, w3 = np.split(kernel(layer["w13"]), 2, axis=1)
        ffn.w1.kernel.assign(w1)
        ffn.w3.kernel.assign(w3)
        ffn.w2.kernel.assign(kernel(layer["w2"]))
    twin.tok_embeddings.embeddings.assign(quantized.embeddings.dequantized())
    if twin.output_projection is not None:  # "tiny" has an untied head
        twin.output_projection.kernel.assign(kernel(quantized.head))
    return twin


def test_int8_forward_pass_equals_call_on_the_dequantized_weights(trained):
    """The restated forward pass is LlamaModel.call: on the weights int8 stands for, 1e-5."""
    model, text = trained
    quantized = quantize_for_decoding(model, "int8")
    oracle = dequantized_float_model(model, quantized)
    expected = np.asarray(oracle(text))
    got = quantized(text).numpy()
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    # and the weights are within half a quantisation step of the originals
    wo = model.blocks[0].attention.wo.kernel.numpy()
    step = np.abs(wo).max(0) / 127
    assert np.all(np.abs(quantized.layers[0]["wo"].dequantized().T - wo) <= step / 2 + 1e-7)


def test_bfloat16_logits_within_bfloat16_error(trained):
    model, text = trained
    expected = np.asarray(model(text))
    got = quantize_for_decoding(model, "bfloat16")(text).numpy()
    assert np.abs(got - expected).max() <= 2**-6 * np.abs(expected).max()


def decoding_logits(quantized, ids):
    """The whole-sequence logits with the matrices multiplied as `generate` multiplies them."""

    @tf.function(autograph=False)
    def forward(ids):
        with quantized.decoding():
            return quantized(ids)

    return forward(tf.constant(ids)).numpy()


@pytest.mark.parametrize("weights", ["int8", "bfloat16"])
def test_cached_greedy_decoding_equals_its_own_uncached_argmax(trained, weights):
    """generate (prefill + cached steps, left-padded batch) against the whole-sequence pass."""
    model, text = trained
    quantized = quantize_for_decoding(model, weights)
    out = quantized.generate([list(text[0, :5]), list(text[1, :9])], max_new_tokens=12)
    assert out.shape == (2, 21)
    for row, length in zip(out, (5, 9), strict=True):
        ids = row[9 - length :]
        logits = decoding_logits(quantized, ids[None, :-1])[0]
        np.testing.assert_array_equal(logits[length - 1 :].argmax(-1), ids[length:])
    assert np.all(out[0, :4] == 0)  # left padding of the shorter prompt


def test_generate_keeps_the_float_models_controls(trained):
    model, text = trained
    quantized = quantize_for_decoding(model, "int8")
    prompt = [list(text[0, :6])]
    greedy = quantized.generate(prompt, 10)
    assert greedy.dtype == np.int32 and greedy.shape == (1, 16)
    first = quantized.generate(prompt, 10, temperature=0.8, top_k=5, top_p=0.9, seed=7)
    again = quantized.generate(prompt, 10, temperature=0.8, top_k=5, top_p=0.9, seed=7)
    np.testing.assert_array_equal(first, again)
    eos = int(greedy[0, 8])
    stopped = quantized.generate(prompt, 10, eos_id=eos, pad_id=0)
    np.testing.assert_array_equal(stopped[0, :9], greedy[0, :9])
    assert np.all(stopped[0, 9:] == 0)
    with pytest.raises(ValueError, match="max_seq_len"):
        quantized.generate(prompt, 64)


def test_weights_are_stored_in_one_or_two_bytes(trained):
    model, _ = trained
    matrices = sum(int(np.prod(v.shape)) for v in model.weights if len(v.shape) == 2)
    for weights, size in (("int8", 1), ("bfloat16", 2)):
        quantized = quantize_for_decoding(model, weights)
        dtypes = {
            v.dtype.name for m in quantized.matrices for v in m.variables if v.shape.rank == 2
        }
        assert dtypes == {"uint8" if weights == "int8" else weights}  # int8 kept as value + 128
        stored = sum(int(np.prod(m.shape)) for m in quantized.matrices)
        assert stored == matrices  # each matrix once (the tied head is the table)
        assert quantized.weights_nbytes() < matrices * size * 1.1


def test_int8_saved_model_passes_the_loader_check_against_the_quantized_model(trained, tmp_path):
    """export_saved_model(weights="int8") verifies through TF Serving's C++ loader, with
    the quantized Keras path as oracle, and stores 1-byte variables."""
    from keras_recipes.export import export_saved_model

    model, _ = trained
    path = export_saved_model(model, tmp_path / "llama", weights="int8")  # verify=True
    stored = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    dtypes = stored.get_variable_to_dtype_map()
    shapes = stored.get_variable_to_shape_map()
    big = {dtypes[name].name for name, shape in shapes.items() if len(shape) == 2}
    assert big == {"uint8"}  # int8 values kept as value + 128, one byte each


@pytest.mark.slow
def test_bfloat16_saved_model_passes_the_loader_check(trained, tmp_path):
    from keras_recipes.export import export_saved_model

    model, _ = trained
    export_saved_model(model, tmp_path / "llama", weights="bfloat16")


def test_bad_input_is_refused_clearly(trained, tmp_path):
    from keras_recipes.export import export_saved_model

    model, _ = trained
    with pytest.raises(ValueError, match="'int8' or 'bfloat16'"):
        quantize_for_decoding(model, "int4")
    with pytest.raises(ValueError, match="expected a LlamaModel"):
        quantize_for_decoding(keras.Sequential([keras.layers.Dense(2)]), "int8")
    with pytest.raises(ValueError, match="weights must be one of"):
        export_saved_model(model, tmp_path / "x", weights="fp8")
    with pytest.raises(ValueError, match="without XLA"):
        export_saved_model(model, tmp_path / "x", weights="int8", jit_compile=True)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = build_llama("tiny")
    finally:
        keras.config.set_dtype_policy(previous)
    with pytest.raises(ValueError, match="float32"):
        quantize_for_decoding(mixed, "int8")
    assert isinstance(quantize_for_decoding(model, "int8"), QuantizedLlama)


@pytest.mark.parametrize("weights", ["int8", "bfloat16"])
def test_random_model_stores_what_quantizing_a_float_model_stores(weights):
    """QuantizedLlama.random (the 1B scaling row, never float32 whole) has the layout
    quantize_for_decoding gives, with tied and untied heads, and decodes."""
    for config in (LlamaConfig.preset("tiny"), LlamaConfig.preset("tiny", tie_embeddings=True)):
        made = quantize_for_decoding(build_llama(config), weights)
        drawn = QuantizedLlama.random(config, weights, seed=1)
        assert [(v.name, v.shape, v.dtype) for v in drawn.variables] == [
            (v.name, v.shape, v.dtype) for v in made.variables
        ]
        assert drawn.weights_nbytes() == made.weights_nbytes()
        assert (drawn.head is drawn.embeddings) == config.tie_embeddings
        std = np.std(drawn.layers[0]["w2"].dequantized())
        assert std == pytest.approx(0.02, rel=0.05)
        out = drawn.generate([[1, 2, 3]], max_new_tokens=3)
        assert out.shape == (1, 6) and out.min() >= 0 and out.max() < config.vocab_size
    with pytest.raises(ValueError, match="weights must be 'int8' or 'bfloat16'"):
        QuantizedLlama.random(LlamaConfig.preset("tiny"), "float16")


def test_generate_converts_the_matrices_once_and_keeps_them():
    """In-process generate multiplies copies made on the first call (no conversion per call)."""
    small = QuantizedLlama.random(LlamaConfig.preset("tiny"), "int8", seed=2)
    first = small.generate([[1, 2, 3]], max_new_tokens=5)
    copies = small.kept_copies()
    assert len(copies) == len(small.matrices)
    assert all(c.dtype in (tf.bfloat16, tf.float32) for c in copies.values())
    np.testing.assert_array_equal(small.generate([[1, 2, 3]], max_new_tokens=5), first)
    assert small.kept_copies() is copies
    # The copies hold exactly the int8 values (scales apply to outputs).
    matrix = small.layers[0]["wo"]
    np.testing.assert_array_equal(
        np.asarray(tf.cast(copies[id(matrix)], tf.float32)) * matrix.scale.numpy()[:, None],
        matrix.dequantized(),
    )
