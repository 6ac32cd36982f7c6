"""SavedModel export: what TF Serving would load, replayed in a fresh process."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from tensorflow.core.protobuf import saved_model_pb2

from keras_recipes.causal_lm.graph_generate import weights_nbytes
from keras_recipes.export import export_saved_model, read_warmup_requests
from keras_recipes.export.saved_model import _CausalLMSignatures
from keras_recipes.rnn import build_bidirectional, build_encoder
from keras_recipes.serving import SavedModelSession, ServingError, check_saved_model
from keras_recipes.tokenizers import train_sentencepiece

TEXT = [
    "once upon a time there was a little cat who liked to sit on the mat",
    "the dog ran to the park and played with a red ball all day long",
    "a little girl found a shiny stone and showed it to her mother",
] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_sentencepiece(TEXT, vocab_size=48)


@pytest.fixture(scope="module")
def llama(tokenizer, peaky_llama):
    return peaky_llama(vocab_size=tokenizer.vocab_size, max_seq_len=64, tie_embeddings=False)


@pytest.fixture(scope="module")
def export_dir(llama, tokenizer, tmp_path_factory):
    base = tmp_path_factory.mktemp("saved_models") / "llama_tiny"
    export_saved_model(llama, base, tokenizer=tokenizer)
    return base


def graph_nodes(version):
    """Every node of a SavedModel's graph, functions (loop bodies) included."""
    graph = saved_model_pb2.SavedModel.FromString((version / "saved_model.pb").read_bytes())
    nodes = list(graph.meta_graphs[0].graph_def.node)
    for function in graph.meta_graphs[0].graph_def.library.function:
        nodes += function.node_def
    return nodes


def test_export_writes_version_1_atomically(export_dir):
    assert sorted(p.name for p in export_dir.iterdir()) == ["1"]
    version = export_dir / "1"
    assert (version / "saved_model.pb").is_file()
    assert (version / "assets.extra" / "tf_serving_warmup_requests").is_file()


def test_warmup_has_one_request_per_signature(export_dir):
    requests = read_warmup_requests(export_dir / "1" / "assets.extra/tf_serving_warmup_requests")
    names = [name for name, _ in requests]
    assert sorted(names) == ["generate", "generate_padded", "generate_text", "serving_default"]
    generate = dict(requests)["generate"]
    assert sorted(generate) == [
        "max_new_tokens",
        "seed",
        "temperature",
        "token_ids",
        "top_k",
        "top_p",
    ]


def test_tied_embeddings_are_stored_once(tmp_path, peaky_llama):
    # A naive export of a tied-embedding LLaMA stored the table twice.
    tied = peaky_llama(tie_embeddings=True, max_seq_len=32)
    version = export_saved_model(tied, tmp_path / "tied", verify=False)
    stored = sum(f.stat().st_size for f in (version / "variables").iterdir())
    weights = weights_nbytes(tied)
    assert weights <= stored < 1.1 * weights, (stored, weights)
    largest = max(
        n.attr["value"].tensor.ByteSize() for n in graph_nodes(version) if n.op == "Const"
    )
    table = tied.tok_embeddings.embeddings
    assert largest < table.shape[0] * table.shape[1], "weights baked into the graph"


def test_default_export_holds_no_xla_op(export_dir):
    # Outside XLA, TensorFlow runs an Xla* op (keras.ops.slice_update's
    # XlaDynamicUpdateSlice) only by compiling it with XLA, which a stock
    # TF Serving refuses unless started with --xla_cpu_compilation_enabled.
    xla_ops = {n.op for n in graph_nodes(export_dir / "1") if n.op.startswith("Xla")}
    assert not xla_ops, f"the SavedModel needs XLA to run: {sorted(xla_ops)}"


def test_existing_version_is_never_overwritten(export_dir, llama):
    before = sorted(p.name for p in (export_dir / "1").rglob("*"))
    with pytest.raises(ValueError, match="already exists"):
        export_saved_model(llama, export_dir, version=1)
    assert sorted(p.name for p in (export_dir / "1").rglob("*")) == before


