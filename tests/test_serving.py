"""TF Serving client against a local stand-in that answers as TF Serving's REST/gRPC APIs."""

import socket

import keras
import numpy as np
import pytest

from keras_recipes.export import export_saved_model
from keras_recipes.llama import LlamaConfig, build_llama
from keras_recipes.serving import (
    LocalServer,
    TFServingClient,
    read_models_config,
    write_models_config,
)


def test_models_config_parses_back_with_the_serving_protos(tmp_path):
    path = write_models_config(
        tmp_path / "models.config",
        [
            {"name": "llama_tiny", "base_path": "/models/llama_tiny", "latest": 2},
            {
                "name": "sentiment",
                "base_path": "/models/sentiment",
                "versions": [1, 3],
                "labels": {"stable": 1, "canary": 3},
            },
            {"name": "tagger", "base_path": "/models/tagger"},
        ],
    )
    config = read_models_config(path)
    models = {m.name: m for m in config.model_config_list.config}
    assert list(models) == ["llama_tiny", "sentiment", "tagger"]
    assert models["llama_tiny"].model_version_policy.latest.num_versions == 2
    assert list(models["sentiment"].model_version_policy.specific.versions) == [1, 3]
    assert dict(models["sentiment"].version_labels) == {"stable": 1, "canary": 3}
    assert models["tagger"].base_path == "/models/tagger"
    assert models["tagger"].model_platform == "tensorflow"
    assert not models["tagger"].HasField("model_version_policy")


def test_models_config_mistakes_are_named(tmp_path):
    with pytest.raises(ValueError, match="given twice"):
        write_models_config(
            tmp_path / "m", [{"name": "a", "base_path": "/a"}, {"name": "a", "base_path": "/b"}]
        )
    with pytest.raises(ValueError, match="does not serve"):
        write_models_config(
            tmp_path / "m",
            [{"name": "a", "base_path": "/a", "versions": [1], "labels": {"canary": 2}}],
        )
    with pytest.raises(ValueError, match="needs `name` and `base_path`"):
        write_models_config(tmp_path / "m", [{"name": "a"}])
    with pytest.raises(ValueError, match="choose one version policy"):
        write_models_config(
            tmp_path / "m", [{"name": "a", "base_path": "/a", "versions": [1], "latest": 1}]
        )


@pytest.fixture(scope="module")
def llama():
    keras.utils.set_random_seed(7)
    return build_llama(LlamaConfig.preset("tiny", vocab_size=64, max_seq_len=32))


