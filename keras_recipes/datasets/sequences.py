"""Generated sequences: the adding problem and two series to forecast.

- `adding_problem`: Hochreiter and Schmidhuber's (1997) long-range task. Each
  step carries a random number in [0, 1] and a marker; exactly two steps are
  marked, one in the first half and one in the second, and the target is the
  sum of the two marked numbers. Predicting the mean, 1.0, gives a mean
  squared error of 1/6; doing better means carrying a number across up to
  the whole sequence. The 1997 paper counts a sequence as solved when the
  absolute error is below 0.04 (`ADDING_TOLERANCE`).
- `noisy_sine`, `seasonal_series`: series for one-step-ahead forecasting.
- `make_windows`: cut a series into `(window, next value)` training pairs.
"""

from __future__ import annotations

import numpy as np

ADDING_TOLERANCE = 0.04


def _check_positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return int(value)


def adding_problem(num_samples: int, length: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets of the adding problem.

    Args:
        num_samples: int. Number of sequences.
        length: int. Steps per sequence, at least 2.
        seed: int. Random seed.

    Returns:
        `(x, y)`: float32 arrays of shape `(num_samples, length, 2)` (value,
        marker) and `(num_samples, 1)` (the sum of the two marked values).

    Examples:

    >>> x, y = adding_problem(1000, length=50)
    >>> x.shape, y.shape
    ((1000, 50, 2), (1000, 1))
    >>> bool(np.allclose((x[..., 0] * x[..., 1]).sum(1), y[:, 0]))
    True
    """
    _check_positive("num_samples", num_samples)
    if _check_positive("length", length) < 2:
        raise ValueError(f"`length` must be at least 2 (two marked steps), got {length}.")
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, size=(num_samples, length))
    half = length // 2
    first = rng.integers(0, half, size=num_samples)
    second = rng.integers(half, length, size=num_samples)
    markers = np.zeros((num_samples, length))
    rows = np.arange(num_samples)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype("float32")
    y = (values[rows, first] + values[rows, second])[:, None].astype("float32")
    return x, y


def noisy_sine(
    num_steps: int = 2000, period: float = 50.0, noise: float = 0.1, seed: int = 0
) -> np.ndarray:
    """`sin(2 pi t / period)` plus Gaussian noise of standard deviation `noise`, float32."""
    _check_positive("num_steps", num_steps)
    t = np.arange(num_steps)
    rng = np.random.default_rng(seed)
    return (np.sin(2 * np.pi * t / period) + noise * rng.standard_normal(num_steps)).astype(
        "float32"
    )


def seasonal_series(
    num_steps: int = 480, season: int = 12, noise: float = 0.05, seed: int = 0
) -> np.ndarray:
    """A monthly-style series: upward trend, yearly season that grows with it, noise.

    `level(t) = 1 + t / num_steps`, `y(t) = level(t) * (1 + 0.3 sin(2 pi t / season)
    + 0.1 sin(4 pi t / season)) + noise`, the multiplicative shape of series
    like airline passengers. Returned as float32, shape `(num_steps,)`.
    """
    _check_positive("num_steps", num_steps)
    _check_positive("season", season)
    t = np.arange(num_steps)
    rng = np.random.default_rng(seed)
    level = 1.0 + t / num_steps
    shape = 1.0 + 0.3 * np.sin(2 * np.pi * t / season) + 0.1 * np.sin(4 * np.pi * t / season)
    return (level * shape + noise * rng.standard_normal(num_steps)).astype("float32")


def make_windows(series: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every `window` consecutive values and the value after them.

    Returns:
        `(x, y)` of shapes `(n, window, 1)` and `(n, 1)`, `n = len(series) - window`,
        where `y[i] = series[i + window]`.
    """
    series = np.asarray(series, dtype="float32").reshape(-1)
    _check_positive("window", window)
    if len(series) <= window:
        raise ValueError(
            f"The series has {len(series)} values, not more than the window of {window}; "
            "use a longer series or a shorter window."
        )
    index = np.arange(window)[None, :] + np.arange(len(series) - window)[:, None]
    return series[index][..., None], series[window:, None]
