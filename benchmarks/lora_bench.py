"""Benchmark: LoRA fine-tuning, ours against keras-hub's `enable_lora`, same shapes, same run.

For each shape (`--shapes`: llama2.c's stories110M, dim 768, 12 layers,
vocab 32000; and Llama 3.2 1B's, dim 2048, 16 layers, 32 heads, 8 KV
heads, vocab 128256, tied embeddings), random weights, float32, no XLA
(`compile`'s default on a CPU for both):

- ours: `build_llama(config)`, `model.enable_lora(rank, targets=("wq",
  "wv"))` (`keras_recipes.causal_lm.lora.LoRADense`: `x W + s (x A) B`, the frozen
  kernel gets no gradient), compiled with AdamW and
  `LanguageModelLoss(reduction="mean_with_sample_weight")` (the head and
  the masked loss fused, the frozen head's gradient skipped);
- keras-hub: `LlamaBackbone` of the same shape, `backbone.enable_lora(rank)`
  (its default targets, the query and value projections, Keras'
  `EinsumDense.enable_lora`: `x (W + s A B)`), in `LlamaCausalLM`, compiled
  with AdamW and `SparseCategoricalCrossentropy(from_logits=True,
  reduction="mean_with_sample_weight")`, no metrics.

Both train on the same batch with the same loss mask (`sample_weight`: the
first half of each row is prompt, weight 0). Speed: with `--same-process`
(the default for shapes under 1 GB of float32 weights) one process builds
both models and alternates their steps, each keeping its best, so load
changes on a shared machine hit both alike; otherwise each side's own
process gives it. Memory: each side also trains in its own process
(`--worker`), so its peak RSS (`ru_maxrss`) is its own: the import of
TensorFlow, the model, the optimizer state and the step's activations.
Printed: tokens/s (best step), the ratio ours / keras-hub, peak RSS of
each and their ratio, the trainable parameter counts (keras-hub's
`EinsumDense` LoRA on a `(dim, heads, head_dim)` kernel has `A` of shape
`(dim, heads, r)` and `B` `(r, head_dim)`: more parameters than the
paper's `(dim, r)`, `(r, dim)` at the same rank), and the conditions (CPU,
flags, threads, load average) before and after.

`LORA_BENCH_ROPE=rotate_half` gives ours keras-hub's RoPE convention (the
stories presets are llama2.c's interleaved pairs; the 1B preset is
rotate-half already).

Usage:
    python benchmarks/lora_bench.py [--shapes stories110M llama3.2-1b] [--rank 8]
        [--steps 3] [--repeats 1] [--out lora.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

# shape -> (LlamaConfig.preset name and overrides, batch, sequence length)
SHAPES = {
    "stories15M": (("stories15M", dict()), 8, 128),  # a quick look, not a default
    "stories110M": (("stories110M", dict()), 4, 256),
    "llama3.2-1b": (("llama3.2-1b", dict(max_seq_len=2048, rope_scaling=None)), 1, 128),
}


def config_of(shape: str):
    """The shape's `LlamaConfig`; RoPE as `LORA_BENCH_ROPE` says (default: the preset's)."""
    from keras_recipes.llama import LlamaConfig

    (preset, overrides), _, _ = SHAPES[shape]
    rope = os.environ.get("LORA_BENCH_ROPE")
    if rope:  # "rotate_half" is keras-hub's only convention
        overrides = dict(overrides, rope_convention=rope)
    return LlamaConfig.preset(preset, **overrides)


def batch_of(shape: str, vocab_size: int):
    import numpy as np

    _, batch, length = SHAPES[shape]
    rng = np.random.default_rng(0)
    x = rng.integers(0, vocab_size, (batch, length)).astype("int32")
    y = rng.integers(0, vocab_size, (batch, length)).astype("int32")
    weights = np.zeros((batch, length), "float32")
    weights[:, length // 2 :] = 1.0  # the second half is the "assistant" part
    return x, y, weights


def build_ours(cfg, rank):
    import keras

    from keras_recipes.causal_lm.losses import LanguageModelLoss
    from keras_recipes.llama import build_llama

    model = build_llama(cfg)
    model.enable_lora(rank, targets=("wq", "wv"))
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-4),
        loss=LanguageModelLoss(reduction="mean_with_sample_weight"),
    )
    return model, lambda x: x


def build_hub(cfg, rank):
    import keras
    import keras_hub
    import numpy as np

    backbone = keras_hub.models.LlamaBackbone(
        vocabulary_size=cfg.vocab_size,
        num_layers=cfg.n_layers,
        num_query_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads,
        hidden_dim=cfg.dim,
        intermediate_dim=cfg.ffn_hidden_dim,
        rope_max_wavelength=cfg.rope_theta,
        layer_norm_epsilon=cfg.norm_eps,
        tie_word_embeddings=cfg.tie_embeddings,
        dtype="float32",
    )
    backbone.enable_lora(rank)
    model = keras_hub.models.LlamaCausalLM(backbone, preprocessor=None)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        ),
        weighted_metrics=[],
    )
    return model, lambda x: {"token_ids": x, "padding_mask": np.ones_like(x)}


def rss_now() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def worker(side: str, shape: str, rank: int, steps: int) -> dict:
    """One side's measurement, in this process: best step tokens/s and peak RSS."""
    import resource

    import keras
    import numpy as np

    import keras_recipes  # noqa: F401  (imports TensorFlow, as both sides do)

    after_imports = rss_now()
    keras.utils.set_random_seed(0)
    cfg = config_of(shape)
    started = time.perf_counter()
    model, inputs = (build_ours if side == "ours" else build_hub)(cfg, rank)
    build_seconds = time.perf_counter() - started
    trainable = int(sum(np.prod(v.shape) for v in model.trainable_weights))
    x, y, weights = batch_of(shape, cfg.vocab_size)
    started = time.perf_counter()
    first_loss = float(model.train_on_batch(inputs(x), y, sample_weight=weights))
    first = time.perf_counter() - started
    best = float("inf")
    for _ in range(steps):
        started = time.perf_counter()
        model.train_on_batch(inputs(x), y, sample_weight=weights)
        best = min(best, time.perf_counter() - started)
    return {
        "side": side,
        "shape": shape,
        "tokens_per_s": x.size / best,
        "best_step_s": best,
        "first_step_s": first,
        "first_loss": first_loss,
        "build_s": build_seconds,
        "trainable_parameters": trainable,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "rss_after_imports_bytes": after_imports,
        "load_average_1m": os.getloadavg()[0],
    }


