"""Word vectors as a TF Serving SavedModel: the `lookup` signature, replayed in a fresh process."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from tensorflow.core.protobuf import saved_model_pb2

from keras_recipes.embeddings import KeyedVectors, Word2Vec
from keras_recipes.export import export_saved_model, read_warmup_requests
from keras_recipes.export.saved_model import _VectorSignatures
from keras_recipes.serving import SavedModelSession, check_saved_model

WORDS = ["king", "queen", "man", "woman", "straße", "東京"]
DIM = 64


@pytest.fixture(scope="module")
def wv():
    vectors = np.random.default_rng(0).normal(size=(len(WORDS), DIM)).astype(np.float32)
    return KeyedVectors(WORDS, vectors)


@pytest.fixture(scope="module")
def export_dir(wv, tmp_path_factory):
    base = tmp_path_factory.mktemp("saved_models") / "word2vec"
    export_saved_model(wv, base)  # verified against wv before the rename
    return base


# A new process with no TensorFlow Python and no KeyedVectors: TF Serving's
# C++ session loader (the C API) answers the REST bodies.
FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    from keras_recipes.serving import SavedModelSession, rest_predict

    version, bodies_path = sys.argv[1], sys.argv[2]
    session = SavedModelSession(version)
    result = {"signatures": {}}
    for name, signature in session.signatures.items():
        if name.startswith("__"):  # __saved_model_init_op: the tables' initializer
            continue
        result["signatures"][name] = {
            "inputs": {k: [i.dtype_name, list(i.shape)] for k, i in signature.inputs.items()},
            "outputs": {k: [i.dtype_name, list(i.shape)] for k, i in signature.outputs.items()},
        }
    bodies = json.load(open(bodies_path, encoding="utf-8"))
    result["rest"] = [rest_predict(session, body) for body in bodies]
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    print(json.dumps(result))
    """
)

BODIES = [
    {"signature_name": "lookup", "instances": ["king", "queen", "zzz"]},
    {"signature_name": "lookup", "inputs": {"words": ["straße", "東京", "King"]}},
    {"instances": ["woman"]},  # serving_default is the same lookup
]


@pytest.fixture(scope="module")
def fresh(export_dir, tmp_path_factory):
    """Loads the export in a new Python process, as TF Serving would: no KeyedVectors there."""
    path = tmp_path_factory.mktemp("bodies") / "bodies.json"
    path.write_text(json.dumps(BODIES, ensure_ascii=False), encoding="utf-8")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(export_dir / "1"), str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert not answer["tensorflow_imported"]
    return answer


def expected_rows(wv, words):
    return [(np.asarray(wv[w]) if w in wv else np.zeros(DIM, np.float32), w in wv) for w in words]


def test_export_writes_version_1_with_warmup(export_dir):
    assert sorted(p.name for p in export_dir.iterdir()) == ["1"]
    assert (export_dir / "1" / "saved_model.pb").is_file()
    assert (export_dir / "1" / "assets.extra" / "tf_serving_warmup_requests").is_file()


def test_lookup_signature_names_dtypes_and_shapes(fresh):
    want = {
        "inputs": {"words": ["DT_STRING", [-1]]},
        "outputs": {"vectors": ["DT_FLOAT", [-1, DIM]], "in_vocabulary": ["DT_BOOL", [-1]]},
    }
    assert fresh["signatures"]["lookup"] == want
    assert fresh["signatures"]["serving_default"] == want


def test_rest_row_format_matches_keyed_vectors(fresh, wv):
    predictions = fresh["rest"][0]["predictions"]
    assert len(predictions) == 3
    for row, (vector, known) in zip(
        predictions, expected_rows(wv, ["king", "queen", "zzz"]), strict=True
    ):
        assert sorted(row) == ["in_vocabulary", "vectors"]
        assert row["in_vocabulary"] is known
        np.testing.assert_array_equal(np.array(row["vectors"], np.float32), vector)
    assert not np.any(predictions[2]["vectors"])  # the unknown word is all zeros
    np.testing.assert_array_equal(np.array(predictions[0]["vectors"], np.float32), wv["king"])


