"""A SavedModel in TensorFlow's C++ session loader: the one TF Serving runs.

TF Serving does not call `tf.saved_model.load`. Its loader
(`tensorflow::LoadSavedModel`) imports the MetaGraph, restores the variables
through the MetaGraph's `saver_def`, runs `__saved_model_init_op`, and then
answers each request with `Session::Run`, feeding and fetching the tensors
the SignatureDef names. The C API in the tensorflow wheel
(`libtensorflow_cc.so.2`: `TF_LoadSessionFromSavedModel`, `TF_SessionRun`)
is that same loader, reached here with ctypes.

This module imports nothing but ctypes and numpy, so a process can use it
without the TensorFlow Python package: `check_saved_model` runs it in a
fresh process where the only op libraries loaded are core TensorFlow's and
tensorflow-text's (which the stock model server links).
"""

from __future__ import annotations

import ctypes
import importlib.util
import re
from pathlib import Path

import numpy as np

from keras_recipes.serving.json_tensor import as_input_tensor
from keras_recipes.serving.signature_defs import (
    TF_STRING,
    ServingError,
    Signature,
    TensorInfo,
    _numpy_dtype,
    parse_signatures,
    tf_dtype_of,
)

TF_TSTRING_SIZE = 24  # sizeof(TF_TString), tensorflow/core/platform/ctstring_internal.h
TF_OK = 0


# --- the C API ---------------------------------------------------------------


class _Buffer(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("length", ctypes.c_size_t),
        ("data_deallocator", ctypes.c_void_p),
    ]


class _Output(ctypes.Structure):
    _fields_ = [("oper", ctypes.c_void_p), ("index", ctypes.c_int)]


def _package_dir(name: str) -> Path | None:
    """A package's folder, found without importing it (importing TF would load its ops)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def tf_text_op_libraries() -> list[Path]:
    """tensorflow-text's op libraries: the custom ops TF Serving's stock build links."""
    folder = _package_dir("tensorflow_text")
    return [] if folder is None else sorted((folder / "python" / "ops").glob("_*.so"))


_C = None


def c_api() -> ctypes.CDLL:
    """TensorFlow's C API from the installed wheel, with argument types declared."""
    global _C
    if _C is not None:
        return _C
    folder = _package_dir("tensorflow")
    library = folder / "libtensorflow_cc.so.2" if folder else None
    if library is None or not library.is_file():
        raise ServingError(
            "TensorFlow's C API (tensorflow/libtensorflow_cc.so.2) was not found; "
            "install the tensorflow wheel (pip install 'tensorflow>=2.21,<2.22')."
        )
    lib = ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
    p, i, sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    signatures = {
        "TF_NewStatus": (p, []),
        "TF_DeleteStatus": (None, [p]),
        "TF_GetCode": (i, [p]),
        "TF_Message": (ctypes.c_char_p, [p]),
        "TF_LoadLibrary": (p, [ctypes.c_char_p, p]),
        "TF_NewSessionOptions": (p, []),
        "TF_DeleteSessionOptions": (None, [p]),
        "TF_NewGraph": (p, []),
        "TF_DeleteGraph": (None, [p]),
        "TF_NewBuffer": (ctypes.POINTER(_Buffer), []),
        "TF_DeleteBuffer": (None, [ctypes.POINTER(_Buffer)]),
        "TF_LoadSessionFromSavedModel": (
            p,
            [p, p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), i, p, p, p],
        ),
        "TF_GraphOperationByName": (p, [p, ctypes.c_char_p]),
        "TF_SessionRun": (
            None,
            [p, p, ctypes.POINTER(_Output), ctypes.POINTER(p), i]
            + [ctypes.POINTER(_Output), ctypes.POINTER(p), i, p, i, p, p],
        ),
        "TF_CloseSession": (None, [p, p]),
        "TF_DeleteSession": (None, [p, p]),
        "TF_AllocateTensor": (p, [i, ctypes.POINTER(ctypes.c_int64), i, sz]),
        "TF_DeleteTensor": (None, [p]),
        "TF_TensorData": (p, [p]),
        "TF_TensorByteSize": (sz, [p]),
        "TF_TensorType": (i, [p]),
        "TF_NumDims": (i, [p]),
        "TF_Dim": (ctypes.c_int64, [p, i]),
        "TF_StringInit": (None, [p]),
        "TF_StringCopy": (None, [p, ctypes.c_char_p, sz]),
        "TF_StringGetDataPointer": (p, [p]),
        "TF_StringGetSize": (sz, [p]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    _C = lib
    return lib


class _Status:
    def __init__(self, lib):
        self.lib, self.handle = lib, lib.TF_NewStatus()

    def error(self) -> str | None:
        if self.lib.TF_GetCode(self.handle) == TF_OK:
            return None
        return (self.lib.TF_Message(self.handle) or b"").decode("utf-8", "replace")

    def __del__(self):
        self.lib.TF_DeleteStatus(self.handle)


def load_op_libraries(paths) -> None:
    """Registers the ops and kernels of each shared library (TF_LoadLibrary)."""
    lib = c_api()
    for path in paths:
        status = _Status(lib)
        lib.TF_LoadLibrary(str(path).encode(), status.handle)
        if (message := status.error()) is not None:
            raise ServingError(f"cannot load op library {path}: {message}")


def _to_tensor(lib, array: np.ndarray, dtype: int, key: str):
    """A TF_Tensor of `dtype` holding `array` (already of that type)."""
    if dtype == TF_STRING:
        items = [v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1)]
    else:
        array = np.ascontiguousarray(array)
    dims = (ctypes.c_int64 * array.ndim)(*array.shape)
    if dtype == TF_STRING:
        tensor = lib.TF_AllocateTensor(TF_STRING, dims, array.ndim, len(items) * TF_TSTRING_SIZE)
        base = lib.TF_TensorData(tensor)
        for index, item in enumerate(items):
            element = base + index * TF_TSTRING_SIZE
            lib.TF_StringInit(element)
            lib.TF_StringCopy(element, item, len(item))
    else:
        tensor = lib.TF_AllocateTensor(dtype, dims, array.ndim, array.nbytes)
        if array.nbytes:
            ctypes.memmove(lib.TF_TensorData(tensor), array.ctypes.data, array.nbytes)
    if not tensor:
        raise ServingError(f"cannot allocate the tensor for input {key!r}.")
    return tensor


