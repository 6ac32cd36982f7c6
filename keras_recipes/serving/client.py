"""A client for TF Serving's REST (port 8501) and gRPC (port 8500) APIs."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np

from keras_recipes.serving.rest import to_json

DEFAULT_REST_URL = "http://localhost:8501"
DEFAULT_GRPC_TARGET = "localhost:8500"


class TFServingClient:
    """A client for TF Serving's REST (port 8501) and gRPC (port 8500) APIs.

    Args:
        url: str, the REST address, default `"http://localhost:8501"`.
        grpc_target: str or None, `host:port` of the gRPC API (default: the
            REST host on port 8500).
        timeout: float, seconds per request, default 30.

    With a server running (TF Serving, or `LocalServer` in tests),
    `client = TFServingClient("http://localhost:8501")`, then:

    - `client.status("llama_tiny")` lists the versions and their states,
      `[{"version": "1", "state": "AVAILABLE", ...}]`;
    - `client.predict("llama_tiny", signature_name="generate_text",
      instances=[{"prompt": "Once upon a time", "max_new_tokens": 32,
      "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0}])` calls the
      REST predict API;
    - `client.grpc_predict("llama_tiny", {"token_ids": [[1, 5, 9]]})` calls
      gRPC `Predict` and answers `{"logits": array}`.
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

    def chat(
        self,
        model: str,
        messages: list[dict],
        tokenizer,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        version: int | None = None,
        **template_variables,
    ) -> str:
        """The assistant's reply to `messages`, from a model served with `generate_text`.

        The conversation is written with the chat template on this side
        (`keras_recipes.tokenizers.ChatTemplate`, as `transformers` renders
        it) and sent to the `generate_text` signature of an export made with
        the checkpoint's `tokenizer.json`; the server tokenizes it, stops on
        the checkpoint's stop ids and answers prompt and reply as one text
        without special tokens, from which the prompt's text is cut.

        Args:
            model: str, the served model name.
            messages: list of `{"role": ..., "content": ...}` dicts.
            tokenizer: the checkpoint's folder (tokenizer.json and
                tokenizer_config.json), or a `TokenizerJson`.
            max_new_tokens, temperature, top_k, top_p, seed: the request's
                controls (top_k 0 and top_p 1 switch those filters off).
            version: serve a given version.
            **template_variables: more template variables (e.g. Llama 3.2's
                `date_string`).

        For instance `client.chat("llama32", [{"role": "user", "content":
        "Hi!"}], tokenizer="Llama-3.2-1B-Instruct/")` against a server that
        serves that folder's export (`tests/test_llama3_chat.py` runs it
        through `LocalServer`).
        """
        from keras_recipes.tokenizers import TokenizerJson, load_tokenizer
        from keras_recipes.tokenizers.chat import chat_template_of

        if not isinstance(tokenizer, TokenizerJson):
            tokenizer = load_tokenizer(tokenizer)
        prompt = chat_template_of(tokenizer).render(
            messages, add_generation_prompt=True, **template_variables
        )
        answer = self.predict(
            model,
            inputs={
                "prompt": [prompt],
                "max_new_tokens": [int(max_new_tokens)],
                "temperature": [float(temperature)],
                "top_k": [int(top_k)],
                "top_p": [float(top_p)],
                "seed": [int(seed)],
            },
            signature_name="generate_text",
            version=version,
        )
        text = answer["text"][0] if isinstance(answer, dict) else answer[0]
        if isinstance(text, dict):  # a string that is not UTF-8 comes base64-encoded
            import base64

            text = base64.b64decode(text["b64"]).decode("utf-8", errors="replace")
        ids = tokenizer.encode(prompt)
        if tokenizer.bos_id is not None and ids[:1] != [tokenizer.bos_id]:
            ids = [tokenizer.bos_id, *ids]
        shown = tokenizer.decode(ids, skip_special_tokens=True)
        if not text.startswith(shown):
            raise ValueError(
                f"TFServingClient.chat: the answer of {model!r} does not start with the prompt's "
                "text; is it served with this tokenizer.json?"
            )
        return text[len(shown) :]

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
        return to_json(value)
    return value
