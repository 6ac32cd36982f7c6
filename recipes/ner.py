"""
Title: Named-entity recognition with a bidirectional LSTM tagger
Author: keras-recipes
Description: A BiLSTM tags PER/LOC/ORG/MISC (built-in generated corpus, or CoNLL-2003 with --conll); conlleval entity P/R/F1; merge modes concat, sum, mul, ave compared.

The notes introduce bidirectional RNNs with named-entity recognition: to
know whether "Jordan" is a person or a country, a tagger needs the words
after it as well as before. A bidirectional RNN runs one LSTM forward and
one backward over the sentence and merges their outputs at every step;
a softmax layer then picks a tag for every word (many-to-many).

The tags are BIO: `B-PER` begins a person's name, `I-PER` continues it, `O`
is outside any entity. We score as the CoNLL shared tasks do, with the rules
of `conlleval` (`keras_recipes.metrics`): an entity counts only if its span
and type are exactly right; precision, recall and F1 over entities.

The built-in corpus (`keras_recipes.datasets.ner`) is generated from
templates and name lists, and the test sentences use only names that never
occur in training, so the tagger must recognise entities from context and
capitalisation. Unknown words map to one of two ids, capitalised or not.
With `--conll DIR` the recipe reads CoNLL-2003 (`eng.train`, `eng.testa`,
`eng.testb`, or `train.txt`, `valid.txt`, `test.txt`); IOB1 files are
detected and converted to BIO for training (the entities are the same).

We train one tagger per merge mode of the two directions: `concat` (the
default, width `2 * units`), `sum`, `mul` and `ave` (width `units`).

The notes' tagger reads word ids only. On real text two additions matter
most (Lample et al. 2016, Ma & Hovy 2016): a character-level encoder of
each word (`--char-encoder cnn|lstm`), which sees the capital letters and
suffixes of names it never met, and a CRF output layer (`--crf`), which
scores whole tag sequences and decodes them with Viterbi, so `I-PER` never
follows `O`. With either of them (or `--batch-by-length`), sentences are
batched by length, so little time goes into padding, and the tagger kept
is the epoch with the best validation F1.

    python recipes/ner.py                      # built-in corpus (~3 min)
    python recipes/ner.py --quick              # seconds
    python recipes/ner.py --conll conll2003/ --epochs 5 --merge-modes concat
    python recipes/ner.py --conll conll2003/ --merge-modes concat --char-encoder cnn \
        --crf --lowercase --units 100 --embed-dim 100 --char-units 50 --dropout 0.5 \
        --word-dropout 0.3 --learning-rate 2e-3 --lr-schedule linear --clipnorm 5 \
        --epochs 60 --max-train-minutes 28     # BiLSTM-CNN-CRF, no pretrained vectors

That last command (CoNLL-2003, no pretrained vectors) reached entity F1
90.80 on the validation split and 85.77 on the test split, training for
28 min on 2 shared CPU cores (load average 15 falling to 5). Published:
83-84 for a BiLSTM with random embeddings and no characters; 90.94 (Lample
et al. 2016) and 91.21 (Ma & Hovy 2016) with pretrained word vectors.

Writes `OUT/metrics.json`.
"""

