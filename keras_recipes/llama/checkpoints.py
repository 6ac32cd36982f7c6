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

import contextlib
import dataclasses
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

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
    layout = _llama2c_layout(header)
    if header.version == 2:
        for name, shape, quantized in layout:
            if quantized and int(np.prod(shape)) % header.group_size:
                raise CheckpointError(
                    f"{path}: tensor {name} {shape} is not a multiple of the group size "
                    f"{header.group_size} in the header."
                )
    expected = offset + sum(_tensor_bytes(s, q, header.group_size) for _, s, q in layout)
    actual = path.stat().st_size
    if actual != expected:
        what = "truncated" if actual < expected else "longer than its header says"
        raise CheckpointError(
            f"{path}: file is {what}: the header ({header}) implies {expected:,} bytes, "
            f"the file has {actual:,}. Re-download or re-export the checkpoint."
        )

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
    with _atomic_file(path) as f:
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


@contextlib.contextmanager
def _atomic_path(path: Path):
    """A temporary path beside `path`, renamed onto it if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def _atomic_file(path: Path):
    """A binary file open for writing, renamed onto `path` once complete."""
    with _atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f


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


def hf_safetensors_files(directory: str | os.PathLike) -> list[Path]:
    """The safetensors files of a Hugging Face checkpoint folder, single or sharded."""
    directory = Path(directory)
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        files = sorted({directory / name for name in weight_map.values()})
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(f"{index} names shards that are not in the folder: {missing}.")
        return files
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    found = sorted(directory.glob("*.safetensors"))
    if found:
        return found
    raise CheckpointError(
        f"{directory}: no model.safetensors, model.safetensors.index.json or *.safetensors; "
        "a Hugging Face LLaMA folder needs config.json and its safetensors weights "
        "(PyTorch .bin weights are not read: convert them with safetensors first)."
    )


SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "bfloat16", "F64": "<f8"}


def read_safetensors_header(file: Path) -> tuple[dict, int]:
    """The JSON header of a safetensors file and the offset its data starts at."""
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
    header.pop("__metadata__", None)
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


def canonical_names(config) -> list[str]:
    """Every canonical tensor name a model of `config` has, in llama2.c's order."""
    names = ["tok_embeddings.weight"]
    kinds = ["attention_norm", "attention.wq", "attention.wk", "attention.wv", "attention.wo"]
    kinds += ["ffn_norm", "feed_forward.w1", "feed_forward.w2", "feed_forward.w3"]
    names += [f"layers.{i}.{kind}.weight" for kind in kinds for i in range(config.n_layers)]
    names.append("norm.weight")
    if not config.tie_embeddings:
        names.append("output.weight")
    return names


def model_tensors(model):
    """Yields (canonical name, float32 numpy array in (out, in) layout) of `model`."""
    for name in canonical_names(model.config):
        variable, transposed = _model_variable(model, name)
        value = np.asarray(variable.numpy(), np.float32)
        yield name, (value.T if transposed else value)


