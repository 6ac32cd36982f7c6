"""
Title: Vanishing and exploding gradients: SimpleRNN vs LSTM vs GRU on the adding problem
Author: keras-recipes
Description: SimpleRNN, LSTM and GRU on the adding problem at growing lengths; gradient norm per time step, accuracy vs length (PNGs), and an exploding run with and without clipnorm.

The notes: with a plain RNN "if we pass a sentence it always erases from
the memory" - the gradient that reaches an early step is a product of one
Jacobian per later step, and it shrinks (vanishes) or grows (explodes)
exponentially with the distance. LSTM and GRU add gates and an additive
cell path that carry the gradient further.

We test that on the adding problem (Hochreiter and Schmidhuber, 1997):
every step holds a random number and a marker, two steps are marked, and
the target is the sum of the two marked numbers
(`keras_recipes.datasets.sequences.adding_problem`). Predicting the mean
gives MSE 1/6; a sequence counts as solved when the absolute error is below
0.04, the paper's criterion (about 8% of sequences by chance).

1. Accuracy vs sequence length for the three cells, all built with
   `keras_recipes.rnn.build_rnn("many_to_one", cell, ...)`.
2. The gradient of the loss with respect to each input step, `|dL/dx_t|`,
   for the three trained models at the longest length: how much each step
   can still learn from the error at the end.
3. Exploding gradients: a SimpleRNN whose recurrent weights are scaled up
   3x, trained with plain SGD with and without `clipnorm=1.0`.

    python recipes/vanishing_gradients.py           # lengths 10-100 (~5 min)
    python recipes/vanishing_gradients.py --quick   # seconds
    python recipes/vanishing_gradients.py --lengths 20,200 --epochs 20

Writes `OUT/metrics.json`, `OUT/accuracy_vs_length.png` and `OUT/gradient_norms.png`.
"""

"""## Setup"""

import argparse
import json
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--quick", action="store_true", help="two short lengths, 1 epoch")
parser.add_argument("--out", default="runs/vanishing_gradients", help="output folder")
parser.add_argument("--lengths", default=None, help="comma-separated sequence lengths")
parser.add_argument("--samples", type=int, default=None, help="training sequences per length")
parser.add_argument("--epochs", type=int, default=None, help="training epochs per model")
parser.add_argument("--units", type=int, default=None, help="recurrent units")
parser.add_argument("--seed", type=int, default=0, help="data and initialization seed")
args = parser.parse_args()
try:
    lengths = [
        int(n) for n in (args.lengths or ("5,10" if args.quick else "10,25,50,100")).split(",")
    ]
except ValueError:
    sys.exit(f"--lengths must be comma-separated integers, got {args.lengths!r}.")
if min(lengths) < 2:
    sys.exit(f"--lengths must all be at least 2 (two marked steps), got {lengths}.")

from keras_recipes import quiet_tensorflow

quiet_tensorflow()

import keras
import matplotlib
import numpy as np
import tensorflow as tf

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from keras_recipes.datasets.sequences import ADDING_TOLERANCE, adding_problem
from keras_recipes.rnn import build_rnn

out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)
verbose = 1 if sys.stdout.isatty() else 2
started = time.time()
cells = ("simple", "lstm", "gru")
num_train = args.samples or (300 if args.quick else 4000)
epochs = args.epochs or (1 if args.quick else 12)
units = args.units or (8 if args.quick else 32)


def build(cell, length):
    return build_rnn("many_to_one", cell, units=units, input_dim=2, timesteps=length)


"""
## Accuracy vs length

One model per cell and length, Adam at 0.01 with `clipnorm=1.0` (so the
comparison is about memory, not blow-ups), scored on 500 fresh sequences.
"""

metrics = {"lengths": lengths, "samples": num_train, "epochs": epochs, "units": units}
accuracy = {cell: [] for cell in cells}
trained = {}  # the models of the longest length, for the gradient plot
mse = {cell: [] for cell in cells}
for length in lengths:
    x, y = adding_problem(num_train, length, seed=args.seed)
    x_test, y_test = adding_problem(500, length, seed=args.seed + 1)
    for cell in cells:
        keras.utils.set_random_seed(args.seed)
        model = build(cell, length)
        # jit_compile=False: XLA takes longer to compile a small RNN on a CPU than to train it
        model.compile(keras.optimizers.Adam(0.01, clipnorm=1.0), "mse", jit_compile=False)
        print(f"\nlength {length}, {cell}")
        model.fit(x, y, batch_size=64, epochs=epochs, verbose=verbose)
        error = model.predict(x_test, verbose=0) - y_test
        accuracy[cell].append(float(np.mean(np.abs(error) < ADDING_TOLERANCE)))
        mse[cell].append(float(np.mean(error**2)))
        if length == max(lengths):
            trained[cell] = model
