"""Training never loses a finished run, resumes exactly, and refuses bad input in one line.

Interruptions are injected where they hurt: a `KeyboardInterrupt` mid-epoch
(`InterruptAfterSteps`), Ctrl-C between saving the model and deleting the
backup, and a real training process killed with SIGKILL while it writes
`model.keras`. Every run is tiny (12 documents, `QUICK` sizes).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile

import keras
import numpy as np
import pytest

from keras_recipes import cli
from keras_recipes.llama import train
from keras_recipes.llama.backup import read_backup
from keras_recipes.llama.train import InterruptAfterSteps, resume_hint, train_llama

STEPS_PER_EPOCH = 12  # 12 Lee documents at QUICK sizes
# Dropout on, backups every 5 steps: an interrupt at step 17 falls between backups.
RUN = dict(quick=True, verbose=0, epochs=2, dropout=0.2, backup_steps=5, max_new_tokens=4)


@pytest.fixture(scope="module")
def uninterrupted(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    metrics = train_llama(out, corpus=[corpus], **RUN)
    return out, metrics


def weights_of(out):
    return keras.models.load_model(out / "model.keras").get_weights()


def test_two_uninterrupted_runs_end_at_the_same_weights(corpus, uninterrupted, tmp_path):
    out, metrics = uninterrupted
    again = train_llama(tmp_path, corpus=[corpus], **RUN)
    assert again["final_val_loss"] == metrics["final_val_loss"]
    for a, b in zip(weights_of(tmp_path), weights_of(out), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_run_interrupted_mid_epoch_with_dropout_resumes_to_the_same_weights(
    corpus, uninterrupted, tmp_path
):
    reference_out, reference = uninterrupted
    with pytest.raises(KeyboardInterrupt):
        train_llama(tmp_path, corpus=[corpus], callbacks=[InterruptAfterSteps(17)], **RUN)
    # Ctrl-C backs up the step it stopped at (epoch 2, step 5), not the last
    # periodic backup, and says so.
    state = read_backup(tmp_path / "backup")
    assert (state["epoch"], state["batch"]) == (1, 17 - STEPS_PER_EPOCH)
    assert "epoch 2, step 5: run the same command again to resume" in resume_hint(tmp_path)
    assert not (tmp_path / "model.keras").exists()

    resumed = train_llama(tmp_path, corpus=[corpus], **RUN)
    assert (resumed["resumed_from_epoch"], resumed["resumed_from_step"]) == (1, 5)
    worst = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(weights_of(tmp_path), weights_of(reference_out), strict=True)
    )
    assert worst <= 1e-6, f"weights differ by up to {worst}"
    assert resumed["final_val_loss"] == pytest.approx(reference["final_val_loss"], abs=1e-6)
    # The resumed epoch's training loss covers all its steps, not the 7 it re-ran.
    for got, want in zip(resumed["epochs"], reference["epochs"], strict=True):
        assert got["loss"] == pytest.approx(want["loss"], abs=1e-5)
    assert not (tmp_path / "backup").exists()


def test_ctrl_c_after_the_model_is_saved_leaves_it_and_a_rerun_resumes_to_it(
    corpus, monkeypatch, tmp_path
):
    run = dict(RUN, epochs=1)

    rmtree = train.shutil.rmtree

    def interrupted_rmtree(path, *args, **kwargs):
        if path == tmp_path / "backup":
            raise KeyboardInterrupt("between the save and deleting the backup")
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(train.shutil, "rmtree", interrupted_rmtree)
    with pytest.raises(KeyboardInterrupt):
        train_llama(tmp_path, corpus=[corpus], **run)
    monkeypatch.undo()
    assert zipfile.is_zipfile(tmp_path / "model.keras") and (tmp_path / "backup").is_dir()
    saved = weights_of(tmp_path)
    again = train_llama(tmp_path, corpus=[corpus], **run)  # resumes with no step left
    assert not again["already_trained"] and again["resumed_from_epoch"] == 1
    assert again["final_val_loss"] is not None and again["sample"]
    for a, b in zip(weights_of(tmp_path), saved, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "backup").exists()
    assert train_llama(tmp_path, corpus=[corpus], **run)["already_trained"]


KILL_DURING_SAVE = textwrap.dedent(
    """
    import os, signal, sys
    import keras
    from keras_recipes.llama.train import train_llama

    save = keras.Model.save

    def save_half_then_die(self, path, *args, **kwargs):
        save(self, path, *args, **kwargs)
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
        print("killed while writing", path, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    keras.Model.save = save_half_then_die
    train_llama(sys.argv[1], corpus=[sys.argv[2]], quick=True, verbose=0, epochs=1,
                backup_steps=5, max_new_tokens=4)
    """
)


def test_a_process_killed_while_saving_the_model_leaves_no_partial_file_and_resumes(
    corpus, tmp_path
):
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-c", KILL_DURING_SAVE, str(out), str(corpus)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr[-3000:]
    assert "killed while writing" in done.stdout
    # Nothing half-written where a tool reads: no model.keras, no metrics.json.
    assert not (out / "model.keras").exists() and not (out / "metrics.json").exists()
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".model.keras.")]
    assert len(leftovers) == 1 and leftovers[0].endswith(".partial.keras")
    assert read_backup(out / "backup")["epoch"] == 1  # the finished training, kept

    code, printed, errors = run_cli(
        "llama",
        "train",
        "--quick",
        "--epochs",
        "1",
        "--backup-steps",
        "5",
        "--max-new-tokens",
        "4",
        "--corpus",
        str(corpus),
        "--out",
        str(out),
    )
    assert code == 0, errors
    assert zipfile.is_zipfile(out / "model.keras") and not (out / "backup").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".model.keras.")]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == 1 and metrics["sample"]


def run_cli(*argv):
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--epochs", "0"], "--epochs must be an int >= 1; got 0."),
        (["--backup-steps", "0"], "--backup-steps must be an int >= 1; got 0."),
    ],
)
def test_zero_epochs_or_backup_steps_are_refused_in_one_line(tmp_path, flags, message):
    code, _, errors = run_cli("llama", "train", "--quick", *flags, "--out", str(tmp_path))
    assert code == 2
    assert errors.strip() == f"keras-recipes llama train: {message}"
    assert not os.listdir(tmp_path)


def test_an_out_path_that_is_a_file_is_refused_in_one_line(tmp_path):
    (tmp_path / "run").write_text("notes")
    code, _, errors = run_cli("llama", "train", "--quick", "--out", str(tmp_path / "run"))
    assert code == 2
    assert errors.strip().endswith("is a file; give a folder for the run (made if needed).")
    assert (tmp_path / "run").read_text() == "notes"


def test_a_damaged_backup_is_one_line_naming_the_file_and_the_way_out(corpus, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train_llama(tmp_path, corpus=[corpus], callbacks=[InterruptAfterSteps(6)], **RUN)
    weights = tmp_path / "backup" / read_backup(tmp_path / "backup")["weights"]
    weights.write_bytes(weights.read_bytes()[:1000])
    argv = ["llama", "train", "--quick", "--epochs", "2", "--dropout", "0.2"]
    argv += ["--backup-steps", "5", "--max-new-tokens", "4", "--corpus", str(corpus)]
    code, _, errors = run_cli(*argv, "--out", str(tmp_path))
    assert code == 2
    assert len(errors.strip().splitlines()) == 1
    assert f"{weights} cannot be read" in errors and "Delete" in errors
    assert "--overwrite" in errors
