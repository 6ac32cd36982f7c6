"""recipes/optimizers_compare.py: runs with --quick and writes its table, plot and metrics."""

import json
from pathlib import Path

import pytest
from runs import run_recipe

# End-to-end runs: out of the fast suite, run by `pytest -m "heavy and not slow"` (.ci/run runs them).
pytestmark = pytest.mark.heavy

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "optimizers_compare.py"
EVERY_KERAS_OPTIMIZER = {
    "SGD", "RMSprop", "Adam", "AdamW", "Adadelta", "Adagrad", "Adamax", "Adafactor",
    "Nadam", "Ftrl", "Lion", "Lamb", "Muon", "ScheduleFreeAdamW", "LossScaleOptimizer",
}  # fmt: skip


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("optimizers_compare")
    result = run_recipe("optimizers_compare", "--quick", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


def test_quick_run_writes_metrics_for_every_optimizer(quick_run):
    out, _ = quick_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["quick"] is True and metrics["epochs"] == 3
    runs = metrics["optimizers"]
    assert {r["optimizer"] for r in runs.values()} == EVERY_KERAS_OPTIMIZER
    for label, r in runs.items():
        assert len(r["loss_curve"]) == metrics["epochs"], label
        assert r["final_loss"] == r["loss_curve"][-1]
        assert 0.0 <= r["test_accuracy"] <= 1.0 and r["seconds_per_epoch"] > 0
    # Same data, weights and order: the gradient methods all start from the same loss
    # (ln 2 for a fresh 2-class softmax is about 0.69) and the adaptive ones improve on it.
    for label in (
        "Adam",
        "RMSprop",
        "SGD momentum",
        "Nadam (Keras 2 schedule)",
        "ScheduleFreeAdamW",
    ):
        assert runs[label]["loss_curve"][-1] < runs[label]["loss_curve"][0], label


def test_quick_run_compares_batch_minibatch_and_stochastic(quick_run):
    out, _ = quick_run
    metrics = json.loads((out / "metrics.json").read_text())
    variants = metrics["gradient_descent_variants"]
    train_rows = metrics["train_rows"]
    assert variants["batch"]["batch_size"] == train_rows
    assert variants["mini-batch"]["batch_size"] == metrics["mini_batch_size"] == 32
    assert variants["stochastic"]["batch_size"] == 1
    assert variants["stochastic"]["updates_per_epoch"] == train_rows
    assert variants["batch"]["updates_per_epoch"] == 1
    # More updates per epoch, more progress per epoch, with the same learning rate.
    losses = [variants[v]["final_loss"] for v in ("batch", "mini-batch", "stochastic")]
    assert losses[0] > losses[1] > losses[2]


def test_quick_run_writes_a_png_and_the_table(quick_run):
    out, stdout = quick_run
    png = (out / "loss_curves.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    table = (out / "table.md").read_text()
    assert "| optimizer | final loss |" in table and "ScheduleFreeAdamW" in table
    assert "| optimizer | final loss |" in stdout  # the table is printed too


def test_help_answers_without_training():
    result = run_recipe("optimizers_compare", "--help")
    assert result.returncode == 0
    for flag in ("--quick", "--out", "--epochs", "--data"):
        assert flag in result.stdout


def test_recipe_header_has_the_lines_the_cli_reads():
    from keras_recipes.cli import recipe_summaries

    summaries = dict(recipe_summaries(RECIPE.parent))
    assert "every Keras optimizer" in summaries["optimizers_compare.py"]
