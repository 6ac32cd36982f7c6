"""
Title: A tiny LLaMA trained from scratch on news text
Author: keras-recipes
Description: Train a SentencePiece tokenizer and a tiny LLaMA (RoPE, RMSNorm, SwiGLU, GQA) on gensim's Lee corpus, then sample from it.

This is the main job of keras-recipes. In about three minutes on two CPU cores
it goes from raw text to a language model that writes news-flavoured English:

1. learn a subword vocabulary (SentencePiece) from the text;
2. cut the token stream into `(inputs, targets)` windows, targets shifted by
   one token, holding the last 10% out for validation;
3. build a LLaMA decoder: rotary position embeddings in every attention
   layer, RMSNorm pre-normalisation, a SwiGLU feed-forward, grouped-query
   attention;
4. train with AdamW, linear warm-up then cosine decay, global-norm gradient
   clipping, reporting validation loss and perplexity after each epoch;
5. back up every few steps, so an interrupted run resumes where it stopped;
6. sample a continuation of a prompt, save the model and tokenizer, and
   export the model for TF Serving and TFLite.

The same script trains on several processes or machines with
`tf.distribute` (`--strategy multi-worker` and a `TF_CONFIG` per process).

Run it:

    python recipes/llama_tiny.py                      # the default run (~3 min)
    python recipes/llama_tiny.py --quick              # tiny sizes, under a minute
    python recipes/llama_tiny.py --corpus my_texts/   # your own .txt files

Interrupt it (Ctrl-C) and run the same command again: it continues from the
last backup, without losing or repeating a step. Run it again after it has
finished and it trains nothing: `--out` already holds that run, and it says
so. Other settings on a finished run are refused (a trained model is never
replaced by accident); pass `--out NEW_FOLDER` to train beside it, or
`--overwrite` to train it again from scratch. The default corpus is the Lee background corpus that
gensim ships with its tests: 300 Australian news articles, about 60,000 words.
"""

"""
## Setup

TensorFlow loads quietly; the flags are the same as `keras-recipes llama
train`'s. Every size has a default (`DEFAULTS`, the three-minute run) and a
`--quick` value (`QUICK`, under a minute, for tests).
"""

import argparse
import json
import sys
import time
from pathlib import Path

from keras_recipes import quiet_tensorflow

quiet_tensorflow()

import keras

from keras_recipes.cli import add_llama_train_arguments
from keras_recipes.data import (
    epoch_windows_dataset,
    language_model_datasets,
    load_builtin_corpus,
    load_text_files,
)
from keras_recipes.llama import LlamaConfig, build_llama
from keras_recipes.llama.distribute import (
    StepBackupAndRestore,
    check_same_on_every_worker,
    is_chief,
    make_strategy,
    prepare_for_strategy,
    read_backup,
    replica_batch_size,
    shard_by_data,
    worker_dir,
)
from keras_recipes.llama.train import (
    DEFAULTS,
    QUICK,
    PerplexityLogger,
    check_finished_run,
    check_run_settings,
    generate_command,
    inference_copy,
    interrupt_from_environment,
    language_model_loss,
    make_optimizer,
    sample_text,
    training_precision,
)
from keras_recipes.tokenizers import load_sentencepiece, train_sentencepiece


def parse_args(argv=None):
    """The flags, shared with `keras-recipes llama train`, and the run's settings."""
    parser = argparse.ArgumentParser(
        description="Train a SentencePiece tokenizer and a tiny LLaMA, then sample from it."
    )
    add_llama_train_arguments(parser, DEFAULTS, QUICK)
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else DEFAULTS)
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})
    settings["corpus"] = args.corpus
    return args, settings


args, settings = parse_args()

"""
`--strategy` picks TensorFlow's distribution engine, created before
TensorFlow runs anything: `default` is this one process; `mirrored` keeps a
replica of the model on every local GPU; `multi-worker` runs one replica per
process, on one machine or several, each process started with the same
command and a `TF_CONFIG` saying where all of them listen and which one it
is. `--batch-size` is the global batch: each step, every replica trains on
its share and the gradients are summed across replicas, so the learning
rate, the warm-up and the step counts mean the same on any number of them.
The chief process writes to `--out`, the others to `--out/worker-<i>`.
"""

