"""TF Serving: a client, its REST request format, `models.config`, a local stand-in.

- `TFServingClient(url)`: REST predict (row `instances` and columnar
  `inputs` bodies), model status and metadata, and gRPC `Predict` through
  tensorflow-serving-api, with errors that say what is wrong.
- `write_models_config(path, models)`: the `--model_config_file` TF Serving
  reads to serve several models, with version policies and labels.
- `rest_predict(loaded, body)`: what TF Serving's REST API does with a JSON
  body, run on a SavedModel loaded in Python. `LocalServer` answers TF
  Serving's REST routes on 127.0.0.1 with it, so clients and exports can be
  tested where the server binary cannot be installed.

Serve an export with Docker:

```
docker run -p 8501:8501 -p 8500:8500 \\
    -v "$PWD/saved_models/llama_tiny:/models/llama_tiny" \\
    -e MODEL_NAME=llama_tiny tensorflow/serving
curl -d '{"signature_name": "generate", "instances": [{"token_ids": [1, 5, 9],
    "max_new_tokens": 16, "temperature": 0.0, "top_k": 0, "seed": 0}]}' \\
    localhost:8501/v1/models/llama_tiny:predict
```
"""

from __future__ import annotations

import base64
import json
import os
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

DEFAULT_REST_URL = "http://localhost:8501"
DEFAULT_GRPC_TARGET = "localhost:8500"


# --- models.config ----------------------------------------------------------


def write_models_config(path: str | os.PathLike, models: list[dict]) -> Path:
    """Write a TF Serving `models.config` (a `ModelServerConfig` text proto).

    Args:
        path: the file to write; pass it to the server as
            `--model_config_file=/models/models.config`.
        models: list of dicts, one per model, with keys
            `name` (str), `base_path` (str, the folder holding the version
            folders, as the server sees it), and optionally
            `versions` (list of int: serve exactly these),
            `latest` (int: serve the newest N; the default policy is the
            newest 1), `labels` (dict `{label: version}`, e.g.
            `{"stable": 1, "canary": 2}`; each version must be served).

    Returns:
        The `Path` written. The text parses back with
        `tensorflow_serving.config.model_server_config_pb2.ModelServerConfig`.

    Examples:

    ```python
    write_models_config("saved_models/models.config", [
        {"name": "llama_tiny", "base_path": "/models/llama_tiny", "latest": 2},
        {"name": "sentiment", "base_path": "/models/sentiment", "versions": [1, 2],
         "labels": {"stable": 1, "canary": 2}},
    ])
    ```
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2 as config_pb2

    if not models:
        raise ValueError("write_models_config: give at least one model.")
    config = config_pb2.ModelServerConfig()
    names = set()
    for entry in models:
        unknown = set(entry) - {"name", "base_path", "versions", "latest", "labels"}
        if unknown or "name" not in entry or "base_path" not in entry:
            raise ValueError(
                f"write_models_config: each model needs `name` and `base_path`, optionally "
                f"`versions`, `latest`, `labels`; got keys {sorted(entry)}."
            )
        if entry["name"] in names:
            raise ValueError(f"write_models_config: model name {entry['name']!r} given twice.")
        names.add(entry["name"])
        if "versions" in entry and "latest" in entry:
            raise ValueError(
                f"write_models_config: {entry['name']!r} gives both `versions` and `latest`; "
                "choose one version policy."
            )
        model = config.model_config_list.config.add(
            name=entry["name"], base_path=str(entry["base_path"]), model_platform="tensorflow"
        )
        served = None
        if "versions" in entry:
            served = [int(v) for v in entry["versions"]]
            model.model_version_policy.specific.versions.extend(served)
        elif "latest" in entry:
            model.model_version_policy.latest.num_versions = int(entry["latest"])
        for label, version in (entry.get("labels") or {}).items():
            if served is not None and int(version) not in served:
                raise ValueError(
                    f"write_models_config: label {label!r} of {entry['name']!r} points at "
                    f"version {version}, which its policy does not serve ({served})."
                )
            model.version_labels[str(label)] = int(version)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text_format.MessageToString(config))
    os.replace(partial, path)
    return path


def read_models_config(path: str | os.PathLike):
    """Parse a `models.config` file into a `ModelServerConfig` proto."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2 as config_pb2

    return text_format.Parse(Path(path).read_text(), config_pb2.ModelServerConfig())


# --- TF Serving's REST body format -----------------------------------------


def _to_json(value):
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind in "SU":
        return np.vectorize(
            lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v),
            otypes=[object],
        )(array).tolist()
    return array.tolist()


