"""
Title: Sentence auto-completion with a word-level LSTM/GRU language model
Author: keras-recipes
Description: Word-level LSTM and GRU language models on gensim's Lee news corpus (or --corpus text); perplexity, top-k next-word suggestions for a typed prefix, --interactive.

Sentence auto-completion is the first RNN use in the notes: given the words
typed so far, suggest the next one. A language model reads the words one
at a time and, at every step, outputs a probability for each word of the
vocabulary being next (many-to-many); the suggestions are the top k.

We train two, one with an LSTM and one with a GRU (`keras_recipes.rnn.
build_rnn("many_to_many", cell, ...)` behind a word embedding), on the Lee
background corpus gensim ships (300 Australian news articles, about 60,000
words), holding the last 10% of articles out. Perplexity on them, `exp` of
the mean cross-entropy per word, is "how many words the model is choosing
between" - a model that knew nothing would score the vocabulary size.

    python recipes/autocomplete.py                       # ~3 min
    python recipes/autocomplete.py --quick               # seconds
    python recipes/autocomplete.py --corpus my_texts/ --prefix "once upon a"
    python recipes/autocomplete.py --interactive         # type prefixes, get suggestions

Writes `OUT/metrics.json`.
"""

"""## Setup"""

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--quick", action="store_true", help="small vocabulary and model, 1 epoch")
parser.add_argument("--out", default="runs/autocomplete", help="output folder")
parser.add_argument("--corpus", default=None, help="text file or folder of .txt files")
parser.add_argument("--epochs", type=int, default=None, help="training epochs per model")
parser.add_argument("--cells", default="lstm,gru", help="comma-separated cells to train")
parser.add_argument("--top-k", type=int, default=5, help="suggestions per prefix")
parser.add_argument("--prefix", action="append", default=None, help="a prefix to complete")
parser.add_argument("--interactive", action="store_true", help="read prefixes from stdin")
parser.add_argument("--seed", type=int, default=0, help="initialization seed")
args = parser.parse_args()
cells = [c.strip() for c in args.cells.split(",") if c.strip()]
if not cells or set(cells) - {"simple", "lstm", "gru"}:
    sys.exit(f"--cells: use some of simple,lstm,gru; got {args.cells!r}.")
if args.top_k < 1:
    sys.exit(f"--top-k must be at least 1, got {args.top_k}.")

from keras_recipes import quiet_tensorflow

quiet_tensorflow()

import keras
import numpy as np

from keras_recipes.data import load_builtin_corpus, load_text_files
from keras_recipes.rnn import build_rnn

out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)
verbose = 1 if sys.stdout.isatty() else 2
started = time.time()

"""
## Data

Words are lower-cased runs of letters, digits and apostrophes, and the
punctuation marks `. , ! ? ;` count as words too. The vocabulary is the
words seen at least twice in the training articles (at most 8,000); the rest
become `<unk>`. Each article is one token stream, cut into windows of 20
words whose targets are the same words shifted left by one.
"""

try:
    documents = load_text_files([args.corpus]) if args.corpus else load_builtin_corpus()
except ValueError as error:
    sys.exit(f"--corpus: {error}")
task = Path(args.corpus).name if args.corpus else "lee_background"


def tokenize(text):
    return re.findall(r"[a-z0-9']+|[.,!?;]", text.lower())


