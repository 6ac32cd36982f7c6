"""Benchmark: LLaMA training on 1 process vs 2 worker processes (tf.distribute).

The model and global batch of the README's main job (`keras_recipes.llama.
train.DEFAULTS`: dim 128, 4 layers, vocab 1024, batch 16 x 128 tokens) on
random tokens, trained with `fit` exactly as `keras-recipes llama train`
does (AdamW, clipping after the all-reduce, DATA auto-sharding). Runs, in
fresh processes, alternately, each keeping its best of `--repeats`:

- `1 proc, 1 core`: one process pinned to core 0, the whole global batch;
- `1 proc, 2 cores`: one process on both cores (TensorFlow's intra-op
  threads): the peer that uses the same hardware as the cluster;
- `2 workers`: `MultiWorkerMirroredStrategy`, two processes on 127.0.0.1,
  each pinned to its own core, each computing half of every global batch;
- `1 proc, half batch`: one process pinned to one core on half the batch,
  which is the computation each worker does per step, without the
  communication.

Prints training tokens/s (global tokens over wall time of the timed steps)
and ms/step for each, the ratios against the peers, and the per-step
communication overhead two ways: `2 workers` step time minus `half batch`
step time (all synchronisation included), and the time of one all-reduce of
a gradient-sized set of tensors, timed on its own in the cluster.

Absolute numbers depend on what else runs on the machine; compare ratios.

Usage:
    python benchmarks/distributed_bench.py [--steps 30] [--warmup 5] [--repeats 2]
        [--dim 128 --n-layers 4 --seq-len 128 --batch-size 16]
"""

import argparse
import json
import os
import subprocess
import sys
import time

CORES = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def worker(args) -> None:
    """One process of a run: prints one JSON line with its timings."""
    from keras_recipes import quiet_tensorflow

    quiet_tensorflow()
    from keras_recipes.llama.distribute import make_strategy

    strategy = make_strategy("multi-worker" if os.environ.get("TF_CONFIG") else "default")
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_recipes.data import epoch_windows_dataset
    from keras_recipes.llama import LlamaConfig, build_llama
    from keras_recipes.llama.distribute import prepare_for_strategy, shard_by_data
    from keras_recipes.llama.train import language_model_loss, make_optimizer

    keras.utils.set_random_seed(0)
    config = LlamaConfig(
        vocab_size=args.vocab_size,
        dim=args.dim,
        n_layers=args.n_layers,
        n_heads=args.n_heads,
        n_kv_heads=args.n_kv_heads,
        hidden_dim=args.hidden_dim,
        max_seq_len=args.seq_len,
    )
    steps = args.warmup + args.steps
    with strategy.scope():
        model = build_llama(config)
        model.compile(
            optimizer=make_optimizer(model, total_steps=steps, learning_rate=3e-3),
            loss=language_model_loss(),
        )
    prepare_for_strategy(model, strategy)
    tokens = np.random.default_rng(0).integers(
        0, args.vocab_size, steps * args.batch_size * args.seq_len + args.seq_len + 1
    )
    stream = epoch_windows_dataset(tokens, args.seq_len, args.batch_size, epochs=1)

    class StepClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            float(np.asarray(logs["loss"]).reshape(-1)[0])  # wait for the step
            self.ends.append(time.perf_counter())

    clock = StepClock()
    with strategy.scope():
        model.fit(
            shard_by_data(stream),
            epochs=1,
            steps_per_epoch=steps,
            verbose=0,
            callbacks=[clock],
            shuffle=False,
        )
    seconds = clock.ends[-1] - clock.ends[args.warmup - 1]
    result = {
        "replicas": strategy.num_replicas_in_sync,
        "ms_per_step": 1000 * seconds / args.steps,
        "tokens_per_second": args.steps * args.batch_size * args.seq_len / seconds,
        "parameters": int(model.count_params()),
    }
    if strategy.num_replicas_in_sync > 1:
        gradients = [tf.zeros(v.shape, v.dtype) for v in model.trainable_variables]

        @tf.function
        def all_reduce():
            return strategy.run(
                lambda: tf.distribute.get_replica_context().all_reduce("SUM", gradients)
            )

        def run_once():
            outputs = all_reduce()
            float(tf.reduce_sum(strategy.experimental_local_results(outputs[0])[0]))

        for _ in range(3):
            run_once()
        start = time.perf_counter()
        for _ in range(args.steps):
            run_once()
        result["all_reduce_ms"] = 1000 * (time.perf_counter() - start) / args.steps
        result["gradient_megabytes"] = sum(int(np.prod(g.shape)) * 4 for g in gradients) / 1e6
    print("RESULT " + json.dumps(result), flush=True)


