"""GGUF files checked by llama.cpp itself: its Python binding and its own converter.

Slow, and skipped with the reason when llama.cpp is not installed
(`pip install ".[llamacpp]"`; `.ci/llama_cpp.sh` builds it and its tools from
the llama-cpp-python sdist). The oracle is always the Keras model: llama.cpp's
greedy ids from our f32 file, its teacher-forced argmaxes from our q8_0 file,
its tokenizer's ids, and our reading of a GGUF file that llama.cpp's
`llama-convert-llama2c-to-ggml` wrote (found in `$LLAMA_CPP_BIN` or on PATH).
"""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from runs import train_tiny_llama

from keras_recipes.export.gguf import load_gguf, save_gguf
from keras_recipes.llama.checkpoints import load_checkpoint, load_llama2c, save_llama2c
from keras_recipes.tokenizers import Llama2cTokenizer, load_sentencepiece

pytestmark = pytest.mark.slow
PROMPT = "The government said"


def _binding():
    try:
        import llama_cpp
    except Exception as error:  # ImportError, or the binding's own library missing
        pytest.skip(
            f"llama.cpp's Python binding is not usable ({error}): pip install '.[llamacpp]'"
        )
    return llama_cpp


def _tool(name: str) -> str:
    folder = os.environ.get("LLAMA_CPP_BIN")
    path = Path(folder) / name if folder else shutil.which(name)
    if not path or not Path(path).is_file():
        pytest.skip(f"{name} (llama.cpp's tool) not found: set LLAMA_CPP_BIN to its folder")
    return str(path)


def run_llama_cpp(path, **settings):
    """llama.cpp's `Llama` on one thread, every position's logits kept.

    The KV cache is f32 (llama.cpp's default is f16, which moves logits by
    about 1e-3 and would hide a real difference of that size).
    """
    llama_cpp = _binding()
    return llama_cpp.Llama(
        model_path=str(path),
        type_k=llama_cpp.GGML_TYPE_F32,
        type_v=llama_cpp.GGML_TYPE_F32,
        n_ctx=settings.pop("n_ctx", 96),
        n_threads=1,
        n_batch=96,
        logits_all=True,
        verbose=False,
        **settings,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
    _binding()
    out = train_tiny_llama(tmp_path_factory.mktemp("run") / "tiny", corpus)
    model = load_checkpoint(out / "model.keras")
    tokenizer = load_sentencepiece(out / "tokenizer.model")
    return model, tokenizer, out


@pytest.fixture(scope="module")
def f32_file(trained):
    model, tokenizer, out = trained
    return save_gguf(model, out / "tiny-f32.gguf", tokenizer=tokenizer)


def test_greedy_ids_from_our_f32_file_equal_keras(trained, f32_file):
    model, tokenizer, _ = trained
    ids = tokenizer.encode(PROMPT, add_bos=True)
    ours = model.generate([ids], max_new_tokens=64, temperature=0.0)[0, len(ids) :].tolist()
    llm = run_llama_cpp(f32_file)
    theirs = []
    for token in llm.generate(ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
        theirs.append(int(token))
        if len(theirs) == 64:
            break
    assert theirs == ours
    assert len(set(ours)) > 8  # a real continuation, not one token repeated
    # And the logits themselves, position by position.
    llm.reset()
    llm.eval(ids)
    keras_logits = np.asarray(model(np.array([ids])))[0]
    np.testing.assert_allclose(
        llm.scores[: len(ids)], keras_logits, atol=1e-4 * np.abs(keras_logits).max()
    )


def test_q8_0_agrees_on_teacher_forced_argmaxes(trained, corpus):
    model, tokenizer, out = trained
    path = save_gguf(model, out / "tiny-q8_0.gguf", tokenizer=tokenizer, dtype="q8_0")
    agree = total = 0
    llm = run_llama_cpp(path)
    for paragraph in corpus.read_text().splitlines()[:4]:
        ids = tokenizer.encode(paragraph, add_bos=True)[:96]
        llm.reset()
        llm.eval(ids)
        theirs = np.asarray(llm.scores[: len(ids)]).argmax(-1)
        ours = np.asarray(model(np.array([ids])))[0].argmax(-1)
        agree += int((theirs == ours).sum())
        total += len(ids)
    assert total >= 300 and agree / total >= 0.95, (agree, total)


def test_llama_cpp_tokenizer_gives_our_ids(trained, f32_file, corpus):
    _, tokenizer, _ = trained
    llm = run_llama_cpp(f32_file)
    lines = [line for line in corpus.read_text().splitlines() if line.strip()]
    texts = lines + [PROMPT, "  two  spaces", "Tabs\tand\nnewlines", "naïve café 2024!"]
    for text in texts:
        theirs = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        assert theirs == tokenizer.encode(text, add_bos=True), text
    assert llm.token_bos() == tokenizer.bos_id and llm.token_eos() == tokenizer.eos_id


def test_reading_a_gguf_written_by_llama_cpps_converter(trained, tmp_path):
    """llama.cpp's llama-convert-llama2c-to-ggml writes the file; load_gguf reads our model back."""
    converter = _tool("llama-convert-llama2c-to-ggml")
    model, _, _ = trained
    checkpoint = save_llama2c(model, tmp_path / "tiny.bin")  # llama2.c v0, what the tool reads
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [f"t{i}".encode() for i in range(3, 256)]
    Llama2cTokenizer(pieces, [0.0] * 256).save(tmp_path / "tokenizer.bin")
    done = subprocess.run(
        [
            converter,
            "--copy-vocab-from-model",
            str(tmp_path / "tokenizer.bin"),
            "--llama2c-model",
            str(checkpoint),
            "--llama2c-output-model",
            str(tmp_path / "theirs.gguf"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = load_gguf(tmp_path / "theirs.gguf")
    reference = load_llama2c(checkpoint)
    tokens = np.array([[1, 40, 41, 42, 7, 99, 3, 250, 11, 12]], np.int32)
    np.testing.assert_allclose(theirs(tokens), reference(tokens), rtol=1e-4, atol=1e-4)