def _from_json(value, dtype):
    import tensorflow as tf

    if dtype == tf.string:

        def convert(item):
            if isinstance(item, dict) and "b64" in item:
                return base64.b64decode(item["b64"])
            if isinstance(item, list):
                return [convert(i) for i in item]
            return str(item).encode("utf-8")

        return np.array(convert(value), dtype=object)
    return np.asarray(value, dtype=dtype.as_numpy_dtype)


def rest_predict(loaded, body: dict) -> dict:
    """Answer a TF Serving REST predict body with a loaded SavedModel.

    Follows TF Serving's JSON rules: `{"signature_name", "instances": [...]}`
    (row format: a list of per-example dicts, or of values for a one-input
    signature) answers `{"predictions": [...]}` (per-example dicts, or
    values for a one-output signature); `{"inputs": ...}` (columnar: a dict
    of batched values, or one value) answers `{"outputs": ...}`.
    A body TF Serving would refuse raises a `ValueError` with its reason.
    """
    if not isinstance(body, dict):
        raise ValueError("The request body must be a JSON object.")
    name = body.get("signature_name", "serving_default")
    if name not in loaded.signatures:
        raise ValueError(
            f'Serving signature name: "{name}" not found in signature def; '
            f"available: {sorted(loaded.signatures)}"
        )
    function = loaded.signatures[name]
    specs = function.structured_input_signature[1]
    if ("instances" in body) == ("inputs" in body):
        raise ValueError('JSON body must have exactly one of "instances" or "inputs".')
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise ValueError('"instances" must be a non-empty list.')
        if isinstance(instances[0], dict):
            keys = set(instances[0])
            if any(set(row) != keys for row in instances):
                raise ValueError("Every instance must name the same inputs.")
            columns = {key: [row[key] for row in instances] for key in keys}
        else:
            if len(specs) != 1:
                raise ValueError(
                    f"Signature {name!r} takes named inputs {sorted(specs)}; send "
                    'instances as objects, e.g. [{"input_name": value}].'
                )
            columns = {next(iter(specs)): instances}
    else:
        inputs = body["inputs"]
        if isinstance(inputs, dict):
            columns = inputs
        elif len(specs) == 1:
            columns = {next(iter(specs)): inputs}
        else:
            raise ValueError(f"Signature {name!r} takes named inputs {sorted(specs)}.")
    missing, extra = sorted(set(specs) - set(columns)), sorted(set(columns) - set(specs))
    if missing or extra:
        raise ValueError(
            f"input size does not match signature {name!r}: needs {sorted(specs)}, "
            f"missing {missing}, unexpected {extra}."
        )
    feeds = {key: _from_json(columns[key], specs[key].dtype) for key in specs}
    from keras_recipes.export.saved_model import call_signature

    outputs = call_signature(loaded, name, feeds)
    if "instances" in body:
        if len(outputs) == 1:
            return {"predictions": _to_json(next(iter(outputs.values())))}
        rows = len(next(iter(outputs.values())))
        return {
            "predictions": [{k: _to_json(v[i]) for k, v in outputs.items()} for i in range(rows)]
        }
    if len(outputs) == 1:
        return {"outputs": _to_json(next(iter(outputs.values())))}
    return {"outputs": {k: _to_json(v) for k, v in outputs.items()}}


def signature_metadata(loaded) -> dict:
    """The `metadata` part of TF Serving's metadata answer, in its JSON layout."""
    from tensorflow.core.framework import types_pb2

    def tensor_info(key, spec):
        dims = [] if spec.shape.rank is None else spec.shape.as_list()
        return {
            "dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
            "tensor_shape": {
                "dim": [{"size": str(-1 if d is None else d), "name": ""} for d in dims],
                "unknown_rank": spec.shape.rank is None,
            },
            "name": key,
        }

    signatures = {}
    for name, function in loaded.signatures.items():
        inputs = function.structured_input_signature[1].items()
        signatures[name] = {
            "inputs": {key: tensor_info(key, spec) for key, spec in inputs},
            "outputs": {
                key: tensor_info(key, spec) for key, spec in function.structured_outputs.items()
            },
            "method_name": "tensorflow/serving/predict",
        }
    return {"signature_def": {"signature_def": signatures}}


# --- a local stand-in for the server ---------------------------------------


