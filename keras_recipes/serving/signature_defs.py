"""SignatureDefs as TF Serving reads them: the MetaGraphDef's `signature_def` map.

The session loader hands back the serialized MetaGraphDef; the few fields a
predict request needs (each signature's input and output tensor names,
dtypes and shapes) are read here straight from the protobuf wire format, so
that `keras_recipes.serving.session` needs neither TensorFlow's Python
package nor its protos. Also the TF_DataType codes and their numpy types.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# TF_DataType values (tensorflow/c/tf_datatype.h) and their numpy types.
TF_FLOAT, TF_DOUBLE, TF_INT32, TF_UINT8, TF_INT16, TF_INT8, TF_STRING = 1, 2, 3, 4, 5, 6, 7
TF_INT64, TF_BOOL, TF_BFLOAT16, TF_UINT16, TF_HALF, TF_UINT32, TF_UINT64 = 9, 10, 14, 17, 19, 22, 23
DTYPE_NAMES = {
    TF_FLOAT: "DT_FLOAT",
    TF_DOUBLE: "DT_DOUBLE",
    TF_INT32: "DT_INT32",
    TF_UINT8: "DT_UINT8",
    TF_INT16: "DT_INT16",
    TF_INT8: "DT_INT8",
    TF_STRING: "DT_STRING",
    TF_INT64: "DT_INT64",
    TF_BOOL: "DT_BOOL",
    TF_BFLOAT16: "DT_BFLOAT16",
    TF_UINT16: "DT_UINT16",
    TF_HALF: "DT_HALF",
    TF_UINT32: "DT_UINT32",
    TF_UINT64: "DT_UINT64",
}
_NUMPY = {
    TF_FLOAT: np.float32,
    TF_DOUBLE: np.float64,
    TF_INT32: np.int32,
    TF_UINT8: np.uint8,
    TF_INT16: np.int16,
    TF_INT8: np.int8,
    TF_INT64: np.int64,
    TF_BOOL: np.bool_,
    TF_UINT16: np.uint16,
    TF_HALF: np.float16,
    TF_UINT32: np.uint32,
    TF_UINT64: np.uint64,
}


class ServingError(ValueError):
    """A SavedModel, or a request, that TensorFlow's session loader (TF Serving's) refuses."""


_TF_TYPE_OF_NUMPY = {np.dtype(numpy): code for code, numpy in _NUMPY.items()}
# DataTypeString's spelling in TensorFlow's own messages ("int32", "float").
TF_TYPE_STRINGS = {
    TF_FLOAT: "float",
    TF_DOUBLE: "double",
    TF_INT32: "int32",
    TF_UINT8: "uint8",
    TF_INT16: "int16",
    TF_INT8: "int8",
    TF_STRING: "string",
    TF_INT64: "int64",
    TF_BOOL: "bool",
    TF_BFLOAT16: "bfloat16",
    TF_UINT16: "uint16",
    TF_HALF: "half",
    TF_UINT32: "uint32",
    TF_UINT64: "uint64",
}


def tf_dtype_of(array: np.ndarray) -> int:
    """The TF_DataType of a numpy array, as a TensorProto of it would carry."""
    if array.dtype == object or array.dtype.kind in "SU":
        return TF_STRING
    if array.dtype.name == "bfloat16":
        return TF_BFLOAT16
    if array.dtype not in _TF_TYPE_OF_NUMPY:
        raise ServingError(f"tensors of numpy type {array.dtype} are not supported.")
    return _TF_TYPE_OF_NUMPY[array.dtype]


def _numpy_dtype(dtype: int):
    if dtype == TF_BFLOAT16:
        import ml_dtypes  # a dependency of tensorflow; imports without it

        return ml_dtypes.bfloat16
    if dtype not in _NUMPY:
        raise ServingError(f"tensors of type {DTYPE_NAMES.get(dtype, dtype)} are not supported.")
    return _NUMPY[dtype]


# --- the few protobuf fields we read, straight from the wire format ---------


def _varint(data, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(data):
    """(field number, value) of a protobuf message: varints as int, the rest as memoryview."""
    data = memoryview(data)
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, pos = data[pos : pos + width], pos + width
        else:
            raise ServingError(f"unreadable MetaGraphDef (protobuf wire type {wire}).")
        yield number, value


def _map_entries(entries) -> dict:
    """A protobuf map's entries (key = field 1, value = field 2) as {str: memoryview}."""
    result = {}
    for entry in entries:
        parts = dict(_fields(entry))
        result[bytes(parts.get(1, b"")).decode()] = parts.get(2, memoryview(b""))
    return result


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a SignatureDef: its graph tensor, dtype and shape."""

    name: str
    dtype: int
    shape: tuple | None  # None: unknown rank; -1 marks an unknown dimension

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.dtype, str(self.dtype))


@dataclass(frozen=True)
class Signature:
    """A SignatureDef: `{key: TensorInfo}` inputs and outputs."""

    inputs: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    method_name: str = ""


def _tensor_info(data) -> TensorInfo:
    name, dtype, shape = "", 0, None
    for number, value in _fields(data):
        if number == 1:
            name = bytes(value).decode()
        elif number == 2:
            dtype = value
        elif number == 3:  # TensorShapeProto: dim = 2 (size = 1), unknown_rank = 3
            dims, unknown = [], False
            for shape_field, dim in _fields(value):
                if shape_field == 2:
                    size = dict(_fields(dim)).get(1, 0)
                    dims.append(size - (1 << 64) if size >= 1 << 63 else size)
                elif shape_field == 3:
                    unknown = bool(dim)
            shape = None if unknown else tuple(dims)
        elif number in (4, 5):
            raise ServingError(
                "a signature uses a sparse or composite tensor; TF Serving's predict API feeds "
                "dense tensors only."
            )
    return TensorInfo(name, dtype, shape)


def parse_signatures(meta_graph_def: bytes) -> dict[str, Signature]:
    """The SignatureDefs of a serialized MetaGraphDef (field 5), by name."""
    entries = [value for number, value in _fields(meta_graph_def) if number == 5]
    signatures = {}
    for name, data in _map_entries(entries).items():
        inputs, outputs, method = [], [], ""
        for number, value in _fields(data):
            if number == 1:
                inputs.append(value)
            elif number == 2:
                outputs.append(value)
            elif number == 3:
                method = bytes(value).decode()
        signatures[name] = Signature(
            {k: _tensor_info(v) for k, v in _map_entries(inputs).items()},
            {k: _tensor_info(v) for k, v in _map_entries(outputs).items()},
            method,
        )
    return signatures
