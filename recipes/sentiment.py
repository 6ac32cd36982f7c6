"""
Title: Sentiment analysis, many-to-one: pooled embeddings vs a bidirectional LSTM
Author: keras-recipes
Description: The notes' GlobalAveragePooling "encoder" vs BiLSTM "decoder" classifiers on Pang-Lee polarity sentences (or aclImdb with --imdb, GLUE's SST-2 with --sst2); accuracy and confusion matrix.

Sentiment analysis is the notes' example of a *many-to-one* RNN: a whole
sentence in, one label out. The notes give two Keras classifiers for it:

- the "encoder": `Embedding -> GlobalAveragePooling1D -> Dense(relu) ->
  Dense(sigmoid)`, which averages word vectors and ignores word order;
- the "decoder": `Embedding -> Bidirectional(LSTM) -> Dense(relu) ->
  Dense(sigmoid)`, which reads the sentence both ways.

`keras_recipes.rnn.build_encoder` and `build_decoder` build them layer for
layer. We train both on the same data and compare accuracy and confusion
matrices.

Texts are padded with id 0 to a common length, and the notes' snippets
read the padding as if it were words: the pooled encoder averages it in
(issue #17 saw it stay at loss 0.6931 on movie reviews padded to 200
tokens, ~180 of them padding), and the LSTM runs through it. So the recipe builds both with
`mask_zero=True`: the pooling averages only the real tokens and the LSTM
skips the padded steps. `--no-mask` trains the notes' snippets exactly.
Since a masked model's output does not depend on how much padding follows
a text, the masked models train on batches of similar length, each padded
only to its own longest text, which is faster.

The built-in data is the sample of Pang and Lee's sentence polarity data
that gensim ships (`pang_lee_polarity.cor`, 200 movie-review sentences, 100
positive and 100 negative). That is very little to learn a language from,
so we score by 5-fold cross-validation: every sentence is tested once, by
a model that never saw it, and accuracy is counted over all 200; expect a
figure not far above the 50% of a coin toss. With `--imdb DIR` the recipe
reads the Large Movie Review Dataset (the `aclImdb` folder as unpacked,
`train/` and `test/` with `pos/` and `neg/`), trains on train and tests on
test.

With `--sst2 DIR` it reads GLUE's binary Stanford Sentiment Treebank
(`train.tsv` and `dev.tsv`; 67,349 training phrases and sentences, 872 dev
sentences), trains on train and tests on dev, GLUE's test split having no
labels. Tuning needs data the test never sees, so 1,000 whole training
sentences are held out as a validation set (`--val-sentences`), their
phrases taken out of training; Keras reports accuracy on them after every
epoch, and each model keeps the weights of its best epoch (training stops
when an epoch does not improve on the one before). The settings below were
chosen that way; the final run trains on all of train (`--val-sentences 0`)
for the chosen 3 epochs. `--word2vec` first trains
`keras_recipes.embeddings.Word2Vec` on the training texts and starts both
embeddings from its vectors (no outside data).

    python recipes/sentiment.py                       # Pang-Lee, 5-fold CV (~2 min)
    python recipes/sentiment.py --quick               # seconds, one fold only
    python recipes/sentiment.py --imdb aclImdb --max-per-class 5000 --epochs 3
    python recipes/sentiment.py --sst2 SST-2 --units 64 --dropout 0.5 --word2vec \
        --epochs 3 --val-sentences 0  # SST-2 dev: BiLSTM 84.4%, pooled 81.0%; 5.3 min, 2 cores

Writes `OUT/metrics.json`.
"""

"""## Setup"""

import argparse
import json
import os
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
parser.add_argument("--sst2", default=None, help="GLUE SST-2 folder (train.tsv and dev.tsv)")
parser.add_argument(
    "--val-sentences",
    type=int,
    default=None,
    help="whole training sentences held out for validation (--sst2; default 1000, 0 for none)",
)
parser.add_argument(
    "--no-mask", action="store_true", help="the notes' snippets: no padding mask (pads averaged in)"
)
parser.add_argument("--word2vec", action="store_true", help="start embeddings from Word2Vec")
parser.add_argument(
    "--freeze-embeddings", action="store_true", help="keep the Word2Vec vectors fixed (--word2vec)"
)
parser.add_argument(
    "--models",
    nargs="+",
    choices=("encoder", "decoder"),
    default=("encoder", "decoder"),
    help="which of the two classifiers to train (default both)",
)
parser.add_argument("--units", type=int, default=None, help="embedding and layer width")
parser.add_argument("--dropout", type=float, default=0.0, help="dropout after the embedding")
parser.add_argument("--batch-size", type=int, default=None, help="training batch size")
parser.add_argument("--epochs", type=int, default=None, help="training epochs per model")
parser.add_argument("--folds", type=int, default=None, help="cross-validation folds (built-in)")
parser.add_argument("--seed", type=int, default=0, help="fold and initialization seed")
args = parser.parse_args()
if args.imdb and args.sst2:
    parser.error("--imdb and --sst2 are two data sets; pass one.")

