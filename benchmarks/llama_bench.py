"""Benchmark: our LLaMA against keras-hub's, same run, same shapes.

The "stories15M" shape (dim 288, 6 layers, 6 heads, vocab 32000, context
256), random weights, float32. Prints, for ours and keras-hub's:

- greedy decode tokens/s at batch 1 and batch 8 (1-token prompt, 255 new
  tokens: the whole 256 context), ours `model.generate` vs
  `keras_hub.models.LlamaCausalLM.generate` with the "greedy" sampler;
- first-call latency of generate (tracing + XLA compilation included);
- our ms/token near position 16 and near position 240 (cost must not grow);
- training tokens/s (best step), batch 8 x 256, forward + backward + AdamW: our
  `build_llama` vs keras-hub `LlamaCausalLM` (backbone + tied head), ours in
  each of `--train-modes`: fp32, bf16 (Keras `mixed_bfloat16`: bfloat16
  compute, float32 variables, RMSNorm / softmax / logits in float32) and
  either compiled with XLA (`fp32-jit`, `bf16-jit`; keras-hub is then also
  timed with `jit_compile=True`);
- with `--loss-curve STEPS`: per-step training loss of ours in float32 and
  in mixed_bfloat16 from the same init on the same batches, next to a
  float32 run from another init (the noise the bf16 gap is judged against);
- with `--first-token`: seconds from calling `generate()` to the first new
  token in fresh processes: ours with XLA's persistent cache off, on and
  empty (first run), on and filled (second run), and keras-hub's first call;
- with `--prefill`: prefill tokens/s of a 256-token prompt (one new token),
  ours against keras-hub;
- model FLOP utilisation (MFU) of the training and prefill rows: PaLM's
  FLOPs per token (`flops_per_token`) x tokens/s over the float32 peak of
  the cores in the affinity mask (`keras_recipes.hardware.peak_float32_flops`:
  FMA pipes x lanes x clock, from the CPU's flags and `cpu MHz`, printed);
- with `--scaling`: stories15M, stories42M, stories110M and a
  Llama-3.2-1B-shaped model, each in float32 (our Keras model, XLA
  `generate`) and with weight-only bfloat16 and int8 weights
  (`QuantizedLlama.random`: drawn matrix by matrix, never a float32 model;
  the path `quantize_for_decoding` gives), context capped by
  `--scaling-context`: greedy decode tokens/s, the share of the roofline
  (the bytes a step reads, weights + KV window, against the bandwidth a
  large numpy copy measures in the same run; for int8, whose decoding loop
  multiplies bfloat16 copies, also against its stored 1-byte weights),
  batch 1/8/32 throughput and ms/token at positions 16 ... context (the
  difference of two greedy runs from the same prompt length, so per-call
  costs cancel; the roofline share uses the first of them); JSON (`--out`)
  and a PNG (`--plot`, when matplotlib is importable).

- with `--llamacpp BIN_DIR`: llama.cpp rows in the decode, prefill and
  `--scaling` tables. The same weights go to llama.cpp through its own
  converter (`llama-convert-llama2c-to-ggml`, from our llama2.c `.bin` and a
  `tokenizer.bin` of the model's vocabulary size; float32 GGUF), plus a
  Q8_0 copy by `llama-quantize` where built (next to our int8 rows), and
  `llama-bench -t 1` times them (`-p 0 -n N` for decode, `-p 256 -n 0` for
  prefill). llama.cpp runs one thread; pin the whole run to one core
  (`taskset -c 0`) so that ours does too.

Every run prints the conditions first (CPU model, the AVX512/AMX flags,
cores, threads, load average: `benchmarks/conditions.py`) and the load
again at the end, and stores both in the JSON.

Ratios are ours / keras-hub. Absolute numbers depend on the machine and on
whatever else runs on it; the two are timed alternately and each keeps
its best run, so compare ratios. Pin to one core with
`taskset -c 0 python benchmarks/llama_bench.py`.

Usage:
    python benchmarks/llama_bench.py [--skip-decode] [--skip-train] [--train-steps 3]
        [--repeats 3] [--train-modes fp32 bf16 fp32-jit bf16-jit]
        [--loss-curve 60 [--loss-curve-seq-len 64] [--loss-curve-jit]]
        [--first-token] [--prefill] [--llamacpp /path/to/llama.cpp/build/bin]
    taskset -c 1 python benchmarks/llama_bench.py --skip-decode --skip-train --scaling \
        [--scaling-presets stories15M stories42M] [--scaling-context 1024] \
        [--scaling-new-tokens 32] --out scaling.json --plot scaling.png
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
from conditions import print_conditions


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def best_of(fn, repeats):
    return min(timed(fn)[0] for _ in range(repeats))


def flops_per_token(cfg, context, training=False):
    """Model FLOPs per token, PaLM's count (Chowdhery et al. 2022, appendix B).

    2 FLOPs per weight that multiplies (every block matrix and the output
    head; not the embedding lookup nor the norms) and attention's
    `2 x 2 x n_layers x context x dim` (scores and values, the full square
    as PaLM counts it), forward; three times that for training (forward +
    backward).
    """
    kv = cfg.n_kv_heads * cfg.head_dim
    per_layer = 2 * cfg.dim * cfg.dim + 2 * cfg.dim * kv + 3 * cfg.dim * cfg.ffn_hidden_dim
    weights = cfg.n_layers * per_layer + cfg.vocab_size * cfg.dim
    forward = 2 * weights + 4 * cfg.n_layers * context * cfg.dim
    return 3 * forward if training else forward


def mfu(tokens_per_s, cfg, context, training=False):
    """Model FLOP utilisation: FLOPs/token x tokens/s over the core's peak (`peak_float32_flops`)
    times the cores in the affinity mask."""
    from keras_recipes.hardware import peak_float32_flops

    peak = peak_float32_flops()[0] * len(os.sched_getaffinity(0))
    return tokens_per_s * flops_per_token(cfg, context, training) / peak if peak else float("nan")


def build_hub(cfg):
    import keras_hub

    backbone = keras_hub.models.LlamaBackbone(
        vocabulary_size=cfg.vocab_size,
        num_layers=cfg.n_layers,
        num_query_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads,
        hidden_dim=cfg.dim,
        intermediate_dim=cfg.ffn_hidden_dim,
        layer_norm_epsilon=cfg.norm_eps,
        tie_word_embeddings=cfg.tie_embeddings,
        dtype="float32",
    )
    hub = keras_hub.models.LlamaCausalLM(backbone, preprocessor=None)
    hub.compile(sampler="greedy")
    return hub


def build_models(cfg):
    from keras_recipes.llama import build_llama

    keras.utils.set_random_seed(0)
    ours = build_llama(cfg)
    return ours, build_hub(cfg)


def decode(ours, hub, cfg, batch, repeats, report, llamacpp=None):
    new = cfg.max_seq_len - 1
    prompt = np.ones((batch, 1), "int32")
    hub_ids = np.zeros((batch, cfg.max_seq_len), "int32")
    hub_ids[:, 0] = 1
    hub_mask = np.zeros_like(hub_ids)
    hub_mask[:, 0] = 1
    hub_inputs = {"token_ids": hub_ids, "padding_mask": hub_mask}

    def run_ours():
        return ours.generate(prompt, max_new_tokens=new)

    def run_hub():
        return hub.generate(hub_inputs, stop_token_ids=None)

    first_ours, out = timed(run_ours)
    first_hub, hub_out = timed(run_hub)
    assert out.shape == (batch, cfg.max_seq_len)
    assert np.asarray(hub_out["token_ids"]).shape == (batch, cfg.max_seq_len)
    # Alternate the two (three with llama.cpp) and keep each one's best: other
    # jobs on a shared machine then slow all alike instead of whichever ran last.
    cpp = LlamaCpp(ours, llamacpp) if llamacpp and batch == 1 else None  # one sequence
    ours_s = hub_s = float("inf")
    for _ in range(repeats):
        ours_s = min(ours_s, timed(run_ours)[0])
        hub_s = min(hub_s, timed(run_hub)[0])
        if cpp:
            cpp.run(new=new)
    tps_ours, tps_hub = batch * new / ours_s, batch * new / hub_s
    print(f"decode batch {batch}: {new} new tokens/sequence")
    print(f"  ours     {tps_ours:8.1f} tokens/s   first call {first_ours:6.2f} s")
    print(f"  keras-hub{tps_hub:8.1f} tokens/s   first call {first_hub:6.2f} s")
    print(f"  ratio ours/keras-hub: {tps_ours / tps_hub:.2f}x")
    report[f"decode_b{batch}"] = dict(
        ours_tokens_per_s=tps_ours,
        keras_hub_tokens_per_s=tps_hub,
        ratio=tps_ours / tps_hub,
        ours_first_call_s=first_ours,
        keras_hub_first_call_s=first_hub,
    )
    if cpp:
        rates = cpp.close(f"-p 0 -n {new}")
        print(f"  ratio ours/llama.cpp f32: {tps_ours / rates['f32']:.2f}x")
        report["decode_b1"]["llamacpp_tokens_per_s"] = rates
        report["decode_b1"]["ratio_vs_llamacpp_f32"] = tps_ours / rates["f32"]


def per_position(ours, cfg, repeats, report):
    """ms/token of 16 decode steps starting near position 16 and near 240."""
    steps, rates = 16, {}
    for start in (16, cfg.max_seq_len - steps):
        prompt = np.ones((1, start), "int32")
        ours.generate(prompt, 1)
        ours.generate(prompt, steps)  # compile outside the timing
        prefill = best_of(lambda p=prompt: ours.generate(p, 1), repeats)
        both = best_of(lambda p=prompt: ours.generate(p, steps), repeats)
        rates[start] = 1000 * (both - prefill) / (steps - 1)
    near, far = rates.values()
    print(f"ours ms/token: near position 16 {near:.2f}, near {cfg.max_seq_len - 16} {far:.2f}")
    report["ms_per_token_by_position"] = {str(k): v for k, v in rates.items()}


TRAIN_MODES = ("fp32", "bf16", "fp32-jit", "bf16-jit")


def build_ours(cfg, mode, weights=None):
    """Our model under the mode's dtype policy ("bf16": `mixed_bfloat16`)."""
    from keras_recipes.llama import build_llama

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if mode.startswith("bf16") else "float32")
    try:
        model = build_llama(cfg)
    finally:
        keras.config.set_dtype_policy(previous)
    if weights is not None:
        model.set_weights(weights)  # mixed_bfloat16 variables stay float32
    return model


