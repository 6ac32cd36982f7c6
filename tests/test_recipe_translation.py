"""recipes/translation.py runs end to end with --quick, on the dates task and on an Anki pair file."""

import importlib.util
import json

from runs import help_text, run_recipe


def run_translation(*args):
    result = run_recipe("translation", *args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


# A --quick dates run reached 23-34% of target characters (greedy and beam, both
# attentions); the same run stopped after one step reached 5-11%.
LEARNED_CHAR_ACCURACY = 0.18


def check_scores(row, with_bleu, char_accuracy_floor=None):
    for decoding in ("greedy", "beam"):
        scores = row[decoding]
        assert {"exact_match", "char_accuracy"} <= set(scores)
        assert ("bleu" in scores) == with_bleu
        if char_accuracy_floor is not None:
            assert scores["char_accuracy"] >= char_accuracy_floor, (decoding, scores)


def test_quick_dates_run_writes_metrics_heatmap_and_model(tmp_path):
    stdout = run_translation("--quick", "--out", str(tmp_path))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["task"] == "dates" and metrics["test_pairs"] == 100
    for attention in ("bahdanau", "none"):
        check_scores(metrics[attention], with_bleu=False, char_accuracy_floor=LEARNED_CHAR_ACCURACY)
    assert (tmp_path / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "model.keras").stat().st_size > 0
    assert "bahdanau   greedy" in stdout and "none       beam" in stdout
    assert metrics["command"].endswith(f"--quick --out {tmp_path}")


def test_anki_pairs_file_reports_bleu_samples_and_conditions(tmp_path):
    """A tiny file in the Anki/Tatoeba format: 2 columns, and 3 with Tatoeba's attribution."""
    words = ["one", "two", "three", "four", "five", "six"]
    spanish = ["uno", "dos", "tres", "cuatro", "cinco", "seis"]
    attribution = "\tCC-BY 2.0 (France) Attribution: tatoeba.org #1 (CK) & #2 (Seael)"
    lines = [
        f"{words[i].capitalize()} {words[j]}.\t{spanish[i].capitalize()} {spanish[j]}."
        + (attribution if (i + j) % 2 else "")
        for i in range(6)
        for j in range(6)
    ]
    pairs_file = tmp_path / "spa.txt"
    pairs_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    stdout = run_translation(
        "--quick", "--pairs", str(pairs_file), "--attention", "bahdanau", "--epochs", "1",
        "--out", str(out),
    )  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "spa.txt"
    assert (metrics["train_pairs"], metrics["validation_pairs"], metrics["test_pairs"]) == (
        30,
        3,
        3,
    )
    assert "none" not in metrics
    row = metrics["bahdanau"]
    check_scores(row, with_bleu=True)
    assert ("sacrebleu" in row["greedy"]) == (importlib.util.find_spec("sacrebleu") is not None)
    assert row["length_penalty"] in (0.0, 0.6, 1.0)  # chosen on the validation pairs
    assert set(row["validation_bleu"]) == {"0.0", "0.6", "1.0", "greedy"}
    assert len(row["samples"]) == 3
    sources = {f"{w.capitalize()} {v}." for w in words for v in words}
    for sample in row["samples"]:
        assert sample["source"] in sources and set(sample) == {
            "source", "reference", "greedy", "beam",
        }  # fmt: skip
    assert "--pairs" in metrics["command"] and metrics["wall_seconds"] > 0
    assert len(metrics["load_average_start"]) == 3
    assert "(reference " in stdout


def test_help_names_the_flags():
    usage = help_text("translation")
    for flag in ("--quick", "--out", "--epochs", "--pairs", "--attention", "--max-train-minutes"):
        assert flag in usage
