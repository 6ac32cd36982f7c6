"""JSON values as tensors, refused as TF Serving refuses them.

A port of the rules of TF Serving's `tensorflow_serving/util/json_tensor.cc`
(`FillTensorProto`, `AddValueToTensor`, `JsonDecodeBase64Object`): a value
must already be of the input's type (no casts: `1.7` or `"7"` for an int32
input is an error, and so is `2**33 + 1`, which does not fit), strings are
JSON strings or `{"b64": ...}` objects, and a tensor is rectangular, its
rank set by the first element at each level. The messages are TF Serving's.
"""

from __future__ import annotations

import base64
import binascii
import json

import numpy as np

from keras_recipes.serving.signature_defs import (
    TF_BFLOAT16,
    TF_BOOL,
    TF_DOUBLE,
    TF_FLOAT,
    TF_HALF,
    TF_INT8,
    TF_INT16,
    TF_INT32,
    TF_INT64,
    TF_STRING,
    TF_TYPE_STRINGS,
    TF_UINT8,
    TF_UINT16,
    TF_UINT32,
    TF_UINT64,
    ServingError,
    _numpy_dtype,
)

_INTEGER_RANGES = {
    TF_INT8: (-(2**7), 2**7 - 1),
    TF_INT16: (-(2**15), 2**15 - 1),
    TF_INT32: (-(2**31), 2**31 - 1),
    TF_INT64: (-(2**63), 2**63 - 1),
    TF_UINT8: (0, 2**8 - 1),
    TF_UINT16: (0, 2**16 - 1),
    TF_UINT32: (0, 2**32 - 1),
    TF_UINT64: (0, 2**64 - 1),
}
_FLOATS = (TF_FLOAT, TF_DOUBLE, TF_HALF, TF_BFLOAT16)


def debug_string(value) -> str:
    """A JSON value as TF Serving quotes it in errors (at most 256 bytes)."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text[:256]


def _json_type(value) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, (str, bytes)):
        return "String"
    return "Number"


def _type_error(value, dtype: int) -> ServingError:
    return ServingError(
        f"JSON Value: {debug_string(value)} Type: {_json_type(value)} is not of expected "
        f"type: {TF_TYPE_STRINGS.get(dtype, dtype)}"
    )


def _is_integer(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_base64_object(value) -> bool:
    """`{"b64": "<base64>"}`: one key, a string (TF Serving's `IsValBase64Object`)."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _scalar(value, dtype: int):
    if dtype == TF_STRING:
        if isinstance(value, dict):
            if not is_base64_object(value):
                raise ServingError(
                    f"JSON Value: {debug_string(value)} not formatted correctly for base64 data"
                )
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise ServingError("Unable to base64 decode") from None
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, bytes):  # only from Python callers: JSON has no bytes
            return value
        raise _type_error(value, dtype)
    if dtype == TF_BOOL:
        if not isinstance(value, (bool, np.bool_)):
            raise _type_error(value, dtype)
        return bool(value)
    if dtype in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[dtype]
        if not _is_integer(value) or not low <= int(value) <= high:
            raise _type_error(value, dtype)
        return int(value)
    if dtype in _FLOATS:
        if not (_is_integer(value) or isinstance(value, (float, np.floating))):
            raise _type_error(value, dtype)
        return float(value)
    raise ServingError(
        f"Conversion of JSON Value: {debug_string(value)} to type: "
        f"{TF_TYPE_STRINGS.get(dtype, dtype)}"
    )


def dense_shape(value) -> list[int]:
    """The shape TF Serving reads off a JSON value: the first element's, at each level."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def tensor_from_json(value, dtype: int) -> np.ndarray:
    """A JSON value (nested lists of scalars) as a tensor of `dtype` (a TF_DataType code).

    Raises:
        ServingError: with TF Serving's message, for a value of another type
            (no casts), a base64 object that does not decode, or a ragged list.
    """
    shape = dense_shape(value)
    rank = len(shape)
    flat = []

    def fill(item, level: int):
        if not isinstance(item, list):
            if level != rank:
                raise ServingError(
                    f"JSON Value: {debug_string(item)} found at incorrect level: {level + 1} "
                    f"in the JSON DOM. Expected at level: {rank}"
                )
            flat.append(_scalar(item, dtype))
            return
        if level >= rank:
            raise ServingError(f"Encountered list at unexpected level: {level} expected < {rank}")
        if len(item) != shape[level]:
            raise ServingError(
                f"Encountered list at unexpected size: {len(item)} at level: {level} "
                f"expected size: {shape[level]}"
            )
        for element in item:
            fill(element, level + 1)

    fill(value, 0)
    if dtype == TF_STRING:
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array.reshape(shape)
    return np.array(flat, dtype=_numpy_dtype(dtype)).reshape(shape)


def as_input_tensor(value, dtype: int) -> np.ndarray:
    """A Python value for an input of `dtype`: an array of that type as is, else JSON's rules.

    So `SavedModelSession.run` takes lists and numpy arrays, but casts
    nothing a TF Serving client could not send: fractions or strings for
    integers, and integers that do not fit, are refused.
    """
    if isinstance(value, np.ndarray):
        if dtype == TF_STRING and (value.dtype == object or value.dtype.kind in "SU"):
            value = value.tolist()
        elif value.dtype == np.dtype(_numpy_dtype(dtype)):
            return value
        else:
            value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, tuple):
        value = list(value)
    return tensor_from_json(_lists(value), dtype)


def _lists(value):
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    if isinstance(value, np.ndarray):
        return _lists(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