def launch(args, processes, cores, batch_size, timeout):
    """Runs `processes` workers (1 or 2), pinned to `cores` (one set each); chief's result."""
    flags = [
        "--worker",
        f"--batch-size={batch_size}",
        *(f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k in SIZE_FLAGS),
    ]
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    from keras_recipes.llama.distribute import local_tf_configs

    tf_configs = local_tf_configs(processes)
    started = []
    try:
        for index in range(processes):
            if processes > 1:
                env["TF_CONFIG"] = tf_configs[index]
            pin = cores[index] if cores else None
            started.append(
                subprocess.Popen(
                    [sys.executable, __file__, *flags],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=dict(env),
                    preexec_fn=(lambda pin=pin: os.sched_setaffinity(0, pin)) if pin else None,
                )
            )
        outputs = [p.communicate(timeout=timeout)[0] for p in started]
    finally:
        for p in started:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
    for p, output in zip(started, outputs, strict=True):
        if p.returncode != 0:
            raise RuntimeError(f"worker failed ({p.returncode}):\n{output[-3000:]}")
    line = next(line for line in outputs[0].splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


SIZE_FLAGS = {
    "steps": 30,
    "warmup": 5,
    "vocab_size": 1024,
    "dim": 128,
    "n_layers": 4,
    "n_heads": 4,
    "n_kv_heads": 2,
    "hidden_dim": 352,
    "seq_len": 128,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=16, help="global batch")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=300, help="seconds per run")
    for key, default in SIZE_FLAGS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=default)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if len(CORES) < 2:
        sys.exit("This benchmark needs 2 cores (one per worker process).")
    if args.batch_size % 2:
        sys.exit("--batch-size must be even: it is split over 2 workers.")

    from conditions import print_conditions

    print_conditions(threads={"per process": "intra-op = cores it is pinned to"})
    one, two = [{CORES[0]}], [{CORES[0]}, {CORES[1]}]
    runs = {
        "1 proc, 1 core": (1, one, args.batch_size),
        "1 proc, 2 cores": (1, [set(CORES[:2])], args.batch_size),
        "2 workers": (2, two, args.batch_size),
        "1 proc, half batch": (1, one, args.batch_size // 2),
    }
    best = {}
    for repeat in range(args.repeats):
        for name, (processes, cores, batch) in runs.items():
            result = launch(args, processes, cores, batch, args.timeout)
            print(f"  repeat {repeat + 1}: {name:<20} {result['ms_per_step']:8.1f} ms/step")
            if name not in best or result["ms_per_step"] < best[name]["ms_per_step"]:
                best[name] = result

    tokens = args.batch_size * args.seq_len
    print(
        f"\nLLaMA {best['2 workers']['parameters']:,} parameters, global batch "
        f"{args.batch_size} x {args.seq_len} = {tokens} tokens/step, best of {args.repeats}, "
        f"{args.steps} timed steps:\n"
    )
    print(f"{'run':<20} {'ms/step':>9} {'tokens/s':>10} {'vs 1 core':>10} {'vs 2 cores':>11}")
    for name, result in best.items():
        if name == "1 proc, half batch":
            continue
        print(
            f"{name:<20} {result['ms_per_step']:9.1f} {result['tokens_per_second']:10,.0f} "
            f"{result['tokens_per_second'] / best['1 proc, 1 core']['tokens_per_second']:10.2f} "
            f"{result['tokens_per_second'] / best['1 proc, 2 cores']['tokens_per_second']:11.2f}"
        )
    cluster, half = best["2 workers"], best["1 proc, half batch"]
    overhead = cluster["ms_per_step"] - half["ms_per_step"]
    print(
        f"\nPer-step communication overhead of 2 workers:\n"
        f"  step time minus one worker's computation alone (half batch, 1 core): "
        f"{cluster['ms_per_step']:.1f} - {half['ms_per_step']:.1f} = {overhead:.1f} ms "
        f"({overhead / cluster['ms_per_step']:.0%} of the step)\n"
        f"  one all-reduce of the gradients ({cluster['gradient_megabytes']:.2f} MB float32) "
        f"timed alone: {cluster['all_reduce_ms']:.1f} ms "
        f"({cluster['all_reduce_ms'] / cluster['ms_per_step']:.0%} of the step)"
    )
    print(
        "\nScaling efficiency (2-worker tokens/s over twice the 1-core tokens/s): "
        f"{cluster['tokens_per_second'] / (2 * best['1 proc, 1 core']['tokens_per_second']):.0%}"
    )
    print_conditions(label="after")


if __name__ == "__main__":
    sys.exit(main())
