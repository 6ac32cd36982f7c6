"""int8 / bfloat16 decoding against float32 and llama2.c, same run, one shape.

Builds a randomly initialized LLaMA of the stories110M shape (dim 768,
12 layers, 12 heads, hidden 2048, vocab 32000, tied embeddings; `--quick`:
the "tiny" preset), then:

1. the kernel profile: microseconds per `(1, 768) x (768, N)` product for
   N = 2048 and 32000 in each form tried (float32 matmul; int8
   dequantised to float32 whole, as Keras's `model.quantize("int8")` does;
   int8 dequantised by tiles, our form; XLA-fused `sum(convert(w) * x)`;
   bfloat16 by oneDNN and by XLA);
2. greedy decode tokens/s, batch 1: Keras `generate` (XLA, float32), the
   float32 model in one TF graph (the SavedModel's form, no XLA),
   `quantize_for_decoding(model, "int8" / "bfloat16").generate`, and
   llama2.c's `run.c` (float32) and `runq.c` (Q8_0) built here with
   `gcc -O3 -march=native` from `--llama2c-src` on the same weights
   (`save_llama2c` version 0 and 2);
3. with `--saved-model`: SavedModel `generate` through TF Serving's loader
   (`SavedModelSession`, the C API) for `weights="float32" / "bfloat16" /
   "int8"`.

Every figure is a ratio to its peer measured in this process; runs are
timed in turns (best of `--repeats`), and the conditions (CPU, flags,
cores, threads, load) are printed before and after. Pin one core with
`taskset -c 1`.

    taskset -c 1 python benchmarks/quantize_bench.py --llama2c-src ~/llama2.c \\
        [--new-tokens 64] [--saved-model] [--out quantize.json]
    python benchmarks/quantize_bench.py --quick          # tiny preset, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from conditions import print_conditions

from keras_recipes import quiet_tensorflow


def best_rates(runs: dict, tokens: int, repeats: int) -> dict:
    """Tokens/s of each run's best of `repeats`, the runs timed in turns after one warm-up."""
    for run in runs.values():
        run()
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: tokens / seconds for name, seconds in best.items()}


def _forms(kernel) -> dict:
    """`name -> (function of x, the XLA modes to time)` for one `(in, out)` kernel."""
    import numpy as np
    import tensorflow as tf

    from keras_recipes.llama.quantize import _Matrix

    int8, bf16 = _Matrix(kernel, "int8", "w8"), _Matrix(kernel, "bfloat16", "w16")
    w32 = tf.constant(kernel)
    w8 = tf.constant(np.ascontiguousarray(int8.weight.numpy().T))  # (in, out)
    scale = tf.constant(int8.scale.numpy())
    w16 = tf.constant(np.asarray(bf16.weight.numpy()).T)  # (in, out) bf16
    return {
        "float32 matmul": (lambda x: tf.matmul(x, w32), (False, True)),
        "int8 dequantize whole, matmul": (
            lambda x: tf.matmul(x, tf.cast(w8, tf.float32) * scale),
            (False, True),
        ),
        "int8 dequantize tiles, matmul (ours)": (int8, (False,)),
        "int8 sum(convert(w) * x)": (
            lambda x: tf.reduce_sum(tf.cast(w8, tf.float32) * tf.transpose(x), 0) * scale,
            (True,),
        ),
        "bfloat16 matmul (ours: oneDNN if bf16 CPU)": (bf16, (False,)),
        "bfloat16 dot(convert(w))": (
            lambda x: tf.matmul(x, tf.cast(w16, tf.float32)),
            (False, True),
        ),
    }


