"""A stand-in for TF Serving in tests and demos: its REST and gRPC predict APIs on 127.0.0.1."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from keras_recipes.serving.rest import rest_predict, signature_metadata
from keras_recipes.serving.session import SavedModelSession, ServingError

# The largest request body accepted (TF Serving's REST default limit is far
# larger; this stand-in keeps a bad Content-Length from allocating gigabytes).
MAX_BODY_BYTES = 256 * 1024 * 1024


def request_problem(signature, request) -> str | None:
    """Why TF Serving's `PreProcessPrediction` refuses a gRPC `PredictRequest`, or None.

    The messages are those of `tensorflow_serving/servables/tensorflow/predict_util.cc`
    and `tensorflow/cc/saved_model/util.cc` (`GetInputValues`).
    """
    sent, wanted = set(request.inputs), set(signature.inputs)
    if len(sent) == len(wanted) and sent != wanted:
        alias = sorted(sent - wanted)[0]
        return (
            f"input tensor alias not found in signature: {alias}. Inputs expected to be in "
            f"the set {{{','.join(sorted(wanted))}}}."
        )
    if sent != wanted:
        return (
            f"input size does not match signature: {len(sent)}!={len(wanted)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(wanted))}}}). "
            f"Sent extra: {{{','.join(sorted(sent - wanted))}}}. "
            f"Missing but required: {{{','.join(sorted(wanted - sent))}}}."
        )
    seen = set()
    for alias in request.output_filter:
        if alias not in signature.outputs:
            return (
                f"output tensor alias not found in signature: {alias} Outputs expected to be "
                f"in the set {{{','.join(sorted(signature.outputs))}}}."
            )
        if alias in seen:
            return f"duplicate output tensor alias: {alias}"
        seen.add(alias)
    return None


def served_version(base_dir: Path) -> int:
    """The version TF Serving serves by default: the highest numbered folder."""
    versions = [int(p.name) for p in base_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    if not versions:
        raise ValueError(f"no version folders (1, 2, ...) under {base_dir}.")
    return max(versions)


class LocalServer:
    """A stand-in for TF Serving: its REST API (and gRPC `Predict`) on 127.0.0.1.

    It loads the highest version under `base_dir`, as the model server does,
    with the model server's own loader: TensorFlow's C++ session loader
    (`SavedModelSession`: variables restored by the SavedModel's saver,
    requests run by the SignatureDef's tensor names, only core TensorFlow
    and tensorflow-text ops). So what it answers is what TF Serving would
    answer. It stands in for the model server where Docker and the server
    binary cannot be installed, in tests and demos; it is not a production
    server (one model, no batching, no version policies).

    Routes: `GET /v1/models/NAME` (status), `GET /v1/models/NAME/metadata`,
    `POST /v1/models/NAME[/versions/N]:predict`.

    Args:
        base_dir: the model folder holding version folders.
        name: str, the model name in URLs; defaults to `base_dir`'s name.
        grpc: bool, default False. Also serve gRPC `PredictionService.Predict`.
        read_timeout: float, default 10. Seconds a request's body may take to
            arrive; a body shorter than its Content-Length is answered 400.

    On a model folder that `export_saved_model` wrote, `with
    LocalServer("saved_models/llama_tiny") as server:` serves it; inside,
    `TFServingClient(server.url, grpc_target=server.grpc_target)` talks to
    it, e.g. `.predict("llama_tiny", instances=[{"token_ids": [1, 2]}])`.
    (`tests/test_serving.py` runs this: exporting and serving take seconds,
    too long for a doctest.)
    """

    def __init__(
        self,
        base_dir: str | os.PathLike,
        name: str | None = None,
        grpc: bool = False,
        read_timeout: float = 10.0,
    ):
        base_dir = Path(base_dir)
        try:
            self.version = served_version(base_dir)
        except (ValueError, OSError) as error:
            raise ValueError(f"LocalServer: {error}") from None
        self.name = name or base_dir.resolve().name
        self.session = SavedModelSession(base_dir / str(self.version))
        self._want_grpc = grpc
        self.read_timeout = read_timeout
        self._http = None
        self._grpc = None
        self.url = None
        self.grpc_target = None

    def start(self) -> LocalServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            @property
            def timeout(self):  # the socket's: a body shorter than its Content-Length -> 400
                return server.read_timeout

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
                rest = self.path[len(prefix) :]
                if not self.path.startswith(prefix) or rest[:1] not in ("", "/", ":"):
                    name = self.path.removeprefix("/v1/models/").split("/")[0].split(":")[0]
                    self._error(404, f"Servable not found for request: Latest({name})")
                    return None
                return rest

            def _version(self, rest: str) -> tuple[str | None, str]:
                """`/versions/N...` or `/labels/L...` as TF Serving resolves them.

                Returns `(error, the rest of the path)`; answers the error itself.
                """
                for prefix in ("/versions/", "/labels/"):
                    if rest.startswith(prefix):
                        part, sep, tail = rest[len(prefix) :].partition(":")
                        part, slash, sub = part.partition("/")
                        tail = (slash + sub) + (sep + tail)
                        if prefix == "/labels/":
                            self._error(400, f"Unrecognized servable version label: {part}")
                            return "label", tail
                        if not part.lstrip("-").isdigit():
                            self._error(400, f"Malformed request: {self.command} {self.path}")
                            return "malformed", tail
                        if int(part) != server.version:
                            self._error(404, server.not_found(int(part), self.command == "GET"))
                            return "version", tail
                        return None, tail
                return None, rest

            def _error(self, code: int, message: str):
                self._answer(code, {"error": message})

            def do_GET(self):
                rest = self._model_path()
                if rest is None:
                    return
                error, rest = self._version(rest)
                if error:
                    return
                if rest in ("", "/"):
                    status = {"error_code": "OK", "error_message": ""}
                    version = {"version": str(server.version), "state": "AVAILABLE"}
                    self._answer(200, {"model_version_status": [{**version, "status": status}]})
                elif rest == "/metadata":
                    spec = {
                        "name": server.name,
                        "signature_name": "",
                        "version": str(server.version),
                    }
                    metadata = signature_metadata(server.session)
                    self._answer(200, {"model_spec": spec, "metadata": metadata})
                else:
                    self._error(400, f"Malformed request: GET {self.path}")

            def _body(self):
                try:
                    length = int(self.headers.get("Content-Length", ""))
                except ValueError:
                    raise ValueError("the request needs a Content-Length header.") from None
                if not 0 <= length <= MAX_BODY_BYTES:
                    raise ValueError(f"bad Content-Length {length}.")
                try:
                    data = self.rfile.read(length)
                except TimeoutError:
                    data = b""
                if len(data) != length:
                    raise ValueError(
                        f"the body ended after {len(data)} of the {length} bytes its "
                        "Content-Length announced."
                    )
                try:
                    return json.loads(data or b"null")
                except (json.JSONDecodeError, UnicodeDecodeError) as error:
                    raise ValueError(f"the body is not JSON: {error}") from None

            def do_POST(self):
                rest = self._model_path()
                if rest is None:
                    return
                error, rest = self._version(rest)
                if error:
                    return
                if rest != ":predict":
                    self._error(400, f"Malformed request: POST {self.path}")
                    return
                try:
                    self._answer(200, rest_predict(server.session, self._body()))
                except (ValueError, ServingError) as error:  # ServingError: the graph refused it
                    self._error(400, server.without_path(str(error)))

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

        server = self

        class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):
                spec = request.model_spec
                if spec.name != server.name or (
                    spec.HasField("version") and spec.version.value != server.version
                ):
                    version = spec.version.value if spec.HasField("version") else None
                    context.abort(
                        grpc.StatusCode.NOT_FOUND, server.not_found(version, name=spec.name)
                    )
                if spec.HasField("version_label"):
                    context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"Unrecognized servable version label: {spec.version_label}",
                    )
                name = spec.signature_name or "serving_default"
                if name not in server.session.signatures:
                    context.abort(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f'Serving signature key "{name}" not found.',
                    )
                signature = server.session.signatures[name]
                problem = request_problem(signature, request)
                if problem:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
                inputs = {}
                for key, proto in request.inputs.items():
                    try:
                        inputs[key] = tf.make_ndarray(proto)
                    except Exception:  # noqa: BLE001 (whatever the proto holds)
                        context.abort(
                            grpc.StatusCode.INVALID_ARGUMENT, f"tensor parsing error: {key}"
                        )
                try:  # in the TensorProto's own dtype: TensorFlow refuses a mismatch
                    outputs = server.session.run(name, inputs, exact_dtypes=True)
                except ServingError as error:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, server.without_path(str(error)))
                wanted = list(request.output_filter) or list(outputs)
                response = predict_pb2.PredictResponse()
                response.model_spec.name = server.name
                response.model_spec.signature_name = name
                response.model_spec.version.value = server.version
                for key in wanted:
                    response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
                return response

        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), self._grpc)
        port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        self.grpc_target = f"127.0.0.1:{port}"

    def not_found(self, version: int | None, status: bool = False, name: str | None = None) -> str:
        """TF Serving's NOT_FOUND message for a model name or version it does not serve."""
        name = self.name if name is None else name
        if status:  # GetModelStatus
            return f"Could not find version {version} of model {name}"
        if version is None:
            return f"Servable not found for request: Latest({name})"
        return f"Servable not found for request: Specific({name}, {version})"

    def without_path(self, message: str) -> str:
        """The session's message as TF Serving words it: without the model's folder in front."""
        prefix = f"{self.session.path}: "
        return message[len(prefix) :] if message.startswith(prefix) else message

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
