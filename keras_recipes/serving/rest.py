"""TF Serving's REST predict and metadata JSON, answered by a `SavedModelSession`."""

from __future__ import annotations

import base64

import numpy as np

from keras_recipes.serving.session import SavedModelSession
from keras_recipes.serving.signature_defs import (
    DTYPE_NAMES,
    TF_BOOL,
    TF_STRING,
    _numpy_dtype,
)


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

    Strings may be `{"b64": ...}` objects. Numbers must fit the input's type:
    a fraction or a string for an integer input is an error, not truncated.
    """
    if dtype == TF_STRING:

        def convert(item):
            if isinstance(item, dict) and "b64" in item:
                return base64.b64decode(item["b64"])
            if isinstance(item, list):
                return [convert(i) for i in item]
            return str(item).encode("utf-8")

        return np.array(convert(value), dtype=object)
    name = DTYPE_NAMES.get(dtype, str(dtype))
    try:
        array = np.asarray(value)
    except ValueError:
        raise ValueError(
            f"input {key!r}: rows of different lengths; a {name} tensor must be rectangular "
            "(pad the rows to one length)."
        ) from None
    if array.dtype == object or array.dtype.kind in "SU":
        raise ValueError(f"input {key!r} must hold {name} numbers; got {value!r:.80}.")
    target = np.dtype(_numpy_dtype(dtype))
    if dtype == TF_BOOL:
        if array.dtype.kind != "b":
            raise ValueError(f"input {key!r} must hold true/false values ({name}).")
    elif target.kind in "iu":
        if array.dtype.kind == "b" or (
            array.dtype.kind == "f" and not np.all(np.isfinite(array) & (array == np.round(array)))
        ):
            raise ValueError(
                f"input {key!r} must hold integers ({name}); got a non-integer value in "
                f"{value!r:.80}."
            )
        info = np.iinfo(target)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ValueError(f"input {key!r}: a value is out of range for {name}.")
    return array.astype(target)


def rest_predict(session: SavedModelSession, body: dict) -> dict:
    """Answer a TF Serving REST predict body with a SavedModel session.

    Follows TF Serving's JSON rules: `{"signature_name", "instances": [...]}`
    (row format: a list of per-example dicts, or of values for a one-input
    signature) answers `{"predictions": [...]}` (per-example dicts, or
    values for a one-output signature); `{"inputs": ...}` (columnar: a dict
    of batched values, or one value) answers `{"outputs": ...}`.
    A body TF Serving would refuse raises a `ValueError` with its reason;
    a request the graph refuses raises `ServingError` with TensorFlow's.
    """
    if not isinstance(body, dict):
        raise ValueError("The request body must be a JSON object.")
    name = body.get("signature_name", "serving_default")
    if name not in session.signatures:
        raise ValueError(
            f'Serving signature name: "{name}" not found in signature def; '
            f"available: {sorted(session.signatures)}"
        )
    specs = session.signatures[name].inputs
    if ("instances" in body) == ("inputs" in body):
        raise ValueError('JSON body must have exactly one of "instances" or "inputs".')
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise ValueError('"instances" must be a non-empty list.')
        if isinstance(instances[0], dict):
            keys = set(instances[0])
            if any(not isinstance(row, dict) or set(row) != keys for row in instances):
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
    feeds = {key: from_json(columns[key], specs[key].dtype, key) for key in specs}
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
