"""A finished `llama train` run: what it writes works as printed, and it is never trained over."""

import contextlib
import io
import json
import shlex
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from runs import run_recipe

from keras_recipes import cli
from keras_recipes.causal_lm.losses import LanguageModelLoss
from keras_recipes.llama import LlamaConfig, build_llama, load_checkpoint
from keras_recipes.llama.train import RUN_FILES, check_finished_run


def cli_main(*argv: str) -> tuple[int, str, str]:
    """`keras-recipes ARGV` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """`keras-recipes llama train --quick --out DIR`: the folder and what it printed."""
    out = tmp_path_factory.mktemp("run") / "llama quick"  # a space, to test the quoting
    code, printed, errors = cli_main("llama", "train", "--quick", "--out", str(out))
    assert code == 0, printed + errors
    return out, printed


def printed_command(printed: str, prefix: str = "Generate more: ") -> str:
    (line,) = [line for line in printed.splitlines() if line.startswith(prefix)]
    return line[len(prefix) :]


def test_model_keras_holds_the_model_without_training_state(quick_run):
    out, _ = quick_run
    with zipfile.ZipFile(out / "model.keras") as archive:
        config = json.loads(archive.read("config.json"))
    assert config["class_name"] == "LlamaModel"
    assert not config.get("compile_config")  # no loss to locate, no optimizer state
    assert "LanguageModelLoss" not in json.dumps(config)


def test_model_keras_files_load_in_a_fresh_process(quick_run, tmp_path):
    out, _ = quick_run
    # A file written before training saved uncompiled models holds the loss.
    compiled = build_llama(LlamaConfig.preset("tiny", vocab_size=64, max_seq_len=16))
    compiled.compile(optimizer="adam", loss=LanguageModelLoss())
    compiled.save(tmp_path / "compiled.keras")
    code = (
        "import sys, keras_recipes, keras\n"
        "for path in sys.argv[1:]:\n"
        "    model = keras.models.load_model(path)\n"
        "    print(type(model).__name__, model.compiled)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(out / "model.keras"), str(tmp_path / "compiled.keras")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:2] == ["LlamaModel False", "LlamaModel True"]


def test_printed_generate_command_runs_as_printed(quick_run):
    out, printed = quick_run
    assert f"Saved the model, tokenizer and metrics in {out}" in printed
    command = printed_command(printed)
    words = shlex.split(command)
    assert words[:3] == ["keras-recipes", "llama", "generate"]
    assert words[words.index("--checkpoint") + 1] == str(out / "model.keras")
    # The console script is this interpreter's `python -m keras_recipes.cli`.
    done = subprocess.run(
        [sys.executable, "-m", "keras_recipes.cli", *words[1:]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("The fire") and "tokens/s" in done.stderr


def test_convert_and_export_take_the_trained_model_keras(quick_run, tmp_path):
    out, _ = quick_run
    checkpoint = str(out / "model.keras")
    code, printed, errors = cli_main("llama", "convert", checkpoint, str(tmp_path / "m.bin"))
    assert code == 0, errors
    ids = np.array([[1, 5, 9, 2]], "int32")
    np.testing.assert_allclose(
        np.asarray(load_checkpoint(tmp_path / "m.bin")(ids)),
        np.asarray(keras.models.load_model(checkpoint)(ids)),
        atol=1e-5,
    )
    saved = tmp_path / "saved_models" / "llama_quick"
    code, printed, errors = cli_main("export", "--checkpoint", checkpoint, "--out", str(saved))
    assert code == 0, errors
    assert (saved / "1" / "saved_model.pb").is_file()
    assert f'-v "{saved.resolve()}:/models/llama_quick" -e MODEL_NAME=llama_quick' in printed
    tflite = tmp_path / "llama_quick.tflite"
    code, printed, errors = cli_main(
        "export", "--checkpoint", checkpoint, "--format", "tflite", "--out", str(tflite)
    )
    assert code == 0, errors
    assert tflite.is_file() and f"Wrote {tflite}" in printed


def test_the_same_settings_on_a_finished_run_train_nothing(quick_run):
    out, _ = quick_run
    before = {name: (out / name).stat().st_mtime_ns for name in ("model.keras", "metrics.json")}
    code, printed, errors = cli_main("llama", "train", "--quick", "--out", str(out))
    assert code == 0, errors
    assert "already holds a finished run with these settings: nothing to train" in printed
    assert "--overwrite" in printed and "--out" in printed
    assert printed_command(printed) == printed_command(quick_run[1])
    assert {name: (out / name).stat().st_mtime_ns for name in before} == before


def test_other_settings_on_a_finished_run_are_refused_naming_out_and_overwrite(quick_run):
    out, _ = quick_run
    before = (out / "model.keras").stat().st_mtime_ns
    code, printed, errors = cli_main("llama", "train", "--quick", "--dim", "48", "--out", str(out))
    assert code == 2
    assert "dim: 32 then, 48 now" in errors
    assert "--out" in errors and "--overwrite" in errors
    assert (out / "model.keras").stat().st_mtime_ns == before
    # The recipe (README's main job) refuses the same way, before any work.
    done = run_recipe("llama_tiny", "--quick", "--dim", "48", "--out", str(out))
    assert done.returncode == 1 and "--overwrite" in done.stderr, done.stderr[-2000:]


def test_overwrite_deletes_the_run_but_not_its_exports(tmp_path):
    for name in RUN_FILES:
        (tmp_path / name).write_text("x")
    (tmp_path / "saved_models").mkdir()
    settings = {"dim": 32}
    assert check_finished_run(tmp_path, {"dim": 48}, overwrite=True) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_models"]
    assert check_finished_run(tmp_path, settings) is None  # nothing there: train


def test_a_worker_prints_the_folder_it_wrote(monkeypatch):
    from keras_recipes.llama import train

    def fake_train_llama(out, **kwargs):
        return {"sample": "x", "out": f"{out}/worker-1", "already_trained": False}

    monkeypatch.setattr(train, "train_llama", fake_train_llama)
    code, printed, _ = cli_main("llama", "train", "--strategy", "multi-worker", "--out", "runs/x")
    assert code == 0
    assert "Saved the model, tokenizer and metrics in runs/x/worker-1" in printed
    assert "--checkpoint runs/x/worker-1/model.keras" in printed
