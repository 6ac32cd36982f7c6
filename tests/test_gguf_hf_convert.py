"""A GGUF written by llama.cpp's own `convert_hf_to_gguf.py` loads to our HF import's logits.

Slow, and skipped with the reason when the converter cannot run: it needs
torch (`pip install torch`) and llama.cpp's source folder, named by
`$LLAMA_CPP_SRC` (e.g. the `vendor/llama.cpp` folder of the llama-cpp-python
sdist that `.ci/llama_cpp.sh` unpacks). The converter reads the folder that
`save_hf` writes plus a SentencePiece `tokenizer.model`, and writes the q/k
rows in llama.cpp's interleaved order; `load_gguf` must undo none of that by
hand, only read the file, and give the same logits as `load_hf` of the folder.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_recipes.export.gguf import load_gguf
from keras_recipes.llama import load_hf, save_hf
from keras_recipes.tokenizers import train_sentencepiece

pytestmark = pytest.mark.slow
VOCAB = 128


def _converter() -> Path:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("llama.cpp's convert_hf_to_gguf.py needs torch: pip install torch")
    source = os.environ.get("LLAMA_CPP_SRC")
    if not source:
        pytest.skip("set LLAMA_CPP_SRC to llama.cpp's source folder (convert_hf_to_gguf.py)")
    script = Path(source) / "convert_hf_to_gguf.py"
    if not script.is_file():
        pytest.skip(f"{script} not found: LLAMA_CPP_SRC must be llama.cpp's source folder")
    return script


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return train_sentencepiece(corpus.read_text().splitlines(), vocab_size=VOCAB)


CASES = {
    # Hugging Face's own layout; grouped-query attention (4 heads, 2 kv heads) in all cases.
    "untied": dict(rope_convention="rotate_half", tie_embeddings=False),
    "tied": dict(rope_convention="rotate_half", tie_embeddings=True),
    # llama2.c's layout, permuted to rotate-half by save_hf; other RoPE base and norm eps.
    "interleaved-theta-eps": dict(
        rope_convention="interleaved", tie_embeddings=False, rope_theta=500000.0, norm_eps=1e-6
    ),
}


@pytest.mark.parametrize("overrides", list(CASES.values()), ids=list(CASES))
def test_gguf_from_llama_cpps_hf_converter_gives_load_hf_logits(
    overrides, peaky_llama, tokenizer, tmp_path
):
    script = _converter()
    model = peaky_llama(seed=7, vocab_size=VOCAB, max_seq_len=64, **overrides)
    folder = save_hf(model, tmp_path / "hf")
    tokenizer.save(folder / "tokenizer.model")
    gguf_path = tmp_path / "theirs.gguf"
    done = subprocess.run(
        [sys.executable, str(script), str(folder), "--outfile", str(gguf_path), "--outtype", "f32"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    theirs = load_gguf(gguf_path)
    reference = load_hf(folder)
    for field in ("tie_embeddings", "rope_theta", "norm_eps", "n_kv_heads"):
        assert getattr(theirs.config, field) == getattr(model.config, field), field
    prompts = [
        tokenizer.encode("The government said on Tuesday", add_bos=True),
        tokenizer.encode("Fire crews fought the blaze near Sydney", add_bos=True),
        [2, 5, 17, 99, 127, 3, 64, 64, 8, 40, 41, 42],
    ]
    for prompt in prompts:
        tokens = np.array([prompt], np.int32)
        expected = np.asarray(reference(tokens))
        got = np.asarray(theirs(tokens))
        largest = np.abs(expected).max()
        difference = np.abs(got - expected).max()
        print(f"{len(prompt)} tokens: max |diff| {difference:.3g} of max |logit| {largest:.3g}")
        assert difference <= 1e-4 * largest, (prompt, difference, largest)
