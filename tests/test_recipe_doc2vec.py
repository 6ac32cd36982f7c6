"""recipes/doc2vec.py: runs with --quick, compares with gensim, writes its outputs."""

import json

import pytest
from runs import run_recipe


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("doc2vec")
    result = run_recipe("doc2vec", "--quick", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


def test_quick_run_compares_with_gensim_and_writes_metrics(quick_run):
    out, stdout = quick_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["quick"] is True and metrics["documents"] == 100
    assert metrics["settings"]["dm"] == 1 and metrics["settings"]["epochs"] == 10
    for name in ("keras_recipes", "gensim"):
        row = metrics["models"][name]
        assert row["words_per_second"] > 0 and 0.0 <= row["self_similarity"] <= 1.0
        assert f"{row['words_per_second']:,.0f}" in stdout
    ratio = (
        metrics["models"]["keras_recipes"]["words_per_second"]
        / metrics["models"]["gensim"]["words_per_second"]
    )
    assert metrics["speed_ratio"] == pytest.approx(ratio)
    assert "speed ratio (ours / gensim)" in stdout
    # Learned: 24% of the 100 documents re-inferred are nearest their own
    # vector after the quick run's 10 epochs; after 1 epoch, 0%.
    assert metrics["models"]["keras_recipes"]["self_similarity"] >= 0.1
    assert "unseen_reinfer_cosine" in metrics


def test_quick_run_saves_a_model_that_loads(quick_run):
    out, _ = quick_run
    from keras_recipes.embeddings import Doc2Vec

    model = Doc2Vec.load(str(out / "doc2vec.model"))
    assert len(model.dv) == 100 and model.infer_vector(["police", "fire"]).shape == (50,)


def test_help_and_bad_arguments():
    result = run_recipe("doc2vec", "--help")
    assert result.returncode == 0 and "--corpus" in result.stdout and "--dm" in result.stdout
    result = run_recipe("doc2vec", "--corpus", "/no/such/file.txt")
    assert result.returncode == 2 and "no such file" in result.stderr