def both(shape: str, rank: int, steps: int) -> dict:
    """Both sides in this process, steps alternating: best step tokens/s of each."""
    import keras

    cfg = config_of(shape)
    x, y, weights = batch_of(shape, cfg.vocab_size)
    models = {}
    for side, build in (("ours", build_ours), ("hub", build_hub)):
        keras.utils.set_random_seed(0)
        models[side] = build(cfg, rank)
    best = {}
    for step in range(steps + 1):  # the first step of each traces: not counted
        for side, (model, inputs) in models.items():
            started = time.perf_counter()
            model.train_on_batch(inputs(x), y, sample_weight=weights)
            if step:
                best[side] = min(best.get(side, float("inf")), time.perf_counter() - started)
    return {side: x.size / seconds for side, seconds in best.items()} | {
        "load_average_1m": os.getloadavg()[0]
    }


def run_worker(side, shape, rank, steps, timeout):
    command = [sys.executable, __file__, "--worker", side, "--shapes", shape]
    command += ["--rank", str(rank), "--steps", str(steps)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{side} {shape} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shapes", nargs="+", choices=list(SHAPES), default=["stories110M", "llama3.2-1b"]
    )
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per process")
    parser.add_argument("--repeats", type=int, default=1, help="processes per side and shape")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per process")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument(
        "--same-process",
        choices=("auto", "yes", "no"),
        default="auto",
        help="time both sides alternating in one process (auto: under 1 GB of weights)",
    )
    parser.add_argument("--worker", choices=("ours", "hub", "both"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "both":
        print(json.dumps(both(args.shapes[0], args.rank, args.steps)))
        return 0
    if args.worker:
        print(json.dumps(worker(args.worker, args.shapes[0], args.rank, args.steps)))
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from conditions import print_conditions

    report = {"conditions": print_conditions(), "rank": args.rank, "shapes": {}}
    for shape in args.shapes:
        same = args.same_process == "yes" or (
            args.same_process == "auto" and config_of(shape).num_parameters() * 4 < 2**30
        )
        steps = 1 if same else args.steps  # the own-process runs then measure memory
        runs = {"ours": [], "hub": []}
        for _ in range(args.repeats):
            for side in runs:
                runs[side].append(run_worker(side, shape, args.rank, steps, args.timeout))
        best = {side: max(r, key=lambda run: run["tokens_per_s"]) for side, r in runs.items()}
        peak = {side: min(run["peak_rss_bytes"] for run in r) for side, r in runs.items()}
        _, batch, length = SHAPES[shape]
        speed = best["ours"]["tokens_per_s"] / best["hub"]["tokens_per_s"]
        alternating = None
        if same:
            command = [sys.executable, __file__, "--worker", "both", "--shapes", shape]
            command += ["--rank", str(args.rank), "--steps", str(args.steps)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
            if done.returncode != 0:
                raise RuntimeError(f"both {shape} failed:\n{done.stderr[-3000:]}")
            alternating = json.loads(done.stdout.strip().splitlines()[-1])
        memory = peak["ours"] / peak["hub"]
        print(f"\n{shape}: LoRA rank {args.rank} on wq/wv (query/value), batch {batch} x {length}, "
              f"float32, AdamW, masked loss")  # fmt: skip
        for side, name in (("ours", "ours"), ("hub", "keras-hub")):
            run = best[side]
            print(
                f"  {name:9s} {run['tokens_per_s']:9.1f} tokens/s (best of {steps} steps, "
                f"first {run['first_step_s']:.1f} s)  peak RSS {peak[side] / 2**30:.2f} GiB  "
                f"trainable {run['trainable_parameters']:,}  load {run['load_average_1m']:.1f}"
            )
        print(f"  ratio ours / keras-hub: {speed:.2f}x tokens/s (separate processes), "
              f"{memory:.2f}x peak RSS")  # fmt: skip
        if alternating:
            speed = alternating["ours"] / alternating["hub"]
            print(
                f"  alternating in one process: ours {alternating['ours']:.1f}, keras-hub "
                f"{alternating['hub']:.1f} tokens/s: {speed:.2f}x "
                f"(load {alternating['load_average_1m']:.1f})"
            )
        report["shapes"][shape] = {
            "alternating": alternating,
            "runs": runs,
            "tokens_per_s_ratio": speed,
            "peak_rss_ratio": memory,
            "batch": batch,
            "seq_len": length,
        }
    report["after"] = print_conditions(label="after")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
