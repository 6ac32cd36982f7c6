"""XLA's persistent compilation cache: on by default, keyed so a new process hits it, off by switch."""

import os
import subprocess
import sys
import textwrap

import pytest

from keras_recipes.xla_cache import DIRECTORY_FLAG, enable_xla_cache, xla_cache_directory

# A fresh process: optionally traces unrelated tf.functions first (as a
# training run would before sampling), then decodes greedily with the tiny
# preset and prints the ids.
GENERATE = textwrap.dedent(
    """
    import sys
    import keras_recipes
    import tensorflow as tf
    for i in range(int(sys.argv[1])):
        tf.function(lambda x, i=i: x * 2 + i)(tf.constant(1.0))
    import keras
    from keras_recipes.llama import build_llama
    keras.utils.set_random_seed(0)
    model = build_llama("tiny")
    print(model.generate([[1, 5, 9]], max_new_tokens=20)[0].tolist())
    """
)


def run_python(code, environ, *args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **environ}
    env.pop("TF_XLA_FLAGS", None)
    result = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


def test_default_folder_is_in_the_user_cache_and_names_the_machine(monkeypatch):
    monkeypatch.setenv("HOME", "/home/someone")
    folder = xla_cache_directory({})
    assert folder.startswith("/home/someone/.cache/keras-recipes/xla/")
    tensorflow_and_cpu = os.path.basename(folder)
    assert tensorflow_and_cpu == os.path.basename(xla_cache_directory({"XDG_CACHE_HOME": "/x"}))
    assert (
        xla_cache_directory({"XDG_CACHE_HOME": "/x"})
        == f"/x/keras-recipes/xla/{tensorflow_and_cpu}"
    )


@pytest.mark.parametrize("value", ["0", "off", "False", "no"])
def test_switched_off_leaves_tf_xla_flags_alone(value):
    environ = {"KERAS_RECIPES_XLA_CACHE": value, "TF_XLA_FLAGS": "--tf_xla_auto_jit=0"}
    assert enable_xla_cache(environ) is None
    assert environ["TF_XLA_FLAGS"] == "--tf_xla_auto_jit=0"


def test_a_cache_folder_the_user_chose_in_tf_xla_flags_is_kept():
    environ = {"TF_XLA_FLAGS": f"{DIRECTORY_FLAG}=/mine", "KERAS_RECIPES_XLA_CACHE": "/other"}
    assert enable_xla_cache(environ) == "/mine"
    assert environ["TF_XLA_FLAGS"] == f"{DIRECTORY_FLAG}=/mine"


def test_importing_the_package_turns_it_on_and_the_switch_turns_it_off(tmp_path):
    show = "import os, keras_recipes; print(os.environ.get('TF_XLA_FLAGS'))"
    folder = tmp_path / "xla"
    assert (
        run_python(show, {"KERAS_RECIPES_XLA_CACHE": str(folder)}) == f"{DIRECTORY_FLAG}={folder}"
    )
    assert run_python(show, {"KERAS_RECIPES_XLA_CACHE": "0"}) == "None"


@pytest.mark.slow  # two fresh TensorFlow processes: ~15 s of CPU, a minute on a loaded machine
def test_a_second_process_loads_what_the_first_compiled(tmp_path):
    folder = tmp_path / "xla"
    environ = {"KERAS_RECIPES_XLA_CACHE": str(folder)}
    first = run_python(GENERATE, environ, "0")
    written = sorted(os.listdir(folder))
    assert written  # the prefill and the decode loop
    # Other functions traced first shift TensorFlow's function names; the
    # cache must still hit: nothing new is compiled, and the ids are the same.
    second = run_python(GENERATE, environ, "7")
    assert sorted(os.listdir(folder)) == written
    assert second == first


def test_xla_flags_get_their_own_folder():
    # XLA_FLAGS change the compiled code but not TensorFlow's cache keys.
    plain = xla_cache_directory({"XDG_CACHE_HOME": "/x"})
    tuned = xla_cache_directory({"XDG_CACHE_HOME": "/x", "XLA_FLAGS": "--xla_cpu_use_onednn=true"})
    assert plain != tuned


def test_a_folder_that_cannot_be_written_turns_the_cache_off_with_a_warning():
    # TensorFlow would fail every compiled call that tries to save there.
    environ = {"KERAS_RECIPES_XLA_CACHE": "/proc/no-such-folder/xla"}
    with pytest.warns(RuntimeWarning, match="cannot write.*KERAS_RECIPES_XLA_CACHE"):
        assert enable_xla_cache(environ) is None
    assert "TF_XLA_FLAGS" not in environ
