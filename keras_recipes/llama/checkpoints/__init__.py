"""Import and export of real LLaMA checkpoints: llama2.c `.bin` and Hugging Face.

Both formats are read into one canonical set of numpy tensors named as in
Meta's original `model.py` (which llama2.c's `export.py` walks):

    tok_embeddings.weight                    (vocab, dim)
    layers.{i}.attention_norm.weight         (dim,)
    layers.{i}.attention.wq.weight           (n_heads * head_dim, dim)     out x in
    layers.{i}.attention.wk.weight           (n_kv_heads * head_dim, dim)
    layers.{i}.attention.wv.weight           (n_kv_heads * head_dim, dim)
    layers.{i}.attention.wo.weight           (dim, n_heads * head_dim)
    layers.{i}.ffn_norm.weight               (dim,)
    layers.{i}.feed_forward.w1.weight        (hidden_dim, dim)             gate
    layers.{i}.feed_forward.w2.weight        (dim, hidden_dim)             down
    layers.{i}.feed_forward.w3.weight        (hidden_dim, dim)             up
    norm.weight                              (dim,)
    output.weight                            (vocab, dim)                  if untied

Matrices keep PyTorch's (out, in) layout; Keras kernels are the transpose.
llama2.c rotates interleaved pairs (q[2i], q[2i+1]); Hugging Face permutes the
rows of wq/wk so that "rotate half" computes the same thing. A model keeps the
convention of the checkpoint it came from, so its outputs are exactly the
checkpoint's, and conversion between the formats applies the permutation.

llama2.c files (https://github.com/karpathy/llama2.c, `export.py`, `run.c`):

- version 0 (legacy): 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
  vocab_size, seq_len; a negative vocab_size means an unshared classifier
  follows), then float32 tensors grouped by kind across layers, the two legacy
  RoPE tables (seq_len * head_dim / 2 each, unused), then the classifier.
- version 1: a 256-byte header (magic 0x616b3432 "ak42", version, the 7 int32,
  a shared-classifier byte), norms first, then the matrices, all float32.
- version 2: as version 1 plus an int32 group size in the header; norms in
  float32, matrices in Q8_0 (int8 values, then one float32 scale per group).
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from pathlib import Path

import numpy as np

from keras_recipes._io import atomic_folder, atomic_path, atomic_write

LLAMA2C_MAGIC = 0x616B3432
LLAMA2C_HEADER_BYTES = 256
LLAMA2C_VERSIONS = (0, 1, 2)


class CheckpointError(ValueError):
    """A checkpoint file cannot be read or written as asked."""


# ---------------------------------------------------------------------------
# llama2.c: header and tensor layout
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Llama2cHeader:
    """The hyper-parameters a llama2.c file starts with."""

    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    shared_classifier: bool = True
    version: int = 0
    group_size: int = 0

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads


def _check_header(header: Llama2cHeader, path) -> None:
    sizes = dataclasses.asdict(header)
    for name in ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"):
        if sizes[name] <= 0:
            raise CheckpointError(
                f"{path}: header field {name}={sizes[name]} must be positive; "
                "this is not a llama2.c checkpoint or its header is corrupt."
            )
    if header.dim % header.n_heads or header.n_heads % header.n_kv_heads:
        raise CheckpointError(
            f"{path}: header has dim={header.dim}, n_heads={header.n_heads}, "
            f"n_kv_heads={header.n_kv_heads}; dim must divide by n_heads and n_heads by "
            "n_kv_heads. The header is corrupt or from another format."
        )


def read_llama2c_header(path: str | os.PathLike) -> tuple[Llama2cHeader, int]:
    """Reads a llama2.c header; returns it and the byte offset of the tensors."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(LLAMA2C_HEADER_BYTES)
    if len(head) < 28:
        raise CheckpointError(
            f"{path}: {len(head)} bytes is too short for a llama2.c header (28 bytes at least)."
        )
    (magic,) = struct.unpack("<I", head[:4])
    if magic == LLAMA2C_MAGIC:
        if len(head) < LLAMA2C_HEADER_BYTES:
            raise CheckpointError(f"{path}: truncated header ({len(head)} of 256 bytes).")
        (version,) = struct.unpack("<i", head[4:8])
        if version not in (1, 2):
            raise CheckpointError(
                f"{path}: llama2.c version {version} is not supported; "
                "versions 0 (legacy), 1 (fp32) and 2 (int8 Q8_0) are."
            )
        fields = struct.unpack("<7i", head[8:36])
        shared = bool(head[36])
        group_size = struct.unpack("<i", head[37:41])[0] if version == 2 else 0
        header = Llama2cHeader(
            *fields, shared_classifier=shared, version=version, group_size=group_size
        )
        offset = LLAMA2C_HEADER_BYTES
    else:
        fields = list(struct.unpack("<7i", head[:28]))
        if fields[0] > 1 << 20 or fields[0] <= 0:
            raise CheckpointError(
                f"{path}: unknown magic 0x{magic:08x}; not a llama2.c checkpoint "
                f"(version 1/2 files start with 0x{LLAMA2C_MAGIC:08x}, legacy files "
                "with a positive int32 dim)."
            )
        shared = fields[5] > 0
        fields[5] = abs(fields[5])
        header = Llama2cHeader(*fields, shared_classifier=shared, version=0)
        offset = 28
    _check_header(header, path)
    if header.version == 2 and header.group_size <= 0:
        raise CheckpointError(f"{path}: version 2 header has group size {header.group_size}.")
    return header, offset


