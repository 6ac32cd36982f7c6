"""
Title: Forecasting with the notes' one-unit LSTM and GRU
Author: keras-recipes
Description: The notes' LSTM(1, input_shape=(50, 1)) and GRU(1, input_shape=(20, 1)) forecast a noisy sine and a seasonal series (or your CSV column); MSE against naive baselines.

The study notes end their LSTM and GRU sections with two snippets:

    model_2 = Sequential(); model_2.add(LSTM(1, input_shape=(50, 1)))
    model_1 = Sequential(); model_1.add(GRU(1, input_shape=(20, 1)))
    model.compile(optimizer="adam", loss="mse")

Each is a whole forecaster: the recurrent layer reads a window of 50 (or 20)
past values and its single unit *is* the prediction of the next value. This
recipe trains both, exactly as written (`keras_recipes.rnn.build_lstm()` and
`build_gru()`), on two series the package generates:

- a noisy sine (period 50, noise 0.1): the best possible one-step MSE is the
  noise variance, 0.01;
- a seasonal series (trend times a 12-step season, like monthly sales).

and scores them against the forecasts everyone should beat: *naive* (next =
last value) and *seasonal naive* (next = the value one season ago). A
one-unit RNN is tiny, so expect it to beat naive on the smooth sine and to
struggle on the seasonal series, where its 20/50-step window must encode a
trend. A third model shows what width buys: `build_lstm(units=[32, 1])`
stacks a 32-unit LSTM under the one-unit output LSTM (`--units` sets the 32).

    python recipes/time_series.py                  # both series (~2 min)
    python recipes/time_series.py --quick          # seconds
    python recipes/time_series.py --csv airline-passengers.csv --column Passengers --season 12

Writes `OUT/metrics.json` and `OUT/forecast.png`.
"""

"""## Setup"""

import argparse
import csv
import json
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--quick", action="store_true", help="short series, 1 epoch (seconds)")
parser.add_argument("--out", default="runs/time_series", help="output folder")
parser.add_argument("--epochs", type=int, default=None, help="training epochs per model")
parser.add_argument("--units", type=int, default=32, help="width of the stacked LSTM's first layer")
parser.add_argument("--csv", default=None, help="CSV file with a header row to forecast")
parser.add_argument("--column", default=None, help="CSV column (default: the last one)")
parser.add_argument("--season", type=int, default=12, help="season length for --csv")
parser.add_argument("--seed", type=int, default=0, help="random seed")
args = parser.parse_args()

from keras_recipes import quiet_tensorflow

quiet_tensorflow()

import keras
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from keras_recipes.datasets.sequences import noisy_sine, seasonal_series
from keras_recipes.rnn import build_gru, build_lstm

out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)
keras.utils.set_random_seed(args.seed)
verbose = 1 if sys.stdout.isatty() else 2
started = time.time()

"""
## Data

Each series is split in time: the first 80% trains, the last 20% tests.
Values are centred on the training mean and scaled so the training part
spans [-0.5, 0.5]: the notes' models output through a tanh unit, which
cannot go past +-1, so the series needs head-room for values the test part
reaches beyond the training range.
"""


def read_csv_column(path, column):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{path}: no data rows under a header row.")
    name = column or list(rows[0])[-1]
    if name not in rows[0]:
        sys.exit(f"{path}: no column {name!r}; the columns are {list(rows[0])}.")
    try:
        return np.array([float(row[name]) for row in rows], dtype="float32"), name
    except ValueError as error:
        sys.exit(f"{path}: column {name!r} is not numeric ({error}); choose it with --column.")


if args.csv:
    values, column = read_csv_column(args.csv, args.column)
    series = {f"{Path(args.csv).name}:{column}": (values, args.season)}
else:
    series = {
        "noisy_sine": (noisy_sine(300 if args.quick else 2000, period=50, noise=0.1), 50),
        "seasonal": (seasonal_series(200 if args.quick else 480, season=12), 12),
    }
for name, (values, season) in series.items():
    if len(values) < 5 * 50 // 4 + 1:
        sys.exit(f"{name}: {len(values)} values; need at least 63 (50-step windows, 20% test).")
    print(f"{name}: {len(values)} values, season {season}")


