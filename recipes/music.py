"""
Title: Music generation, one-to-many: a melody from a seed note
Author: keras-recipes
Description: A one-to-many LSTM turns a seed note into a melody, trained on rule-generated melodies (or your MIDI files); writes a MIDI file and a piano roll, reports notes in key.

The notes' example of a *one-to-many* RNN is music generation: one input,
a whole sequence out. Here the one input is a seed note (and whether the
tune should be major or minor), and the output is the rest of a melody.
`keras_recipes.rnn.build_rnn("one_to_many", "lstm", ...)` repeats the input
vector at every output step and an LSTM unrolls it into a sequence, with a
softmax over pitches at each step.

Training melodies come from `keras_recipes.datasets.music`: scale runs,
broken chords and motifs in the key of the first note, every note in key.
So "how often do generated notes stay in key?" measures what the model
learnt: a random pitch is in key 7 times out of 12 (58%). We sample each
step's pitch from the softmax (temperature 0.8) for every seed note C4-B4
in major and minor.

With `--midi DIR` it trains on the melodies of your MIDI files instead
(highest note of each chord, cut into pieces, keys estimated by scale fit).

    python recipes/music.py                          # ~2 min
    python recipes/music.py --quick                  # seconds
    python recipes/music.py --seed-note D4 --mode minor
    python recipes/music.py --midi my_midi_folder/

Writes `OUT/metrics.json`, `OUT/melody.mid` and `OUT/piano_roll.png`.
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
parser.add_argument("--quick", action="store_true", help="few short melodies, 1 epoch")
parser.add_argument("--out", default="runs/music", help="output folder")
parser.add_argument("--midi", default=None, help="folder of .mid files to learn from")
parser.add_argument("--seed-note", default="C4", help="first note of the written melody, e.g. C4")
parser.add_argument("--mode", default="major", choices=["major", "minor"], help="key mode")
parser.add_argument("--length", type=int, default=None, help="notes per melody (multiple of 4)")
parser.add_argument("--epochs", type=int, default=None, help="training epochs")
parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature")
parser.add_argument("--seed", type=int, default=0, help="data, initialization and sampling seed")
args = parser.parse_args()
if args.temperature <= 0:
    sys.exit(f"--temperature must be positive, got {args.temperature}.")

from keras_recipes import quiet_tensorflow

quiet_tensorflow()

import keras
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from keras_recipes.datasets.music import (
    LOWEST,
    NUM_PITCHES,
    SCALES,
    TONICS,
    generate_melodies,
    in_key_fraction,
    midi_melodies,
    note_name,
    parse_note,
    write_midi,
)
from keras_recipes.rnn import build_rnn

out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)
keras.utils.set_random_seed(args.seed)
verbose = 1 if sys.stdout.isatty() else 2
started = time.time()
try:
    seed_note = parse_note(args.seed_note)
except ValueError as error:
    sys.exit(f"--seed-note: {error}")
if not LOWEST <= seed_note < LOWEST + NUM_PITCHES:
    sys.exit(
        f"--seed-note must lie between {note_name(LOWEST)} and "
        f"{note_name(LOWEST + NUM_PITCHES - 1)}, got {args.seed_note}."
    )

"""
## Data

Melodies are MIDI pitches. The model's input is the first note (one-hot
over the pitch range) and the mode (major, minor); its targets are the
remaining notes' pitch indices.
"""

length = args.length or (16 if args.quick else 32)
if length < 4 or length % 4:
    sys.exit(f"--length must be a multiple of 4, got {length}.")
if args.midi:
    try:
        melodies, keys = midi_melodies(args.midi, length)
    except ValueError as error:
        sys.exit(f"--midi: {error}")
    source = str(args.midi)
else:
    melodies, keys = generate_melodies(200 if args.quick else 4000, length, seed=args.seed)
    source = "rule-generated"
modes = list(SCALES)


def encode_seed(first_notes, mode_names):
    x = np.zeros((len(first_notes), NUM_PITCHES + len(modes)), dtype="float32")
    x[np.arange(len(x)), np.asarray(first_notes) - LOWEST] = 1.0
    x[np.arange(len(x)), NUM_PITCHES + np.array([modes.index(m) for m in mode_names])] = 1.0
    return x


x = encode_seed(melodies[:, 0], [mode for _, mode in keys])
y = melodies[:, 1:] - LOWEST
in_key_data = np.mean([in_key_fraction(m, *k) for m, k in zip(melodies, keys, strict=True)])
print(f"{len(melodies)} {source} melodies of {length} notes; {in_key_data:.1%} of notes in key")
print("  first: " + " ".join(note_name(p) for p in melodies[0]))

"""
## Model

