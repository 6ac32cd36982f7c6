import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Twelve of gensim's Lee news articles as a text file: the training runs' tiny corpus."""
    from keras_recipes.data import load_builtin_corpus

    path = tmp_path_factory.mktemp("corpus") / "news.txt"
    path.write_text("\n".join(load_builtin_corpus("lee")[:12]) + "\n")
    return path
