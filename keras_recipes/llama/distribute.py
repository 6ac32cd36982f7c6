"""Training on `tf.distribute`: strategies, batch splitting, sharding, backups.

TensorFlow's own engine does the work: `tf.distribute.MirroredStrategy` keeps
one replica of the model per local device (GPUs, or CPUs you split into
logical devices), `tf.distribute.MultiWorkerMirroredStrategy` one per
process, on one machine or many, wired together by the standard `TF_CONFIG`
environment variable. Every replica runs the same step on its slice of the
global batch; the gradients are summed by an all-reduce (gRPC ring
collectives on CPUs, NCCL on GPUs) so every replica applies the same update.

What this module adds around `model.fit`:

- `make_strategy`: a strategy from a name (`"default"`, `"mirrored"`,
  `"multi-worker"`), with `TF_CONFIG` checked first so a typo is an error
  that says what to fix, not a hang.
- `replica_batch_size`: the global batch split across replicas. The learning
  rate and every step count stay per global batch, so a run on 1, 2 or 8
  replicas with the same global batch takes the same steps.
- `shard_by_data`: `tf.data` auto-sharding by DATA: each global batch is cut
  into per-replica pieces and every worker takes its own piece.
- `prepare_for_strategy`: two Keras 3.15 gaps closed (see its docstring):
  `fit` under `MultiWorkerMirroredStrategy`, and gradient clipping on the
  summed gradients rather than on each replica's share.
- `StepBackupAndRestore`: a backup callback, in the manner of
  `keras.callbacks.BackupAndRestore`, that backs up every N steps and,
  after a restart, skips exactly the steps the backup already holds, so an
  interrupted run loses and repeats nothing.
- `worker_dir`, `is_chief`, `check_same_on_every_worker`: where each worker
  writes, and a cross-worker check that all of them hold the same thing
  (e.g. the tokenizer each trained).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from pathlib import Path

import keras
import numpy as np

from keras_recipes import _compat

STRATEGIES = ("default", "mirrored", "multi-worker")
TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
    '"task": {"type": "worker", "index": 0}}'
)


def read_tf_config(value: str | None = None) -> dict | None:
    """`TF_CONFIG` parsed and checked; `None` when it is not set.

    The format is TensorFlow's: a `cluster` mapping job names (`"worker"`,
    optionally `"chief"`) to lists of `"host:port"` addresses, and this
    process's `task` (`type` and `index` into that job's list). Every
    process gets the same `cluster` and its own `task`.

    Args:
        value: str or None. The JSON text; `None` reads the environment.

    Raises:
        ValueError: naming what is wrong (not JSON, no workers, an address
            without a port, a task outside the cluster).
    """
    value = os.environ.get("TF_CONFIG") if value is None else value
    if not value:
        return None
    try:
        config = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({error}); it should look like {TF_CONFIG_EXAMPLE}."
        ) from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster.get("worker") and not cluster.get("chief"):
        raise ValueError(
            f"TF_CONFIG needs a 'cluster' with a 'worker' list of host:port addresses; "
            f"got {value!r}. Example: {TF_CONFIG_EXAMPLE}"
        )
    for job, addresses in cluster.items():
        if job not in ("chief", "worker"):
            raise ValueError(
                f"TF_CONFIG cluster job {job!r} is not used by MultiWorkerMirroredStrategy; "
                "use 'worker' (and optionally one 'chief')."
            )
        if not isinstance(addresses, list) or not addresses:
            raise ValueError(f"TF_CONFIG cluster[{job!r}] must be a non-empty list of host:port.")
        for address in addresses:
            host, _, port = str(address).rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(
                    f"TF_CONFIG address {address!r} in cluster[{job!r}] is not host:port "
                    "(e.g. '10.0.0.2:12345')."
                )
    if len(cluster.get("chief", [])) > 1:
        raise ValueError("TF_CONFIG may name at most one 'chief'.")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise ValueError(
            f"TF_CONFIG 'task' must name this process's job, one of {sorted(cluster)}, "
            f"and its index; got task={task!r}."
        )
    index = task.get("index", 0)
    if not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise ValueError(
            f"TF_CONFIG task index {index!r} is outside cluster[{task['type']!r}], which has "
            f"{len(cluster[task['type']])} address(es); give each process its own index "
            "0, 1, ..."
        )
    return {"cluster": cluster, "task": {"type": task["type"], "index": index}}


def local_tf_configs(count: int) -> list[str]:
    """`TF_CONFIG` values for `count` worker processes on this machine.

    The workers listen on loopback ports that were free when this ran; give
    process `i` the `i`-th value. For trying multi-worker training (or
    measuring its all-reduce) on one machine:

    ```python
    for index, config in enumerate(local_tf_configs(2)):
        subprocess.Popen(["keras-recipes", "llama", "train", "--strategy", "multi-worker"],
                         env={**os.environ, "TF_CONFIG": config})
    ```
    """
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"local_tf_configs: count must be a positive int, got {count!r}.")
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        cluster = {"worker": [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]}
    finally:
        for s in sockets:
            s.close()
    return [
        json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        for index in range(count)
    ]


def make_strategy(name: str = "default", devices: list[str] | None = None):
    """A `tf.distribute.Strategy` from its name.

    Call it first thing in the program: `MultiWorkerMirroredStrategy` must
    be created before TensorFlow runs any op.

    Args:
        name: str. `"default"` (no distribution: the current default
            strategy), `"mirrored"` (`MirroredStrategy`: one replica per
            local GPU, or the CPU) or `"multi-worker"`
            (`MultiWorkerMirroredStrategy` over the processes `TF_CONFIG`
            lists; each one runs this same program). Defaults to
            `"default"`.
        devices: list of str or None. `"mirrored"` only: the devices to
            mirror on, e.g. `["/cpu:0", "/cpu:1"]`. Defaults to every GPU,
            or the CPU.

    Examples:

    ```python
    strategy = make_strategy("mirrored")
    with strategy.scope():
        model = build_llama(config)
        model.compile(...)
    ```
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose one of {list(STRATEGIES)}.")
    tf_config = read_tf_config()
    if name == "multi-worker":
        if tf_config is None:
            raise ValueError(
                "--strategy multi-worker needs TF_CONFIG, the cluster's addresses and this "
                f"process's place in it, e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}' (index 1 on "
                "the second machine). Run the same command on every machine."
            )
        if devices is not None:
            raise ValueError("`devices` is for the mirrored strategy only.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    workers = sum(len(v) for v in tf_config["cluster"].values()) if tf_config else 0
    if workers > 1:
        raise ValueError(
            f"TF_CONFIG describes a cluster of {workers} processes but the strategy is "
            f"{name!r}, so each process would train alone. Use --strategy multi-worker, "
            "or unset TF_CONFIG."
        )
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    if devices is not None:
        raise ValueError("`devices` is for the mirrored strategy only.")
    return tf.distribute.get_strategy()


def is_multi_worker(strategy) -> bool:
    """Whether `strategy` spans processes (`MultiWorkerMirroredStrategy`)."""
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy) -> bool:
    """True in the one process that writes the run's outputs.

    That is the `chief` task if `TF_CONFIG` has one, otherwise worker 0,
    and the only process of a single-process strategy.
    """
    if not is_multi_worker(strategy):
        return True
    config = read_tf_config()
    if "chief" in config["cluster"]:
        return config["task"]["type"] == "chief"
    return config["task"] == {"type": "worker", "index": 0}