token_docs = [tokenize(d) for d in documents]
num_valid = max(1, len(token_docs) // 10) if len(token_docs) > 1 else 0
train_docs = token_docs[: len(token_docs) - num_valid]
valid_docs = token_docs[len(token_docs) - num_valid :] or train_docs
counts = Counter(w for doc in train_docs for w in doc)
max_words = 1000 if args.quick else 8000
vocabulary = ["<pad>", "<unk>"] + [w for w, c in counts.most_common(max_words) if c >= 2]
word_id = {w: i for i, w in enumerate(vocabulary)}
seq_len = 20


def windows(docs):
    stream = np.array([word_id.get(w, 1) for doc in docs for w in doc], dtype="int32")
    n = (len(stream) - 1) // seq_len
    if n < 1:
        sys.exit(f"{task}: only {len(stream)} words; need more than {seq_len}.")
    x = stream[: n * seq_len].reshape(n, seq_len)
    y = stream[1 : n * seq_len + 1].reshape(n, seq_len)
    return x, y


x_train, y_train = windows(train_docs)
x_valid, y_valid = windows(valid_docs)
if args.quick:
    x_train, y_train = x_train[:300], y_train[:300]
print(
    f"{task}: {len(train_docs)} training and {len(valid_docs)} held-out documents, "
    f"{len(vocabulary):,} words, {len(x_train)} training windows of {seq_len}"
)

"""
## Model

`build_rnn("many_to_many", cell, units, input_dim=embed_dim,
output_dim=vocab_size, output_activation="softmax")` predicts a word at
every step. It reads vectors, so its layers go behind an `Embedding` in one
`Sequential`.
"""

epochs = args.epochs or (1 if args.quick else 10)
units = 16 if args.quick else 192
embed_dim = 16 if args.quick else 96


def build_language_model(cell):
    rnn = build_rnn(
        "many_to_many",
        cell,
        units=units,
        input_dim=embed_dim,
        output_dim=len(vocabulary),
        output_activation="softmax",
    )
    # The builder has no embedding option: its layers go behind one.
    return keras.Sequential(
        [
            keras.Input(shape=(None,), dtype="int32"),
            keras.layers.Embedding(len(vocabulary), embed_dim),
            *rnn.layers,
        ],
        name=f"{cell}_language_model",
    )


"""
## Training and perplexity

Adam with gradient clipping, cross-entropy per word; perplexity on the
held-out articles after training.
"""

metrics = {"task": task, "vocabulary": len(vocabulary), "epochs": epochs, "units": units}
models = {}
for cell in cells:
    keras.utils.set_random_seed(args.seed)
    model = build_language_model(cell)
    # jit_compile=False: XLA takes longer to compile a small RNN on a CPU than to train it
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3, clipnorm=1.0),
        loss="sparse_categorical_crossentropy",
        jit_compile=False,
    )
    print(f"\n{cell}: {model.count_params():,} parameters")
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=verbose)
    loss = model.evaluate(x_valid, y_valid, batch_size=64, verbose=0)
    metrics[cell] = {"perplexity": float(np.exp(loss)), "parameters": model.count_params()}
    models[cell] = model

"""
## Suggestions

The prefix is read word by word; the last step's distribution, without
`<pad>` and `<unk>`, gives the top-k next words.
"""

best = min(cells, key=lambda c: metrics[c]["perplexity"])


def suggest(prefix, k=args.top_k):
    ids = [word_id.get(w, 1) for w in tokenize(prefix)] or [word_id.get(".", 1)]
    probabilities = models[best].predict(np.array([ids], dtype="int32"), verbose=0)[0, -1]
    probabilities[:2] = 0.0
    top = np.argsort(probabilities)[::-1][:k]
    return [(vocabulary[i], float(probabilities[i])) for i in top]


def show(prefix):
    words = ", ".join(f"{w} ({p:.1%})" for w, p in suggest(prefix))
    print(f"  {prefix!r} -> {words}")


print(f"\n{'model':<8} {'perplexity':>11}   (vocabulary {len(vocabulary):,})")
for cell in cells:
    print(f"{cell:<8} {metrics[cell]['perplexity']:11.1f}")
print(f"\ntop-{args.top_k} next words ({best}):")
prefixes = args.prefix or ["the prime minister", "police said the", "in the"]
metrics["suggestions"] = {p: suggest(p) for p in prefixes}
for prefix in prefixes:
    show(prefix)

metrics["best_cell"] = best
metrics["wall_seconds"] = round(time.time() - started, 1)
(out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"\nwrote {out_dir / 'metrics.json'}")
print(f"wall time {metrics['wall_seconds']:.0f} s")

if args.interactive:
    print("\ntype the start of a sentence (an empty line or Ctrl-D ends):")
    for line in sys.stdin:
        if not line.strip():
            break
        show(line.strip())
