"""The safetensors files of a Hugging Face checkpoint folder, read with suspicion.

Which files hold the weights (one file, or the shards an index names), each
file's JSON header checked for form, and the rule that every file a folder
names lies inside that folder (symlinks resolved; the Hugging Face hub
cache's links into its `blobs/` folder are fine).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from keras_recipes.llama.checkpoints.errors import CheckpointError


def _read_json(file: Path, what: str):
    """The parsed JSON of `file`, or a `CheckpointError` naming the file."""
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise CheckpointError(f"{file}: not valid JSON ({error}); {what}") from None
    except OSError as error:
        raise CheckpointError(f"{file}: cannot be read ({error.strerror}).") from None


def _folder_roots(directory: Path) -> list[Path]:
    """Where the files of a checkpoint folder may really live (symlinks resolved)."""
    root = directory.resolve()
    roots = [root]
    if root.parent.name == "snapshots":
        # The Hugging Face hub cache: snapshots/<revision>/<file> are symlinks
        # to ../../blobs/<hash> of the same model.
        roots.append(root.parent.parent / "blobs")
    return roots


def _inside_folder(directory: Path, name: str, what: str) -> Path:
    """`directory / name`, refused unless it (through any symlink) stays in the folder."""
    file = directory / name
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise CheckpointError(
            f"{directory}: {what} names {name!r}, a path outside the folder. A checkpoint "
            "folder may only refer to its own files: move the file in and name it relatively."
        )
    real = file.resolve()
    if not any(real.is_relative_to(root) for root in _folder_roots(directory)):
        raise CheckpointError(
            f"{directory}: {what} {name!r} is a symlink to {real}, outside the folder. A "
            "checkpoint folder may only refer to its own files: copy the file in instead."
        )
    return file


def hf_safetensors_files(directory: str | os.PathLike) -> list[Path]:
    """The safetensors files of a Hugging Face checkpoint folder, single or sharded.

    Every file must lie inside `directory`: a shard named by an absolute
    path or with `..`, or a symlink resolving outside the folder, is refused
    (the Hugging Face hub cache's links into its `blobs/` folder are fine).

    Raises:
        CheckpointError: naming the file and field, for an unreadable or
            malformed index, a shard outside the folder or a missing one.
    """
    directory = Path(directory)
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        _inside_folder(directory, index.name, "the index")
        content = _read_json(index, "the shard index must be a JSON object with a weight_map.")
        weight_map = content.get("weight_map") if isinstance(content, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(
                f"{index}: field 'weight_map' is missing, empty or not an object; it must "
                'map each tensor name to its shard file, e.g. {"weight_map": {"lm_head.weight": '
                '"model-00001-of-00002.safetensors"}}.'
            )
        names = set()
        for tensor, name in weight_map.items():
            if not isinstance(name, str) or not name:
                raise CheckpointError(
                    f"{index}: weight_map[{tensor!r}] is {name!r}; it must be a file name."
                )
            names.add(name)
        files = [
            _inside_folder(directory, name, f"weight_map entry {name!r} of {index.name}")
            for name in sorted(names)
        ]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(f"{index} names shards that are not in the folder: {missing}.")
        return files
    single = directory / "model.safetensors"
    if single.is_file():
        return [_inside_folder(directory, single.name, "weights file")]
    found = sorted(directory.glob("*.safetensors"))
    if found:
        return [_inside_folder(directory, f.name, "weights file") for f in found]
    raise CheckpointError(
        f"{directory}: no model.safetensors, model.safetensors.index.json or *.safetensors; "
        "a Hugging Face LLaMA folder needs config.json and its safetensors weights "
        "(PyTorch .bin weights are not read: convert them with safetensors first)."
    )


SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "bfloat16", "F64": "<f8"}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_safetensors_header(file: Path) -> tuple[dict, int]:
    """The JSON header of a safetensors file and the offset its data starts at.

    Each entry is checked for form (a `dtype` string, a `shape` list of
    non-negative ints, `data_offsets` `[begin, end]` with `begin <= end`),
    so later code never meets a malformed one.
    """
    with open(file, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{file}: too short to be a safetensors file.")
        (length,) = struct.unpack("<Q", head)
        if length > min(100_000_000, file.stat().st_size):
            raise CheckpointError(f"{file}: header length {length} is impossible; not safetensors.")
        try:
            header = json.loads(f.read(length))
        except ValueError as error:
            raise CheckpointError(f"{file}: unreadable safetensors header ({error}).") from None
    if not isinstance(header, dict):
        raise CheckpointError(
            f"{file}: the safetensors header is a JSON {type(header).__name__}, not an object "
            "mapping tensor names to dtype, shape and data_offsets; the file is corrupt."
        )
    header.pop("__metadata__", None)
    for key, info in header.items():
        problem = None
        if not isinstance(info, dict):
            problem = f"is a JSON {type(info).__name__}, not an object"
        elif not isinstance(info.get("dtype"), str):
            problem = f"has dtype {info.get('dtype')!r}, not a dtype name"
        elif not isinstance(info.get("shape"), list) or not all(
            _is_int(n) and n >= 0 for n in info["shape"]
        ):
            problem = f"has shape {info.get('shape')!r}, not a list of sizes"
        else:
            offsets = info.get("data_offsets")
            if not (
                isinstance(offsets, list)
                and len(offsets) == 2
                and all(_is_int(n) for n in offsets)
                and 0 <= offsets[0] <= offsets[1]
            ):
                problem = f"has data_offsets {offsets!r}, not [begin, end] with begin <= end"
        if problem:
            raise CheckpointError(
                f"{file}: header entry {key!r} {problem}; the safetensors file is corrupt."
            )
    return header, 8 + length
