"""LLaMA training on tf.distribute: TF_CONFIG, batch splitting, step-exact backups,
and two worker processes on loopback that must end where one process ends.

Every subprocess has a timeout and is killed in a `finally`; workers listen on
127.0.0.1 only. The kill-and-restart test is `@pytest.mark.slow` (about a
minute here): `pytest -m slow tests/test_distribute.py`.
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from keras_recipes.data import (
    epoch_windows_dataset,
    steps_per_epoch,
    windows_dataset,
)
from keras_recipes.llama import LlamaConfig, build_llama
from keras_recipes.llama.backup import StepBackupAndRestore, read_backup
from keras_recipes.llama.distribute import (
    STRATEGIES,
    local_tf_configs,
    make_strategy,
    read_tf_config,
    replica_batch_size,
)
from keras_recipes.llama.train import InterruptAfterSteps, train_llama
from keras_recipes.train_flags import LLAMA_TRAIN_STRATEGIES

# End-to-end runs: out of the fast suite, run by `pytest -m "heavy and not slow"` (.ci/run runs them).
pytestmark = pytest.mark.heavy

# The settings of every end-to-end run: tiny, no dropout, clipping that bites
# (so the clip-after-all-reduce fix is exercised), backups every 2 steps, and
# float32 on every CPU (`precision="auto"` trains in mixed bfloat16 where the
# CPU has AVX512-BF16/AMX, and bfloat16 sums in another order across two
# replicas than in one process: weights then differ by ~4e-4, not <= 1e-5).
RUN_FLAGS = dict(epochs=2, dropout=0.0, clipnorm=0.01, backup_steps=2, precision="float32")
PROCESS_TIMEOUT = 240


def cli_flags(corpus, out):
    flags = ["--quick", "--corpus", str(corpus), "--out", str(out)]
    for key, value in RUN_FLAGS.items():
        flags += [f"--{key.replace('_', '-')}", str(value)]
    return flags


@pytest.fixture(scope="module")
def single_process_run(corpus, tmp_path_factory):
    """The oracle: one process, no distribution, the same global batch and seed."""
    out = tmp_path_factory.mktemp("single")
    metrics = train_llama(
        out, corpus=[str(corpus)], quick=True, verbose=0, strategy="default", **RUN_FLAGS
    )
    return out, metrics


def weights_of(path):
    return keras.models.load_model(path).get_weights()


def assert_same_weights(a, b, atol=1e-5):
    assert len(a) == len(b)
    worst = max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))
    assert worst <= atol, f"weights differ by up to {worst}"


# ---------------------------------------------------------------- TF_CONFIG


def tf_config(workers=2, index=0, **task):
    cluster = {"worker": [f"127.0.0.1:{20000 + i}" for i in range(workers)]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index, **task}})


def test_tf_config_is_parsed_into_cluster_and_task():
    config = read_tf_config(tf_config(index=1))
    assert config["cluster"]["worker"] == ["127.0.0.1:20000", "127.0.0.1:20001"]
    assert config["task"] == {"type": "worker", "index": 1}
    assert read_tf_config("") is None


@pytest.mark.parametrize(
    "value, message",
    [
        ("{not json", "not valid JSON"),
        ('{"cluster": {}, "task": {"type": "worker", "index": 0}}', "'worker' list"),
        ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker"}}', "host:port"),
        ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "'worker' list"),
        (
            '{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker"}}',
            "not used",
        ),
        (tf_config(index=2), "outside cluster"),
        (tf_config(type="chief"), "must name this process's job"),
    ],
)
def test_bad_tf_config_is_a_clear_error(value, message):
    with pytest.raises(ValueError, match=message):
        read_tf_config(value)


def test_local_tf_configs_give_each_process_its_task_on_free_ports():
    configs = [read_tf_config(value) for value in local_tf_configs(3)]
    workers = configs[0]["cluster"]["worker"]
    assert all(c["cluster"]["worker"] == workers for c in configs)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert len(set(workers)) == 3 and all(w.startswith("127.0.0.1:") for w in workers)
    with pytest.raises(ValueError, match="positive"):
        local_tf_configs(0)


def test_multi_worker_without_tf_config_says_how_to_set_it(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs TF_CONFIG"):
        make_strategy("multi-worker")


def test_a_cluster_tf_config_with_a_single_process_strategy_is_refused(monkeypatch):
    # Otherwise each process of the cluster would train its own model unawares.
    monkeypatch.setenv("TF_CONFIG", tf_config())
    with pytest.raises(ValueError, match="--strategy multi-worker"):
        make_strategy("default")


def test_unknown_strategy_names_the_choices():
    with pytest.raises(ValueError, match="mirrored"):
        make_strategy("horovod")
    assert tuple(LLAMA_TRAIN_STRATEGIES) == STRATEGIES  # the CLI's copy of the names


def test_global_batch_splits_evenly_across_replicas_or_is_refused():
    two = SimpleNamespace(num_replicas_in_sync=2)
    assert replica_batch_size(8, two) == 4
    with pytest.raises(ValueError, match="multiple of 2"):
        replica_batch_size(7, two)


# ------------------------------------------------------------ data streams


def test_epoch_stream_has_the_windows_datasets_steps_and_a_new_order_each_epoch():
    tokens = np.arange(1000, dtype=np.int32)
    steps = steps_per_epoch(len(tokens), 8, 4)
    assert steps == int(windows_dataset(tokens, 8, 4, drop_remainder=True).cardinality())
    batches = [x.numpy() for x, _ in epoch_windows_dataset(tokens, 8, 4, epochs=2, seed=3)]
    assert len(batches) == 2 * steps
    firsts = [np.concatenate(batches[i * steps : (i + 1) * steps])[:, 0] for i in (0, 1)]
    assert all(len(set(f)) == steps * 4 and set(f) <= set(range(0, 992, 8)) for f in firsts)
    assert not np.array_equal(firsts[0], firsts[1])


def test_a_stream_resumed_at_an_epoch_is_the_tail_of_the_whole_stream():
    tokens = np.random.default_rng(0).integers(0, 50, 700).astype(np.int32)
    whole = [x.numpy() for x, _ in epoch_windows_dataset(tokens, 8, 4, epochs=3, seed=1)]
    tail = [
        x.numpy() for x, _ in epoch_windows_dataset(tokens, 8, 4, epochs=3, first_epoch=1, seed=1)
    ]
    steps = steps_per_epoch(len(tokens), 8, 4)
    assert len(tail) == 2 * steps
    assert all(np.array_equal(a, b) for a, b in zip(whole[steps:], tail, strict=True))


# ------------------------------------------------- step-exact BackupAndRestore


def tiny_fit(backup_dir, epochs=2, interrupt_after=None, pass_initial_epoch=True):
    keras.utils.set_random_seed(0)
    tokens = np.random.default_rng(0).integers(0, 32, 600).astype(np.int32)
    model = build_llama(
        LlamaConfig(vocab_size=32, dim=16, n_layers=1, n_heads=2, n_kv_heads=1, hidden_dim=32)
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-2, global_clipnorm=0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    backup = StepBackupAndRestore(backup_dir, save_freq=3)
    stream = epoch_windows_dataset(tokens, 8, 4, epochs=epochs, first_epoch=backup.initial_epoch)
    callbacks = [backup] + ([InterruptAfterSteps(interrupt_after)] if interrupt_after else [])
    model.fit(
        stream,
        epochs=epochs,
        initial_epoch=backup.initial_epoch if pass_initial_epoch else 0,
        steps_per_epoch=steps_per_epoch(len(tokens), 8, 4),
        callbacks=callbacks,
        verbose=0,
        shuffle=False,
    )
    return model


def test_backup_resumes_mid_epoch_without_losing_or_repeating_a_step(tmp_path):
    reference = tiny_fit(tmp_path / "reference").get_weights()
    steps = steps_per_epoch(600, 8, 4)  # 18
    backup_dir = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        tiny_fit(backup_dir, interrupt_after=steps + 8)  # killed in epoch 2, step 8
    state = read_backup(backup_dir)
    assert (state["epoch"], state["batch"]) == (1, 6)  # backups at steps 3 and 6 of epoch 2
    assert StepBackupAndRestore(backup_dir).initial_epoch == 1
    resumed = tiny_fit(backup_dir)
    assert int(resumed.optimizer.iterations) == 2 * steps
    assert_same_weights(resumed.get_weights(), reference, atol=1e-6)
    assert not backup_dir.exists()  # removed once training completed
    # Nothing stays behind on the model: a later fit starts where it is told.
    history = resumed.fit(
        epoch_windows_dataset(np.zeros(600, np.int32), 8, 4, epochs=1),
        epochs=1,
        steps_per_epoch=2,
        verbose=0,
        shuffle=False,
    )
    assert len(history.epoch) == 1


def test_fit_not_started_at_the_backups_epoch_is_refused(tmp_path):
    steps = steps_per_epoch(600, 8, 4)
    with pytest.raises(KeyboardInterrupt):
        tiny_fit(tmp_path, interrupt_after=steps + 8)
    with pytest.raises(ValueError, match=r"fit started at epoch 0.*initial_epoch"):
        tiny_fit(tmp_path, pass_initial_epoch=False)


def test_a_damaged_backup_is_one_clear_error_naming_the_file(tmp_path):
    steps = steps_per_epoch(600, 8, 4)
    with pytest.raises(KeyboardInterrupt):
        tiny_fit(tmp_path, interrupt_after=steps + 8)
    weights = tmp_path / read_backup(tmp_path)["weights"]
    weights.write_bytes(weights.read_bytes()[:500])  # truncated, as by a full disk
    with pytest.raises(ValueError, match=r"epoch1-step6.weights.h5 cannot be read.*Delete") as e:
        tiny_fit(tmp_path)
    assert "\n" not in str(e.value)
    (tmp_path / "training_metadata.json").write_text('{"epoch": 1, "ba')
    with pytest.raises(ValueError, match=r"training_metadata.json cannot be read.*Delete"):
        read_backup(tmp_path)


def test_a_backup_from_another_callback_is_refused_with_a_fix(tmp_path):
    (tmp_path / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    with pytest.raises(ValueError, match="delete"):
        read_backup(tmp_path)


# --------------------------------------- replicas: clipping the summed gradient

MIRRORED_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from keras_recipes.llama import LlamaConfig, build_llama
    from keras_recipes.llama.distribute import make_strategy, prepare_for_strategy, shard_by_data

    def train(strategy, fix):
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x, y = (rng.integers(0, 32, (32, 8)).astype("int32") for _ in range(2))
        with strategy.scope():
            model = build_llama(LlamaConfig(vocab_size=32, dim=16, n_layers=1, n_heads=2,
                                            n_kv_heads=1, hidden_dim=32, max_seq_len=8))
            model.compile(optimizer=keras.optimizers.AdamW(1e-2, global_clipnorm=0.05),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        if fix:
            prepare_for_strategy(model, strategy)
        data = shard_by_data(tf.data.Dataset.from_tensor_slices((x, y)).batch(8))
        with strategy.scope():
            model.fit(data, epochs=2, verbose=0, shuffle=False)
        return model.get_weights()

    one = train(make_strategy("default"), fix=True)
    two = make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    assert two.num_replicas_in_sync == 2
    for fix in (True, False):
        diff = max(float(np.abs(a - b).max()) for a, b in zip(one, train(two, fix)))
        print(f"fix={fix} diff={diff}")
    """
)


