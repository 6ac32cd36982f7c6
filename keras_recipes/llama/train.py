"""Training a LLaMA from text: the pieces and the whole job.

The pieces, each usable on its own with any `keras.Model` language model:

- `warmup_cosine_schedule`: linear warm-up to the peak learning rate, then a
  cosine decay to a floor (Keras' `CosineDecay` with `warmup_target`).
- `make_optimizer`: AdamW on that schedule, with global-norm gradient
  clipping and no weight decay on 1-D weights (norm scales), as in LLaMA and
  nanoGPT.
- `language_model_loss`: token-level cross-entropy from logits (fused with
  a `LlamaModel`'s output head when it trains).
- `training_precision` / `inference_copy`: build a model for mixed-bfloat16
  training, then hand back an uncompiled float32 model to sample, save and
  export (its `.keras` file loads without the training loss).
- `PerplexityLogger`: after each epoch prints validation loss, perplexity
  (`exp(val_loss)`) and training tokens/s, and keeps them for metrics.json.
- `InterruptAfterSteps`: stops training with a `KeyboardInterrupt` after N
  steps, to show (and test) that a backup callback resumes
  (`train_llama(..., callbacks=[InterruptAfterSteps(n)])`).

`train_llama` strings them together: corpus -> SentencePiece tokenizer ->
windows -> `build_llama` -> `fit` with `StepBackupAndRestore` -> a sample -> the
model (`model.keras`), tokenizer (`tokenizer.model`) and `metrics.json` in
one folder. A folder holding a finished run is never trained over
(`check_finished_run`): the same settings find nothing left to train, other
settings are refused unless `overwrite=True`. It runs on one process or on `tf.distribute` (`strategy=`, see
`keras_recipes.llama.distribute`): the global batch is split across
replicas, and backups every `backup_steps` steps let a killed run resume
without losing or repeating a step. `recipes/llama_tiny.py` walks through the same steps as a
readable script; `keras-recipes llama train` calls `train_llama`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np

# The default run: README's main job, 3 min 4 s on 2 CPU cores (2026-11-30).
DEFAULTS = dict(
    corpus_name="lee_background",
    epochs=10,
    seq_len=128,
    batch_size=16,
    vocab_size=1024,
    dim=128,
    n_layers=4,
    n_heads=4,
    n_kv_heads=2,
    hidden_dim=352,
    dropout=0.1,
    learning_rate=3e-3,
    warmup_steps=100,
    weight_decay=0.1,
    clipnorm=1.0,
    validation_split=0.1,
    backup_steps=20,
    prompt="The government said",
    max_new_tokens=48,
    temperature=0.8,
    top_k=40,
    top_p=None,
    seed=0,
    precision="float32",
)
# --quick: under a minute, for tests and smoke runs (small corpus, tiny model).
QUICK = dict(
    DEFAULTS,
    corpus_name="lee",
    epochs=2,
    seq_len=32,
    batch_size=8,
    vocab_size=256,
    dim=32,
    n_layers=1,
    n_heads=2,
    n_kv_heads=1,
    hidden_dim=64,
    warmup_steps=5,
    backup_steps=5,
    max_new_tokens=12,
)
INTERRUPT_ENV = "KERAS_RECIPES_INTERRUPT_AFTER_STEPS"
PRECISIONS = ("float32", "mixed_bfloat16")
# What a run writes into its folder; `overwrite=True` deletes these (exports stay).
RUN_FILES = ("model.keras", "tokenizer.model", "metrics.json", "history.json", "run.json", "backup")
# Settings that only pick the sample: a resumed or finished run may change them.
SAMPLING_SETTINGS = ("prompt", "max_new_tokens", "temperature", "top_k", "top_p")


@contextlib.contextmanager
def training_precision(precision: str):
    """Layers built inside compute in `precision`: `"float32"` or `"mixed_bfloat16"`.

    Under `"mixed_bfloat16"` the weights stay float32 and matrix products run
    in bfloat16 (RMSNorm, softmax and the loss stay float32): on CPUs with
    AVX512-BF16 a LLaMA trains about 1.5x faster (`benchmarks/llama_bench.py
    --train-modes fp32 bf16`, which also prints both loss curves).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; received {precision!r}.")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def inference_copy(model):
    """An uncompiled float32 `LlamaModel` with `model`'s weights.

    What training samples from, saves and exports. Mixed precision is a
    training setting (under `mixed_bfloat16` the variables are float32
    already, so nothing is rounded), and the compiled loss and optimizer
    state are training state: left out, `model.keras` loads with
    `keras.models.load_model` wherever `keras_recipes.llama` is importable,
    and is a third of the size (AdamW keeps two moments per weight).
    """
    from keras_recipes.llama import build_llama

    with training_precision("float32"):
        copy = build_llama(model.config)
    copy.set_weights(model.get_weights())
    return copy