try:
    strategy = make_strategy(args.strategy)
    replica_batch_size(settings["batch_size"], strategy)
except ValueError as error:
    sys.exit(f"error: {error}")
print(f"Strategy: {args.strategy}, {strategy.num_replicas_in_sync} replica(s).")
out = worker_dir(args.out, strategy)
keras.utils.set_random_seed(settings["seed"])

"""
A run keeps everything in `--out`: the tokenizer, a `backup/` folder that
`keras.callbacks.BackupAndRestore` writes every `--backup-steps` steps, the
per-epoch history, and at the end the model and `metrics.json`. If a backup
is there, this is a rerun after an interruption: it must use the same
settings, and it reuses the tokenizer it trained the first time. If the
model is there, the run has finished: the same settings leave nothing to
do, other settings are refused, and `--overwrite` starts over.
"""

try:
    finished = check_finished_run(out, settings, overwrite=args.overwrite)
except ValueError as error:
    sys.exit(f"error: {error}")
if finished is not None:
    print(
        f"{out} already holds a finished run with these settings "
        f"(val perplexity {finished.get('final_val_perplexity', float('nan')):.1f}): "
        "nothing to train. Pass --overwrite to train it again from scratch, or --out "
        "NEW_FOLDER to train another beside it."
    )
    print(f"Generate more: {generate_command(out, settings['max_new_tokens'])}")
    sys.exit(0)
out.mkdir(parents=True, exist_ok=True)
backup_dir = out / "backup"
backup = read_backup(backup_dir)
initial_epoch, initial_step = (backup["epoch"], backup["batch"]) if backup else (0, 0)
try:
    check_run_settings(out, settings, resuming=backup is not None)
except ValueError as error:
    sys.exit(f"error: {error}")
if backup:
    print(
        f"Resuming from the backup in {backup_dir}: {initial_epoch} epoch(s) "
        f"and {initial_step} step(s) already done."
    )

"""## Data: text and a SentencePiece tokenizer

The text is a list of documents, one news article each. SentencePiece learns
a subword vocabulary from it: frequent words become single pieces, rare ones
split into parts, so no word is ever out of vocabulary. Ids 0-3 are pad,
unknown, begin- and end-of-sequence.
"""

if args.corpus:
    documents = load_text_files(args.corpus)
else:
    documents = load_builtin_corpus(settings["corpus_name"])
print(f"{len(documents)} documents, {sum(len(d.split()) for d in documents):,} words")

tokenizer_path = out / "tokenizer.model"
if backup and tokenizer_path.is_file():
    tokenizer = load_sentencepiece(tokenizer_path)
else:
    tokenizer = train_sentencepiece(documents, vocab_size=settings["vocab_size"])
    tokenizer.save(tokenizer_path)
# Every worker trains its own tokenizer from the same text; they must agree.
check_same_on_every_worker(strategy, tokenizer_path.read_bytes(), "tokenizer")
example = "Hundreds of people have been forced to vacate their homes."
print(
    "Tokenized:",
    " ".join(tokenizer.id_to_piece(i) for i in tokenizer.encode(example)),
)

"""
Every document becomes `<bos> ids <eos>`, the documents are laid end to end,
the last 10% of tokens is held out for validation, and the stream is cut
into windows of `seq_len + 1` tokens: the model reads the first `seq_len` and
learns to predict, at every position, the token that comes next.
"""

prompt_length = len(tokenizer.encode(settings["prompt"], add_bos=True))
if prompt_length + settings["max_new_tokens"] > settings["seq_len"]:
    sys.exit(
        f"The prompt ({prompt_length} tokens) plus --max-new-tokens "
        f"{settings['max_new_tokens']} must fit in --seq-len {settings['seq_len']}."
    )