def test_two_replicas_clip_the_summed_gradient_like_one_process():
    # Logical devices must be set before TensorFlow starts: a fresh process.
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        env={k: v for k, v in os.environ.items() if k != "TF_CONFIG"},
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    diffs = dict(re.findall(r"^fix=(\w+) diff=(\S+)$", result.stdout, re.MULTILINE))
    diffs = {fix: float(diff) for fix, diff in diffs.items()}
    assert diffs["True"] < 1e-5  # clipped after the all-reduce: as one process
    assert diffs["False"] > 1e-3  # Keras' per-replica clipping: a different run


# ---------------------------------------- two worker processes on loopback


def pin_to_core(core):
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > core:
        return lambda: os.sched_setaffinity(0, {core})
    return None


# A worker that is interrupted: what `keras-recipes llama train` runs, plus
# the callback (the command takes no callbacks, and the library reads no
# environment variable for them).
INTERRUPTED_WORKER = textwrap.dedent(
    """
    import json, sys
    from keras_recipes.llama.train import InterruptAfterSteps, train_llama

    corpus, out, steps, flags = sys.argv[1:]
    train_llama(out, corpus=[corpus], quick=True, strategy="multi-worker",
                callbacks=[InterruptAfterSteps(int(steps))], **json.loads(flags))
    """
)