def warmup_cosine_schedule(
    learning_rate: float, total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.1
) -> keras.optimizers.schedules.CosineDecay:
    """Linear warm-up from 0 to `learning_rate`, then cosine decay to a floor.

    Args:
        learning_rate: float. The peak learning rate, reached after warm-up.
        total_steps: int. Warm-up plus decay steps (the whole run).
        warmup_steps: int. Steps of linear warm-up. Defaults to `0`.
        min_ratio: float. The floor as a fraction of `learning_rate`.
            Defaults to `0.1` (LLaMA's and nanoGPT's choice).

    Examples:

    ```python
    schedule = warmup_cosine_schedule(1e-3, total_steps=1000, warmup_steps=100)
    float(schedule(50))   # 5e-4, half-way up
    float(schedule(100))  # 1e-3, the peak
    float(schedule(1000)) # 1e-4, the floor
    ```
    """
    if learning_rate <= 0:
        raise ValueError(f"`learning_rate` must be positive; received {learning_rate}.")
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"Need 0 <= warmup_steps < total_steps; received warmup_steps={warmup_steps}, "
            f"total_steps={total_steps}. Lower --warmup-steps or train for more steps."
        )
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"`min_ratio` must be in [0, 1]; received {min_ratio}.")
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=total_steps - warmup_steps,
        alpha=min_ratio,
        warmup_target=learning_rate,
        warmup_steps=warmup_steps,
    )


def make_optimizer(
    model: keras.Model,
    total_steps: int,
    learning_rate: float = 3e-3,
    warmup_steps: int = 0,
    weight_decay: float = 0.1,
    clipnorm: float | None = 1.0,
    beta_1: float = 0.9,
    beta_2: float = 0.95,
) -> keras.optimizers.AdamW:
    """AdamW with warm-up + cosine decay and global-norm gradient clipping.

    Weight decay applies to matrices only: 1-D weights (RMSNorm scales,
    biases) are excluded, as in LLaMA and nanoGPT.

    Args:
        model: keras.Model. A built model, whose 1-D weights skip decay.
        total_steps: int. Optimizer steps in the whole run.
        learning_rate: float. Peak learning rate. Defaults to `3e-3`.
        warmup_steps: int. Linear warm-up steps. Defaults to `0`.
        weight_decay: float. Decoupled weight decay. Defaults to `0.1`.
        clipnorm: float or None. Clip the global norm of all gradients to
            this; `None` disables clipping. Defaults to `1.0`.
        beta_1: float. Defaults to `0.9`.
        beta_2: float. Defaults to `0.95` (LLaMA's).
    """
    optimizer = keras.optimizers.AdamW(
        learning_rate=warmup_cosine_schedule(learning_rate, total_steps, warmup_steps),
        weight_decay=weight_decay,
        beta_1=beta_1,
        beta_2=beta_2,
        global_clipnorm=clipnorm,
    )
    optimizer.exclude_from_weight_decay(
        var_list=[v for v in model.trainable_variables if len(v.shape) < 2]
    )
    return optimizer


def language_model_loss() -> keras.losses.Loss:
    """Mean next-token cross-entropy from logits `(B, T, vocab)` and ids `(B, T)`.

    A `LanguageModelLoss`: `LlamaModel.train_step` computes it fused with
    the output head, without the whole logits tensor.
    """
    from keras_recipes.llama.losses import LanguageModelLoss

    return LanguageModelLoss()


