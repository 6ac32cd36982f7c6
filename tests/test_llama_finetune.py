"""`keras-recipes llama finetune` and `llama train --checkpoint`: a loaded checkpoint trains on.

A tiny LLaMA saved as a Hugging Face folder with a SentencePiece tokenizer
stands in for a downloaded checkpoint; the chat set is made here: each
user asks the colour of a thing, the assistant answers with a fixed rule.
"""

import contextlib
import io
import json

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file

from keras_recipes import cli
from keras_recipes.llama import LlamaConfig, build_llama, load_checkpoint, save_hf
from keras_recipes.llama.finetune import encode_example, finetune_arrays, finetune_llama
from keras_recipes.llama.train import InterruptAfterSteps
from keras_recipes.tokenizers import load_tokenizer, train_sentencepiece

THINGS = ["sky", "grass", "sun", "snow", "coal", "rose", "sea", "leaf", "milk", "lemon"]
COLOURS = ["blue", "green", "yellow", "white", "black", "red", "blue", "green", "white", "yellow"]
SETTINGS = dict(
    lora=4,
    lora_alpha=8.0,
    lora_targets=["wq", "wv", "w2"],
    epochs=4,
    seq_len=64,
    batch_size=8,
    learning_rate=2e-2,
    validation_split=0.1,
    backup_steps=3,
    precision="float32",
)


def chat_set(count=48):
    rows = []
    for i in range(count):
        thing, colour = THINGS[i % len(THINGS)], COLOURS[i % len(THINGS)]
        messages = [{"role": "user", "content": f"What colour is the {thing}?"}]
        messages.append({"role": "assistant", "content": f"The {thing} is {colour}."})
        if i % 3 == 0:
            messages.insert(0, {"role": "system", "content": "Answer in one sentence."})
        rows.append({"messages": messages})
    return rows


def cli_main(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """(HF folder of a tiny random LLaMA with its tokenizer.model, chat.jsonl)."""
    root = tmp_path_factory.mktemp("finetune")
    rows = chat_set()
    text = [m["content"] for row in rows for m in row["messages"]] * 4
    text += ["<|user|>", "<|assistant|>", "<|system|>"] * 4
    tokenizer = train_sentencepiece(text, vocab_size=56)
    keras.utils.set_random_seed(0)
    model = build_llama(LlamaConfig.preset("tiny", vocab_size=64, max_seq_len=64))
    # An output matrix of a trained model's scale (a random 0.02-scale one caps the logits near 0).
    model.output_projection.kernel.assign(model.output_projection.kernel * 10.0)
    folder = save_hf(model, root / "base")
    tokenizer.save(folder / "tokenizer.model")
    data = root / "chat.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder, data


@pytest.fixture(scope="module")
def lora_run(base, tmp_path_factory):
    """`keras-recipes llama finetune --lora 4 --merge`: the run folder."""
    folder, data = base
    out = tmp_path_factory.mktemp("lora") / "run"
    flags = ["--lora", "4", "--lora-alpha", "8", "--lora-targets", "wq", "wv", "w2"]
    flags += ["--epochs", "4", "--seq-len", "64", "--batch-size", "8", "--learning-rate", "2e-2"]
    flags += ["--backup-steps", "3", "--precision", "float32", "--merge"]
    code, printed, errors = cli_main(
        "llama", "finetune", "--checkpoint", folder, "--data", data, "--out", out, *flags
    )
    assert code == 0, printed + errors
    assert "Merged model:" in printed
    return out


def masked_loss(model, arrays):
    logits = model(arrays["x"]).numpy()
    loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="mean_with_sample_weight"
    )
    return float(loss(arrays["y"], logits, sample_weight=arrays["sample_weight"]))


def test_the_mask_covers_assistant_replies_and_their_end_only(base):
    folder, _ = base
    tokenizer = load_tokenizer(folder / "tokenizer.model")
    example = chat_set()[0]
    ids, mask = encode_example(example, tokenizer)
    assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id
    trained = [i for i, m in zip(ids, mask, strict=True) if m]
    assert trained[-1] == tokenizer.eos_id
    assert tokenizer.decode(trained[:-1]) == "The sky is blue."
    assert sum(mask) == len(tokenizer.encode("The sky is blue.")) + 1
    prompt = encode_example({"prompt": "Q: sky?", "completion": "blue"}, tokenizer)
    assert prompt[1] == [0] * (len(prompt[1]) - len(tokenizer.encode("blue")) - 1) + [1] * (
        len(tokenizer.encode("blue")) + 1
    )