@contextlib.contextmanager
def workers(corpus, out, interrupt_after_by_index=None):
    """Two `keras-recipes llama train --strategy multi-worker` processes, killed on exit.

    `interrupt_after_by_index` maps a worker to the number of steps after which
    it raises `KeyboardInterrupt` (`InterruptAfterSteps`).
    """
    processes = []
    try:
        for index, tf_config in enumerate(local_tf_configs(2)):
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_CONFIG": tf_config}
            interrupt_after = (interrupt_after_by_index or {}).get(index)
            if interrupt_after is None:
                command = [sys.executable, "-m", "keras_recipes.cli", "llama", "train"]
                command += cli_flags(corpus, out) + ["--strategy", "multi-worker"]
            else:
                arguments = [str(corpus), str(out), str(interrupt_after), json.dumps(RUN_FLAGS)]
                command = [sys.executable, "-c", INTERRUPTED_WORKER, *arguments]
            log = open(Path(out).parent / f"{Path(out).name}-worker{index}.log", "w")  # noqa: SIM115
            processes.append(
                subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    preexec_fn=pin_to_core(index),
                )
            )
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


def wait_all(processes, timeout=PROCESS_TIMEOUT):
    deadline = time.monotonic() + timeout
    return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in processes]


def worker_logs(out):
    return "\n".join(
        f"--- worker {i}:\n"
        + (Path(out).parent / f"{Path(out).name}-worker{i}.log").read_text()[-3000:]
        for i in range(2)
    )


