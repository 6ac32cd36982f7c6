"""The TFLite, GGUF and LiteRT-LM writers refuse NaN weights, as every other writer does."""

import numpy as np
import pytest

from keras_recipes._finite import NonFiniteWeightsError
from keras_recipes.export import export_tflite
from keras_recipes.export.gguf import save_gguf
from keras_recipes.export.litertlm import export_litertlm
from keras_recipes.llama import LlamaConfig, build_llama


@pytest.fixture(scope="module")
def nan_llama():
    model = build_llama(LlamaConfig.preset("tiny", vocab_size=64, max_seq_len=32))
    model.norm.scale.assign(np.full(model.norm.scale.shape, np.nan, np.float32))
    return model


@pytest.mark.parametrize(
    "write, name",
    [
        (lambda model, path: export_tflite(model, path / "m.tflite"), "m.tflite"),
        (lambda model, path: save_gguf(model, path / "m.gguf", tokenizer=None), "m.gguf"),
        (
            lambda model, path: export_litertlm(model, path / "m.litertlm", tokenizer=None),
            "m.litertlm",
        ),
    ],
    ids=["export_tflite", "save_gguf", "export_litertlm"],
)
def test_nan_weights_are_refused_by_name_before_anything_is_written(
    nan_llama, tmp_path, write, name
):
    with pytest.raises(
        NonFiniteWeightsError, match=r"norm/scale holds NaN or Inf.*allow_nonfinite"
    ):
        write(nan_llama, tmp_path)
    assert list(tmp_path.iterdir()) == []