def _feed(value, info: TensorInfo, key: str, exact_dtypes: bool) -> tuple[np.ndarray, int]:
    """An input as `(array, TF_DataType)`, checked against the signature's rank and sizes."""
    if exact_dtypes:
        array = np.asarray(value)
        dtype = tf_dtype_of(array)
    else:
        try:
            array, dtype = as_input_tensor(value, info.dtype), info.dtype
        except ServingError as error:
            raise ServingError(f"input {key!r}: {error}") from None
    if info.shape is not None and (
        array.ndim != len(info.shape)
        or any(want not in (-1, got) for want, got in zip(info.shape, array.shape, strict=True))
    ):
        want = "[" + ",".join("?" if d == -1 else str(d) for d in info.shape) + "]"
        raise ServingError(
            f"input {key!r} has shape {list(array.shape)}, but its signature takes shape "
            f"{want} (rank {len(info.shape)})."
        )
    return array, dtype


def _from_tensor(lib, tensor) -> np.ndarray:
    dtype = lib.TF_TensorType(tensor)
    shape = tuple(lib.TF_Dim(tensor, d) for d in range(lib.TF_NumDims(tensor)))
    data = lib.TF_TensorData(tensor)
    count = int(np.prod(shape, dtype=np.int64))
    if dtype == TF_STRING:
        items = []
        for index in range(count):
            element = data + index * TF_TSTRING_SIZE
            pointer = lib.TF_StringGetDataPointer(element)
            items.append(ctypes.string_at(pointer, lib.TF_StringGetSize(element)))
        array = np.empty(count, dtype=object)
        array[:] = items
        return array.reshape(shape)
    numpy_dtype = np.dtype(_numpy_dtype(dtype))
    raw = ctypes.string_at(data, count * numpy_dtype.itemsize) if count else b""
    return np.frombuffer(raw, numpy_dtype).reshape(shape).copy()