class PerplexityLogger(keras.callbacks.Callback):
    """Prints validation loss and perplexity after every epoch and keeps them.

    Perplexity is `exp(mean cross-entropy per token)`; with equal-length
    windows Keras' validation loss is exactly that mean. Training speed is
    the tokens of the epoch's training steps over their wall time
    (validation excluded; epoch 1 includes tracing).

    Args:
        tokens_per_step: int. `batch_size * seq_len`.
        history_path: str or None. A JSON file rewritten after each epoch with
            every record so far, so a resumed run keeps the epochs it did not
            redo. Defaults to `None`.
        history: list of dict. Records of earlier epochs (from a run that was
            interrupted). Defaults to none.

    Attributes:
        history: list of dict, one per epoch: `epoch`, `loss`, `perplexity`,
            `val_loss`, `val_perplexity`, `tokens_per_second`,
            `learning_rate`.
    """

    def __init__(
        self,
        tokens_per_step: int,
        history_path: str | os.PathLike | None = None,
        history: list[dict] | None = None,
    ):
        super().__init__()
        self.tokens_per_step = tokens_per_step
        self.history_path = history_path
        self.history = list(history or [])

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._steps, self._train_seconds = time.perf_counter(), 0, None

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1

    def on_test_begin(self, logs=None):
        if self._train_seconds is None:  # fit's validation pass, not a nested evaluate
            self._train_seconds = time.perf_counter() - self._start

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        seconds = self._train_seconds or (time.perf_counter() - self._start)
        optimizer = self.model.optimizer
        record = {
            "epoch": epoch + 1,
            "loss": float(logs["loss"]),
            "perplexity": _safe_exp(logs["loss"]),
            "tokens_per_second": self._steps * self.tokens_per_step / seconds,
            "learning_rate": float(optimizer.learning_rate),
        }
        message = f"epoch {epoch + 1}: loss {record['loss']:.4f}"
        if "val_loss" in logs:
            record["val_loss"] = float(logs["val_loss"])
            record["val_perplexity"] = _safe_exp(logs["val_loss"])
            logs["val_perplexity"] = record["val_perplexity"]
            message += (
                f" - val_loss {record['val_loss']:.4f}"
                f" - val_perplexity {record['val_perplexity']:.2f}"
            )
        message += f" - {record['tokens_per_second']:,.0f} tokens/s"
        print(message, flush=True)
        self.history.append(record)
        if self.history_path is not None:
            _write_json(self.history_path, self.history)


class InterruptAfterSteps(keras.callbacks.Callback):
    """Raises `KeyboardInterrupt` after `steps` training steps (of this run).

    Stands in for Ctrl-C or a preempted machine, to show that a rerun with
    a backup callback (`StepBackupAndRestore`, `keras.callbacks.BackupAndRestore`)
    continues instead of starting over. Pass it to `train_llama(...,
    callbacks=[...])` or `fit`.
    """

    def __init__(self, steps: int):
        super().__init__()
        if steps < 1:
            raise ValueError(f"`steps` must be at least 1; received {steps}.")
        self.steps, self._seen = steps, 0

    def on_train_batch_end(self, batch, logs=None):
        self._seen += 1
        if self._seen >= self.steps:
            raise KeyboardInterrupt(f"simulated interrupt after {self._seen} steps")


def interrupt_from_environment() -> list[keras.callbacks.Callback]:
    """`[InterruptAfterSteps(N)]` when `KERAS_RECIPES_INTERRUPT_AFTER_STEPS=N` is set.

    The one test hook for runs driven as a separate process, where a test
    cannot hand over a callback: a script reads it explicitly and passes the
    result on (`recipes/llama_tiny.py` does). Nothing in the library reads
    the variable; `train_llama` takes its callbacks as an argument.
    """
    value = os.environ.get(INTERRUPT_ENV)
    if not value:
        return []
    try:
        return [InterruptAfterSteps(int(value))]
    except ValueError as error:
        raise ValueError(f"{INTERRUPT_ENV} must be a positive int; got {value!r}.") from error


