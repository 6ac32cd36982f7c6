"""`keras-recipes llama generate|convert` on real checkpoint formats, and streaming."""

import io

import numpy as np
import pytest
from runs import run_cli

from keras_recipes.causal_lm import generation
from keras_recipes.causal_lm.generation import generate_trace_count
from keras_recipes.cli import main as cli_main
from keras_recipes.cli import stream_generate
from keras_recipes.llama import LlamaConfig, build_llama
from keras_recipes.llama.checkpoints import load_checkpoint, save_checkpoint
from keras_recipes.tokenizers import Llama2cTokenizer


@pytest.fixture(scope="module")
def stories(tmp_path_factory):
    """A random llama2.c checkpoint with a byte-level tokenizer.bin beside it."""
    folder = tmp_path_factory.mktemp("stories")
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % i for i in range(256)]
    pieces += [b" ", b"a", b"b", b" a", b"ab", b" ab", b"Once", b" upon"]
    scores = [0.0] * 259 + [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0]
    tokenizer = Llama2cTokenizer(pieces, scores)
    tokenizer.save(folder / "tokenizer.bin")
    cfg = LlamaConfig(
        vocab_size=len(pieces),
        dim=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        hidden_dim=64,
        max_seq_len=96,
        tie_embeddings=True,
    )
    model = build_llama(cfg)
    rng = np.random.default_rng(0)
    for variable in model.weights:
        variable.assign(rng.normal(scale=0.5, size=variable.shape).astype("float32"))
    save_checkpoint(model, folder / "model.bin")
    return folder, model, tokenizer


def test_streaming_callback_sees_every_token_and_changes_nothing(stories):
    _, model, _ = stories
    prompt = [[1, 259, 265]]
    expected = model.generate(prompt, max_new_tokens=12)
    traces = generate_trace_count(model)
    seen = []
    streamed = model.generate(prompt, max_new_tokens=12, callback=lambda t: seen.append(t))
    np.testing.assert_array_equal(streamed, expected)
    widths = [s.shape[1] for s in seen]
    assert widths[0] == 4 and widths == sorted(set(widths))  # the first token, then chunks
    np.testing.assert_array_equal(seen[-1], expected)
    assert generate_trace_count(model) == traces  # streaming reuses the compiled step


@pytest.mark.parametrize("interval", [0.0, 1e9])  # a token a chunk; one chunk
def test_streamed_text_is_the_full_decode(stories, monkeypatch, interval):
    _, model, tokenizer = stories
    monkeypatch.setattr(generation, "STREAM_INTERVAL", interval)
    monkeypatch.setattr(generation, "OVERHEAD_SHARE", float("inf"))
    prompt = tokenizer.encode("Once upon", add_bos=True)
    firsts, out = [], io.StringIO()
    ids = stream_generate(
        model, tokenizer, prompt, out, max_new_tokens=40, on_first_token=lambda: firsts.append(1)
    )[0].tolist()
    if tokenizer.eos_id in ids[len(prompt) :]:
        ids = ids[: ids.index(tokenizer.eos_id, len(prompt))]
    assert tokenizer.decode(prompt) + out.getvalue() == tokenizer.decode(ids)
    assert len(ids) > len(prompt) + 10 and firsts == [1]


def test_generate_streams_a_llama2c_checkpoint_with_its_tokenizer(stories):
    folder, model, tokenizer = stories
    result = run_cli(
        "llama",
        "generate",
        "--checkpoint",
        str(folder / "model.bin"),
        "--prompt",
        "Once upon",
        "--max-new-tokens",
        "10",
        "--temperature",
        "0",
    )
    assert result.returncode == 0, result.stderr
    prompt = tokenizer.encode("Once upon", add_bos=True)
    ids = model.generate([prompt], max_new_tokens=10, eos_id=tokenizer.eos_id)[0].tolist()
    if tokenizer.eos_id in ids[len(prompt) :]:
        ids = ids[: ids.index(tokenizer.eos_id, len(prompt))]
    assert result.stdout.rstrip("\n") == tokenizer.decode(ids)
    assert "tokens/s" in result.stderr


def test_convert_between_formats_keeps_logits(stories, tmp_path):
    folder, model, _ = stories
    tokens = np.array([[1, 260, 7, 266, 2]], np.int32)
    result = run_cli("llama", "convert", str(folder / "model.bin"), str(tmp_path / "hf"))
    assert result.returncode == 0, result.stderr
    result = run_cli("llama", "convert", str(tmp_path / "hf"), str(tmp_path / "m.keras"))
    assert result.returncode == 0, result.stderr
    for path in (tmp_path / "hf", tmp_path / "m.keras"):
        np.testing.assert_allclose(
            np.asarray(load_checkpoint(path)(tokens)), np.asarray(model(tokens)), atol=3e-5
        )


def test_clear_errors_for_missing_checkpoint_or_tokenizer(tmp_path, stories, capsys):
    # In-process `main` (what `python -m keras_recipes.cli` exits with); the
    # streaming test above runs the real entry point in a subprocess.
    def error(*args):
        code = cli_main(list(args))
        return code, capsys.readouterr().err

    code, stderr = error("llama", "generate", "--checkpoint", str(tmp_path / "nope.bin"))
    assert code == 2 and "No checkpoint at" in stderr
    bare = tmp_path / "bare"
    bare.mkdir()
    save_checkpoint(stories[1], bare / "model.bin")
    code, stderr = error("llama", "generate", "--checkpoint", str(bare / "model.bin"))
    assert code == 2 and "pass --tokenizer" in stderr
    code, stderr = error("llama", "convert", str(bare / "model.bin"), str(tmp_path / "x.onnx"))
    assert code == 2 and "unknown checkpoint format '.onnx'" in stderr


def test_default_length_fits_the_context_and_too_many_tokens_is_a_clear_error(stories, capsys):
    folder, model, tokenizer = stories  # a 96-token context: the 200-token default would not fit
    common = ["llama", "generate", "--checkpoint", str(folder / "model.bin"), "--prompt", "ab"]
    assert cli_main([*common, "--temperature", "0"]) == 0  # in-process: no second TF import
    stderr = capsys.readouterr().err
    prompt = tokenizer.encode("ab", add_bos=True)
    ids = model.generate([prompt], max_new_tokens=96 - len(prompt), eos_id=tokenizer.eos_id)
    new = ids[0, len(prompt) :].tolist()
    produced = new.index(tokenizer.eos_id) + 1 if tokenizer.eos_id in new else len(new)
    assert f"\n{produced} tokens; first after" in stderr
    assert cli_main([*common, "--max-new-tokens", "500"]) == 2
    stderr = capsys.readouterr().err
    assert "context" in stderr and "Traceback" not in stderr
