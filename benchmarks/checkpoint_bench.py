"""Peak memory of checkpoint import: load_hf / load_llama2c on a ~300 MB random checkpoint.

Writes a random LLaMA checkpoint of about 300 MB in the Hugging Face layout
(float32 safetensors) and as a llama2.c v1 file, then loads each in a fresh
process and reports the peak resident memory (sampled every 2 ms) above the process's
baseline after importing TensorFlow/Keras, against the budget the checkpoint
issue sets: model size + 0.5 x checkpoint size.

    python benchmarks/checkpoint_bench.py [--mb 300] [--dir /tmp/ckpt_bench]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import os, sys, threading, time, json
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, keras
from keras_recipes.llama.checkpoints import load_hf, load_llama2c
from keras_recipes.llama import build_llama, LlamaConfig

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

build_llama(LlamaConfig.preset("tiny"))  # warm the framework's own allocations
base, peak, done = rss(), [0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)
sampler = threading.Thread(target=sample)
sampler.start()
start = time.perf_counter()
model = (load_hf if sys.argv[1] == "hf" else load_llama2c)(sys.argv[2])
seconds = time.perf_counter() - start
done.set()
sampler.join()
model_bytes = sum(int(np.prod(v.shape)) * 4 for v in model.weights)
print(json.dumps({"peak_above_base": max(peak[0], rss()) - base, "model_bytes": model_bytes,
                  "seconds": seconds}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300, help="checkpoint size to write, in MB")
    parser.add_argument("--dir", default="/tmp/keras_recipes_ckpt_bench")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from conditions import print_conditions

    print_conditions()
    import numpy as np

    from keras_recipes.llama import LlamaConfig, build_llama
    from keras_recipes.llama.checkpoints import save_hf, save_llama2c

    # dim 768, 12 layers, vocab 32000, untied: ~108M parameters per 430 MB; scale layers.
    per_layer = 4 * 768 * 768 + 3 * 768 * 2048
    embeddings = 2 * 32000 * 768
    n_layers = max(1, round((args.mb * 1e6 / 4 - embeddings) / per_layer))
    config = LlamaConfig(
        vocab_size=32000, dim=768, n_layers=n_layers, n_heads=12, hidden_dim=2048, max_seq_len=512
    )
    folder = Path(args.dir)
    hf_dir, l2c = folder / "hf", folder / "model.bin"
    if not (hf_dir / "model.safetensors").exists() or not l2c.exists():
        model = build_llama(config)
        rng = np.random.default_rng(0)
        for variable in model.weights:
            variable.assign(rng.normal(scale=0.02, size=variable.shape).astype("float32"))
        save_hf(model, hf_dir)
        save_llama2c(model, l2c, version=1)
        del model
    rows = []
    for kind, path in (("hf", hf_dir), ("llama2c", l2c)):
        size = (hf_dir / "model.safetensors").stat().st_size if kind == "hf" else l2c.stat().st_size
        out = subprocess.run(
            [sys.executable, "-c", CHILD, kind, str(path)], capture_output=True, text=True
        )
        if out.returncode:
            sys.exit(out.stderr)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        budget = result["model_bytes"] + 0.5 * size
        rows.append(
            (
                kind,
                size,
                result["model_bytes"],
                result["peak_above_base"],
                budget,
                result["seconds"],
            )
        )
    print(
        f"{'format':<8} {'file MB':>8} {'model MB':>9} {'peak MB':>8} {'budget MB':>10} "
        f"{'peak/budget':>11} {'load s':>7}"
    )
    for kind, size, model_bytes, peak, budget, seconds in rows:
        print(
            f"{kind:<8} {size / 1e6:8.1f} {model_bytes / 1e6:9.1f} {peak / 1e6:8.1f} "
            f"{budget / 1e6:10.1f} {peak / budget:11.2f} {seconds:7.1f}"
        )
    print_conditions(label="after")


if __name__ == "__main__":
    start = time.time()
    main()
    print(f"total {time.time() - start:.0f}s")