def backup_epoch(backup_dir: str | os.PathLike) -> int:
    """Epochs completed by an interrupted run whose BackupAndRestore folder this is (0: none)."""
    metadata = Path(backup_dir) / "training_metadata.json"
    if not metadata.is_file():
        return 0
    return int(json.loads(metadata.read_text())["epoch"])


def check_run_settings(out: str | os.PathLike, settings: dict, resuming: bool) -> None:
    """Writes `OUT/run.json`; when resuming, first checks the settings did not change.

    BackupAndRestore reloads weights and optimizer state, which only fit the
    model and schedule they came from, so a resumed run must use the same
    sizes, data and step counts.
    """
    path = Path(out) / "run.json"
    if resuming and path.is_file():
        previous = json.loads(path.read_text())
        changed = {
            key: (previous.get(key), value)
            for key, value in settings.items()
            if key not in SAMPLING_SETTINGS and previous.get(key) != value
        }
        if changed:
            described = ", ".join(
                f"{k}: {old!r} then, {new!r} now" for k, (old, new) in changed.items()
            )
            raise ValueError(
                f"{out} holds an interrupted run with other settings ({described}). "
                f"Rerun with the same flags to resume, or delete {Path(out) / 'backup'} "
                "to start over."
            )
    _write_json(path, settings)


def check_finished_run(
    out: str | os.PathLike, settings: dict, overwrite: bool = False
) -> dict | None:
    """Never trains over a finished run: its metrics, or `None` when there is work to do.

    A folder with a `model.keras` and no `backup/` holds a finished run.
    With the same settings (sampling ones aside) there is nothing left to
    train, and its `metrics.json` comes back; with other settings a
    `ValueError` names the two ways on (`--out` elsewhere, or
    `--overwrite`). An interrupted run (a `backup/` folder) is left to
    `check_run_settings` to resume.

    Args:
        out: str or path. The run's folder.
        settings: dict. This run's settings, as written to `OUT/run.json`.
        overwrite: bool. Delete an earlier run's files (`RUN_FILES`; exports
            under `OUT/saved_models` stay) and start over. Defaults to
            `False`.
    """
    import shutil

    out = Path(out)
    if overwrite:
        for name in RUN_FILES:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        return None
    if not (out / "model.keras").is_file() or (out / "backup").is_dir():
        return None
    run_path, metrics_path = out / "run.json", out / "metrics.json"
    previous = json.loads(run_path.read_text()) if run_path.is_file() else {}
    changed = [
        f"{key}: {previous.get(key)!r} then, {value!r} now"
        for key, value in settings.items()
        if key not in SAMPLING_SETTINGS and previous.get(key) != value
    ]
    if changed:
        raise ValueError(
            f"{out} already holds a trained model with other settings "
            f"({', '.join(changed)}). Pass --out with a new folder to train beside it, "
            "or --overwrite to replace it."
        )
    return json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}


def generate_command(out: str | os.PathLike, max_new_tokens: int, prompt: str = "The fire") -> str:
    """The `keras-recipes llama generate` line that samples from the run in `out`.

    `max_new_tokens` is the run's own (`--max-new-tokens`), which fits its
    context; the command's default of 200 does not fit a tiny model's.
    """
    import shlex

    out = Path(out)
    return (
        f"keras-recipes llama generate --checkpoint {shlex.quote(str(out / 'model.keras'))} "
        f"--tokenizer {shlex.quote(str(out / 'tokenizer.model'))} "
        f"--prompt {shlex.quote(prompt)} --max-new-tokens {max_new_tokens}"
    )


def sample_text(
    model,
    tokenizer,
    prompt: str,
    max_new_tokens: int,
    temperature: float = 0.8,
    top_k: int | None = 40,
    top_p: float | None = None,
    seed: int | None = 0,
) -> str:
    """The prompt and its continuation, decoded (generation stops at eos)."""
    prompt_ids = np.asarray([tokenizer.encode(prompt, add_bos=True)], dtype=np.int32)
    out = model.generate(
        prompt_ids,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        eos_id=tokenizer.eos_id,
    )
    new_ids = np.asarray(out)[0, prompt_ids.shape[1] :].tolist()
    if tokenizer.eos_id in new_ids:
        new_ids = new_ids[: new_ids.index(tokenizer.eos_id)]
    return tokenizer.decode(prompt_ids[0].tolist() + new_ids)


