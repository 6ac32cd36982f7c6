"""Runs recipes/*.py and the keras-recipes command in subprocesses, as a user would."""

import json
import os
import subprocess
import sys
from pathlib import Path

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def run_recipe(name: str, *args: str, env: dict | None = None, timeout: int = 600):
    """Runs `recipes/NAME.py ARGS` once; returns the finished process (text output).

    `env` adds to this process's environment (conftest.py already quiets
    TensorFlow and picks its backend there).
    """
    return subprocess.run(
        [sys.executable, str(RECIPES / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def run_cli(*args: str, timeout: int = 300):
    """Runs `python -m keras_recipes.cli ARGS`; returns the finished process (text output)."""
    return subprocess.run(
        [sys.executable, "-m", "keras_recipes.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_recipes(name: str, *runs: list[str], stdin: str | None = None) -> list[str]:
    """Runs `recipes/NAME.py` once per argument list, concurrently; returns each stdout.

    Fails the test with the tail of the output if any run exits non-zero.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    processes = [
        subprocess.Popen(
            [sys.executable, str(RECIPES / f"{name}.py"), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for args in runs
    ]
    outputs = []
    for args, process in zip(runs, processes, strict=True):
        stdout, stderr = process.communicate(input=stdin, timeout=600)
        assert process.returncode == 0, f"{name} {args}:\n{stdout[-2000:]}\n{stderr[-4000:]}"
        outputs.append(stdout)
    return outputs


def read_metrics(folder: Path) -> dict:
    return json.loads((Path(folder) / "metrics.json").read_text())


def help_text(name: str) -> str:
    """`--help` output; recipes parse their flags before TensorFlow loads, so this is fast."""
    result = subprocess.run(
        [sys.executable, str(RECIPES / f"{name}.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def train_tiny_llama(out: Path, corpus: Path) -> Path:
    """A tiny LLaMA trained to memorise `corpus` (about a minute): OUT/model.keras, OUT/tokenizer.model.

    Its logits are far apart on text like the corpus, so another runtime's
    greedy choices are decided by the model, not by rounding. The context
    (96) holds a prompt and 64 new tokens.
    """
    from keras_recipes.llama.train import train_llama

    train_llama(
        out,
        corpus=[str(corpus)],
        quick=True,
        seq_len=96,
        epochs=80,
        learning_rate=1e-2,
        dropout=0.0,
        verbose=0,
    )
    return Path(out)