"""## Setup"""

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--quick", action="store_true", help="tiny corpus, 1 epoch")
parser.add_argument("--out", default="runs/ner", help="output folder")
parser.add_argument("--conll", default=None, help="CoNLL-2003 folder (train/valid/test files)")
parser.add_argument("--epochs", type=int, default=None, help="training epochs per tagger")
parser.add_argument("--units", type=int, default=None, help="LSTM units per direction")
parser.add_argument(
    "--merge-modes",
    default="concat,sum,mul,ave",
    help="comma-separated merge modes to compare (default: all four)",
)
parser.add_argument("--seed", type=int, default=0, help="data and initialization seed")
parser.add_argument(
    "--char-encoder",
    choices=["none", "cnn", "lstm"],
    default="none",
    help="character-level word encoder: a CNN (Ma & Hovy 2016) or a BiLSTM (Lample et al. 2016)",
)
parser.add_argument("--crf", action="store_true", help="CRF output layer (Viterbi decoding)")
parser.add_argument("--embed-dim", type=int, default=None, help="word embedding width")
parser.add_argument("--char-dim", type=int, default=30, help="character embedding width")
parser.add_argument(
    "--char-units", type=int, default=None, help="char CNN filters / char LSTM units per direction"
)
parser.add_argument("--dropout", type=float, default=0.0, help="dropout (words, chars, BiLSTM out)")
parser.add_argument("--learning-rate", type=float, default=3e-3, help="Adam learning rate")
parser.add_argument(
    "--lr-schedule",
    choices=["constant", "linear"],
    default="constant",
    help="linear: decay the learning rate to 0 over the epochs (or --max-train-minutes)",
)
parser.add_argument("--clipnorm", type=float, default=None, help="clip each gradient's norm")
parser.add_argument("--batch-size", type=int, default=32, help="sentences per batch")
parser.add_argument(
    "--batch-by-length",
    action="store_true",
    help="batch sentences of similar length (on by default with --char-encoder or --crf)",
)
parser.add_argument(
    "--word-dropout",
    type=float,
    default=0.1,
    help="share of training words hidden behind their unknown-word id",
)
parser.add_argument(
    "--lowercase", action="store_true", help="word ids from lowercased words, digits as 0"
)
parser.add_argument(
    "--max-word-chars", type=int, default=20, help="characters kept per word (char encoder)"
)
parser.add_argument(
    "--max-train-sentences", type=int, default=None, help="use the first N training sentences"
)
parser.add_argument(
    "--max-train-minutes",
    type=float,
    default=None,
    help="stop training a tagger after this many minutes (the epoch under way is cut short)",
)
args = parser.parse_args()
merge_modes = [m.strip() for m in args.merge_modes.split(",") if m.strip()]
unknown_modes = set(merge_modes) - {"concat", "sum", "mul", "ave"}
if not merge_modes or unknown_modes:
    sys.exit(f"--merge-modes: use some of concat,sum,mul,ave; got {args.merge_modes!r}.")
char_encoder = None if args.char_encoder == "none" else args.char_encoder
by_length = args.batch_by_length or char_encoder is not None or args.crf
for flag, value in (("--batch-size", args.batch_size), ("--max-word-chars", args.max_word_chars)):
    if value < 1:
        sys.exit(f"{flag} must be at least 1, got {value}.")
for flag, value in (("--dropout", args.dropout), ("--word-dropout", args.word_dropout)):
    if not 0.0 <= value < 1.0:
        sys.exit(f"{flag} must be in [0, 1), got {value}.")
if args.max_train_sentences is not None and args.max_train_sentences < 1:
    sys.exit(f"--max-train-sentences must be at least 1, got {args.max_train_sentences}.")

from keras_recipes import quiet_tensorflow

quiet_tensorflow()

import keras
import numpy as np
import tensorflow as tf

from keras_recipes.datasets.ner import find_conll_splits, generate_ner_corpus, read_conll
from keras_recipes.metrics import detect_scheme, entity_scores, iob1_to_bio
from keras_recipes.taggers import build_tagger

out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)
verbose = 1 if sys.stdout.isatty() else 2
started = time.time()

"""
## Data

Sentences are `(tokens, tags)`. For CoNLL, a missing validation file is
carved from the training file, and a missing test file is replaced by the
validation file.
"""

