"""The training pieces (schedule, AdamW, loss, callbacks), train_llama, and the llama CLI."""

import json
import math

import keras
import numpy as np
import pytest

from keras_recipes import cli
from keras_recipes.llama import LlamaConfig, build_llama
from keras_recipes.llama.train import (
    DEFAULTS,
    QUICK,
    InterruptAfterSteps,
    PerplexityLogger,
    check_run_settings,
    language_model_loss,
    make_optimizer,
    sample_text,
    train_llama,
    training_precision,
    warmup_cosine_schedule,
)
from keras_recipes.tokenizers import load_sentencepiece
from keras_recipes.train_flags import LLAMA_TRAIN_FLAGS

# End-to-end runs: out of the fast suite, run by `pytest -m "heavy and not slow"` (.ci/run runs them).
pytestmark = pytest.mark.heavy


def nanogpt_lr(step, peak, warmup, total, floor_ratio=0.1):
    """nanoGPT's get_lr, written out independently of Keras' CosineDecay."""
    if step < warmup:
        return peak * step / warmup
    progress = min(step - warmup, total - warmup) / (total - warmup)
    floor = peak * floor_ratio
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - floor)


def test_schedule_warms_up_linearly_then_follows_a_cosine_to_the_floor():
    schedule = warmup_cosine_schedule(1e-3, total_steps=1000, warmup_steps=100)
    for step in [0, 1, 50, 99, 100, 101, 300, 550, 999, 1000, 5000]:
        expected = nanogpt_lr(step, 1e-3, 100, 1000)
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-9), step


def test_schedule_rejects_warmup_as_long_as_the_run():
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        warmup_cosine_schedule(1e-3, total_steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="learning_rate"):
        warmup_cosine_schedule(0.0, total_steps=10)


@pytest.fixture(scope="module")
def tiny_model():
    return build_llama(LlamaConfig.preset("tiny", vocab_size=64, max_seq_len=32))


def test_weight_decay_shrinks_matrices_but_not_norm_scales(tiny_model):
    # With zero gradients Adam's step is zero, so only decoupled decay moves
    # a weight: w <- w * (1 - lr * weight_decay) for matrices, unchanged for 1-D.
    model = build_llama(LlamaConfig.preset("tiny", vocab_size=64, max_seq_len=32))
    optimizer = make_optimizer(model, total_steps=10, learning_rate=0.5, weight_decay=0.1)
    before = [np.array(v) for v in model.trainable_variables]
    optimizer.apply_gradients([(keras.ops.zeros_like(v), v) for v in model.trainable_variables])
    assert any(b.ndim == 1 for b in before) and any(b.ndim == 2 for b in before)
    for old, variable in zip(before, model.trainable_variables, strict=True):
        factor = 1.0 if old.ndim < 2 else 1.0 - 0.5 * 0.1
        np.testing.assert_allclose(
            np.array(variable), old * factor, rtol=1e-6, err_msg=variable.path
        )


def test_gradients_are_clipped_by_their_global_norm(tiny_model):
    optimizer = make_optimizer(tiny_model, total_steps=10, clipnorm=1.0)
    assert optimizer.global_clipnorm == 1.0 and optimizer.clipnorm is None
    grads = [keras.ops.full((2,), 6.0), keras.ops.full((2,), 8.0)]  # global norm sqrt(200)
    clipped = [np.array(g) for g in optimizer._clip_gradients(grads)]
    np.testing.assert_allclose(clipped[0], 6.0 / math.sqrt(200), rtol=1e-6)
    np.testing.assert_allclose(clipped[1], 8.0 / math.sqrt(200), rtol=1e-6)
    assert make_optimizer(tiny_model, total_steps=10, clipnorm=None).global_clipnorm is None


def test_loss_is_mean_token_cross_entropy_from_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 7)).astype("float32")
    targets = rng.integers(0, 7, size=(2, 5))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(log_probs, targets[..., None], -1).mean()
    assert float(language_model_loss()(targets, logits)) == pytest.approx(expected, rel=1e-5)


def fit_tiny(model, epochs, callbacks, steps=4):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 64, size=(steps * 4, 16)).astype("int32")
    model.compile(
        optimizer=make_optimizer(model, total_steps=steps * epochs), loss=language_model_loss()
    )
    return model.fit(
        x,
        np.roll(x, -1, axis=1),
        validation_data=(x[:4], x[:4]),
        batch_size=4,
        epochs=epochs,
        callbacks=callbacks,
        verbose=0,
    )


def test_perplexity_logger_prints_and_records_exp_of_validation_loss(tmp_path, capsys):
    model = build_llama(LlamaConfig.preset("tiny", vocab_size=64, max_seq_len=32))
    logger = PerplexityLogger(tokens_per_step=4 * 16, history_path=tmp_path / "history.json")
    history = fit_tiny(model, 2, [logger])
    assert [r["epoch"] for r in logger.history] == [1, 2]
    for record, val_loss in zip(logger.history, history.history["val_loss"], strict=True):
        assert record["val_loss"] == pytest.approx(val_loss)
        assert record["val_perplexity"] == pytest.approx(math.exp(val_loss))
        assert record["tokens_per_second"] > 0
    assert json.loads((tmp_path / "history.json").read_text()) == logger.history
    printed = capsys.readouterr().out
    assert "epoch 2: loss" in printed and "val_perplexity" in printed