def windows(scaled, window, first, last):
    """Inputs `scaled[i - window : i]` and targets `scaled[i]` for `first <= i < last`."""
    index = np.arange(first, last)
    x = scaled[index[:, None] - window + np.arange(window)[None, :]][..., None]
    return x, scaled[index][:, None]


"""
## Models

The notes' two snippets, built by `build_lstm()` and `build_gru()` with
their defaults: `LSTM(1, input_shape=(50, 1))` and `GRU(1, input_shape=(20, 1))`,
compiled with adam and mse, and the stacked `build_lstm(units=[32, 1])`:
a wider layer reads the window and the one-unit layer still forecasts.
"""

if args.units < 1:
    sys.exit(f"--units must be a positive integer, got {args.units}.")
epochs = args.epochs or (1 if args.quick else 30)
stacked = f"LSTM({args.units})+LSTM(1), window 50"
models = {
    "LSTM(1), window 50": lambda: build_lstm(input_shape=(50, 1)),
    "GRU(1), window 20": lambda: build_gru(input_shape=(20, 1)),
    stacked: lambda: build_lstm(input_shape=(50, 1), units=[args.units, 1]),
}

"""
## Training and evaluation

Both models forecast the same test values (everything after the split),
one step ahead, from true past values. MSE is reported in the series' own
units, next to the two baselines.
"""

metrics = {"epochs": epochs, "stacked_units": args.units, "series": {}}
forecasts = {}
for name, (values, season) in series.items():
    split = int(len(values) * 0.8)
    mean = float(values[:split].mean())
    scale = 2 * float(np.abs(values[:split] - mean).max()) or 1.0
    scaled = (values - mean) / scale
    truth = values[split:]
    row = {
        "naive": float(np.mean((values[split - 1 : -1] - truth) ** 2)),
        "seasonal_naive": float(np.mean((values[split - season : -season] - truth) ** 2)),
    }
    forecasts[name] = {"truth": truth}
    for label, build in models.items():
        window = 50 if "window 50" in label else 20
        x_train, y_train = windows(scaled, window, window, split)
        x_test, _ = windows(scaled, window, split, len(values))
        model = build()
        # The builders compile with adam/mse as the notes do; compile again the same way
        # without XLA, which takes longer to compile a small LSTM on a CPU than to train it.
        model.compile(optimizer="adam", loss="mse", jit_compile=False)
        print(f"\n{name}: {label}, {model.count_params()} parameters")
        model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=verbose)
        prediction = model.predict(x_test, verbose=0)[:, 0] * scale + mean
        row[label] = float(np.mean((prediction - truth) ** 2))
        forecasts[name][label] = prediction
    metrics["series"][name] = row

"""## Results"""

labels = ["naive", "seasonal_naive", *models]
print(f"\ntest MSE (one step ahead)\n{'series':<22}" + "".join(f"{c:>29}" for c in labels))
for name, row in metrics["series"].items():
    print(f"{name:<22}" + "".join(f"{row[c]:29.5f}" for c in labels))
    best = min(labels, key=row.get)
    ratios = ", ".join(f"{m.split(',')[0]} {row[m] / row['naive']:.2f}x" for m in models)
    print(f"  best: {best}; MSE relative to naive: {ratios}")

fig, axes = plt.subplots(len(series), 1, figsize=(9, 3.2 * len(series)), squeeze=False)
for ax, (name, lines) in zip(axes[:, 0], forecasts.items(), strict=True):
    shown = slice(-min(150, len(lines["truth"])), None)
    ax.plot(lines["truth"][shown], color="black", lw=1.5, label="actual")
    for label in models:
        ax.plot(lines[label][shown], lw=1, label=label)
    ax.set_title(f"{name}: last {len(lines['truth'][shown])} test steps, one step ahead")
    ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(out_dir / "forecast.png", dpi=110)

metrics["wall_seconds"] = round(time.time() - started, 1)
(out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"\nwrote {out_dir / 'metrics.json'} and {out_dir / 'forecast.png'}")
print(f"wall time {metrics['wall_seconds']:.0f} s")
