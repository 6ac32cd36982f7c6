"""
Title: Word2Vec in Keras/TensorFlow, side by side with gensim
Author: keras-recipes
Description: Trains skip-gram or CBOW Word2Vec in-graph on gensim's head500 corpus and gensim's Word2Vec with the same settings; words/s, analogies, WordSim-353, PCA plot, metrics.json.

The study notes turn words into numbers three ways: a unique integer per
word, a one-hot vector, and a learned embedding. This recipe learns the
embedding with Word2Vec, as the notes do with gensim, but trains it in
TensorFlow: pairs are built inside a `tf.function` and an XLA-compiled step
applies the negative-sampling gradient as sparse row updates
(`keras_recipes.embeddings.Word2Vec`). gensim's own Word2Vec trains on the
same sentences with the same settings in the same run, so the two are
compared on speed (words per second) and quality: analogy accuracy on
`questions-words.txt` (king - man + woman = queen, 19,544 questions) and the
Spearman correlation with human similarity scores on WordSim-353.

It writes `metrics.json`, `pca.png` (chosen words in two dimensions for both
models) and `vectors.bin` (our vectors in word2vec's binary format, which
gensim and word2vec.c read) to `--out`.

Run it:

```
python recipes/word2vec.py                     # head500.noblanks.cor, skip-gram, 5 epochs
python recipes/word2vec.py --sg 0              # CBOW
python recipes/word2vec.py --quick             # seconds; what the tests run
python recipes/word2vec.py --corpus text8 --workers 2   # any whitespace-tokenized text
```
"""

import argparse
import json
import time
from pathlib import Path

"""
## Setup

The command line first (so `--help` answers before TensorFlow loads).
"""