def _llama2c_layout(h: Llama2cHeader) -> list[tuple[str, tuple[int, ...], bool]]:
    """(name, shape, quantized) of every tensor, in file order."""
    d, hd, L = h.dim, h.hidden_dim, h.n_layers
    q_dim, kv_dim = h.n_heads * h.head_dim, h.n_kv_heads * h.head_dim
    per_layer = {
        "attention_norm": (d,),
        "attention.wq": (q_dim, d),
        "attention.wk": (kv_dim, d),
        "attention.wv": (kv_dim, d),
        "attention.wo": (d, q_dim),
        "ffn_norm": (d,),
        "feed_forward.w1": (hd, d),
        "feed_forward.w2": (d, hd),
        "feed_forward.w3": (hd, d),
    }

    def layers(kind):
        return [(f"layers.{i}.{kind}.weight", per_layer[kind], False) for i in range(L)]

    matrices = [kind for kind in per_layer if kind.startswith(("attention.", "feed_forward."))]
    classifier = [] if h.shared_classifier else [("output.weight", (h.vocab_size, d), False)]
    if h.version == 0:
        half = h.seq_len * h.head_dim // 2
        layout = [("tok_embeddings.weight", (h.vocab_size, d), False)]
        layout += layers("attention_norm")
        for kind in matrices[:4]:
            layout += layers(kind)
        layout += layers("ffn_norm")
        for kind in matrices[4:]:
            layout += layers(kind)
        layout += [("norm.weight", (d,), False)]
        layout += [("freq_cis_real", (half,), False), ("freq_cis_imag", (half,), False)]
        return layout + classifier
    norms = layers("attention_norm") + layers("ffn_norm") + [("norm.weight", (d,), False)]
    rest = [("tok_embeddings.weight", (h.vocab_size, d), False)]
    for kind in matrices:
        rest += layers(kind)
    rest += classifier
    quantized = h.version == 2
    return norms + [(name, shape, quantized) for name, shape, _ in rest]


