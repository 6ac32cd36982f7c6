"""Id checks at the public entry points: an id outside its table is an error that names it.

An embedding lookup with a negative id reads another row (TensorFlow's
gather wraps `-1` to the last row on some paths) and one past the end fails
deep inside a Gather or Embedding op without saying which input was wrong.
The models' public calls (`LlamaModel.__call__`, `QuantizedLlama`, the
`CRFTagger`) check concrete inputs here first; symbolic tensors (inside
`fit`, `tf.function` or a SavedModel) pass through, their graphs check for
themselves or are fed by code that already checked.
"""

from __future__ import annotations

import numpy as np


def concrete_array(values) -> np.ndarray | None:
    """`values` as a numpy array, or None for a symbolic tensor (no values to check yet)."""
    if isinstance(values, np.ndarray):
        return values
    if hasattr(values, "numpy"):
        try:
            return np.asarray(values.numpy())
        except (AttributeError, NotImplementedError, ValueError, TypeError):
            return None  # a graph tensor or a KerasTensor
    if type(values).__name__ in ("KerasTensor", "Tensor", "SymbolicTensor"):
        return None
    try:
        array = np.asarray(values)
    except (ValueError, TypeError):
        return None
    return None if array.dtype == object else array  # a dataset, a generator, ragged lists


def check_ids(values, size: int, what: str, who: str) -> None:
    """Raises a ValueError naming the first id of `values` outside `[0, size)`.

    Args:
        values: ids (array-like or eager tensor); symbolic tensors are skipped.
        size: the table's size (`vocab_size`, `num_tags`).
        what: what the ids are, for the message (`"token id"`).
        who: the entry point, for the message (`"LlamaModel"`).

    Examples:

    >>> check_ids([[1, 2]], 64, "token id", "model")
    >>> check_ids([[1, -1]], 64, "token id", "model")
    Traceback (most recent call last):
    ValueError: model: token id -1 at [0, 1] is outside [0, 64) (the vocabulary size is 64).
    """
    array = concrete_array(values)
    if array is None or array.size == 0:
        return
    if array.dtype.kind == "b" or array.dtype.kind not in "iu":
        if (
            array.dtype.kind == "f"
            and np.all(np.isfinite(array))
            and np.all(array == np.round(array))
        ):
            array = array.astype(np.int64)
        else:
            raise ValueError(
                f"{who}: {what}s must be integers; got dtype {array.dtype} "
                f"({np.asarray(array).ravel()[:4].tolist()}...)."
            )
    bad = np.argwhere((array < 0) | (array >= size))
    if len(bad):
        where = [int(i) for i in bad[0]]
        value = int(array[tuple(where)])
        raise ValueError(
            f"{who}: {what} {value} at {where} is outside [0, {size}) (the "
            f"{'vocabulary size' if 'token' in what or 'word' in what else 'table size'} is {size})."
        )