def test_adapters_alone_are_saved_small_and_the_loss_falls(base, lora_run):
    folder, data = base
    adapter = lora_run / "adapter.safetensors"
    base_bytes = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    assert adapter.stat().st_size < base_bytes / 10
    assert all("lora_" in name for name in load_file(adapter))
    metrics = json.loads((lora_run / "metrics.json").read_text())
    assert metrics["dropped_examples"] == 0
    # A (d_in x 4) and B (4 x d_out) of wq (64 -> 64), wv (64 -> 32), w2 (192 -> 64), 2 blocks
    assert metrics["trainable_parameters"] == 2 * 4 * ((64 + 64) + (64 + 32) + (192 + 64))
    # The masked loss on the chat set: the base model vs the merged, fine-tuned one.
    tokenizer = load_tokenizer(folder / "tokenizer.model")
    arrays = finetune_arrays([encode_example(row, tokenizer) for row in chat_set()], 64)
    before = masked_loss(load_checkpoint(folder), arrays)
    after = masked_loss(load_checkpoint(lora_run / "merged"), arrays)
    assert after < 0.6 * before, (before, after)


def test_merged_checkpoint_equals_base_plus_adapters_and_keeps_the_rest_bit_for_bit(base, lora_run):
    folder, _ = base
    adapted = load_checkpoint(folder)
    adapted.load_lora_weights(lora_run / "adapter.safetensors")
    merged = load_checkpoint(lora_run / "merged")
    x = np.arange(1, 33, dtype="int32").reshape(2, 16)
    np.testing.assert_allclose(merged(x).numpy(), adapted(x).numpy(), atol=1e-5, rtol=0)
    base_tensors, merged_tensors = (
        load_file(folder / "model.safetensors"),
        load_file(lora_run / "merged" / "model.safetensors"),
    )
    for name, value in base_tensors.items():
        if name.endswith(("q_proj.weight", "v_proj.weight", "down_proj.weight")):
            assert not np.array_equal(value, merged_tensors[name]), name
        else:
            np.testing.assert_array_equal(value, merged_tensors[name], err_msg=name)
    assert (lora_run / "merged" / "tokenizer.model").is_file()


def test_an_interrupted_finetune_resumes_to_the_uninterrupted_adapters(base, lora_run, tmp_path):
    folder, data = base
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        finetune_llama(folder, data, out, verbose=0, callbacks=[InterruptAfterSteps(7)], **SETTINGS)
    assert (out / "backup").is_dir() and not (out / "adapter.safetensors").exists()
    metrics = finetune_llama(folder, data, out, verbose=0, **SETTINGS)
    steps_per_epoch = metrics["train_examples"] // SETTINGS["batch_size"]
    resumed_at = (metrics["resumed_from_epoch"], metrics["resumed_from_step"])
    assert resumed_at == divmod(7, steps_per_epoch) and not metrics["already_trained"]
    want, got = load_file(lora_run / "adapter.safetensors"), load_file(out / "adapter.safetensors")
    assert sorted(want) == sorted(got)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=1e-6, err_msg=name)
    again = finetune_llama(folder, data, out, verbose=0, **SETTINGS)
    assert again["already_trained"] and "merged" not in again
    # --merge on the finished run: merged now, here as a llama2c file
    merged = finetune_llama(folder, data, out, merge=True, merge_format="llama2c", **SETTINGS)
    assert merged["already_trained"] and merged["merged"].endswith("merged.bin")
    adapted = load_checkpoint(folder)
    adapted.load_lora_weights(out / "adapter.safetensors")
    x = np.arange(1, 33, dtype="int32").reshape(2, 16)
    np.testing.assert_allclose(
        load_checkpoint(out / "merged.bin")(x).numpy(), adapted(x).numpy(), atol=1e-5, rtol=0
    )
    with pytest.raises(ValueError, match="other settings.*--overwrite"):
        finetune_llama(folder, data, out, verbose=0, **{**SETTINGS, "lora": 2})


def test_bad_chat_lines_are_refused_naming_the_line(base, tmp_path):
    folder, _ = base
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    code, _, errors = cli_main(
        "llama", "finetune", "--checkpoint", folder, "--data", data, "--out", tmp_path / "o"
    )
    assert code == 2 and "bad.jsonl:1: no assistant message" in errors


def test_llama_train_continues_a_loaded_checkpoint(base, tmp_path):
    folder, _ = base
    corpus = tmp_path / "text.txt"
    corpus.write_text(
        "".join(f"The {t} is {c}.\n" for t, c in zip(THINGS, COLOURS, strict=True)) * 20
    )
    out = tmp_path / "continued"
    code, printed, errors = cli_main(
        "llama",
        "train",
        "--quick",
        "--checkpoint",
        folder,
        "--corpus",
        corpus,
        "--out",
        out,
        "--epochs",
        "1",
        "--precision",
        "float32",
        "--warmup-steps",
        "1",
    )
    assert code == 0, printed + errors
    metrics = json.loads((out / "metrics.json").read_text())
    base_model = load_checkpoint(folder)
    assert metrics["config"] == base_model.config.to_dict()  # the checkpoint's, not --quick's
    trained = load_checkpoint(out / "model.keras")
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(trained.get_weights(), base_model.get_weights(), strict=True)
    ]
    assert all(changed)
    assert (out / "tokenizer.model").read_bytes() == (folder / "tokenizer.model").read_bytes()