def compile_for_training(model, mode, learning_rate=1e-4):
    """AdamW and mean token cross-entropy; ours with `LanguageModelLoss` (head + loss fused)."""
    from keras_recipes.causal_lm.losses import LanguageModelLoss
    from keras_recipes.llama import LlamaModel

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if isinstance(model, LlamaModel):
        loss = LanguageModelLoss()
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate),
        loss=loss,
        jit_compile=mode.endswith("-jit"),
    )


def train(ours, hub, cfg, steps, report, modes=("fp32",)):
    """Best-step training tokens/s of ours in each mode against keras-hub.

    keras-hub trains in float32 with `compile`'s default (no XLA on a
    CPU-only machine: `jit_compile="auto"` resolves to False there); when a
    "-jit" mode of ours is asked for, keras-hub is also timed with
    `jit_compile=True`, and each "-jit" row's ratio is also given against it.
    """
    batch, length = 8, cfg.max_seq_len
    rng = np.random.default_rng(0)
    x = rng.integers(0, cfg.vocab_size, (batch, length)).astype("int32")
    y = rng.integers(0, cfg.vocab_size, (batch, length)).astype("int32")
    hub_inputs = {"token_ids": x, "padding_mask": np.ones_like(x)}
    weights = ours.get_weights()
    runs = {}
    for mode in modes:
        model = ours if mode == "fp32" else build_ours(cfg, mode, weights)
        runs[f"ours {mode}"] = (model, x, mode)
    hub_modes = ["fp32"] + (["fp32-jit"] if any(m.endswith("-jit") for m in modes) else [])
    hub_weights = hub.get_weights()
    for mode in hub_modes:
        model = hub
        if mode != "fp32":  # a second keras-hub model, same weights, XLA step
            model = build_hub(cfg)
            model.set_weights(hub_weights)
        runs[f"keras-hub {mode}"] = (model, hub_inputs, mode)
    first, best = {}, {}
    for name, (model, inputs, mode) in runs.items():
        compile_for_training(model, mode)
        first[name], _ = timed(lambda m=model, i=inputs: m.train_on_batch(i, y))
    for _ in range(steps):  # alternate, keep each one's best step
        for name, (model, inputs, _mode) in runs.items():
            seconds, _ = timed(lambda m=model, i=inputs: m.train_on_batch(i, y))
            best[name] = min(best.get(name, float("inf")), seconds)
    rates = {name: batch * length / seconds for name, seconds in best.items()}
    print(
        f"train batch {batch} x {length}, forward + backward + AdamW, load {os.getloadavg()[0]:.1f}"
    )
    for name in runs:
        utilisation = mfu(rates[name], cfg, length, training=True)
        print(
            f"  {name:18s} {rates[name]:8.1f} tokens/s   MFU {100 * utilisation:4.1f}%   "
            f"(first step {first[name]:.2f} s)"
        )
    hub_rate = rates["keras-hub fp32"]
    report["train_b8x256"] = dict(
        keras_hub_tokens_per_s=hub_rate,
        load_average_1m=os.getloadavg()[0],
        flops_per_token=flops_per_token(cfg, length, training=True),
        mfu={name: mfu(rate, cfg, length, training=True) for name, rate in rates.items()},
    )
    for mode in modes:
        ratio = rates[f"ours {mode}"] / hub_rate
        line = f"  ratio ours {mode} / keras-hub fp32: {ratio:.2f}x"
        entry = dict(tokens_per_s=rates[f"ours {mode}"], ratio=ratio)
        if mode.endswith("-jit"):
            entry["ratio_vs_keras_hub_jit"] = rates[f"ours {mode}"] / rates["keras-hub fp32-jit"]
            line += f"   / keras-hub fp32-jit: {entry['ratio_vs_keras_hub_jit']:.2f}x"
        print(line)
        report["train_b8x256"][f"ours_{mode}"] = entry
    if "keras-hub fp32-jit" in rates:
        report["train_b8x256"]["keras_hub_jit_tokens_per_s"] = rates["keras-hub fp32-jit"]
    # The original single figure (ours fp32 / keras-hub fp32), kept for comparisons.
    if "fp32" in modes:
        report["train_b8x256"]["ours_tokens_per_s"] = rates["ours fp32"]
        report["train_b8x256"]["ratio"] = rates["ours fp32"] / hub_rate