def _explain(message: str, path: Path) -> str:
    """TensorFlow's message, with what it means for a SavedModel served by TF Serving."""
    op = re.search(r"Op type not registered '([^']+)'", message)
    if op:
        return (
            f"{path}: the graph uses op {op.group(1)!r}, which is neither in core TensorFlow "
            "nor in tensorflow-text, so TF Serving's stock build cannot load it. "
            f"TensorFlow said: {message.splitlines()[0]}"
        )
    if "RestoreV2" in message or re.search(r"not an sstable|Read less bytes|Data loss", message):
        variables = path / "variables"
        index_damaged = re.search(r"sstable|index", message)
        files = (
            [variables / "variables.index"]
            if index_damaged
            else sorted(variables.glob("variables.data-*"))
        )
        named = ", ".join(str(f) for f in files) or str(variables)
        return (
            f"{named}: the saved weights cannot be restored ({message.splitlines()[0]}); the "
            "file is truncated or damaged. Copy the version folder again, or export a new "
            "version."
        )
    if not (path / "variables").is_dir():
        return (
            f"{path / 'variables'} is missing, so the weights cannot be restored: copy the "
            f"whole version folder, or export a new version. TensorFlow said: "
            f"{message.splitlines()[0]}"
        )
    if re.search(r"Could not find variable|uninitialized|not initialized", message):
        return (
            f"{path}: a variable the graph reads was not restored by the SavedModel's saver "
            "(saver_def), so TF Serving cannot serve it. Export the tf.Variables themselves "
            "(for Keras 3, `variable.value`), not wrappers that only the TF2 object loader "
            f"restores. TensorFlow said: {message.splitlines()[0]}"
        )
    return f"{path}: {message}"