if args.conll:
    files = find_conll_splits(args.conll)
    data = {split: read_conll(path) for split, path in files.items()}
    if "valid" not in data:
        random.Random(args.seed).shuffle(data["train"])
        cut = max(1, len(data["train"]) // 10)
        data["valid"], data["train"] = data["train"][:cut], data["train"][cut:]
    data.setdefault("test", data["valid"])
    if args.quick:
        data = {split: sentences[:300] for split, sentences in data.items()}
    scheme = detect_scheme([tags for split in data.values() for _, tags in split])
    task = str(args.conll)
else:
    sizes = (300, 50, 100) if args.quick else (4000, 400, 1000)
    data = {
        "train": generate_ner_corpus(sizes[0], seed=args.seed, names="train"),
        "valid": generate_ner_corpus(sizes[1], seed=args.seed + 1, names="train"),
        "test": generate_ner_corpus(sizes[2], seed=args.seed + 2, names="test"),
    }
    scheme, task = "bio", "generated (unseen test names)"
if args.max_train_sentences:
    data["train"] = data["train"][: args.max_train_sentences]
gold_test = [tags for _, tags in data["test"]]  # scored as written, BIO or IOB1
if scheme == "iob1":
    data = {s: [(tokens, iob1_to_bio(tags)) for tokens, tags in v] for s, v in data.items()}
print(f"task {task}: tags {scheme.upper()}; " + ", ".join(f"{s} {len(v)}" for s, v in data.items()))
print("  " + " ".join(f"{w}/{t}" for w, t in zip(*data["train"][0], strict=True)))

"""
## Vocabulary

Words seen at least twice in training get an id; other words become
`<UNK>` or `<Unk>` (capitalised), so an unseen name still shows its capital
letter. We also hide 10% of the training words behind their unknown id, so
the tagger learns what to do with words it has never seen (`--word-dropout`;
with length batches a fresh share is hidden every epoch). Id 0 pads.
With `--lowercase`, word ids are looked up lowercased and with digits as
`0` (fewer, better-trained embeddings; the character encoder still sees
the capitals). A character encoder reads each word's first
`--max-word-chars` characters; character id 1 is a character never seen
in training, 0 pads.
"""


def normal(word):
    if not args.lowercase:
        return word
    return "".join("0" if ch.isdigit() else ch for ch in word.lower())


counts = Counter(normal(word) for tokens, _ in data["train"] for word in tokens)
words = ["<pad>", "<UNK>", "<Unk>"] + sorted(w for w, c in counts.items() if c >= 2)
word_id = {w: i for i, w in enumerate(words)}
tag_names = ["<pad>", "O"] + sorted({t for _, tags in data["train"] for t in tags} - {"O"})
tag_id = {t: i for i, t in enumerate(tag_names)}
char_names = ["<pad>", "<unk>"] + sorted(
    {ch for tokens, _ in data["train"] for w in tokens for ch in w}
)
char_id = {ch: i for i, ch in enumerate(char_names)}
rng = random.Random(args.seed)


def unknown(word):
    return word_id["<Unk>"] if word[:1].isupper() else word_id["<UNK>"]


def encode(sentences, hide=0.0):
    length = max(len(tokens) for tokens, _ in sentences)
    x = np.zeros((len(sentences), length), dtype="int32")
    y = np.zeros((len(sentences), length), dtype="int32")
    for row, (tokens, tags) in enumerate(sentences):
        for col, (word, tag) in enumerate(zip(tokens, tags, strict=True)):
            known = normal(word) in word_id and rng.random() >= hide
            x[row, col] = word_id[normal(word)] if known else unknown(word)
            y[row, col] = tag_id.get(tag, tag_id["O"])
    return x, y


print(
    f"{len(words)} words, {len(char_names)} characters, {len(tag_names) - 1} tags: {tag_names[1:]}"
)

"""
### Batches of similar length

The notes' recipe pads every sentence to the longest one in its split. On
CoNLL-2003 (longest sentence 124 words, mean 14) that is mostly padding;
sorting sentences by length (with random tie-breaks) into batches and
shuffling the batches wastes almost nothing. Each epoch hides a fresh share
of the training words.
"""


def sentence_arrays(tokens, tags):
    ids = np.array([word_id.get(normal(w), 0) for w in tokens], "int32")
    unknowns = np.array([unknown(w) for w in tokens], "int32")
    ids = np.where(ids == 0, unknowns, ids)
    chars = [[char_id.get(ch, 1) for ch in w[: args.max_word_chars]] for w in tokens]
    labels = np.array([tag_id.get(t, tag_id["O"]) for t in tags], "int32")
    return ids, unknowns, chars, labels


def batch_order(encoded, batch_size, shuffle, np_rng):
    lengths = np.array([len(ids) for ids, _, _, _ in encoded], "float64")
    if shuffle:
        lengths = lengths + np_rng.random(len(lengths))
    order = np.argsort(lengths, kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle:
        np_rng.shuffle(batches)
    return batches


def pad_batch(encoded, rows, hide=0.0, np_rng=None):
    length = max(len(encoded[r][0]) for r in rows)
    width = max(len(c) for r in rows for c in encoded[r][2])
    x = np.zeros((len(rows), length), "int32")
    chars = np.zeros((len(rows), length, width), "int32")
    y = np.zeros((len(rows), length), "int32")
    for row, r in enumerate(rows):
        ids, unknowns, word_chars, labels = encoded[r]
        if hide:
            ids = np.where(np_rng.random(len(ids)) < hide, unknowns, ids)
        x[row, : len(ids)] = ids
        y[row, : len(ids)] = labels
        for col, c in enumerate(word_chars):
            chars[row, col, : len(c)] = c
    inputs = {"words": x, "chars": chars} if char_encoder else x
    return inputs, y


def training_batches(encoded, batch_size, seed):
    """A tf.data pipeline of length-sorted batches, reshuffled every epoch."""
    np_rng = np.random.default_rng(seed)
    words_spec = tf.TensorSpec((None, None), tf.int32)
    x_spec = (
        {"words": words_spec, "chars": tf.TensorSpec((None, None, None), tf.int32)}
        if char_encoder
        else words_spec
    )

    def generate():
        for rows in batch_order(encoded, batch_size, True, np_rng):
            yield pad_batch(encoded, rows, hide=args.word_dropout, np_rng=np_rng)

    steps = -(-len(encoded) // batch_size)
    dataset = tf.data.Dataset.from_generator(
        generate, output_signature=(x_spec, tf.TensorSpec((None, None), tf.int32))
    )
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)


encoded = {split: [sentence_arrays(*s) for s in sentences] for split, sentences in data.items()}

"""
## Model

`build_tagger(vocab_size, num_tags)` (`keras_recipes.taggers`) is the
notes' tagger: `build_bidirectional(..., return_sequences=True,
num_outputs=num_tags, output_activation="softmax")` behind an `Embedding`
whose `mask_zero=True` mask travels through the bidirectional layer (the
backward LSTM starts at each sentence's last word, not at the padding) and
into the loss, so padded positions neither train nor count.

`--char-encoder` concatenates a `CharacterEncoder` vector to each word
embedding; `--dropout` drops inputs and BiLSTM outputs; `--crf` replaces the
softmax by a `CRF` layer: the model (a `CRFTagger`) trains on the CRF's
negative log-likelihood and `predict` returns Viterbi tags. Padding is
masked in the CRF's forward algorithm and Viterbi as well.
"""

epochs = args.epochs or (1 if args.quick else 8)
units = args.units or (8 if args.quick else 64)
embed_dim = args.embed_dim or (16 if args.quick else 64)
char_units = args.char_units or (8 if args.quick else (30 if char_encoder == "cnn" else 25))

"""
## Training and evaluation

Adam, per-word cross-entropy (or the CRF's sequence log-likelihood). Each
test word gets its most likely tag (or the Viterbi sequence); the tag
sequences are scored against the gold tags with conlleval's rules. With
length batches, each epoch ends with the validation entity F1, and the
epoch with the best one is the tagger we keep; `--max-train-minutes` stops
training when its time is up.
"""


def tag(model, split, sentences, batch_size=128):
    """Tag names for `sentences` (`encoded[split]`), batch by batch in length order."""
    predicted = [None] * len(sentences)
    for rows in batch_order(encoded[split], batch_size, False, None):
        x, _ = pad_batch(encoded[split], rows)
        best = np.asarray(model.predict_on_batch(x))
        if best.ndim == 3:
            best = best.argmax(-1)
        for row, r in zip(best, rows, strict=True):
            tokens = sentences[r][0]
            predicted[r] = [tag_names[i] if i else "O" for i in row[: len(tokens)]]
    return predicted


def tag_padded(model, x, sentences):
    best = model.predict(x, verbose=0).argmax(-1)
    return [
        [tag_names[i] if i else "O" for i in row[: len(tokens)]]
        for row, (tokens, _) in zip(best, sentences, strict=True)
    ]


gold_valid = [tags for _, tags in data["valid"]]


class TimeBudget(keras.callbacks.Callback):
    """Stops training after `minutes`; with `--lr-schedule linear`, decays the learning
    rate linearly to 0 over the time budget (or over the epochs without one)."""

    def __init__(self, minutes, steps_per_epoch):
        super().__init__()
        self.budget = None if minutes is None else 60 * minutes
        self.steps_per_epoch, self.epoch = steps_per_epoch, 0

    def on_train_begin(self, logs=None):
        self.started = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.budget is not None:
            progress = (time.time() - self.started) / self.budget
        else:
            progress = (self.epoch + batch / self.steps_per_epoch) / epochs
        if args.lr_schedule == "linear":
            rate = args.learning_rate * max(1.0 - progress, 0.01)
            self.model.optimizer.learning_rate.assign(rate)
        if progress >= 1.0 and self.budget is not None:
            self.model.stop_training = True


class KeepBestOnValid(keras.callbacks.Callback):
    """Validation entity F1 after each epoch; the best epoch's weights are restored at the end."""

    def __init__(self):
        super().__init__()
        self.best_f1, self.best_weights, self.history = -1.0, None, []

    def on_epoch_end(self, epoch, logs=None):
        f1 = entity_scores(gold_valid, tag(self.model, "valid", data["valid"]))["overall"]["f1"]
        self.history.append(round(f1, 4))
        print(f"  epoch {epoch + 1}: loss {logs.get('loss', float('nan')):.4f}, valid F1 {f1:.2%}")
        if f1 > self.best_f1:
            self.best_f1, self.best_weights = f1, self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def load_average():
    return [round(v, 2) for v in os.getloadavg()]


options = {
    "char_encoder": char_encoder,
    "crf": args.crf,
    "embed_dim": embed_dim,
    "char_units": char_units if char_encoder else None,
    "dropout": args.dropout,
    "word_dropout": args.word_dropout,
    "learning_rate": args.learning_rate,
    "lr_schedule": args.lr_schedule,
    "clipnorm": args.clipnorm,
    "batch_size": args.batch_size,
    "batch_by_length": by_length,
    "lowercase": args.lowercase,
    "max_train_sentences": args.max_train_sentences,
    "max_train_minutes": args.max_train_minutes,
}
metrics = {
    "task": task,
    "scheme": scheme,
    "epochs": epochs,
    "units": units,
    **options,
    "command": " ".join(["python", *sys.argv]),
    "cpu_count": os.cpu_count(),
    "load_average_start": load_average(),
    "merge_modes": {},
}
if not by_length:
    x_train, y_train = encode(data["train"], hide=args.word_dropout)
    x_valid, y_valid = encode(data["valid"])
    x_test, _ = encode(data["test"])
taggers = {}
for merge_mode in merge_modes:
    keras.utils.set_random_seed(args.seed)
    model = build_tagger(
        len(words),
        len(tag_names),
        embed_dim=embed_dim,
        units=units,
        merge_mode=merge_mode,
        char_vocab_size=len(char_names),
        char_encoder=char_encoder,
        char_dim=args.char_dim,
        char_units=char_units,
        dropout=args.dropout,
        crf=args.crf,
    )
    # jit_compile=False: XLA takes longer to compile a small LSTM on a CPU than to train it
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, clipnorm=args.clipnorm),
        loss=None if args.crf else "sparse_categorical_crossentropy",
        jit_compile=False,
    )
    print(f"\nmerge_mode={merge_mode}: {model.count_params():,} parameters")
    t0 = time.time()
    if by_length:
        keep_best = KeepBestOnValid()
        steps = -(-len(encoded["train"]) // args.batch_size)
        model.fit(
            training_batches(encoded["train"], args.batch_size, args.seed),
            epochs=epochs,
            callbacks=[TimeBudget(args.max_train_minutes, steps), keep_best],
            verbose=verbose,
        )
        train_seconds = time.time() - t0
        valid_predicted = tag(model, "valid", data["valid"])
        test_predicted = tag(model, "test", data["test"])
    else:
        steps = -(-len(x_train) // args.batch_size)
        callbacks = [TimeBudget(args.max_train_minutes, steps)]
        model.fit(
            x_train,
            y_train,
            validation_data=(x_valid, y_valid),
            batch_size=args.batch_size,
            epochs=epochs,
            callbacks=callbacks,
            verbose=verbose,
        )
        train_seconds = time.time() - t0
        valid_predicted = tag_padded(model, x_valid, data["valid"])
        test_predicted = tag_padded(model, x_test, data["test"])
    scores = entity_scores(gold_test, test_predicted)
    scores["valid_f1"] = entity_scores(gold_valid, valid_predicted)["overall"]["f1"]
    scores["train_seconds"] = round(train_seconds, 1)
    scores["parameters"] = model.count_params()
    if by_length:
        scores["valid_f1_per_epoch"] = keep_best.history
        scores["epochs_run"] = len(keep_best.history)
    metrics["merge_modes"][merge_mode] = scores
    taggers[merge_mode] = model

"""## Results"""

print(f"\nentity-level scores on the test set ({len(gold_test)} sentences, conlleval rules)")
print(f"{'merge':<8} {'params':>8} {'precision':>10} {'recall':>8} {'F1':>8} {'tokens':>8}")
for merge_mode, scores in metrics["merge_modes"].items():
    o = scores["overall"]
    print(
        f"{merge_mode:<8} {scores['parameters']:8,} {o['precision']:10.2%} {o['recall']:8.2%} "
        f"{o['f1']:8.2%} {scores['accuracy']:8.2%}"
    )
# the tagger to keep is chosen on the validation set, never on the test set
best_mode = max(metrics["merge_modes"], key=lambda m: metrics["merge_modes"][m]["valid_f1"])
print(f"\nper type, merge_mode={best_mode}:")
for entity_type, scores in metrics["merge_modes"][best_mode]["per_type"].items():
    print(
        f"  {entity_type:<5} precision {scores['precision']:7.2%}  recall {scores['recall']:7.2%}"
        f"  F1 {scores['f1']:7.2%}  ({scores['gold']} in gold)"
    )
metrics["best_merge_mode"] = best_mode
metrics["best_f1"] = metrics["merge_modes"][best_mode]["overall"]["f1"]
metrics["test_f1"] = metrics["best_f1"]
metrics["valid_f1"] = metrics["merge_modes"][best_mode]["valid_f1"]
metrics["train_seconds"] = metrics["merge_modes"][best_mode]["train_seconds"]

examples = data["test"][:3]
if by_length:
    examples_predicted = tag(taggers[best_mode], "test", data["test"])[:3]
else:
    examples_predicted = tag_padded(taggers[best_mode], encode(examples)[0], examples)
for (tokens, _), predicted in zip(examples, examples_predicted, strict=True):
    print(
        "  "
        + " ".join(w if t == "O" else f"[{w} {t}]" for w, t in zip(tokens, predicted, strict=True))
    )

metrics["wall_seconds"] = round(time.time() - started, 1)
metrics["load_average_end"] = load_average()
(out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"\nwrote {out_dir / 'metrics.json'}")
print(
    f"valid F1 {metrics['valid_f1']:.2%}, test F1 {metrics['test_f1']:.2%} ({best_mode}); "
    f"training {metrics['train_seconds']:.0f} s, wall time {metrics['wall_seconds']:.0f} s "
    f"on {os.cpu_count()} CPUs, load average {metrics['load_average_start']} -> "
    f"{metrics['load_average_end']}"
)