DEFAULT_WORDS = (
    "king queen man woman princ emperor war battl armi peac french english german "
    "franc england germani music album song film"
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Train Word2Vec in Keras/TensorFlow and compare it with gensim's."
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help="whitespace-tokenized text, one or more sentences per line "
        "(default: gensim's head500.noblanks.cor)",
    )
    parser.add_argument("--encoding", default="utf-8", help="the corpus text encoding")
    parser.add_argument("--quick", action="store_true", help="a seconds-long run on 40k words")
    parser.add_argument(
        "--out", type=Path, default=Path("runs/word2vec"), help="folder for the outputs"
    )
    parser.add_argument("--sg", type=int, choices=[0, 1], default=1, help="1 skip-gram, 0 CBOW")
    parser.add_argument("--epochs", type=int, default=None, help="default 5 (quick: 2)")
    parser.add_argument("--vector-size", type=int, default=100)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--negative", type=int, default=5)
    parser.add_argument("--min-count", type=int, default=None, help="default 5 (quick: 3)")
    parser.add_argument("--workers", type=int, default=1, help="CPU threads, both libraries")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--words", default=DEFAULT_WORDS, help="space-separated words to plot")
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = 2 if args.quick else 5
    if args.min_count is None:
        args.min_count = 3 if args.quick else 5
    for name in ("epochs", "vector_size", "window", "negative", "min_count", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.corpus is not None and not args.corpus.is_file():
        parser.error(f"--corpus {args.corpus}: no such file")
    return args


args = parse_args()

from keras_recipes import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from gensim.models import Word2Vec as GensimWord2Vec  # noqa: E402
from gensim.test.utils import datapath  # noqa: E402

from keras_recipes.embeddings import Word2Vec, use_word2vec_threads, vocab_size  # noqa: E402

"""
## The corpus

`head500.noblanks.cor` is the start of a stemmed Wikipedia dump (about
330,000 words on 250 long lines) that gensim ships for its tests. Lines are
cut into sentences of at most 10,000 words, as gensim's `LineSentence` does,
and both libraries get exactly these lists. `--quick` keeps the first 40,000
words.
"""

corpus = args.corpus or Path(datapath("head500.noblanks.cor"))
sentences = []
with open(corpus, encoding=args.encoding, errors="replace") as lines:
    for line in lines:
        words = line.split()
        sentences.extend(words[i : i + 10000] for i in range(0, len(words), 10000))
if args.quick:
    kept, total = [], 0
    for sentence in sentences:
        kept.append(sentence[: 40000 - total])
        total += len(kept[-1])
        if total >= 40000:
            break
    sentences = kept
corpus_words = sum(len(s) for s in sentences)
if corpus_words == 0:
    raise SystemExit(f"--corpus {corpus}: the file holds no words.")
print(f"corpus {corpus.name}: {corpus_words:,} words, {vocab_size(sentences):,} distinct")

"""
## Training both

The same settings for both: gensim's names, `workers` threads each. Our
model's time includes building the pairs and compiling the XLA step; gensim's
excludes its vocabulary scan, as does ours.
"""

settings = dict(
    vector_size=args.vector_size,
    window=args.window,
    min_count=args.min_count,
    sg=args.sg,
    negative=args.negative,
    sample=1e-3,
    epochs=args.epochs,
    seed=args.seed,
    workers=args.workers,
)
use_word2vec_threads(args.workers)  # one thread per op, `workers` steps side by side
ours = Word2Vec(**settings, verbose=0 if args.quick else 1)
ours.build_vocab(sentences)
ours.train()

theirs = GensimWord2Vec(**settings)
theirs.build_vocab(sentences)
start = time.perf_counter()
theirs.train(sentences, total_examples=theirs.corpus_count, epochs=theirs.epochs)
gensim_seconds = time.perf_counter() - start

"""
## Evaluation

Analogies: the nearest word to `b - a + c` among the vocabulary must be `d`
(questions with a word outside the vocabulary are skipped, as in gensim).
Word pairs: Spearman correlation between cosine similarity and the human
scores of WordSim-353.
"""


def evaluate(wv):
    accuracy, sections = wv.evaluate_word_analogies(datapath("questions-words.txt"))
    answered = len(sections[-1]["correct"]) + len(sections[-1]["incorrect"])
    try:  # both libraries: scipy's (statistic, p-value) results and the OOV percentage
        (pearson, _), (spearman, _), oov = wv.evaluate_word_pairs(datapath("wordsim353.tsv"))
    except ValueError:  # no pair in the vocabulary (tiny corpora)
        pearson, spearman, oov = float("nan"), float("nan"), 100.0
    return dict(analogy_accuracy=float(accuracy), analogies_answered=answered,
                pearson=float(pearson), spearman=float(spearman), wordsim_oov_percent=oov)  # fmt: skip


rows = {
    "keras_recipes": dict(
        words_per_second=ours.words_per_second, seconds=ours.train_seconds, **evaluate(ours.wv)
    ),
    "gensim": dict(
        words_per_second=corpus_words * args.epochs / gensim_seconds,
        seconds=gensim_seconds,
        **evaluate(theirs.wv),
    ),
}
print(f"\n{'':14} {'words/s':>10} {'seconds':>8} {'analogy acc':>11} {'Spearman':>9}")
for name, row in rows.items():
    print(
        f"{name:14} {row['words_per_second']:10,.0f} {row['seconds']:8.2f} "
        f"{row['analogy_accuracy']:11.4f} {row['spearman']:9.3f}"
    )
ratio = rows["keras_recipes"]["words_per_second"] / rows["gensim"]["words_per_second"]
print(f"speed ratio (ours / gensim): {ratio:.2f}")

"""
## Using the vectors

The notes' example, king - man + woman, and the nearest neighbours of a few
words, from both models (stemmed words: the corpus is stemmed).
"""

examples = {}
if all(w in ours.wv and w in theirs.wv for w in ("king", "man", "woman")):
    for name, wv in (("keras_recipes", ours.wv), ("gensim", theirs.wv)):
        answer = wv.most_similar(positive=["king", "woman"], negative=["man"], topn=3)
        examples[name] = [(w, round(float(s), 3)) for w, s in answer]
        print(f"{name}: king - man + woman = {examples[name]}")

"""
## A picture: PCA of chosen words

Both models' vectors of the chosen words, projected on their two principal
components (computed with an SVD of the centred vectors).
"""

words = [w for w in args.words.split() if w in ours.wv and w in theirs.wv]
if len(words) < 3:
    words = ours.wv.index_to_key[:20]
args.out.mkdir(parents=True, exist_ok=True)
figure, axes = plt.subplots(1, 2, figsize=(12, 5.5))
for axis, (name, wv) in zip(axes, (("keras_recipes", ours.wv), ("gensim", theirs.wv)), strict=True):
    points = np.stack([wv[w] for w in words])
    points = points - points.mean(axis=0)
    _, _, components = np.linalg.svd(points, full_matrices=False)
    xy = points @ components[:2].T
    axis.scatter(xy[:, 0], xy[:, 1], s=12)
    for word, (x, y) in zip(words, xy, strict=True):
        axis.annotate(word, (x, y), fontsize=9)
    axis.set_title(f"{name} ({'skip-gram' if args.sg else 'CBOW'})")
    axis.set_xlabel("PC 1")
    axis.set_ylabel("PC 2")
figure.tight_layout()
figure.savefig(args.out / "pca.png", dpi=100)
plt.close(figure)

ours.wv.save_word2vec_format(args.out / "vectors.bin", binary=True)
metrics = dict(
    corpus=str(corpus),
    corpus_words=corpus_words,
    vocabulary=len(ours.wv),
    quick=args.quick,
    settings=settings,
    speed_ratio=ratio,
    models=rows,
    king_man_woman=examples,
    plotted_words=words,
)
(args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"wrote {args.out / 'metrics.json'}, {args.out / 'pca.png'}, {args.out / 'vectors.bin'}")
