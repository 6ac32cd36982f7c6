"""recipes/time_series.py: the notes' LSTM(1)/GRU(1) forecasters, built-in series and a CSV column."""

import pytest
from runs import help_text, read_metrics, run_recipes

# End-to-end runs: out of the fast suite, run by `pytest -m "heavy and not slow"` (.ci/run runs them).
pytestmark = pytest.mark.heavy

MODELS = ("LSTM(1), window 50", "GRU(1), window 20", "LSTM(32)+LSTM(1), window 50")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("time_series")
    csv_file = tmp / "sales.csv"
    rows = [f"2000-{i:03d},{100 + i + 10 * (i % 12 == 0)}" for i in range(120)]
    csv_file.write_text("month,sales\n" + "\n".join(rows) + "\n")
    builtin, from_csv = tmp / "builtin", tmp / "csv"
    stdouts = run_recipes(
        "time_series",
        ["--quick", "--out", str(builtin)],
        ["--quick", "--csv", str(csv_file), "--season", "12", "--out", str(from_csv)],
    )
    return builtin, from_csv, stdouts


def test_builtin_series_report_model_and_baseline_mse(runs):
    builtin, _, (stdout, _) = runs
    metrics = read_metrics(builtin)
    assert set(metrics["series"]) == {"noisy_sine", "seasonal"}
    for row in metrics["series"].values():
        for column in ("naive", "seasonal_naive", *MODELS):
            assert row[column] >= 0.0
    # the sine's season is its period (50), so seasonal naive only sees noise: about 2 * 0.1**2
    assert metrics["series"]["noisy_sine"]["seasonal_naive"] == pytest.approx(0.02, rel=0.35)
    assert (builtin / "forecast.png").read_bytes()[:4] == b"\x89PNG"
    assert "test MSE (one step ahead)" in stdout


def test_csv_column_is_forecast_with_its_baselines(runs):
    _, from_csv, _ = runs
    row = read_metrics(from_csv)["series"]["sales.csv:sales"]
    # the last 24 values rise by 1 a step except a +10 jump every 12: naive error is exact
    jumps = [i for i in range(96, 120) if i % 12 == 0 or (i - 1) % 12 == 0]
    assert len(jumps) == 4
    assert row["naive"] == pytest.approx((20 * 1 + 2 * 11**2 + 2 * 9**2) / 24)
    assert row["seasonal_naive"] == pytest.approx(12**2)
    assert all(row[m] >= 0 for m in MODELS)


def test_help_lists_flags():
    text = help_text("time_series")
    for flag in ("--quick", "--out", "--csv", "--column", "--epochs"):
        assert flag in text