def _llama2c_tensor_kinds(h: Llama2cHeader) -> list[tuple[tuple[int, ...], int, bool]]:
    """(shape, how many, quantized) per kind of tensor: `_llama2c_layout` without the names.

    Its size does not grow with `n_layers`, so a header claiming a million
    layers is checked against the file in microseconds.
    """
    d, hd, L = h.dim, h.hidden_dim, h.n_layers
    q_dim, kv_dim = h.n_heads * h.head_dim, h.n_kv_heads * h.head_dim
    quantized = h.version == 2
    kinds = [((d,), 2 * L + 1, False), ((h.vocab_size, d), 1, quantized)]
    kinds += [((q_dim, d), L, quantized), ((kv_dim, d), 2 * L, quantized)]
    kinds += [((d, q_dim), L, quantized), ((hd, d), 2 * L, quantized), ((d, hd), L, quantized)]
    if not h.shared_classifier:
        kinds.append(((h.vocab_size, d), 1, quantized))
    if h.version == 0:
        kinds.append(((h.seq_len * h.head_dim // 2,), 2, False))  # the legacy RoPE tables
    return kinds


def llama2c_file_bytes(header: Llama2cHeader, offset: int) -> int:
    """The size in bytes a llama2.c file with this header (tensors from `offset`) must have."""
    return offset + sum(
        count * _tensor_bytes(shape, quantized, header.group_size)
        for shape, count, quantized in _llama2c_tensor_kinds(header)
    )


def _tensor_bytes(shape, quantized: bool, group_size: int) -> int:
    n = int(np.prod(shape))
    return n + 4 * (n // group_size) if quantized else 4 * n


def _read_array(f, dtype, shape, path, name) -> np.ndarray:
    """Reads one tensor from the file's current position into a new array."""
    array = np.empty(shape, dtype)
    if f.readinto(array.reshape(-1).view(np.uint8)) != array.nbytes:
        raise CheckpointError(f"{path}: file ends inside tensor {name}; it is truncated.")
    return array


@dataclasses.dataclass(frozen=True)
class StoredTensor:
    """A tensor still in its file: read whole, or a block of rows at a time.

    Loaders hand these to `assign_tensors`, which copies a few megabytes of
    rows at a time into the model, so importing a checkpoint never holds a
    second copy of a large matrix.
    """

    path: Path
    offset: int
    shape: tuple[int, ...]
    dtype: object

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows `[start, stop)` (along the first axis) as a new array."""
        stop = self.shape[0] if stop is None else stop
        row_shape = self.shape[1:]
        row_bytes = int(np.prod(row_shape)) * np.dtype(self.dtype).itemsize
        with open(self.path, "rb") as f:
            f.seek(self.offset + start * row_bytes)
            return _read_array(f, self.dtype, (stop - start, *row_shape), self.path, "rows")

    def blocks(self, rows: int):
        """Yields `(start, array)` for each block of `rows` rows, in order.

        One open file and one buffer serve every block: each array is
        overwritten by the next, so copy what must outlive the step.
        """
        row_shape = self.shape[1:]
        buffer = np.empty((min(rows, self.shape[0]), *row_shape), self.dtype)
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            for start in range(0, self.shape[0], rows):
                block = buffer[: min(rows, self.shape[0] - start)]
                if f.readinto(block.reshape(-1).view(np.uint8)) != block.nbytes:
                    raise CheckpointError(
                        f"{self.path}: file ends inside the tensor at offset {self.offset}; "
                        "it is truncated."
                    )
                yield start, block

    def __array__(self, dtype=None, copy=None):
        value = self.read()
        return value if dtype is None else value.astype(dtype)


def iter_llama2c(path: str | os.PathLike):
    """Reads a llama2.c checkpoint (version 0, 1 or 2) one tensor at a time.

    Returns the header and a generator of `(canonical name, float32 array)`.
    The whole file is validated against its header before the first tensor
    is produced. Float32 tensors come as `StoredTensor`s, read when asked
    (`np.asarray(t)`, or rows at a time), so nothing is resident before use. Q8_0 tensors are dequantized as llama2.c's `runq.c` does (int8
    value times its group's float32 scale). Version 0's RoPE tables are
    skipped.

    Raises:
        CheckpointError: the file is truncated or longer than its header says,
            has an unknown magic or version, or sizes that cannot be a LLaMA.
    """
    path = Path(path)
    header, offset = read_llama2c_header(path)
    # Sizes first, from the header alone: nothing is listed or allocated for
    # a header that promises more than the file holds.
    if header.version == 2:
        for shape, _, quantized in _llama2c_tensor_kinds(header):
            if quantized and int(np.prod(shape)) % header.group_size:
                raise CheckpointError(
                    f"{path}: tensors of shape {shape} are not a multiple of the group size "
                    f"{header.group_size} in the header."
                )
    expected = llama2c_file_bytes(header, offset)
    actual = path.stat().st_size
    if actual != expected:
        what = "truncated" if actual < expected else "longer than its header says"
        raise CheckpointError(
            f"{path}: file is {what}: the header ({header}) implies {expected:,} bytes, "
            f"the file has {actual:,}. Re-download or re-export the checkpoint."
        )

    layout = _llama2c_layout(header)

    def tensors():
        # Plain reads, not a memory map: mapped pages count as resident memory
        # until unmapped, so a map would hold the whole file on top of the model.
        position = offset
        with open(path, "rb") as f:
            for name, shape, quantized in layout:
                n = int(np.prod(shape))
                if quantized:  # int8 is a quarter of the model's size: dequantize whole.
                    f.seek(position)
                    q = _read_array(f, np.int8, (n,), path, name)
                    scales = _read_array(f, "<f4", (n // header.group_size,), path, name)
                    values = q.reshape(-1, header.group_size).astype(np.float32)
                    values *= scales[:, None]
                    values = values.reshape(shape)
                else:
                    values = StoredTensor(path, position, shape, np.dtype("<f4"))
                position += _tensor_bytes(shape, quantized, header.group_size)
                if not name.startswith("freq_cis"):
                    yield name, values

    return header, tensors()


def read_llama2c(path: str | os.PathLike) -> tuple[Llama2cHeader, dict[str, np.ndarray]]:
    """Reads a whole llama2.c checkpoint into a dict of float32 arrays (see `iter_llama2c`)."""
    header, tensors = iter_llama2c(path)
    return header, {name: np.asarray(value) for name, value in tensors}


def quantize_q80(w: np.ndarray, group_size: int) -> tuple[np.ndarray, np.ndarray]:
    """llama2.c's Q8_0: per group of `group_size`, scale = max|w| / 127, q = round(w / scale)."""
    groups = np.asarray(w, np.float32).reshape(-1, group_size)
    scale = np.abs(groups).max(axis=1) / 127.0
    safe = np.where(scale == 0, 1.0, scale)
    q = np.round(groups / safe[:, None]).astype(np.int8)
    return q.reshape(-1), scale.astype(np.float32)


def write_llama2c(
    path: str | os.PathLike,
    header: Llama2cHeader,
    tensors: dict[str, np.ndarray],
) -> Path:
    """Writes canonical tensors as a llama2.c file of `header.version`, atomically.

    Version 2 chooses its group size as llama2.c's `export.py` does (64, halved
    until it divides dim) unless `header.group_size` is set.
    """
    path = Path(path)
    if header.version not in LLAMA2C_VERSIONS:
        raise CheckpointError(f"llama2.c version {header.version} unknown; use 0, 1 or 2.")
    if header.version == 2 and not header.group_size:
        group_size = 64
        while header.dim % group_size:
            group_size //= 2
        header = dataclasses.replace(header, group_size=group_size)
    layout = _llama2c_layout(header)
    head_dim = header.head_dim
    with atomic_write(path) as f:
        if header.version == 0:
            vocab = header.vocab_size if header.shared_classifier else -header.vocab_size
            f.write(
                struct.pack(
                    "<7i",
                    header.dim,
                    header.hidden_dim,
                    header.n_layers,
                    header.n_heads,
                    header.n_kv_heads,
                    vocab,
                    header.seq_len,
                )
            )
        else:
            fields = [header.dim, header.hidden_dim, header.n_layers, header.n_heads]
            fields += [header.n_kv_heads, header.vocab_size, header.seq_len]
            head = struct.pack(
                "<Ii7iB", LLAMA2C_MAGIC, header.version, *fields, header.shared_classifier
            )
            if header.version == 2:
                head += struct.pack("<i", header.group_size)
            f.write(head + b"\0" * (LLAMA2C_HEADER_BYTES - len(head)))
        for name, shape, quantized in layout:
            if name.startswith("freq_cis"):
                # The legacy RoPE tables of llama2.c's export (unused by run.c).
                freqs = 1.0 / 10000.0 ** (np.arange(0, head_dim, 2)[: head_dim // 2] / head_dim)
                angles = np.outer(np.arange(header.seq_len), freqs)
                table = np.cos(angles) if name == "freq_cis_real" else np.sin(angles)
                f.write(table.astype("<f4").tobytes())
                continue
            if name not in tensors:
                raise CheckpointError(f"{path}: tensor {name} is missing; cannot write it.")
            value = np.asarray(tensors[name], np.float32)
            if value.shape != shape:
                raise CheckpointError(
                    f"{path}: tensor {name} has shape {value.shape}, the header needs {shape}."
                )
            if quantized:
                q, scale = quantize_q80(value, header.group_size)
                f.write(q.tobytes())
                f.write(scale.astype("<f4").tobytes())
            else:
                f.write(value.astype("<f4").tobytes())
    return path


# ---------------------------------------------------------------------------
# Hugging Face: config.json + (sharded) safetensors, LlamaForCausalLM names
# ---------------------------------------------------------------------------

HF_LAYER_NAMES = {
    "input_layernorm": "attention_norm",
    "self_attn.q_proj": "attention.wq",
    "self_attn.k_proj": "attention.wk",
    "self_attn.v_proj": "attention.wv",
    "self_attn.o_proj": "attention.wo",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "feed_forward.w1",
    "mlp.down_proj": "feed_forward.w2",
    "mlp.up_proj": "feed_forward.w3",
}
HF_TOP_NAMES = {
    "model.embed_tokens.weight": "tok_embeddings.weight",
    "model.norm.weight": "norm.weight",
    "lm_head.weight": "output.weight",
}


def hf_to_canonical_name(name: str) -> str | None:
    """`model.layers.3.mlp.up_proj.weight` -> `layers.3.feed_forward.w3.weight`."""
    if name in HF_TOP_NAMES:
        return HF_TOP_NAMES[name]
    parts = name.split(".")
    if len(parts) >= 5 and parts[:2] == ["model", "layers"] and parts[-1] == "weight":
        kind = ".".join(parts[3:-1])
        if kind in HF_LAYER_NAMES:
            return f"layers.{parts[2]}.{HF_LAYER_NAMES[kind]}.weight"
    return None


def canonical_to_hf_name(name: str) -> str:
    for hf, ours in HF_TOP_NAMES.items():
        if name == ours:
            return hf
    _, index, *kind, _ = name.split(".")
    inverse = {ours: hf for hf, ours in HF_LAYER_NAMES.items()}
    return f"model.layers.{index}.{inverse['.'.join(kind)]}.weight"


def permute_for_rotate_half(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Rows of wq/wk from interleaved-pair RoPE order to rotate-half order.

    This is the permutation of Hugging Face's `convert_llama_weights_to_hf.py`:
    within each head, features (2i, 2i+1) move to (i, i + head_dim/2).
    """
    rows, cols = w.shape
    return w.reshape(n_heads, rows // n_heads // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def permute_for_interleaved(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Inverse of `permute_for_rotate_half`."""
    rows, cols = w.shape
    return w.reshape(n_heads, 2, rows // n_heads // 2, cols).swapaxes(1, 2).reshape(rows, cols)


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


def iter_hf_tensors(directory: str | os.PathLike):
    """Yields (canonical name, `StoredTensor`, file) for each LLaMA tensor, unread.

    The safetensors files are read tensor by tensor with plain file reads
    (the format is an 8-byte header length, a JSON header of dtype, shape
    and byte offsets, then the raw data), never mapped or read whole. Stored dtypes F32, F16, BF16 and F64 are
    read; a tensor whose bytes run past the end of its file is an error
    naming both. Biases, which LLaMA has none of, are refused.
    """
    import ml_dtypes

    for file in hf_safetensors_files(directory):
        header, data_start = read_safetensors_header(file)
        size = file.stat().st_size
        for key, info in header.items():
            name = hf_to_canonical_name(key)
            if name is None:
                if key.endswith(".bias"):
                    raise CheckpointError(
                        f"{file}: tensor {key} is a bias; LLaMA has none, so this model "
                        "cannot represent the checkpoint."
                    )
                continue
            dtype = SAFETENSORS_DTYPES.get(info["dtype"])
            if dtype is None:
                raise CheckpointError(
                    f"{file}: tensor {name} ({key}) has dtype {info['dtype']}; LLaMA "
                    f"weights are floats ({', '.join(SAFETENSORS_DTYPES)})."
                )
            dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
            begin, end = info["data_offsets"]
            shape = tuple(info["shape"])
            if end - begin != int(np.prod(shape)) * np.dtype(dtype).itemsize:
                raise CheckpointError(
                    f"{file}: tensor {key} claims shape {shape} but holds {end - begin} bytes."
                )
            if data_start + end > size:
                raise CheckpointError(
                    f"{file}: tensor {key} runs past the end of the file; it is truncated."
                )
            yield name, StoredTensor(file, data_start + begin, shape, dtype), file


# ---------------------------------------------------------------------------
# Our model <-> canonical tensors
# ---------------------------------------------------------------------------


def _model_variable(model, name: str):
    """The Keras variable behind a canonical name, and whether it is transposed."""
    parts = name.split(".")
    if name == "tok_embeddings.weight":
        return model.tok_embeddings.embeddings, False
    if name == "norm.weight":
        return model.norm.scale, False
    if name == "output.weight":
        if model.output_projection is None:
            raise CheckpointError(
                "output.weight found but the model ties its output to tok_embeddings."
            )
        return model.output_projection.kernel, True
    if parts[0] == "layers" and len(parts) >= 4 and parts[1].isdigit():
        index = int(parts[1])
        if index >= len(model.blocks):
            raise CheckpointError(f"{name}: layer {index} but the model has {len(model.blocks)}.")
        block = model.blocks[index]
        kind = ".".join(parts[2:-1])
        if kind in ("attention_norm", "ffn_norm"):
            return getattr(block, kind).scale, False
        owner, _, weight = kind.partition(".")
        if owner in ("attention", "feed_forward") and weight:
            layer = getattr(getattr(block, owner), weight, None)
            if layer is not None:
                return layer.kernel, True
    raise CheckpointError(f"{name}: not a LLaMA tensor name this model knows.")


def _iter_canonical_names(config):
    """`canonical_names(config)`, one at a time."""
    yield "tok_embeddings.weight"
    kinds = ["attention_norm", "attention.wq", "attention.wk", "attention.wv", "attention.wo"]
    kinds += ["ffn_norm", "feed_forward.w1", "feed_forward.w2", "feed_forward.w3"]
    for kind in kinds:
        for i in range(config.n_layers):
            yield f"layers.{i}.{kind}.weight"
    yield "norm.weight"
    if not config.tie_embeddings:
        yield "output.weight"


def canonical_names(config) -> list[str]:
    """Every canonical tensor name a model of `config` has, in llama2.c's order."""
    return list(_iter_canonical_names(config))


def model_tensors(model):
    """Yields (canonical name, float32 numpy array in (out, in) layout) of `model`."""
    for name in canonical_names(model.config):
        variable, transposed = _model_variable(model, name)
        value = np.asarray(variable.numpy(), np.float32)
        yield name, (value.T if transposed else value)


def assign_tensors(model, tensors, source, allow_nonfinite: bool = False) -> None:
    """Copies canonical tensors into `model`, checking every name, shape, dtype and value.

    `tensors` yields (name, array or `StoredTensor`[, file]); each is cast to
    the variable's dtype and copied in blocks of rows, read from the file
    block by block, so peak memory is the model plus a few megabytes. Each
    block is checked for NaN and Inf as it passes (after the cast, so a value
    that overflows a float16 model is caught too) unless `allow_nonfinite`.

    Raises:
        CheckpointError: naming the file and the tensor, on an unknown name,
            a wrong shape or dtype, a missing tensor, or non-finite values.
    """
    expected = set(canonical_names(model.config))
    seen = set()
    for name, value, *where in tensors:
        file = where[0] if where else source
        if name not in expected:
            if name == "output.weight" and model.config.tie_embeddings:
                continue  # A tied checkpoint that stores the classifier anyway.
            raise CheckpointError(f"{file}: unexpected tensor {name} for this config.")
        dtype = np.dtype(value.dtype)
        if not (np.issubdtype(dtype, np.floating) or dtype.name == "bfloat16"):
            raise CheckpointError(
                f"{file}: tensor {name} has dtype {dtype}; LLaMA weights are floats."
            )
        variable, transposed = _model_variable(model, name)
        want = tuple(variable.shape[::-1]) if transposed else tuple(variable.shape)
        if tuple(value.shape) != want:
            raise CheckpointError(
                f"{file}: tensor {name} has shape {tuple(value.shape)}, the config needs {want}."
            )
        check = None if allow_nonfinite else _finite_check(file, name)
        _copy_rows(variable, value, transposed, check)
        seen.add(name)
    missing = sorted(expected - seen)
    if missing:
        raise CheckpointError(
            f"{source}: missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}; "
            "the checkpoint is incomplete or for another architecture."
        )


def _finite_check(file, name):
    """A check of each copied block: `(written, read) -> None` or a `CheckpointError`."""

    def check(written: np.ndarray, read: np.ndarray) -> None:
        if np.isfinite(written).all():
            return
        if np.isfinite(read).all():
            raise CheckpointError(
                f"{file}: tensor {name} has values beyond the range of the model's dtype "
                f"{written.dtype} (they would become Inf); load the model in float32 "
                "(dtype='float32'), or pass allow_nonfinite=True to load it anyway."
            )
        raise CheckpointError(
            f"{file}: tensor {name} holds NaN or Inf values; the checkpoint is corrupt or "
            "comes from a run that diverged. Pass allow_nonfinite=True to load it anyway."
        )

    return check


# Each block is alive about four times at once (the rows read, their transpose
# or cast, and the copies TensorFlow makes of a numpy argument), so the block
# size bounds the import's overhead over the model (benchmarks/checkpoint_bench.py):
# 2 MB blocks add about 13 MB, 16 MB blocks about 70 MB.
ROWS_BLOCK_BYTES = 2 << 20


def _copy_rows(variable, value, transposed: bool, check=None) -> None:
    """`variable[...] = value` (or `value.T`), 2 MB of `value`'s rows at a time.

    `check`, if given, sees each block as written and as read (`_finite_check`).
    """
    import keras

    rows = value.shape[0]
    row_size = max(1, int(np.prod(value.shape[1:])))
    step = max(1, ROWS_BLOCK_BYTES // (row_size * 4))
    if keras.backend.backend() != "tensorflow" or step >= rows:
        whole = np.asarray(value)
        written = np.ascontiguousarray(whole.T if transposed else whole, variable.dtype)
        if check is not None:
            check(written, whole)
        variable.assign(written)
        return
    import tensorflow as tf

    # The raw op writes into the variable's buffer. `variable[a:b].assign()`
    # would first read the variable, and that read, still alive at the next
    # block, makes TensorFlow copy the whole buffer (copy-on-write): a second
    # copy of the largest matrix at the peak.
    handle = variable.value.handle
    dtype = np.dtype(tf.as_dtype(variable.dtype).as_numpy_dtype)  # bfloat16 too
    converted = np.empty(step * row_size, dtype)  # reused: blocks transposed or cast
    if isinstance(value, StoredTensor):
        blocks = value.blocks(step)
    else:
        blocks = ((start, value[start : start + step]) for start in range(0, rows, step))
    for start, block in blocks:
        read = block
        stop = start + len(block)
        if transposed:
            begin, end = [0, start], [value.shape[1], stop]
            block = block.T
        else:
            begin, end = [start] + [0] * (block.ndim - 1), [stop, *value.shape[1:]]
        if block.dtype != dtype or not block.flags.c_contiguous:
            out = converted[: block.size].reshape(block.shape)
            np.copyto(out, block, casting="unsafe")
            block = out
        if check is not None:
            check(block, read)
        tf.raw_ops.ResourceStridedSliceAssign(
            ref=handle, begin=begin, end=end, strides=[1] * len(begin), value=block
        )


def _permuted(tensors, config, to_convention: str):
    """Converts wq/wk rows between RoPE conventions as tensors stream by."""
    permute = permute_for_rotate_half if to_convention == "rotate_half" else permute_for_interleaved
    for name, value, *rest in tensors:
        if name.endswith(".attention.wq.weight"):
            value = permute(np.asarray(value, np.float32), config.n_heads)
        elif name.endswith(".attention.wk.weight"):
            value = permute(np.asarray(value, np.float32), config.n_kv_heads)
        yield (name, value, *rest)


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def load_llama2c(path: str | os.PathLike, allow_nonfinite: bool = False):
    """Loads a llama2.c checkpoint (version 0, 1 or 2) into a `LlamaModel`.

    The model uses llama2.c's interleaved-pair RoPE, theta 10000 and RMSNorm
    epsilon 1e-5, the constants `run.c` hard-codes, so its logits are what
    llama2.c computes for the same weights. The file's size is checked
    against its header before anything is built, and every weight is
    checked for NaN and Inf as it is copied.

    Args:
        path: a `.bin` written by llama2.c's `export.py` (`--version 0|1|2`)
            or by `save_llama2c`.
        allow_nonfinite: bool. Load NaN or Inf weights instead of refusing
            them (to inspect a diverged run). Defaults to False.

    Returns:
        `LlamaModel`, with `.generate(...)`.

    Examples:

    ```python
    model = load_llama2c("stories15M.bin")
    tokenizer = Llama2cTokenizer.load("tokenizer.bin")
    ids = model.generate([tokenizer.encode("Once upon a time")], max_new_tokens=64)
    print(tokenizer.decode(ids[0]))
    ```
    """
    from keras_recipes.llama.model import LlamaConfig, LlamaModel

    header, tensors = iter_llama2c(path)
    config = LlamaConfig(
        vocab_size=header.vocab_size,
        dim=header.dim,
        n_layers=header.n_layers,
        n_heads=header.n_heads,
        n_kv_heads=header.n_kv_heads,
        hidden_dim=header.hidden_dim,
        max_seq_len=header.seq_len,
        rope_theta=10000.0,
        norm_eps=1e-5,
        tie_embeddings=header.shared_classifier,
        rope_convention="interleaved",
    )
    model = LlamaModel(config, initializer="zeros")
    assign_tensors(model, tensors, path, allow_nonfinite=allow_nonfinite)
    return model


def save_llama2c(model, path: str | os.PathLike, version: int = 0) -> Path:
    """Writes `model` as a llama2.c checkpoint, atomically.

    Args:
        model: a `LlamaModel`. Hugging Face style models (rotate-half RoPE)
            have their wq/wk rows permuted to llama2.c's interleaved order.
        path: the `.bin` to write (replaced only once fully written).
        version: 0 (legacy, what `run.c` reads), 1 (fp32 with a header) or
            2 (int8 Q8_0, what `runq.c` reads).

    Raises:
        CheckpointError: the model uses what llama2.c cannot express (a RoPE
            theta other than 10000, RoPE scaling, RMSNorm epsilon not 1e-5).
    """
    config = model.config
    problems = []
    if config.rope_theta != 10000.0:
        problems.append(f"rope_theta={config.rope_theta} (run.c uses 10000)")
    if config.rope_scaling:
        problems.append("rope_scaling (run.c has none)")
    if config.norm_eps != 1e-5:
        problems.append(f"norm_eps={config.norm_eps} (run.c uses 1e-5)")
    if problems:
        raise CheckpointError(
            f"{path}: llama2.c cannot represent this model: {'; '.join(problems)}. "
            "Save it with save_hf instead."
        )
    header = Llama2cHeader(
        dim=config.dim,
        hidden_dim=config.ffn_hidden_dim,
        n_layers=config.n_layers,
        n_heads=config.n_heads,
        n_kv_heads=config.n_kv_heads,
        vocab_size=config.vocab_size,
        seq_len=config.max_seq_len,
        shared_classifier=config.tie_embeddings,
        version=version,
    )
    tensors = model_tensors(model)
    if config.rope_convention == "rotate_half":
        tensors = _permuted(tensors, config, "interleaved")
    return write_llama2c(path, header, dict(tensors))


_HF_REQUIRED_SIZES = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
)
_HF_OPTIONAL_SIZES = ("num_key_value_heads", "head_dim", "max_position_embeddings")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_hf_fields(hf, source) -> None:
    """Refuses a config.json whose LLaMA fields are missing or of the wrong type."""
    if not isinstance(hf, dict):
        raise CheckpointError(
            f"{source}: holds a JSON {type(hf).__name__}; a Hugging Face config.json is one "
            "JSON object of fields (model_type, hidden_size, ...)."
        )
    missing = [name for name in _HF_REQUIRED_SIZES if name not in hf]
    if missing:
        raise CheckpointError(
            f"{source}: required field(s) {', '.join(missing)} missing; a LLaMA config.json "
            f"gives each of {', '.join(_HF_REQUIRED_SIZES)}."
        )
    for name in _HF_REQUIRED_SIZES + _HF_OPTIONAL_SIZES:
        value = hf.get(name)
        if (value is not None or name in _HF_REQUIRED_SIZES) and not (_is_int(value) and value > 0):
            raise CheckpointError(
                f"{source}: field {name} is {value!r} ({type(value).__name__}); it must be a "
                "positive integer."
            )
    for name in ("rope_theta", "rms_norm_eps"):
        value = hf.get(name)
        if value is not None and not (_is_number(value) and value > 0):
            raise CheckpointError(
                f"{source}: field {name} is {value!r} ({type(value).__name__}); it must be a "
                "positive number."
            )
    tie = hf.get("tie_word_embeddings")
    if tie is not None and not isinstance(tie, bool):
        raise CheckpointError(
            f"{source}: field tie_word_embeddings is {tie!r}; it must be true or false."
        )
    for name in ("rope_scaling", "rope_parameters"):
        if hf.get(name) is not None and not isinstance(hf[name], dict):
            raise CheckpointError(
                f"{source}: field {name} is {hf[name]!r}; it must be an object or null."
            )


def hf_config_to_llama(hf: dict, source="config.json"):
    """A `LlamaConfig` from a Hugging Face `config.json` dict, or a clear error.

    Raises:
        CheckpointError: naming `source` and the field, for another
            architecture, a missing field, or a field of the wrong type.
    """
    from keras_recipes.llama.model import LlamaConfig

    if not isinstance(hf, dict) or hf.get("model_type") != "llama":
        _check_hf_fields(hf, source)  # A JSON list is reported as such.
        raise CheckpointError(
            f"{source}: model_type is {hf.get('model_type')!r}; load_hf reads LLaMA "
            "checkpoints (model_type 'llama', LlamaForCausalLM)."
        )
    _check_hf_fields(hf, source)
    problems = []
    if hf.get("hidden_act", "silu") != "silu":
        problems.append(f"hidden_act={hf['hidden_act']!r} (LLaMA uses silu)")
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        problems.append("attention_bias/mlp_bias (LLaMA has no biases)")
    n_heads = hf["num_attention_heads"]
    head_dim = hf.get("head_dim")
    if head_dim is not None and head_dim != hf["hidden_size"] // n_heads:
        problems.append(f"head_dim={head_dim} != hidden_size / num_attention_heads")
    scaling = hf.get("rope_scaling")
    rope_theta = hf.get("rope_theta", (hf.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    if not _is_number(rope_theta) or rope_theta <= 0:
        raise CheckpointError(
            f"{source}: field rope_parameters.rope_theta is {rope_theta!r}; it must be a "
            "positive number."
        )
    if scaling:
        kind = scaling.get("rope_type", scaling.get("type"))
        keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
        if kind == "default":
            scaling = None
        elif kind != "llama3":
            problems.append(f"rope_scaling of type {kind!r} (only 'llama3' is supported)")
        elif not all(_is_number(scaling.get(key)) for key in keys):
            raise CheckpointError(
                f"{source}: field rope_scaling of type 'llama3' needs numbers for each of "
                f"{', '.join(keys)}; it has {scaling!r}."
            )
        else:
            scaling = {key: scaling[key] for key in keys}
    if problems:
        raise CheckpointError(f"{source}: this model cannot represent {'; '.join(problems)}.")
    try:
        return LlamaConfig(
            vocab_size=hf["vocab_size"],
            dim=hf["hidden_size"],
            n_layers=hf["num_hidden_layers"],
            n_heads=n_heads,
            n_kv_heads=hf.get("num_key_value_heads") or n_heads,
            hidden_dim=hf["intermediate_size"],
            max_seq_len=hf.get("max_position_embeddings") or 2048,
            rope_theta=float(rope_theta),
            norm_eps=float(hf.get("rms_norm_eps") or 1e-6),
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
            rope_scaling=scaling,
            rope_convention="rotate_half",
        )
    except ValueError as error:
        raise CheckpointError(f"{source}: {error}") from None


def _expected_shape(config, name: str) -> tuple[int, ...] | None:
    """The (out, in) shape of canonical tensor `name` in a model of `config`; None if it has none."""
    d, q_dim = config.dim, config.n_heads * config.head_dim
    kv_dim, hidden = config.n_kv_heads * config.head_dim, config.ffn_hidden_dim
    if name in ("tok_embeddings.weight", "output.weight"):
        return None if name == "output.weight" and config.tie_embeddings else (config.vocab_size, d)
    if name == "norm.weight":
        return (d,)
    parts = name.split(".")
    if len(parts) < 4 or parts[0] != "layers" or not parts[1].isdigit():
        return None
    if int(parts[1]) >= config.n_layers:
        return None
    return {
        "attention_norm": (d,),
        "ffn_norm": (d,),
        "attention.wq": (q_dim, d),
        "attention.wk": (kv_dim, d),
        "attention.wv": (kv_dim, d),
        "attention.wo": (d, q_dim),
        "feed_forward.w1": (hidden, d),
        "feed_forward.w2": (d, hidden),
        "feed_forward.w3": (hidden, d),
    }.get(".".join(parts[2:-1]))


def _check_hf_tensors(directory: Path, config) -> None:
    """Every tensor's name and shape from the safetensors headers, before a model is built.

    A config.json promising more layers or a larger vocabulary than the
    weights hold fails here in milliseconds instead of after allocating
    the model it describes.
    """
    stored = set()
    for name, tensor, file in iter_hf_tensors(directory):
        want = _expected_shape(config, name)
        if want is None:
            if name == "output.weight":
                continue  # A tied checkpoint that stores the classifier anyway.
            raise CheckpointError(f"{file}: unexpected tensor {name} for this config.")
        if tensor.shape != want:
            raise CheckpointError(
                f"{file}: tensor {name} has shape {tensor.shape}, the config needs {want}."
            )
        stored.add(name)
    if len(stored) < 9 * config.n_layers + 2 + (not config.tie_embeddings):
        missing = []
        for name in _iter_canonical_names(config):
            if name not in stored:
                missing.append(name)
                if len(missing) > 5:
                    break
        raise CheckpointError(
            f"{directory}: missing tensors {sorted(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}; the checkpoint is incomplete or its "
            "config.json describes a larger model."
        )


def load_hf(directory: str | os.PathLike, dtype: str | None = None, allow_nonfinite: bool = False):
    """Loads a Hugging Face LLaMA folder (config.json + safetensors) into a `LlamaModel`.

    Reads `model.safetensors` or the shards listed in
    `model.safetensors.index.json`, tensor by tensor (plain reads, never a
    whole file at once), casting bfloat16 / float16 / float32 weights to the
    model's dtype. Tied or untied embeddings, grouped-query attention,
    `rope_theta` and `rope_scaling` of type "llama3" are honoured; the model
    keeps Hugging Face's rotate-half RoPE, so its logits are the checkpoint's.

    Before a model is built, config.json's fields and every tensor's name
    and shape (from the safetensors headers) are checked; files outside the
    folder (an absolute or `..` shard name, a symlink leading out) are
    refused. Weights are checked for NaN and Inf as they are copied.

    Args:
        directory: the checkpoint folder.
        dtype: optional Keras dtype policy for the model (default: Keras's).
        allow_nonfinite: bool. Load NaN or Inf weights instead of refusing
            them. Defaults to False.

    Examples:

    ```python
    model = load_hf("path/to/TinyLlama-1.1B")
    model.generate([[1, 450, 4996]], max_new_tokens=20)
    ```
    """
    from keras_recipes.llama.model import LlamaModel

    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{directory}: no config.json; not a Hugging Face model folder.")
    _inside_folder(directory, config_path.name, "config file")
    hf = _read_json(config_path, "a Hugging Face config.json is one JSON object of fields.")
    config = hf_config_to_llama(hf, config_path)
    _check_hf_tensors(directory, config)  # A clear error before building a large model.
    model = LlamaModel(config, initializer="zeros", **({"dtype": dtype} if dtype else {}))
    assign_tensors(model, iter_hf_tensors(directory), directory, allow_nonfinite=allow_nonfinite)
    return model


def save_hf(model, directory: str | os.PathLike, dtype: str = "float32") -> Path:
    """Writes `model` as a Hugging Face LLaMA folder: config.json + model.safetensors.

    Interleaved-RoPE models (llama2.c) get their wq/wk rows permuted to
    Hugging Face's rotate-half order, so `transformers` and keras-hub compute
    the same logits.

    The folder is replaced as a whole (`keras_recipes._io.atomic_folder`):
    the new files are written into a temporary folder beside it, synced,
    then swapped in, so a reader (or a kill) never sees new weights beside
    an old config. Files of an existing folder that are not weights or
    config (a tokenizer, a README) are kept; its old safetensors shards and
    index are not, so they cannot shadow the new weights.

    Args:
        model: a `LlamaModel`.
        directory: the folder (created if needed).
        dtype: "float32", "float16" or "bfloat16", the stored weight type.
    """
    import ml_dtypes
    from safetensors.numpy import save_file

    numpy_dtypes = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
    if dtype not in numpy_dtypes:
        raise CheckpointError(f"save_hf: dtype must be one of {list(numpy_dtypes)}, got {dtype!r}.")
    config = model.config
    directory = Path(directory)
    tensors = model_tensors(model)
    if config.rope_convention == "interleaved":
        tensors = _permuted(tensors, config, "rotate_half")
    state = {
        canonical_to_hf_name(name): np.ascontiguousarray(value.astype(numpy_dtypes[dtype]))
        for name, value in tensors
    }
    hf_config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": config.dim,
        "intermediate_size": config.ffn_hidden_dim,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads,
        "head_dim": config.head_dim,
        "vocab_size": config.vocab_size,
        "max_position_embeddings": config.max_seq_len,
        "rope_theta": config.rope_theta,
        "rms_norm_eps": config.norm_eps,
        "tie_word_embeddings": config.tie_embeddings,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": dtype,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    if config.rope_scaling:
        hf_config["rope_scaling"] = {"rope_type": "llama3", **config.rope_scaling}
    with atomic_folder(directory, carry_over=_kept_beside_hf_weights) as tmp:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2), encoding="utf-8")
    return directory


def _kept_beside_hf_weights(name: str) -> bool:
    """Whether `save_hf` keeps a file of the folder it replaces (not weights, not config)."""
    replaced = ("config.json", "model.safetensors.index.json")
    return name not in replaced and not name.endswith((".safetensors", ".partial"))


def load_checkpoint(path: str | os.PathLike, allow_nonfinite: bool = False):
    """A `LlamaModel` from any checkpoint this package reads, chosen by its form.

    A `.keras` file (saved by Keras / `llama train`), a llama2.c `.bin`, or a
    Hugging Face folder holding `config.json`. NaN or Inf weights are
    refused, naming the tensor, unless `allow_nonfinite=True`.
    """
    import keras

    from keras_recipes.llama.model import LlamaModel

    path = Path(path)
    if path.is_dir():
        return load_hf(path, allow_nonfinite=allow_nonfinite)
    if not path.is_file():
        raise CheckpointError(
            f"No checkpoint at {path}: give a .keras file, a llama2.c .bin, or a Hugging "
            "Face folder with config.json and safetensors."
        )
    if path.suffix == ".keras":
        model = keras.models.load_model(path)
        if not isinstance(model, LlamaModel):
            raise CheckpointError(f"{path} holds a {type(model).__name__}, not a LLaMA model.")
        if not allow_nonfinite:
            for variable in model.weights:
                if not np.isfinite(np.asarray(variable.numpy(), np.float32)).all():
                    raise CheckpointError(
                        f"{path}: weight {variable.path} holds NaN or Inf values; the model "
                        "comes from a run that diverged. Pass allow_nonfinite=True to load "
                        "it anyway."
                    )
        return model
    return load_llama2c(path, allow_nonfinite=allow_nonfinite)


def save_checkpoint(model, path: str | os.PathLike, llama2c_version: int = 0) -> Path:
    """Writes `model` in the format `path` names: `.keras`, `.bin` (llama2.c) or a folder (HF)."""
    path = Path(path)
    if path.suffix == ".keras":
        with atomic_path(path, suffix=".keras") as tmp:  # Keras insists on the extension
            model.save(tmp)
        return path
    if path.suffix == ".bin":
        return save_llama2c(model, path, version=llama2c_version)
    if path.suffix:
        raise CheckpointError(
            f"{path}: unknown checkpoint format {path.suffix!r}; use .keras, .bin (llama2.c) "
            "or a folder name (Hugging Face)."
        )
    return save_hf(model, path)
