"""Fine-tuning a loaded LLaMA checkpoint on chat or text, with LoRA or all weights.

The job of `keras-recipes llama finetune --checkpoint DIR --data chat.jsonl
[--lora R] [--merge]`, in the order it runs:

1. `read_examples`: a JSONL file, one example a line, in one of three forms
   (`{"messages": [{"role": ..., "content": ...}, ...]}`, `{"prompt": ...,
   "completion": ...}`, `{"text": ...}`), or a plain text file (one example
   a line, every token trained).
2. `encode_example`: ids and a loss mask, 1 on the tokens the model must
   learn to produce (assistant turns and their end-of-turn token, a
   completion, a text), 0 on the prompt. Chat messages are rendered with
   `render` when a chat-template renderer is given (the checkpoint's
   template), else with `FALLBACK_TEMPLATE`, Zephyr's format (TinyLlama-
   chat's): `<|system|>\\n{content}</s><|user|>\\n{content}</s><|assistant|>\\n
   {content}</s>`, each text piece tokenized on its own and `</s>` the
   tokenizer's eos id.
3. `finetune_arrays`: one example a row, cut or padded to `seq_len + 1`
   tokens; inputs, next-token targets and the mask of the targets as
   `sample_weight`. Padding weighs 0, and causal attention keeps it from
   the tokens before it.
4. The run folder of `llama train` (`keras_recipes.llama.train.open_run`):
   a finished run is never trained over, a backup resumes step-exactly
   (`StepBackupAndRestore`), `tf.distribute` strategies as there.
5. The model: the checkpoint, loaded in the strategy's scope and precision;
   with `lora=R`, `enable_lora(R, ...)` freezes it and adds adapters. The
   loss is `LanguageModelLoss(reduction="mean_with_sample_weight")`: the mean
   over the masked-in tokens, computed fused with the output head.
6. The end: `adapter.safetensors` (the adapters alone) or, for a full
   fine-tune, `model.keras`; `metrics.json`; with `merge`, the adapters
   folded into the weights and written as the base checkpoint's format or
   `merge_format` (`hf`, `llama2c`, `keras`; `keras-recipes llama finetune
   --merge-format saved_model` or `tflite` exports the merged `.keras`
   through `keras_recipes.export`, which a family does not import).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from keras_recipes.causal_lm.lora import DEFAULT_TARGETS

FINETUNE_DEFAULTS = dict(
    epochs=3,
    seq_len=256,
    batch_size=8,
    learning_rate=None,  # 2e-4 with LoRA, 2e-5 for all weights
    warmup_steps=0,
    weight_decay=0.0,
    clipnorm=1.0,
    lora=None,  # rank; None trains every weight
    lora_alpha=None,  # None: the rank (updates scaled by 1)
    lora_targets=list(DEFAULT_TARGETS),
    validation_split=0.1,
    backup_steps=20,
    seed=0,
    precision="auto",
)
FALLBACK_TEMPLATE = "zephyr"
ROLES = ("system", "user", "assistant")
MERGE_FORMATS = ("hf", "llama2c", "keras")  # the CLI exports to SavedModel / TFLite from keras
ADAPTER_FILE = "adapter.safetensors"


def read_examples(path: str | os.PathLike) -> list[dict]:
    """The examples of a `.jsonl` file (one JSON object a line) or of a text file (one a line).

    Each example comes back as `{"messages": [...]}`, `{"prompt": str,
    "completion": str}` or `{"text": str}`. A line that is none of these is
    a `ValueError` naming the line and the accepted forms.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"No data file at {path}: give a .jsonl of chat messages or a .txt file.")
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix != ".jsonl":
        return [{"text": line} for line in lines if line.strip()]
    examples = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            example = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not JSON ({error.msg}).") from error
        examples.append(_checked_example(example, f"{path}:{number}"))
    if not examples:
        raise ValueError(f"{path} holds no examples.")
    return examples