data = language_model_datasets(
    documents,
    tokenizer,
    seq_len=settings["seq_len"],
    batch_size=settings["batch_size"],
    validation_split=settings["validation_split"],
    seed=settings["seed"],
)
print(
    f"{len(data.train_tokens):,} training tokens, {len(data.validation_tokens):,} validation tokens"
)

"""
Training reads one stream of batches for all epochs, each epoch in its own
order that depends only on the seed and the epoch number. A resumed run
starts the stream at the epoch it resumes, and under `multi-worker` every
worker cuts the same global batches into per-replica pieces and takes its
own (`tf.data` auto-sharding by DATA).
"""

steps_per_epoch = int(data.train.cardinality())
train_stream = epoch_windows_dataset(
    data.train_tokens,
    settings["seq_len"],
    settings["batch_size"],
    epochs=settings["epochs"],
    first_epoch=min(initial_epoch, settings["epochs"] - 1),
    seed=settings["seed"],
)

"""## Model: a tiny LLaMA

The same architecture as LLaMA 2, at a size a laptop trains in minutes. The
output projection shares the token-embedding matrix (as in llama2.c's
TinyStories models), which saves parameters a small model cannot spare.
Under a strategy, the model (and later its optimizer) is built in the
strategy's scope, so every replica holds a mirrored copy of each weight.
With `--precision mixed_bfloat16` its matrix products run in bfloat16 on
float32 weights (about 1.5x faster on CPUs with AVX512-BF16).
"""

config = LlamaConfig(
    vocab_size=tokenizer.vocab_size,
    dim=settings["dim"],
    n_layers=settings["n_layers"],
    n_heads=settings["n_heads"],
    n_kv_heads=settings["n_kv_heads"],
    hidden_dim=settings["hidden_dim"],
    max_seq_len=settings["seq_len"],
    tie_embeddings=True,
    dropout=settings["dropout"],
)
with strategy.scope(), training_precision(settings["precision"]):
    model = build_llama(config)
print(f"LLaMA with {model.count_params():,} parameters: {config}")

"""## Training

AdamW's learning rate rises linearly for `warmup_steps`, then follows a
cosine down to a tenth of its peak at the last step. Gradients are clipped
to a global norm of 1, and weight decay skips the RMSNorm scales. The loss
is the mean cross-entropy of the next token; its exponential, the
perplexity, is the number of tokens the model is as unsure between as a
uniform guess would be.

`StepBackupAndRestore` (Keras' `BackupAndRestore`, step-exact) saves
weights, optimizer state, the epoch and the step every `--backup-steps`
steps and at each epoch's end, and deletes them when training completes; a
rerun passes over the steps the backup already holds. (Set
`KERAS_RECIPES_INTERRUPT_AFTER_STEPS=N` to simulate an interrupt after N
steps.) `prepare_for_strategy` clips the gradient after the replicas' shares
are summed, as in one process, and lets `fit` run under
`MultiWorkerMirroredStrategy` (see its docstring).
"""

with strategy.scope():
    model.compile(
        optimizer=make_optimizer(
            model,
            total_steps=steps_per_epoch * settings["epochs"],
            learning_rate=settings["learning_rate"],
            warmup_steps=settings["warmup_steps"],
            weight_decay=settings["weight_decay"],
            clipnorm=settings["clipnorm"],
        ),
        loss=language_model_loss(),
    )
prepare_for_strategy(model, strategy)
history_path = out / "history.json"
earlier = json.loads(history_path.read_text())[:initial_epoch] if initial_epoch else []
logger = PerplexityLogger(settings["batch_size"] * settings["seq_len"], history_path, earlier)
# A progress bar on a terminal; a log file or pipe gets only the logger's epoch lines.
progress = sys.stdout.isatty()
callbacks = [
    StepBackupAndRestore(backup_dir, save_freq=settings["backup_steps"], strategy=strategy),
    *([keras.callbacks.ProgbarLogger()] if progress else []),
    logger,
    *interrupt_from_environment(),
]
started = time.perf_counter()
try:
    with strategy.scope():
        model.fit(
            shard_by_data(train_stream),
            validation_data=shard_by_data(data.validation),
            epochs=settings["epochs"],
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            verbose=int(progress),
            shuffle=False,  # the stream holds every epoch's order already
        )
