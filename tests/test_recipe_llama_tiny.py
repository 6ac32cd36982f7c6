"""recipes/llama_tiny.py --quick: trains, samples, saves, and resumes after an interrupt."""

import json

import pytest
from runs import run_recipe

from keras_recipes.data import language_model_datasets, load_builtin_corpus
from keras_recipes.llama.train import INTERRUPT_ENV, QUICK
from keras_recipes.tokenizers import train_sentencepiece

# End-to-end runs: out of the fast suite, run by `pytest -m "heavy and not slow"` (.ci/run runs them).
pytestmark = pytest.mark.heavy


def quick_steps_per_epoch():
    documents = load_builtin_corpus(QUICK["corpus_name"])
    tokenizer = train_sentencepiece(documents, vocab_size=QUICK["vocab_size"])
    data = language_model_datasets(
        documents, tokenizer, QUICK["seq_len"], QUICK["batch_size"], QUICK["validation_split"]
    )
    return int(data.train.cardinality())


def test_quick_run_resumes_after_an_interrupt_instead_of_restarting(tmp_path):
    out = tmp_path / "run"
    steps = quick_steps_per_epoch()
    # First run: killed a few steps into epoch 2 of 2.
    first = run_recipe(
        "llama_tiny",
        "--quick",
        "--epochs",
        "2",
        "--out",
        str(out),
        env={INTERRUPT_ENV: str(steps + 3)},
    )
    assert first.returncode == 130, first.stdout + first.stderr
    # Ctrl-C backs up the step it stopped at, and says so.
    assert "holds epoch 2, step 3: run the same command again to resume" in first.stdout
    assert "\nepoch 1: " in first.stdout and "\nepoch 2: " not in first.stdout
    assert "━" not in first.stdout  # no progress bar when the output is not a terminal
    assert json.loads((out / "backup" / "training_metadata.json").read_text())["batch"] == 3
    assert [e["epoch"] for e in json.loads((out / "history.json").read_text())] == [1]
    assert not (out / "model.keras").exists()

    # Second run, same command: continues with epoch 2 only.
    second = run_recipe("llama_tiny", "--quick", "--epochs", "2", "--out", str(out))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Resuming from the backup" in second.stdout
    assert "\nepoch 2: " in second.stdout and "\nepoch 1: " not in second.stdout
    assert "val_perplexity" in second.stdout and "Sample:" in second.stdout

    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["resumed_from_epoch"], metrics["resumed_from_step"]) == (1, 3)
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert all(e["val_perplexity"] > 1 for e in metrics["epochs"])
    # The optimizer's step count came back with the weights: the schedule
    # ended at its floor (a tenth of the peak), not half-way down the cosine.
    final_lr = metrics["epochs"][-1]["learning_rate"]
    assert abs(final_lr - 0.1 * QUICK["learning_rate"]) < 1e-7, final_lr
    assert metrics["sample"].startswith(QUICK["prompt"]) and metrics["sample"] in second.stdout
    assert (out / "model.keras").is_file() and (out / "tokenizer.model").is_file()
    assert not (out / "backup").exists()