`build_rnn("one_to_many", "lstm", ...)`: `RepeatVector(length - 1)`, an LSTM
returning every step, and a softmax `Dense` over the pitch range.
"""

units = 16 if args.quick else 128
epochs = args.epochs or (1 if args.quick else 40)
model = build_rnn(
    "one_to_many",
    "lstm",
    units=units,
    input_dim=x.shape[1],
    output_dim=NUM_PITCHES,
    output_steps=length - 1,
    output_activation="softmax",
)
# jit_compile=False: XLA takes longer to compile a small LSTM on a CPU than to train it
model.compile(
    optimizer=keras.optimizers.Adam(3e-3),
    loss="sparse_categorical_crossentropy",
    jit_compile=False,
)
model.summary()
model.fit(x, y, batch_size=64, epochs=epochs, validation_split=0.1, verbose=verbose)

"""
## Generation and the in-key rate

One melody per seed note C4-B4 and mode, five samples each. Every pitch is
drawn from the step's softmax sharpened by the temperature, independently
of the other steps: the LSTM has already decided, from the seed, what each
step's distribution is.
"""

rng = np.random.default_rng(args.seed)


def generate(first_notes, mode_names):
    probabilities = model.predict(encode_seed(first_notes, mode_names), verbose=0)
    logits = np.log(probabilities + 1e-9) / args.temperature
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    cumulative = weights.cumsum(-1)
    draws = (rng.random(weights.shape[:-1] + (1,)) > cumulative).sum(-1)
    notes = np.minimum(draws, NUM_PITCHES - 1) + LOWEST
    return np.concatenate([np.asarray(first_notes)[:, None], notes], axis=1)


prompts = [(tonic, mode) for tonic in TONICS for mode in modes for _ in range(5)]
generated = generate([t for t, _ in prompts], [m for _, m in prompts])
in_key = float(
    np.mean([in_key_fraction(g, t, m) for g, (t, m) in zip(generated, prompts, strict=True)])
)
ends_on_tonic = float(
    np.mean([g[-1] % 12 == t % 12 for g, (t, _) in zip(generated, prompts, strict=True)])
)

melody = generate([seed_note], [args.mode])[0]
write_midi(melody, out_dir / "melody.mid")
print(f"\nseed {note_name(seed_note)} {args.mode}: " + " ".join(note_name(p) for p in melody))

fig, ax = plt.subplots(figsize=(8, 3.5))
roll = np.zeros((NUM_PITCHES, len(melody)))
roll[melody - LOWEST, np.arange(len(melody))] = 1
ax.imshow(
    roll,
    origin="lower",
    aspect="auto",
    cmap="Greys",
    interpolation="nearest",
    extent=(-0.5, len(melody) - 0.5, LOWEST - 0.5, LOWEST + NUM_PITCHES - 0.5),
)
scale = {(seed_note + s) % 12 for s in SCALES[args.mode]}
for pitch in range(LOWEST, LOWEST + NUM_PITCHES):
    if pitch % 12 not in scale:
        ax.axhspan(pitch - 0.5, pitch + 0.5, color="tab:red", alpha=0.07, lw=0)
ax.set_xlabel("note (eighth notes)")
ax.set_ylabel("MIDI pitch")
ax.set_title(f"Generated from {note_name(seed_note)} {args.mode} (red rows: out of key)")
fig.tight_layout()
fig.savefig(out_dir / "piano_roll.png", dpi=110)

"""## Results"""

metrics = {
    "source": source,
    "melodies": len(melodies),
    "length": length,
    "epochs": epochs,
    "units": units,
    "in_key_training_data": float(in_key_data),
    "in_key_generated": in_key,
    "in_key_chance": 7 / 12,
    "ends_on_tonic": ends_on_tonic,
    "seed_note": note_name(seed_note),
    "mode": args.mode,
    "melody": [int(p) for p in melody],
}
print(
    f"\nnotes in key: generated {in_key:.1%}, training data {in_key_data:.1%}, "
    f"random pitches {7 / 12:.1%}; melodies ending on the tonic {ends_on_tonic:.1%}"
)
metrics["wall_seconds"] = round(time.time() - started, 1)
(out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"wrote {out_dir / 'metrics.json'}, melody.mid, piano_roll.png")
print(f"wall time {metrics['wall_seconds']:.0f} s")