def test_failed_verification_leaves_nothing(llama, tmp_path, monkeypatch):
    def wrong(self, name, inputs):
        return {"logits": np.zeros((2, 5, llama.config.vocab_size), np.float32)}

    monkeypatch.setattr(_CausalLMSignatures, "expected", wrong)
    with pytest.raises(ValueError, match="serving_default.*logits.*differs"):
        export_saved_model(llama, tmp_path / "m")
    assert list((tmp_path / "m").iterdir()) == []


def test_bad_arguments_are_named(llama, tmp_path):
    with pytest.raises(ValueError, match="version must be a positive int"):
        export_saved_model(llama, tmp_path / "m", version=0)
    with pytest.raises(ValueError, match="SentencePieceTokenizer"):
        export_saved_model(llama, tmp_path / "m", tokenizer=123)
    a, b = keras.Input((3,)), keras.Input((3,))
    two_inputs = keras.Model([a, b], keras.layers.Add()([a, b]))
    with pytest.raises(ValueError, match="2 inputs"):
        export_saved_model(two_inputs, tmp_path / "m2")


# A new process with no TensorFlow Python and no Keras objects: TF Serving's
# C++ session loader (the C API) answers the REST bodies.
FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    from keras_recipes.serving import SavedModelSession, rest_predict

    version, bodies_path = sys.argv[1], sys.argv[2]
    session = SavedModelSession(version)
    result = {"signatures": {}}
    for name, signature in session.signatures.items():
        if not name.startswith("__"):  # __saved_model_init_op
            result["signatures"][name] = {
                "inputs": sorted(signature.inputs),
                "outputs": sorted(signature.outputs),
            }
    result["rest"] = [rest_predict(session, body) for body in json.load(open(bodies_path))]
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    print(json.dumps(result))
    """
)


@pytest.fixture(scope="module")
def fresh(export_dir, tmp_path_factory):
    """Loads the export in a new Python process, as TF Serving would: no Keras objects."""
    prompt = [[2, 15, 16, 17], [2, 30, 31, 32]]
    sampled = {"max_new_tokens": 10, "temperature": 1.5, "top_k": 8, "top_p": 1.0, "seed": 11}
    greedy = {"max_new_tokens": 12, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0}
    bodies = [
        {"instances": [{"token_ids": row} for row in prompt]},
        {"inputs": {"token_ids": prompt}},
        {
            "signature_name": "generate",
            "instances": [{"token_ids": row, **greedy} for row in prompt],
        },
        {
            "signature_name": "generate",
            "inputs": {"token_ids": prompt, **{k: [v] for k, v in sampled.items()}},
        },
        {
            "signature_name": "generate_text",
            "instances": [{"prompt": p, **greedy} for p in ["once upon a time", "the dog"]],
        },
    ]
    bodies.append(bodies[3])  # the same seed again
    reseeded = {**sampled, "seed": sampled["seed"] + 1}
    bodies.append(
        {
            "signature_name": "generate",
            "inputs": {"token_ids": prompt, **{k: [v] for k, v in reseeded.items()}},
        }
    )
    path = tmp_path_factory.mktemp("bodies") / "bodies.json"
    path.write_text(json.dumps(bodies))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(export_dir / "1"), str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert not answer["tensorflow_imported"]
    return answer, prompt, greedy, sampled


def test_signatures_have_named_inputs_and_outputs(fresh):
    signatures = fresh[0]["signatures"]
    assert signatures["serving_default"] == {"inputs": ["token_ids"], "outputs": ["logits"]}
    controls = ["max_new_tokens", "seed", "temperature", "top_k", "top_p"]
    assert signatures["generate"] == {
        "inputs": sorted(["token_ids", *controls]),
        "outputs": ["token_ids"],
    }
    assert signatures["generate_text"] == {
        "inputs": sorted(["prompt", *controls]),
        "outputs": ["text"],
    }


def test_warmup_replay_matches_keras(export_dir, llama):
    replies = {r.signature: r.outputs for r in check_saved_model(export_dir)}
    ids = (np.arange(10, dtype=np.int32).reshape(2, 5) * 7 + 3) % llama.config.vocab_size
    np.testing.assert_allclose(replies["serving_default"]["logits"], llama(ids), atol=1e-5)
    np.testing.assert_array_equal(replies["generate"]["token_ids"], llama.generate(ids, 4))


def test_rest_row_and_columnar_logits_match_keras(fresh, llama):
    rest, prompt = fresh[0]["rest"], fresh[1]
    expected = np.asarray(llama(np.array(prompt, np.int32)))
    np.testing.assert_allclose(rest[0]["predictions"], expected, atol=1e-4)
    np.testing.assert_allclose(rest[1]["outputs"], expected, atol=1e-4)


def test_rest_generate_greedy_matches_model_generate(fresh, llama):
    rest, prompt, greedy = fresh[0]["rest"], fresh[1], fresh[2]
    want = llama.generate(prompt, greedy["max_new_tokens"])
    np.testing.assert_array_equal(rest[2]["predictions"], want)


def test_rest_generate_sampling_is_seeded_top_k(fresh, llama):
    # The in-graph loop is not XLA-compiled (TF Serving runs XLA only on
    # request) and XLA draws other stateless random numbers than TF's
    # kernels, so sampled tokens are checked by what they must satisfy:
    # same seed same tokens, and every token among the model's top-k.
    rest, prompt, sampled = fresh[0]["rest"], fresh[1], fresh[3]
    out = np.array(rest[3]["outputs"])
    assert out.shape == (2, len(prompt[0]) + sampled["max_new_tokens"])
    np.testing.assert_array_equal(out[:, : len(prompt[0])], prompt)
    np.testing.assert_array_equal(rest[5]["outputs"], out)
    assert not np.array_equal(rest[6]["outputs"], out)
    logits = np.asarray(llama(out[:, :-1]))
    for position in range(len(prompt[0]) - 1, out.shape[1] - 1):
        for row in range(2):
            rank = int(
                (logits[row, position] > logits[row, position, out[row, position + 1]]).sum()
            )
            assert rank < sampled["top_k"], (row, position, rank)
    greedy = llama.generate(prompt, sampled["max_new_tokens"])
    assert not np.array_equal(out, greedy)


def test_rest_generate_text_matches_keras_and_tokenizer(fresh, llama, tokenizer):
    rest, greedy = fresh[0]["rest"], fresh[2]
    texts = []
    for prompt in ["once upon a time", "the dog"]:
        ids = tokenizer.encode(prompt, add_bos=True)
        out = llama.generate([ids], greedy["max_new_tokens"], eos_id=tokenizer.eos_id)[0]
        new = out[len(ids) :]
        ends = np.flatnonzero(new == tokenizer.eos_id)
        texts.append(tokenizer.decode([*ids, *(new[: ends[0]] if len(ends) else new)]))
    assert rest[4]["predictions"] == texts


@pytest.fixture(scope="module")
def session(export_dir):
    with SavedModelSession(export_dir / "1") as loaded:
        yield loaded


def test_rows_with_different_controls_are_each_decoded_with_their_own(session, llama):
    out = session.run(
        "generate",
        {
            "token_ids": [[2, 3], [4, 5]],
            "max_new_tokens": [2, 3],
            "temperature": [0.0, 0.0],
            "top_k": [0, 3],
            "top_p": [1.0, 1.0],
            "seed": [0, 0],
        },
    )["token_ids"]
    assert out.shape == (2, 5)
    assert out[0].tolist() == [*np.asarray(llama.generate([[2, 3]], 2))[0], 0]
    assert out[1].tolist() == np.asarray(llama.generate([[4, 5]], 3))[0].tolist()


def test_next_export_is_version_2(export_dir, llama):
    path = export_saved_model(llama, export_dir, verify=False)
    assert path == export_dir / "2"
    assert not [p for p in export_dir.iterdir() if p.name.startswith(".")]


def test_classifier_gets_classify_with_labels(tmp_path):
    keras.utils.set_random_seed(1)
    model = build_encoder(vocab_size=50, embed_dim=8, units=8, sequence_length=6)
    path = export_saved_model(model, tmp_path / "sentiment", labels=["negative", "positive"])
    x = np.array([[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]], np.int32)
    with SavedModelSession(path) as session:
        out = session.run("classify", {"inputs": x})
    scores = np.asarray(model(x))
    np.testing.assert_allclose(out["scores"], scores, atol=1e-6)
    want = [b"positive" if s > 0.5 else b"negative" for s in scores[:, 0]]
    assert out["labels"].tolist() == want


def test_tagger_gets_tag_per_step(tmp_path):
    keras.utils.set_random_seed(2)
    model = build_bidirectional(
        "gru", 4, "sum", (5, 3), return_sequences=True, num_outputs=3, output_activation="softmax"
    )
    path = export_saved_model(model, tmp_path / "tagger", labels=["O", "PER", "LOC"])
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    with SavedModelSession(path) as session:
        out = session.run("tag", {"inputs": x})
    want = np.array([b"O", b"PER", b"LOC"], object)[np.asarray(model(x)).argmax(-1)]
    assert out["labels"].tolist() == want.tolist()
    np.testing.assert_allclose(out["scores"], model(x), atol=1e-5)


def test_jit_compiled_generate_matches_model_generate(llama, tmp_path):
    # verified through the C++ session loader, which compiles the loop with XLA
    path = export_saved_model(llama, tmp_path / "xla", jit_compile=True)
    prompt = np.array([[2, 15, 16, 17, 40, 41, 3], [2, 30, 31, 32, 1, 1, 9]], np.int32)
    controls = {"temperature": [0.0], "top_k": [0], "top_p": [1.0], "seed": [0]}
    controls["max_new_tokens"] = [20]
    with SavedModelSession(path) as session:
        out = session.run("generate", {"token_ids": prompt, **controls})
    np.testing.assert_array_equal(out["token_ids"], llama.generate(prompt, 20))
    # A stock TF Serving refuses it (XLA on CPU is off unless the server enables it).
    with pytest.raises(ServingError, match="needs XLA.*jit_compile.*--xla_cpu_compilation"):
        check_saved_model(path)


def test_seq2seq_gets_translate_string_to_string(tmp_path):
    from keras_recipes.seq2seq import Seq2Seq

    keras.utils.set_random_seed(4)
    pairs = [
        ("9 May 2018", "2018-05-09"),
        ("1 jan 2000", "2000-01-01"),
        ("3 March 1999", "1999-03-03"),
    ]
    model = Seq2Seq.from_pairs(pairs, units=8, embed_dim=4)
    path = export_saved_model(model, tmp_path / "dates")  # verified against model.translate
    texts = ["9 May 2018", "3 March 1999"]
    with SavedModelSession(path) as session:
        out = session.run("translate", {"text": np.array(texts, object)})["translation"]
    assert [t.decode() for t in out] == model.translate(texts)
    warmup = read_warmup_requests(path / "assets.extra/tf_serving_warmup_requests")
    assert [name for name, _ in warmup] == ["translate"]
    # The warm-up text is made of the model's own source characters.
    source_chars = set("".join(p for p, _ in pairs))
    assert all(set(t.decode()) <= source_chars for t in warmup[0][1]["text"])
    assert not [n.op for n in graph_nodes(path) if n.op.startswith("Xla")]


def test_word_level_seq2seq_warms_up_with_its_own_words(tmp_path):
    from keras_recipes.seq2seq import Seq2Seq

    keras.utils.set_random_seed(5)
    pairs = [("the cat sleeps", "le chat dort"), ("the dog runs", "le chien court")] * 2
    model = Seq2Seq.from_pairs(pairs, level="word", units=8, embed_dim=4)
    path = export_saved_model(model, tmp_path / "fr")  # verified through the C API loader
    ((name, inputs),) = read_warmup_requests(path / "assets.extra/tf_serving_warmup_requests")
    words = {w for text in inputs["text"] for w in text.decode().split()}
    assert name == "translate" and words <= {"the", "cat", "sleeps", "dog", "runs"}