from keras_recipes import quiet_tensorflow

quiet_tensorflow()

import keras
import numpy as np
import tensorflow as tf

from keras_recipes.datasets.text import (
    load_imdb,
    load_polarity,
    load_sst2,
    sst2_validation_split,
)
from keras_recipes.embeddings import Word2Vec, pretrained_embeddings
from keras_recipes.rnn import build_decoder, build_encoder

out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)
verbose = 1 if sys.stdout.isatty() else 2
started = time.time()

"""
## Data

A list of `(train, test)` splits: the cross-validation folds of the
built-in sentences (class-balanced, shuffled with the seed), aclImdb's
own train/test split, or SST-2's train/dev split (with whole sentences of
train held out for validation).
"""

validation = None
standardize = "lower_and_strip_punctuation"
if args.sst2:
    train = load_sst2(args.sst2, "train")
    test = load_sst2(args.sst2, "dev")
    if args.quick:  # a smoke test: a sample of train
        keep = np.random.default_rng(args.seed).permutation(len(train[0]))[:2000]
        train = tuple([column[i] for i in sorted(keep)] for column in train)
    num_validation = args.val_sentences
    if num_validation is None:
        num_validation = 2 if args.quick else 1000
    if num_validation < 0:
        sys.exit(f"--val-sentences must be >= 0, got {num_validation}.")
    if num_validation:
        try:
            train, validation = sst2_validation_split(*train, num_validation, args.seed)
        except ValueError as error:
            sys.exit(f"--val-sentences {num_validation}: {error}")
    splits = [(train, test)]
    # SST-2 is tokenized and lower-cased already; keep its tokens ("n't", "!") as they are.
    task, sequence_length, standardize = "sst2", 64, None
elif args.imdb:
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
    + (f", {len(validation[0])} validation sentences held out of train" if validation else "")
)

"""
## Models

Words become ids with a `TextVectorization` layer fitted on the training
texts of each split (lower-cased, punctuation stripped, the 10,000 most
frequent words, padded or cut to a fixed length; SST-2 comes tokenized, so
its tokens are kept and its 20,000 most frequent kept). The two models are
the notes' snippets, from the builders, with the padding mask.
"""

mask = not args.no_mask
epochs = args.epochs or (1 if args.quick else 3 if args.sst2 else 15)
units = args.units or (8 if args.quick else 32)
max_tokens = 20000 if args.sst2 else 10000
builders = {
    name: build
    for name, build in (
        ("encoder (GlobalAveragePooling)", build_encoder),
        ("decoder (BiLSTM)", build_decoder),
    )
    if name.split()[0] in args.models
}