def loss_curves(cfg, steps, seq_len, jit, report, batch=8, period=61, learning_rate=1e-3):
    """Training loss per step: float32 (two inits) and mixed_bfloat16.

    Data: one random token sequence of `period` tokens repeated, each row
    starting at a random offset, so the loss falls from ~ln(vocab) as the
    model learns the cycle. The float32 run with a second init is the noise
    reference for the bf16 - fp32 gap (same init, same batches).
    """
    rng = np.random.default_rng(1)
    cycle = rng.integers(0, cfg.vocab_size, period)
    tiled = np.tile(cycle, (seq_len + 1) // period + 2)
    batches = []
    for _ in range(steps):
        starts = rng.integers(0, period, batch)
        rows = np.stack([tiled[s : s + seq_len + 1] for s in starts]).astype("int32")
        batches.append((rows[:, :-1], rows[:, 1:]))
    suffix = "-jit" if jit else ""
    keras.utils.set_random_seed(0)
    reference = build_ours(cfg, "fp32")
    weights = reference.get_weights()
    keras.utils.set_random_seed(1)
    other_init = build_ours(cfg, "fp32")
    runs = {
        "fp32": (reference, "fp32" + suffix),
        "bf16": (build_ours(cfg, "bf16", weights), "bf16" + suffix),
        "fp32 seed 1": (other_init, "fp32" + suffix),
    }
    curves, seconds = {}, {}
    for name, (model, mode) in runs.items():
        keras.utils.set_random_seed(0)
        compile_for_training(model, mode, learning_rate)
        start = time.perf_counter()
        curves[name] = [float(model.train_on_batch(x, y)) for x, y in batches]
        seconds[name] = time.perf_counter() - start
    print(
        f"loss curves: batch {batch} x {seq_len}, period-{period} repeating tokens, "
        f"AdamW lr {learning_rate}, {'XLA' if jit else 'no XLA'}"
    )
    print("  step      fp32      bf16   |bf16-fp32|  fp32 seed 1  |seed1-fp32|")
    for i in range(steps):
        a, b, c = curves["fp32"][i], curves["bf16"][i], curves["fp32 seed 1"][i]
        print(f"  {i:4d}  {a:8.4f}  {b:8.4f}  {abs(b - a):10.4f}  {c:11.4f}  {abs(c - a):11.4f}")
    gap = np.abs(np.subtract(curves["bf16"], curves["fp32"]))
    noise = np.abs(np.subtract(curves["fp32 seed 1"], curves["fp32"]))
    print(
        f"  mean |bf16 - fp32| {gap.mean():.4f} (max {gap.max():.4f}); "
        f"mean |fp32 seed 1 - fp32| {noise.mean():.4f} (max {noise.max():.4f})"
    )
    print(
        f"  final loss: fp32 {curves['fp32'][-1]:.4f}, bf16 {curves['bf16'][-1]:.4f}, "
        f"fp32 seed 1 {curves['fp32 seed 1'][-1]:.4f}"
    )
    print("  wall s (incl. compile): " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    report["loss_curves"] = dict(
        batch=batch,
        seq_len=seq_len,
        jit=jit,
        curves=curves,
        mean_abs_gap_bf16=float(gap.mean()),
        mean_abs_gap_fp32_seed=float(noise.mean()),
    )


# --- llama.cpp, the same weights --------------------------------------------

LLAMACPP_TOOLS = ("llama-bench", "llama-convert-llama2c-to-ggml")


def llamacpp_tools(bin_dir):
    """The llama.cpp programs `--llamacpp` needs, checked; `llama-quantize` if built."""
    tools = {name: os.path.join(bin_dir, name) for name in (*LLAMACPP_TOOLS, "llama-quantize")}
    missing = [name for name in LLAMACPP_TOOLS if not os.access(tools[name], os.X_OK)]
    if missing:
        raise SystemExit(
            f"--llamacpp {bin_dir}: no {', '.join(missing)} there; give llama.cpp's build/bin "
            "folder (cmake --build build --target llama-bench llama-convert-llama2c-to-ggml)."
        )
    if not os.access(tools["llama-quantize"], os.X_OK):
        tools.pop("llama-quantize")
    return tools


def llamacpp_models(model, tools, folder):
    """`{"f32": gguf, "q8_0": gguf}` of `model`'s weights (q8_0 only with llama-quantize).

    Our llama2.c `.bin` (legacy v0, as `run.c` reads it) goes through
    llama.cpp's own converter; the vocabulary it copies is a `tokenizer.bin`
    of placeholder pieces, as many as the model's (the text never matters
    to a timing).
    """
    from keras_recipes.llama.checkpoints import save_checkpoint
    from keras_recipes.tokenizers import Llama2cTokenizer

    os.makedirs(folder, exist_ok=True)
    checkpoint = save_checkpoint(model, os.path.join(folder, "model.bin"))
    vocab = model.config.vocab_size
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % i for i in range(256)]
    pieces = (pieces + [b" w%d" % i for i in range(vocab)])[:vocab]
    tokenizer = Llama2cTokenizer(pieces, [0.0] * vocab).save(os.path.join(folder, "tokenizer.bin"))
    models = {"f32": os.path.join(folder, "model-f32.gguf")}
    subprocess.run(
        [tools["llama-convert-llama2c-to-ggml"], "--copy-vocab-from-model", str(tokenizer),
         "--llama2c-model", str(checkpoint), "--llama2c-output-model", models["f32"]],
        check=True, capture_output=True,
    )  # fmt: skip
    if "llama-quantize" in tools:
        models["q8_0"] = os.path.join(folder, "model-q8_0.gguf")
        subprocess.run(
            [tools["llama-quantize"], models["f32"], models["q8_0"], "Q8_0", "1"],
            check=True, capture_output=True,
        )  # fmt: skip
    os.remove(checkpoint)
    return models


def llamacpp_tokens_per_s(tools, gguf, prompt=0, new=0, repeats=1):
    """`llama-bench -t 1`'s best tokens/s over `repeats` runs (after its warm-up run) of a
    `prompt`-token prefill or of `new` decoded tokens."""
    done = subprocess.run(
        [tools["llama-bench"], "-m", gguf, "-t", "1", "-p", str(prompt), "-n", str(new),
         "-r", str(repeats), "-o", "json"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (row,) = json.loads(done.stdout)
    return float(max(row["samples_ts"]))


class LlamaCpp:
    """llama.cpp on a model's weights, converted once (`llamacpp_models`), timed on demand.

    `best(prompt=, new=)` runs `llama-bench` once per GGUF (f32, q8_0) and
    keeps each one's best so far, so that a caller can alternate it with
    its own runs as the other rows do.
    """

    def __init__(self, model, tools):
        self.tools, self.folder = tools, tempfile.TemporaryDirectory()
        self.models = llamacpp_models(model, tools, self.folder.name)
        self.rates = {}

    def run(self, prompt=0, new=0):
        for kind, path in self.models.items():
            rate = llamacpp_tokens_per_s(self.tools, path, prompt, new)
            self.rates[kind] = max(self.rates.get(kind, 0.0), rate)
        return self.rates

    def close(self, label):
        self.folder.cleanup()
        print(
            f"  llama.cpp ({label}, -t 1, best run) "
            + ", ".join(f"{kind} {rate:.1f} tokens/s" for kind, rate in self.rates.items())
        )
        return self.rates


def llamacpp_rows(model, tools, label, prompt=0, new=0, repeats=3):
    """`{"f32": tokens/s, "q8_0": tokens/s}`: llama.cpp's best of `repeats` on `model`'s weights."""
    cpp = LlamaCpp(model, tools)
    for _ in range(repeats):
        cpp.run(prompt, new)
    return cpp.close(label)


# --- time to the first token, fresh processes --------------------------------

FIRST_TOKEN_CHILD = """
import json, sys, time
start = time.perf_counter()
sys.path.insert(0, sys.argv[2])
import keras_recipes
import keras
import numpy as np
from keras_recipes.llama import LlamaConfig, build_llama
cfg = LlamaConfig.preset("stories15M")
keras.utils.set_random_seed(0)
if sys.argv[1] == "ours":
    model = build_llama(cfg)
    ready, cpu = time.perf_counter(), time.process_time()
    first = []
    model.generate([[1]], max_new_tokens=1, callback=lambda ids: first.append(time.perf_counter()))
else:
    from llama_bench import build_hub
    model = build_hub(cfg)
    ids = np.array([[1, 0]], "int32")
    ready, cpu = time.perf_counter(), time.process_time()
    model.generate({"token_ids": ids, "padding_mask": ids > 0}, stop_token_ids=None)
    first = [time.perf_counter()]
print(json.dumps(dict(first_token_s=first[0] - ready, first_token_cpu_s=time.process_time() - cpu,
                      start_up_s=ready - start)))
"""


def first_token(repeats, report):
    """Seconds from `generate()` to the first new token, stories15M shape, fresh processes.

    Each row is a new Python process (imports, model build, then one
    `generate` call with a 1-token prompt, timed to its first new token):
    ours with the persistent XLA cache off (every process compiles), ours on
    an empty cache folder (a first run: compiles and writes) and again on
    the same folder (a second run: loads), and keras-hub's first call
    (its own default: no cache). Each row keeps its best of `repeats`, and
    gives the CPU seconds the process spent too (all threads), which a busy
    machine inflates less than the wall time.
    """
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for attempt in range(repeats):
            cache = os.path.join(folder, f"xla{attempt}")
            runs = {
                "ours, cache off": ("ours", "0"),
                "ours, first run (empty cache)": ("ours", cache),
                "ours, second run (cache filled)": ("ours", cache),
                "keras-hub first call": ("hub", "0"),
            }
            for name, (which, setting) in runs.items():
                env = {
                    **os.environ,
                    "KERAS_RECIPES_XLA_CACHE": setting,
                    "TF_CPP_MIN_LOG_LEVEL": "3",
                }
                env.pop("TF_XLA_FLAGS", None)
                done = subprocess.run(
                    [sys.executable, "-c", FIRST_TOKEN_CHILD, which, os.path.dirname(__file__)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                result = json.loads(done.stdout.strip().splitlines()[-1])
                best = rows.setdefault(name, result)
                if result["first_token_s"] < best["first_token_s"]:
                    rows[name] = result
    hub = rows["keras-hub first call"]["first_token_s"]
    print(f"first token, fresh process, stories15M shape, 1-token prompt (best of {repeats}):")
    for name, row in rows.items():
        print(
            f"  {name:32s} {row['first_token_s']:6.2f} s   vs keras-hub "
            f"{row['first_token_s'] / hub:5.2f}x   CPU {row['first_token_cpu_s']:5.2f} s   "
            f"(imports + build {row['start_up_s']:.1f} s)"
        )
    report["first_token"] = rows


# --- prefill ----------------------------------------------------------------


def prefill(cfg, repeats, report, length=256, llamacpp=None):
    """Prefill tokens/s of a `length`-token prompt, ours against keras-hub, batch 1.

    Ours: `generate(prompt, max_new_tokens=1)` (one compiled pass over the
    prompt that fills the KV cache, then the first token sampled). keras-hub:
    `generate` on `length + 1` token ids with the prompt's padding mask,
    which builds its cache over all `length + 1` positions and runs one
    decode step. The context is widened to `2 * length` so the prompt fits.
    """
    cfg = cfg.replace(max_seq_len=max(cfg.max_seq_len, 2 * length))
    ours, hub = build_models(cfg)
    rng = np.random.default_rng(0)
    prompt = rng.integers(1, cfg.vocab_size, (1, length)).astype("int32")
    hub_ids = np.zeros((1, length + 1), "int32")
    hub_ids[:, :length] = prompt
    hub_inputs = {"token_ids": hub_ids, "padding_mask": hub_ids > 0}
    runs = {
        "ours": lambda: ours.generate(prompt, max_new_tokens=1),
        "keras-hub": lambda: hub.generate(hub_inputs, stop_token_ids=None),
    }
    first = {name: timed(run)[0] for name, run in runs.items()}
    best = {name: float("inf") for name in runs}
    cpp = LlamaCpp(ours, llamacpp) if llamacpp else None
    for _ in range(repeats):
        if cpp:
            cpp.run(prompt=length)
        for name, run in runs.items():
            best[name] = min(best[name], timed(run)[0])
    rates = {name: length / seconds for name, seconds in best.items()}
    ratio = rates["ours"] / rates["keras-hub"]
    print(f"prefill, {length}-token prompt, batch 1, {cfg.dim}-dim {cfg.n_layers} layers:")
    for name in runs:
        print(
            f"  {name:10s} {rates[name]:8.0f} tokens/s   MFU {100 * mfu(rates[name], cfg, length):4.1f}%"
            f"   (first call {first[name]:.2f} s)"
        )
    print(f"  ratio ours/keras-hub: {ratio:.2f}x")
    report["prefill_256"] = dict(
        ours_tokens_per_s=rates["ours"],
        keras_hub_tokens_per_s=rates["keras-hub"],
        ratio=ratio,
        ours_first_call_s=first["ours"],
        keras_hub_first_call_s=first["keras-hub"],
        flops_per_token=flops_per_token(cfg, length),
        ours_mfu=mfu(rates["ours"], cfg, length),
    )
    if llamacpp:
        cpp = cpp.close(f"-p {length} -n 0")
        print(
            f"  ratio ours/llama.cpp f32: {rates['ours'] / cpp['f32']:.2f}x (llama.cpp MFU "
            f"{100 * mfu(cpp['f32'], cfg, length) / len(os.sched_getaffinity(0)):.1f}% of one core)"
        )
        report["prefill_256"]["llamacpp_tokens_per_s"] = cpp
        report["prefill_256"]["ratio_vs_llamacpp_f32"] = rates["ours"] / cpp["f32"]


# --- scaling ----------------------------------------------------------------

# (config, dtypes measured by default, default context cap). stories42M and
# stories110M are llama2.c's TinyStories models; the 1B row is Llama 3.2 1B's
# shape (2048 wide, 16 layers, 32 heads, 8 KV heads, 8192 hidden, 128256
# vocab, tied embeddings): 5 GB in float32, 2.5 GB in bfloat16, 1.3 GB int8.
SCALING_DTYPES = ("float32", "bfloat16", "int8")
SCALING_PRESETS = {
    "stories15M": (None, SCALING_DTYPES, 256),
    "stories42M": (None, SCALING_DTYPES, 1024),
    "stories110M": (None, SCALING_DTYPES, 1024),
    "llama3.2-1b": (None, SCALING_DTYPES, 512),
}


def scaling_config(name, context=None):
    from keras_recipes.llama import LlamaConfig

    _, _, default_context = SCALING_PRESETS[name]
    cfg = LlamaConfig.preset(name)
    return cfg.replace(max_seq_len=min(cfg.max_seq_len, context or default_context))


def copy_bandwidth(nbytes=512 * 2**20, repeats=5):
    """Bytes/s of `np.copyto` on two `nbytes` arrays (read + write counted: 2 x nbytes)."""
    source = np.ones(nbytes // 4, np.float32)
    target = np.empty_like(source)
    np.copyto(target, source)
    seconds = best_of(lambda: np.copyto(target, source), repeats)
    return 2 * nbytes / seconds


def build_in_dtype(cfg, dtype):
    """float32: our Keras model. bfloat16 / int8: `QuantizedLlama.random`, the weights
    drawn matrix by matrix and stored at once (no float32 model is ever built)."""
    from keras_recipes.llama import build_llama
    from keras_recipes.llama.quantize import QuantizedLlama

    if dtype == "float32":
        keras.utils.set_random_seed(0)
        return build_llama(cfg)
    return QuantizedLlama.random(cfg, dtype, seed=0)


def bytes_per_token(model, cfg, window):
    """`(bytes a decode step reads, stored weight bytes, KV-window bytes)`.

    A step reads every weight once (the embedding table as the output
    matrix; its row lookup is negligible) plus the float32 KV window it
    attends over. A `QuantizedLlama`'s loop reads its per-loop copies:
    bfloat16 where the CPU multiplies bfloat16 (int8 included), else float32.
    """
    from keras_recipes.llama.quantize import QuantizedLlama, bfloat16_kernel

    kv = 2 * cfg.n_layers * window * cfg.n_kv_heads * cfg.head_dim * 4
    if isinstance(model, QuantizedLlama):
        stored = model.weights_nbytes()
        per_weight = 2 if bfloat16_kernel() == "onednn" else 4
        read = sum(int(np.prod(m.shape)) for m in model.matrices) * per_weight
        return read + kv, stored, kv
    weights = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)
    return weights + kv, weights, kv


def ms_per_token_by_difference(model, cfg, repeats, span=16):
    """ms/token near positions 16 ... context for a loop that runs in one graph call:
    (time of `2 * span` new tokens - time of `span`) / span, from the same prompt
    length (the prefill cancels), best of `repeats` each."""
    found = {}
    lengths = sorted({16, 64, 128, 256, 512, 1024, cfg.max_seq_len - 2 * span} & set(
        range(16, cfg.max_seq_len - 2 * span + 1)))  # fmt: skip
    for length in lengths:
        prompt = [[1] * length]
        model.generate(prompt, max_new_tokens=2 * span)  # compile this window
        short = best_of(lambda p=prompt: model.generate(p, max_new_tokens=span), repeats)
        long = best_of(lambda p=prompt: model.generate(p, max_new_tokens=2 * span), repeats)
        found[str(length + span + span // 2)] = 1000 * max(long - short, 0.0) / span
    return found


def scaling_row(name, dtype, cfg, bandwidth, new_tokens, batches, repeats, llamacpp=None):
    started = time.perf_counter()
    model = build_in_dtype(cfg, dtype)
    row = dict(
        preset=name,
        dtype=dtype,
        parameters=cfg.num_parameters(),
        context=cfg.max_seq_len,
        build_s=time.perf_counter() - started,
    )
    new = min(new_tokens, cfg.max_seq_len - 1)
    throughput = {}
    for batch in batches:
        prompt = np.ones((batch, 1), "int32")
        model.generate(prompt, max_new_tokens=new)  # compile
        seconds = best_of(lambda p=prompt: model.generate(p, max_new_tokens=new), repeats)
        throughput[str(batch)] = batch * new / seconds
    # Whole `generate` calls from a one-token prompt (per-call costs included).
    row["tokens_per_s_by_batch"] = throughput
    row["decode_tokens_per_s"] = throughput.get("1")
    positions = ms_per_token_by_difference(model, cfg, repeats)
    row["ms_per_token_by_position"] = positions
    # The roofline compares a step's own time (near the first position
    # measured, per-call costs cancelled) with the bytes it reads there.
    first = min(positions, key=int)
    step_tokens_per_s = 1000 / positions[first]
    read, stored, kv = bytes_per_token(model, cfg, int(first))
    roofline = bandwidth / read
    row.update(
        weight_bytes=stored,
        bytes_per_token=read,
        step_tokens_per_s=step_tokens_per_s,
        roofline_position=int(first),
        roofline_tokens_per_s=roofline,
        roofline_share=step_tokens_per_s / roofline,
    )
    if dtype != "float32":  # against what reading 2- or 1-byte weights would allow
        row["roofline_share_of_stored_bytes"] = step_tokens_per_s / (bandwidth / (stored + kv))
    if llamacpp and dtype == "float32":  # llama.cpp on these weights: f32, and Q8_0 if built
        row["llamacpp_tokens_per_s"] = llamacpp_rows(
            model, llamacpp, f"{name}, -p 0 -n {new}", new=new, repeats=repeats
        )
    return row


def scaling(args, report):
    """The `--scaling` table: decode speed and roofline share by model size."""
    bandwidth = copy_bandwidth()
    print(f"scaling: numpy copy bandwidth {bandwidth / 1e9:.1f} GB/s (2 x bytes / s)")
    rows = []
    for name in args.scaling_presets:
        cfg = scaling_config(name, args.scaling_context)
        dtypes = args.scaling_dtypes or SCALING_PRESETS[name][1]
        for dtype in dtypes:
            started = time.perf_counter()
            row = scaling_row(
                name, dtype, cfg, bandwidth, args.scaling_new_tokens, args.scaling_batches,
                args.repeats, args.llamacpp_tools,
            )  # fmt: skip
            cpp = next((r.get("llamacpp_tokens_per_s") for r in rows[::-1]
                        if r["preset"] == name and "llamacpp_tokens_per_s" in r), None)  # fmt: skip
            cpp = row.get("llamacpp_tokens_per_s", cpp)
            if cpp:  # ours against llama.cpp: float32 vs f32, int8 vs Q8_0
                peer = cpp.get("q8_0") if dtype == "int8" else cpp["f32"]
                if peer:
                    row["ratio_vs_llamacpp"] = row["decode_tokens_per_s"] / peer
                    row["llamacpp_peer"] = "q8_0" if dtype == "int8" else "f32"
            row["wall_s"] = time.perf_counter() - started
            row["load_average_1m"] = os.getloadavg()[0]
            rows.append(row)
            keras.backend.clear_session()
            gc.collect()
            positions = row["ms_per_token_by_position"]
            stored = row.get("roofline_share_of_stored_bytes")
            print(
                f"  {name:12s} {dtype:9s} {row['parameters'] / 1e6:7.1f}M  "
                f"generate {row['decode_tokens_per_s'] or float('nan'):6.1f} tok/s, "
                f"a step {row['step_tokens_per_s']:6.1f} tok/s, roofline "
                f"{row['roofline_tokens_per_s']:6.1f} ({100 * row['roofline_share']:3.0f}%"
                + (f"; of stored bytes {100 * stored:.0f}%" if stored else "")
                + ")  batch "
                + " ".join(f"{b}:{r:.0f}" for b, r in row["tokens_per_s_by_batch"].items())
                + f" tok/s  ms/token {min(positions.values()):.1f}-{max(positions.values()):.1f}"
                f" (positions 16-{cfg.max_seq_len})  [{row['wall_s']:.0f} s, load "
                f"{row['load_average_1m']:.1f}]"
                + (f"  vs llama.cpp {row['llamacpp_peer']}: {row['ratio_vs_llamacpp']:.2f}x"
                   if "ratio_vs_llamacpp" in row else "")
            )  # fmt: skip
            report["scaling"] = dict(copy_bandwidth_bytes_per_s=bandwidth, rows=rows)
            if args.out:  # row by row: a long run stopped midway keeps what it measured
                with open(args.out, "w") as f:
                    json.dump(report, f, indent=2)
    report["scaling"] = dict(copy_bandwidth_bytes_per_s=bandwidth, rows=rows)
    if args.plot:
        plot_scaling(rows, args.plot)


def plot_scaling(rows, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"  (no PNG: matplotlib is not installed; pip install matplotlib to get {path})")
        return
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.5))
    for dtype in sorted({row["dtype"] for row in rows}):
        mine = [row for row in rows if row["dtype"] == dtype and "decode_tokens_per_s" in row]
        params = [row["parameters"] / 1e6 for row in mine]
        left.plot(params, [row["step_tokens_per_s"] for row in mine], "o-", label=f"{dtype}")
        left.plot(
            params, [row["roofline_tokens_per_s"] for row in mine], "x:", label=f"{dtype} roofline"
        )
        for batch in ("1", "8", "32"):
            points = [
                (row["parameters"] / 1e6, row["tokens_per_s_by_batch"][batch])
                for row in rows
                if row["dtype"] == dtype and batch in row["tokens_per_s_by_batch"]
            ]
            if points:
                middle.plot(*zip(*points, strict=True), "o-", label=f"{dtype} batch {batch}")
    for row in rows:
        positions = row["ms_per_token_by_position"]
        right.plot(
            [int(p) for p in positions],
            list(positions.values()),
            label=f"{row['preset']} {row['dtype']}",
        )
    left.set(xscale="log", yscale="log", xlabel="parameters (M)", ylabel="tokens/s, batch 1",
             title="decode vs the memory roofline")  # fmt: skip
    middle.set(xscale="log", yscale="log", xlabel="parameters (M)", ylabel="tokens/s (all sequences)",
               title="batch throughput")  # fmt: skip
    right.set(yscale="log", xlabel="position", ylabel="ms/token", title="cost along the context")
    for axis in (left, middle, right):
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"  plot: {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument(
        "--train-modes",
        nargs="+",
        choices=TRAIN_MODES,
        default=["fp32"],
        help="our training rows: fp32, bf16 (mixed_bfloat16), and either with XLA (-jit)",
    )
    parser.add_argument(
        "--loss-curve",
        type=int,
        default=0,
        metavar="STEPS",
        help="also print fp32 vs mixed_bfloat16 loss curves over STEPS steps",
    )
    parser.add_argument("--loss-curve-seq-len", type=int, default=64)
    parser.add_argument("--loss-curve-jit", action="store_true")
    parser.add_argument("--skip-decode", action="store_true")
    parser.add_argument(
        "--first-token",
        action="store_true",
        help="time to the first token in fresh processes, XLA cache off / first / second run, "
        "and keras-hub's",
    )
    parser.add_argument(
        "--prefill", action="store_true", help="256-token prompt prefill tokens/s vs keras-hub"
    )
    parser.add_argument("--scaling", action="store_true", help="the model-size table (see above)")
    parser.add_argument(
        "--scaling-presets", nargs="+", choices=list(SCALING_PRESETS), default=list(SCALING_PRESETS)
    )
    parser.add_argument(
        "--scaling-dtypes",
        nargs="+",
        choices=SCALING_DTYPES,
        help="weight dtypes for every preset (default: all three)",
    )
    parser.add_argument(
        "--scaling-context",
        type=int,
        help="cap every preset's context (default 256 / 1024 / 1024 / 512); ms/token is "
        "measured up to it",
    )
    parser.add_argument("--scaling-new-tokens", type=int, default=32)
    parser.add_argument("--scaling-batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--plot", help="with --scaling: write a PNG plot here (needs matplotlib)")
    parser.add_argument(
        "--llamacpp",
        metavar="BIN_DIR",
        help="llama.cpp's build/bin folder: add llama.cpp rows (same weights, llama-bench -t 1) "
        "to the decode, prefill and scaling tables",
    )
    parser.add_argument("--out", help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    args.llamacpp_tools = llamacpp_tools(args.llamacpp) if args.llamacpp else None

    import keras_recipes  # noqa: F401  (turns on the XLA cache before TensorFlow starts)
    from keras_recipes.hardware import default_compute_dtype, peak_float32_flops
    from keras_recipes.llama import LlamaConfig
    from keras_recipes.xla_cache import xla_cache_directory

    cfg = LlamaConfig.preset("stories15M")
    threads = {"tf_intra_op": "default (one per core in the affinity mask)"}
    conditions = print_conditions(threads=threads)
    cache = os.environ.get("TF_XLA_FLAGS", "") and xla_cache_directory()
    print(f"  default compute dtype here: {default_compute_dtype()}; XLA cache: {cache or 'off'}")
    peak, how = peak_float32_flops()
    print(f"  float32 peak, one core: {peak / 1e9:.0f} GFLOP/s = {how}; MFU is over that x cores")
    cores = len(os.sched_getaffinity(0))
    if args.llamacpp and cores > 1:
        print(
            f"  note: {cores} cores in the affinity mask: TensorFlow uses them all, llama.cpp "
            "one thread (-t 1); run under `taskset -c 0` for a one-core comparison"
        )
    report = {
        "cores": cores,
        "load_average_1m": os.getloadavg()[0],
        "conditions": conditions,
        "xla_cache": cache or None,
        "peak_float32_flops_per_core": peak,
    }
    needs_models = not (args.skip_decode and args.skip_train)
    if needs_models:
        print(
            f"stories15M shape, float32, {cores} core(s) available, load {os.getloadavg()[0]:.1f}"
        )
        ours, hub = build_models(cfg)
    if not args.skip_decode:
        for batch in args.batches:
            decode(ours, hub, cfg, batch, args.repeats, report, args.llamacpp_tools)
        per_position(ours, cfg, args.repeats, report)
    if not args.skip_train:
        train(ours, hub, cfg, args.train_steps, report, args.train_modes)
    if args.loss_curve:
        loss_curves(cfg, args.loss_curve, args.loss_curve_seq_len, args.loss_curve_jit, report)
    if args.prefill:
        prefill(cfg, args.repeats, report, llamacpp=args.llamacpp_tools)
    if args.first_token:
        first_token(args.repeats, report)
    if args.scaling:
        scaling(args, report)
    report["conditions_after"] = print_conditions(label="after")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