def _checked_example(example, where: str) -> dict:
    forms = (
        'Each line must be {"messages": [{"role": "user", "content": "..."}, ...]}, '
        '{"prompt": "...", "completion": "..."} or {"text": "..."}.'
    )
    if not isinstance(example, dict):
        raise ValueError(f"{where}: a JSON {type(example).__name__}. {forms}")
    if "messages" in example:
        messages = example["messages"]
        if not isinstance(messages, list) or not messages:
            raise ValueError(f"{where}: messages must be a non-empty list. {forms}")
        for message in messages:
            if (
                not isinstance(message, dict)
                or message.get("role") not in ROLES
                or not isinstance(message.get("content"), str)
            ):
                raise ValueError(
                    f"{where}: each message needs a role in {ROLES} and a string content; "
                    f"got {message!r}."
                )
        if not any(m["role"] == "assistant" for m in messages):
            raise ValueError(f"{where}: no assistant message, so nothing to learn from.")
        return {"messages": messages}
    if isinstance(example.get("prompt"), str) and isinstance(example.get("completion"), str):
        return {"prompt": example["prompt"], "completion": example["completion"]}
    if isinstance(example.get("text"), str):
        return {"text": example["text"]}
    raise ValueError(f"{where}: keys {sorted(example)}. {forms}")


def _segments(example: dict, tokenizer, render=None) -> list[tuple[object, bool]]:
    """`(text or [ids], trained)` pieces of an example, in order."""
    eos = [tokenizer.eos_id]
    if "text" in example:
        return [(example["text"], True), (eos, True)]
    if "prompt" in example:
        return [(example["prompt"], False), (example["completion"], True), (eos, True)]
    messages = example["messages"]
    if render is not None:
        # The template's own text: what precedes each assistant reply is the
        # conversation so far rendered with the generation prompt.
        pieces, done = [], ""
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            prompt = render(messages[:i], add_generation_prompt=True)
            full = render(messages[: i + 1], add_generation_prompt=False)
            if not (prompt.startswith(done) and full.startswith(prompt)):
                raise ValueError(
                    "The chat template does not render a conversation as a prefix of its "
                    "continuation, so the assistant tokens cannot be told apart."
                )
            pieces += [(prompt[len(done) :], False), (full[len(prompt) :], True)]
            done = full
        return pieces
    pieces = []
    for message in messages:  # FALLBACK_TEMPLATE (Zephyr's)
        trained = message["role"] == "assistant"
        pieces += [(f"<|{message['role']}|>\n", False), (message["content"], trained)]
        pieces.append((eos, trained))
    return pieces


def encode_example(example: dict, tokenizer, render=None) -> tuple[list[int], list[int]]:
    """`(ids, mask)` of one example: bos first, mask 1 on the tokens to learn.

    Args:
        example: one of `read_examples`' dicts.
        tokenizer: `encode(text, add_bos=False)`, `bos_id`, `eos_id`.
        render: the checkpoint's chat template, as a function
            `render(messages, add_generation_prompt=bool) -> str` (its
            output includes the bos token when the template writes it);
            None renders chat with `FALLBACK_TEMPLATE`.

    For `{"prompt": "2+2=", "completion": "4"}` the mask is 0 on bos and the
    prompt's tokens, 1 on the completion's tokens and eos
    (`tests/test_llama_finetune.py` checks it).
    """
    ids, mask = [], []
    if render is None or "messages" not in example:
        if getattr(tokenizer, "bos_id", -1) is not None and tokenizer.bos_id >= 0:
            ids, mask = [tokenizer.bos_id], [0]
    for piece, trained in _segments(example, tokenizer, render):
        piece_ids = (
            list(piece) if isinstance(piece, list) else tokenizer.encode(piece, add_bos=False)
        )
        ids += piece_ids
        mask += [int(trained)] * len(piece_ids)
    return ids, mask


def finetune_arrays(encoded, seq_len: int, pad_id: int = 0) -> dict:
    """Rows of `seq_len` inputs, targets and target weights from `(ids, mask)` pairs.

    An example longer than `seq_len + 1` tokens is cut; one with nothing to
    learn left after the cut is dropped. Returns `x`, `y`, `sample_weight`
    (int32, int32, float32 `(rows, seq_len)`), `truncated` and `dropped`
    (counts).
    """
    rows_x, rows_y, rows_w, truncated, dropped = [], [], [], 0, 0
    for ids, mask in encoded:
        if len(ids) > seq_len + 1:
            ids, mask, truncated = ids[: seq_len + 1], mask[: seq_len + 1], truncated + 1
        weights = mask[1:]
        if not any(weights):
            dropped += 1
            continue
        pad = seq_len + 1 - len(ids)
        ids = ids + [pad_id] * pad
        rows_x.append(ids[:-1])
        rows_y.append(ids[1:])
        rows_w.append(weights + [0] * pad)
    return {
        "x": np.asarray(rows_x, np.int32).reshape(-1, seq_len),
        "y": np.asarray(rows_y, np.int32).reshape(-1, seq_len),
        "sample_weight": np.asarray(rows_w, np.float32).reshape(-1, seq_len),
        "truncated": truncated,
        "dropped": dropped,
    }


