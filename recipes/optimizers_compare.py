"""
Title: Every Keras optimizer on one problem
Author: keras-recipes
Description: Trains one small classifier with every Keras optimizer (and batch, mini-batch, stochastic GD) on the same data and seed; table, loss-curve PNG, metrics.json.

This recipe puts every optimizer of `keras.optimizers` side by side on the
same data, the same initial weights and the same batch order, so the only
thing that changes between runs is the optimizer. Each one is built through
`keras_recipes.optimizers`, with the settings study notes usually quote in
their Keras 2 spelling (`lr=`, `decay=`, `epsilon=None`, Nadam's
`schedule_decay=`), which that module reproduces with their old meaning.

It then shows that batch, mini-batch and stochastic gradient descent are one
optimizer, SGD, fed with different batch sizes (the whole data set, a
mini-batch, one sample), and what that costs per epoch.

It prints a table (final training loss, held-out accuracy, seconds per
epoch), writes `loss_curves.png`, `table.md` and `metrics.json` to `--out`.

Run it:

```
python recipes/optimizers_compare.py                # about a few minutes on 2 CPU cores
python recipes/optimizers_compare.py --quick        # seconds; what the tests run
python recipes/optimizers_compare.py --data my.csv  # numeric columns, last one the class id
```
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

"""
## Setup

The command line first (so `--help` answers before TensorFlow loads), then
the imports.
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Train one small classifier with every Keras optimizer and compare them.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a seconds-long run (small data, 3 epochs)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/optimizers_compare"),
        help="folder for metrics.json, table.md and loss_curves.png",
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="epochs per optimizer (default 30, quick 3)"
    )
    parser.add_argument(
        "--samples", type=int, default=None, help="generated samples (default 2000, quick 256)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="the mini-batch size")
    parser.add_argument("--seed", type=int, default=1337, help="seed for data, weights, order")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="a CSV of numeric columns, the last an integer class id, instead of generated data",
    )
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = 3 if args.quick else 30
    if args.samples is None:
        args.samples = 256 if args.quick else 2000
    for name in ("epochs", "samples", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


args = parse_args()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import matplotlib  # noqa: E402
import matplotlib.ticker  # noqa: E402

matplotlib.use("Agg")
import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_recipes import optimizers  # noqa: E402
from keras_recipes.optimizers import gradient_descent_batch_size  # noqa: E402

"""
## The data

Two interleaving half-moons with noise: not linearly separable, so the model
needs its hidden layer, yet small enough that every optimizer trains in
seconds. `--data` swaps in a CSV file of your own (numeric feature columns,
the last column an integer class id). A fifth of the rows is held out to
measure accuracy.
"""


def two_moons(n, noise, seed):
    rng = np.random.default_rng(seed)
    upper = n // 2
    angle = rng.uniform(0.0, np.pi, size=n)
    x = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    x[upper:] = np.stack([1.0 - np.cos(angle[upper:]), 0.5 - np.sin(angle[upper:])], axis=1)
    x += rng.normal(scale=noise, size=x.shape)
    y = np.concatenate([np.zeros(upper), np.ones(n - upper)]).astype("int32")
    order = rng.permutation(n)
    return x[order].astype("float32"), y[order]


def load_csv(path):
    if not path.is_file():
        sys.exit(f"--data {path}: no such file.")
    table = np.loadtxt(path, delimiter=",", ndmin=2)
    if table.shape[1] < 2:
        sys.exit(f"--data {path}: need feature columns and a last column of class ids.")
    labels = table[:, -1]
    if np.any(labels != np.round(labels)) or labels.min() < 0:
        sys.exit(f"--data {path}: the last column must hold class ids 0, 1, 2, ...")
    return table[:, :-1].astype("float32"), labels.astype("int32")


if args.data:
    x, y = load_csv(args.data)
    source = str(args.data)
else:
    x, y = two_moons(args.samples, noise=0.15, seed=args.seed)
    source = f"two moons, {args.samples} samples, noise 0.15"
x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)
split = int(0.8 * len(x))
x_train, y_train, x_test, y_test = x[:split], y[:split], x[split:], y[split:]
num_classes = int(y.max()) + 1
print(f"Data: {source}; {len(x_train)} training and {len(x_test)} held-out rows.")

"""
## The model

A two-hidden-layer perceptron. It is built once; every optimizer starts from
a copy of the same initial weights and sees the batches in the same order
(the seed is reset before each run).
"""


def build_model():
    return keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )


