"""`benchmarks/llama_bench.py --llamacpp`: llama.cpp times the model we time, not another one.

Slow, and skipped with the reason unless llama.cpp's tools are in
`$LLAMA_CPP_BIN` (`llama-bench`, `llama-convert-llama2c-to-ggml`) and its
Python binding loads. The oracle: llama.cpp's own logits, from the GGUF the
benchmark's conversion wrote, against our Keras model's.
"""

import os
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_recipes.llama import LlamaConfig, build_llama

pytestmark = pytest.mark.slow
BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    folder = os.environ.get("LLAMA_CPP_BIN")
    if not folder:
        pytest.skip("llama.cpp's tools not found: set LLAMA_CPP_BIN to its build/bin folder")
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import llama_bench
    finally:
        sys.path.remove(str(BENCHMARKS))
    return llama_bench, llama_bench.llamacpp_tools(folder)


def test_the_converted_weights_give_our_logits_and_llama_bench_times_them(bench, tmp_path):
    llama_bench, tools = bench
    try:
        import llama_cpp
    except Exception as error:  # ImportError, or the binding's library missing
        pytest.skip(f"llama.cpp's Python binding is not usable ({error})")
    cfg = LlamaConfig(
        vocab_size=512, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=160,
        max_seq_len=64,
    )  # fmt: skip
    keras.utils.set_random_seed(3)
    model = build_llama(cfg)
    rng = np.random.default_rng(0)
    for variable in model.weights:  # weights large enough that the logits differ clearly
        if len(variable.shape) == 2:
            variable.assign(rng.normal(scale=0.1, size=variable.shape).astype("float32"))
    paths = llama_bench.llamacpp_models(model, tools, str(tmp_path))
    llm = llama_cpp.Llama(
        model_path=paths["f32"],
        n_ctx=32,
        n_threads=1,
        logits_all=True,
        type_k=llama_cpp.GGML_TYPE_F32,
        type_v=llama_cpp.GGML_TYPE_F32,
        verbose=False,
    )
    ids = [1, 5, 9, 300, 77, 500, 42, 8]
    llm.eval(ids)
    theirs = np.asarray(llm.scores[: len(ids)])
    ours = np.asarray(model(np.array([ids], np.int32)))[0]
    np.testing.assert_allclose(theirs, ours, atol=1e-3)
    rate = llama_bench.llamacpp_tokens_per_s(tools, paths["f32"], new=4)
    assert 0 < rate < float("inf")
