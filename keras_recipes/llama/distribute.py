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
- (`StepBackupAndRestore`, the step-exact backup callback that works
  under these strategies, is in `keras_recipes.llama.backup`.)
- `worker_dir`, `is_chief`, `check_same_on_every_worker`: where each worker
  writes, and a cross-worker check that all of them hold the same thing
  (e.g. the tokenizer each trained).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import keras

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
    measuring its all-reduce) on one machine, start one process per value,
    e.g. `subprocess.Popen(["keras-recipes", "llama", "train", "--strategy",
    "multi-worker"], env={**os.environ, "TF_CONFIG": config})`.

    Examples:

    >>> configs = [json.loads(config) for config in local_tf_configs(2)]
    >>> [config["task"] for config in configs]
    [{'type': 'worker', 'index': 0}, {'type': 'worker', 'index': 1}]
    >>> configs[0]["cluster"] == configs[1]["cluster"], len(configs[0]["cluster"]["worker"])
    (True, 2)
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

    >>> strategy = make_strategy("mirrored", devices=["/cpu:0"])  # default: every GPU
    >>> strategy.num_replicas_in_sync
    1
    >>> with strategy.scope():  # build and compile inside, e.g. build_llama(config)
    ...     model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    ...     model.compile(optimizer="adamw", loss="mse")
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