def test_rest_columnar_utf8_and_case_sensitive(fresh, wv):
    outputs = fresh["rest"][1]["outputs"]
    words = BODIES[1]["inputs"]["words"]
    assert outputs["in_vocabulary"] == [True, True, False]  # "King" is not "king"
    want = np.stack([vector for vector, _ in expected_rows(wv, words)])
    np.testing.assert_array_equal(np.array(outputs["vectors"], np.float32), want)


def test_serving_default_is_lookup(fresh, wv):
    (row,) = fresh["rest"][2]["predictions"]
    assert row["in_vocabulary"] is True
    np.testing.assert_array_equal(np.array(row["vectors"], np.float32), wv["woman"])


def test_warmup_replays_lookup_with_an_unknown_word(export_dir, wv):
    (replay,) = check_saved_model(export_dir)  # TF Serving's loader, in a fresh process
    words = [w.decode() for w in replay.inputs["words"]]
    assert replay.signature == "lookup"
    assert words[:2] == WORDS[:2] and words[2] not in wv
    assert replay.outputs["in_vocabulary"].tolist() == [True, True, False]
    want = np.stack([vector for vector, _ in expected_rows(wv, words)])
    np.testing.assert_array_equal(replay.outputs["vectors"], want)


def test_vectors_are_stored_once_as_a_variable(export_dir, wv):
    version = export_dir / "1"
    stored = sum(f.stat().st_size for f in (version / "variables").iterdir())
    assert wv.vectors.nbytes <= stored < 1.1 * wv.vectors.nbytes + 4096, stored
    graph = saved_model_pb2.SavedModel.FromString((version / "saved_model.pb").read_bytes())
    nodes = list(graph.meta_graphs[0].graph_def.node)
    for function in graph.meta_graphs[0].graph_def.library.function:
        nodes += function.node_def
    largest = max(n.attr["value"].tensor.ByteSize() for n in nodes if n.op == "Const")
    assert largest < wv.vectors.nbytes, "vectors baked into the graph"


def test_failed_verification_leaves_nothing(wv, tmp_path, monkeypatch):
    def wrong(self, name, inputs):
        return {
            "vectors": np.ones((len(inputs["words"]), DIM), np.float32),
            "in_vocabulary": np.array([True, True, False]),
        }

    monkeypatch.setattr(_VectorSignatures, "expected", wrong)
    with pytest.raises(ValueError, match="lookup.*vectors.*differs"):
        export_saved_model(wv, tmp_path / "m")
    assert list((tmp_path / "m").iterdir()) == []


def test_word2vec_exports_its_wv_as_next_version(export_dir, tmp_path):
    # build_vocab initializes the vectors; no training needed to check the export.
    model = Word2Vec(vector_size=4, min_count=1)
    model.build_vocab([["a", "b", "c"], ["b", "c", "d"]])
    path = export_saved_model(model, tmp_path / "w2v", model_name="w2v")
    with SavedModelSession(path) as session:
        out = session.run("lookup", {"words": np.array([b"c", b"nope"], object)})
    np.testing.assert_array_equal(out["vectors"][0], model.wv["c"])
    np.testing.assert_array_equal(out["vectors"][1], np.zeros(4, np.float32))
    assert out["in_vocabulary"].tolist() == [True, False]
    requests = read_warmup_requests(path / "assets.extra/tf_serving_warmup_requests")
    assert [name for name, _ in requests] == ["lookup"]


def test_bad_arguments_are_named(wv, tmp_path):
    with pytest.raises(ValueError, match="no vectors yet"):
        export_saved_model(Word2Vec(vector_size=4), tmp_path / "m")
    with pytest.raises(ValueError, match="no words"):
        export_saved_model(KeyedVectors([], np.zeros((0, 4))), tmp_path / "m")
    with pytest.raises(ValueError, match="neither `tokenizer` nor `labels`"):
        export_saved_model(wv, tmp_path / "m", labels=["x"])
    with pytest.raises(ValueError, match="KeyedVectors or Word2Vec"):
        export_saved_model({"king": [1.0]}, tmp_path / "m")