def epoch_rows_dataset(arrays: dict, batch_size: int, epochs: int, first_epoch: int, seed: int):
    """Batches of `(x, y, sample_weight)` for epochs `first_epoch..epochs-1`, as one stream.

    Each epoch's order depends on `(seed, epoch)` only and keeps full
    batches, as `keras_recipes.data.epoch_windows_dataset` does for token
    windows, so a resumed run and every worker see an uninterrupted run's
    batches.
    """
    import tensorflow as tf

    rows = len(arrays["x"])
    steps = rows // batch_size
    order = np.concatenate(
        [
            np.random.default_rng([seed, epoch]).permutation(rows)[: steps * batch_size]
            for epoch in range(first_epoch, epochs)
        ]
    )
    picked = tuple(arrays[key][order] for key in ("x", "y", "sample_weight"))
    ds = tf.data.Dataset.from_tensor_slices(picked)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def finetune_settings(checkpoint, data, tokenizer=None, quick: bool = False, **overrides) -> dict:
    """`FINETUNE_DEFAULTS` with `overrides` (None ignored), checked, plus the input paths."""
    settings = dict(FINETUNE_DEFAULTS)
    if quick:
        settings.update(epochs=2, seq_len=64, batch_size=4, backup_steps=5)
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(
            f"Unknown fine-tuning settings {sorted(unknown)}; known: {sorted(settings)}."
        )
    settings.update({k: v for k, v in overrides.items() if v is not None})
    from keras_recipes.hardware import resolve_precision

    settings["precision"] = resolve_precision(settings["precision"])
    if settings["learning_rate"] is None:
        settings["learning_rate"] = 2e-4 if settings["lora"] else 2e-5
    settings["lora_targets"] = list(settings["lora_targets"])
    for key in ("epochs", "backup_steps", "seq_len", "batch_size"):
        if not isinstance(settings[key], int) or settings[key] < 1:
            raise ValueError(
                f"--{key.replace('_', '-')} must be at least 1; got {settings[key]!r}."
            )
    if settings["lora"] is not None and (
        not isinstance(settings["lora"], int) or settings["lora"] < 1
    ):
        raise ValueError(f"--lora must be a positive rank; got {settings['lora']!r}.")
    settings["checkpoint"] = str(Path(checkpoint).resolve())
    settings["data"] = str(Path(data).resolve())
    settings["tokenizer"] = str(Path(tokenizer).resolve()) if tokenizer else None
    return settings


def load_finetune_model(settings: dict, strategy):
    """The checkpoint as a `LlamaModel` in `strategy`'s scope and the run's precision,
    with LoRA adapters when `settings["lora"]` is a rank."""
    from keras_recipes.llama.checkpoints import load_checkpoint
    from keras_recipes.llama.train import training_precision

    with strategy.scope(), training_precision(settings["precision"]):
        model = load_checkpoint(settings["checkpoint"])
        if settings["lora"]:
            model.enable_lora(
                settings["lora"],
                alpha=settings["lora_alpha"],
                targets=tuple(settings["lora_targets"]),
                seed=settings["seed"],
            )
    return model


def inference_copy(model):
    """An uncompiled float32 copy of `model`, its LoRA adapters (if any) included."""
    from keras_recipes.llama import build_llama
    from keras_recipes.llama.train import training_precision

    with training_precision("float32"):
        copy = build_llama(model.config)
        settings = getattr(model, "_lora_settings", None)
        if settings:
            copy.enable_lora(settings["rank"], settings["alpha"], tuple(settings["targets"]))
    copy.set_weights(model.get_weights())
    return copy


def write_merged(model, settings: dict, out: Path, merge_format: str | None, tokenizer_path):
    """Writes `model` (merged, plain) as `merge_format` under `out`; the path written.

    Default format: the base checkpoint's (an HF folder -> `hf`, a `.bin` ->
    `llama2c`, a `.keras` -> `keras`). Paths: `out/merged/` (HF, with the
    tokenizer copied in), `out/merged.bin`, `out/merged.keras`.
    """
    from keras_recipes.llama.checkpoints import save_checkpoint

    base = Path(settings["checkpoint"])
    if merge_format is None:
        merge_format = (
            "hf" if base.is_dir() else ("keras" if base.suffix == ".keras" else "llama2c")
        )
    if merge_format not in MERGE_FORMATS:
        raise ValueError(f"--merge-format must be one of {MERGE_FORMATS}; got {merge_format!r}.")
    target = {"hf": out / "merged", "llama2c": out / "merged.bin", "keras": out / "merged.keras"}
    from keras_recipes.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_path, vocab_size=model.config.vocab_size)
    path = save_checkpoint(model, target[merge_format], tokenizer=tokenizer)
    if merge_format == "hf":
        shutil.copy2(tokenizer_path, Path(path) / Path(tokenizer_path).name)
    return path


