"""Benchmark: streaming against not streaming, same model, same run.

For each shape (the `llama train` default model: 1.0M parameters, vocab
1024, its SentencePiece tokenizer trained on the built-in corpus; and the
stories15M shape with a synthetic 32000-piece llama2.c tokenizer), random
float32 weights (the end-of-sequence row zeroed so greedy decoding runs the
whole length), greedy, batch 1, a 5-token prompt, prints tokens/s of whole
`generate` calls (prefill included) for:

- `generate(prompt, n)`: the library at full speed, no callback;
- `generate(prompt, n, callback=no-op)`: streaming, chunks of
  `STREAM_INTERVAL` seconds (`keras_recipes.causal_lm.generation`);
- `stream_generate`: what `keras-recipes llama generate` runs after loading,
  its text written to a `StringIO` (incremental detokenization included,
  the terminal's own cost left out);
- "token by token": `STREAM_INTERVAL = 0` and no `OVERHEAD_SHARE` (one
  compiled call per token, as
  before chunking) with a callback that decodes the whole text at every
  token, as the CLI did: the old way, for reference;

and the ratios callback/no-callback and CLI/library, with the seconds to
the first callback. The runs alternate and each keeps its best of
`--repeats`, so a busy machine slows them alike; compare the ratios. Each
row also gives tokens per CPU second (all threads), which a crowded
machine disturbs less than the wall time.

Usage:
    taskset -c 0 python benchmarks/streaming_bench.py [--repeats 5] [--new-tokens 200]
        [--shapes train-default stories15M] [--out streaming.json]
"""

import argparse
import io
import json
import os
import time

import keras
import numpy as np
from conditions import print_conditions

SHAPES = {
    # keras-recipes llama train's defaults (keras_recipes/llama/train.py DEFAULTS).
    "train-default": dict(
        vocab_size=1024,
        dim=128,
        n_layers=4,
        n_heads=4,
        n_kv_heads=2,
        hidden_dim=352,
        max_seq_len=256,
    ),  # fmt: skip
    "stories15M": None,
}


def tokenizer_for(name, vocab_size):
    from keras_recipes.data import load_builtin_corpus
    from keras_recipes.tokenizers import Llama2cTokenizer, train_sentencepiece

    if name == "train-default":
        return train_sentencepiece(load_builtin_corpus("lee_background"), vocab_size=vocab_size)
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % i for i in range(256)]
    pieces += [b" "] + [b" w%d" % i for i in range(vocab_size - len(pieces) - 1)]
    return Llama2cTokenizer(pieces, [0.0] * vocab_size)


def build(name):
    from keras_recipes.llama import LlamaConfig, build_llama

    fields = SHAPES[name]
    cfg = LlamaConfig(**fields) if fields else LlamaConfig.preset("stories15M")
    keras.utils.set_random_seed(0)
    model = build_llama(cfg)
    tokenizer = tokenizer_for(name, cfg.vocab_size)
    table = model.tok_embeddings.embeddings
    rows = np.asarray(table)
    rows[tokenizer.eos_id] = 0.0  # logit 0: never the argmax, so every run is full length
    table.assign(rows)
    return model, tokenizer


def best_seconds(runs, repeats):
    """Each run's best wall time and best CPU time (all threads), the runs alternating."""
    wall = {name: float("inf") for name in runs}
    cpu = dict(wall)
    for _ in range(repeats):
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall[name] = min(wall[name], time.perf_counter() - start)
            cpu[name] = min(cpu[name], time.process_time() - start_cpu)
    return wall, cpu


