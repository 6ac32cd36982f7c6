"""`import keras_recipes` alone makes every `.keras` file the package writes loadable."""

import subprocess
import sys

from keras_recipes.causal_lm.losses import LanguageModelLoss
from keras_recipes.datasets.dates import load_dates
from keras_recipes.llama import LlamaConfig, build_llama
from keras_recipes.seq2seq import Seq2Seq

LOAD = (
    "for path in sys.argv[1:]:\n"
    "    model = keras.models.load_model(path)\n"
    "    print(type(model).__name__, model.compiled)\n"
)


def run_python(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_import_keras_recipes_loads_neither_keras_nor_tensorflow():
    code = "import sys, keras_recipes; print('keras' in sys.modules, 'tensorflow' in sys.modules)"
    assert run_python(code).split() == ["False", "False"]


def test_compiled_llama_and_seq2seq_files_load_after_import_keras_recipes(tmp_path):
    llama = build_llama(LlamaConfig.preset("tiny", vocab_size=64, max_seq_len=16))
    llama.compile(optimizer="adam", loss=LanguageModelLoss())  # as training compiled it
    llama.save(tmp_path / "llama.keras")
    pairs, _ = load_dates(num_train=16, num_test=1)
    dates = Seq2Seq.from_pairs(pairs, units=8)
    x, y = dates.prepare(pairs)
    dates.compile(optimizer="adam")
    dates.fit(x, y, epochs=1, verbose=0)
    dates.save(tmp_path / "dates.keras")
    paths = [str(tmp_path / "llama.keras"), str(tmp_path / "dates.keras")]
    expected = ["LlamaModel True", "Seq2Seq True"]
    # keras_recipes first; TensorFlow's import probes for and loads Keras.
    printed = run_python("import sys, keras_recipes, tensorflow, keras\n" + LOAD, *paths)
    assert printed.splitlines() == expected
    # Keras first.
    printed = run_python("import sys, keras, keras_recipes\n" + LOAD, *paths)
    assert printed.splitlines() == expected


def test_importing_any_module_first_registers_without_a_half_initialized_import():
    # `import keras_recipes.activations` imports Keras half-way through; the
    # registration must wait for it instead of importing layers (which needs
    # activations) in the middle.
    for module in ("keras_recipes.activations", "keras_recipes.layers.rotary_embedding"):
        code = (
            f"import warnings; warnings.simplefilter('error')\n"
            f"import {module}, keras\n"
            "names = ['LlamaModel', 'Seq2Seq', 'RMSNorm', 'LanguageModelLoss']\n"
            "print(all(keras.saving.get_registered_object('keras_recipes>' + n) for n in names))"
        )
        assert run_python(code).split() == ["True"], module
