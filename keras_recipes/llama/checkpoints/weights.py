"""The canonical tensors of a LLaMA checkpoint, and copying them into and out of a model.

Both checkpoint formats are read into one canonical set of numpy tensors named
as in Meta's original `model.py` (which llama2.c's `export.py` walks):

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

Here: `StoredTensor` (a tensor still in its file, read a block of rows at a
time), `assign_tensors` (every name, shape, dtype and value checked as the
blocks are copied into the model's variables), `model_tensors` (the model's
tensors in canonical form) and the wq/wk row permutation between the two RoPE
conventions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from keras_recipes.llama.checkpoints.errors import CheckpointError


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
# size bounds the import's overhead over the model (benchmarks/checkpoint_bench.py
# measures it; README's Real checkpoints section has the figures).
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
