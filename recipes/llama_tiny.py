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
step it stopped at, without losing or repeating one, and ends with the weights
an uninterrupted run ends with. Run it again after it has
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
`--quick` value (`QUICK`, under a minute, for tests). Each step below is a
public function of `keras_recipes.llama.train`; `keras-recipes llama train`
runs the same ones in a row (`train_llama`).
"""

import argparse
import sys
from pathlib import Path

from keras_recipes import quiet_tensorflow
from keras_recipes.train_flags import add_llama_train_arguments

quiet_tensorflow()

from keras_recipes.llama.distribute import is_chief, make_strategy
from keras_recipes.llama.train import (
    DEFAULTS,
    QUICK,
    build_model,
    check_prompt_fits,
    compile_model,
    finish_run,
    fit_model,
    generate_command,
    interrupt_from_environment,
    load_documents,
    make_datasets,
    open_run,
    resume_hint,
    run_tokenizer,
    sample_run,
    save_metrics,
    training_callbacks,
    training_settings,
)

parser = argparse.ArgumentParser(
    description="Train a SentencePiece tokenizer and a tiny LLaMA, then sample from it."
)
add_llama_train_arguments(parser, DEFAULTS, QUICK)
args = parser.parse_args()
overrides = {k: v for k, v in vars(args).items() if k in DEFAULTS}

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

A run keeps everything in `--out`: the tokenizer, a `backup/` folder that
`StepBackupAndRestore` writes every `--backup-steps` steps, the per-epoch
history, and at the end the model and `metrics.json`. If a backup is there,
this is a rerun after an interruption: it must use the same settings, and it
reuses the tokenizer it trained the first time. If the model is there, the
run has finished: the same settings leave nothing to do, other settings are
refused, and `--overwrite` starts over.
"""

try:
    strategy = make_strategy(args.strategy)
    settings = training_settings(args.quick, args.corpus, **overrides)
    run = open_run(args.out, settings, strategy, args.strategy, overwrite=args.overwrite)
except ValueError as error:
    sys.exit(f"error: {error}")
print(f"Strategy: {args.strategy}, {strategy.num_replicas_in_sync} replica(s).")
out = run.out
if run.finished is not None:
    print(
        f"{out} already holds a finished run with these settings "
        f"(val perplexity {run.finished.get('final_val_perplexity') or float('nan'):.1f}): "
        "nothing to train. Pass --overwrite to train it again from scratch, or --out "
        "NEW_FOLDER to train another beside it."
    )
    print(f"Generate more: {generate_command(out, settings['max_new_tokens'])}")
    sys.exit(0)
if run.resuming:
    print(
        f"Resuming from the backup in {run.backup_dir}: {run.initial_epoch} epoch(s) "
        f"and {run.initial_step} step(s) already done."
    )

"""## Data: text and a SentencePiece tokenizer

The text is a list of documents, one news article each. SentencePiece learns
a subword vocabulary from it: frequent words become single pieces, rare ones
split into parts, so no word is ever out of vocabulary. Ids 0-3 are pad,
unknown, begin- and end-of-sequence. Every worker trains its own tokenizer
from the same text, and they must agree.
"""

documents = load_documents(settings)
print(f"{len(documents)} documents, {sum(len(d.split()) for d in documents):,} words")
tokenizer = run_tokenizer(run, documents)
example = "Hundreds of people have been forced to vacate their homes."
print(
    "Tokenized:",
    " ".join(tokenizer.id_to_piece(i) for i in tokenizer.encode(example)),
)

"""
Every document becomes `<bos> ids <eos>`, the documents are laid end to end,
the last 10% of tokens is held out for validation, and the stream is cut
into windows of `seq_len + 1` tokens: the model reads the first `seq_len` and
learns to predict, at every position, the token that comes next. The prompt
sampled at the end must fit in that context, which is checked now, before
any training.

Training reads one stream of batches for all epochs, each epoch in its own
order that depends only on the seed and the epoch number. A resumed run
starts the stream at the epoch it resumes, and under `multi-worker` every
worker cuts the same global batches into per-replica pieces and takes its
own (`tf.data` auto-sharding by DATA).
"""

try:
    check_prompt_fits(tokenizer, settings)
except ValueError as error:
    sys.exit(f"error: {error}")
data, train_stream, steps_per_epoch = make_datasets(documents, tokenizer, run)
print(
    f"{len(data.train_tokens):,} training tokens, {len(data.validation_tokens):,} validation tokens"
)

