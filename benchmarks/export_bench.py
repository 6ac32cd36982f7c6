"""Exported LLaMA speed and size against Keras `model.generate`, same run.

Builds a randomly initialized LLaMA of the stories15M shape (or `--preset`),
exports it as a SavedModel (timed through `tf.saved_model.load` and through
TF Serving's own loader, the C API session) and as float32 / float16 /
dynamic-int8 TFLite files, then decodes the same greedy continuation with each and prints
tokens per second as ratios to Keras's XLA-compiled `model.generate`
measured in the same process, plus file sizes and int8's next-token
agreement with the Keras model. Nothing passes or fails on time.

It prints its conditions first and stores them in the JSON: the CPU model
and its AVX512 / bf16 / VNNI / AMX flags, the cores it may run on, the
thread settings of each runtime (TensorFlow's intra/inter-op pools, which
Keras, the loaded SavedModel and the C API session use; LiteRT's
`--threads`), and the load average before and after. The figures of one
core come from `taskset -c 1`; on a loaded machine compare only the ratios
of one run.

    python benchmarks/export_bench.py                 # stories15M shape
    python benchmarks/export_bench.py --quick         # the "tiny" preset, seconds
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from conditions import print_conditions

from keras_recipes import quiet_tensorflow


def best_rates(runs: dict, tokens: int, repeats: int, cpu_rates: dict | None = None) -> dict:
    """Tokens per second of each run's fastest of `repeats` timings, taken in turns.

    Every run is warmed up once, then the runs are timed one after the other
    in each round, so a load spike on this shared machine hits all of them
    alike instead of whichever one was being timed. The CPU time is the
    process's (`time.process_time`, all its threads): on a core shared with
    other processes it counts the work done, not the waits for the core, so
    its ratios hold up under load where wall-clock ones do not. Given a
    dict `cpu_rates`, the tokens per CPU second of each run go into it.
    """
    for run in runs.values():
        run()
    best = {name: float("inf") for name in runs}
    best_cpu = dict(best)
    for _ in range(repeats):
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
            best_cpu[name] = min(best_cpu[name], time.process_time() - start_cpu)
    if cpu_rates is not None:
        cpu_rates.update({name: tokens / max(s, 1e-9) for name, s in best_cpu.items()})
    return {name: tokens / seconds for name, seconds in best.items()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="stories15M")
    parser.add_argument("--quick", action="store_true", help='the "tiny" preset, fewer tokens')
    parser.add_argument("--prompt-len", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="LiteRT threads")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    quiet_tensorflow()
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_recipes.causal_lm.graph_generate import weights_nbytes
    from keras_recipes.export import TFLiteGenerator, export_saved_model, export_tflite
    from keras_recipes.llama import LlamaConfig, build_llama
    from keras_recipes.serving import SavedModelSession

    threads = {
        "tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads() or "default",
        "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads() or "default",
        "litert": args.threads or "default",
    }
    conditions = print_conditions(threads=threads)
    preset = "tiny" if args.quick else args.preset
    new_tokens = 32 if args.quick else args.new_tokens
    keras.utils.set_random_seed(0)
    config = LlamaConfig.preset(preset)
    model = build_llama(config)
    prompt = (np.arange(args.prompt_len, dtype=np.int32)[None] * 37 + 1) % config.vocab_size
    print(
        f"{preset}: {model.count_params():,} parameters, prompt {args.prompt_len}, "
        f"{new_tokens} new tokens, greedy, batch 1"
    )

    figures = {"preset": preset, "new_tokens": new_tokens, "weights_bytes": weights_nbytes(model)}
    figures["conditions"] = conditions
    reference = model.generate(prompt, new_tokens)
    runs = {"keras": lambda: model.generate(prompt, new_tokens)}

    work = Path(tempfile.mkdtemp(prefix="export-bench-"))
    start = time.perf_counter()
    version = export_saved_model(model, work / "llama", verify=False)
    figures["saved_model_export_s"] = time.perf_counter() - start
    figures["saved_model_variables_bytes"] = sum(
        f.stat().st_size for f in (version / "variables").iterdir()
    )
    figures["saved_model_graph_bytes"] = (version / "saved_model.pb").stat().st_size
    loaded = tf.saved_model.load(str(version))
    generate = loaded.signatures["generate"]
    feeds = dict(
        token_ids=tf.constant(prompt),
        max_new_tokens=tf.constant([new_tokens]),
        temperature=tf.constant([0.0]),
        top_k=tf.constant([0]),
        top_p=tf.constant([1.0]),
        seed=tf.constant([0]),
    )
    same = np.array_equal(generate(**feeds)["token_ids"].numpy(), reference)
    figures["saved_model_equals_keras"] = bool(same)
    runs["saved_model"] = lambda: generate(**feeds)
    # The same signature through TF Serving's own loader (the C++ session
    # loader, by SignatureDef tensor names): what a served request runs.
    session = SavedModelSession(version)
    session_feeds = {key: value.numpy() for key, value in feeds.items()}
    same_session = np.array_equal(session.run("generate", session_feeds)["token_ids"], reference)
    figures["saved_model_session_equals_keras"] = bool(same_session)
    runs["saved_model_session"] = lambda: session.run("generate", session_feeds)

    # The same loop XLA-compiled (TF Serving: --xla_cpu_compilation_enabled=true).
    version = export_saved_model(model, work / "llama_xla", verify=False, jit_compile=True)
    generate_xla = tf.saved_model.load(str(version)).signatures["generate"]
    same_xla = np.array_equal(generate_xla(**feeds)["token_ids"].numpy(), reference)
    figures["saved_model_xla_equals_keras"] = bool(same_xla)
    runs["saved_model_xla"] = lambda: generate_xla(**feeds)

    for mode in (None, "float16", "dynamic-int8"):
        label = mode or "float32"
        start = time.perf_counter()
        path = export_tflite(model, work / f"llama-{label}.tflite", quantize=mode, verify=False)
        figures[f"tflite_{label}_export_s"] = time.perf_counter() - start
        figures[f"tflite_{label}_bytes"] = path.stat().st_size
        generator = TFLiteGenerator(path, num_threads=args.threads)
        out = generator.generate(prompt, new_tokens)
        figures[f"tflite_{label}_free_running_agreement"] = float(
            (out[:, args.prompt_len :] == reference[:, args.prompt_len :]).mean()
        )
        logits = generator.logits(reference[0, :-1])[args.prompt_len - 1 :]
        figures[f"tflite_{label}_next_token_agreement"] = float(
            (logits.argmax(-1) == reference[0, args.prompt_len :]).mean()
        )
        runs[f"tflite_{label}"] = lambda g=generator: g.generate(prompt, new_tokens)

    cpu_rates = {}
    rates = best_rates(runs, new_tokens, args.repeats, cpu_rates)
    for name, rate in rates.items():
        figures[f"{name}_tokens_per_s"] = rate
        figures[f"{name}_tokens_per_cpu_s"] = cpu_rates[name]
    keras_rate = figures["keras_tokens_per_s"]
    print(f"\n{'':<28}{'tokens/s':>10}{'vs Keras':>10}{'agreement':>11}{'MB':>9}")
    print(
        f"{'Keras model.generate (XLA)':<28}{keras_rate:>10.1f}{1.0:>9.2f}x{'':>11}"
        f"{figures['weights_bytes'] / 1e6:>9.1f}"
    )
    saved_mb = (figures["saved_model_variables_bytes"] + figures["saved_model_graph_bytes"]) / 1e6
    rate = figures["saved_model_tokens_per_s"]
    print(
        f"{'SavedModel generate':<28}{rate:>10.1f}{rate / keras_rate:>9.2f}x"
        f"{'exact' if same else 'DIFFERS':>11}{saved_mb:>9.1f}"
    )
    rate = figures["saved_model_session_tokens_per_s"]
    print(
        f"{'  (TF Serving loader, C API)':<28}{rate:>10.1f}{rate / keras_rate:>9.2f}x"
        f"{'exact' if same_session else 'DIFFERS':>11}{saved_mb:>9.1f}"
    )
    rate = figures["saved_model_xla_tokens_per_s"]
    print(
        f"{'SavedModel generate (XLA)':<28}{rate:>10.1f}{rate / keras_rate:>9.2f}x"
        f"{'exact' if same_xla else 'DIFFERS':>11}{saved_mb:>9.1f}"
    )
    for label in ("float32", "float16", "dynamic-int8"):
        rate = figures[f"tflite_{label}_tokens_per_s"]
        agreement = figures[f"tflite_{label}_next_token_agreement"]
        print(
            f"{'TFLite ' + label:<28}{rate:>10.1f}{rate / keras_rate:>9.2f}x"
            f"{agreement:>10.0%} {figures[f'tflite_{label}_bytes'] / 1e6:>8.1f}"
        )
    print("\nper CPU second (process time, all threads; robust to load from other processes):")
    keras_cpu = cpu_rates["keras"]
    for name, rate in cpu_rates.items():
        print(f"  {name:<26}{rate:>10.1f}{rate / keras_cpu:>9.2f}x")
    print("\nagreement: next-token argmax equal to Keras's along Keras's greedy continuation.")
    print(
        f"SavedModel: variables {figures['saved_model_variables_bytes'] / 1e6:.1f} MB "
        f"(weights {figures['weights_bytes'] / 1e6:.1f} MB), "
        f"graph {figures['saved_model_graph_bytes'] / 1e6:.1f} MB"
    )
    figures["conditions_after"] = print_conditions(label="after")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    main()
