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


def _peaky_llama(seed: int = 3, **overrides):
    """A tiny LLaMA whose logits are well apart, so no argmax is decided by rounding."""
    import keras

    from keras_recipes.llama import LlamaConfig, build_llama

    keras.utils.set_random_seed(seed)
    model = build_llama(LlamaConfig.preset("tiny", **overrides))
    scale = model.norm.scale  # larger logits, same ranking: argmax margins grow
    scale.assign(scale.numpy() * 6.0)
    return model


@pytest.fixture(scope="session")
def peaky_llama():
    """The factory `peaky_llama(seed=3, **LlamaConfig overrides)` of well-separated tiny LLaMAs."""
    return _peaky_llama