def assign_tensors(model, tensors, source) -> None:
    """Copies canonical tensors into `model`, checking every name, shape and dtype.

    `tensors` yields (name, array or `StoredTensor`[, file]); each is cast to
    the variable's dtype and copied in blocks of rows, read from the file
    block by block, so peak memory is the model plus a few megabytes. Raises `CheckpointError` naming the file and
    the tensor on an unknown name, a wrong shape or dtype, or a missing tensor.
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
        _copy_rows(variable, value, transposed)
        seen.add(name)
    missing = sorted(expected - seen)
    if missing:
        raise CheckpointError(
            f"{source}: missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}; "
            "the checkpoint is incomplete or for another architecture."
        )


# Each block is alive about four times at once (the rows read, their transpose
# or cast, and the copies TensorFlow makes of a numpy argument), so the block
# size bounds the import's overhead over the model (benchmarks/checkpoint_bench.py):
# 2 MB blocks add about 13 MB, 16 MB blocks about 70 MB.
ROWS_BLOCK_BYTES = 2 << 20


def _copy_rows(variable, value, transposed: bool) -> None:
    """`variable[...] = value` (or `value.T`), 2 MB of `value`'s rows at a time."""
    import keras

    rows = value.shape[0]
    row_size = max(1, int(np.prod(value.shape[1:])))
    step = max(1, ROWS_BLOCK_BYTES // (row_size * 4))
    if keras.backend.backend() != "tensorflow" or step >= rows:
        whole = np.asarray(value)
        variable.assign(np.ascontiguousarray(whole.T if transposed else whole, variable.dtype))
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


def load_llama2c(path: str | os.PathLike):
    """Loads a llama2.c checkpoint (version 0, 1 or 2) into a `LlamaModel`.

    The model uses llama2.c's interleaved-pair RoPE, theta 10000 and RMSNorm
    epsilon 1e-5, the constants `run.c` hard-codes, so its logits are what
    llama2.c computes for the same weights.

    Args:
        path: a `.bin` written by llama2.c's `export.py` (`--version 0|1|2`)
            or by `save_llama2c`.

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
    assign_tensors(model, tensors, path)
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


def hf_config_to_llama(hf: dict, source="config.json"):
    """A `LlamaConfig` from a Hugging Face `config.json` dict, or a clear error."""
    from keras_recipes.llama.model import LlamaConfig

    if hf.get("model_type") != "llama":
        raise CheckpointError(
            f"{source}: model_type is {hf.get('model_type')!r}; load_hf reads LLaMA "
            "checkpoints (model_type 'llama', LlamaForCausalLM)."
        )
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
    rope_theta = hf.get("rope_theta", hf.get("rope_parameters", {}).get("rope_theta", 10000.0))
    if scaling:
        kind = scaling.get("rope_type", scaling.get("type"))
        if kind == "default":
            scaling = None
        elif kind != "llama3":
            problems.append(f"rope_scaling of type {kind!r} (only 'llama3' is supported)")
        else:
            scaling = {
                key: scaling[key]
                for key in (
                    "factor",
                    "low_freq_factor",
                    "high_freq_factor",
                    "original_max_position_embeddings",
                )
            }
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
            max_seq_len=hf.get("max_position_embeddings", 2048),
            rope_theta=float(rope_theta),
            norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
            rope_scaling=scaling,
            rope_convention="rotate_half",
        )
    except KeyError as missing:
        raise CheckpointError(f"{source}: required field {missing} is missing.") from None
    except ValueError as error:
        raise CheckpointError(f"{source}: {error}") from None


def load_hf(directory: str | os.PathLike, dtype: str | None = None):
    """Loads a Hugging Face LLaMA folder (config.json + safetensors) into a `LlamaModel`.

    Reads `model.safetensors` or the shards listed in
    `model.safetensors.index.json`, tensor by tensor (plain reads, never a
    whole file at once), casting bfloat16 / float16 / float32 weights to the
    model's dtype. Tied or untied embeddings, grouped-query attention,
    `rope_theta` and `rope_scaling` of type "llama3" are honoured; the model
    keeps Hugging Face's rotate-half RoPE, so its logits are the checkpoint's.

    Args:
        directory: the checkpoint folder.
        dtype: optional Keras dtype policy for the model (default: Keras's).

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
    config = hf_config_to_llama(json.loads(config_path.read_text()), config_path)
    hf_safetensors_files(directory)  # A clear error before building a large model.
    model = LlamaModel(config, initializer="zeros", **({"dtype": dtype} if dtype else {}))
    assign_tensors(model, iter_hf_tensors(directory), directory)
    return model


def save_hf(model, directory: str | os.PathLike, dtype: str = "float32") -> Path:
    """Writes `model` as a Hugging Face LLaMA folder: config.json + model.safetensors.

    Interleaved-RoPE models (llama2.c) get their wq/wk rows permuted to
    Hugging Face's rotate-half order, so `transformers` and keras-hub compute
    the same logits. Each file is written under a temporary name and renamed.

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
    directory.mkdir(parents=True, exist_ok=True)
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
    with _atomic_path(directory / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    with _atomic_file(directory / "config.json") as f:
        f.write(json.dumps(hf_config, indent=2).encode())
    return directory


def load_checkpoint(path: str | os.PathLike):
    """A `LlamaModel` from any checkpoint this package reads, chosen by its form.

    A `.keras` file (saved by Keras / `llama train`), a llama2.c `.bin`, or a
    Hugging Face folder holding `config.json`.
    """
    import keras

    from keras_recipes.llama.model import LlamaModel

    path = Path(path)
    if path.is_dir():
        return load_hf(path)
    if not path.is_file():
        raise CheckpointError(
            f"No checkpoint at {path}: give a .keras file, a llama2.c .bin, or a Hugging "
            "Face folder with config.json and safetensors."
        )
    if path.suffix == ".keras":
        model = keras.models.load_model(path)
        if not isinstance(model, LlamaModel):
            raise CheckpointError(f"{path} holds a {type(model).__name__}, not a LLaMA model.")
        return model
    return load_llama2c(path)


def save_checkpoint(model, path: str | os.PathLike, llama2c_version: int = 0) -> Path:
    """Writes `model` in the format `path` names: `.keras`, `.bin` (llama2.c) or a folder (HF)."""
    path = Path(path)
    if path.suffix == ".keras":
        with _atomic_path(path) as tmp:
            keras_tmp = tmp.with_suffix(".keras")
            model.save(keras_tmp)
            os.replace(keras_tmp, tmp)
        return path
    if path.suffix == ".bin":
        return save_llama2c(model, path, version=llama2c_version)
    if path.suffix:
        raise CheckpointError(
            f"{path}: unknown checkpoint format {path.suffix!r}; use .keras, .bin (llama2.c) "
            "or a folder name (Hugging Face)."
        )
    return save_hf(model, path)