class LocalServer:
    """TF Serving's REST API on 127.0.0.1, answered by the SavedModel in Python.

    Routes: `GET /v1/models/NAME` (status), `GET /v1/models/NAME/metadata`,
    `POST /v1/models/NAME[/versions/N]:predict`. It loads the highest
    version under `base_dir` (as the server does) and, optionally, starts a
    gRPC `PredictionService` answering `Predict`. For tests and demos; it is
    not a production server.

    Args:
        base_dir: the model folder holding version folders.
        name: str, the model name in URLs; defaults to `base_dir`'s name.
        grpc: bool, default False. Also serve gRPC `Predict`.

    Examples:

    ```python
    with LocalServer("saved_models/llama_tiny") as server:
        client = TFServingClient(server.url, grpc_target=server.grpc_target)
        client.predict("llama_tiny", instances=[{"token_ids": [1, 2]}])
    ```
    """

    def __init__(self, base_dir: str | os.PathLike, name: str | None = None, grpc: bool = False):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (its ops are in TF Serving's build, not in TF's)

        base_dir = Path(base_dir)
        versions = sorted(
            int(p.name) for p in base_dir.iterdir() if p.is_dir() and p.name.isdigit()
        )
        if not versions:
            raise ValueError(f"LocalServer: no version folders (1, 2, ...) under {base_dir}.")
        self.name = name or base_dir.resolve().name
        self.version = versions[-1]
        self.loaded = tf.saved_model.load(str(base_dir / str(self.version)))
        self._want_grpc = grpc
        self._http = None
        self._grpc = None
        self.url = None
        self.grpc_target = None

    def start(self) -> LocalServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _answer(self, code: int, payload: dict):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _model_path(self):
                prefix = f"/v1/models/{server.name}"
                if not self.path.startswith(prefix):
                    self._answer(404, {"error": f"Servable not found for request: {self.path}"})
                    return None
                return self.path[len(prefix) :]

            def do_GET(self):
                rest = self._model_path()
                if rest is None:
                    return
                if rest in ("", "/"):
                    status = {"error_code": "OK", "error_message": ""}
                    self._answer(
                        200,
                        {
                            "model_version_status": [
                                {
                                    "version": str(server.version),
                                    "state": "AVAILABLE",
                                    "status": status,
                                }
                            ]
                        },
                    )
                elif rest == "/metadata":
                    spec = {
                        "name": server.name,
                        "signature_name": "",
                        "version": str(server.version),
                    }
                    self._answer(
                        200, {"model_spec": spec, "metadata": signature_metadata(server.loaded)}
                    )
                else:
                    self._answer(404, {"error": f"Unknown route {self.path}"})

            def do_POST(self):
                rest = self._model_path()
                if rest is None:
                    return
                if rest.startswith("/versions/"):
                    version, _, rest = rest[len("/versions/") :].partition(":")
                    if version != str(server.version):
                        self._answer(404, {"error": f"Servable not found: version {version}"})
                        return
                    rest = ":" + rest
                if rest != ":predict":
                    self._answer(404, {"error": f"Unknown route {self.path}"})
                    return
                try:
                    length = int(self.headers.get("Content-Length", 0))
                    body = json.loads(self.rfile.read(length) or b"null")
                    self._answer(200, rest_predict(server.loaded, body))
                except (ValueError, json.JSONDecodeError) as error:
                    self._answer(400, {"error": str(error)})
                except Exception as error:  # the graph refused the request (e.g. an assert)
                    self._answer(400, {"error": f"{type(error).__name__}: {error}"})

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        if self._want_grpc:
            self._start_grpc()
        return self

    def _start_grpc(self):
        from concurrent import futures

        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        from keras_recipes.export.saved_model import call_signature

        server = self

        class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):
                if request.model_spec.name != server.name:
                    context.abort(
                        grpc.StatusCode.NOT_FOUND,
                        f"Servable not found for request: {request.model_spec.name}",
                    )
                name = request.model_spec.signature_name or "serving_default"
                inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
                try:
                    outputs = call_signature(server.loaded, name, inputs)
                except Exception as error:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
                response = predict_pb2.PredictResponse()
                response.model_spec.CopyFrom(request.model_spec)
                response.model_spec.version.value = server.version
                for key, value in outputs.items():
                    response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
                return response

        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), self._grpc)
        port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        self.grpc_target = f"127.0.0.1:{port}"

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(0)
            self._grpc = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- the client -------------------------------------------------------------


