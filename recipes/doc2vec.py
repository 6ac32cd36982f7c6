"""
Title: Doc2Vec in Keras/TensorFlow, side by side with gensim
Author: keras-recipes
Description: Trains paragraph vectors (PV-DM or PV-DBOW) on gensim's Lee news corpus with keras_recipes and gensim, the check of gensim's Doc2Vec tutorial for both; words/s, self-similarity, metrics.json.

Doc2Vec (Le and Mikolov, 2014) learns a vector per document next to the word
vectors: in PV-DM the document's vector joins its context words in
predicting each centre word, in PV-DBOW it predicts the document's words on
its own. `keras_recipes.embeddings.Doc2Vec` trains both in TensorFlow on
Word2Vec's in-graph pair builder and XLA-compiled negative-sampling step,
with gensim's names (`Doc2Vec`, `TaggedDocument`, `dv[tag]`,
`infer_vector`).

gensim's tutorial judges a model by inference: infer a fresh vector for each
training document, against the frozen model, and see whether its nearest
training vector is its own. Both libraries train here on the same documents
with the same settings, in the same run.

Run it:

```
python recipes/doc2vec.py                   # lee_background.cor, PV-DM, 40 epochs
python recipes/doc2vec.py --dm 0            # PV-DBOW
python recipes/doc2vec.py --quick           # seconds; what the tests run
python recipes/doc2vec.py --corpus my_docs.txt   # one document per line
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Train Doc2Vec in Keras/TensorFlow and compare it with gensim's."
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help="text with one document per line (default: gensim's lee_background.cor)",
    )
    parser.add_argument("--encoding", default="iso-8859-1", help="the corpus text encoding")
    parser.add_argument("--quick", action="store_true", help="seconds: 100 documents, 10 epochs")
    parser.add_argument(
        "--out", type=Path, default=Path("runs/doc2vec"), help="folder for the outputs"
    )
    parser.add_argument("--dm", type=int, choices=[0, 1], default=1, help="1 PV-DM, 0 PV-DBOW")
    parser.add_argument("--epochs", type=int, default=None, help="default 40 (quick: 10)")
    parser.add_argument("--vector-size", type=int, default=50)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = 10 if args.quick else 40
    for name in ("epochs", "vector_size", "min_count"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.corpus is not None and not args.corpus.is_file():
        parser.error(f"--corpus {args.corpus}: no such file")
    return args


args = parse_args()

from keras_recipes import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

import numpy as np  # noqa: E402
from gensim.models.doc2vec import Doc2Vec as GensimDoc2Vec  # noqa: E402
from gensim.models.doc2vec import TaggedDocument as GensimTaggedDocument  # noqa: E402
from gensim.test.utils import datapath  # noqa: E402
from gensim.utils import simple_preprocess  # noqa: E402

from keras_recipes.embeddings import Doc2Vec, TaggedDocument, use_word2vec_threads  # noqa: E402

"""
## The corpus

`lee_background.cor` holds 300 Australian news articles, one per line, that
gensim ships for its tests and its Doc2Vec tutorial. Each line becomes
`TaggedDocument(simple_preprocess(line), [line_number])`. `--quick` keeps the
first 100 documents.
"""

corpus = args.corpus or Path(datapath("lee_background.cor"))
with open(corpus, encoding=args.encoding, errors="replace") as lines:
    token_lists = [simple_preprocess(line) for line in lines if line.strip()]
if args.quick:
    token_lists = token_lists[:100]
corpus_words = sum(len(tokens) for tokens in token_lists)
if corpus_words == 0:
    raise SystemExit(f"--corpus {corpus}: the file holds no words.")
print(f"corpus {corpus.name}: {len(token_lists)} documents, {corpus_words:,} words")

"""
## Training both

gensim's tutorial settings (vector size 50, min_count 2, 40 epochs) and one
worker each. Timed is `train()` alone; ours includes tracing and compiling
its XLA step.
"""

settings = dict(
    dm=args.dm,
    vector_size=args.vector_size,
    min_count=args.min_count,
    epochs=args.epochs,
    seed=args.seed,
    workers=1,
)
use_word2vec_threads(settings["workers"])  # one thread per op, as gensim's one worker
models = {}
for name, model_class, document_class in (
    ("keras_recipes", Doc2Vec, TaggedDocument),
    ("gensim", GensimDoc2Vec, GensimTaggedDocument),
):
    documents = [document_class(tokens, [i]) for i, tokens in enumerate(token_lists)]
    model = model_class(**settings)
    model.build_vocab(documents)
    start = time.perf_counter()
    model.train(documents, total_examples=model.corpus_count, epochs=model.epochs)
    models[name] = (model, time.perf_counter() - start)

"""
## Does each document find itself?

For every training document, infer a new vector and rank the training
vectors by cosine similarity to it: a good model ranks the document's own
vector first.
"""


def self_similarity(model):
    ranks = []
    for i, tokens in enumerate(token_lists):
        inferred = model.infer_vector(tokens)
        ranked = [tag for tag, _ in model.dv.most_similar([inferred], topn=len(model.dv))]
        ranks.append(ranked.index(i))
    return float(np.mean(np.array(ranks) == 0))


metrics = {"quick": args.quick, "documents": len(token_lists), "corpus_words": corpus_words}
metrics["settings"] = settings
metrics["models"] = {}
print(f"\n{'':14} {'words/s':>10} {'train s':>8} {'self-similarity':>16}")
for name, (model, seconds) in models.items():
    row = {
        "words_per_second": corpus_words * args.epochs / seconds,
        "train_seconds": seconds,
        "self_similarity": self_similarity(model),
    }
    metrics["models"][name] = row
    print(
        f"{name:14} {row['words_per_second']:>10,.0f} {seconds:>8.2f} "
        f"{row['self_similarity']:>16.3f}"
    )
ours, theirs = metrics["models"]["keras_recipes"], metrics["models"]["gensim"]
metrics["speed_ratio"] = ours["words_per_second"] / theirs["words_per_second"]
print(f"speed ratio (ours / gensim): {metrics['speed_ratio']:.2f}x")

"""
## New documents

An unseen article from `lee.cor` (gensim's test file): its nearest training
articles, and whether inferring it twice (with other random draws) lands in
the same place.
"""

model = models["keras_recipes"][0]
unseen = simple_preprocess(open(datapath("lee.cor"), encoding="iso-8859-1").readline())
first, second = model.infer_vector(unseen), model.infer_vector(unseen, seed=args.seed + 1)
agreement = float(first @ second / (np.linalg.norm(first) * np.linalg.norm(second)))
metrics["unseen_reinfer_cosine"] = agreement
print(f"\nunseen: {' '.join(unseen[:12])} ...")
print(f"cosine between two inferences of it: {agreement:.3f}")
for tag, similarity in model.dv.most_similar([first], topn=3):
    print(f"  {similarity:.3f}  {' '.join(token_lists[tag][:12])} ...")

"""
## Outputs

`metrics.json` holds every figure printed above; `doc2vec.model` is our
model (one `.npz` file, no pickle), which `Doc2Vec.load` reads back.
"""

args.out.mkdir(parents=True, exist_ok=True)
model.save(str(args.out / "doc2vec.model"))
(args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(f"\nwrote {args.out / 'metrics.json'} and {args.out / 'doc2vec.model'}")
