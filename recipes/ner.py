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

    python recipes/ner.py                      # built-in corpus (~3 min)
    python recipes/ner.py --quick              # seconds
    python recipes/ner.py --conll conll2003/ --epochs 5 --merge-modes concat

Writes `OUT/metrics.json`.
"""

"""## Setup"""

import argparse
import json
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
args = parser.parse_args()
merge_modes = [m.strip() for m in args.merge_modes.split(",") if m.strip()]
unknown_modes = set(merge_modes) - {"concat", "sum", "mul", "ave"}
if not merge_modes or unknown_modes:
    sys.exit(f"--merge-modes: use some of concat,sum,mul,ave; got {args.merge_modes!r}.")

from keras_recipes import quiet_tensorflow

quiet_tensorflow()

import keras
import numpy as np

from keras_recipes.datasets.ner import find_conll_splits, generate_ner_corpus, read_conll
from keras_recipes.metrics import detect_scheme, entity_scores, iob1_to_bio
from keras_recipes.rnn import build_bidirectional

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
the tagger learns what to do with words it has never seen. Id 0 pads.
"""

counts = Counter(word for tokens, _ in data["train"] for word in tokens)
words = ["<pad>", "<UNK>", "<Unk>"] + sorted(w for w, c in counts.items() if c >= 2)
word_id = {w: i for i, w in enumerate(words)}
tag_names = ["<pad>", "O"] + sorted({t for _, tags in data["train"] for t in tags} - {"O"})
tag_id = {t: i for i, t in enumerate(tag_names)}
rng = random.Random(args.seed)


def unknown(word):
    return word_id["<Unk>"] if word[:1].isupper() else word_id["<UNK>"]


def encode(sentences, hide=0.0):
    length = max(len(tokens) for tokens, _ in sentences)
    x = np.zeros((len(sentences), length), dtype="int32")
    y = np.zeros((len(sentences), length), dtype="int32")
    for row, (tokens, tags) in enumerate(sentences):
        for col, (word, tag) in enumerate(zip(tokens, tags, strict=True)):
            known = word in word_id and rng.random() >= hide
            x[row, col] = word_id[word] if known else unknown(word)
            y[row, col] = tag_id.get(tag, tag_id["O"])
    return x, y


x_train, y_train = encode(data["train"], hide=0.1)
x_valid, y_valid = encode(data["valid"])
x_test, _ = encode(data["test"])
print(f"{len(words)} words, {len(tag_names) - 1} tags: {tag_names[1:]}")

"""
## Model

`build_bidirectional(..., return_sequences=True, num_outputs=num_tags,
output_activation="softmax")` is the tagger. The builder reads feature
vectors, so an `Embedding` turns word ids into them; its `mask_zero=True`
mask travels through the bidirectional layer (the backward LSTM starts at
each sentence's last word, not at the padding) and into the loss, so padded
positions neither train nor count.
"""

epochs = args.epochs or (1 if args.quick else 8)
units = args.units or (8 if args.quick else 64)
embed_dim = 16 if args.quick else 64


def build_tagger(merge_mode):
    tagger = build_bidirectional(
        "lstm",
        units,
        merge_mode,
        input_shape=(None, embed_dim),
        return_sequences=True,
        num_outputs=len(tag_names),
        output_activation="softmax",
    )
    # The builder has no embedding option: put its layers behind one, in a
    # single Sequential, so the padding mask reaches every layer and the loss.
    return keras.Sequential(
        [
            keras.Input(shape=(None,), dtype="int32"),
            keras.layers.Embedding(len(words), embed_dim, mask_zero=True),
            *tagger.layers,
        ],
        name=f"bilstm_{merge_mode}",
    )


"""
## Training and evaluation

Adam, sparse categorical cross-entropy per word, validation loss after each
epoch. Each test word gets its most likely tag; the tag sequences are scored
against the gold tags with conlleval's rules.
"""


def tag(model, x, sentences):
    best = model.predict(x, verbose=0).argmax(-1)
    return [
        [tag_names[i] if i else "O" for i in row[: len(tokens)]]
        for row, (tokens, _) in zip(best, sentences, strict=True)
    ]


metrics = {"task": task, "scheme": scheme, "epochs": epochs, "units": units, "merge_modes": {}}
taggers = {}
for merge_mode in merge_modes:
    keras.utils.set_random_seed(args.seed)
    model = build_tagger(merge_mode)
    # jit_compile=False: XLA takes longer to compile a small LSTM on a CPU than to train it
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        jit_compile=False,
    )
    print(f"\nmerge_mode={merge_mode}: {model.count_params():,} parameters")
    t0 = time.time()
    model.fit(
        x_train,
        y_train,
        validation_data=(x_valid, y_valid),
        batch_size=32,
        epochs=epochs,
        verbose=verbose,
    )
    scores = entity_scores(gold_test, tag(model, x_test, data["test"]))
    scores["train_seconds"] = round(time.time() - t0, 1)
    scores["parameters"] = model.count_params()
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
best_mode = max(metrics["merge_modes"], key=lambda m: metrics["merge_modes"][m]["overall"]["f1"])
print(f"\nper type, merge_mode={best_mode}:")
for entity_type, scores in metrics["merge_modes"][best_mode]["per_type"].items():
    print(
        f"  {entity_type:<5} precision {scores['precision']:7.2%}  recall {scores['recall']:7.2%}"
        f"  F1 {scores['f1']:7.2%}  ({scores['gold']} in gold)"
    )
metrics["best_merge_mode"] = best_mode
metrics["best_f1"] = metrics["merge_modes"][best_mode]["overall"]["f1"]

examples = data["test"][:3]
x_examples, _ = encode(examples)
for (tokens, _), predicted in zip(
    examples, tag(taggers[best_mode], x_examples, examples), strict=True
):
    print(
        "  "
        + " ".join(w if t == "O" else f"[{w} {t}]" for w, t in zip(tokens, predicted, strict=True))
    )

metrics["wall_seconds"] = round(time.time() - started, 1)
(out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"\nwrote {out_dir / 'metrics.json'}")
print(f"wall time {metrics['wall_seconds']:.0f} s")
