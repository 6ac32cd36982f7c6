"""recipes/ner.py: BiLSTM tagger, conlleval scores per merge mode, built-in corpus and CoNLL files."""

import pytest
from runs import help_text, read_metrics, run_recipe, run_recipes

# End-to-end runs: out of the fast suite, run by `pytest -m "heavy and not slow"` (.ci/run runs them).
pytestmark = pytest.mark.heavy

# IOB1, as the original CoNLL-2003 files: entities start with I-, B- only between neighbours.
CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O
to TO B-VP O
boycott VB I-VP O
British JJ B-NP I-MISC
lamb NN I-NP O
. . O O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER
met VBD B-VP O
John NNP B-NP I-PER
Smith NNP I-NP I-PER
Anna NNP I-NP B-PER
in IN B-PP O
Brussels NNP B-NP I-LOC
. . O O
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ner")
    conll = tmp / "conll2003"
    conll.mkdir()
    for name in ("eng.train", "eng.testa", "eng.testb"):
        (conll / name).write_text(CONLL * 3)
    builtin, from_conll, crf = tmp / "builtin", tmp / "conll", tmp / "crf"
    stdouts = run_recipes(
        "ner",
        ["--quick", "--out", str(builtin)],
        ["--quick", "--conll", str(conll), "--merge-modes", "sum", "--out", str(from_conll)],
        [
            "--quick", "--conll", str(conll), "--merge-modes", "concat", "--out", str(crf),
            "--char-encoder", "lstm", "--crf", "--lowercase", "--dropout", "0.2",
            "--lr-schedule", "linear", "--clipnorm", "5", "--epochs", "2",
            "--max-train-sentences", "6",
        ],
    )  # fmt: skip
    return builtin, from_conll, crf, stdouts


def check_scores(scores):
    overall = scores["overall"]
    for key in ("precision", "recall", "f1"):
        assert 0.0 <= overall[key] <= 1.0
    assert overall["correct"] <= min(overall["predicted"], overall["gold"])
    assert 0.0 <= scores["accuracy"] <= 1.0


def test_builtin_corpus_compares_all_four_merge_modes(runs):
    builtin, _, _, (stdout, _, _) = runs
    metrics = read_metrics(builtin)
    assert metrics["scheme"] == "bio"
    assert list(metrics["merge_modes"]) == ["concat", "sum", "mul", "ave"]
    for scores in metrics["merge_modes"].values():
        check_scores(scores)
        assert scores["overall"]["gold"] > 0
    # concat doubles the width the output layer reads: more parameters than sum/mul/ave
    params = {m: s["parameters"] for m, s in metrics["merge_modes"].items()}
    assert params["concat"] > params["sum"] == params["mul"] == params["ave"]
    assert "entity-level scores on the test set" in stdout


def test_conll_iob1_files_are_read_and_scored(runs):
    _, from_conll, _, _ = runs
    metrics = read_metrics(from_conll)
    assert metrics["scheme"] == "iob1"
    assert list(metrics["merge_modes"]) == ["sum"]
    scores = metrics["merge_modes"]["sum"]
    check_scores(scores)
    # 3 copies x 7 gold entities: ORG, MISC, MISC, PER, PER, PER, LOC
    assert scores["overall"]["gold"] == 21
    assert scores["per_type"]["PER"]["gold"] == 9


def test_char_encoder_and_crf_run_on_length_batches(runs):
    _, _, crf, (_, _, stdout) = runs
    metrics = read_metrics(crf)
    assert metrics["crf"] is True and metrics["char_encoder"] == "lstm"
    assert metrics["batch_by_length"] is True and metrics["max_train_sentences"] == 6
    scores = metrics["merge_modes"]["concat"]
    check_scores(scores)
    assert scores["overall"]["gold"] == 21  # the whole test file is still scored
    assert len(scores["valid_f1_per_epoch"]) == scores["epochs_run"] == 2
    # the kept tagger is the best epoch on the validation set
    assert metrics["valid_f1"] == pytest.approx(max(scores["valid_f1_per_epoch"]), abs=1e-4)
    for key in ("test_f1", "train_seconds", "load_average_start", "load_average_end"):
        assert key in metrics
    assert metrics["command"].startswith("python ") and "--crf" in metrics["command"]
    assert "valid F1" in stdout and "load average" in stdout


def test_help_lists_flags():
    text = help_text("ner")
    for flag in (
        "--quick", "--out", "--conll", "--merge-modes", "--epochs", "--char-encoder", "--crf",
        "--dropout", "--learning-rate", "--batch-by-length", "--max-train-sentences",
        "--max-train-minutes", "--lowercase", "--word-dropout",
    ):  # fmt: skip
        assert flag in text


def test_bad_flag_values_are_refused_before_training():
    result = run_recipe("ner", "--dropout", "1.5")
    assert result.returncode != 0 and "--dropout" in result.stderr