def measure(name, new_tokens, repeats):
    from keras_recipes.causal_lm import generation
    from keras_recipes.cli import stream_generate

    model, tokenizer = build(name)
    new_tokens = min(new_tokens, model.config.max_seq_len - 8)
    prompt = tokenizer.encode("The government said", add_bos=True)[:5]
    prompt += [tokenizer.bos_id] * (5 - len(prompt))
    first = {}

    def no_callback():
        return model.generate([prompt], new_tokens)

    def callback(key="callback"):
        start, seen = time.perf_counter(), []

        def record(ids):
            if not seen:
                first[key] = min(first.get(key, 1e9), time.perf_counter() - start)
            seen.append(ids.shape[1])

        model.generate([prompt], new_tokens, callback=record)
        return seen

    def cli():
        return stream_generate(model, tokenizer, prompt, io.StringIO(), max_new_tokens=new_tokens)

    def token_by_token():  # one call a token, the whole text decoded at every token
        interval, generation.STREAM_INTERVAL = generation.STREAM_INTERVAL, 0.0
        share, generation.OVERHEAD_SHARE = generation.OVERHEAD_SHARE, float("inf")
        out = io.StringIO()
        printed = tokenizer.decode(prompt)
        start = time.perf_counter()

        def whole_text(ids):
            nonlocal printed
            if "token by token" not in first:
                first["token by token"] = time.perf_counter() - start
            text = tokenizer.decode(ids[0].tolist())
            out.write(text[len(printed) :])
            printed = text

        try:
            model.generate([prompt], new_tokens, callback=whole_text)
        finally:
            generation.STREAM_INTERVAL, generation.OVERHEAD_SHARE = interval, share

    runs = {
        "no callback": no_callback,
        "callback": callback,
        "CLI (stream_generate)": cli,
        "token by token (old)": token_by_token,
    }
    for run in runs.values():
        run()  # compile every window outside the timing
    chunks = callback("chunks")  # the widths the callback saw, for the record
    seconds, cpu_seconds = best_seconds(runs, repeats)
    rates = {key: new_tokens / value for key, value in seconds.items()}
    cpu_rates = {key: new_tokens / value for key, value in cpu_seconds.items()}
    full, full_cpu = rates["no callback"], cpu_rates["no callback"]
    cfg = model.config
    print(
        f"{name}: {cfg.num_parameters() / 1e6:.1f}M parameters, dim {cfg.dim}, {cfg.n_layers} "
        f"layers, vocab {cfg.vocab_size}; greedy, batch 1, {len(prompt)}-token prompt, "
        f"{new_tokens} new tokens, STREAM_INTERVAL {generation.STREAM_INTERVAL} s, "
        f"OVERHEAD_SHARE {generation.OVERHEAD_SHARE}, best of "
        f"{repeats}, load {os.getloadavg()[0]:.1f}"
    )
    for key, rate in rates.items():
        print(
            f"  {key:24s} {rate:8.1f} tokens/s   {rate / full:5.2f}x no callback   "
            f"(per CPU second: {cpu_rates[key]:8.1f}, {cpu_rates[key] / full_cpu:5.2f}x)"
        )
    print(
        f"  ratio callback/no-callback {rates['callback'] / full:.2f}x; "
        f"CLI/library {rates['CLI (stream_generate)'] / full:.2f}x; "
        f"callbacks per run {len(chunks)} (new tokens at each: "
        f"{[w - len(prompt) for w in chunks][:12]}...)"
    )
    print(
        f"  first callback after {1000 * first['callback']:.1f} ms (token by token "
        f"{1000 * first['token by token']:.1f} ms): right after the prefill in both"
    )
    return dict(
        parameters=cfg.num_parameters(),
        new_tokens=new_tokens,
        tokens_per_s=rates,
        tokens_per_cpu_s=cpu_rates,
        callback_ratio=rates["callback"] / full,
        cli_ratio=rates["CLI (stream_generate)"] / full,
        callback_widths=chunks,
        first_callback_s=first,
        load_average_1m=os.getloadavg()[0],
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--new-tokens", type=int, default=200, help="the CLI's default")
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--out", help="write the figures to this JSON file")
    args = parser.parse_args(argv)

    import keras_recipes  # noqa: F401  (the XLA cache, before TensorFlow starts)

    report = {"conditions": print_conditions(threads={"tf_intra_op": "default"})}
    for name in args.shapes:
        report[name] = measure(name, args.new_tokens, args.repeats)
    report["conditions_after"] = print_conditions(label="after")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