def kernel_profile(repeats: int, widths=(2048, 32000), dim=768) -> list[dict]:
    """Microseconds per `(1, dim) x (dim, width)` product in each form."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    rows = []
    for width in widths:
        kernel = (rng.normal(size=(dim, width)) * 0.02).astype(np.float32)
        x = tf.constant(rng.normal(size=(1, dim)).astype(np.float32))
        forms = _forms(kernel)
        for name, (fn, modes) in forms.items():
            for jit in modes:
                f = tf.function(fn, jit_compile=jit, autograph=False)
                f(x).numpy()
                inner, best = 5 if width > 4096 else 20, float("inf")
                for _ in range(repeats + 2):
                    start = time.perf_counter()
                    for _ in range(inner):
                        out = f(x)
                    np.asarray(out)
                    best = min(best, (time.perf_counter() - start) / inner)
                rows.append(
                    dict(shape=f"{dim}x{width}", form=name, xla=jit, microseconds=best * 1e6)
                )
        base = {r["xla"]: r["microseconds"] for r in rows if r["shape"] == f"{dim}x{width}"
                and r["form"] == "float32 matmul"}  # fmt: skip
        for r in rows:
            if r["shape"] == f"{dim}x{width}":
                r["vs_float32_tf"] = base[False] / r["microseconds"]
    return rows


def build_llama2c(source: Path, work: Path) -> dict:
    """`run` and `runq` compiled from llama2.c's sources, one thread (no OpenMP)."""
    binaries = {}
    for name in ("run", "runq"):
        shutil.copy(source / f"{name}.c", work / f"{name}.c")
        subprocess.run(
            ["gcc", "-O3", "-march=native", "-o", str(work / name), str(work / f"{name}.c"), "-lm"],
            check=True,
        )
        binaries[name] = work / name
    return binaries