class SavedModelSession:
    """A SavedModel loaded as TF Serving loads it, answering by SignatureDef.

    `TF_LoadSessionFromSavedModel` imports the MetaGraph tagged `serve`,
    restores the variables through its saver and runs its init op; `run`
    feeds and fetches the tensors the SignatureDef names, through
    `TF_SessionRun`, as TF Serving's predict API does.

    Args:
        path: a SavedModel folder (a version folder: `saved_models/NAME/1`).
        tags: the MetaGraph's tags, default `("serve",)` as TF Serving.
        op_libraries: shared libraries of custom ops to load first; default
            tensorflow-text's, which the stock model server links.

    On a version folder of a LLaMA export,
    `session = SavedModelSession("saved_models/llama_tiny/1")`;
    `sorted(session.signatures)` is `['generate', 'generate_text',
    'serving_default']` (with a tokenizer) and
    `session.run("serving_default", {"token_ids": [[1, 5, 9]]})["logits"]`
    is an array `(1, 3, vocab_size)`. (`tests/test_serving_capi.py` runs
    this: exporting takes seconds, too long for a doctest.)
    """

    def __init__(self, path, tags=("serve",), op_libraries=None):
        self.path = Path(path)
        if not self.path.is_dir() or not any(
            (self.path / name).is_file() for name in ("saved_model.pb", "saved_model.pbtxt")
        ):
            raise ServingError(
                f"{self.path} is not a SavedModel: it holds no saved_model.pb. Point at a "
                "version folder, e.g. saved_models/NAME/1."
            )
        lib = self._lib = c_api()
        load_op_libraries(tf_text_op_libraries() if op_libraries is None else op_libraries)
        options, self._graph = lib.TF_NewSessionOptions(), lib.TF_NewGraph()
        meta_graph_def, status = lib.TF_NewBuffer(), _Status(lib)
        tag_array = (ctypes.c_char_p * len(tags))(*[t.encode() for t in tags])
        try:
            self._session = lib.TF_LoadSessionFromSavedModel(
                options,
                None,
                str(self.path).encode(),
                tag_array,
                len(tags),
                self._graph,
                ctypes.cast(meta_graph_def, ctypes.c_void_p),
                status.handle,
            )
            if (message := status.error()) is not None:
                self._session = None
                raise ServingError(_explain(message, self.path))
            buffer = meta_graph_def.contents
            self.signatures = parse_signatures(ctypes.string_at(buffer.data, buffer.length))
        finally:
            lib.TF_DeleteBuffer(meta_graph_def)
            lib.TF_DeleteSessionOptions(options)

    def _output(self, tensor_name: str) -> _Output:
        op_name, _, index = tensor_name.partition(":")
        operation = self._lib.TF_GraphOperationByName(self._graph, op_name.encode())
        if not operation:
            raise ServingError(f"{self.path}: the graph has no tensor {tensor_name!r}.")
        return _Output(operation, int(index or 0))

    def signature(self, name: str) -> Signature:
        if name not in self.signatures:
            raise ServingError(
                f'Serving signature name: "{name}" not found in signature def; '
                f"available: {sorted(self.signatures)}"
            )
        return self.signatures[name]

    def run(
        self, signature_name: str, inputs: dict, exact_dtypes: bool = False
    ) -> dict[str, np.ndarray]:
        """Answers one predict request: `{input key: array}` -> `{output key: np.ndarray}`.

        Args:
            signature_name: str, a SignatureDef's key.
            inputs: `{input key: value}`; a value is a numpy array or
                (nested) lists.
            exact_dtypes: bool, default False. True feeds each array in its
                own dtype, as TF Serving feeds a gRPC request's TensorProto:
                TensorFlow then refuses a dtype other than the signature's
                ("Expects arg[0] to be int32 but float is provided"). False
                converts values to the signature's dtypes by the rules of TF
                Serving's JSON API, which cast nothing: a fraction for an
                integer input, or an integer that does not fit, is refused.

        Raises:
            ServingError: a missing or unknown key, a value of the wrong type
                or rank, or a request the graph refuses (TensorFlow's message).
        """
        if self._session is None:
            raise ServingError(f"{self.path}: the session is closed.")
        signature = self.signature(signature_name)
        missing = sorted(set(signature.inputs) - set(inputs))
        extra = sorted(set(inputs) - set(signature.inputs))
        if missing or extra:
            raise ServingError(
                f"input size does not match signature {signature_name!r}: needs "
                f"{sorted(signature.inputs)}, missing {missing}, unexpected {extra}."
            )
        lib = self._lib
        feed_keys, fetch_keys = sorted(signature.inputs), sorted(signature.outputs)
        feeds = (_Output * len(feed_keys))(
            *[self._output(signature.inputs[k].name) for k in feed_keys]
        )
        fetches = (_Output * len(fetch_keys))(
            *[self._output(signature.outputs[k].name) for k in fetch_keys]
        )
        values = (ctypes.c_void_p * len(feed_keys))()
        results = (ctypes.c_void_p * len(fetch_keys))()
        status = _Status(lib)
        try:
            for slot, key in enumerate(feed_keys):
                array, dtype = _feed(inputs[key], signature.inputs[key], key, exact_dtypes)
                values[slot] = _to_tensor(lib, array, dtype, key)
            lib.TF_SessionRun(
                self._session,
                None,
                feeds,
                values,
                len(feed_keys),
                fetches,
                results,
                len(fetch_keys),
                None,
                0,
                None,
                status.handle,
            )
            if (message := status.error()) is not None:
                raise ServingError(_explain(message, self.path))
            return {key: _from_tensor(lib, results[slot]) for slot, key in enumerate(fetch_keys)}
        finally:
            for tensor in (*values, *results):
                if tensor:
                    lib.TF_DeleteTensor(tensor)

    def close(self) -> None:
        if getattr(self, "_session", None):
            status = _Status(self._lib)
            self._lib.TF_CloseSession(self._session, status.handle)
            self._lib.TF_DeleteSession(self._session, status.handle)
            self._session = None
        if getattr(self, "_graph", None):
            self._lib.TF_DeleteGraph(self._graph)
            self._graph = None

    def __enter__(self) -> SavedModelSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone
            pass


def serve_requests(job_file: str, answer_file: str) -> None:
    """The fresh process of `check_saved_model`: load, replay, write the answers.

    `job_file` holds a pickled `{"path", "tags", "op_libraries", "requests"}`; the answer is
    `{"signatures", "replies": [(outputs, error)], "error", "python_tensorflow_loaded"}`.
    """
    import pickle
    import sys

    job = pickle.loads(Path(job_file).read_bytes())
    answer = {"signatures": None, "replies": [], "error": None}
    try:
        with SavedModelSession(job["path"], tuple(job["tags"]), job["op_libraries"]) as session:
            answer["signatures"] = session.signatures
            for name, inputs in job["requests"]:
                try:
                    answer["replies"].append((session.run(name, inputs), None))
                except ServingError as error:
                    answer["replies"].append((None, str(error)))
    except ServingError as error:
        answer["error"] = str(error)
    answer["python_tensorflow_loaded"] = "tensorflow" in sys.modules
    Path(answer_file).write_bytes(pickle.dumps(answer))
