"""
Title: Sentiment analysis, many-to-one: pooled embeddings vs a bidirectional LSTM
Author: keras-recipes
Description: The notes' GlobalAveragePooling "encoder" vs BiLSTM "decoder" classifiers on Pang-Lee polarity sentences (or aclImdb with --imdb); accuracy and confusion matrix.

Sentiment analysis is the notes' example of a *many-to-one* RNN: a whole
sentence in, one label out. The notes give two Keras classifiers for it:

- the "encoder": `Embedding -> GlobalAveragePooling1D -> Dense(relu) ->
  Dense(sigmoid)`, which averages word vectors and ignores word order;
- the "decoder": `Embedding -> Bidirectional(LSTM) -> Dense(relu) ->
  Dense(sigmoid)`, which reads the sentence both ways.

`keras_recipes.rnn.build_encoder` and `build_decoder` build them layer for
layer. We train both on the same data and compare accuracy and confusion
matrices.

The built-in data is the sample of Pang and Lee's sentence polarity data
that gensim ships (`pang_lee_polarity.cor`, 200 movie-review sentences, 100
positive and 100 negative). That is very little to learn a language from,
so we score by 5-fold cross-validation: every sentence is tested once, by
a model that never saw it, and accuracy is counted over all 200; expect a
figure not far above the 50% of a coin toss. With `--imdb DIR` the recipe
reads the Large Movie Review Dataset (the `aclImdb` folder as unpacked,
`train/` and `test/` with `pos/` and `neg/`), trains on train and tests on
test.

    python recipes/sentiment.py                       # Pang-Lee, 5-fold CV (~2 min)
    python recipes/sentiment.py --quick               # seconds, one fold only
    python recipes/sentiment.py --imdb aclImdb --max-per-class 5000 --epochs 3

Writes `OUT/metrics.json`.
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
parser.add_argument("--quick", action="store_true", help="one split, 1 epoch, small models")
parser.add_argument("--out", default="runs/sentiment", help="output folder")
parser.add_argument("--imdb", default=None, help="aclImdb folder (train/ and test/, pos/ neg/)")
parser.add_argument("--max-per-class", type=int, default=None, help="reviews per class (--imdb)")
parser.add_argument("--epochs", type=int, default=None, help="training epochs per model")
parser.add_argument("--folds", type=int, default=None, help="cross-validation folds (built-in)")
parser.add_argument("--seed", type=int, default=0, help="fold and initialization seed")
args = parser.parse_args()

from keras_recipes import quiet_tensorflow

quiet_tensorflow()

import keras
import numpy as np

from keras_recipes.datasets.text import load_imdb, load_polarity
from keras_recipes.rnn import build_decoder, build_encoder

out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)
verbose = 1 if sys.stdout.isatty() else 2
started = time.time()

"""
## Data

A list of `(train, test)` splits: the cross-validation folds of the
built-in sentences (class-balanced, shuffled with the seed), or aclImdb's
own train/test split.
"""

if args.imdb:
    per_class = args.max_per_class or (100 if args.quick else None)
    train = load_imdb(args.imdb, "train", per_class)
    test = load_imdb(args.imdb, "test", per_class)
    splits = [(train, test)]
    task, sequence_length = "aclImdb", 200
else:
    texts, labels = load_polarity()
    num_folds = args.folds or 5
    if not 2 <= num_folds <= 100:
        sys.exit(f"--folds must be between 2 and 100, got {num_folds}.")
    rng = np.random.default_rng(args.seed)
    by_class = [rng.permutation([i for i, y in enumerate(labels) if y == c]) for c in (0, 1)]
    fold_of = np.empty(len(labels), dtype=int)
    for members in by_class:  # deal each class round-robin into the folds
        fold_of[members] = np.arange(len(members)) % num_folds
    splits = []
    for k in range(num_folds):
        pick = [
            [i for i in range(len(texts)) if (fold_of[i] == k) == is_test] for is_test in (0, 1)
        ]
        splits.append(tuple(([texts[i] for i in p], [labels[i] for i in p]) for p in pick))
    if args.quick:  # one fold only: a smoke test, not a measurement
        splits = splits[:1]
    task, sequence_length = "pang_lee_polarity", 48

print(
    f"task {task}: {len(splits)} split(s); first has {len(splits[0][0][0])} training and "
    f"{len(splits[0][1][0])} test texts"
)

"""
## Models

