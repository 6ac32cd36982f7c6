"""Check a SavedModel the way TF Serving loads it, before deploying it.

`check_saved_model(path)` replays the export's warm-up records through
TensorFlow's C++ session loader (`SavedModelSession`) in a fresh process
that loads no op library but tensorflow-text's, and returns what each
request answered, optionally checked against an oracle (the Keras model).
`keras-recipes serve check DIR` prints the same.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_recipes.serving.signature_defs import ServingError, Signature
from keras_recipes.serving.warmup import WARMUP_FILE, read_warmup_requests

# The fresh process: imports the session module only (ctypes and numpy; no
# TensorFlow Python package, so no op library but those it loads itself).
_CHILD = "import sys; from keras_recipes.serving.session import serve_requests; serve_requests(*sys.argv[1:])"


@dataclass
class Replay:
    """One warm-up request and what the session loader answered."""

    signature: str
    inputs: dict
    outputs: dict


def version_folder(path: str | os.PathLike) -> Path:
    """A SavedModel folder itself, or the highest version under a model folder."""
    path = Path(path)
    if not path.is_dir():
        raise ServingError(f"{path} is not a folder; give a SavedModel version folder.")
    if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
        return path
    versions = [int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit()]
    if not versions:
        raise ServingError(
            f"{path} is not a SavedModel: it holds neither saved_model.pb nor version "
            "folders (1, 2, ...)."
        )
    return path / str(max(versions))


def xla_parts(path: str | os.PathLike) -> list[str]:
    """What in a SavedModel's graph needs XLA: `Xla*` ops and `jit_compile` functions.

    A stock TF Serving runs neither: XLA on CPU is off unless the server is
    started with `--xla_cpu_compilation_enabled=true`. (TensorFlow's own
    loader compiles them on demand, so loading alone does not show it.)
    """
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    file = Path(path) / "saved_model.pb"
    try:
        graph = saved_model_pb2.SavedModel.FromString(file.read_bytes())
    except DecodeError as error:
        raise ServingError(
            f"{file} is damaged: it does not parse as a SavedModel ({error}); it was truncated "
            "or changed in a copy. Copy the version folder again, or export a new version "
            "(keras-recipes export / export_saved_model)."
        ) from None
    found = set()
    for meta_graph in graph.meta_graphs:
        library = meta_graph.graph_def.library.function
        nodes = list(meta_graph.graph_def.node)
        for function in library:
            nodes += function.node_def
            if function.attr["_XlaMustCompile"].b:
                found.add(f"function {function.signature.name} (jit_compile)")
        found.update(f"op {node.op}" for node in nodes if node.op.startswith("Xla"))
    return sorted(found)


def compare_outputs(name: str, got: dict, expected: dict, atol: float = 1e-5) -> None:
    """Raises a `ServingError` naming the signature and output that differ.

    Floats may differ by `atol` times the largest expected magnitude (at
    least 1); integers, booleans and strings must be equal.
    """
    for key, want in expected.items():
        if key not in got:
            raise ServingError(f"signature {name!r}: output {key!r} missing (got {sorted(got)}).")
        have = np.asarray(got[key])
        want = np.asarray(want)
        if have.shape != want.shape:
            raise ServingError(
                f"signature {name!r}: output {key!r} has shape {have.shape}, expected {want.shape}."
            )
        if want.dtype.kind == "f":
            scale = max(1.0, float(np.abs(want).max(initial=0.0)))
            worst = float(np.abs(have.astype(np.float64) - want).max(initial=0.0))
            if np.isnan(have).any() or np.isnan(want).any():
                side = "TF Serving's answer" if np.isnan(have).any() else "the Keras model"
                raise ServingError(
                    f"signature {name!r}: output {key!r} holds NaN in {side}: the weights "
                    "hold NaN or Inf (a run that diverged) or the computation overflows. "
                    "Check the model with keras_recipes._finite.nonfinite_names."
                )
            if not worst <= atol * scale:
                raise ServingError(
                    f"signature {name!r}: output {key!r} differs from the Keras model by "
                    f"{worst:g} (allowed {atol * scale:g})."
                )
        elif not np.array_equal(have, want):
            raise ServingError(
                f"signature {name!r}: output {key!r} differs from the Keras model:\n"
                f"{have!r}\nexpected\n{want!r}"
            )


def replay_in_fresh_process(
    path: Path,
    requests: list,
    tags=("serve",),
    op_libraries: list | None = None,
    timeout: float = 600.0,
) -> tuple[dict[str, Signature], list]:
    """Loads `path` with the C API in a new process and runs `requests` there.

    `op_libraries`: the custom-op libraries the process loads; default
    tensorflow-text's (those the stock model server links).

    Returns the SignatureDefs and, per request, `(outputs, None)` or
    `(None, error message)`. Raises `ServingError` if the SavedModel does not
    load, or if the process dies.
    """
    with tempfile.TemporaryDirectory(prefix="serve-check-") as scratch:
        job, answer = Path(scratch) / "job.pkl", Path(scratch) / "answer.pkl"
        job.write_bytes(
            pickle.dumps(
                {
                    "path": str(path),
                    "tags": list(tags),
                    "op_libraries": op_libraries,
                    "requests": requests,
                }
            )
        )
        package_root = str(Path(__file__).resolve().parents[2])
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [package_root, os.environ.get("PYTHONPATH")])
            ),
        }
        try:
            process = subprocess.run(
                [sys.executable, "-c", _CHILD, str(job), str(answer)],
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise ServingError(
                f"{path}: the session loader took longer than {timeout:.0f} s."
            ) from None
        if process.returncode != 0 or not answer.is_file():
            raise ServingError(
                f"{path}: the session-loader process failed (exit {process.returncode}):\n"
                f"{process.stderr[-3000:]}"
            )
        result = pickle.loads(answer.read_bytes())
    if result["python_tensorflow_loaded"]:  # the check would then see Python's extra ops
        raise ServingError("the session-loader process imported TensorFlow's Python package.")
    if result["error"] is not None:
        raise ServingError(result["error"])
    return result["signatures"], result["replies"]


def check_saved_model(
    path: str | os.PathLike,
    expected: Callable[[str, dict], dict] | None = None,
    atol: float = 1e-5,
    requests: list | None = None,
    timeout: float = 600.0,
    allow_xla: bool = False,
) -> list[Replay]:
    """Replays a SavedModel's warm-up requests through TF Serving's loader.

    In a fresh process that imports no TensorFlow Python and loads no op
    library but tensorflow-text's, `TF_LoadSessionFromSavedModel` loads the
    SavedModel (variables restored through its saver, its init op run) and
    each record of `assets.extra/tf_serving_warmup_requests` is run by the
    SignatureDef's tensor names, exactly as the model server does at start-up.

    Args:
        path: a SavedModel version folder, or a model folder (its highest
            version is checked, the one TF Serving serves).
        expected: optional `(signature_name, inputs) -> {output: array}`,
            the oracle; each answer must equal it (floats within `atol`
            times the largest magnitude, the rest exactly).
        atol: float, default 1e-5.
        requests: optional list of `(signature_name, {input: array})` to
            run instead of the warm-up records.
        timeout: float, seconds the loader process may take.
        allow_xla: bool, default False. Whether the graph may need XLA
            (`export_saved_model(jit_compile=True)`); TF Serving then has to
            be started with `--xla_cpu_compilation_enabled=true`.

    Returns:
        A list of `Replay(signature, inputs, outputs)`, one per request.

    Raises:
        ServingError: not a SavedModel, no warm-up records, an op that is
            neither core TensorFlow nor tensorflow-text, variables the
            saver does not restore, XLA ops or functions (unless
            `allow_xla`), a request the graph refuses, or an answer that
            differs from `expected`.

    On a model folder that `keras_recipes.export.export_saved_model` wrote,
    `check_saved_model("saved_models/llama_tiny")` returns one `Replay` per
    warm-up request: `replay.signature` names the SignatureDef and
    `replay.outputs` maps each output name to its array. (Exporting even a
    tiny model takes seconds, so `tests/test_serving_capi.py` runs this
    instead of a doctest.)
    """
    version = version_folder(path)
    if not allow_xla and (needs := xla_parts(version)):
        raise ServingError(
            f"{version} needs XLA ({', '.join(needs[:4])}{', ...' if len(needs) > 4 else ''}), "
            "which a stock TF Serving does not run: start it with "
            "--xla_cpu_compilation_enabled=true (and check with allow_xla=True / --xla), or "
            "export without jit_compile."
        )
    if requests is None:
        warmup = version / WARMUP_FILE
        if not warmup.is_file():
            raise ServingError(
                f"{version} has no warm-up file ({WARMUP_FILE}), so there is nothing to replay; "
                "export it with keras_recipes.export.export_saved_model, which writes one "
                "request per signature."
            )
        requests = read_warmup_requests(warmup)
        if not requests:
            raise ServingError(f"{warmup} holds no records.")
    if not (version / "variables").is_dir():
        raise ServingError(
            f"{version / 'variables'} is missing: TF Serving restores the weights from "
            "variables/variables.index and variables/variables.data-*. The folder was copied "
            "without it: copy the whole version folder (saved_model.pb, variables/, assets/, "
            "assets.extra/), or export a new version."
        )
    _, replies = replay_in_fresh_process(version, requests, timeout=timeout)
    replays = []
    for (name, inputs), (outputs, error) in zip(requests, replies, strict=True):
        if error is not None:
            raise ServingError(f"signature {name!r}: the request failed: {error}")
        if expected is not None:
            compare_outputs(name, outputs, expected(name, inputs), atol)
        replays.append(Replay(name, inputs, outputs))
    return replays


def describe(value: np.ndarray, limit: int = 6) -> str:
    """A short line for a tensor: dtype, shape and its first values."""
    value = np.asarray(value)
    flat = value.reshape(-1)
    if value.dtype == object:
        items = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
        shown = ", ".join(repr(item if len(item) <= 60 else item[:57] + "...") for item in items)
        return f"string {value.shape} [{shown}]"
    if value.dtype.kind == "f":
        shown = ", ".join(f"{v:.4g}" for v in flat[:limit])
    else:
        shown = ", ".join(str(v) for v in flat[:limit])
    more = ", ..." if flat.size > limit else ""
    return f"{value.dtype} {value.shape} [{shown}{more}]"
