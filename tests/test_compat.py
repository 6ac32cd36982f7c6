"""keras_recipes._compat (private Keras/TF uses, the versions they were written for)
and quiet_tensorflow's off switch."""

import os
import re
import subprocess
import sys
import warnings

import keras
import pytest
import tensorflow as tf

from keras_recipes import _compat, quiet_tensorflow


def test_the_running_keras_and_tensorflow_are_the_versions_compat_was_written_for():
    report = _compat.checked_versions()
    assert report["keras"] == {
        "running": keras.__version__,
        "written_for": "3.15.x",
        "supported": True,
    }
    assert report["tensorflow"] == {
        "running": tf.__version__,
        "written_for": "2.21.x",
        "supported": True,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _compat.warn_if_unsupported() is True


def test_other_versions_warn_and_do_not_raise():
    report = {
        "keras": {"running": "3.16.0", "written_for": "3.15.x", "supported": False},
        "tensorflow": {"running": "2.21.3", "written_for": "2.21.x", "supported": True},
    }
    with pytest.warns(RuntimeWarning, match=r"keras 3\.16\.0 \(written for 3\.15\.x\)"):
        assert _compat.warn_if_unsupported(report) is False


@pytest.mark.parametrize(
    ("version", "expected"),
    [("3.15.1", (3, 15)), ("2.21.0rc1", (2, 21)), ("3.150.0", (3, 150)), ("nightly", None)],
)
def test_versions_are_compared_by_major_and_minor(version, expected):
    assert _compat._major_minor(version) == expected


def test_the_package_reaches_private_apis_only_through_compat():
    package = os.path.dirname(os.path.dirname(os.path.abspath(_compat.__file__)))
    private = re.compile(r"keras\.src|tensorflow\.python|tensorflow\.lite\.(python|tools)")
    offenders = []
    for folder, _, files in os.walk(os.path.join(package, "keras_recipes")):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".py") and path != _compat.__file__:
                with open(path, encoding="utf-8") as f:
                    offenders += [
                        f"{path}:{i}" for i, line in enumerate(f, 1) if private.search(line)
                    ]
    assert offenders == []


QUIETED = "import keras_recipes; keras_recipes.quiet_tensorflow(); "
START_UP = "import tensorflow; tensorflow.config.list_physical_devices()"


def start_up_stderr(script, **env_update):
    """TensorFlow's start-up stderr in a fresh process, digits (times, ids) masked."""
    drop = ("TF_CPP_MIN_LOG_LEVEL", "KERAS_RECIPES_VERBOSE_TF")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, **env_update},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return sorted(re.sub(r"\d+", "N", line) for line in result.stderr.splitlines())


@pytest.mark.heavy  # a fresh interpreter that imports TensorFlow twice
def test_keras_recipes_verbose_tf_1_leaves_stderr_to_tensorflow():
    plain = start_up_stderr(START_UP)  # no quiet_tensorflow at all: the oracle
    if not plain:
        pytest.skip("TensorFlow prints nothing at start-up on this machine")
    assert start_up_stderr(QUIETED + START_UP) == []
    assert start_up_stderr(QUIETED + START_UP, KERAS_RECIPES_VERBOSE_TF="1") == plain


def test_keras_recipes_verbose_tf_leaves_the_log_level_alone(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv("KERAS_RECIPES_VERBOSE_TF", "1")
    quiet_tensorflow()
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