def merge_finished_run(run, merge_format: str | None = None):
    """Writes the merged model of the finished run in `run.out` (see `write_merged`); its path."""
    from keras_recipes.llama.checkpoints import load_checkpoint
    from keras_recipes.llama.train import training_precision

    settings = run.settings
    with training_precision("float32"):
        if settings["lora"]:
            model = load_checkpoint(settings["checkpoint"])
            model.load_lora_weights(run.out / ADAPTER_FILE)
            model.merge_lora()
        else:
            model = load_checkpoint(run.out / "model.keras")
    return write_merged(model, settings, run.out, merge_format, settings["tokenizer"])


def finetune_llama(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike = "runs/llama_finetune",
    tokenizer: str | os.PathLike | None = None,
    render=None,
    merge: bool = False,
    merge_format: str | None = None,
    quick: bool = False,
    verbose: int | str = "auto",
    strategy: str = "default",
    overwrite: bool = False,
    callbacks: list[keras.callbacks.Callback] | None = None,
    **overrides,
) -> dict:
    """Fine-tunes a LLaMA checkpoint on chat or text; saves the adapters (or the model).

    Args:
        checkpoint: a `.keras` file, a llama2.c `.bin` or a Hugging Face folder.
        data: a `.jsonl` of examples or a text file (see `read_examples`).
        out: the run folder: `adapter.safetensors` (LoRA) or `model.keras`
            (all weights), the tokenizer, `metrics.json`, `history.json`,
            `run.json`; a `backup/` while training.
        tokenizer: the tokenizer file; default: the one beside the checkpoint.
        render: the checkpoint's chat template as a function (see
            `encode_example`); None: `FALLBACK_TEMPLATE`.
        merge: also write the merged model (see `write_merged`).
        merge_format: `MERGE_FORMATS` or None (the base's format).
        quick: small sizes (2 epochs, 64 tokens, batch 4) for tests.
        verbose, strategy, overwrite, callbacks: as `train_llama`'s.
        **overrides: keys of `FINETUNE_DEFAULTS` (`lora`, `lora_alpha`,
            `lora_targets`, `epochs`, `seq_len`, `learning_rate`, ...).

    Returns:
        The metrics also written to `OUT/metrics.json`, with `out` and
        `already_trained`.
    """
    from keras_recipes.causal_lm.losses import LanguageModelLoss
    from keras_recipes.llama.backup import StepBackupAndRestore
    from keras_recipes.llama.distribute import make_strategy, prepare_for_strategy, shard_by_data
    from keras_recipes.llama.train import (
        make_optimizer,
        open_run,
        save_metrics,
        training_callbacks,
        training_precision,
    )
    from keras_recipes.tokenizers import find_tokenizer, load_tokenizer

    distribution = make_strategy(strategy)
    tokenizer = tokenizer or find_tokenizer(checkpoint)
    if tokenizer is None:
        raise ValueError(f"No tokenizer beside {checkpoint}; pass --tokenizer.")
    settings = finetune_settings(checkpoint, data, tokenizer, quick, **overrides)
    if merge_format is not None and merge_format not in MERGE_FORMATS:
        raise ValueError(f"--merge-format must be one of {MERGE_FORMATS}; got {merge_format!r}.")
    examples = read_examples(settings["data"])  # bad lines are refused before any work
    finished_file = ADAPTER_FILE if settings["lora"] else "model.keras"
    run = open_run(out, settings, distribution, strategy, overwrite, finished_file=finished_file)
    if run.finished is not None:
        if merge and not run.finished.get("merged"):  # asked for now, or a kill came first
            run.finished["merged"] = str(merge_finished_run(run, merge_format))
            save_metrics(run, run.finished)
        return {**run.finished, "out": str(run.out), "already_trained": True}

    model = load_finetune_model(settings, distribution)
    tokens = load_tokenizer(settings["tokenizer"], vocab_size=model.config.vocab_size)
    if settings["seq_len"] > model.config.max_seq_len:
        raise ValueError(
            f"--seq-len {settings['seq_len']} exceeds the checkpoint's context "
            f"({model.config.max_seq_len}); lower it."
        )
    order = np.random.default_rng(settings["seed"]).permutation(len(examples))
    held_out = int(len(examples) * settings["validation_split"])
    encoded = [encode_example(examples[i], tokens, render) for i in order]
    train = finetune_arrays(encoded[held_out:], settings["seq_len"])
    validation = finetune_arrays(encoded[:held_out], settings["seq_len"]) if held_out else None
    steps_per_epoch = len(train["x"]) // settings["batch_size"]
    if steps_per_epoch < 1:
        raise ValueError(
            f"{settings['data']}: {len(train['x'])} training examples, fewer than one batch of "
            f"{settings['batch_size']}; lower --batch-size or give more examples."
        )
    stream = epoch_rows_dataset(
        train,
        settings["batch_size"],
        settings["epochs"],
        min(run.initial_epoch, settings["epochs"] - 1),
        settings["seed"],
    )
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
            loss=LanguageModelLoss(reduction="mean_with_sample_weight"),
        )
    model = prepare_for_strategy(model, run.strategy)
    run_callbacks, verbose = training_callbacks(run, verbose, callbacks)
    validation_data = None
    if validation is not None and len(validation["x"]):
        import tensorflow as tf

        validation_data = shard_by_data(
            tf.data.Dataset.from_tensor_slices(
                (validation["x"], validation["y"], validation["sample_weight"])
            ).batch(settings["batch_size"])
        )
    started = time.perf_counter()
    try:
        with run.strategy.scope():
            model.fit(
                shard_by_data(stream),
                validation_data=validation_data,
                epochs=settings["epochs"],
                initial_epoch=run.initial_epoch,
                steps_per_epoch=steps_per_epoch,
                callbacks=run_callbacks,
                verbose=verbose,
                shuffle=False,
            )
    except KeyboardInterrupt:
        for callback in run_callbacks:
            if isinstance(callback, StepBackupAndRestore):
                callback.save_now()
        raise
    seconds = time.perf_counter() - started

    from keras_recipes._io import atomic_path
    from keras_recipes.llama.train import PerplexityLogger

    (logger,) = [c for c in run_callbacks if isinstance(c, PerplexityLogger)]
    model = inference_copy(model)
    tokenizer_copy = run.out / Path(settings["tokenizer"]).name
    if not tokenizer_copy.is_file():
        with atomic_path(tokenizer_copy) as partial:
            shutil.copyfile(settings["tokenizer"], partial)
    if settings["lora"]:
        model.save_lora_weights(run.out / ADAPTER_FILE)
    else:
        with atomic_path(run.out / "model.keras", suffix=".keras") as partial:
            model.save(partial)
    last = logger.history[-1] if logger.history else {}
    metrics = {
        "epochs": logger.history,
        "final_loss": last.get("loss"),
        "final_val_loss": last.get("val_loss"),
        "resumed_from_epoch": run.initial_epoch,
        "resumed_from_step": run.initial_step,
        "strategy": run.strategy_name,
        "replicas": run.strategy.num_replicas_in_sync,
        "train_seconds_this_run": seconds,
        "train_examples": int(len(train["x"])),
        "validation_examples": 0 if validation is None else int(len(validation["x"])),
        "truncated_examples": train["truncated"] + (validation or {}).get("truncated", 0),
        "dropped_examples": train["dropped"] + (validation or {}).get("dropped", 0),
        "trained_tokens_per_epoch": int(
            train["sample_weight"][: steps_per_epoch * settings["batch_size"]].sum()
        ),
        "trainable_parameters": int(sum(np.prod(v.shape) for v in model.trainable_weights)),
        "parameters": int(model.count_params()),
        "chat_template": "checkpoint" if render is not None else FALLBACK_TEMPLATE,
    }
    save_metrics(run, metrics)
    if run.backup_dir.exists():
        shutil.rmtree(run.backup_dir)
    if merge:
        if settings["lora"]:
            model.merge_lora()
        metrics["merged"] = str(
            write_merged(model, settings, run.out, merge_format, settings["tokenizer"])
        )
        save_metrics(run, metrics)
    return {**metrics, "out": str(run.out), "already_trained": False}