"""## Model: a tiny LLaMA

The same architecture as LLaMA 2, at a size a laptop trains in minutes. The
output projection shares the token-embedding matrix (as in llama2.c's
TinyStories models), which saves parameters a small model cannot spare.
Under a strategy, the model (and later its optimizer) is built in the
strategy's scope, so every replica holds a mirrored copy of each weight.
On a CPU with AVX512-BF16 or AMX its matrix products run in bfloat16 on
float32 weights (`--precision auto`, the default: about 1.4x faster there;
elsewhere it stays float32, which is then the faster one); `--precision
float32` or `mixed_bfloat16` forces either.
"""

model = build_model(tokenizer.vocab_size, run)
print(f"LLaMA with {model.count_params():,} parameters: {model.config}")

"""## Training

AdamW's learning rate rises linearly for `warmup_steps`, then follows a
cosine down to a tenth of its peak at the last step. Gradients are clipped
to a global norm of 1, and weight decay skips the RMSNorm scales. The loss
is the mean cross-entropy of the next token; its exponential, the
perplexity, is the number of tokens the model is as unsure between as a
uniform guess would be. `compile_model` also readies the model for its
strategy: the gradient is clipped after the replicas' shares are summed, as
in one process, and `fit` runs under `MultiWorkerMirroredStrategy`.

`StepBackupAndRestore` (Keras' `BackupAndRestore`, step-exact) saves the
weights, the optimizer state, dropout's random state, the epoch and the step
every `--backup-steps` steps, at each epoch's end and on Ctrl-C; `fit`
starts at the backup's epoch (`initial_epoch`) and passes over the steps it
already holds, so a resumed run ends with the weights of an uninterrupted
one. (Set `KERAS_RECIPES_INTERRUPT_AFTER_STEPS=N` to simulate an interrupt
after N steps.) A progress bar shows on a terminal; a log file or a pipe
gets only the per-epoch lines.
"""

model = compile_model(model, run, steps_per_epoch)
callbacks, verbose = training_callbacks(run, "auto", interrupt_from_environment())
try:
    train_seconds = fit_model(model, run, data, train_stream, steps_per_epoch, callbacks, verbose)
except KeyboardInterrupt as interrupt:
    print(f"\nInterrupted ({interrupt}). {resume_hint(out)}")
    sys.exit(130)
except (FloatingPointError, OSError) as error:  # a NaN loss, a full disk: the backup is kept
    sys.exit(f"llama_tiny: {error}")

"""## Saving, then sampling

The model is saved first, so nothing can lose it: `model.keras` is written
to a temporary file and renamed into place, then `metrics.json`, and only
then is the backup deleted. The saved model is an uncompiled float32 copy
(a model trained in mixed precision has float32 weights already): the loss
and optimizer state are training's, and `model.keras` without them is a
third of the size and loads anywhere `keras_recipes.llama` is installed.

Generation prefills the prompt in one pass, then decodes one token at a
time against a key/value cache. Temperature and top-k sampling trade
faithfulness for variety; `--temperature 0` is greedy.
"""

model, metrics = finish_run(model, run, data, callbacks, train_seconds)
sample = sample_run(model, tokenizer, run, metrics)
print(f"\nSample:\n{sample}\n")
print(f"Saved {out / 'model.keras'}, {run.tokenizer_path} and {out / 'metrics.json'}.")
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

from keras_recipes.export import export_saved_model, export_tflite  # noqa: E402
from keras_recipes.serving import serving_command  # noqa: E402

saved_models = out / "saved_models" if args.quick else Path("saved_models")
version = export_saved_model(model, saved_models / "llama_tiny", tokenizer=tokenizer)
tflite_path = export_tflite(model, saved_models / f"llama_tiny-{version.name}.tflite")
metrics["export"] = {"saved_model": str(version), "tflite": str(tflite_path)}
save_metrics(run, metrics)
print(f"Exported {version} (SavedModel) and {tflite_path} (TFLite). Serve it with:")
print(f"  {serving_command(version.parent)}")
print(
    '  curl -d \'{"signature_name": "generate_text", "instances": [{"prompt": '
    f'"{settings["prompt"]}", "max_new_tokens": {settings["max_new_tokens"]}, "temperature": 0.0, '
    '"top_k": 0, "top_p": 1.0, "seed": 0}]}\' localhost:8501/v1/models/llama_tiny:predict'
)