def test_two_workers_on_loopback_end_with_the_single_process_weights(
    corpus, single_process_run, tmp_path
):
    out = tmp_path / "cluster"
    with workers(corpus, out) as processes:
        codes = wait_all(processes)
    assert codes == [0, 0], worker_logs(out)
    single_out, single_metrics = single_process_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["strategy"] == "multi-worker"
    # The same global batches, summed gradients, clipped norm and schedule.
    assert_same_weights(weights_of(out / "model.keras"), weights_of(single_out / "model.keras"))
    assert_same_weights(
        weights_of(out / "worker-1" / "model.keras"), weights_of(out / "model.keras"), atol=0
    )
    assert metrics["final_val_loss"] == pytest.approx(single_metrics["final_val_loss"], abs=1e-5)


@pytest.mark.slow
def test_a_killed_worker_and_a_restarted_cluster_resume_to_the_same_weights(
    corpus, single_process_run, tmp_path
):
    out = tmp_path / "cluster"
    # Worker 1 dies after 17 steps (epoch 2, step 5; 12 steps an epoch), one
    # step after its last backup; worker 0 is then
    # stuck in the next all-reduce and is killed too, as a cluster manager would.
    with workers(corpus, out, interrupt_after_by_index={1: 17}) as processes:
        assert processes[1].wait(timeout=PROCESS_TIMEOUT) != 0, worker_logs(out)
        with contextlib.suppress(subprocess.TimeoutExpired):
            processes[0].wait(timeout=5)
        if processes[0].poll() is None:
            processes[0].send_signal(signal.SIGKILL)
    for folder in (out / "backup", out / "worker-1" / "backup"):
        state = read_backup(folder)
        assert (state["epoch"], state["batch"]) == (1, 4), folder  # step 5 is lost
    assert not (out / "model.keras").exists()

    with workers(corpus, out) as processes:
        codes = wait_all(processes)
    assert codes == [0, 0], worker_logs(out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["resumed_from_epoch"], metrics["resumed_from_step"]) == (1, 4)
    single_out, _ = single_process_run
    assert_same_weights(weights_of(out / "model.keras"), weights_of(single_out / "model.keras"))
    assert not (out / "backup").exists() and not (out / "worker-1" / "backup").exists()


def test_cli_and_recipe_refuse_multi_worker_without_tf_config(tmp_path, monkeypatch, capsys):
    from keras_recipes.cli import main

    monkeypatch.delenv("TF_CONFIG", raising=False)
    argv = ["--quick", "--strategy", "multi-worker", "--out", str(tmp_path / "run")]
    assert main(["llama", "train", *argv]) == 2
    assert "needs TF_CONFIG" in capsys.readouterr().err
    recipe = Path(__file__).resolve().parent.parent / "recipes" / "llama_tiny.py"
    result = subprocess.run(
        [sys.executable, str(recipe), *argv],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        env={k: v for k, v in os.environ.items() if k != "TF_CONFIG"},
    )
    assert result.returncode != 0 and "needs TF_CONFIG" in result.stderr
    assert not (tmp_path / "run" / "model.keras").exists()
