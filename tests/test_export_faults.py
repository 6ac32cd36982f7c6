"""Exports killed half-way (SIGKILL of a real process) leave nothing where TF Serving or LiteRT reads."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from keras_recipes._io import stale_partials
from keras_recipes.export import export_saved_model
from keras_recipes.llama import LlamaConfig, build_llama

# Exports a tiny LLaMA; the verification step (after every file is written)
# signals the test by creating MARKER, then hangs until the test kills it.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from keras_recipes.llama import LlamaConfig, build_llama
    import keras_recipes.export.saved_model as saved_model
    import keras_recipes.export.tflite.convert as tflite  # export_tflite looks verify_tflite up here

    kind, out, marker = sys.argv[1:]

    def hang(*args, **kwargs):
        Path(marker).write_text("verifying")
        time.sleep(600)

    saved_model.check_saved_model = hang
    tflite.verify_tflite = hang
    model = build_llama(LlamaConfig.preset("tiny", vocab_size=64, max_seq_len=32))
    if kind == "saved_model":
        saved_model.export_saved_model(model, out)
    else:
        tflite.export_tflite(model, out, overwrite=True)
    """
)


def start_and_kill_when_verifying(kind: str, out, marker):
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, kind, str(out), str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    return process


def wait_and_kill(process, marker, timeout=240):
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None:
            pytest.fail(
                f"the exporting process ended early:\n{process.stderr.read().decode()[-3000:]}"
            )
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the exporting process never reached verification")
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """One SavedModel export and one TFLite export, each killed while verifying."""
    root = tmp_path_factory.mktemp("killed")
    tflite_path = root / "llama.tflite"
    tflite_path.write_bytes(b"the previous good file")
    runs = [
        ("saved_model", root / "saved_models" / "llama", root / "sm.marker"),
        ("tflite", tflite_path, root / "tfl.marker"),
    ]
    processes = [start_and_kill_when_verifying(kind, out, marker) for kind, out, marker in runs]
    for process, (_, _, marker) in zip(processes, runs, strict=True):
        wait_and_kill(process, marker)
    return root


def test_killed_saved_model_export_leaves_no_version_folder(killed):
    base = killed / "saved_models" / "llama"
    names = sorted(p.name for p in base.iterdir())
    assert not [n for n in names if n.isdigit()], names  # TF Serving sees no version
    assert len(names) == 1 and names[0].startswith(".partial-1-"), names


def test_next_export_removes_the_abandoned_partial_and_writes_version_1(killed):
    base = killed / "saved_models" / "llama"
    model = build_llama(LlamaConfig.preset("tiny", vocab_size=64, max_seq_len=32))
    path = export_saved_model(model, base, verify=False)
    assert path == base / "1"
    assert sorted(p.name for p in base.iterdir()) == ["1"]


def test_a_partial_of_a_live_export_is_left_alone(tmp_path):
    base = tmp_path / "m"
    from keras_recipes.export.saved_model import _partial_prefix, _remove_abandoned_partials

    live = base / f"{_partial_prefix(1)}-{os.getpid()}-0123abcd"
    live.mkdir(parents=True)
    _remove_abandoned_partials(base)
    assert live.is_dir()


def test_killed_tflite_export_keeps_the_previous_file(killed):
    path = killed / "llama.tflite"
    assert path.read_bytes() == b"the previous good file"
    leftovers = stale_partials(path)
    assert len(leftovers) == 1 and leftovers[0].name.endswith(".partial.tflite")
    assert np.frombuffer(leftovers[0].read_bytes()[4:8], np.uint8).tobytes() == b"TFL3"
