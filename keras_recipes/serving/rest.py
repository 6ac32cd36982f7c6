"""TF Serving's REST predict and metadata JSON, answered by a `SavedModelSession`."""

from __future__ import annotations

import numpy as np

from keras_recipes.serving.json_tensor import debug_string, is_base64_object, tensor_from_json
from keras_recipes.serving.session import SavedModelSession
from keras_recipes.serving.signature_defs import ServingError


def to_json(value):
    """A tensor as TF Serving writes it in JSON: nested lists, strings as UTF-8 text."""
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind in "SU":
        return np.vectorize(
            lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v),
            otypes=[object],
        )(array).tolist()
    return array.tolist()


def from_json(value, dtype: int, key: str) -> np.ndarray:
    """A JSON value as the tensor of a signature input, refused as TF Serving refuses it.

    Strings may be `{"b64": ...}` objects. Numbers must be of the input's
    type: a fraction or a string for an integer input, or an integer that
    does not fit, is an error, not cast (`keras_recipes.serving.json_tensor`).
    """
    try:
        return tensor_from_json(value, dtype)
    except ServingError as error:
        raise ServingError(f"input {key!r}: {error}") from None


def _instances_columns(instances: list, specs: dict) -> dict:
    """TF Serving's row format (`FillTensorMapFromInstancesList`) as `{input: array}`."""

    def is_named(value):
        return isinstance(value, dict) and not is_base64_object(value)

    if not is_named(instances[0]) and len(specs) > 1:
        raise ServingError(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            f"required as per tensorinfo_map (the inputs: {sorted(specs)})"
        )
    named = is_named(instances[0])
    rows: dict[str, list] = {key: [] for key in specs}
    for index, element in enumerate(instances):
        if named and not is_named(element):
            raise ServingError(f"Expecting object but got list at item {index} of input list")
        if not named and is_named(element):
            raise ServingError(f"Expecting value/list but got object at item {index} of input list")
        items = element if named else {next(iter(specs)): element}
        for key, item in items.items():
            if key not in specs:
                raise ServingError(
                    f"Failed to process element: {index} key: {key} of 'instances' list. "
                    f"Error: INVALID_ARGUMENT: JSON object: does not have named input: {key}"
                )
            try:
                tensor = tensor_from_json(item, specs[key].dtype)
            except ServingError as error:
                raise ServingError(
                    f"Failed to process element: {index} key: {key} of 'instances' list. "
                    f"Error: INVALID_ARGUMENT: {error}"
                ) from None
            if rows[key] and rows[key][0].shape != tensor.shape:
                raise ServingError(
                    f"Failed to process element: {index} key: {key} of 'instances' list. "
                    f"Error: INVALID_ARGUMENT: Expecting shape {list(rows[key][0].shape)} "
                    f"but got: {list(tensor.shape)} (pad the rows to one length)"
                )
            rows[key].append(tensor)
        if set(items) != set(specs):
            raise ServingError(
                f"Failed to process element: {index} of 'instances' list. JSON object: "
                f"{debug_string(element)} keys must be equal to: {','.join(sorted(specs))}"
            )
    return {key: np.stack(arrays) for key, arrays in rows.items()}


def rest_predict(session: SavedModelSession, body) -> dict:
    """Answer a TF Serving REST predict body with a SavedModel session.

    Follows TF Serving's JSON rules (`tensorflow_serving/util/json_tensor.cc`):
    `{"signature_name", "instances": [...]}` (row format: a list of
    per-example objects, or of values for a one-input signature; a
    `{"b64": ...}` object is a value) answers `{"predictions": [...]}`;
    `{"inputs": ...}` (columnar: an object of batched values, or one value)
    answers `{"outputs": ...}`. A body TF Serving would refuse raises a
    `ServingError` (a `ValueError`) with TF Serving's reason; a request the
    graph refuses raises `ServingError` with TensorFlow's.
    """
    if not isinstance(body, dict):
        raise ServingError(f"JSON Value: {debug_string(body)} Is not object")
    name = body.get("signature_name", "")
    if not isinstance(name, str):
        raise ServingError(
            f"JSON Value: {debug_string(body)} not formatted correctly. 'signature_name' key "
            "must be a string value."
        )
    name = name or "serving_default"
    if name not in session.signatures:
        raise ServingError(
            f'Serving signature name: "{name}" not found in signature def '
            f"(available: {sorted(session.signatures)})"
        )
    specs = session.signatures[name].inputs
    if ("instances" in body) == ("inputs" in body):
        raise ServingError(
            f"JSON Value: {debug_string(body)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist "
        )
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list):
            raise ServingError(
                f"JSON Value: {debug_string(body)} Expecting 'instances' to be an list/array"
            )
        if not instances:
            raise ServingError(f"JSON Value: {debug_string(body)} No values in 'instances' array")
        feeds = _instances_columns(instances, specs)
    else:
        inputs = body["inputs"]
        if not isinstance(inputs, dict) or is_base64_object(inputs):
            if len(specs) > 1:
                raise ServingError(
                    "inputs is a plain value/list, but expecting an object as multiple input "
                    f"tensors required as per tensorinfo_map (the inputs: {sorted(specs)})"
                )
            inputs = {next(iter(specs)): inputs}
        missing = sorted(set(specs) - set(inputs))
        if missing:
            raise ServingError(f"Missing named input: {missing[0]} in 'inputs' object.")
        extra = sorted(set(inputs) - set(specs))
        if extra:  # TF Serving ignores them; a misspelt control should not pass unseen
            raise ServingError(
                f"input size does not match signature {name!r}: needs {sorted(specs)}, "
                f"unexpected {extra}."
            )
        feeds = {key: from_json(inputs[key], specs[key].dtype, key) for key in specs}
    outputs = session.run(name, feeds)
    if "instances" in body:
        if len(outputs) == 1:
            return {"predictions": to_json(next(iter(outputs.values())))}
        rows = len(next(iter(outputs.values())))
        return {
            "predictions": [{k: to_json(v[i]) for k, v in outputs.items()} for i in range(rows)]
        }
    if len(outputs) == 1:
        return {"outputs": to_json(next(iter(outputs.values())))}
    return {"outputs": {k: to_json(v) for k, v in outputs.items()}}


def signature_metadata(session: SavedModelSession) -> dict:
    """The `metadata` part of TF Serving's metadata answer (the SignatureDefs, as JSON)."""

    def tensor_info(info):
        return {
            "dtype": info.dtype_name,
            "tensor_shape": {
                "dim": [{"size": str(d), "name": ""} for d in info.shape or ()],
                "unknown_rank": info.shape is None,
            },
            "name": info.name,
        }

    signatures = {
        name: {
            "inputs": {key: tensor_info(info) for key, info in signature.inputs.items()},
            "outputs": {key: tensor_info(info) for key, info in signature.outputs.items()},
            "method_name": signature.method_name,
        }
        for name, signature in session.signatures.items()
    }
    return {"signature_def": {"signature_def": signatures}}