class TFServingClient:
    """A client for TF Serving's REST (port 8501) and gRPC (port 8500) APIs.

    Args:
        url: str, the REST address, default `"http://localhost:8501"`.
        grpc_target: str or None, `host:port` of the gRPC API (default: the
            REST host on port 8500).
        timeout: float, seconds per request, default 30.

    Examples:

    ```python
    client = TFServingClient("http://localhost:8501")
    client.status("llama_tiny")            # [{"version": "1", "state": "AVAILABLE", ...}]
    client.predict("llama_tiny", signature_name="generate_text",
                   instances=[{"prompt": "Once upon a time", "max_new_tokens": 32,
                               "temperature": 0.0, "top_k": 0, "seed": 0}])
    client.grpc_predict("llama_tiny", {"token_ids": [[1, 5, 9]]})   # {"logits": array}
    ```
    """

    def __init__(
        self, url: str = DEFAULT_REST_URL, grpc_target: str | None = None, timeout: float = 30.0
    ):
        if not url.startswith(("http://", "https://")):
            raise ValueError(
                f"TFServingClient: url must start with http:// or https://, got {url!r}."
            )
        self.url = url.rstrip("/")
        if grpc_target is None:
            host = self.url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
            grpc_target = f"{host}:8500"
        self.grpc_target = grpc_target
        self.timeout = timeout

    def _request(self, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            try:
                message = json.loads(error.read()).get("error", "")
            except (json.JSONDecodeError, AttributeError):
                message = error.reason
            raise ValueError(
                f"TF Serving at {self.url} refused {path} (HTTP {error.code}): {message}"
            ) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            raise ConnectionError(
                f"Cannot reach TF Serving at {self.url} ({reason}). Is the server running? "
                "Start it with: docker run -p 8501:8501 -v $PWD/saved_models/NAME:/models/NAME "
                "-e MODEL_NAME=NAME tensorflow/serving"
            ) from None

    @staticmethod
    def _model_path(model: str, version: int | None, label: str | None = None) -> str:
        path = f"/v1/models/{model}"
        if version is not None and label is not None:
            raise ValueError("TFServingClient: give a version or a label, not both.")
        if version is not None:
            path += f"/versions/{int(version)}"
        elif label is not None:
            path += f"/labels/{label}"
        return path

    def status(self, model: str, version: int | None = None) -> list[dict]:
        """The `model_version_status` list: version, state (e.g. AVAILABLE), status."""
        return self._request(self._model_path(model, version))["model_version_status"]

    def metadata(self, model: str, version: int | None = None) -> dict:
        """The served signatures: `{name: {"inputs": {...}, "outputs": {...}}}`."""
        answer = self._request(self._model_path(model, version) + "/metadata")
        signature_def = answer["metadata"]["signature_def"]
        # The real server nests one more level: {"signature_def": {"signature_def": {...}}}.
        return signature_def.get("signature_def", signature_def)

    def predict(
        self,
        model: str,
        inputs=None,
        instances: list | None = None,
        signature_name: str = "serving_default",
        version: int | None = None,
        label: str | None = None,
    ):
        """REST predict, columnar (`inputs`) or row format (`instances`).

        Args:
            model: str, the served model name.
            inputs: columnar body: a dict `{input_name: batched values}` (or
                one value for a one-input signature). Returns `outputs`.
            instances: row body: a list with one dict (or value) per
                example. Returns `predictions`, one per example.
            signature_name: str, default `"serving_default"`.
            version, label: serve a given version or version label.
        """
        if (inputs is None) == (instances is None):
            raise ValueError(
                "TFServingClient.predict: pass exactly one of `inputs` or `instances`."
            )
        body = {"signature_name": signature_name}
        if instances is not None:
            body["instances"] = _to_json_tree(instances)
        else:
            body["inputs"] = _to_json_tree(inputs)
        answer = self._request(self._model_path(model, version, label) + ":predict", body)
        return answer["predictions"] if instances is not None else answer["outputs"]

    def grpc_predict(
        self,
        model: str,
        inputs: dict,
        signature_name: str = "serving_default",
        version: int | None = None,
    ) -> dict:
        """gRPC `PredictionService.Predict`: `{name: array}` in, `{name: np.ndarray}` out."""
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature_name
        if version is not None:
            request.model_spec.version.value = int(version)
        for key, value in inputs.items():
            array = np.asarray(value)
            if array.dtype.kind == "U":
                array = array.astype(object)
            request.inputs[key].CopyFrom(tf.make_tensor_proto(array))
        with grpc.insecure_channel(self.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            try:
                response = stub.Predict(request, timeout=self.timeout)
            except grpc.RpcError as error:
                code = error.code()
                if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise ConnectionError(
                        f"Cannot reach TF Serving's gRPC API at {self.grpc_target} "
                        f"({error.details()}). Is the server running with -p 8500:8500?"
                    ) from None
                raise ValueError(
                    f"TF Serving refused Predict ({code.name}): {error.details()}"
                ) from None
        return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}


def _to_json_tree(value):
    if isinstance(value, dict):
        return {k: _to_json_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json_tree(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic, bytes)):
        return _to_json(value)
    return value
