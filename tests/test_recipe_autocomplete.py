"""recipes/autocomplete.py: word-level LSTM/GRU language models, perplexity, top-k, --interactive."""

import pytest
from runs import help_text, read_metrics, run_recipes

# End-to-end runs: out of the fast suite, run by `pytest -m "heavy and not slow"` (.ci/run runs them).
pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("autocomplete")
    corpus = tmp / "stories.txt"
    lines = [f"the cat sat on the mat number {i} . the dog ran to the park ." for i in range(60)]
    corpus.write_text("\n".join(lines) + "\n")
    builtin, from_corpus = tmp / "builtin", tmp / "corpus"
    stdouts = run_recipes(
        "autocomplete",
        ["--quick", "--out", str(builtin)],
        [
            "--quick",
            "--corpus",
            str(corpus),
            "--cells",
            "gru",
            "--top-k",
            "3",
            "--interactive",
            "--out",
            str(from_corpus),
        ],
        stdin="the cat sat\n\n",
    )
    return builtin, from_corpus, stdouts


def test_builtin_corpus_perplexity_for_both_cells(runs):
    builtin, _, (stdout, _) = runs
    metrics = read_metrics(builtin)
    assert metrics["task"] == "lee_background"
    for cell in ("lstm", "gru"):
        # untrained-ish but learning: below the vocabulary size, above 1
        assert 1.0 < metrics[cell]["perplexity"] < metrics["vocabulary"] * 1.5
    assert len(metrics["suggestions"]["in the"]) == 5
    assert "top-5 next words" in stdout


def test_corpus_file_and_interactive_prefixes(runs):
    _, from_corpus, (_, stdout) = runs
    metrics = read_metrics(from_corpus)
    assert metrics["task"] == "stories.txt" and "lstm" not in metrics
    words = [w for w, _ in metrics["suggestions"]["in the"]]
    assert len(words) == 3 and "<unk>" not in words and "<pad>" not in words
    assert "'the cat sat' -> " in stdout


def test_help_lists_flags():
    text = help_text("autocomplete")
    for flag in ("--quick", "--out", "--corpus", "--interactive", "--prefix", "--top-k"):
        assert flag in text