Words become ids with a `TextVectorization` layer fitted on the training
texts of each split (lower-cased, punctuation stripped, the 10,000 most
frequent words, padded or cut to a fixed length). The two models are the
notes' snippets, from the builders.
"""

epochs = args.epochs or (1 if args.quick else 15)
units = 8 if args.quick else 32
builders = {"encoder (GlobalAveragePooling)": build_encoder, "decoder (BiLSTM)": build_decoder}

"""
## Training and evaluation

Adam, binary cross-entropy; the test texts are predicted once training is
done and a prediction above 0.5 counts as positive. The confusion matrix
rows are the true class (negative, positive), columns the predicted one.
"""

results = {
    name: {"confusion": np.zeros((2, 2), dtype=int), "fold_accuracy": []} for name in builders
}
for k, ((train_texts, train_labels), (test_texts, test_labels)) in enumerate(splits):
    keras.utils.set_random_seed(args.seed + k)
    vectorize = keras.layers.TextVectorization(
        max_tokens=10000, output_sequence_length=sequence_length
    )
    vectorize.adapt(train_texts)
    x_train = vectorize(np.array(train_texts)).numpy()
    x_test = vectorize(np.array(test_texts)).numpy()
    y_train = np.array(train_labels, dtype="float32")
    for name, build in builders.items():
        model = build(
            vectorize.vocabulary_size(),
            embed_dim=units,
            units=units,
            sequence_length=sequence_length,
        )
        # jit_compile=False: XLA takes longer to compile a small LSTM on a CPU than to train it
        model.compile(
            optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], jit_compile=False
        )
        print(f"\nsplit {k + 1}/{len(splits)}: {name}, {model.count_params():,} parameters")
        model.fit(
            x_train,
            y_train,
            batch_size=16 if len(y_train) < 2000 else 64,
            epochs=epochs,
            verbose=verbose,
        )
        predicted = (model.predict(x_test, verbose=0)[:, 0] > 0.5).astype(int)
        for truth, guess in zip(test_labels, predicted, strict=True):
            results[name]["confusion"][truth, guess] += 1
        results[name]["fold_accuracy"].append(float(np.mean(predicted == np.array(test_labels))))
    if k == len(splits) - 1:
        examples = ["a moving , beautifully acted film", "dull , tedious and far too long"]
        scores = model.predict(vectorize(np.array(examples)).numpy(), verbose=0)[:, 0]

"""## Results"""

metrics = {"task": task, "splits": len(splits), "epochs": epochs, "units": units, "models": {}}
print(f"\n{'model':<32} {'accuracy':>9}   confusion [[TN FP] [FN TP]]")
for name, result in results.items():
    confusion = result["confusion"]
    accuracy = float(np.trace(confusion) / confusion.sum())
    metrics["models"][name] = {
        "accuracy": accuracy,
        "fold_accuracy": result["fold_accuracy"],
        "confusion": confusion.tolist(),
    }
    print(f"{name:<32} {accuracy:9.2%}   {confusion.tolist()}")
for text, score in zip(examples, scores, strict=True):
    print(f"  BiLSTM: {text!r} -> {'positive' if score > 0.5 else 'negative'} ({score:.2f})")

metrics["wall_seconds"] = round(time.time() - started, 1)
(out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"\nwrote {out_dir / 'metrics.json'}")
print(f"wall time {metrics['wall_seconds']:.0f} s")
