"""recipes/vanishing_gradients.py: accuracy vs length, gradient norms per step, clipnorm run."""

import math

import pytest
from runs import help_text, read_metrics, run_recipes

# End-to-end runs: out of the fast suite, run by `pytest -m "heavy and not slow"` (.ci/run runs them).
pytestmark = pytest.mark.heavy


def test_quick_run_writes_accuracy_gradients_and_exploding_runs(tmp_path):
    (stdout,) = run_recipes("vanishing_gradients", ["--quick", "--out", str(tmp_path)])
    metrics = read_metrics(tmp_path)
    assert metrics["lengths"] == [5, 10]
    for cell in ("simple", "lstm", "gru"):
        assert len(metrics["accuracy"][cell]) == 2
        assert all(0.0 <= a <= 1.0 for a in metrics["accuracy"][cell])
        assert metrics["gradient_norm_first_over_last"][cell] > 0
    runs = metrics["exploding"]
    assert set(runs) == {"None", "1.0"}
    # same weights and data: the starting gradient is the same; clipping changes only the steps
    assert runs["None"]["initial_gradient_norm"] == runs["1.0"]["initial_gradient_norm"]
    assert all(math.isfinite(v) for v in runs["1.0"]["epoch_losses"])
    for name in ("accuracy_vs_length.png", "gradient_norms.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert "clipnorm=1.0" in stdout


def test_help_lists_flags():
    text = help_text("vanishing_gradients")
    for flag in ("--quick", "--out", "--lengths", "--epochs"):
        assert flag in text
