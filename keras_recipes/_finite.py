"""One check for every writer: weights that hold NaN or infinity are refused, by name.

A run that diverged leaves NaN weights; quantizing them gives finite int8
garbage, and a file written from them loads without complaint, so the
damage shows up far from its cause. Every writer (quantize, export, vector
files, Hugging Face and llama2.c checkpoints) calls `check_finite` first and
writes only with `allow_nonfinite=True`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class NonFiniteWeightsError(ValueError):
    """Weights that hold NaN or infinity, refused by a writer."""


def nonfinite_names(named_arrays: Iterable[tuple[str, object]]) -> list[str]:
    """The names of the arrays that hold a NaN or an infinity (integer arrays never do)."""
    bad = []
    for name, value in named_arrays:
        array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
        if array.dtype.kind in "iub" or array.dtype == object:
            continue
        if not np.all(np.isfinite(array.astype(np.float32, copy=False))):
            bad.append(name)
    return bad


def check_finite(
    named_arrays: Iterable[tuple[str, object]], who: str, allow_nonfinite: bool = False
) -> None:
    """Raises `NonFiniteWeightsError` naming the arrays with NaN or inf, unless allowed.

    Args:
        named_arrays: `(name, array or variable)` pairs.
        who: the writer, for the message (`"save_hf"`).
        allow_nonfinite: bool, default False. Write them anyway.

    Examples:

    >>> check_finite([("w", np.ones(2))], "save")
    >>> try:
    ...     check_finite([("w", np.array([1.0, np.nan]))], "save")
    ... except NonFiniteWeightsError as error:
    ...     print(str(error)[:38])
    save: weight w holds NaN or Inf values
    """
    if allow_nonfinite:
        return
    bad = nonfinite_names(named_arrays)
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise NonFiniteWeightsError(
            f"{who}: weight{'s' if len(bad) > 1 else ''} {', '.join(bad[:3])}{more} hold"
            f"{'' if len(bad) > 1 else 's'} NaN or Inf values; the model comes from a run that "
            "diverged (retrain with a lower learning rate, or load an earlier checkpoint). "
            "Pass allow_nonfinite=True to write it anyway."
        )


def model_weights(model) -> list[tuple[str, object]]:
    """`(path, variable)` of a Keras model's weights, for `check_finite`."""
    return [(getattr(w, "path", w.name), w) for w in model.weights]
