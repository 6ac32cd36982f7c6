"""Step-exact backups: `StepBackupAndRestore` and `read_backup`.

A run interrupted mid-epoch (Ctrl-C, a killed worker, a preempted machine)
resumes from its last backup without losing or repeating a step: the
backup holds the weights, the optimizer state, each dropout layer's random
state, the epoch, the step and the epoch's running loss. Under
`tf.distribute` every worker backs up into its own folder and the workers
check on restore that they hold the same step.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np

from keras_recipes import _compat
from keras_recipes.llama.distribute import _gather_ints, is_multi_worker


class StepBackupAndRestore(keras.callbacks.Callback):
    """Backs up training and resumes mid-epoch without losing or repeating steps.

    `keras.callbacks.BackupAndRestore` backs up every `save_freq` steps but
    restores only the epoch, so a run killed mid-epoch redoes that epoch's
    first steps on weights that already learned from them. This callback
    records the step too and, after a restart, passes over the steps
    already done: the training function consumes their batches without
    training on them, so the data stream lines up again. Use it with a
    training stream whose order depends only on the epoch
    (`keras_recipes.data.epoch_windows_dataset`), `fit(...,
    steps_per_epoch=...)`, and `fit(..., initial_epoch=backup.initial_epoch)`
    (the epoch the backup is in; `fit` starting anywhere else is refused).

    A backup holds everything the next step depends on, so a resumed run
    ends with the weights of an uninterrupted one, dropout included: the
    weights and optimizer state (a `.weights.h5` file), and in
    `training_metadata.json` the epoch, the step, the random state of every
    `keras.random.SeedGenerator` in the model (dropout's), and the running
    metrics of the epoch (so the epoch's reported training loss covers all
    its steps, not only those after the restart).

    Each backup is atomic: the weights go to a new file, then
    `training_metadata.json`, naming it, is replaced in one rename, so a
    kill at any moment leaves the previous backup or the new one, never a
    mix. Under a multi-worker strategy every worker keeps its own folder
    (`worker_dir`), and on restore the workers check that they hold the same
    step.

    Args:
        backup_dir: str or path. This run's own folder.
        save_freq: int or `"epoch"`. Back up every this many steps (and
            at every epoch's end), or only at epochs' ends. Defaults to
            `"epoch"`.
        strategy: the run's `tf.distribute.Strategy`, or `None`.
        delete_on_train_end: bool. Delete the folder when `fit` completes.
            Pass `False` to keep it until the trained model is saved
            (then call `delete()`), so that a kill between the two leaves
            something to resume from. Defaults to `True`.

    Examples:

    >>> import tempfile
    >>> scratch = tempfile.TemporaryDirectory()
    >>> backup = StepBackupAndRestore(f"{scratch.name}/backup", save_freq=20)
    >>> backup.initial_epoch  # no backup yet: start at epoch 0
    0
    >>> scratch.cleanup()

    Then `model.fit(stream, epochs=10, steps_per_epoch=steps,
    callbacks=[backup], initial_epoch=backup.initial_epoch)`; after a
    restart, the same lines resume where the last backup left off.
    """

    def __init__(
        self,
        backup_dir,
        save_freq: int | str = "epoch",
        strategy=None,
        delete_on_train_end: bool = True,
    ):
        if save_freq != "epoch" and (not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(
                f"`save_freq` must be 'epoch' or a positive number of steps; got {save_freq!r}."
            )
        if not str(backup_dir):
            raise ValueError("StepBackupAndRestore needs a `backup_dir`; got an empty one.")
        super().__init__()
        self.backup_dir = str(backup_dir)
        self.save_freq = save_freq
        self.strategy = strategy
        self.delete_on_train_end = delete_on_train_end
        self._epoch = 0
        self._steps_done = 0
        self._steps_since_save = 0
        self._skipping = 0  # steps passed over that this callback has not yet seen end
        self._restored = None  # the backup restored, until its epoch begins
        self._training = False
        self._last_saved = None

    @property
    def initial_epoch(self) -> int:
        """The epoch the backup in `backup_dir` is in (0 without one): `fit`'s `initial_epoch`."""
        state = read_backup(self.backup_dir)
        return state["epoch"] if state else 0

    def on_train_begin(self, logs=None):
        state = read_backup(self.backup_dir)
        step = (state["epoch"], state["batch"]) if state else (0, 0)
        self._check_workers_agree(step)
        self._restored, self._last_saved = state, step if state else None
        if state is None:
            self._training = True
            return
        if not self.model.built:
            raise ValueError("Build the model before fit() to restore it from a backup.")
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        weights = Path(self.backup_dir) / state["weights"]
        try:
            self.model.load_weights(weights)
        except Exception as error:  # h5py's OSError, Keras' ValueError on a foreign file
            raise ValueError(
                f"The backup {weights} cannot be read ({_first_line(error)}); it is damaged "
                f"or from another model. Delete {self.backup_dir} to start over (or pass "
                "--overwrite)."
            ) from None
        _assign_in_order(random_state_variables(self.model), state.get("random_state"), weights)
        self._epoch, self._steps_done = state["epoch"], state["batch"]
        self._skipping = state["batch"]
        _compat.skip_training_steps(self.model, state["batch"])
        self._training = True

    def _check_workers_agree(self, step):
        if self.strategy is None or not is_multi_worker(self.strategy):
            return
        if len(set(_gather_ints(self.strategy, step[0] * 2**31 + step[1]))) > 1:
            raise ValueError(
                f"The workers' backups hold different steps (this one: epoch {step[0]}, "
                f"step {step[1]}); one was killed while backing up. Delete the newer "
                f"backup folder(s) ({self.backup_dir} here) so all resume from the same step, "
                "or delete all of them to start over."
            )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._steps_done = epoch, 0
        if self._restored is None:
            return
        state, self._restored = self._restored, None
        if epoch != state["epoch"]:
            raise ValueError(
                f"fit started at epoch {epoch}, but the backup in {self.backup_dir} is in "
                f"epoch {state['epoch']}: pass fit(initial_epoch=backup.initial_epoch)."
            )
        # fit reset the metrics just before this; the backup's are the epoch's so far.
        _assign_in_order(self.model.metrics_variables, state.get("metrics"), self.backup_dir)

    def on_train_batch_end(self, batch, logs=None):
        self._steps_done = batch + 1
        if self._skipping:
            self._skipping -= 1
            return
        if self.save_freq != "epoch":
            self._steps_since_save += 1
            if self._steps_since_save >= self.save_freq:
                self._save_model()

    def on_epoch_end(self, epoch, logs=None):
        self._epoch, self._steps_done = epoch + 1, 0
        self._save_model()

    def on_train_end(self, logs=None):
        self._training = False
        if self.delete_on_train_end:
            self.delete()

    def delete(self) -> None:
        """Deletes the backup folder (once what it protected is saved elsewhere)."""
        if os.path.exists(self.backup_dir):
            shutil.rmtree(self.backup_dir)

    def _last_name(self) -> str | None:
        if self._last_saved is None:
            return None
        epoch, step = self._last_saved
        return f"epoch{epoch}-step{step}.weights.h5"

    def save_now(self) -> dict | None:
        """Backs up at the last step trained, e.g. after Ctrl-C; the backup's state, or `None`.

        The step comes from the optimizer's step count, which moves with the
        weights inside each training step, so an interrupt that lands between
        a step and its callbacks still gives a backup that resumes exactly.
        Nothing is written (and `None` comes back) outside `fit`'s training
        steps, under a multi-worker strategy (the other workers' state is
        unknown), or when the last backup already holds this step.
        """
        steps = (self.params or {}).get("steps")
        if not self._training or not steps or self.model.optimizer is None:
            return None
        if self.strategy is not None and is_multi_worker(self.strategy):
            return None
        done = int(self.model.optimizer.iterations) - self._epoch * steps
        if not 0 < done < steps or (self._epoch, done) == self._last_saved:
            return None  # validation (the metrics hold its loss now) or nothing new
        self._steps_done = done
        return self._save_model()

    def _save_model(self) -> dict:
        self._steps_since_save = 0
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch{self._epoch}-step{self._steps_done}.weights.h5"
        where = f"epoch {self._epoch + 1}, step {self._steps_done}"
        bad = [w.path for w in self.model.weights if not _finite(w)]
        if bad:
            raise FloatingPointError(
                f"the weights hold NaN or inf at {where} ({', '.join(bad[:3])}); not backed "
                f"up, so {folder} keeps the last good backup. Start over with --overwrite and "
                "a lower --learning-rate."
            )
        need = sum(int(np.prod(v.shape)) * 4 for v in self.model.variables)
        if self.model.optimizer is not None:
            need += sum(int(np.prod(v.shape)) * 4 for v in self.model.optimizer.variables)
        free = shutil.disk_usage(folder).free
        if free < need * 1.1 + (1 << 20):  # h5py may crash the process on a full disk
            raise OSError(
                errno.ENOSPC,
                f"No space left to back up at {where}: about {need / 2**20:.1f} MiB needed, "
                f"{free / 2**20:.1f} MiB free on the disk of {folder}. The last good backup is "
                "kept; free some space and rerun the same command to resume from it.",
            )
        try:
            self.model.save_weights(folder / name, overwrite=True)
        except OSError as error:
            if (folder / name).exists() and (folder / name).name != self._last_name():
                (folder / name).unlink()
            raise OSError(
                error.errno or errno.EIO,
                f"Cannot back up at {where} into {folder}: {error}. The last good backup is "
                "kept; free some space (or fix the folder) and rerun the same command to "
                "resume from it.",
            ) from error
        metadata = {
            "epoch": self._epoch,
            "batch": self._steps_done,
            "weights": name,
            "random_state": _values_by_path(random_state_variables(self.model)),
            "metrics": _values_by_path(self.model.metrics_variables) if self._steps_done else [],
        }
        partial = folder / "training_metadata.json.partial"
        try:
            partial.write_text(json.dumps(metadata))
            os.replace(partial, folder / "training_metadata.json")
        except OSError as error:
            partial.unlink(missing_ok=True)
            (folder / name).unlink(missing_ok=True)
            raise OSError(
                error.errno or errno.EIO,
                f"Cannot back up at {where} into {folder}: {error}. The last good backup is "
                "kept; free some space and rerun the same command to resume from it.",
            ) from error
        self._last_saved = (self._epoch, self._steps_done)
        for old in folder.glob("*.weights.h5"):
            if old.name != name:
                old.unlink()
        return metadata


def _finite(variable) -> bool:
    try:
        return bool(np.all(np.isfinite(keras.ops.convert_to_numpy(variable))))
    except TypeError:  # a dtype isfinite does not take: not a number to check
        return True


def random_state_variables(model: keras.Model) -> list:
    """The model's random state: every variable that is neither a weight nor a metric.

    These are the states of its `keras.random.SeedGenerator`s (one per
    dropout layer), which each training step advances; `save_weights`
    leaves them out, so a backup keeps them beside the weights.
    """
    weights = {id(w) for w in model.weights}
    return [v for v in model.non_trainable_variables if id(v) not in weights]


def _values_by_path(variables) -> list:
    return [[v.path, keras.ops.convert_to_numpy(v).tolist()] for v in variables]


def _assign_in_order(variables, saved, source) -> None:
    """Assigns `saved` (`_values_by_path`) to `variables`, matched by position.

    Paths carry Keras' automatic name counters (`seed_generator_19`), which
    differ between processes, so the order (fixed by the architecture) and
    the shapes are what must agree.
    """
    if not saved:
        return
    variables = list(variables)
    if len(variables) != len(saved) or any(
        tuple(v.shape) != np.shape(value) for v, (_, value) in zip(variables, saved, strict=True)
    ):
        raise ValueError(
            f"The backup {source} holds state for {len(saved)} variables "
            f"({', '.join(path for path, _ in saved[:3])}, ...) that do not fit this model's "
            f"{len(variables)}: it is from another model. Delete the backup folder to start over."
        )
    for variable, (_, value) in zip(variables, saved, strict=True):
        variable.assign(np.asarray(value, dtype=variable.dtype))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def read_backup(backup_dir: str | os.PathLike) -> dict | None:
    """`{"epoch", "batch", "weights"}` of the backup in `backup_dir`, or `None`.

    `epoch` is the epoch in progress (0-based) and `batch` the steps of it
    already trained; `weights` the file name of the weights in the folder.
    """
    path = Path(backup_dir) / "training_metadata.json"
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(
            f"The backup {path} cannot be read ({_first_line(error)}); it is damaged. "
            f"Delete {backup_dir} to start over (or pass --overwrite)."
        ) from None
    if (
        not isinstance(state, dict)
        or "weights" not in state
        or not (Path(backup_dir) / state["weights"]).is_file()
    ):
        raise ValueError(
            f"{path} is not a backup written by StepBackupAndRestore (or its weights file "
            f"is gone); delete {backup_dir} to start over."
        )
    return state
