"""recipes/sentiment.py: the notes' encoder vs BiLSTM classifiers on Pang-Lee and an aclImdb folder."""

import pytest
from runs import help_text, read_metrics, run_recipes

MODELS = ("encoder (GlobalAveragePooling)", "decoder (BiLSTM)")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sentiment")
    imdb = tmp / "aclImdb"
    for split in ("train", "test"):
        for label, words in (("pos", "great wonderful fun"), ("neg", "awful boring dull")):
            folder = imdb / split / label
            folder.mkdir(parents=True)
            for i in range(6):
                (folder / f"{i}_8.txt").write_text(f"A {words} movie number {i}.<br /><br />Yes.")
    builtin, from_imdb = tmp / "builtin", tmp / "imdb"
    stdouts = run_recipes(
        "sentiment",
        ["--quick", "--out", str(builtin)],
        ["--quick", "--imdb", str(imdb), "--out", str(from_imdb)],
    )
    return builtin, from_imdb, stdouts


def check_models(metrics, num_test):
    assert set(metrics["models"]) == set(MODELS)
    for result in metrics["models"].values():
        confusion = result["confusion"]
        assert sum(map(sum, confusion)) == num_test
        assert result["accuracy"] == pytest.approx((confusion[0][0] + confusion[1][1]) / num_test)


def test_builtin_polarity_one_fold_of_five(runs):
    builtin, _, (stdout, _) = runs
    metrics = read_metrics(builtin)
    assert metrics["task"] == "pang_lee_polarity" and metrics["splits"] == 1
    check_models(metrics, num_test=40)  # 200 sentences / 5 folds
    assert "confusion [[TN FP] [FN TP]]" in stdout


def test_imdb_folder_trains_on_train_and_tests_on_test(runs):
    _, from_imdb, _ = runs
    metrics = read_metrics(from_imdb)
    assert metrics["task"] == "aclImdb"
    check_models(metrics, num_test=12)
    for result in metrics["models"].values():  # 6 negatives, 6 positives in test
        assert sum(result["confusion"][0]) == 6 and sum(result["confusion"][1]) == 6


def test_help_lists_flags():
    text = help_text("sentiment")
    for flag in ("--quick", "--out", "--imdb", "--max-per-class", "--folds"):
        assert flag in text