except KeyboardInterrupt as interrupt:
    print(f"\nInterrupted ({interrupt}). Run the same command again to resume.")
    sys.exit(130)
train_seconds = time.perf_counter() - started

"""## Sampling

Generation prefills the prompt in one pass, then decodes one token at a
time against a key/value cache. Temperature and top-k sampling trade
faithfulness for variety; `--temperature 0` is greedy. A model trained in
mixed precision is first copied to float32 (its weights already are). The
copy is not compiled: the loss and optimizer state are training's, and
`model.keras` without them is a third of the size and loads anywhere
`keras_recipes.llama` is installed.
"""

model = inference_copy(model)
sample = sample_text(
    model,
    tokenizer,
    settings["prompt"],
    settings["max_new_tokens"],
    temperature=settings["temperature"],
    top_k=settings["top_k"],
    top_p=settings["top_p"],
    seed=settings["seed"],
)
print(f"\nSample:\n{sample}\n")

"""## Saving the model, the tokenizer and the metrics"""

model.save(out / "model.keras")
metrics = {
    "epochs": logger.history,
    "final_val_loss": logger.history[-1].get("val_loss"),
    "final_val_perplexity": logger.history[-1].get("val_perplexity"),
    "resumed_from_epoch": initial_epoch,
    "resumed_from_step": initial_step,
    "strategy": args.strategy,
    "replicas": strategy.num_replicas_in_sync,
    "train_seconds_this_run": train_seconds,
    "train_tokens": int(len(data.train_tokens)),
    "validation_tokens": int(len(data.validation_tokens)),
    "parameters": int(model.count_params()),
    "config": config.to_dict(),
    "prompt": settings["prompt"],
    "sample": sample,
}
(out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
print(f"Saved {out / 'model.keras'}, {tokenizer_path} and {out / 'metrics.json'}.")
print(f"Generate more: {generate_command(out, settings['max_new_tokens'])}")
if not is_chief(strategy):
    sys.exit(0)  # the chief's model is the run's model: only it goes on to export

"""## Export

The trained model and its tokenizer are in `--out`; this last section is
where the model goes on to serving formats (SavedModel, TFLite) under
`saved_models/`.

`export_saved_model` writes the next version folder of
`saved_models/llama_tiny/` with three signatures: `serving_default` (token
ids -> logits), `generate` (the KV-cached decoding loop inside the graph)
and `generate_text` (plain text in and out, SentencePiece inside the
graph), checks each against this Keras model, adds TF Serving's warm-up
requests and only then renames the folder into place. `export_tflite`
writes the `prefill` / `decode` file LiteRT runs on a phone. A `--quick`
run exports into `--out` so that tests leave `saved_models/` alone.
"""

from keras_recipes.cli import serving_command  # noqa: E402
from keras_recipes.export import export_saved_model, export_tflite  # noqa: E402

saved_models = out / "saved_models" if args.quick else Path("saved_models")
version = export_saved_model(model, saved_models / "llama_tiny", tokenizer=tokenizer)
tflite_path = export_tflite(model, saved_models / f"llama_tiny-{version.name}.tflite")
metrics["export"] = {"saved_model": str(version), "tflite": str(tflite_path)}
(out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
print(f"Exported {version} (SavedModel) and {tflite_path} (TFLite). Serve it with:")
print(f"  {serving_command(version.parent)}")
print(
    '  curl -d \'{"signature_name": "generate_text", "instances": [{"prompt": '
    f'"{settings["prompt"]}", "max_new_tokens": {settings["max_new_tokens"]}, "temperature": 0.0, '
    '"top_k": 0, "top_p": 1.0, "seed": 0}]}\' localhost:8501/v1/models/llama_tiny:predict'
)