def llama2c_rate(binary: Path, checkpoint: Path, tokenizer: Path, steps: int, repeats: int):
    """Best `achieved tok/s` that run.c / runq.c report (greedy, `steps` positions)."""
    best = 0.0
    for _ in range(repeats + 1):
        done = subprocess.run(
            [str(binary), str(checkpoint), "-z", str(tokenizer), "-t", "0", "-n", str(steps)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        found = re.search(r"achieved tok/s: ([0-9.]+)", done.stderr)
        best = max(best, float(found.group(1)))
    return best


def fake_tokenizer(vocab_size: int, path: Path) -> Path:
    """A llama2.c tokenizer.bin with `vocab_size` pieces (run.c needs one; weights are random)."""
    from keras_recipes.tokenizers.llama2c import Llama2cTokenizer

    pieces = [b"<unk>", b"<s>", b"</s>"] + [f"<0x{i:02X}>".encode() for i in range(256)]
    pieces += [f"p{i}".encode() for i in range(vocab_size - len(pieces))]
    return Llama2cTokenizer(pieces, [0.0] * len(pieces)).save(path)


def quality(run_dir: Path, corpus: str = "lee") -> dict:
    """Teacher-forced next-token agreement and perplexity of int8 / bfloat16 against float32,
    for a trained run (`model.keras` + `tokenizer.model`, e.g. the main job's
    `runs/llama_tiny`) on a built-in corpus it did not train on."""
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_recipes.data import load_builtin_corpus
    from keras_recipes.llama import quantize_for_decoding
    from keras_recipes.tokenizers import SentencePieceTokenizer

    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    tokenizer = SentencePieceTokenizer(str(run_dir / "tokenizer.model"))
    ids = [i for doc in load_builtin_corpus(corpus) for i in tokenizer.encode(doc, add_bos=True)]
    length = model.config.max_seq_len + 1
    windows = np.array(ids[: len(ids) // length * length], np.int32).reshape(-1, length)
    inputs, targets = windows[:, :-1], windows[:, 1:]

    def scores(forward):
        logits = np.concatenate(
            [np.asarray(forward(inputs[i : i + 16])) for i in range(0, len(inputs), 16)]
        )
        logits = logits.astype(np.float64) - logits.max(-1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        nll = -np.take_along_axis(log_probs, targets[..., None], -1).mean()
        return logits.argmax(-1), float(np.exp(nll))

    reference, perplexity = scores(model)
    figures = {"corpus": corpus, "tokens": int(targets.size), "float32_perplexity": perplexity}
    for weights in ("int8", "bfloat16"):
        quantized = quantize_for_decoding(model, weights)

        @tf.function(autograph=False)
        def as_decoding(ids, quantized=quantized):  # multiplied as generate multiplies
            with quantized.decoding():
                return quantized(ids)

        predicted, quantized_perplexity = scores(as_decoding)
        figures[f"{weights}_agreement"] = float((predicted == reference).mean())
        figures[f"{weights}_perplexity"] = quantized_perplexity
    return figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help='the "tiny" preset, few tokens')
    parser.add_argument("--prompt-len", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--llama2c-src", default=None, help="folder with llama2.c's run.c, runq.c")
    parser.add_argument("--saved-model", action="store_true", help="also SavedModel generate")
    parser.add_argument("--skip-kernels", action="store_true")
    parser.add_argument("--skip-decode", action="store_true")
    parser.add_argument(
        "--quality-run",
        default=None,
        help="a trained run folder (model.keras, tokenizer.model), e.g. runs/llama_tiny: "
        "int8/bf16 agreement and perplexity against float32 on the Lee test articles",
    )
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    quiet_tensorflow()
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_recipes.causal_lm.graph_generate import generate_in_graph, weights_nbytes
    from keras_recipes.llama import LlamaConfig, build_llama, quantize_for_decoding, save_llama2c
    from keras_recipes.llama.quantize import bfloat16_kernel

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    report = {"conditions": print_conditions(threads={"tf_intra_op": 1, "tf_inter_op": 1})}
    copies = "bfloat16, oneDNN" if bfloat16_kernel() == "onednn" else "float32"
    print(
        f"decoding multiplies int8 and bfloat16 weights as {copies} copies, made once per "
        "model by in-process generate (kept) and once per request by a SavedModel"
    )
    report["bfloat16_kernel"] = bfloat16_kernel()

    if not args.skip_kernels and not args.quick:
        rows = kernel_profile(args.repeats)
        report["kernels"] = rows
        print("\n| product | form | XLA | us | vs float32 (TF) |\n|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['shape']} | {r['form']} | {'yes' if r['xla'] else 'no'} | "
                  f"{r['microseconds']:.0f} | {r['vs_float32_tf']:.2f}x |")  # fmt: skip

    if args.quality_run:
        figures = quality(Path(args.quality_run))
        report["quality"] = figures
        print(
            f"\nquality of {args.quality_run} on {figures['corpus']} ({figures['tokens']} tokens, "
            f"teacher-forced): float32 perplexity {figures['float32_perplexity']:.3f}; "
            + "; ".join(
                f"{w} agreement {figures[f'{w}_agreement']:.2%}, perplexity "
                f"{figures[f'{w}_perplexity']:.3f} "
                f"({figures[f'{w}_perplexity'] / figures['float32_perplexity'] - 1:+.2%})"
                for w in ("int8", "bfloat16")
            )
        )
    if args.skip_decode:
        report["conditions_after"] = print_conditions(label="after")
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=1, default=str))
        return report

    keras.utils.set_random_seed(0)
    config = LlamaConfig.preset("tiny" if args.quick else "stories110M")
    new_tokens = 16 if args.quick else args.new_tokens
    model = build_llama(config)
    prompt = (np.arange(args.prompt_len, dtype=np.int32)[None] * 37 + 1) % config.vocab_size
    quantized = {w: quantize_for_decoding(model, w) for w in ("int8", "bfloat16")}
    print(
        f"\n{'tiny' if args.quick else 'stories110M shape'}: {model.count_params():,} parameters; "
        f"weights float32 {weights_nbytes(model) / 2**20:.0f} MiB, bfloat16 "
        f"{quantized['bfloat16'].weights_nbytes() / 2**20:.0f} MiB, int8 "
        f"{quantized['int8'].weights_nbytes() / 2**20:.0f} MiB; prompt {args.prompt_len}, "
        f"{new_tokens} new tokens, greedy, batch 1"
    )
    report.update(preset="tiny" if args.quick else "stories110M", new_tokens=new_tokens)

    @tf.function(autograph=False)
    def float32_graph(ids):  # the SavedModel's generate, run in-process
        lengths = tf.fill([tf.shape(ids)[0]], tf.shape(ids)[1])
        zero, one = tf.constant(0), tf.constant(1.0)
        return generate_in_graph(
            model, ids, lengths, tf.constant(new_tokens), one - 1, zero, one, zero
        )

    reference = model.generate(prompt, new_tokens)
    runs = {
        "keras float32 (XLA)": lambda: model.generate(prompt, new_tokens),
        "float32, one TF graph": lambda: float32_graph(tf.constant(prompt)).numpy(),
        "int8": lambda: quantized["int8"].generate(prompt, new_tokens),
        "bfloat16": lambda: quantized["bfloat16"].generate(prompt, new_tokens),
    }
    for name in ("int8", "bfloat16"):
        same = (quantized[name].generate(prompt, new_tokens) == reference)[0, args.prompt_len :]
        report[f"{name}_greedy_tokens_equal_float32"] = int(np.cumprod(same).sum())
    rates = best_rates(runs, new_tokens, args.repeats)

    work = Path(tempfile.mkdtemp(prefix="quantize-bench-"))
    try:
        if args.llama2c_src and not args.quick:
            binaries = build_llama2c(Path(args.llama2c_src), work)
            tokenizer = fake_tokenizer(config.vocab_size, work / "tokenizer.bin")
            steps = args.prompt_len + new_tokens
            for name, version in (("run", 0), ("runq", 2)):
                checkpoint = save_llama2c(model, work / f"model_v{version}.bin", version=version)
                rates[f"llama2.c {name}.c"] = llama2c_rate(
                    binaries[name], checkpoint, tokenizer, steps, args.repeats
                )
                checkpoint.unlink()
        if args.saved_model:
            from keras_recipes.export import export_saved_model
            from keras_recipes.serving import SavedModelSession

            inputs = {
                "token_ids": prompt,
                "max_new_tokens": np.array([new_tokens], np.int32),
                "temperature": np.zeros([1], np.float32),
                "top_k": np.zeros([1], np.int32),
                "top_p": np.ones([1], np.float32),
                "seed": np.zeros([1], np.int32),
            }
            sessions = {}
            for weights in ("float32", "int8", "bfloat16"):
                path = export_saved_model(
                    model, work / f"saved_{weights}", weights=weights, verify=False
                )
                sessions[weights] = SavedModelSession(path)
                report[f"saved_model_{weights}_bytes"] = sum(
                    f.stat().st_size for f in path.rglob("*") if f.is_file()
                )
            rates.update(
                best_rates(
                    {
                        f"SavedModel {w}": (lambda s=s: s.run("generate", inputs))
                        for w, s in sessions.items()
                    },
                    new_tokens,
                    args.repeats,
                )
            )
            for session in sessions.values():
                session.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    peers = {
        "keras float32 (XLA)": "keras float32 (XLA)",
        "SavedModel float32": "SavedModel float32",
        "llama2.c runq.c": "llama2.c runq.c",
    }
    print("\n| path | tok/s | " + " | ".join(f"vs {p}" for p in peers if p in rates) + " |")
    print("|---|---|" + "---|" * sum(p in rates for p in peers))
    for name, rate in rates.items():
        ratios = [f"{rate / rates[p]:.2f}x" for p in peers if p in rates]
        print(f"| {name} | {rate:.1f} | " + " | ".join(ratios) + " |")
    report["tokens_per_s"] = rates
    report["conditions_after"] = print_conditions(label="after")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    return report


if __name__ == "__main__":
    main()