metrics["accuracy"], metrics["mse"] = accuracy, mse

print(f"\naccuracy (|error| < {ADDING_TOLERANCE}); mean-guess MSE is 1/6 = 0.167")
print(f"{'length':>7}" + "".join(f"{c:>16}" for c in cells))
for i, length in enumerate(lengths):
    row = "".join(f"{accuracy[c][i]:8.1%} ({mse[c][i]:.3f})" for c in cells)
    print(f"{length:>7}{row}")

fig, ax = plt.subplots(figsize=(6, 4))
for cell in cells:
    ax.plot(lengths, accuracy[cell], marker="o", label=cell)
ax.axhline(0.08, color="gray", ls=":", label="chance (mean guess)")
ax.set_xlabel("sequence length")
ax.set_ylabel(f"accuracy (|error| < {ADDING_TOLERANCE})")
ax.set_title("Adding problem")
ax.legend()
fig.tight_layout()
fig.savefig(out_dir / "accuracy_vs_length.png", dpi=110)

"""
## Gradient norm per time step

For the trained models of the longest length, the mean over 256 sequences
of `|dL/dx_t|`, the gradient of the loss with respect to the input at step
t. (Untrained, Keras' orthogonal recurrent initialization keeps a small
SimpleRNN's Jacobians near-orthogonal, so its gradient does not vanish yet;
training drives it into the saturated regime where it does.)
"""

length = max(lengths)
x, y = adding_problem(256, length, seed=args.seed + 2)
inputs = tf.constant(x)
gradient_norms = {}
for cell, model in trained.items():
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        loss = keras.ops.mean((model(inputs) - y) ** 2)
    grads = tape.gradient(loss, inputs).numpy()
    gradient_norms[cell] = np.linalg.norm(grads, axis=-1).mean(axis=0)
metrics["gradient_norm_first_over_last"] = {
    cell: float(norms[0] / norms[-1]) for cell, norms in gradient_norms.items()
}
print(f"\n|dL/dx_1| / |dL/dx_{length}| after training:")
for cell, ratio in metrics["gradient_norm_first_over_last"].items():
    print(f"  {cell:<7} {ratio:.2e}")

fig, ax = plt.subplots(figsize=(6, 4))
for cell, norms in gradient_norms.items():
    ax.semilogy(np.arange(1, length + 1), norms, label=cell)
ax.set_xlabel("time step t")
ax.set_ylabel("mean |dL/dx_t|")
ax.set_title(f"Gradient reaching each step, length {length}, trained")
ax.legend()
fig.tight_layout()
fig.savefig(out_dir / "gradient_norms.png", dpi=110)

"""
## Exploding gradients and clipnorm

Scaling a SimpleRNN's recurrent kernel up 3x (the builder has no
initializer argument, so we scale the built weights) makes the gradient
norm explode. Plain SGD at 0.1 then takes steps large enough to send the
loss to inf/NaN; `clipnorm=1.0` rescales any gradient longer than 1 to
length 1 and the same run trains.
"""

length = min(max(lengths), 50)
x, y = adding_problem(num_train, length, seed=args.seed)
exploding = {}
for clipnorm in (None, 1.0):
    keras.utils.set_random_seed(args.seed)
    model = build("simple", length)
    recurrent = model.layers[0].cell.recurrent_kernel
    recurrent.assign(recurrent * 3.0)
    with tf.GradientTape() as tape:
        loss = keras.ops.mean((model(x[:256]) - y[:256]) ** 2)
    norm = float(tf.linalg.global_norm(tape.gradient(loss, model.trainable_weights)))
    model.compile(keras.optimizers.SGD(0.1, clipnorm=clipnorm), "mse", jit_compile=False)
    history = model.fit(x, y, batch_size=64, epochs=max(2, min(epochs, 3)), verbose=0)
    losses = [float(v) for v in history.history["loss"]]
    exploding[str(clipnorm)] = {"initial_gradient_norm": norm, "epoch_losses": losses}
    print(f"\nSimpleRNN x3 recurrent weights, length {length}, clipnorm={clipnorm}:")
    print(f"  gradient norm at start {norm:.3g}; loss per epoch {[f'{v:.3g}' for v in losses]}")
metrics["exploding"] = exploding

metrics["wall_seconds"] = round(time.time() - started, 1)
(out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"\nwrote {out_dir / 'metrics.json'}, accuracy_vs_length.png, gradient_norms.png")
print(f"wall time {metrics['wall_seconds']:.0f} s")