def test_interrupt_after_steps_raises_keyboard_interrupt_and_backup_keeps_the_epoch(tmp_path):
    # The full resume (weights, optimizer step, epoch) is tested end to end
    # in tests/test_recipe_llama_tiny.py.
    model = build_llama(LlamaConfig.preset("tiny", vocab_size=64, max_seq_len=32))
    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        fit_tiny(model, 2, [keras.callbacks.BackupAndRestore(str(backup)), InterruptAfterSteps(6)])
    metadata = json.loads((backup / "training_metadata.json").read_text())
    assert metadata["epoch"] == 1  # epoch 1 (4 steps) finished, epoch 2 did not


def test_train_llama_takes_callbacks_and_reads_none_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_RECIPES_INTERRUPT_AFTER_STEPS", "1")  # the recipe's hook: ignored
    with pytest.raises(KeyboardInterrupt, match="after 2 steps"):
        train_llama(tmp_path, quick=True, verbose=0, callbacks=[InterruptAfterSteps(2)])
    assert not (tmp_path / "model.keras").exists()


def test_changed_settings_refuse_to_resume(tmp_path):
    check_run_settings(tmp_path, {"dim": 32, "prompt": "a"}, resuming=False)
    check_run_settings(tmp_path, {"dim": 32, "prompt": "b"}, resuming=True)  # prompt may change
    with pytest.raises(ValueError, match=r"dim: 32 then, 64 now.*delete"):
        check_run_settings(tmp_path, {"dim": 64, "prompt": "b"}, resuming=True)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """`keras-recipes llama train --quick`, run in-process: the CLI handler calls train_llama."""
    out = tmp_path_factory.mktemp("llama_quick")
    assert cli.main(["llama", "train", "--quick", "--out", str(out)]) == 0
    return out, json.loads((out / "metrics.json").read_text())


def test_train_llama_quick_learns_and_writes_everything(quick_run):
    out, metrics = quick_run
    assert {p.name for p in out.iterdir()} >= {"model.keras", "tokenizer.model", "metrics.json"}
    assert not (out / "backup").exists()  # removed after a completed run
    assert json.loads((out / "metrics.json").read_text())["sample"] == metrics["sample"]
    epochs = metrics["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    # Better than a uniform guess over the vocabulary, and improving.
    assert epochs[-1]["val_loss"] < math.log(QUICK["vocab_size"]) - 0.5
    assert epochs[-1]["val_loss"] < epochs[0]["val_loss"]
    assert metrics["sample"].startswith(QUICK["prompt"])


def test_saved_model_and_tokenizer_reload_and_generate_the_same(quick_run):
    out, _ = quick_run
    tokenizer = load_sentencepiece(out / "tokenizer.model")
    model = keras.models.load_model(out / "model.keras")
    prompt = tokenizer.encode("The fire", add_bos=True)
    logits = np.asarray(model(np.array([prompt], "int32")))
    greedy = sample_text(model, tokenizer, "The fire", 1, temperature=0.0)
    expected = tokenizer.decode(prompt + [int(logits[0, -1].argmax())])
    assert greedy == expected


def test_mixed_bfloat16_training_learns_and_saves_a_float32_model(tmp_path):
    out = tmp_path / "bf16"
    assert (
        cli.main(["llama", "train", "--quick", "--precision", "mixed_bfloat16", "--out", str(out)])
        == 0
    )
    epochs = json.loads((out / "metrics.json").read_text())["epochs"]
    assert epochs[-1]["val_loss"] < math.log(QUICK["vocab_size"]) - 0.5
    assert json.loads((out / "run.json").read_text())["precision"] == "mixed_bfloat16"
    model = keras.saving.load_model(out / "model.keras")
    assert {w.dtype for w in model.weights} == {"float32"} and model.compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    with pytest.raises(ValueError, match="precision"):
        with training_precision("float16"):
            pass


def test_train_llama_rejects_a_prompt_longer_than_the_context(tmp_path):
    with pytest.raises(ValueError, match="exceeds the context"):
        train_llama(tmp_path, quick=True, max_new_tokens=40, verbose=0)
    with pytest.raises(ValueError, match="Unknown training settings"):
        train_llama(tmp_path, quick=True, depth=3)


def test_every_train_flag_is_a_training_setting():
    keys = [flag[2:].replace("-", "_") for flag, _, _ in LLAMA_TRAIN_FLAGS]
    assert set(keys) <= set(DEFAULTS)
    args = cli.build_parser().parse_args(["llama", "train", "--dim", "48", "--quick"])
    assert args.dim == 48 and args.quick and args.epochs is None


def test_cli_generate_continues_a_prompt_with_the_saved_model(quick_run, capsys):
    out, _ = quick_run
    capsys.readouterr()
    argv = ["llama", "generate", "--checkpoint", str(out / "model.keras"), "--prompt", "The"]
    assert cli.main([*argv, "--max-new-tokens", "6", "--temperature", "0"]) == 0
    text = capsys.readouterr().out
    model = keras.models.load_model(out / "model.keras")
    tokenizer = load_sentencepiece(out / "tokenizer.model")
    assert text == sample_text(model, tokenizer, "The", 6, temperature=0.0) + "\n"


def test_cli_generate_reports_a_missing_checkpoint(tmp_path, capsys):
    code = cli.main(
        [
            "llama",
            "generate",
            "--checkpoint",
            str(tmp_path / "none.keras"),
            "--tokenizer",
            str(tmp_path / "none.model"),
        ]
    )
    assert code == 2
    assert "No checkpoint" in capsys.readouterr().err