def train_llama(
    out: str | os.PathLike = "runs/llama_tiny",
    corpus: list[str] | None = None,
    quick: bool = False,
    verbose: int | str = "auto",
    strategy: str = "default",
    overwrite: bool = False,
    callbacks: list[keras.callbacks.Callback] | None = None,
    **overrides,
) -> dict:
    """Trains a SentencePiece tokenizer and a small LLaMA on text; saves both.

    The job of `recipes/llama_tiny.py` and `keras-recipes llama train`. A
    rerun after an interruption resumes from the last backup (the
    BackupAndRestore folder `OUT/backup`, written every `backup_steps`
    steps and at each epoch's end), reusing the saved tokenizer. A rerun
    after a finished run trains nothing and returns that run's metrics;
    other settings on a finished run are refused (see
    `check_finished_run`), unless `overwrite=True`.

    Under `strategy="multi-worker"` every process of the `TF_CONFIG`
    cluster runs this same call; the chief writes to `out`, the others to
    `out/worker-<i>` (see `keras_recipes.llama.distribute.worker_dir`).

    Args:
        out: str or path. Output folder: `model.keras`, `tokenizer.model`,
            `metrics.json`, `run.json`. Defaults to `"runs/llama_tiny"`.
        corpus: list of str or None. Text files or folders; `None` trains on
            gensim's Lee background corpus. Defaults to `None`.
        quick: bool. The under-a-minute settings of `QUICK` instead of
            `DEFAULTS`. Defaults to `False`.
        verbose: `fit`'s verbosity. Defaults to `"auto"`: a progress bar on
            a terminal, none when the output goes to a file or a pipe (the
            per-epoch perplexity line is printed either way).
        strategy: str. `"default"` (one process, no distribution),
            `"mirrored"` (one replica per local GPU) or `"multi-worker"`
            (processes listed in `TF_CONFIG`). `batch_size` is the global
            batch, split across replicas; the learning rate and step counts
            are per global batch. Defaults to `"default"`.
        overwrite: bool. Delete a run already in `out` and train afresh.
            Defaults to `False`.
        callbacks: list of `keras.callbacks.Callback` or None. Extra
            callbacks for `fit`, after the run's own (backup, progress bar,
            perplexity logger), e.g. `[InterruptAfterSteps(20)]`. Defaults
            to `None`.
        **overrides: any key of `DEFAULTS` (`epochs`, `seq_len`, `dim`, ...);
            `None` values are ignored.

    Returns:
        The metrics dict also written to `OUT/metrics.json`, plus `out`
        (this process's folder) and `already_trained` (`True` when `out`
        held this finished run and nothing was trained).
    """
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
        make_strategy,
        prepare_for_strategy,
        read_backup,
        replica_batch_size,
        shard_by_data,
        worker_dir,
    )
    from keras_recipes.tokenizers import load_sentencepiece, train_sentencepiece

    distribution = make_strategy(strategy)  # before TensorFlow runs any op
    settings = dict(QUICK if quick else DEFAULTS)
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"Unknown training settings {sorted(unknown)}; known: {sorted(settings)}.")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    settings["corpus"] = [str(p) for p in corpus] if corpus else None
    replica_batch_size(settings["batch_size"], distribution)
    out = worker_dir(out, distribution)
    finished = check_finished_run(out, settings, overwrite)
    if finished is not None:
        return {**finished, "out": str(out), "already_trained": True}
    out.mkdir(parents=True, exist_ok=True)
    backup_dir = out / "backup"
    backup = read_backup(backup_dir)
    initial_epoch, initial_step = (backup["epoch"], backup["batch"]) if backup else (0, 0)
    check_run_settings(out, settings, resuming=backup is not None)
    keras.utils.set_random_seed(settings["seed"])

    if corpus:
        documents = load_text_files(corpus)
    else:
        documents = load_builtin_corpus(settings.get("corpus_name", "lee_background"))
    tokenizer_path = out / "tokenizer.model"
    if backup is not None and tokenizer_path.is_file():
        tokenizer = load_sentencepiece(tokenizer_path)
    else:
        tokenizer = train_sentencepiece(documents, vocab_size=settings["vocab_size"])
        tokenizer.save(tokenizer_path)
    check_same_on_every_worker(distribution, tokenizer_path.read_bytes(), "tokenizer")
    prompt_length = len(tokenizer.encode(settings["prompt"], add_bos=True))
    if prompt_length + settings["max_new_tokens"] > settings["seq_len"]:
        raise ValueError(
            f"The prompt ({prompt_length} tokens) plus max_new_tokens="
            f"{settings['max_new_tokens']} exceeds the context the model is trained on "
            f"(seq_len={settings['seq_len']}); shorten one or raise seq_len."
        )
    data = language_model_datasets(
        documents,
        tokenizer,
        seq_len=settings["seq_len"],
        batch_size=settings["batch_size"],
        validation_split=settings["validation_split"],
        seed=settings["seed"],
    )

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
    steps_per_epoch = int(data.train.cardinality())
    # Every epoch's order depends on (seed, epoch) only, so a resumed run and
    # every worker see the batches an uninterrupted single process would.
    train_stream = epoch_windows_dataset(
        data.train_tokens,
        settings["seq_len"],
        settings["batch_size"],
        epochs=settings["epochs"],
        first_epoch=min(initial_epoch, settings["epochs"] - 1),
        seed=settings["seed"],
    )
    with distribution.scope(), training_precision(settings["precision"]):
        model = build_llama(config)
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
    prepare_for_strategy(model, distribution)
    history_path = out / "history.json"
    earlier = json.loads(history_path.read_text())[:initial_epoch] if initial_epoch else []
    logger = PerplexityLogger(
        settings["batch_size"] * settings["seq_len"], history_path, history=earlier
    )
    run_callbacks = [
        StepBackupAndRestore(backup_dir, save_freq=settings["backup_steps"], strategy=distribution)
    ]
    if verbose == "auto":  # a log file gets the epoch lines, not every redraw of the bar
        verbose = 1 if sys.stdout.isatty() else 0
    if verbose:  # the progress bar first, so the logger's line follows its epoch line
        run_callbacks.append(keras.callbacks.ProgbarLogger())
    run_callbacks += [logger, *(callbacks or [])]
    started = time.perf_counter()
    with distribution.scope():
        model.fit(
            shard_by_data(train_stream),
            validation_data=shard_by_data(data.validation),
            epochs=settings["epochs"],
            initial_epoch=initial_epoch,  # the backup's epoch; StepBackupAndRestore restores it
            steps_per_epoch=steps_per_epoch,
            callbacks=run_callbacks,
            verbose=verbose,
            shuffle=False,  # the stream holds every epoch's order already
        )
    train_seconds = time.perf_counter() - started

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
    model.save(out / "model.keras")
    metrics = {
        "epochs": logger.history,
        "final_val_loss": logger.history[-1].get("val_loss"),
        "final_val_perplexity": logger.history[-1].get("val_perplexity"),
        "resumed_from_epoch": initial_epoch,
        "resumed_from_step": initial_step,
        "strategy": strategy,
        "replicas": distribution.num_replicas_in_sync,
        "train_seconds_this_run": train_seconds,
        "train_tokens": int(len(data.train_tokens)),
        "validation_tokens": int(len(data.validation_tokens)),
        "parameters": int(model.count_params()),
        "config": config.to_dict(),
        "prompt": settings["prompt"],
        "sample": sample,
    }
    _write_json(out / "metrics.json", metrics)
    return {**metrics, "out": str(out), "already_trained": False}


def _safe_exp(value) -> float:
    return math.exp(min(float(value), 700.0))


def _write_json(path, value) -> None:
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(partial, path)
