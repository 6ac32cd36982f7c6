"""recipes/sentiment.py: the notes' encoder vs BiLSTM classifiers on Pang-Lee, aclImdb and SST-2."""

import pytest
from runs import help_text, read_metrics, run_recipes

# End-to-end runs: out of the fast suite, run by `pytest -m "heavy and not slow"` (.ci/run runs them).
pytestmark = pytest.mark.heavy

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
    sst2 = tmp / "SST-2"
    sst2.mkdir()
    # GLUE's column order in train.tsv, the other one in dev.tsv: both are read by the header.
    train = ["sentence\tlabel"]
    for i in range(6):
        for label, words in (
            (1, "a warm , witty and wonderful film"),
            (0, "a dull , tedious and awful mess"),
        ):
            train += [f"{words} number {i} .\t{label}", f"{words.split()[-2]}\t{label}"]
    (sst2 / "train.tsv").write_text("\n".join(train) + "\n")
    dev = ["label\tsentence", "1\ta wonderful film", "0\ta tedious mess", "1\twitty and warm"]
    (sst2 / "dev.tsv").write_text("\n".join(dev) + "\n")
    builtin, from_imdb, from_sst2 = tmp / "builtin", tmp / "imdb", tmp / "sst2"
    stdouts = run_recipes(
        "sentiment",
        ["--quick", "--out", str(builtin)],
        ["--quick", "--imdb", str(imdb), "--out", str(from_imdb)],
        ["--quick", "--sst2", str(sst2), "--word2vec", "--out", str(from_sst2)],
    )
    return builtin, from_imdb, from_sst2, stdouts


def check_models(metrics, num_test):
    assert set(metrics["models"]) == set(MODELS)
    for result in metrics["models"].values():
        confusion = result["confusion"]
        assert sum(map(sum, confusion)) == num_test
        assert result["accuracy"] == pytest.approx((confusion[0][0] + confusion[1][1]) / num_test)


def test_builtin_polarity_one_fold_of_five(runs):
    builtin, _, _, (stdout, _, _) = runs
    metrics = read_metrics(builtin)
    assert metrics["task"] == "pang_lee_polarity" and metrics["splits"] == 1
    check_models(metrics, num_test=40)  # 200 sentences / 5 folds
    assert "confusion [[TN FP] [FN TP]]" in stdout


def test_imdb_folder_trains_on_train_and_tests_on_test(runs):
    _, from_imdb, _, _ = runs
    metrics = read_metrics(from_imdb)
    assert metrics["task"] == "aclImdb"
    check_models(metrics, num_test=12)
    for result in metrics["models"].values():  # 6 negatives, 6 positives in test
        assert sum(result["confusion"][0]) == 6 and sum(result["confusion"][1]) == 6
    assert metrics["mask"] is True


def test_sst2_trains_on_train_holds_out_sentences_and_tests_on_dev(runs):
    _, _, from_sst2, (_, _, stdout) = runs
    metrics = read_metrics(from_sst2)
    assert metrics["task"] == "sst2" and metrics["mask"] is True
    assert metrics["validation_sentences"] == 2
    assert "2 validation sentences held out of train" in stdout
    assert metrics["word2vec"]["missing"] == 0  # vectors trained on the same texts
    assert "--sst2" in metrics["command"] and metrics["wall_seconds"] > 0
    check_models(metrics, num_test=3)
    for result in metrics["models"].values():
        assert len(result["validation_accuracy"]) == metrics["epochs"]
        assert sum(result["confusion"][0]) == 1 and sum(result["confusion"][1]) == 2


def test_help_lists_flags():
    text = help_text("sentiment")
    flags = ("--quick", "--out", "--imdb", "--max-per-class", "--folds", "--sst2", "--no-mask")
    for flag in (*flags, "--models", "--word2vec", "--val-sentences"):
        assert flag in text
