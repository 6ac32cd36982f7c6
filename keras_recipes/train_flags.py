"""The command-line flags of a LLaMA training run, shared by its two front ends.

`keras-recipes llama train` (`keras_recipes.cli`) and `recipes/llama_tiny.py`
take the same flags; both build them with `add_llama_train_arguments`. This
module imports neither TensorFlow nor Keras (nor `keras_recipes.llama`, whose
package does), so `keras-recipes --help` stays fast. The flags' defaults live
in `keras_recipes.llama.train.DEFAULTS` (and `QUICK` for `--quick`).
"""

from __future__ import annotations

import argparse

# (flag, type, help) of the training settings; each flag's key
# (`--seq-len` -> `seq_len`) is a key of `keras_recipes.llama.train.DEFAULTS`.
LLAMA_TRAIN_FLAGS = [
    ("--epochs", int, "passes over the training windows (at least 1)"),
    ("--seq-len", int, "tokens per training window (also the model's context)"),
    ("--batch-size", int, "windows per step"),
    ("--vocab-size", int, "SentencePiece vocabulary size"),
    ("--dim", int, "model width"),
    ("--n-layers", int, "transformer blocks"),
    ("--n-heads", int, "attention (query) heads"),
    ("--n-kv-heads", int, "key/value heads (grouped-query attention)"),
    ("--hidden-dim", int, "SwiGLU feed-forward width"),
    ("--dropout", float, "dropout rate while training"),
    ("--learning-rate", float, "peak AdamW learning rate"),
    ("--warmup-steps", int, "linear warm-up steps before the cosine decay"),
    ("--weight-decay", float, "AdamW decoupled weight decay"),
    ("--clipnorm", float, "clip the global gradient norm to this"),
    ("--backup-steps", int, "back up weights and optimizer state every this many steps"),
    ("--prompt", str, "text to continue at the end"),
    ("--max-new-tokens", int, "tokens to sample"),
    ("--temperature", float, "sampling temperature (0: greedy)"),
    ("--top-k", int, "sample among the k likeliest tokens"),
    ("--top-p", float, "sample from the smallest set of tokens with this much probability"),
    ("--seed", int, "random seed (weights, data order, dropout, sampling)"),
]

# keras_recipes.llama.distribute.STRATEGIES, spelled out so --help needs no TensorFlow.
LLAMA_TRAIN_STRATEGIES = ("default", "mirrored", "multi-worker")


def add_llama_train_arguments(
    parser: argparse.ArgumentParser, defaults: dict | None = None, quick: dict | None = None
) -> None:
    """The flags of `keras-recipes llama train` and `recipes/llama_tiny.py`.

    Size flags default to `None` (meaning: the run's defaults); pass the
    `defaults` and `quick` dicts to show their values in `--help`.
    """
    parser.add_argument("--quick", action="store_true", help="tiny sizes, under a minute")
    parser.add_argument("--out", default="runs/llama_tiny", help="output folder")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished run in --out (by default it is kept: the same settings find "
        "nothing to train, other settings are refused)",
    )
    parser.add_argument(
        "--corpus",
        nargs="+",
        metavar="PATH",
        help="text files or folders of .txt files, one document per line "
        "(default: gensim's Lee background corpus)",
    )
    for flag, type_, text in LLAMA_TRAIN_FLAGS:
        key = flag[2:].replace("-", "_")
        if defaults is not None and quick is not None:
            text += f" (default {defaults[key]}; --quick {quick[key]})"
        parser.add_argument(flag, type=type_, help=text)
    parser.add_argument(
        "--precision",
        choices=("auto", "float32", "mixed_bfloat16"),
        help="auto (default: mixed_bfloat16 where the CPU has AVX512-BF16 or AMX, float32 "
        "elsewhere), float32, or mixed_bfloat16: bfloat16 matrix products, float32 weights, "
        "faster on CPUs with AVX512-BF16/AMX, slower without; the saved model is "
        "float32",
    )
    parser.add_argument(
        "--strategy",
        choices=LLAMA_TRAIN_STRATEGIES,
        default="default",
        help="tf.distribute strategy: default (one process), mirrored (one replica per local "
        "GPU), multi-worker (the processes TF_CONFIG lists; run the same command in each). "
        "--batch-size is the global batch, split across replicas",
    )
