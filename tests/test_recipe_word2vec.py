"""recipes/word2vec.py: runs with --quick, compares with gensim, writes its outputs."""

import json

import pytest
from runs import run_recipe

# End-to-end runs: out of the fast suite, run by `pytest -m "heavy and not slow"` (.ci/run runs them).
pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("word2vec")
    result = run_recipe("word2vec", "--quick", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


def test_quick_run_compares_with_gensim_and_writes_metrics(quick_run):
    out, stdout = quick_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["quick"] is True and metrics["corpus_words"] == 40000
    assert metrics["settings"]["sg"] == 1 and metrics["settings"]["epochs"] == 2
    for name in ("keras_recipes", "gensim"):
        row = metrics["models"][name]
        assert row["words_per_second"] > 0 and 0.0 <= row["analogy_accuracy"] <= 1.0
        assert f"{row['words_per_second']:,.0f}" in stdout
    ratio = (
        metrics["models"]["keras_recipes"]["words_per_second"]
        / metrics["models"]["gensim"]["words_per_second"]
    )
    assert metrics["speed_ratio"] == pytest.approx(ratio)
    assert "speed ratio (ours / gensim)" in stdout


def test_quick_run_writes_a_plot_and_gensim_readable_vectors(quick_run):
    out, _ = quick_run
    assert (out / "pca.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from gensim.models import KeyedVectors

    vectors = KeyedVectors.load_word2vec_format(str(out / "vectors.bin"), binary=True)
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(vectors) == metrics["vocabulary"] and vectors.vector_size == 100


def test_help_and_bad_arguments():
    result = run_recipe("word2vec", "--help")
    assert result.returncode == 0 and "--corpus" in result.stdout and "--sg" in result.stdout
    result = run_recipe("word2vec", "--corpus", "/no/such/file.txt")
    assert result.returncode == 2 and "no such file" in result.stderr