def length_batches(ids, labels, batch_size, shuffle):
    """Batches of texts of similar length, each padded only to its own longest text.

    Only for masked models: their output does not depend on the padding.
    """
    lengths = np.maximum((ids != 0).sum(axis=1), 1)
    data = tf.data.Dataset.from_tensor_slices((ids, lengths, labels))
    if shuffle:
        data = data.shuffle(len(labels), seed=args.seed, reshuffle_each_iteration=True)
    data = data.map(lambda text, length, label: (text[:length], label))
    boundaries = [8, 16, 32, 64, 128]
    data = data.bucket_by_sequence_length(
        lambda text, label: tf.shape(text)[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
    )
    return data.prefetch(tf.data.AUTOTUNE)


"""
## Training and evaluation

Adam, binary cross-entropy; the test texts are predicted once training is
done and a prediction above 0.5 counts as positive. The confusion matrix
rows are the true class (negative, positive), columns the predicted one.
"""

results = {
    name: {"confusion": np.zeros((2, 2), dtype=int), "fold_accuracy": []} for name in builders
}
word2vec_report = None
for k, ((train_texts, train_labels), (test_texts, test_labels)) in enumerate(splits):
    keras.utils.set_random_seed(args.seed + k)
    vectorize = keras.layers.TextVectorization(
        max_tokens=max_tokens, output_sequence_length=sequence_length, standardize=standardize
    )
    vectorize.adapt(train_texts)
    x_train = vectorize(np.array(train_texts)).numpy()
    x_test = vectorize(np.array(test_texts)).numpy()
    y_train = np.array(train_labels, dtype="float32")
    batch_size = args.batch_size or (16 if len(y_train) < 2000 else 64)
    pretrained = None
    if args.word2vec:
        # Vectors from this split's training texts only, split as the vectorizer splits
        # them; vocabulary words they lack start random (and are counted).
        vocabulary = vectorize.get_vocabulary()
        sentences = [[vocabulary[i] for i in ids if i > 1] for ids in x_train]
        sentences = [words for words in sentences if words]
        w2v_started = time.time()
        w2v = Word2Vec(
            sentences, vector_size=units, window=5, min_count=1, sg=1, epochs=5, seed=args.seed
        )
        pretrained = pretrained_embeddings(w2v.wv, vocabulary, seed=args.seed)
        word2vec_report = {
            "seconds": round(time.time() - w2v_started, 1),
            "vocabulary": len(vocabulary),
            "missing": len(pretrained.missing),
        }
        print(
            f"Word2Vec on {len(sentences):,} training texts: {word2vec_report['seconds']} s; "
            f"{len(pretrained.missing)} of {len(vocabulary):,} words have no vector"
        )
    if mask:
        train_data = length_batches(x_train, y_train, batch_size, shuffle=True)
        fit_args = {}
    else:
        train_data, fit_args = x_train, {"y": y_train, "batch_size": batch_size}
    if validation:
        x_validation = vectorize(np.array(validation[0])).numpy()
        fit_args["validation_data"] = (x_validation, np.array(validation[1], "float32"))
    for name, build in builders.items():
        model = build(
            vectorize.vocabulary_size(),
            embed_dim=units,
            units=units,
            sequence_length=None if mask else sequence_length,
            mask_zero=mask,
            pretrained=pretrained,
            trainable=not (args.freeze_embeddings and pretrained is not None),
            dropout=args.dropout,
        )
        # jit_compile=False: XLA takes longer to compile a small LSTM on a CPU than to train it
        model.compile(
            optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], jit_compile=False
        )
        print(f"\nsplit {k + 1}/{len(splits)}: {name}, {model.count_params():,} parameters")
        # With held-out sentences, each model keeps its weights of the best validation epoch.
        callbacks = []
        if validation:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_accuracy", patience=1, restore_best_weights=True
                )
            )
        history = model.fit(
            train_data, epochs=epochs, verbose=verbose, callbacks=callbacks, **fit_args
        )
        if validation:
            results[name]["validation_accuracy"] = history.history["val_accuracy"]
            results[name]["best_epoch"] = int(np.argmax(history.history["val_accuracy"])) + 1
        predicted = (model.predict(x_test, verbose=0)[:, 0] > 0.5).astype(int)
        for truth, guess in zip(test_labels, predicted, strict=True):
            results[name]["confusion"][truth, guess] += 1
        results[name]["fold_accuracy"].append(float(np.mean(predicted == np.array(test_labels))))
    if k == len(splits) - 1:
        examples = ["a moving , beautifully acted film", "dull , tedious and far too long"]
        scores = model.predict(vectorize(np.array(examples)).numpy(), verbose=0)[:, 0]

"""## Results"""

metrics = {
    "task": task,
    "splits": len(splits),
    "epochs": epochs,
    "units": units,
    "mask": mask,
    "dropout": args.dropout,
    "word2vec": word2vec_report,
    "frozen_embeddings": bool(args.freeze_embeddings and word2vec_report),
    "validation_sentences": len(validation[0]) if validation else 0,
    "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    "models": {},
}
print(f"\n{'model':<32} {'accuracy':>9}   confusion [[TN FP] [FN TP]]")
for name, result in results.items():
    confusion = result["confusion"]
    accuracy = float(np.trace(confusion) / confusion.sum())
    metrics["models"][name] = {
        "accuracy": accuracy,
        "fold_accuracy": result["fold_accuracy"],
        "confusion": confusion.tolist(),
    }
    for key in ("validation_accuracy", "best_epoch"):
        if key in result:
            metrics["models"][name][key] = result[key]
    print(f"{name:<32} {accuracy:9.2%}   {confusion.tolist()}")
for text, score in zip(examples, scores, strict=True):
    print(f"  {name}: {text!r} -> {'positive' if score > 0.5 else 'negative'} ({score:.2f})")

metrics["wall_seconds"] = round(time.time() - started, 1)
metrics["load_average"] = [round(load, 2) for load in os.getloadavg()]
metrics["threads"] = os.cpu_count()
(out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"\nwrote {out_dir / 'metrics.json'}")
print(f"wall time {metrics['wall_seconds']:.0f} s")
