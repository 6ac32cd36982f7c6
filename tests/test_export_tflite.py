"""TFLite export: LLaMA prefill/decode with the KV cache as tensors, run by LiteRT."""

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from keras_recipes.causal_lm.graph_generate import weights_nbytes
from keras_recipes.export import TFLiteGenerator, export_tflite
from keras_recipes.llama import LlamaConfig, build_llama
from keras_recipes.rnn import build_bidirectional, build_lstm

# End-to-end runs: out of the fast suite, run by `pytest -m "heavy and not slow"` (.ci/run runs them).
pytestmark = pytest.mark.heavy

PROMPT = np.array([[1, 17, 250, 33, 8]], np.int32)


@pytest.fixture(scope="module")
def llama():
    keras.utils.set_random_seed(5)
    model = build_llama(LlamaConfig.preset("tiny", max_seq_len=128))
    scale = model.norm.scale  # larger logits, same ranking: argmax margins grow
    scale.assign(scale.numpy() * 6.0)
    return model


@pytest.fixture(scope="module")
def files(llama, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tflite")
    return {
        mode: export_tflite(llama, folder / f"llama-{mode or 'float32'}.tflite", quantize=mode)
        for mode in (None, "dynamic-int8", "float16")
    }


def op_names(path) -> set:
    interpreter = Interpreter(model_path=str(path))
    return {op["op_name"] for op in interpreter._get_ops_details()}


def test_signatures_carry_the_kv_cache(files, llama):
    interpreter = Interpreter(model_path=str(files[None]))
    signatures = interpreter.get_signature_list()
    caches = [f"{kind}_cache_{i}" for i in range(llama.config.n_layers) for kind in "kv"]
    assert sorted(signatures["decode"]["inputs"]) == sorted(["tokens", "input_pos", *caches])
    assert sorted(signatures["decode"]["outputs"]) == sorted(["logits", *caches])
    assert sorted(signatures["prefill"]["outputs"]) == sorted(caches)
    shape = interpreter.get_signature_runner("decode").get_input_details()["k_cache_0"]["shape"]
    cfg = llama.config
    assert tuple(shape) == (1, cfg.max_seq_len, cfg.n_kv_heads, cfg.head_dim)


def test_builtin_ops_only(files):
    for path in files.values():
        names = op_names(path)
        assert not [n for n in names if n.startswith("Flex") or n == "CUSTOM"], names
        assert "READ_VARIABLE" not in names and "VAR_HANDLE" not in names


def test_float32_greedy_equals_model_generate_for_64_tokens(files, llama):
    got = TFLiteGenerator(files[None]).generate(PROMPT, 64)
    np.testing.assert_array_equal(got, llama.generate(PROMPT, 64))


def test_prompt_longer_than_one_prefill_chunk(files, llama):
    prompt = (np.arange(70, dtype=np.int32)[None] * 13 + 1) % llama.config.vocab_size
    generator = TFLiteGenerator(files[None])
    assert generator.prefill_len < 70
    np.testing.assert_array_equal(generator.generate(prompt, 8), llama.generate(prompt, 8))


def test_short_cache_decodes_hand_over_as_the_position_grows(tmp_path):
    # Context 512: `decode_128` and `decode_256` read the first slots and return
    # new rows only; a 120-token prompt decoding 150 tokens crosses both, then
    # runs on into the full `decode`, and still answers what Keras does.
    keras.utils.set_random_seed(6)
    model = build_llama(LlamaConfig.preset("tiny", max_seq_len=512))
    model.norm.scale.assign(model.norm.scale.numpy() * 6.0)
    path = export_tflite(model, tmp_path / "long.tflite")
    interpreter = Interpreter(model_path=str(path))
    signatures = interpreter.get_signature_list()
    assert {"decode_128", "decode_256"} <= set(signatures) and "decode_512" not in signatures
    rows = [f"{kind}_row_{i}" for i in range(model.config.n_layers) for kind in "kv"]
    assert sorted(signatures["decode_128"]["outputs"]) == sorted(["logits", *rows])
    prompt = (np.arange(120, dtype=np.int32)[None] * 7 + 3) % model.config.vocab_size
    generator = TFLiteGenerator(path)
    np.testing.assert_array_equal(generator.generate(prompt, 150), model.generate(prompt, 150))
    # Teacher forcing from an empty cache walks the same hand-overs from slot 0.
    ids = model.generate(prompt, 150)[0, :300]
    want = np.asarray(model(ids[None], training=False))[0]
    np.testing.assert_allclose(generator.logits(ids), want, atol=2e-4 * np.abs(want).max())


def test_dynamic_int8_agrees_on_90_percent(files, llama):
    # Next-token agreement along model.generate's 64 tokens (teacher forcing):
    # a free-running comparison would count every token after the first
    # difference as a miss.
    want = llama.generate(PROMPT, 64)[0]
    logits = TFLiteGenerator(files["dynamic-int8"]).logits(want[:-1])
    picked = logits[PROMPT.shape[1] - 1 :].argmax(-1)
    agreement = (picked == want[PROMPT.shape[1] :]).mean()
    assert agreement >= 0.9, agreement


def test_teacher_forced_float32_logits_match_keras(files, llama):
    ids = llama.generate(PROMPT, 16)[0]
    got = TFLiteGenerator(files[None]).logits(ids)
    np.testing.assert_allclose(got, np.asarray(llama(ids[None]))[0], atol=1e-4)


def test_file_sizes_follow_the_weights(files, llama):
    weights = weights_nbytes(llama)
    float32 = files[None].stat().st_size
    assert weights <= float32 < 1.1 * weights
    assert files["float16"].stat().st_size < 0.6 * float32
    assert files["dynamic-int8"].stat().st_size < 0.35 * float32


@pytest.fixture(scope="module")
def tied(tmp_path_factory):
    keras.utils.set_random_seed(7)
    model = build_llama(LlamaConfig.preset("tiny", tie_embeddings=True, max_seq_len=128))
    # A trained final norm is not all ones: the converter must not fold it into
    # a scaled copy of the table. Larger logits, larger argmax margins.
    scale = np.random.default_rng(0).uniform(0.5, 2.0, model.config.dim) * 6.0
    model.norm.scale.assign(scale.astype("float32"))
    folder = tmp_path_factory.mktemp("tied")
    files = {
        mode: export_tflite(model, folder / f"tied-{mode or 'float32'}.tflite", quantize=mode)
        for mode in (None, "dynamic-int8", "float16")
    }
    return model, files


def table_copies(path, cfg) -> int:
    """Distinct constant buffers of shape `(vocab, dim)` in a `.tflite` file."""
    from tensorflow.lite.tools import flatbuffer_utils

    flat = flatbuffer_utils.read_model(str(path))
    buffers = {
        tensor.buffer
        for graph in flat.subgraphs
        for tensor in graph.tensors
        if list(tensor.shape) == [cfg.vocab_size, cfg.dim]
        and flat.buffers[tensor.buffer].data is not None
        and len(flat.buffers[tensor.buffer].data)
    }
    return len(buffers)


@pytest.mark.parametrize("mode", [None, "float16", "dynamic-int8"])
def test_tied_embedding_table_is_stored_once(tied, mode):
    model, files = tied
    assert table_copies(files[mode], model.config) == 1
    assert op_names(files[mode]).isdisjoint({"READ_VARIABLE", "CUSTOM"})


def test_tied_float32_greedy_equals_model_generate_for_64_tokens(tied):
    model, files = tied
    got = TFLiteGenerator(files[None]).generate(PROMPT, 64)
    np.testing.assert_array_equal(got, model.generate(PROMPT, 64))


def test_tied_dynamic_int8_agrees_on_90_percent(tied):
    model, files = tied
    want = model.generate(PROMPT, 64)[0]
    logits = TFLiteGenerator(files["dynamic-int8"]).logits(want[:-1])
    agreement = (logits[PROMPT.shape[1] - 1 :].argmax(-1) == want[PROMPT.shape[1] :]).mean()
    assert agreement >= 0.9, agreement
    # One table for both uses: the input embeddings are the output layer's
    # dequantized rows, so teacher-forced logits stay close to Keras's.
    reference = np.asarray(model(want[None, :-1]))[0]
    cosine = (logits * reference).sum(-1) / (
        np.linalg.norm(logits, axis=-1) * np.linalg.norm(reference, axis=-1)
    )
    assert cosine.min() > 0.99, cosine.min()


def test_sampling_is_seeded_and_within_top_k(files, llama):
    generator = TFLiteGenerator(files[None])
    a = generator.generate(PROMPT, 12, temperature=1.0, top_k=5, seed=3)
    np.testing.assert_array_equal(
        a, generator.generate(PROMPT, 12, temperature=1.0, top_k=5, seed=3)
    )
    logits = np.asarray(llama(a[:, :-1]))[0]
    for position in range(PROMPT.shape[1] - 1, a.shape[1] - 1):
        assert (logits[position] > logits[position, a[0, position + 1]]).sum() < 5


def test_existing_file_and_bad_mode_are_refused(files, llama):
    with pytest.raises(ValueError, match="exists"):
        export_tflite(llama, files[None])
    with pytest.raises(ValueError, match="quantize must be one of"):
        export_tflite(llama, files[None].with_name("x.tflite"), quantize="int4")


def test_lstm_with_fixed_length_converts(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_lstm((12, 3), units=[8, 4])
    path = export_tflite(model, tmp_path / "lstm.tflite")
    runner = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    x = np.random.default_rng(0).normal(size=(1, 12, 3)).astype("float32")
    np.testing.assert_allclose(runner(inputs=x)["outputs"], model(x), atol=1e-5)
    assert not [n for n in op_names(path) if n.startswith("Flex")]


def test_bidirectional_tagger_converts(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_bidirectional("gru", 4, "concat", (6, 2), return_sequences=True, num_outputs=3)
    path = export_tflite(model, tmp_path / "tagger.tflite")  # verified inside
    assert path.is_file()


def test_unknown_sequence_length_is_explained(tmp_path):
    model = build_lstm((None, 3), units=4)
    with pytest.raises(ValueError, match="fixed size"):
        export_tflite(model, tmp_path / "x.tflite")


def test_cli_export_tflite_and_saved_model(llama, tmp_path, capsys):
    from keras_recipes.cli import main

    checkpoint = tmp_path / "model.keras"
    llama.save(checkpoint)
    out = tmp_path / "llama-int8"
    args = ["export", "--checkpoint", str(checkpoint), "--format", "tflite", "--out", str(out)]
    assert main([*args, "--quantize", "dynamic-int8"]) == 0
    assert TFLiteGenerator(out.with_suffix(".tflite")).generate(PROMPT, 4).shape == (1, 9)

    classifier = build_lstm((5, 2), units=3)
    classifier.save(tmp_path / "lstm.keras")
    base = tmp_path / "saved_models" / "lstm"
    args = ["export", "--checkpoint", str(tmp_path / "lstm.keras"), "--out", str(base)]
    assert main(args) == 0
    assert main(args) == 0
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]
    printed = capsys.readouterr().out
    assert f'-v "{base.resolve()}:/models/lstm" -e MODEL_NAME=lstm tensorflow/serving' in printed
    assert main([*args, "--version", "1"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_generator_takes_ragged_prompts_like_model_generate(files, llama):
    prompts = [[1, 17, 250], [1, 5, 9, 33, 8]]
    got = TFLiteGenerator(files[None]).generate(prompts, 6, pad_id=0)
    np.testing.assert_array_equal(got, llama.generate(prompts, 6))
    with pytest.raises(ValueError, match="exceeds the context"):
        TFLiteGenerator(files[None]).generate(prompts, llama.config.max_seq_len)


@pytest.mark.parametrize(
    "cell, attention, bidirectional", [("lstm", "bahdanau", False), ("gru", "luong", True)]
)
def test_seq2seq_translates_like_the_keras_model(tmp_path, cell, attention, bidirectional):
    from keras_recipes.export import TFLiteTranslator
    from keras_recipes.seq2seq import Seq2Seq

    keras.utils.set_random_seed(4)
    pairs = [
        ("9 May 2018", "2018-05-09"),
        ("1 jan 2000", "2000-01-01"),
        ("3 March 1999", "1999-03-03"),
    ]
    model = Seq2Seq.from_pairs(
        pairs, units=8, embed_dim=4, cell=cell, attention=attention, bidirectional=bidirectional
    )
    path = export_tflite(model, tmp_path / "dates.tflite")  # verified: greedy ids equal
    assert not [n for n in op_names(path) if n.startswith("Flex") or n == "CUSTOM"]
    translator = TFLiteTranslator(path)  # tokenizers travel inside the file
    texts = ["9 May 2018", "1 jan", "3 March 19"]
    assert translator.translate(texts) == model.translate(texts)
    ids = model.encode_sources(texts)
    for width, penalty in ((3, 0.0), (4, 0.7)):
        want, _ = model.beam_search(ids, beam_width=width, length_penalty=penalty)
        got = translator.beam_search(ids, beam_width=width, length_penalty=penalty)
        np.testing.assert_array_equal(got, want)
    assert translator.translate(texts, beam_width=3) == model.translate(texts, beam_width=3)
    with pytest.raises(ValueError, match="max_source_length"):
        translator.translate(["9 May 2018 " * 5])
    with pytest.raises(ValueError, match="beam_width"):
        translator.translate(texts, beam_width=0)
