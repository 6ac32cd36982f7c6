"""Bad inputs and faults, one case a line: each asserts the error type and the words a user needs.

The cases come from issue 26's probe (445 hostile-but-realistic inputs on
tiny models). Serving cases send the same request through TensorFlow's C API
session (the loader TF Serving runs: its messages are TensorFlow's own) and
through `LocalServer`, and the two must refuse it alike, with TF Serving's
status code.
"""

import base64
import json
import urllib.error
import urllib.request

import keras
import numpy as np
import pytest

from keras_recipes.embeddings import KeyedVectors
from keras_recipes.export import export_saved_model
from keras_recipes.llama import LlamaConfig, build_llama
from keras_recipes.serving import LocalServer, SavedModelSession, ServingError, rest_predict

# --- shared tiny models ---------------------------------------------------------------------

VOCAB, CONTEXT = 64, 32


@pytest.fixture(scope="module")
def llama():
    keras.utils.set_random_seed(7)
    return build_llama(LlamaConfig.preset("tiny", vocab_size=VOCAB, max_seq_len=CONTEXT))


@pytest.fixture(scope="module")
def llama_export(llama, tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "llama"
    export_saved_model(llama, base)
    return base


@pytest.fixture(scope="module")
def session(llama_export):
    with SavedModelSession(llama_export / "1") as loaded:
        yield loaded


@pytest.fixture(scope="module")
def server(llama_export):
    with LocalServer(llama_export, grpc=True) as running:
        yield running


@pytest.fixture(scope="module")
def vectors_server(tmp_path_factory):
    words = ["king", "queen", "man"]
    vectors = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    base = tmp_path_factory.mktemp("models") / "words"
    export_saved_model(KeyedVectors(words, vectors), base)
    with LocalServer(base) as running:
        yield running


# --- 1. the serving stand-in refuses what TF Serving refuses --------------------------------


def controls(rows=1, **changes):
    values = {"max_new_tokens": 2, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0}
    values.update(changes)
    floats = ("temperature", "top_p")
    return {
        key: np.array(
            v if isinstance(v, list) else [v] * rows, np.float32 if key in floats else np.int32
        )
        for key, v in values.items()
    }


def ids(rows):
    return np.array(rows, np.int32)


# (signature, inputs as a gRPC client sends them, words of TF's / the graph's refusal)
# fmt: off
GRPC_CASES = {
    "float ids are not cast": ("serving_default", {"token_ids": np.array([[1.7]], np.float32)}, "Expects arg[0] to be int32 but float is provided"),
    "int64 2**33+1 does not wrap": ("serving_default", {"token_ids": np.array([[2**33 + 1]], np.int64)}, "to be int32 but int64 is provided"),
    "40 tokens on a 32-token model": ("serving_default", {"token_ids": ids([[1] * 40])}, "longer than the context of the model (32 tokens"),
    "rank 3 ids": ("serving_default", {"token_ids": np.ones((1, 2, 2), np.int32)}, "has shape [1, 2, 2], but its signature takes shape [?,?] (rank 2)"),
    "id -1": ("serving_default", {"token_ids": ids([[1, -1]])}, "token id outside [0, 64)"),
    "top_k=-3": ("generate", {"token_ids": ids([[1, 2]]), **controls(top_k=-3)}, "top_k must be >= 0"),
    "top_p=1.5": ("generate", {"token_ids": ids([[1, 2]]), **controls(top_p=1.5)}, "top_p must be in [0, 1]"),
    "temperature nan": ("generate", {"token_ids": ids([[1, 2]]), **controls(temperature=float("nan"))}, "temperature must be >= 0"),
    "temperature inf": ("generate", {"token_ids": ids([[1, 2]]), **controls(temperature=float("inf"))}, "temperature must be >= 0"),
    "max_new_tokens [4,4] for one row": ("generate", {"token_ids": ids([[1, 2]]), **controls(max_new_tokens=[4, 4])}, "max_new_tokens must hold one value per row"),
    "empty control": ("generate", {"token_ids": ids([[1, 2]]), **controls(seed=[])}, "seed must hold one value per row"),
    "top_k=-3 in row 2": ("generate", {"token_ids": ids([[1, 2], [3, 4]]), **controls(top_k=[0, -3])}, "top_k must be >= 0"),
    "prompt + new tokens past the context": ("generate", {"token_ids": ids([[1] * 30]), **controls(max_new_tokens=8)}, "exceeds the context (32)"),
}
# fmt: on


@pytest.mark.parametrize("case", GRPC_CASES, ids=list(GRPC_CASES))
def test_grpc_refuses_as_the_c_api_session(case, session, server):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    signature, inputs, words = GRPC_CASES[case]
    with pytest.raises(ServingError) as by_session:
        session.run(signature, inputs, exact_dtypes=True)
    assert words in str(by_session.value)
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "llama", signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as by_server:
            stub.Predict(request, timeout=60)
    assert by_server.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert by_server.value.details() == str(by_session.value).removeprefix(f"{session.path}: ")


# fmt: off
GRPC_SPEC_CASES = {
    "version 99": (dict(name="llama", version=99), "NOT_FOUND", "Servable not found for request: Specific(llama, 99)"),
    "unknown model": (dict(name="nope"), "NOT_FOUND", "Servable not found for request: Latest(nope)"),
    "unknown label": (dict(name="llama", version_label="canary"), "INVALID_ARGUMENT", "Unrecognized servable version label: canary"),
    "unknown signature": (dict(name="llama", signature_name="classify"), "FAILED_PRECONDITION", 'Serving signature key "classify" not found.'),
    "missing input": (dict(name="llama", signature_name="generate"), "INVALID_ARGUMENT", "input size does not match signature: 1!=6"),
    "misspelt input": (dict(name="llama", inputs="tokens"), "INVALID_ARGUMENT", "input tensor alias not found in signature: tokens."),
    "unknown output filter": (dict(name="llama", output_filter="probs"), "INVALID_ARGUMENT", "output tensor alias not found in signature: probs"),
}
# fmt: on


@pytest.mark.parametrize("case", GRPC_SPEC_CASES, ids=list(GRPC_SPEC_CASES))
def test_grpc_model_spec_as_tf_serving(case, server):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    spec, code, words = GRPC_SPEC_CASES[case]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = spec["name"]
    if "version" in spec:
        request.model_spec.version.value = spec["version"]
    if "version_label" in spec:
        request.model_spec.version_label = spec["version_label"]
    request.model_spec.signature_name = spec.get("signature_name", "")
    request.inputs[spec.get("inputs", "token_ids")].CopyFrom(tf.make_tensor_proto(ids([[1, 2]])))
    if "output_filter" in spec:
        request.output_filter.append(spec["output_filter"])
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Predict(request, timeout=60)
    assert refused.value.code().name == code
    assert words in refused.value.details()


def http(server, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


GENERATE = {"max_new_tokens": [2], "temperature": [0.0], "top_k": [0], "top_p": [1.0], "seed": [0]}

# (body, HTTP status, words of TF Serving's refusal)
# fmt: off
REST_CASES = {
    "float ids": ({"inputs": [[1.7]]}, 400, "JSON Value: 1.7 Type: Number is not of expected type: int32"),
    "integral float ids": ({"inputs": [[1.0]]}, 400, "Type: Number is not of expected type: int32"),
    "int 2**33+1": ({"inputs": [[2**33 + 1]]}, 400, "JSON Value: 8589934593 Type: Number is not of expected type: int32"),
    "string ids": ({"inputs": [["7"]]}, 400, 'JSON Value: "7" Type: String is not of expected type: int32'),
    "bool ids": ({"inputs": [[True]]}, 400, "Type: True is not of expected type: int32"),
    "null id": ({"inputs": [[1, None]]}, 400, "Type: Null is not of expected type: int32"),
    "ragged rows": ({"inputs": [[1, 2, 3], [4]]}, 400, "Encountered list at unexpected size: 1 at level: 1 expected size: 3"),
    "ragged instances": ({"instances": [[1, 2, 3], [4]]}, 400, "Expecting shape [3] but got: [1]"),
    "40 tokens": ({"inputs": [[1] * 40]}, 400, "longer than the context of the model (32 tokens"),
    "rank 3": ({"inputs": [[[1, 2]]]}, 400, "but its signature takes shape [?,?] (rank 2)"),
    "signature_name [1]": ({"signature_name": [1], "inputs": [[1]]}, 400, "'signature_name' key must be a string value."),
    "unknown signature": ({"signature_name": "classify", "inputs": [[1]]}, 400, 'Serving signature name: "classify" not found in signature def'),
    "instances and inputs": ({"inputs": [[1]], "instances": [[1]]}, 400, "expecting only one of 'inputs' or 'instances'"),
    "empty instances": ({"instances": []}, 400, "No values in 'instances' array"),
    "body not an object": ([1, 2], 400, "Is not object"),
    "plain instances, many inputs": ({"signature_name": "generate", "instances": [[1, 2]]}, 400, "instances is a plain list, but expecting list of objects"),
    "missing input": ({"signature_name": "generate", "inputs": {"token_ids": [[1, 2]]}}, 400, "Missing named input: max_new_tokens in 'inputs' object."),
    "misspelt control": ({"signature_name": "generate", "inputs": {"token_ids": [[1, 2]], **GENERATE, "topk": [1]}}, 400, "unexpected ['topk']"),
    "instance keys differ": ({"signature_name": "generate", "instances": [{"token_ids": [1], "max_new_tokens": 2}]}, 400, "keys must be equal to: max_new_tokens,seed,"),
    "top_k -3": ({"signature_name": "generate", "inputs": {"token_ids": [[1, 2]], **GENERATE, "top_k": [-3]}}, 400, "top_k must be >= 0"),
    "max_new_tokens [4,4] for one row": ({"signature_name": "generate", "inputs": {"token_ids": [[1, 2]], **GENERATE, "max_new_tokens": [4, 4]}}, 400, "max_new_tokens must hold one value per row"),
    "id 64": ({"inputs": [[1, 64]]}, 400, "token id outside [0, 64)"),
}
# fmt: on


@pytest.mark.parametrize("case", REST_CASES, ids=list(REST_CASES))
def test_rest_refuses_as_the_c_api_session(case, session, server):
    body, status, words = REST_CASES[case]
    with pytest.raises(ServingError) as by_session:
        rest_predict(session, body)
    assert words in str(by_session.value)
    code, answer = http(server, "POST", "/v1/models/llama:predict", body)
    assert (code, answer["error"]) == (
        status,
        str(by_session.value).removeprefix(f"{session.path}: "),
    )


# (method, path, HTTP status, words)
# fmt: off
REST_ROUTE_CASES = {
    "predict version 99": ("POST", "/v1/models/llama/versions/99:predict", 404, "Servable not found for request: Specific(llama, 99)"),
    "status version 99": ("GET", "/v1/models/llama/versions/99", 404, "Could not find version 99 of model llama"),
    "label": ("POST", "/v1/models/llama/labels/canary:predict", 400, "Unrecognized servable version label: canary"),
    "unknown model": ("GET", "/v1/models/nope", 404, "Servable not found for request: Latest(nope)"),
    "model name prefix": ("GET", "/v1/models/llamas", 404, "Latest(llamas)"),
    "unknown verb": ("POST", "/v1/models/llama:classify", 400, "Malformed request: POST /v1/models/llama:classify"),
}
# fmt: on


@pytest.mark.parametrize("case", REST_ROUTE_CASES, ids=list(REST_ROUTE_CASES))
def test_rest_routes_as_tf_serving(case, server):
    method, path, status, words = REST_ROUTE_CASES[case]
    code, answer = http(server, method, path, {"inputs": [[1, 2]]} if method == "POST" else None)
    assert code == status and words in answer["error"]


def test_rest_known_version_answers(server, llama):
    code, answer = http(server, "POST", "/v1/models/llama/versions/1:predict", {"inputs": [[1, 2]]})
    assert code == 200
    np.testing.assert_allclose(answer["outputs"], llama(ids([[1, 2]])), atol=1e-4)


def test_rest_b64_rows_are_strings(vectors_server):
    session = vectors_server.session
    want = session.run("lookup", {"words": np.array([b"king", b"nope"], object)})
    b64 = {"b64": base64.b64encode(b"king").decode()}
    for body in ({"instances": [b64, "nope"]}, {"inputs": [b64, "nope"]}):
        code, answer = http(vectors_server, "POST", "/v1/models/words:predict", body)
        assert code == 200
        got = answer.get("predictions") or answer["outputs"]
        rows = (
            got
            if isinstance(got, list)
            else [dict(zip(got, v, strict=True)) for v in zip(*got.values(), strict=True)]
        )
        np.testing.assert_allclose([r["vectors"] for r in rows], want["vectors"], atol=1e-6)
        assert [r["in_vocabulary"] for r in rows] == want["in_vocabulary"].tolist()


# fmt: off
STRING_CASES = {
    "numbers and null as words": ({"inputs": ["king", 2.5, None]}, "JSON Value: 2.5 Type: Number is not of expected type: string"),
    "bad base64": ({"inputs": [{"b64": "!!"}]}, "Unable to base64 decode"),
    "b64 with another key": ({"inputs": [{"b64": "a2luZw==", "x": 1}]}, "not formatted correctly for base64 data"),
}
# fmt: on


@pytest.mark.parametrize("case", STRING_CASES, ids=list(STRING_CASES))
def test_rest_string_inputs_as_tf_serving(case, vectors_server):
    body, words = STRING_CASES[case]
    with pytest.raises(ServingError) as by_session:
        rest_predict(vectors_server.session, body)
    assert words in str(by_session.value)
    code, answer = http(vectors_server, "POST", "/v1/models/words:predict", body)
    assert (code, answer["error"]) == (400, str(by_session.value))


# --- 2. one validator for the CLI and the library; no NaN run called finished ---------------

# fmt: off
SETTING_CASES = {
    "learning rate nan": (dict(learning_rate=float("nan")), "--learning-rate must be a finite number > 0"),
    "learning rate inf": (dict(learning_rate=float("inf")), "--learning-rate must be a finite number > 0"),
    "learning rate 0": (dict(learning_rate=0.0), "--learning-rate must be a finite number > 0"),
    "clipnorm -1": (dict(clipnorm=-1.0), "`clipnorm` must be a number > 0, or None"),
    "clipnorm nan": (dict(clipnorm=float("nan")), "`clipnorm` must be a number, not NaN"),
    "weight decay -0.1": (dict(weight_decay=-0.1), "`weight_decay` must be a finite number >= 0"),
    "dropout 1": (dict(dropout=1.0), "--dropout must be in [0, 1)"),
    "dropout nan": (dict(dropout=float("nan")), "--dropout must be in [0, 1)"),
    "epochs 0": (dict(epochs=0), "--epochs must be an int >= 1"),
    "seq len 1": (dict(seq_len=1), "--seq-len must be an int >= 2"),
    "batch size 0": (dict(batch_size=0), "--batch-size must be an int >= 1"),
    "warmup -1": (dict(warmup_steps=-1), "--warmup-steps must be an int >= 0"),
    "heads not a multiple": (dict(n_heads=3, n_kv_heads=2), "must be a multiple of --n-kv-heads"),
    "temperature -1": (dict(temperature=-1.0), "temperature must be >= 0"),
    "temperature inf": (dict(temperature=float("inf")), "temperature must be >= 0 (0 = greedy), got inf"),
    "top k 0": (dict(top_k=0), "top_k must be a positive int or None"),
    "top p 1.5": (dict(top_p=1.5), "top_p must be in (0, 1]"),
    "max new tokens -1": (dict(max_new_tokens=-1), "--max-new-tokens must be an int >= 0"),
}
# fmt: on


@pytest.mark.parametrize("case", SETTING_CASES, ids=list(SETTING_CASES))
def test_training_settings_are_checked_once(case):
    from keras_recipes.llama.train import training_settings

    overrides, words = SETTING_CASES[case]
    with pytest.raises(ValueError) as refused:
        training_settings(quick=True, **overrides)
    assert words in str(refused.value)


@pytest.mark.parametrize(
    "flags", [["--learning-rate", "nan"], ["--clipnorm", "-1"], ["--top-p", "1.5"]]
)
def test_cli_refuses_flags_with_the_library_message(flags, tmp_path, capsys):
    from keras_recipes.cli import main
    from keras_recipes.llama.train import training_settings

    key = flags[0][2:].replace("-", "_")
    with pytest.raises(ValueError) as library:
        training_settings(quick=True, **{key: float(flags[1])})
    assert main(["llama", "train", "--quick", "--out", str(tmp_path / "run"), *flags]) == 2
    assert capsys.readouterr().err.strip() == f"keras-recipes llama train: {library.value}"
    assert not (tmp_path / "run").exists()


def test_make_optimizer_refuses_what_the_cli_refuses(llama):
    from keras_recipes.llama.train import make_optimizer

    with pytest.raises(ValueError, match="`clipnorm` must be a number > 0"):
        make_optimizer(llama, total_steps=10, clipnorm=-1.0)


def test_a_nan_loss_stops_fit_with_an_error(tmp_path):
    from keras_recipes.llama.train import StopOnNonFiniteLoss

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.ones((8, 2), np.float32), np.full((8, 1), np.nan, np.float32)
    guard = StopOnNonFiniteLoss(tmp_path, {"learning_rate": 0.1, "clipnorm": 1.0})
    with pytest.raises(FloatingPointError, match="the loss is nan at epoch 1, step 1.*--overwrite"):
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[guard])


def test_nan_weights_are_neither_backed_up_nor_saved(tmp_path):
    from keras_recipes.llama.backup import StepBackupAndRestore

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.ones((8, 2), np.float32), np.ones((8, 1), np.float32)
    backup = StepBackupAndRestore(tmp_path / "backup", save_freq=1, delete_on_train_end=False)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[backup])
    good = sorted(p.name for p in (tmp_path / "backup").iterdir())
    model.layers[0].kernel.assign(np.full((2, 1), np.nan, np.float32))
    with pytest.raises(FloatingPointError, match="NaN or inf.*keeps the last good backup"):
        backup._save_model()
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == good


