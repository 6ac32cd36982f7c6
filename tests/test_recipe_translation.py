"""recipes/translation.py runs end to end with --quick, on the dates task and on a TSV file."""

import json

import pytest
from runs import help_text, run_recipe


def run_translation(*args):
    result = run_recipe("translation", *args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def check_scores(row, with_bleu):
    for decoding in ("greedy", "beam"):
        scores = row[decoding]
        assert 0.0 <= scores["exact_match"] <= 1.0
        assert 0.0 <= scores["char_accuracy"] <= 1.0
        assert ("bleu" in scores) == with_bleu


def test_quick_dates_run_writes_metrics_heatmap_and_model(tmp_path):
    stdout = run_translation("--quick", "--out", str(tmp_path))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["task"] == "dates" and metrics["test_pairs"] == 100
    for attention in ("bahdanau", "none"):
        check_scores(metrics[attention], with_bleu=False)
    assert (tmp_path / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "model.keras").stat().st_size > 0
    assert "bahdanau   greedy" in stdout and "none       beam" in stdout


@pytest.mark.slow  # a second full recipe start-up; BLEU itself is tested fast in test_seq2seq
def test_pairs_file_reports_bleu(tmp_path):
    words = ["one", "two", "three", "four", "five", "six"]
    french = ["un", "deux", "trois", "quatre", "cinq", "six"]
    lines = [
        f"{words[i].capitalize()} {words[j]}.\t{french[i].capitalize()} {french[j]}.\tCC-BY 2.0"
        for i in range(6)
        for j in range(6)
    ]
    pairs_file = tmp_path / "pairs.tsv"
    pairs_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    run_translation("--quick", "--pairs", str(pairs_file), "--epochs", "1", "--out", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "pairs.tsv"
    assert metrics["train_pairs"] + metrics["test_pairs"] == 36
    for attention in ("bahdanau", "none"):
        check_scores(metrics[attention], with_bleu=True)
        assert 0.0 <= metrics[attention]["greedy"]["bleu"] <= 1.0


def test_help_names_the_flags():
    usage = help_text("translation")
    for flag in ("--quick", "--out", "--epochs", "--pairs"):
        assert flag in usage