def worker_dir(out: str | os.PathLike, strategy) -> Path:
    """Where this process writes: `out` for the chief, `out/worker-<i>` for the others.

    On one machine the workers share `out` without writing over each
    other's files; on several, every machine has its own folder and the
    chief's is the one with the model. Each worker keeps its own backup
    (weights are identical on every worker), so no shared file system is
    needed to resume.
    """
    out = Path(out)
    if is_chief(strategy):
        return out
    task = read_tf_config()["task"]
    return out / f"{task['type']}-{task['index']}"


def replica_batch_size(global_batch_size: int, strategy) -> int:
    """The examples each replica gets from a global batch.

    The global batch is what a step trains on, summed over replicas; the
    learning rate, warm-up and step counts refer to it, so they do not change
    with the number of replicas.

    Raises:
        ValueError: if the global batch does not split evenly (the
            replicas' gradient shares would then be weighted wrongly).
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"The global batch of {global_batch_size} does not split evenly over "
            f"{replicas} replicas; use a --batch-size that is a multiple of {replicas}."
        )
    return global_batch_size // replicas


def shard_by_data(dataset):
    """`dataset` with `tf.data` auto-sharding by DATA.

    Under a multi-worker strategy every global batch is rebatched into one
    piece per replica and each worker keeps only its pieces, so together
    the workers train on exactly the batches one process would. (Sharding
    by FILE needs at least as many files as workers; DATA works on any
    pipeline, including in-memory token streams.)
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def check_same_on_every_worker(strategy, value: bytes, what: str) -> None:
    """Raises unless every worker passes the same bytes (compared by hash).

    Args:
        strategy: the run's strategy; single-process strategies return at once.
        value: bytes. What must agree, e.g. the tokenizer's serialized model.
        what: str. Its name, for the error.
    """
    if not is_multi_worker(strategy):
        return
    digest = int.from_bytes(hashlib.sha256(value).digest()[:6], "big")
    if len(set(_gather_ints(strategy, digest))) > 1:
        raise ValueError(
            f"The workers hold different {what}s, so their replicas would not be the same "
            "model. Give every worker the same data and settings (and the same versions "
            "of the libraries)."
        )