@pytest.mark.slow
def test_llama_train_with_a_huge_learning_rate_is_not_finished(tmp_path):
    from keras_recipes.llama.train import train_llama

    corpus = tmp_path / "a.txt"
    words = "the cat sat on a mat and dog ran to big red house in town with old man".split()
    rng = np.random.default_rng(0)
    corpus.write_text("\n".join(" ".join(rng.choice(words, 30)) for _ in range(200)))
    out = tmp_path / "run"
    with pytest.raises(FloatingPointError, match="the loss is nan"):
        train_llama(out, corpus=[corpus], quick=True, verbose=0, epochs=1, learning_rate=1e25,
                    vocab_size=40, prompt="the cat")  # fmt: skip
    assert not (out / "model.keras").exists() and not (out / "metrics.json").exists()


# --- 4. one training per run folder; a full disk keeps the last good backup -----------------


def test_a_second_training_into_one_folder_names_the_holder(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        # another process taking the same OS lock as lock_run_folder (without importing Keras)
        [sys.executable, "-c", "import fcntl, os, sys, time; f = open(sys.argv[1], 'a+'); "
         "fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB); f.write(f'{os.getpid()}\\n'); "
         "f.flush(); print('locked', flush=True); time.sleep(60)", str(out / ".lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        from keras_recipes.llama.train import lock_run_folder

        with pytest.raises(ValueError, match=rf"in use by another training \(pid {holder.pid}"):
            lock_run_folder(out)
    finally:
        holder.kill()
        holder.wait()
    assert lock_run_folder(out) is not None  # the lock went with its process


@pytest.mark.parametrize("where", ["weights", "metadata", "free space"])
def test_a_full_disk_while_backing_up_keeps_the_last_good_backup(where, tmp_path, monkeypatch):
    import errno
    import shutil
    from collections import namedtuple
    from pathlib import Path

    from keras_recipes.llama.backup import StepBackupAndRestore, read_backup

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.ones((8, 2), np.float32), np.ones((8, 1), np.float32)
    backup = StepBackupAndRestore(tmp_path / "backup", save_freq=1, delete_on_train_end=False)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[backup])
    before = read_backup(tmp_path / "backup")
    files = sorted(p.name for p in (tmp_path / "backup").iterdir())

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "weights":
        monkeypatch.setattr(model, "save_weights", no_space)
    elif where == "metadata":
        monkeypatch.setattr(Path, "write_text", no_space)
    else:
        usage = namedtuple("usage", "total used free")
        monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(1 << 30, 1 << 30, 0))
    backup._steps_done += 1
    with pytest.raises(OSError, match="No space left.*last good backup is kept.*resume") as full:
        backup._save_model()
    assert full.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == files
    assert read_backup(tmp_path / "backup")["batch"] == before["batch"]


# --- 3. the XLA cache heals, degrades, and takes paths with spaces ----------------------------

ENTRY = "xla_compile_cache__*.pb"


@pytest.fixture(scope="module")
def real_entry(tmp_path_factory):
    """A cache entry TensorFlow wrote in this process (its cache folder is TF_XLA_FLAGS')."""
    import os
    import shlex
    import shutil
    import struct

    import tensorflow as tf

    from keras_recipes.xla_cache import DIRECTORY_FLAG

    flags = [f for f in shlex.split(os.environ.get("TF_XLA_FLAGS", "")) if DIRECTORY_FLAG in f]
    if not flags:
        pytest.skip("this process runs without XLA's persistent cache")
    folder = flags[0].partition("=")[2]
    before = set(os.listdir(folder))
    offset = float(np.random.default_rng().integers(1 << 30))  # a program never compiled before
    tf.function(lambda x: tf.reduce_sum(tf.sin(x) + offset), jit_compile=True)(tf.ones([3]))
    new = set(os.listdir(folder)) - before - {"keras_recipes_entries.json"}
    if len(new) > 1:  # another pytest worker shares the folder: ours holds our constant
        constant = struct.pack("<f", np.float32(offset))
        new = {e for e in new if constant in open(os.path.join(folder, e), "rb").read()}
    (name,) = new
    copy = tmp_path_factory.mktemp("entry") / name
    shutil.copyfile(os.path.join(folder, name), copy)
    return copy


def damaged(entry, folder, how):
    from keras_recipes.xla_cache import record_xla_cache_entries

    data = entry.read_bytes()
    target = folder / entry.name
    target.write_bytes(data)
    record_xla_cache_entries(str(folder))  # its writer's checksum, as at exit
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    changes = {"truncated": data[: len(data) // 2], "empty": b"", "bit-flipped": bytes(flipped)}
    if how == "renamed":
        target.rename(folder / entry.name.replace("__XLA_CPU_JIT", "__XLA_GPU_JIT"))
    else:
        target.write_bytes(changes[how])


# fmt: off
HEAL_CASES = {
    "truncated": "truncated or damaged",
    "empty": "(empty)",
    "bit-flipped": "changed since it was written",
    "renamed": "not the entry its name says",
}
# fmt: on


@pytest.mark.parametrize("how", HEAL_CASES, ids=list(HEAL_CASES))
def test_a_damaged_cache_entry_is_removed_with_one_warning(how, real_entry, tmp_path):
    from keras_recipes.xla_cache import entry_problem, heal_xla_cache

    assert entry_problem(real_entry) is None
    damaged(real_entry, tmp_path, how)
    with pytest.warns(RuntimeWarning, match="removed 1 damaged XLA cache entry") as caught:
        removed = heal_xla_cache(tmp_path)
    assert len(caught) == 1 and len(str(caught[0].message).splitlines()) == 1
    assert HEAL_CASES[how] in removed[0]
    assert not list(tmp_path.glob(ENTRY))


def test_a_good_entry_and_a_fresh_temporary_file_stay(real_entry, tmp_path):
    import os
    import time
    import warnings

    from keras_recipes.xla_cache import heal_xla_cache

    damaged(real_entry, tmp_path, "renamed")
    (tmp_path / real_entry.name).write_bytes(real_entry.read_bytes())  # good, beside it
    fresh, stale = tmp_path / "a.pb.tmp", tmp_path / "b.pb.tmp"
    fresh.write_bytes(b"x")
    stale.write_bytes(b"x")
    os.utime(stale, (time.time() - 3600,) * 2)  # a full disk's leftover
    with warnings.catch_warnings(record=True):
        heal_xla_cache(tmp_path)
    assert (tmp_path / real_entry.name).exists() and fresh.exists() and not stale.exists()


@pytest.mark.parametrize("fault", ["full disk", "read-only folder"])
def test_an_unusable_cache_folder_turns_the_cache_off_with_a_warning(fault, tmp_path, monkeypatch):
    import errno
    import shutil
    import tempfile
    from collections import namedtuple

    from keras_recipes.xla_cache import enable_xla_cache

    if fault == "full disk":
        usage = namedtuple("usage", "total used free")
        monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(1 << 30, 1 << 30, 1 << 20))
        words = "has 1 MiB free"
    else:

        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
        words = "cannot write its folder.*Read-only file system"
    environ = {"KERAS_RECIPES_XLA_CACHE": str(tmp_path / "xla")}
    with pytest.warns(RuntimeWarning, match=f"cache is off: .*{words}"):
        assert enable_xla_cache(environ) is None
    assert "TF_XLA_FLAGS" not in environ


# fmt: off
PATH_CASES = {
    "space in the folder": ({"KERAS_RECIPES_XLA_CACHE": "{tmp}/my cache"}, '"{tmp}/my cache"'),
    "space in HOME": ({"XDG_CACHE_HOME": "{tmp}/home dir/.cache"}, '"{tmp}/home dir/.cache/keras-recipes/xla/'),
}
# fmt: on


@pytest.mark.parametrize("case", PATH_CASES, ids=list(PATH_CASES))
def test_a_cache_path_with_spaces_is_quoted_for_tf_xla_flags(case, tmp_path):
    import shlex
    import warnings

    from keras_recipes.xla_cache import DIRECTORY_FLAG, enable_xla_cache

    environ, flag = PATH_CASES[case]
    environ = {k: v.format(tmp=tmp_path) for k, v in environ.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder = enable_xla_cache(environ)
    assert environ["TF_XLA_FLAGS"].startswith(f"{DIRECTORY_FLAG}={flag.format(tmp=tmp_path)}")
    assert shlex.split(environ["TF_XLA_FLAGS"]) == [f"{DIRECTORY_FLAG}={folder}"]
    assert enable_xla_cache(environ) == folder  # read back as one flag


def test_a_cache_path_with_a_quote_turns_the_cache_off_saying_why(tmp_path):
    from keras_recipes.xla_cache import enable_xla_cache

    environ = {"KERAS_RECIPES_XLA_CACHE": str(tmp_path / 'say "cheese"')}
    with pytest.warns(RuntimeWarning, match="holds a quote or a backslash"):
        assert enable_xla_cache(environ) is None


@pytest.mark.slow  # three fresh TensorFlow processes
@pytest.mark.parametrize("how", ["truncated", "empty", "bit-flipped"])
def test_generate_recompiles_after_a_damaged_entry(how, tmp_path):
    import os
    import subprocess
    import sys

    code = (
        "import warnings, keras_recipes, tensorflow as tf\n"
        "f = tf.function(lambda x: tf.reduce_sum(tf.sin(x) * 2.0 + 1.0), jit_compile=True)\n"
        "print(float(f(tf.ones([7]))))\n"
    )
    folder = tmp_path / "with space" / "xla"
    env = {**os.environ, "KERAS_RECIPES_XLA_CACHE": str(folder), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_XLA_FLAGS", None)

    def run():
        done = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    first = run()
    (entry,) = folder.glob(ENTRY)
    data = entry.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    entry.write_bytes({"truncated": data[:100], "empty": b"", "bit-flipped": bytes(flipped)}[how])
    second = run()
    assert second.stdout == first.stdout
    assert second.stderr.count("removed 1 damaged XLA cache entry") == 1
    assert entry_problem_free(folder)


def entry_problem_free(folder) -> bool:
    from keras_recipes.xla_cache import entry_problem

    return all(entry_problem(p) is None for p in folder.glob(ENTRY))


# --- 5. NaN and Inf are refused by every writer unless allow_nonfinite=True --------------------


@pytest.fixture(scope="module")
def nan_llama():
    keras.utils.set_random_seed(8)
    model = build_llama(LlamaConfig.preset("tiny", vocab_size=VOCAB, max_seq_len=CONTEXT))
    kernel = model.blocks[0].attention.wq.kernel
    value = np.array(kernel.numpy())
    value[0, 0] = np.nan
    kernel.assign(value)
    return model


def _quantize(model, tmp, **kw):
    from keras_recipes.llama.quantize import quantize_for_decoding

    return quantize_for_decoding(model, "int8", **kw)


def _export_int8(model, tmp, **kw):
    return export_saved_model(model, tmp / "m", weights="int8", verify=False, **kw)


def _save(suffix):
    def save(model, tmp, **kw):
        from keras_recipes.llama.checkpoints import save_checkpoint

        return save_checkpoint(model, tmp / f"m{suffix}", **kw)

    return save


def _save_hf(model, tmp, **kw):
    from keras_recipes.llama.checkpoints.hf import save_hf

    return save_hf(model, tmp / "hf", **kw)


def _save_llama2c(model, tmp, **kw):
    from keras_recipes.llama.checkpoints.llama2c import save_llama2c

    return save_llama2c(model, tmp / "m.bin", **kw)


# fmt: off
NAN_WRITERS = {
    "quantize_for_decoding int8": _quantize,
    "export_saved_model int8": _export_int8,
    "save_checkpoint .keras": _save(".keras"),
    "save_checkpoint .bin": _save(".bin"),
    "save_checkpoint HF folder": _save(""),
    "save_hf": _save_hf,
    "save_llama2c": _save_llama2c,
}
# fmt: on


@pytest.mark.parametrize("writer", NAN_WRITERS, ids=list(NAN_WRITERS))
def test_nan_weights_are_refused_by_each_writer(writer, nan_llama, tmp_path):
    from keras_recipes._finite import NonFiniteWeightsError

    with pytest.raises(
        NonFiniteWeightsError, match=r"(wq/kernel|q_proj.weight) holds NaN or Inf.*allow_nonfinite"
    ):
        NAN_WRITERS[writer](nan_llama, tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary


def test_allow_nonfinite_writes_them_anyway(nan_llama, tmp_path):
    from keras_recipes.llama.checkpoints import load_checkpoint

    path = _save_llama2c(nan_llama, tmp_path, allow_nonfinite=True)
    assert np.isnan(
        load_checkpoint(path, allow_nonfinite=True).blocks[0].attention.wq.kernel.numpy()
    ).any()


def test_a_nan_export_check_says_nan_not_a_difference(tmp_path):
    wv = KeyedVectors(["a", "b"], np.array([[1.0, np.nan], [0.0, 1.0]], np.float32))
    with pytest.raises(ValueError, match="NaN or Inf.*allow_nonfinite"):
        export_saved_model(wv, tmp_path / "m")
    with pytest.raises(ServingError, match="holds NaN in .*weights hold NaN or Inf"):
        export_saved_model(wv, tmp_path / "m", allow_nonfinite=True)
    assert not [p for p in (tmp_path / "m").iterdir() if p.name != ".lock"]


# fmt: off
VECTOR_FILES = {
    "text nan": (b"2 2\na 1.0 nan\nb 0.0 1.0\n", False, "line 2: word 'a' has a NaN or Inf value"),
    "text inf": (b"2 2\na 1.0 2.0\nb -inf 1.0\n", False, "line 3: word 'b' has a NaN or Inf value"),
    "binary nan": (b"1 2\na " + np.array([1.0, np.nan], "<f4").tobytes() + b"\n", True, "entry 1 (byte offset 6): word 'a' has a NaN"),
}
# fmt: on


@pytest.mark.parametrize("case", VECTOR_FILES, ids=list(VECTOR_FILES))
def test_vector_files_with_nan_are_refused_naming_the_place(case, tmp_path):
    data, binary, words = VECTOR_FILES[case]
    path = tmp_path / "v.txt"
    path.write_bytes(data)
    with pytest.raises(ValueError) as refused:
        KeyedVectors.load_word2vec_format(path, binary=binary)
    assert str(path) in str(refused.value) and words in str(refused.value)


@pytest.mark.parametrize("how", ["word2vec text", "word2vec binary", "archive"])
def test_nan_vectors_are_not_written(how, tmp_path):
    wv = KeyedVectors(["a", "b"], np.array([[1.0, np.nan], [0.0, 1.0]], np.float32))
    path = tmp_path / "v"
    with pytest.raises(ValueError, match="NaN or Inf.*allow_nonfinite"):
        if how == "archive":
            wv.save(path)
        else:
            wv.save_word2vec_format(path, binary=how.endswith("binary"))
    assert not list(tmp_path.iterdir())


# --- 6. ids are checked at the public entry points ---------------------------------------------


@pytest.fixture(scope="module")
def int8_llama(llama):
    from keras_recipes.llama.quantize import quantize_for_decoding

    return quantize_for_decoding(llama, "int8")


# fmt: off
LLAMA_ID_CASES = {
    "model id -1 (read row 63)": ("llama", [[1, -1]], "LlamaModel: token id -1 at [0, 1] is outside [0, 64)"),
    "model id 64": ("llama", [[1, 64]], "LlamaModel: token id 64 at [0, 1] is outside [0, 64)"),
    "model fractional ids": ("llama", np.array([[1.5]]), "LlamaModel: token ids must be integers"),
    "int8 id -1": ("int8_llama", [[1, -1]], "QuantizedLlama: token id -1 at [0, 1]"),
    "int8 id 64": ("int8_llama", [[64]], "QuantizedLlama: token id 64 at [0, 0]"),
}
# fmt: on


@pytest.mark.parametrize("case", LLAMA_ID_CASES, ids=list(LLAMA_ID_CASES))
def test_llama_ids_out_of_range_are_named(case, request):
    fixture, token_ids, words = LLAMA_ID_CASES[case]
    model = request.getfixturevalue(fixture)
    with pytest.raises(ValueError) as refused:
        model(token_ids)
    assert words in str(refused.value)


def test_llama_in_range_ids_still_answer(llama):
    assert tuple(llama(np.array([[0, 63]], np.int32)).shape) == (1, 2, VOCAB)


@pytest.fixture(scope="module")
def crf_tagger():
    from keras_recipes.taggers import build_tagger

    keras.utils.set_random_seed(3)
    tagger = build_tagger(vocab_size=20, num_tags=4, embed_dim=4, units=4, crf=True)
    tagger.compile(optimizer="adam")
    return tagger


WORDS = np.array([[1, 2, 3, 0]], np.int32)

# fmt: off
TAGGER_CASES = {
    "fit tag -1": ("fit", WORDS, np.array([[0, -1, 2, 0]]), "CRFTagger.fit: tag id -1 at [0, 1] is outside [0, 4)"),
    "fit tag 4": ("fit", WORDS, np.array([[0, 4, 2, 0]]), "CRFTagger.fit: tag id 4 at [0, 1]"),
    "fit word 20": ("fit", np.array([[1, 20, 3, 0]]), np.zeros((1, 4), int), "CRFTagger.fit: word id 20 at [0, 1] is outside [0, 20)"),
    "predict word -2": ("predict", np.array([[1, -2]]), None, "CRFTagger.predict: word id -2 at [0, 1]"),
    "call word 20": ("__call__", np.array([[20]]), None, "CRFTagger: word id 20 at [0, 0]"),
    "evaluate tag 9": ("evaluate", WORDS, np.array([[9, 0, 0, 0]]), "CRFTagger.evaluate: tag id 9 at [0, 0]"),
}
# fmt: on


@pytest.mark.parametrize("case", TAGGER_CASES, ids=list(TAGGER_CASES))
def test_crf_tagger_ids_out_of_range_are_named(case, crf_tagger):
    method, x, y, words = TAGGER_CASES[case]
    args = (x,) if y is None else (x, y)
    with pytest.raises(ValueError) as refused:
        getattr(crf_tagger, method)(*args, **({} if method == "__call__" else {"verbose": 0}))
    assert words in str(refused.value)


@pytest.fixture(scope="module")
def doc2vec():
    from keras_recipes.embeddings import Doc2Vec, TaggedDocument

    docs = [TaggedDocument(["cats", "purr", "and", "meow"], [0]), TaggedDocument(["dogs", "bark", "and", "growl"], [1])] * 20  # fmt: skip
    return Doc2Vec(docs, vector_size=8, min_count=1, epochs=2, seed=1)


def test_doc2vec_refuses_bool_tags_that_would_merge_with_ints():
    from keras_recipes.embeddings import Doc2Vec, TaggedDocument

    docs = [TaggedDocument(["a", "b"], [True]), TaggedDocument(["c", "d"], [1])]
    with pytest.raises(ValueError, match=r"Document 0's tags \[True\] hold a bool; True and 1"):
        Doc2Vec(docs, vector_size=4, min_count=1, epochs=1)


# fmt: off
INFER_CASES = {
    "epochs -1": (dict(epochs=-1), "infer_vector: epochs must be an int >= 0, got -1"),
    "epochs 2.5": (dict(epochs=2.5), "infer_vector: epochs must be an int >= 0, got 2.5"),
    "alpha nan": (dict(alpha=float("nan")), "infer_vector: alpha must be a finite number >= 0, got nan"),
    "min_alpha -1": (dict(min_alpha=-1.0), "infer_vector: min_alpha must be a finite number >= 0"),
}
# fmt: on


@pytest.mark.parametrize("case", INFER_CASES, ids=list(INFER_CASES))
def test_infer_vector_arguments_are_checked(case, doc2vec):
    kwargs, words = INFER_CASES[case]
    with pytest.raises(ValueError) as refused:
        doc2vec.infer_vector(["cats", "purr"], **kwargs)
    assert words in str(refused.value)


# --- 7. readers name the file and the place; line breaks follow the format ---------------------


def _conll(path):
    from keras_recipes.datasets.ner import read_conll

    return read_conll(path)


def _pairs(path):
    from keras_recipes.datasets.pairs import read_pairs

    return read_pairs(path)


def _run_json(path):
    from keras_recipes.llama.train import check_finished_run

    (path.parent / "model.keras").write_bytes(b"x")
    return check_finished_run(path.parent, {"dim": 32})


def _tokenizer_json(path):
    from keras_recipes.tokenizers.huggingface import BytePairTokenizerJson

    return BytePairTokenizerJson(path)


def _vectors(path):
    return KeyedVectors.load_word2vec_format(path)


def _doc2vec(path):
    from keras_recipes.embeddings import Doc2Vec

    return Doc2Vec.load(path)


def _keras(path):
    from keras_recipes.llama.checkpoints import load_checkpoint

    return load_checkpoint(path)


# fmt: off
READER_CASES = {
    "CoNLL non-UTF-8": ("train.txt", b"EU B-ORG\nrejects O\n\xff O\n", _conll, r"train.txt, line 3 \(byte offset 19\): not valid utf-8"),
    "pairs non-UTF-8": ("spa.txt", b"Hi.\tHola.\nWho?\t\xbfQui\xe9n?\n", _pairs, r"spa.txt, line 2 \(byte offset 15\): not valid utf-8"),
    "run.json bad JSON": ("run.json", b'{"dim": 32,', _run_json, r"run.json, line 1, column 12: not valid JSON"),
    "run.json non-UTF-8": ("run.json", b'{"dim": "\xff"}', _run_json, r"run.json, line 1 \(byte offset 9\): not valid utf-8"),
    "tokenizer.json bad JSON": ("tokenizer.json", b'{"model": }', _tokenizer_json, r"tokenizer.json, line 1, column 11: not valid JSON"),
    "vector file non-UTF-8": ("v.txt", b"2 2\na 1 2\n\xff 1 2\n", _vectors, r"v.txt, line 3 \(byte 0 of the line\): not valid utf-?8"),
    "Doc2Vec.load truncated": ("d.npz", b"PK\x03\x04garbage", _doc2vec, r"d.npz: the archive is damaged or truncated"),
    ".keras damaged": ("m.keras", b"PK\x03\x04garbage", _keras, r"m.keras cannot be read as a .keras file .*damaged or truncated"),
}
# fmt: on


@pytest.mark.parametrize("case", READER_CASES, ids=list(READER_CASES))
def test_readers_name_the_file_and_place(case, tmp_path):
    name, data, reader, words = READER_CASES[case]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ValueError, match=words):
        reader(path)


# fmt: off
LINE_BREAK_CASES = {
    "U+2028 inside a CoNLL token": ("c.txt", "EU\u2028x B-ORG\nrejects O\n", _conll, [(["EU\u2028x", "rejects"], ["B-ORG", "O"])]),
    "form feed inside a pair": ("p.txt", "Hi.\x0c there\tHola.\n", _pairs, [("Hi.\x0c there", "Hola.")]),
    "NEL inside a pair": ("p.txt", "Go\x85 now.\tVe.\r\nHi.\tHola.\r\n", _pairs, [("Go\x85 now.", "Ve."), ("Hi.", "Hola.")]),
    "BOM before -DOCSTART-": ("c.txt", "\ufeff-DOCSTART- -X- O O\n\nEU B-ORG\n", _conll, [(["EU"], ["B-ORG"])]),
    "CRLF CoNLL": ("c.txt", "EU B-ORG\r\nrejects O\r\n\r\nOK O\r\n", _conll, [(["EU", "rejects"], ["B-ORG", "O"]), (["OK"], ["O"])]),
}
# fmt: on


@pytest.mark.parametrize("case", LINE_BREAK_CASES, ids=list(LINE_BREAK_CASES))
def test_lines_split_only_on_newlines_and_boms_are_dropped(case, tmp_path):
    name, text, reader, want = LINE_BREAK_CASES[case]
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    assert reader(path) == want


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# (what to damage in a copy of the version folder, the file named, the words of the fix)
# fmt: off
SERVE_CHECK_CASES = {
    "corrupt saved_model.pb": (lambda v: _truncate(v / "saved_model.pb"), "1/saved_model.pb is damaged", "export a new version"),
    "missing variables/": (lambda v: __import__("shutil").rmtree(v / "variables"), "1/variables is missing", "copy the whole version folder"),
    "truncated variables shard": (lambda v: _truncate(next((v / "variables").glob("variables.data-*"))), "variables.data-00000-of-00001: the saved weights cannot be restored", "Copy the version folder again"),
    "truncated variables.index": (lambda v: _truncate(v / "variables" / "variables.index"), "variables/variables.index: the saved weights cannot be restored", "Copy the version folder again"),
}
# fmt: on


@pytest.mark.parametrize("case", SERVE_CHECK_CASES, ids=list(SERVE_CHECK_CASES))
def test_serve_check_names_the_damaged_file_and_the_fix(case, llama_export, tmp_path, capsys):
    import shutil

    from keras_recipes.cli import main

    damage, file_words, fix = SERVE_CHECK_CASES[case]
    version = tmp_path / "llama" / "1"
    shutil.copytree(llama_export / "1", version)
    damage(version)
    assert main(["serve", "check", str(version)]) != 0
    err = capsys.readouterr().err
    assert file_words in err and fix in err, err


# fmt: off
MODELS_CONFIG_CASES = {
    "versions [-1]": ([{"name": "a", "base_path": "/a", "versions": [-1]}], "`versions` of 'a' must be a non-empty list of version numbers >= 1"),
    "versions []": ([{"name": "a", "base_path": "/a", "versions": []}], "`versions` of 'a' must be a non-empty list"),
    "latest 0": ([{"name": "a", "base_path": "/a", "latest": 0}], "`latest` of 'a' must be an int >= 1"),
    "empty name": ([{"name": "", "base_path": "/a"}], "`name` must be a non-empty string"),
    "empty base_path": ([{"name": "a", "base_path": " "}], "`base_path` must be a non-empty string"),
    "a list of names": (["llama"], "`models` must be a list of dicts"),
    "label to version 0": ([{"name": "a", "base_path": "/a", "labels": {"stable": 0}}], "labels of 'a' map a non-empty name to a version >= 1"),
}
# fmt: on


@pytest.mark.parametrize("case", MODELS_CONFIG_CASES, ids=list(MODELS_CONFIG_CASES))
def test_models_config_refuses_what_tf_serving_cannot_serve(case, tmp_path):
    from keras_recipes.serving import write_models_config

    models, words = MODELS_CONFIG_CASES[case]
    with pytest.raises(ValueError) as refused:
        write_models_config(tmp_path / "models.config", models)
    assert words in str(refused.value)
    assert not list(tmp_path.iterdir())


def test_a_damaged_models_config_names_the_file(tmp_path):
    from keras_recipes.serving import read_models_config

    path = tmp_path / "models.config"
    path.write_text("model_config_list { config { name: ")
    with pytest.raises(ValueError, match=r"models.config: not a TF Serving models.config"):
        read_models_config(path)


# --- 8. every writer follows the umask ---------------------------------------------------------


def _w_save_hf(model, wv, out):
    from keras_recipes.llama.checkpoints.hf import save_hf

    save_hf(model, out / "hf")


def _w_llama2c(model, wv, out):
    from keras_recipes.llama.checkpoints import save_checkpoint

    save_checkpoint(model, out / "m.bin")


def _w_keras(model, wv, out):
    from keras_recipes.llama.checkpoints import save_checkpoint

    save_checkpoint(model, out / "m.keras")


def _w_export(model, wv, out):
    export_saved_model(wv, out / "words", verify=False)


def _w_word2vec(model, wv, out):
    wv.save_word2vec_format(out / "v.txt")
    wv.save_word2vec_format(out / "v.bin", binary=True)


def _w_archive(model, wv, out):
    wv.save(out / "v.npz")


def _w_run_json(model, wv, out):
    from keras_recipes.llama.train import _write_json

    _write_json(out / "metrics.json", {"a": 1})


def _w_models_config(model, wv, out):
    from keras_recipes.serving import write_models_config

    write_models_config(out / "models.config", [{"name": "a", "base_path": "/a"}])


def _w_backup(model, wv, out):
    from keras_recipes.llama.backup import StepBackupAndRestore

    small = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    small.compile("sgd", "mse")
    backup = StepBackupAndRestore(out / "backup", save_freq=1, delete_on_train_end=False)
    small.fit(np.ones((4, 2)), np.ones((4, 1)), batch_size=4, verbose=0, callbacks=[backup])


# fmt: off
WRITERS = {
    "save_hf": _w_save_hf, "save_llama2c": _w_llama2c, ".keras": _w_keras,
    "export_saved_model": _w_export, "word2vec text and binary": _w_word2vec,
    "vectors archive": _w_archive, "metrics.json": _w_run_json,
    "models.config": _w_models_config, "training backup": _w_backup,
}
# fmt: on


@pytest.mark.parametrize("writer", WRITERS, ids=list(WRITERS))
def test_every_writer_follows_the_umask(writer, llama, tmp_path):
    import os
    import stat

    wv = KeyedVectors(["a", "b"], np.eye(2, dtype=np.float32))
    out = tmp_path / "out"
    out.mkdir()
    old = os.umask(0o027)
    try:
        WRITERS[writer](llama, wv, out)
    finally:
        os.umask(old)
    written = [p for p in out.rglob("*")]
    assert written
    modes = {str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode) for p in written}
    want = {name: 0o750 if (out / name).is_dir() else 0o640 for name in modes}
    assert modes == want
