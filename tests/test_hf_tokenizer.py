"""Hugging Face tokenizer.json files and chat templates, checked against the
`tokenizers` library and `transformers`' `apply_chat_template` themselves.

The default tests train small files of the three kinds (Llama 3, SmolLM2,
TinyLlama; `tests/tokenizer_files.py`). The slow test runs on real files when
`KERAS_RECIPES_TOKENIZER_FILES` names a folder holding them (one subfolder per
tokenizer, each with tokenizer.json and tokenizer_config.json).
"""

import json
import os
from pathlib import Path

import pytest
from tokenizer_files import CORPUS, FOLDERS

from keras_recipes.tokenizers import TokenizerJson, find_tokenizer, load_tokenizer
from keras_recipes.tokenizers.chat import ChatTemplate, render_chat

tokenizers = pytest.importorskip("tokenizers")

CONVERSATIONS = {
    "with system": [
        {"role": "system", "content": "You are terse. Answer in one line."},
        {"role": "user", "content": "What is 12345 + 1?"},
        {"role": "assistant", "content": "12346."},
        {"role": "user", "content": "Et en français ? 🙂"},
    ],
    "without system": [
        {"role": "user", "content": "Write def f(x): in Python."},
        {"role": "assistant", "content": "def f(x):\n    return x"},
        {"role": "user", "content": "  Now in 日本語  "},
    ],
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokenizer_files")
    return {name: make(root / name) for name, make in FOLDERS.items()}


def _check_against_tokenizers(folder: Path):
    reference = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    ours = load_tokenizer(folder)
    assert isinstance(ours, TokenizerJson)
    for text in CORPUS:
        expected = reference.encode(text, add_special_tokens=False).ids
        assert ours.encode(text) == expected, text
        assert ours.decode(expected) == reference.decode(
            [i for i in expected if i not in (ours.bos_id, ours.eos_id)], skip_special_tokens=False
        ), text
        assert ours.decode(expected, skip_special_tokens=True) == reference.decode(
            expected, skip_special_tokens=True
        ), text
    return ours


@pytest.mark.parametrize("kind", sorted(FOLDERS))
def test_ids_and_text_equal_the_tokenizers_library(folders, kind):
    ours = _check_against_tokenizers(folders[kind])
    assert find_tokenizer(folders[kind]).name == "tokenizer.json"
    ids = ours.encode("hello", add_bos=True, add_eos=True)
    assert ids[0] == ours.bos_id and ids[-1] == ours.eos_id


def test_llama3_splits_digit_runs_by_three(folders):
    ours = load_tokenizer(folders["llama3"])
    pieces = [ours.id_to_token(i) for i in ours.encode("rose 12345 in 2024")]
    # Llama 3 splits digits in threes and a space off a number (GPT-2 keeps ' 12345').
    assert "".join(pieces).replace("Ġ", " ") == "rose 12345 in 2024"
    assert not any(p.startswith("Ġ") and p[1:].isdigit() for p in pieces)
    assert not any(len(p) > 3 and p.isdigit() for p in pieces)


def test_special_tokens_and_config(folders):
    llama3 = load_tokenizer(folders["llama3"])
    assert (llama3.bos_token, llama3.eos_token) == ("<|begin_of_text|>", "<|eot_id|>")
    assert llama3.encode("a<|eot_id|>b")[1] == llama3.token_to_id("<|eot_id|>")
    tiny = load_tokenizer(folders["tinyllama"])
    assert (tiny.bos_id, tiny.eos_id) == (1, 2)


def test_a_bad_tokenizer_json_or_config_is_refused(tmp_path):
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"type": "Nonsense"}}))
    with pytest.raises(ValueError, match="tokenizers library cannot read"):
        load_tokenizer(tmp_path)


def test_config_naming_a_token_outside_the_vocabulary_is_refused(folders, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "tokenizer.json").write_text((folders["smollm2"] / "tokenizer.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|nope|>"}))
    with pytest.raises(ValueError, match="eos_token '<|nope|>' is not in the vocabulary"):
        load_tokenizer(folder)


@pytest.fixture(scope="module")
def transformers_tokenizers(folders):
    transformers = pytest.importorskip("transformers")
    return {
        kind: transformers.PreTrainedTokenizerFast.from_pretrained(str(folder))
        for kind, folder in folders.items()
    }


@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
@pytest.mark.parametrize("kind", sorted(FOLDERS))
def test_chat_template_equals_transformers(folders, transformers_tokenizers, kind, conversation):
    messages = CONVERSATIONS[conversation]
    oracle = transformers_tokenizers[kind]
    ours = load_tokenizer(folders[kind])
    for add_generation_prompt in (True, False):
        # Llama 3.2's template writes today's date unless told one.
        extra = {"date_string": "26 Jul 2024"}
        text = render_chat(ours, messages, add_generation_prompt=add_generation_prompt, **extra)
        expected = oracle.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt, **extra
        )
        assert text == expected
        expected_ids = oracle.apply_chat_template(
            messages, tokenize=True, add_generation_prompt=add_generation_prompt, **extra
        )
        expected_ids = getattr(expected_ids, "input_ids", None) or expected_ids
        if isinstance(expected_ids, dict):
            expected_ids = expected_ids["input_ids"]
        assert ours.encode(text) == list(expected_ids)


def test_template_errors_and_variables(folders):
    template = ChatTemplate(
        "{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}"
        "{{ messages | tojson }}{{ bos_token }}",
        {"bos_token": "<s>"},
    )
    with pytest.raises(ValueError, match="refused this conversation: user first"):
        template.render([{"role": "assistant", "content": "hi"}])
    # tojson writes non-ASCII and HTML characters as they are (transformers' filter).
    out = template.render([{"role": "user", "content": "é <b>", "name": None}])
    assert out == '[{"role": "user", "content": "é <b>"}]<s>'
    with pytest.raises(ValueError, match="each message is a dict with 'role'"):
        template.render(["hello"])
    with pytest.raises(ValueError, match="no chat_template"):
        render_chat(load_tokenizer(_without_template(folders["smollm2"])), [])


def _without_template(folder: Path) -> Path:
    bare = folder.parent / "bare"
    bare.mkdir(exist_ok=True)
    (bare / "tokenizer.json").write_text((folder / "tokenizer.json").read_text())
    return bare


@pytest.mark.slow
def test_real_tokenizer_files():
    """Llama 3, SmolLM2 and TinyLlama's own tokenizer.json (folder from the environment)."""
    root = os.environ.get("KERAS_RECIPES_TOKENIZER_FILES")
    if not root or not Path(root).is_dir():
        pytest.skip(
            "KERAS_RECIPES_TOKENIZER_FILES names no folder of real tokenizer.json files "
            "(one subfolder each, e.g. llama3/, smollm2/, tinyllama/)"
        )
    checked = []
    for folder in sorted(Path(root).iterdir()):
        if (folder / "tokenizer.json").is_file():
            _check_against_tokenizers(folder)
            checked.append(folder.name)
    assert checked, f"no tokenizer.json under {root}"