def _gather_ints(strategy, value: int) -> list[int]:
    """Every replica's `value`, on every worker (a collective: all must call it)."""
    import tensorflow as tf

    @tf.function  # collectives run eagerly are slow, and TensorFlow warns about it
    def gather():
        local = strategy.run(lambda: tf.constant([value], tf.int64))
        return strategy.gather(local, axis=0)

    return [int(v) for v in gather().numpy()]


def prepare_for_strategy(model: keras.Model, strategy) -> keras.Model:
    """Readies a model compiled under `strategy.scope()` for `fit` under it.

    Builds the optimizer's variables in the strategy's scope, then closes
    two gaps of Keras 3.15's TensorFlow trainer:

    1. With more than one replica, Keras clips each replica's share of the
       gradient before the all-reduce, so `global_clipnorm` (and `clipnorm`,
       `clipvalue`) act on the wrong norm and runs on 1 and N replicas
       differ whenever clipping bites. Here clipping moves after the
       all-reduce, onto the summed gradient, as in one process.
    2. Under `MultiWorkerMirroredStrategy`, `fit` fails before the first
       step (`strategy.reduce` on the whole data batch while building) and
       then on every step (a `MEAN` reduction over axis 0 of scalar logs:
       "Invalid reduction dimension 0 for input with 0 dimensions",
       tensorflow/tensorflow#72388). The model is detached from the strategy
       it was built in, so call `fit`/`evaluate` inside
       `with strategy.scope():`, and its train/test steps return logs of
       shape `(1,)`, which that reduction turns back into scalars.

    Returns:
        The same model.
    """
    with strategy.scope():
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    if strategy.num_replicas_in_sync > 1:
        _compat.clip_after_all_reduce(model.optimizer)
    if is_multi_worker(strategy):
        from keras import ops

        _compat.detach_from_strategy(model)  # fit uses the strategy in scope instead
        train_step, test_step = model.train_step, model.test_step
        model.train_step = lambda data: {
            k: ops.reshape(v, (1,)) for k, v in train_step(data).items()
        }
        model.test_step = lambda data: {k: ops.reshape(v, (1,)) for k, v in test_step(data).items()}
    return model


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

    ```python
    backup = StepBackupAndRestore("runs/x/backup", save_freq=20)
    model.fit(stream, epochs=10, steps_per_epoch=steps, callbacks=[backup],
              initial_epoch=backup.initial_epoch)
    ```
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
        self.model.save_weights(folder / name, overwrite=True)
        metadata = {
            "epoch": self._epoch,
            "batch": self._steps_done,
            "weights": name,
            "random_state": _values_by_path(random_state_variables(self.model)),
            "metrics": _values_by_path(self.model.metrics_variables) if self._steps_done else [],
        }
        partial = folder / "training_metadata.json.partial"
        partial.write_text(json.dumps(metadata))
        os.replace(partial, folder / "training_metadata.json")
        self._last_saved = (self._epoch, self._steps_done)
        for old in folder.glob("*.weights.h5"):
            if old.name != name:
                old.unlink()
        return metadata


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
