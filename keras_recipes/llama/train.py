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

The whole job, as public steps (`recipes/llama_tiny.py` calls them one by
one with prose between; `train_llama`, behind `keras-recipes llama train`,
calls them in a row):

1. `training_settings`: `DEFAULTS` or `QUICK` with the caller's overrides.
2. `open_run`: the run folder. A finished run with the same settings is
   never trained over (`check_finished_run`: nothing left to train; other
   settings refused unless `overwrite=True`); a backup means resume, with
   the same settings (`check_run_settings`).
3. `load_documents`, `run_tokenizer` (SentencePiece, reused on resume),
   `check_prompt_fits`.
4. `make_datasets`: windows, and the training stream from the backup's epoch.
5. `build_model`, `compile_model` (AdamW, fused loss, the strategy's fixes).
6. `training_callbacks`, `fit_model` (`fit(initial_epoch=...)` with
   `StepBackupAndRestore`; Ctrl-C backs up the last step first).
7. `finish_run`: `model.keras` and `metrics.json` written atomically, then
   the backup deleted; `sample_run`: a sample, added to `metrics.json`.

It runs on one process or on `tf.distribute` (`strategy=`, see
`keras_recipes.llama.distribute`): the global batch is split across
replicas, and backups every `backup_steps` steps let a killed run resume
without losing or repeating a step, to the weights an uninterrupted run
ends with (dropout's random state is part of the backup).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np

from keras_recipes._text import read_json_file
from keras_recipes.hardware import resolve_precision

# The default run: README's main job (its time is in README).
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
    precision="auto",  # mixed_bfloat16 where the CPU has AVX512-BF16 or AMX, else float32
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
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
# What a run writes into its folder; `overwrite=True` deletes these (exports stay).
RUN_FILES = (
    "model.keras",
    "adapter.safetensors",
    "tokenizer.model",
    "tokenizer.bin",
    "tokenizer.json",
    "metrics.json",
    "history.json",
    "run.json",
    "backup",
)
# Settings that only pick the sample: a resumed or finished run may change them.
SAMPLING_SETTINGS = ("prompt", "max_new_tokens", "temperature", "top_k", "top_p")


@contextlib.contextmanager
def training_precision(precision: str):
    """Layers built inside compute in `precision`: `"auto"`, `"float32"` or `"mixed_bfloat16"`.

    Under `"mixed_bfloat16"` the weights stay float32 and matrix products run
    in bfloat16 (RMSNorm, softmax and the loss stay float32): on CPUs with
    AVX512-BF16 or AMX a LLaMA trains faster (README's Performance section;
    `benchmarks/llama_bench.py --train-modes fp32 bf16`, which also prints
    both loss curves), on CPUs without them it is slower than float32.
    `"auto"` picks by the CPU (`keras_recipes.hardware.resolve_precision`).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; received {precision!r}.")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(resolve_precision(precision))
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

    >>> schedule = warmup_cosine_schedule(1e-3, total_steps=1000, warmup_steps=100)
    >>> [round(float(schedule(step)), 7) for step in (50, 100, 1000)]  # half-way, peak, floor
    [0.0005, 0.001, 0.0001]
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
    check_training_settings(
        dict(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm)
    )
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
    from keras_recipes.causal_lm.losses import LanguageModelLoss

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


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops `fit` with a `FloatingPointError` at the first step whose loss is NaN or inf.

    Unlike `keras.callbacks.TerminateOnNaN`, which ends `fit` as if it had
    finished, the error reaches the caller: the run is not saved or marked
    finished, and the backup (written before the bad step) stays. Put it
    first in the callbacks, so no callback backs up the bad weights.
    """

    def __init__(self, out: str | os.PathLike, settings: dict):
        super().__init__()
        self.out, self.settings = Path(out), settings
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        from keras_recipes._compat import skipped_step

        loss = (logs or {}).get("loss")
        if skipped_step(self.model):  # a resumed run passing over trained steps logs NaN
            return
        if loss is not None and not math.isfinite(float(loss)):
            raise FloatingPointError(
                f"training stopped: the loss is {float(loss)} at epoch {self.epoch + 1}, step "
                f"{batch + 1}; nothing was saved as finished, and {self.out / 'backup'} keeps the "
                "last good backup (if one was written). Usual causes: a learning rate too high "
                f"(--learning-rate {self.settings.get('learning_rate')}) or no clipping "
                f"(--clipnorm {self.settings.get('clipnorm')}). Start over with --overwrite and "
                "a lower --learning-rate."
            )


def nonfinite_weights(model) -> list[str]:
    """The paths of `model`'s weights that hold a NaN or an infinity."""
    return [
        weight.path
        for weight in model.weights
        if not np.all(np.isfinite(np.asarray(keras.ops.convert_to_numpy(weight), np.float32)))
    ]


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


def check_run_settings(out: str | os.PathLike, settings: dict, resuming: bool) -> None:
    """Writes `OUT/run.json`; when resuming, first checks the settings did not change.

    BackupAndRestore reloads weights and optimizer state, which only fit the
    model and schedule they came from, so a resumed run must use the same
    sizes, data and step counts.
    """
    path = Path(out) / "run.json"
    if resuming and path.is_file():
        previous = read_json_file(path)
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
    out: str | os.PathLike,
    settings: dict,
    overwrite: bool = False,
    finished_file: str = "model.keras",
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
        finished_file: str. The file a finished run leaves (`model.keras`;
            a LoRA fine-tune leaves `adapter.safetensors`).
    """
    out = Path(out)
    if overwrite:
        for name in RUN_FILES:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        return None
    if not (out / finished_file).is_file() or (out / "backup").is_dir():
        return None
    run_path, metrics_path = out / "run.json", out / "metrics.json"
    previous = read_json_file(run_path) if run_path.is_file() else {}
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
    return read_json_file(metrics_path) if metrics_path.is_file() else {}


def generate_command(out: str | os.PathLike, max_new_tokens: int, prompt: str = "The fire") -> str:
    """The `keras-recipes llama generate` line that samples from the run in `out`.

    `max_new_tokens` is the run's own (`--max-new-tokens`), which fits its
    context; the command's default of 200 does not fit a tiny model's.
    """
    import shlex

    out = Path(out)
    names = ("tokenizer.model", "tokenizer.bin", "tokenizer.json")
    tokenizer = next((out / n for n in names if (out / n).is_file()), out / names[0])
    return (
        f"keras-recipes llama generate --checkpoint {shlex.quote(str(out / 'model.keras'))} "
        f"--tokenizer {shlex.quote(str(tokenizer))} "
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


@dataclasses.dataclass
class TrainingRun:
    """One training run's folder, settings and starting point (see `open_run`).

    Attributes:
        out: Path. This process's folder (`worker_dir` of the `--out` given).
        settings: dict. The run's settings (`training_settings`).
        strategy: the `tf.distribute.Strategy` it trains under.
        strategy_name: str. Its name, for metrics.json.
        initial_epoch, initial_step: int. Where the backup left off (0, 0
            for a fresh run).
        resuming: bool. A backup was found: this run continues it.
        finished: dict or None. The metrics of the finished run `out`
            already holds with these settings; `None` when there is work.
    """

    out: Path
    settings: dict
    strategy: object
    strategy_name: str = "default"
    initial_epoch: int = 0
    initial_step: int = 0
    resuming: bool = False
    finished: dict | None = None

    @property
    def backup_dir(self) -> Path:
        return self.out / "backup"

    @property
    def tokenizer_path(self) -> Path:
        return self.out / "tokenizer.model"


def training_settings(quick: bool = False, corpus=None, **overrides) -> dict:
    """`DEFAULTS` (or `QUICK`) with `overrides` applied (`None` ignored) and checked.

    `precision="auto"` (the default) becomes `"mixed_bfloat16"` on CPUs with
    AVX512-BF16 or AMX and `"float32"` elsewhere (`keras_recipes.hardware`).

    Raises:
        ValueError: an unknown setting, fewer than one epoch, or
            `backup_steps` below 1.
    """
    settings = dict(QUICK if quick else DEFAULTS)
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"Unknown training settings {sorted(unknown)}; known: {sorted(settings)}.")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    settings["corpus"] = [str(p) for p in corpus] if corpus else None
    # "auto" is decided here, by this CPU, so run.json records what trained.
    settings["precision"] = resolve_precision(settings["precision"])
    check_training_settings(settings)
    return settings


# (setting, lowest value) of the integer settings; `None` is refused for each.
_INTEGER_SETTINGS = dict(
    epochs=1,
    seq_len=2,
    batch_size=1,
    vocab_size=8,
    dim=1,
    n_layers=1,
    n_heads=1,
    n_kv_heads=1,
    hidden_dim=1,
    warmup_steps=0,
    backup_steps=1,
    max_new_tokens=0,
)


def check_training_settings(settings: dict) -> None:
    """The one check of a run's numbers, for the library and both command lines.

    `training_settings` (so `train_llama`, `keras-recipes llama train` and
    `recipes/llama_tiny.py`) and `make_optimizer` call it. The optimizer's
    numbers get the checks `keras_recipes.optimizers.get_optimizer` makes
    (finite, clipnorm > 0 or None), the sampling ones those of `generate`.

    Raises:
        ValueError: naming the flag, its value and what it must be.
    """

    def flag(key):
        return "--" + key.replace("_", "-")

    for key, lowest in _INTEGER_SETTINGS.items():
        if key not in settings:
            continue
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise ValueError(f"{flag(key)} must be an int >= {lowest}; got {value!r}.")
    if "seed" in settings and (
        isinstance(settings["seed"], bool) or not isinstance(settings["seed"], int)
    ):
        raise ValueError(f"--seed must be an int; got {settings['seed']!r}.")
    if "n_heads" in settings and "n_kv_heads" in settings:
        if settings["n_heads"] % settings["n_kv_heads"]:
            raise ValueError(
                f"--n-heads ({settings['n_heads']}) must be a multiple of --n-kv-heads "
                f"({settings['n_kv_heads']})."
            )
    if "dropout" in settings and not _is_number(settings["dropout"], 0.0, 1.0, high_open=True):
        raise ValueError(f"--dropout must be in [0, 1); got {settings['dropout']!r}.")
    if "learning_rate" in settings and not (
        _is_number(settings["learning_rate"], 0.0) and settings["learning_rate"] > 0
    ):
        raise ValueError(
            f"--learning-rate must be a finite number > 0; got {settings['learning_rate']!r}."
        )
    from keras_recipes.optimizers import _check_hyperparameters

    hyperparameters = {
        key: settings[key] for key in ("learning_rate", "weight_decay") if key in settings
    }
    if "clipnorm" in settings:
        hyperparameters["global_clipnorm"] = settings["clipnorm"]
    try:
        _check_hyperparameters("AdamW", hyperparameters, {})
    except ValueError as error:
        message = str(error).replace("global_clipnorm", "clipnorm")
        raise ValueError(
            f"{message} (flags: --learning-rate, --weight-decay, --clipnorm)"
        ) from None
    if {"temperature", "top_k", "top_p"} <= set(settings):
        from keras_recipes.causal_lm.settings import check_sampling

        try:
            check_sampling(
                settings["temperature"], settings["top_k"], settings["top_p"], who="sampling"
            )
        except ValueError as error:
            raise ValueError(f"{error} (flags: --temperature, --top-k, --top-p)") from None


def _is_number(value, low: float, high: float = math.inf, high_open: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return low <= value and (value < high if high_open else value <= high)


def open_run(
    out: str | os.PathLike,
    settings: dict,
    strategy,
    strategy_name: str = "default",
    overwrite: bool = False,
    finished_file: str = "model.keras",
) -> TrainingRun:
    """Readies `out` for a run: a finished run found, a backup to resume, or a fresh start.

    Checks the batch splits over the strategy's replicas, then (in this
    process's folder, `worker_dir`): a finished run with the same settings
    comes back as `finished` (nothing to train), with other settings it is
    refused unless `overwrite` (`check_finished_run`); a backup is read
    (a damaged one is a `ValueError` naming the file) and must have been
    written with the same settings (`check_run_settings`, which writes
    `run.json`). `finished_file` is what a finished run leaves
    (`model.keras`, or a fine-tune's `adapter.safetensors`).
    """
    from keras_recipes._io import stale_partials
    from keras_recipes.llama.backup import read_backup
    from keras_recipes.llama.distribute import replica_batch_size, worker_dir

    replica_batch_size(settings["batch_size"], strategy)
    out = worker_dir(out, strategy)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the run (made if needed).")
    run = TrainingRun(out, settings, strategy, strategy_name)
    if out.is_dir():  # before --overwrite deletes anything: the folder may be in use
        lock_run_folder(out)
    run.finished = check_finished_run(out, settings, overwrite, finished_file)
    if run.finished is not None:
        return run
    out.mkdir(parents=True, exist_ok=True)
    lock_run_folder(out)
    for name in (finished_file, "model.keras", "metrics.json", "history.json", "run.json"):
        for leftover in stale_partials(out / name):  # a killed save's temporary file
            leftover.unlink()
    backup = read_backup(run.backup_dir)
    if backup is not None:
        run.resuming = True
        run.initial_epoch, run.initial_step = backup["epoch"], backup["batch"]
    check_run_settings(out, settings, resuming=run.resuming)
    keras.utils.set_random_seed(settings["seed"])
    return run


LOCK_FILE = ".lock"
_HELD_LOCKS: dict[str, object] = {}  # run folder -> its open lock file, for this process


def lock_run_folder(out: str | os.PathLike):
    """An advisory lock on a run folder for this process; the open lock file.

    One training per folder: another process that asks for the lock gets
    a `ValueError` naming the pid that holds it (written in `OUT/.lock`).
    The lock is the operating system's (`fcntl.flock`), held until this
    process ends, so it goes away with the process, even a killed one;
    this process may open the same run again. Where `fcntl` does not exist
    (Windows), no lock is taken.
    """
    try:
        import fcntl
    except ImportError:
        return None
    path = Path(out) / LOCK_FILE
    key = str(path.resolve())
    if key in _HELD_LOCKS and path.exists():
        return _HELD_LOCKS[key]
    handle = open(path, "a+")  # noqa: SIM115 (held open for the process's lifetime)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ValueError(
            f"{out} is in use by another training (pid {holder}, which holds {path}). "
            "Wait for it to end, stop it, or pass --out with another folder."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _HELD_LOCKS[key] = handle
    return handle


def load_documents(settings: dict) -> list[str]:
    """The run's text: its `corpus` files or folders, else the built-in `corpus_name`."""
    from keras_recipes.data import load_builtin_corpus, load_text_files

    if settings.get("corpus"):
        return load_text_files(settings["corpus"])
    return load_builtin_corpus(settings.get("corpus_name", "lee_background"))


def run_tokenizer(run: TrainingRun, documents: list[str]):
    """The run's SentencePiece tokenizer: the saved one when resuming, else trained and saved.

    Under a multi-worker strategy every worker trains its own from the same
    text; they must agree, byte for byte.
    """
    from keras_recipes.llama.distribute import check_same_on_every_worker
    from keras_recipes.tokenizers import load_sentencepiece, train_sentencepiece

    if run.resuming and run.tokenizer_path.is_file():
        tokenizer = load_sentencepiece(run.tokenizer_path)
    else:
        tokenizer = train_sentencepiece(documents, vocab_size=run.settings["vocab_size"])
        tokenizer.save(run.tokenizer_path)
    check_same_on_every_worker(run.strategy, run.tokenizer_path.read_bytes(), "tokenizer")
    return tokenizer


class _EncodesEachDocument:
    """A tokenizer whose `encode` takes one string, taking a list too (what `data` passes)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)

    def encode(self, text, add_bos: bool = False, add_eos: bool = False):
        if isinstance(text, str):
            return self.tokenizer.encode(text, add_bos=add_bos, add_eos=add_eos)
        return [self.tokenizer.encode(t, add_bos=add_bos, add_eos=add_eos) for t in text]


def load_checkpoint_to_continue(run: TrainingRun):
    """`(tokenizer, model)` of `run.settings["checkpoint"]`, to train every weight further.

    The tokenizer beside the checkpoint is copied into the run folder (so
    the printed `generate` command finds it); the model is loaded in the
    run's strategy scope and precision, and `seq_len` must fit its context.
    """
    from keras_recipes._io import atomic_path
    from keras_recipes.llama.checkpoints import load_checkpoint
    from keras_recipes.tokenizers import find_tokenizer, load_tokenizer

    settings = run.settings
    found = find_tokenizer(settings["checkpoint"])
    if found is None:
        raise ValueError(
            f"No tokenizer.model, tokenizer.bin or tokenizer.json beside {settings['checkpoint']}; "
            "put the checkpoint's tokenizer there."
        )
    with run.strategy.scope(), training_precision(settings["precision"]):
        model = load_checkpoint(settings["checkpoint"])
    if settings["seq_len"] > model.config.max_seq_len:
        raise ValueError(
            f"--seq-len {settings['seq_len']} exceeds the checkpoint's context "
            f"({model.config.max_seq_len}); lower it."
        )
    copy = run.out / found.name
    if not copy.is_file():
        with atomic_path(copy) as partial:
            shutil.copyfile(found, partial)
    tokenizer = load_tokenizer(copy, vocab_size=model.config.vocab_size)
    return _EncodesEachDocument(tokenizer), model


def check_prompt_fits(tokenizer, settings: dict) -> None:
    """Raises `ValueError` before training when the final sample cannot fit the context."""
    prompt_length = len(tokenizer.encode(settings["prompt"], add_bos=True))
    if prompt_length + settings["max_new_tokens"] > settings["seq_len"]:
        raise ValueError(
            f"The prompt ({prompt_length} tokens) plus max_new_tokens="
            f"{settings['max_new_tokens']} exceeds the context the model is trained on "
            f"(seq_len={settings['seq_len']}); shorten one or raise seq_len."
        )


def make_datasets(documents: list[str], tokenizer, run: TrainingRun):
    """`(data, train_stream, steps_per_epoch)`: the windows, and the stream `fit` reads.

    `data` is `keras_recipes.data.language_model_datasets`' split (training
    windows, the held-out validation windows, both token arrays). The
    training stream holds every epoch from the run's `initial_epoch` on, each
    in an order that depends on (seed, epoch) only, so a resumed run and
    every worker see the batches an uninterrupted single process would.
    """
    from keras_recipes.data import epoch_windows_dataset, language_model_datasets

    settings = run.settings
    data = language_model_datasets(
        documents,
        tokenizer,
        seq_len=settings["seq_len"],
        batch_size=settings["batch_size"],
        validation_split=settings["validation_split"],
        seed=settings["seed"],
    )
    train_stream = epoch_windows_dataset(
        data.train_tokens,
        settings["seq_len"],
        settings["batch_size"],
        epochs=settings["epochs"],
        first_epoch=min(run.initial_epoch, settings["epochs"] - 1),
        seed=settings["seed"],
    )
    return data, train_stream, int(data.train.cardinality())


def build_model(vocab_size: int, run: TrainingRun):
    """The run's `LlamaModel`, built in its strategy's scope and precision (tied embeddings)."""
    from keras_recipes.llama import LlamaConfig, build_llama

    settings = run.settings
    config = LlamaConfig(
        vocab_size=vocab_size,
        dim=settings["dim"],
        n_layers=settings["n_layers"],
        n_heads=settings["n_heads"],
        n_kv_heads=settings["n_kv_heads"],
        hidden_dim=settings["hidden_dim"],
        max_seq_len=settings["seq_len"],
        tie_embeddings=True,
        dropout=settings["dropout"],
    )
    with run.strategy.scope(), training_precision(settings["precision"]):
        return build_llama(config)


def compile_model(model, run: TrainingRun, steps_per_epoch: int):
    """Compiles `model` with `make_optimizer` and the fused loss, ready for `fit` under its strategy."""
    from keras_recipes.llama.distribute import prepare_for_strategy

    settings = run.settings
    with run.strategy.scope(), training_precision(settings["precision"]):
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
    return prepare_for_strategy(model, run.strategy)


def training_callbacks(
    run: TrainingRun,
    verbose: int | str = "auto",
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> tuple[list[keras.callbacks.Callback], int]:
    """`fit`'s callbacks and verbosity: the backup, a progress bar, the logger, then `callbacks`.

    The backup (`StepBackupAndRestore`, every `backup_steps` steps) is kept
    when `fit` ends, until `finish_run` has saved the model. `"auto"`
    verbosity is a progress bar on a terminal and none in a log file or a
    pipe (the logger's epoch lines are printed either way). The logger
    starts from the epochs a resumed run already recorded in `history.json`.
    """
    from keras_recipes.llama.backup import StepBackupAndRestore

    settings = run.settings
    history_path = run.out / "history.json"
    earlier = []
    if run.initial_epoch and history_path.is_file():
        earlier = read_json_file(history_path)[: run.initial_epoch]
    logger = PerplexityLogger(
        settings["batch_size"] * settings["seq_len"], history_path, history=earlier
    )
    backup = StepBackupAndRestore(
        run.backup_dir,
        save_freq=settings["backup_steps"],
        strategy=run.strategy,
        delete_on_train_end=False,
    )
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 0
    progress = [keras.callbacks.ProgbarLogger()] if verbose else []  # before the logger's line
    guard = StopOnNonFiniteLoss(run.out, settings)  # first: before the backup saves a step
    return [guard, backup, *progress, logger, *(callbacks or [])], int(bool(verbose))


def fit_model(model, run: TrainingRun, data, train_stream, steps_per_epoch, callbacks, verbose=0):
    """`model.fit` from the backup's epoch to the last; the seconds it took.

    On Ctrl-C (a `KeyboardInterrupt`) the backup callback first backs up
    the last step trained (`StepBackupAndRestore.save_now`), so a rerun
    resumes from exactly there; then the interrupt goes on to the caller.
    """
    from keras_recipes.llama.backup import StepBackupAndRestore
    from keras_recipes.llama.distribute import shard_by_data

    started = time.perf_counter()
    try:
        with run.strategy.scope():
            model.fit(
                shard_by_data(train_stream),
                validation_data=shard_by_data(data.validation),
                epochs=run.settings["epochs"],
                initial_epoch=run.initial_epoch,
                steps_per_epoch=steps_per_epoch,
                callbacks=callbacks,
                verbose=verbose,
                shuffle=False,  # the stream holds every epoch's order already
            )
    except KeyboardInterrupt:
        for callback in callbacks:
            if isinstance(callback, StepBackupAndRestore):
                callback.save_now()
        raise
    return time.perf_counter() - started


def resume_hint(out: str | os.PathLike) -> str:
    """What a rerun of an interrupted run in `out` will do, truthfully."""
    from keras_recipes.llama.backup import read_backup

    try:
        backup = read_backup(Path(out) / "backup")
    except ValueError as error:
        return str(error)
    if backup is None:
        if (Path(out) / "model.keras").is_file():
            return f"The trained model is saved in {out}; a rerun finds the finished run."
        return "No backup was written yet: a rerun starts over."
    return (
        f"The backup in {Path(out) / 'backup'} holds epoch {backup['epoch'] + 1}, step "
        f"{backup['batch']}: run the same command again to resume from there."
    )


def finish_run(model, run: TrainingRun, data, callbacks, train_seconds: float) -> tuple:
    """Saves the trained model and its metrics, then deletes the backup: `(model, metrics)`.

    The order keeps the run safe at every moment: `model.keras` is written
    atomically (a kill leaves the old file or none, never a partial one)
    while the backup still exists, then `metrics.json`, and only then is
    the backup deleted. A kill before the save leaves the backup (a rerun
    resumes with no step left, and saves); a kill after it leaves the model
    (a rerun finds the finished run). The returned model is the uncompiled
    float32 copy that was saved (`inference_copy`), to sample and export;
    `sample_run` adds the sample to the metrics.

    Args:
        model: the trained model.
        run: the `TrainingRun`.
        data: `make_datasets`' windows (for the token counts).
        callbacks: `training_callbacks`' list (the `PerplexityLogger` in it
            holds every epoch's record).
        train_seconds: float. What `fit_model` returned.
    """
    from keras_recipes._io import atomic_path

    (logger,) = [c for c in callbacks if isinstance(c, PerplexityLogger)]
    bad = nonfinite_weights(model)
    if bad:
        raise FloatingPointError(
            f"training ended with non-finite weights ({', '.join(bad[:3])}"
            f"{', ...' if len(bad) > 3 else ''}); the run is not saved as finished and "
            f"{run.backup_dir} is kept. Start over with --overwrite and a lower --learning-rate."
        )
    model = inference_copy(model)
    with atomic_path(run.out / "model.keras", suffix=".keras") as partial:
        model.save(partial)
    last = logger.history[-1] if logger.history else {}
    metrics = {
        "epochs": logger.history,
        "final_val_loss": last.get("val_loss"),
        "final_val_perplexity": last.get("val_perplexity"),
        "resumed_from_epoch": run.initial_epoch,
        "resumed_from_step": run.initial_step,
        "strategy": run.strategy_name,
        "replicas": run.strategy.num_replicas_in_sync,
        "train_seconds_this_run": train_seconds,
        "train_tokens": int(len(data.train_tokens)),
        "validation_tokens": int(len(data.validation_tokens)),
        "parameters": int(model.count_params()),
        "config": model.config.to_dict(),
        "prompt": run.settings["prompt"],
    }
    save_metrics(run, metrics)
    if run.backup_dir.exists():
        shutil.rmtree(run.backup_dir)
    return model, metrics


def sample_run(model, tokenizer, run: TrainingRun, metrics: dict) -> str:
    """Samples the run's prompt (its sampling settings) and adds it to `metrics.json`."""
    settings = run.settings
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
    metrics["sample"] = sample
    save_metrics(run, metrics)
    return sample


def save_metrics(run: TrainingRun, metrics: dict) -> Path:
    """Writes `metrics` to the run's `metrics.json`, atomically; its path."""
    path = run.out / "metrics.json"
    _write_json(path, metrics)
    return path


def train_llama(
    out: str | os.PathLike = "runs/llama_tiny",
    corpus: list[str] | None = None,
    quick: bool = False,
    verbose: int | str = "auto",
    strategy: str = "default",
    overwrite: bool = False,
    callbacks: list[keras.callbacks.Callback] | None = None,
    checkpoint: str | os.PathLike | None = None,
    **overrides,
) -> dict:
    """Trains a SentencePiece tokenizer and a small LLaMA on text; saves both.

    The job of `keras-recipes llama train`; `recipes/llama_tiny.py` runs
    the same steps with prose in between. A rerun after an interruption
    resumes from the last backup (`OUT/backup`, written every
    `backup_steps` steps, at each epoch's end, and on Ctrl-C), reusing the
    saved tokenizer, and ends with the weights an uninterrupted run ends
    with. A rerun after a finished run trains nothing and returns that
    run's metrics; other settings on a finished run are refused (see
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
        checkpoint: str or path or None. Continue training this checkpoint
            (a `.keras` file, llama2.c `.bin` or Hugging Face folder), every
            weight, with the tokenizer beside it (copied into `out`),
            instead of training a new tokenizer and model; the size
            settings (`dim`, `vocab_size`, ...) are then the checkpoint's,
            and `seq_len` must fit its context. See
            `keras_recipes.llama.finetune` for chat data, loss masking and
            LoRA. Defaults to `None`.
        **overrides: any key of `DEFAULTS` (`epochs`, `seq_len`, `dim`, ...);
            `None` values are ignored.

    Returns:
        The metrics dict also written to `OUT/metrics.json`, plus `out`
        (this process's folder) and `already_trained` (`True` when `out`
        held this finished run and nothing was trained).
    """
    from keras_recipes.llama.distribute import make_strategy

    distribution = make_strategy(strategy)  # before TensorFlow runs any op
    settings = training_settings(quick, corpus, **overrides)
    if checkpoint is not None:
        settings["checkpoint"] = str(Path(checkpoint).resolve())
    run = open_run(out, settings, distribution, strategy, overwrite=overwrite)
    if run.finished is not None:
        return {**run.finished, "out": str(run.out), "already_trained": True}
    documents = load_documents(settings)
    if checkpoint is None:
        tokenizer = run_tokenizer(run, documents)
    else:
        tokenizer, model = load_checkpoint_to_continue(run)
    check_prompt_fits(tokenizer, settings)
    data, train_stream, steps_per_epoch = make_datasets(documents, tokenizer, run)
    if checkpoint is None:
        model = build_model(tokenizer.vocab_size, run)
    model = compile_model(model, run, steps_per_epoch)
    run_callbacks, verbose = training_callbacks(run, verbose, callbacks)
    seconds = fit_model(model, run, data, train_stream, steps_per_epoch, run_callbacks, verbose)
    model, metrics = finish_run(model, run, data, run_callbacks, seconds)
    sample_run(model, tokenizer, run, metrics)
    return {**metrics, "out": str(run.out), "already_trained": False}


def _safe_exp(value) -> float:
    return math.exp(min(float(value), 700.0))


def _write_json(path, value) -> None:
    from keras_recipes._io import atomic_write

    with atomic_write(path, "w") as f:
        f.write(json.dumps(value, indent=2) + "\n")