@pytest.fixture(scope="module")
def server(llama, tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "llama"
    export_saved_model(llama, base)
    with LocalServer(base, grpc=True) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    return TFServingClient(server.url, grpc_target=server.grpc_target)


PROMPT = [[1, 5, 9, 12], [1, 7, 3, 30]]


def test_status_and_metadata(client):
    status = client.status("llama")
    assert status[0]["version"] == "1" and status[0]["state"] == "AVAILABLE"
    metadata = client.metadata("llama")
    # The MetaGraph's SignatureDefs as they are, the init op's included, as TF Serving answers.
    assert set(metadata) == {
        "serving_default",
        "generate",
        "generate_padded",
        "__saved_model_init_op",
    }
    assert set(metadata["serving_default"]["inputs"]) == {"token_ids"}
    assert metadata["serving_default"]["inputs"]["token_ids"]["dtype"] == "DT_INT32"
    assert set(metadata["generate"]["outputs"]) == {"token_ids"}
    assert (
        metadata["serving_default"]["inputs"]["token_ids"]["name"] == "serving_default_token_ids:0"
    )
    assert metadata["serving_default"]["method_name"] == "tensorflow/serving/predict"


def test_rest_predict_row_and_columnar(client, llama):
    want = np.asarray(llama(np.array(PROMPT, np.int32)))
    rows = client.predict("llama", instances=[{"token_ids": row} for row in PROMPT])
    columns = client.predict("llama", inputs={"token_ids": PROMPT}, version=1)
    np.testing.assert_allclose(rows, want, atol=1e-4)
    np.testing.assert_allclose(columns, want, atol=1e-4)
    one_input = client.predict("llama", instances=PROMPT)  # bare values for a one-input signature
    np.testing.assert_allclose(one_input, want, atol=1e-4)


def test_rest_generate(client, llama):
    controls = {"max_new_tokens": 6, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0}
    rows = client.predict(
        "llama", signature_name="generate", instances=[{"token_ids": r, **controls} for r in PROMPT]
    )
    np.testing.assert_array_equal(rows, llama.generate(PROMPT, 6))


def test_grpc_predict(client, llama):
    out = client.grpc_predict("llama", {"token_ids": np.array(PROMPT, np.int32)})
    np.testing.assert_allclose(out["logits"], llama(np.array(PROMPT, np.int32)), atol=1e-4)
    controls = {"max_new_tokens": [5], "temperature": [0.0], "top_k": [0], "top_p": [1.0]}
    controls["seed"] = [0]
    controls = {
        k: np.array(v, np.float32 if k in ("temperature", "top_p") else np.int32)
        for k, v in controls.items()
    }
    out = client.grpc_predict(
        "llama", {"token_ids": np.array(PROMPT, np.int32), **controls}, "generate"
    )
    np.testing.assert_array_equal(out["token_ids"], llama.generate(PROMPT, 5))


def test_wrong_signature_is_a_clear_error(client):
    with pytest.raises(ValueError, match=r"HTTP 400.*\"classify\" not found.*generate"):
        client.predict("llama", signature_name="classify", inputs={"token_ids": PROMPT})
    with pytest.raises(ValueError, match="Missing named input: max_new_tokens"):
        client.predict("llama", signature_name="generate", inputs={"token_ids": PROMPT})
    with pytest.raises(ValueError, match='FAILED_PRECONDITION.*"classify" not found'):
        client.grpc_predict("llama", {"token_ids": np.array(PROMPT, np.int32)}, "classify")


def test_unknown_model_is_a_clear_error(client):
    with pytest.raises(ValueError, match="HTTP 404"):
        client.status("nope")
    with pytest.raises(ValueError, match="NOT_FOUND"):
        client.grpc_predict("nope", {"token_ids": np.array(PROMPT, np.int32)})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_is_a_connection_error():
    port = free_port()
    client = TFServingClient(f"http://127.0.0.1:{port}", grpc_target=f"127.0.0.1:{port}", timeout=3)
    with pytest.raises(ConnectionError, match="Cannot reach TF Serving.*docker run"):
        client.status("llama")
    with pytest.raises(ConnectionError, match="gRPC API"):
        client.grpc_predict("llama", {"token_ids": np.array(PROMPT, np.int32)})


def test_client_argument_mistakes():
    with pytest.raises(ValueError, match="http://"):
        TFServingClient("localhost:8501")
    client = TFServingClient()
    assert client.grpc_target == "localhost:8500"
    with pytest.raises(ValueError, match="exactly one of"):
        client.predict("llama")


def test_out_of_range_token_ids_are_refused_naming_the_id(client):
    for body_ids, bad in [([[1, -5, 2]], "-5"), ([[1, 64, 2]], "64")]:
        with pytest.raises(ValueError, match=rf"HTTP 400.*outside \[0, 64\).*\[{bad}\]"):
            client.predict("llama", inputs={"token_ids": body_ids})
        controls = {"max_new_tokens": [2], "temperature": [0.0], "top_k": [0], "top_p": [1.0]}
        controls["seed"] = [0]
        with pytest.raises(ValueError, match=rf"HTTP 400.*outside \[0, 64\).*\[{bad}\]"):
            client.predict(
                "llama", signature_name="generate", inputs={"token_ids": body_ids, **controls}
            )


def test_fractional_ids_and_ragged_rows_are_refused_not_truncated(client):
    with pytest.raises(ValueError, match="HTTP 400.*token_ids.*2.5.*not of expected type: int32"):
        client.predict("llama", inputs={"token_ids": [[1, 2.5, 3]]})
    with pytest.raises(ValueError, match="HTTP 400.*list at unexpected size: 1 at level: 1"):
        client.predict("llama", inputs={"token_ids": [[1, 2, 3], [4]]})
    with pytest.raises(ValueError, match="HTTP 400.*token_ids.*String is not of expected type"):
        client.predict("llama", inputs={"token_ids": [["a", "b"]]})


def raw_post(server, body: bytes, content_length: str) -> tuple[int, dict]:
    """A predict request whose Content-Length header says what we choose."""
    import http.client
    import json
    from urllib.parse import urlparse

    url = urlparse(server.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.putrequest("POST", "/v1/models/llama:predict")
    connection.putheader("Content-Length", content_length)
    connection.endheaders()
    connection.send(body)
    response = connection.getresponse()
    answer = (response.status, json.loads(response.read()))
    connection.close()
    return answer


def test_a_bad_content_length_is_a_400_not_a_stuck_handler(server, monkeypatch):
    body = b'{"inputs": {"token_ids": [[1, 2]]}}'
    status, answer = raw_post(server, body, "-1")
    assert status == 400 and "Content-Length" in answer["error"]
    status, answer = raw_post(server, body, "abc")
    assert status == 400 and "Content-Length" in answer["error"]
    monkeypatch.setattr(server, "read_timeout", 1.0)
    status, answer = raw_post(server, body, str(len(body) + 10))  # the body never comes
    assert status == 400 and "ended after" in answer["error"]
    status, _ = raw_post(server, body, str(len(body)))
    assert status == 200