keras.utils.set_random_seed(args.seed)
initial_weights = build_model().get_weights()


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of each epoch."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def train(optimizer, batch_size):
    """Fits a fresh copy of the model; returns its figures."""
    keras.utils.set_random_seed(args.seed)
    model = build_model()
    model.set_weights(initial_weights)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = EpochTimer()
    history = model.fit(
        x_train,
        y_train,
        batch_size=batch_size,
        epochs=args.epochs,
        shuffle=True,
        callbacks=[timer],
        verbose=0,
    )
    # One eager call scores the small held-out set; `evaluate` would trace another function.
    probabilities = keras.ops.convert_to_numpy(model(x_test, training=False))
    test_loss = -np.mean(np.log(probabilities[np.arange(len(y_test)), y_test] + 1e-7))
    test_accuracy = np.mean(probabilities.argmax(axis=1) == y_test)
    # The first epoch also traces the training step; leave it out when there are others.
    steady = timer.seconds[1:] or timer.seconds
    return {
        "optimizer": type(optimizer).__name__,
        "config": {k: repr(v) for k, v in optimizer.get_config().items() if k != "name"},
        "batch_size": batch_size,
        "updates_per_epoch": int(np.ceil(len(x_train) / batch_size)),
        "loss_curve": [float(v) for v in history.history["loss"]],
        "final_loss": float(history.history["loss"][-1]),
        "final_accuracy": float(history.history["accuracy"][-1]),
        "test_loss": float(test_loss),
        "test_accuracy": float(test_accuracy),
        "seconds_per_epoch": float(np.mean(steady)),
        "first_epoch_seconds": float(timer.seconds[0]),
    }


"""
## Every optimizer

The line-up: every class of `keras.optimizers`, most with the settings the
notes quote (written exactly as the notes write them, Keras 2 spellings
included), the rest with Keras's defaults. The learning rates are not tuned
for this problem: the point is how each behaves out of the box.
`LossScaleOptimizer` wraps Adam, as it would in mixed-precision training.
"""

LINE_UP = {
    "SGD": lambda: optimizers.SGD(lr=0.01),
    "SGD momentum": lambda: optimizers.SGD(lr=0.01, momentum=0.9),
    "SGD Nesterov": lambda: optimizers.SGD(lr=0.01, momentum=0.9, nesterov=True),
    "SGD momentum + decay": lambda: optimizers.SGD(lr=0.05, momentum=0.9, decay=1e-3),
    "RMSprop": lambda: optimizers.RMSprop(learning_rate=0.001, rho=0.9, epsilon=None, decay=0.0),
    "Adagrad": lambda: optimizers.Adagrad(learning_rate=0.01, epsilon=1e-08),
    "Adadelta": lambda: optimizers.Adadelta(learning_rate=1.0, rho=0.95, epsilon=None, decay=0.0),
    "Adam": lambda: optimizers.Adam(
        learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=None, decay=0.0, amsgrad=False
    ),
    "Adam AMSGrad": lambda: optimizers.Adam(amsgrad=True),
    "Adam weight_decay": lambda: optimizers.Adam(weight_decay=0.01),
    "AdamW": lambda: optimizers.AdamW(),
    "Adamax": lambda: optimizers.Adamax(
        learning_rate=0.002, beta_1=0.9, beta_2=0.999, epsilon=None, decay=0.0
    ),
    "Nadam (Keras 2 schedule)": lambda: optimizers.Nadam(
        learning_rate=0.002, beta_1=0.9, beta_2=0.999, epsilon=None, schedule_decay=0.004
    ),
    "Nadam (Keras 3)": lambda: optimizers.Nadam(learning_rate=0.002),
    "Ftrl": lambda: optimizers.Ftrl(),
    "Adafactor": lambda: optimizers.Adafactor(),
    "Lion": lambda: optimizers.Lion(),
    "Lamb": lambda: optimizers.Lamb(),
    "Muon": lambda: optimizers.Muon(),
    "ScheduleFreeAdamW": lambda: optimizers.ScheduleFreeAdamW(),
    "LossScaleOptimizer(Adam)": lambda: optimizers.LossScaleOptimizer(optimizers.Adam()),
}

mini_batch = gradient_descent_batch_size("mini-batch", len(x_train), args.batch_size)
results = {}
for label, make in LINE_UP.items():
    results[label] = train(make(), mini_batch)
    r = results[label]
    print(
        f"  {label:<26} loss {r['final_loss']:.4f}  held-out accuracy "
        f"{r['test_accuracy']:.3f}  {r['seconds_per_epoch']:.3f} s/epoch"
    )

"""
## Batch, mini-batch and stochastic gradient descent

Same optimizer (`SGD(lr=0.05)`), same epochs; only the batch size changes.
Batch GD takes one step per epoch on the exact gradient; stochastic GD takes
one per sample on a noisy one; mini-batch sits between. Per epoch, the more
steps, the more progress and the more time.
"""

