"""llama2.c checkpoints (https://github.com/karpathy/llama2.c, `export.py`, `run.c`).

- version 0 (legacy): 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
  vocab_size, seq_len; a negative vocab_size means an unshared classifier
  follows), then float32 tensors grouped by kind across layers, the two legacy
  RoPE tables (seq_len * head_dim / 2 each, unused), then the classifier.
- version 1: a 256-byte header (magic 0x616b3432 "ak42", version, the 7 int32,
  a shared-classifier byte), norms first, then the matrices, all float32.
- version 2: as version 1 plus an int32 group size in the header; norms in
  float32, matrices in Q8_0 (int8 values, then one float32 scale per group).

Here: the header and the tensor layout of each version, reading (checked
against the header before anything is allocated) and atomic writing, and
`load_llama2c` / `save_llama2c` between a file and a `LlamaModel`.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from pathlib import Path

import numpy as np

from keras_recipes._io import atomic_write
from keras_recipes.llama.checkpoints.errors import CheckpointError
from keras_recipes.llama.checkpoints.weights import (
    StoredTensor,
    _permuted,
    _read_array,
    assign_tensors,
    model_tensors,
)

LLAMA2C_MAGIC = 0x616B3432
LLAMA2C_HEADER_BYTES = 256
LLAMA2C_VERSIONS = (0, 1, 2)


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

    With llama2.c's `stories15M.bin` and `tokenizer.bin` at hand:
    `model = load_llama2c("stories15M.bin")`,
    `tokenizer = Llama2cTokenizer.load("tokenizer.bin")`,
    `ids = model.generate([tokenizer.encode("Once upon a time")], max_new_tokens=64)`,
    then `tokenizer.decode(ids[0])` is the story (no doctest: it needs the
    downloaded checkpoint).
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


def save_llama2c(
    model, path: str | os.PathLike, version: int = 0, allow_nonfinite: bool = False
) -> Path:
    """Writes `model` as a llama2.c checkpoint, atomically.

    Args:
        model: a `LlamaModel`. Hugging Face style models (rotate-half RoPE)
            have their wq/wk rows permuted to llama2.c's interleaved order.
        path: the `.bin` to write (replaced only once fully written).
        version: 0 (legacy, what `run.c` reads), 1 (fp32 with a header) or
            2 (int8 Q8_0, what `runq.c` reads).
        allow_nonfinite: bool, default False. Write NaN or Inf weights
            instead of refusing them, naming the tensor.

    Raises:
        CheckpointError: the model uses what llama2.c cannot express (a RoPE
            theta other than 10000, RoPE scaling, RMSNorm epsilon not 1e-5).
    """
    from keras_recipes._finite import check_finite, model_weights

    check_finite(model_weights(model), f"save_llama2c {path}", allow_nonfinite)
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
