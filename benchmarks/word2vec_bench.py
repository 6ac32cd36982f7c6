"""Word2Vec speed and quality: keras_recipes.embeddings.Word2Vec against gensim, same run.

Both train on the same tokenized corpus (gensim's `head500.noblanks.cor` by
default, lines cut into 10,000-word sentences as gensim's LineSentence does)
with the same settings: vector_size 100, window 5, negative 5, min_count 5,
sample 1e-3, epochs 5, and `workers` matched to the CPU cores the process is
pinned to. Each (library, architecture, seed) trains in its own subprocess
pinned with `taskset`, so TensorFlow's thread pools are sized for those cores
and one run cannot warm up another. Speed is corpus words x epochs / training
seconds (vocabulary building excluded for both; graph tracing and XLA
compilation included for ours). Quality is Spearman on wordsim353.tsv and
accuracy on questions-words.txt. Medians over seeds; the ratios are ours /
gensim's; "best" is the ratio of each library's fastest run, the better
estimate on a shared machine, where another job landing on a core slows
whichever run it meets. Absolute words/s vary with the machine's load, so
compare the ratios, measured side by side.

Run:

```
python benchmarks/word2vec_bench.py                  # cores "0" and "0,1", seeds 1 2 3
python benchmarks/word2vec_bench.py --cores 0 --seeds 1 --archs skip-gram
python benchmarks/word2vec_bench.py --cores 0 --archs sg-hs cbow-hs   # hs=1, negative=0
```
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from conditions import print_conditions

SETTINGS = dict(vector_size=100, window=5, negative=5, min_count=5, sample=1e-3, epochs=5)


def load_sentences(path):
    sentences = []
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            words = line.split()
            sentences.extend(words[i : i + 10000] for i in range(0, len(words), 10000))
    return sentences


ARCHS = {
    "skip-gram": dict(sg=1),
    "CBOW": dict(sg=0),
    "sg-shared": dict(sg=1, shared=True),
    # Hierarchical softmax alone (gensim's Huffman tree), on request: --archs sg-hs cbow-hs
    "sg-hs": dict(sg=1, hs=1, negative=0),
    "cbow-hs": dict(sg=0, hs=1, negative=0),
}
DEFAULT_ARCHS = ["skip-gram", "CBOW", "sg-shared"]


def one_run(library, arch, seed, workers, corpus):
    """Trains once in this process and prints a JSON line of figures."""
    import time

    if library == "ours":
        import keras_recipes

        keras_recipes.quiet_tensorflow()
    from gensim.test.utils import datapath

    sg = ARCHS[arch]["sg"]
    settings = {**SETTINGS, **{k: v for k, v in ARCHS[arch].items() if k in ("hs", "negative")}}
    sentences = load_sentences(corpus)
    words = sum(len(s) for s in sentences)
    if library == "gensim":
        from gensim.models import Word2Vec

        model = Word2Vec(sg=sg, seed=seed, workers=workers, **settings)
        model.build_vocab(sentences)
        start = time.perf_counter()
        model.train(sentences, total_examples=model.corpus_count, epochs=model.epochs)
        seconds = time.perf_counter() - start
        wv = model.wv
    else:
        from keras_recipes.embeddings import Word2Vec, use_word2vec_threads

        use_word2vec_threads(workers)  # one thread per op, `workers` steps side by side
        shared = ARCHS[arch].get("shared", False)
        model = Word2Vec(sg=sg, seed=seed, workers=workers, shared_negatives=shared, **settings)
        model.build_vocab(sentences)
        model.train()
        seconds = model.train_seconds
        wv = model.wv
    spearman = float(wv.evaluate_word_pairs(datapath("wordsim353.tsv"))[1][0])  # as in gensim
    accuracy = wv.evaluate_word_analogies(datapath("questions-words.txt"))[0]
    print(
        json.dumps(
            dict(
                words_per_second=words * SETTINGS["epochs"] / seconds,
                seconds=seconds,
                spearman=spearman,
                analogy=float(accuracy),
            )
        )
    )


def measure(library, arch, seed, cores, corpus):
    workers = len(cores.split(","))
    command = [
        "taskset", "-c", cores, sys.executable, __file__, "--one-run", library,
        "--archs", arch, "--seeds", str(seed), "--workers", str(workers), "--corpus", corpus,
    ]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{library} run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", nargs="+", default=["0", "0,1"], help="taskset core lists")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument(
        "--archs",
        nargs="+",
        choices=list(ARCHS),
        default=DEFAULT_ARCHS,
        help="skip-gram, CBOW, and skip-gram with negatives shared per window (ours; "
        "gensim's row is plain skip-gram); sg-hs and cbow-hs: hierarchical softmax alone "
        "(hs=1, negative=0), on request",
    )
    parser.add_argument("--corpus", default=None, help="whitespace-tokenized text file")
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--one-run", choices=["ours", "gensim"], help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.corpus is None:
        from gensim.test.utils import datapath

        args.corpus = datapath("head500.noblanks.cor")
    if args.one_run:
        return one_run(args.one_run, args.archs[0], args.seeds[0], args.workers, args.corpus)

    report = []
    conditions = print_conditions(threads={"per run": "taskset --cores, workers = cores"})
    print(f"corpus {args.corpus}; settings {SETTINGS}; seeds {args.seeds}; medians")
    print(
        f"{'arch':9} {'cores':5} {'gensim w/s':>11} {'ours w/s':>10} {'ratio':>6} {'best':>5} "
        f"{'gensim rho':>10} {'ours rho':>8} {'gensim acc':>10} {'ours acc':>8}"
    )
    for cores in args.cores:
        for arch in args.archs:
            runs = {"gensim": [], "ours": []}
            for seed in args.seeds:
                for library in ("gensim", "ours"):  # interleaved, so load drifts hit both
                    runs[library].append(measure(library, arch, seed, cores, args.corpus))
            med = {
                lib: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
                for lib, rs in runs.items()
            }
            ratio = med["ours"]["words_per_second"] / med["gensim"]["words_per_second"]
            best = {lib: max(r["words_per_second"] for r in rs) for lib, rs in runs.items()}
            best_ratio = best["ours"] / best["gensim"]
            print(
                f"{arch:9} {cores:5} {med['gensim']['words_per_second']:11,.0f} "
                f"{med['ours']['words_per_second']:10,.0f} {ratio:6.2f} {best_ratio:5.2f} "
                f"{med['gensim']['spearman']:10.3f} {med['ours']['spearman']:8.3f} "
                f"{med['gensim']['analogy']:10.4f} {med['ours']['analogy']:8.4f}",
                flush=True,
            )
            report.append(
                dict(
                    arch=arch,
                    cores=cores,
                    ratio=ratio,
                    best_ratio=best_ratio,
                    median=med,
                    runs=runs,
                )
            )
    after = print_conditions(label="after")
    if args.json:
        document = dict(conditions=conditions, conditions_after=after, rows=report)
        args.json.write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
