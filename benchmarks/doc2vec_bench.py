"""Doc2Vec quality and speed: keras_recipes.embeddings.Doc2Vec against gensim, same run.

The check of gensim's Doc2Vec tutorial: train on `lee_background.cor` (300
news articles, one per line, `gensim.utils.simple_preprocess`) with
vector_size 50, min_count 2, epochs 40; then infer a vector for every
training document and rank its own training vector among
`dv.most_similar(inferred, topn=len(dv))`. "Self-similarity" is the fraction
ranked first. On `lee.cor` (the 50 test articles, unseen) the sanity check
is that inferring a document twice, with different random draws, gives close
vectors: the mean cosine between the two.

"infer s" is the whole ranking loop (inference and `most_similar`);
`infer_vector` alone is timed too and printed as documents/s (the first
call, with ours' XLA compilation, included).

Each (library, mode, seed) runs in its own subprocess pinned with `taskset`
to one core (gensim with workers=1, ours with workers=1), so neither warms
the other. Speed is corpus words x epochs / `train()` seconds (vocabulary
excluded for both; graph tracing and XLA compilation included for ours).
Ratios are ours / gensim's, medians over seeds. The CPU model, thread count
and load average are printed beside the ratios.

Run:

```
python benchmarks/doc2vec_bench.py                      # core 1, PV-DM and PV-DBOW, seeds 1 2 3
python benchmarks/doc2vec_bench.py --modes dm --seeds 1
```
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

from conditions import print_conditions

SETTINGS = dict(vector_size=50, min_count=2, epochs=40)
MODES = {"dm": 1, "dbow": 0}


def read_corpus(path, tokens_only=False):
    import gensim

    with open(path, encoding="iso-8859-1") as lines:
        for number, line in enumerate(lines):
            tokens = gensim.utils.simple_preprocess(line)
            yield tokens if tokens_only else (tokens, [number])


def one_run(library, mode, seed):
    """Trains and evaluates once in this process; prints a JSON line of figures."""
    import time

    import numpy as np

    if library == "ours":
        import keras_recipes

        keras_recipes.quiet_tensorflow()
        from keras_recipes.embeddings import Doc2Vec, TaggedDocument, use_word2vec_threads

        use_word2vec_threads(1)  # one thread per op, as gensim's one worker
    else:
        from gensim.models.doc2vec import Doc2Vec, TaggedDocument
    from gensim.test.utils import datapath

    train = [TaggedDocument(w, t) for w, t in read_corpus(datapath("lee_background.cor"))]
    test = list(read_corpus(datapath("lee.cor"), tokens_only=True))
    words = sum(len(d.words) for d in train)
    model = Doc2Vec(dm=MODES[mode], seed=seed, workers=1, **SETTINGS)
    model.build_vocab(train)
    start = time.perf_counter()
    model.train(train, total_examples=model.corpus_count, epochs=model.epochs)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    ranks, infer_only = [], 0.0
    for document in train:
        mark = time.perf_counter()
        inferred = model.infer_vector(document.words)
        infer_only += time.perf_counter() - mark
        similar = model.dv.most_similar([inferred], topn=len(model.dv))
        ranks.append([tag for tag, _ in similar].index(document.tags[0]))
    infer_seconds = time.perf_counter() - start

    def infer_twice(words):
        if library == "ours":  # ours is seeded by the words; give the second call other draws
            return model.infer_vector(words), model.infer_vector(words, seed=seed + 1000)
        return model.infer_vector(words), model.infer_vector(words)

    cosines = []
    for tokens in test:
        a, b = infer_twice(tokens)
        cosines.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
    print(
        json.dumps(
            dict(
                words_per_second=words * SETTINGS["epochs"] / seconds,
                seconds=seconds,
                self_similarity=float(np.mean(np.array(ranks) == 0)),
                second_self_similarity=float(np.mean(np.array(ranks) <= 1)),
                infer_seconds=infer_seconds,
                infer_documents_per_second=len(train) / infer_only,
                test_reinfer_cosine=float(np.mean(cosines)),
            )
        )
    )


def measure(library, mode, seed, core):
    command = [
        "taskset", "-c", core, sys.executable, __file__, "--one-run", library,
        "--modes", mode, "--seeds", str(seed),
    ]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{library} run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def conditions(core):
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"taskset -c {core} (1 thread, workers=1); load average {load}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--core", default="1", help="taskset core for every run")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--one-run", choices=["ours", "gensim"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one_run:
        one_run(args.one_run, args.modes[0], args.seeds[0])
        return
    import gensim
    import tensorflow as tf

    print_conditions(threads={"per run": f"taskset -c {args.core}, workers=1"})
    print(f"python {platform.python_version()}, gensim {gensim.__version__}, tensorflow {tf.__version__}")  # fmt: skip
    print(f"lee_background.cor, {SETTINGS}, seeds {args.seeds}")
    for mode in args.modes:
        rows = {"gensim": [], "ours": []}
        for seed in args.seeds:
            for library in ("gensim", "ours"):
                rows[library].append(measure(library, mode, seed, args.core))
        median = {
            lib: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            for lib, runs in rows.items()
        }
        print(f"\nPV-{mode.upper()} ({conditions(args.core)})")
        print(f"{'':8} {'words/s':>10} {'train s':>8} {'self-sim':>9} {'top-2':>6} {'infer s':>8} {'lee.cor re-infer cos':>21}")  # fmt: skip
        for lib, m in median.items():
            print(
                f"{lib:8} {m['words_per_second']:>10,.0f} {m['seconds']:>8.2f} "
                f"{m['self_similarity']:>9.3f} {m['second_self_similarity']:>6.3f} "
                f"{m['infer_seconds']:>8.2f} {m['test_reinfer_cosine']:>21.3f}"
            )
        for lib in rows:
            print(f"  {lib} self-similarity per seed: {[r['self_similarity'] for r in rows[lib]]}")
        ratio = median["ours"]["words_per_second"] / median["gensim"]["words_per_second"]
        infer_ratio = (
            median["ours"]["infer_documents_per_second"]
            / median["gensim"]["infer_documents_per_second"]
        )
        print(
            f"infer_vector documents/s, PV-{mode.upper()}: gensim "
            f"{median['gensim']['infer_documents_per_second']:.0f}, ours "
            f"{median['ours']['infer_documents_per_second']:.0f}: {infer_ratio:.2f}x"
        )
        print(
            f"speed ratio (ours / gensim), PV-{mode.upper()}: {ratio:.2f}x   "
            f"self-similarity ours {median['ours']['self_similarity']:.3f} vs gensim "
            f"{median['gensim']['self_similarity']:.3f}   [{conditions(args.core)}]"
        )


if __name__ == "__main__":
    main()
