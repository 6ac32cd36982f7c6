"""One table of runtimes: the same LLaMA decoded greedily by each, one thread each where it can.

Runs, each in its own process (so each peak RSS is its own): Keras
`model.generate`, the SavedModel's `generate` signature through TF Serving's
own loader (the C API session, `SavedModelSession`), our TFLite generator
(`TFLiteGenerator`), LiteRT-LM's engine on our `.litertlm` bundle, and
llama.cpp's `llama-bench` on our f32 and q8_0 GGUF files (`-t 1`). For each:
decode tokens/s, first-token time (prompt in, first new token out, the
runtime warm), peak RSS, and the ratio of tokens/s to llama.cpp f32, the CPU
decoder to beat. The conditions (CPU model and flags, load average) come
first. Nothing passes or fails on time.

    python benchmarks/runtimes_bench.py --run runs/llama_tiny --llama-bench DIR/llama-bench
    python benchmarks/runtimes_bench.py --preset stories15M --llama-bench DIR/llama-bench
    python benchmarks/runtimes_bench.py --preset stories110M --llama-bench DIR/llama-bench

A `--preset` model has random weights (rows of the output head beyond the
tokenizer's vocabulary zeroed, so every runtime can turn its greedy ids into
text) and a SentencePiece tokenizer trained on the built-in corpus;
`--runtimes` picks which Python-side runtimes are exported and
timed; `--keep DIR` keeps the exports, e.g. to profile one runtime. Keras
and TensorFlow get one intra-op thread (`TF_NUM_INTRAOP_THREADS=1`-style
settings), TFLite and llama.cpp one thread; LiteRT-LM's CPU engine picks its
own. On a loaded machine compare only the ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conditions import print_conditions

RUNTIMES = ("keras", "saved_model_c_api", "tflite", "litertlm")
PROMPT = "The government said"


def _single_thread():
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def _timed(function, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def measure(runtime: str, work: Path, new_tokens: int, repeats: int) -> dict:
    """One runtime, in this process: first-token seconds and decode tokens/s."""
    from keras_recipes import quiet_tensorflow

    quiet_tensorflow()
    _single_thread()
    import keras
    import numpy as np

    from keras_recipes.tokenizers import load_sentencepiece

    tokenizer = load_sentencepiece(work / "tokenizer.model")
    ids = np.array([tokenizer.encode(PROMPT, add_bos=True)], np.int32)
    if runtime == "keras":
        model = keras.models.load_model(work / "model.keras")

        def run(n):
            return model.generate(ids, max_new_tokens=n, temperature=0.0)

    elif runtime == "saved_model_c_api":
        from keras_recipes.serving import SavedModelSession

        session = SavedModelSession(sorted((work / "saved_model").iterdir())[-1])

        def run(n):
            feeds = dict(
                token_ids=ids,
                max_new_tokens=np.array([n], np.int32),
                temperature=np.array([0.0], np.float32),
                top_k=np.array([0], np.int32),
                top_p=np.array([1.0], np.float32),
                seed=np.array([0], np.int32),
            )
            return session.run("generate", feeds)

    elif runtime == "tflite":
        from keras_recipes.export import TFLiteGenerator

        generator = TFLiteGenerator(work / "model.tflite", num_threads=1)

        def run(n):
            return generator.generate(ids, max_new_tokens=n)

    else:
        import litert_lm

        engine = litert_lm.Engine(str(work / "model.litertlm"), backend=litert_lm.Backend.CPU())
        greedy = litert_lm.SamplerConfig(top_k=1, temperature=0.0)

        def run(n):
            with engine.create_session(
                apply_prompt_template=False, sampler_config=greedy, max_output_tokens=n
            ) as session:
                session.run_prefill([PROMPT])
                return session.run_decode()

    run(1), run(new_tokens)  # warm-up: each length compiles and allocates once
    first = _timed(lambda: run(1), repeats)
    full = _timed(lambda: run(new_tokens), repeats)
    return {"first_token_s": first, "tokens_per_s": (new_tokens - 1) / max(full - first, 1e-9)}


def child(command: list[str]) -> tuple[str, int]:
    """Runs `command`; its stdout and its own peak RSS in bytes (wait4's rusage)."""
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
        stdout = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            stderr.seek(0)
            tail = "".join(stderr.readlines()[-15:])
            killed = (
                " (SIGKILL, e.g. the OOM killer: see dmesg)" if process.returncode == -9 else ""
            )
            raise RuntimeError(
                f"{' '.join(command)} exited with {process.returncode}{killed}; "
                f"its stderr ends:\n{tail}"
            )
    return stdout, usage.ru_maxrss * 1024


def llama_bench(binary: str, gguf: Path, prompt_len: int, new_tokens: int, repeats: int) -> dict:
    stdout, rss = child(
        [binary, "-m", str(gguf), "-p", str(prompt_len), "-n", str(new_tokens),
         "-t", "1", "-r", str(repeats), "-o", "json"]
    )  # fmt: skip
    tests = json.loads(stdout)
    prompt = next(t for t in tests if t["n_prompt"] > 0 and t["n_gen"] == 0)
    decode = next(t for t in tests if t["n_gen"] > 0)
    return {
        "first_token_s": prompt_len / prompt["avg_ts"],  # the prompt pass yields the first token
        "tokens_per_s": decode["avg_ts"],
        "peak_rss_bytes": rss,
    }


def prepare(args, work: Path) -> int:
    """Writes the model, tokenizer and every export into `work`; returns the prompt length."""
    from keras_recipes import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from keras_recipes.export import (
        export_litertlm,
        export_saved_model,
        export_tflite,
        save_gguf,
    )
    from keras_recipes.llama import LlamaConfig, build_llama, load_checkpoint
    from keras_recipes.tokenizers import load_sentencepiece, train_sentencepiece

    if args.run:
        model = load_checkpoint(Path(args.run) / "model.keras")
        tokenizer = load_sentencepiece(Path(args.run) / "tokenizer.model")
    else:
        from keras_recipes.data import load_builtin_corpus

        tokenizer = train_sentencepiece(load_builtin_corpus("lee_background"), vocab_size=512)
        keras.utils.set_random_seed(0)
        config = LlamaConfig.preset(args.preset)
        model = build_llama(config)
        head = model.tok_embeddings.embeddings if model.output_projection is None else None
        if head is not None:  # tied: ids beyond the tokenizer never win the argmax
            table = head.numpy()
            table[tokenizer.vocab_size :] = 0.0
            head.assign(table)
        else:
            kernel = model.output_projection.kernel.numpy()
            kernel[:, tokenizer.vocab_size :] = 0.0
            model.output_projection.kernel.assign(kernel)
    print(
        f"model: {model.count_params():,} parameters, config {model.config.to_dict()}",
        file=sys.stderr,
    )
    model.save(work / "model.keras")
    tokenizer.save(work / "tokenizer.model")
    runtimes = args.runtimes.split(",")
    if "saved_model_c_api" in runtimes:
        export_saved_model(model, work / "saved_model", verify=False)
    if "tflite" in runtimes:
        export_tflite(model, work / "model.tflite", verify=False)
    if "litertlm" in runtimes:
        # LiteRT-LM needs a stop token: one the greedy continuation never emits,
        # so every runtime decodes the same number of tokens.
        ids = tokenizer.encode(PROMPT, add_bos=True)
        continuation = set(model.generate([ids], max_new_tokens=args.new_tokens)[0].tolist())
        stop = min(set(range(tokenizer.vocab_size)) - continuation)
        export_litertlm(model, work / "model.litertlm", tokenizer=tokenizer, stop_token_ids=[stop])
    for dtype in ("f32", "q8_0"):
        save_gguf(model, work / f"model-{dtype}.gguf", tokenizer=tokenizer, dtype=dtype)
    return len(tokenizer.encode(PROMPT, add_bos=True))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--run", help="a training run folder (model.keras, tokenizer.model)")
    source.add_argument(
        "--preset",
        default="stories15M",
        help="random weights of this LlamaConfig preset's shape (e.g. stories110M)",
    )
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--runtimes",
        default=",".join(RUNTIMES),
        help="comma-separated subset of the Python-side runtimes to export and time",
    )
    parser.add_argument("--llama-bench", default=None, help="llama.cpp's llama-bench binary")
    parser.add_argument(
        "--only", default=None, help="internal: measure one runtime in this process"
    )
    parser.add_argument("--work", default=None, help="internal: the prepared folder")
    parser.add_argument("--prepare", action="store_true", help="internal: write the exports")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    parser.add_argument(
        "--keep", default=None, help="prepare the exports in this folder and keep them (to profile)"
    )
    args = parser.parse_args(argv)
    if args.prepare:
        print(json.dumps({"prompt_len": prepare(args, Path(args.work))}))
        return {}
    if args.only:
        figures = measure(args.only, Path(args.work), args.new_tokens, args.repeats)
        print(json.dumps(figures))
        return figures
    conditions = print_conditions(threads={"tensorflow": 1, "tflite": 1, "llama.cpp": 1})
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        return _compare(args, Path(args.keep), conditions)
    work = Path(tempfile.mkdtemp(prefix="runtimes-bench-"))
    try:
        return _compare(args, work, conditions)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _compare(args, work: Path, conditions: dict) -> dict:
    """Prepares the exports in `work`, measures every runtime, prints the table."""
    # Every runtime, and the exports, in processes of their own: this one loads
    # no TensorFlow, so a child's peak RSS (wait4) is the child's, not ours at fork.
    source = ["--run", args.run] if args.run else ["--preset", args.preset]
    stdout, _ = child(
        [sys.executable, __file__, "--prepare", "--work", str(work), *source,
         "--new-tokens", str(args.new_tokens), "--runtimes", args.runtimes]
    )  # fmt: skip
    prompt_len = json.loads(stdout.strip().splitlines()[-1])["prompt_len"]
    results = {}
    unknown = set(args.runtimes.split(",")) - set(RUNTIMES)
    if unknown:
        raise SystemExit(f"--runtimes: unknown {sorted(unknown)}; choose from {RUNTIMES}.")
    for runtime in args.runtimes.split(","):
        stdout, rss = child(
            [sys.executable, __file__, "--only", runtime, "--work", str(work),
             "--new-tokens", str(args.new_tokens), "--repeats", str(args.repeats)]
        )  # fmt: skip
        results[runtime] = {**json.loads(stdout.strip().splitlines()[-1]), "peak_rss_bytes": rss}
    if args.llama_bench:
        for dtype in ("f32", "q8_0"):
            results[f"llama.cpp {dtype}"] = llama_bench(
                args.llama_bench, work / f"model-{dtype}.gguf", prompt_len, args.new_tokens,
                args.repeats,
            )  # fmt: skip
    references = {
        dtype: results[f"llama.cpp {dtype}"]["tokens_per_s"]
        for dtype in ("f32", "q8_0")
        if f"llama.cpp {dtype}" in results
    }
    print(f"\nprompt {prompt_len} tokens, {args.new_tokens} new tokens, greedy, batch 1")
    print(
        f"{'runtime':<22}{'tokens/s':>10}{'first token ms':>16}{'peak RSS MB':>13}"
        + "".join(f"{'vs llama.cpp ' + dtype:>19}" for dtype in references)
    )
    for name, figures in results.items():
        print(
            f"{name:<22}{figures['tokens_per_s']:>10.1f}{figures['first_token_s'] * 1e3:>16.1f}"
            f"{figures['peak_rss_bytes'] / 1e6:>13.0f}"
            + "".join(f"{figures['tokens_per_s'] / ref:>18.2f}x" for ref in references.values())
        )
    print_conditions(threads={"tensorflow": 1, "tflite": 1, "llama.cpp": 1}, label="after")
    report = {"conditions": conditions, "prompt_len": prompt_len, "results": results}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