variants = {}
for variant in ("batch", "mini-batch", "stochastic"):
    batch_size = gradient_descent_batch_size(variant, len(x_train), args.batch_size)
    variants[variant] = train(optimizers.SGD(lr=0.05), batch_size)
    r = variants[variant]
    print(
        f"  {variant:<11} batch size {batch_size:>5}  {r['updates_per_epoch']:>5} updates/epoch  "
        f"loss {r['final_loss']:.4f}  held-out accuracy {r['test_accuracy']:.3f}  "
        f"{r['seconds_per_epoch']:.3f} s/epoch"
    )

"""
## Results

The table ranks by final training loss. "s/epoch" leaves out the first
epoch, which also traces the training step, whenever there is more than one.

Things to look for. Plain SGD at the notes' `lr=0.01` is slow; momentum and
Nesterov fix most of that at no cost per step. The Adam family (Adam, AMSGrad,
AdamW, `weight_decay`, `LossScaleOptimizer(Adam)`) moves together: on a
problem this small the variants barely separate. Ftrl barely moves: FTRL
recomputes each weight from its accumulated gradients, which on the first
step pulls every weight to almost zero, and a ReLU network started at zero
has almost no gradient; it is built for wide, sparse linear models. Both Nadams
train; the Keras 2 schedule (`schedule_decay=0.004`) keeps the momentum
between `beta_1 / 2` and `0.52` over the first thousand steps, the Keras 3 one
is at `0.84` (of `beta_1 = 0.9`) after fifty.
"""


def markdown_table(rows, first_column):
    lines = [
        f"| {first_column} | final loss | train accuracy | held-out accuracy | s/epoch |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, r in rows:
        lines.append(
            f"| {label} | {r['final_loss']:.4f} | {r['final_accuracy']:.3f} | "
            f"{r['test_accuracy']:.3f} | {r['seconds_per_epoch']:.3f} |"
        )
    return "\n".join(lines)


ranked = sorted(results.items(), key=lambda item: item[1]["final_loss"])
table = markdown_table(ranked, "optimizer")
variant_table = markdown_table(
    [(f"{v} (batch size {r['batch_size']})", r) for v, r in variants.items()],
    "gradient descent",
)
print(f"\nEvery optimizer, {args.epochs} epochs, mini-batch size {mini_batch}:\n")
print(table)
print(f"\nSGD(lr=0.05), {args.epochs} epochs:\n")
print(variant_table)

args.out.mkdir(parents=True, exist_ok=True)
(args.out / "table.md").write_text(
    f"# Optimizers, {args.epochs} epochs on {source}\n\n{table}\n\n"
    f"# Batch, mini-batch and stochastic gradient descent\n\n{variant_table}\n"
)

"""
## Loss curves

One picture per comparison: the training loss after each epoch, on a log
scale so the slow and the fast optimizers fit on one axis.
"""

figure, (left, right) = plt.subplots(1, 2, figsize=(16, 6), gridspec_kw={"width_ratios": [3, 2]})
colours = plt.cm.tab20(np.linspace(0, 1, len(results)))
line_styles = ["-", "--", ":", "-."]
epochs = np.arange(1, args.epochs + 1)
for i, (colour, (label, r)) in enumerate(zip(colours, results.items(), strict=True)):
    left.plot(
        epochs, r["loss_curve"], label=label, color=colour, linestyle=line_styles[i % 4], marker="."
    )
left.set(title="Every optimizer", xlabel="epoch", ylabel="training loss", yscale="log")
left.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
for variant, r in variants.items():
    right.plot(
        epochs, r["loss_curve"], label=f"{variant} (batch size {r['batch_size']})", marker="."
    )
right.set(title="SGD(lr=0.05) by batch size", xlabel="epoch", yscale="log")
right.legend()
for axis in (left, right):
    axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
figure.tight_layout()
plot_path = args.out / "loss_curves.png"
figure.savefig(plot_path, dpi=100)
plt.close(figure)

metrics = {
    "recipe": "optimizers_compare",
    "data": source,
    "train_rows": len(x_train),
    "test_rows": len(x_test),
    "epochs": args.epochs,
    "mini_batch_size": mini_batch,
    "seed": args.seed,
    "quick": args.quick,
    "keras_version": keras.__version__,
    "optimizers": results,
    "gradient_descent_variants": variants,
}
(args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"\nWrote {args.out / 'metrics.json'}, {args.out / 'table.md'} and {plot_path}.")
