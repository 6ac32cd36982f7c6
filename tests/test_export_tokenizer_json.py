"""`generate_text` of a SavedModel with a `tokenizer.json`, run by TF Serving's
C++ session loader (the C API), against the Hugging Face `tokenizers` library.

For each kind of file (Llama 3, SmolLM2, TinyLlama; `tokenizer_files.py`) a
tiny LLaMA is exported with its tokenizer.json; the test corpus goes through
`generate_text` in TF's C API session, and the answer must equal, character
for character, what the `tokenizers` library and the Keras model give:
encode (begin token added unless the text starts with it), greedy
generation to the end token, decode without special tokens.
"""

import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest
from tokenizer_files import CORPUS, FOLDERS

from keras_recipes.export import export_saved_model
from keras_recipes.llama import LlamaConfig, build_llama
from keras_recipes.serving import check_saved_model
from keras_recipes.tokenizers import TokenizerJson
from keras_recipes.tokenizers.graph import GraphTokenizer, graph_tokenizer_problem

tokenizers = pytest.importorskip("tokenizers")

NEW_TOKENS = 2


def greedy(model, ids, steps):
    """Greedy continuation by full forward passes (no cache, no generate())."""
    ids = list(ids)
    for _ in range(steps):
        ids.append(int(np.argmax(np.asarray(model(np.array([ids], np.int32)))[0, -1])))
    return ids


def library_answer(model, folder, inputs):
    """The oracle: the `tokenizers` library, tokenizer_config.json and greedy decoding."""
    library = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    bos = library.token_to_id(config["bos_token"])
    eos = library.token_to_id(config["eos_token"])
    texts = []
    for prompt in inputs["prompt"]:
        ids = library.encode(prompt.decode(), add_special_tokens=False).ids
        ids = ids if ids[:1] == [bos] else [bos, *ids]
        new = greedy(model, ids, int(inputs["max_new_tokens"][0]))[len(ids) :]
        new = new[: new.index(eos)] if eos in new else new
        texts.append(library.decode([*ids, *new], skip_special_tokens=True).encode())
    return {"text": np.array(texts, object)}


def requests(prompts):
    n = len(prompts)
    return {
        "prompt": np.array([p.encode() for p in prompts], object),
        "max_new_tokens": np.full([n], NEW_TOKENS, np.int32),
        "temperature": np.zeros([n], np.float32),
        "top_k": np.zeros([n], np.int32),
        "top_p": np.ones([n], np.float32),
        "seed": np.zeros([n], np.int32),
    }


# One kind in the fast suite (Llama 3's split is the hardest); all three with -m slow.
KINDS = [
    "llama3",
    pytest.param("smollm2", marks=pytest.mark.slow),
    pytest.param("tinyllama", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module", params=KINDS)
def exported(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"tokjson_{request.param}")
    folder = FOLDERS[request.param](root / "checkpoint")
    tokenizer = TokenizerJson(folder / "tokenizer.json")
    keras.utils.set_random_seed(5)
    model = build_llama(
        LlamaConfig.preset("tiny", vocab_size=tokenizer.vocab_size + 3, max_seq_len=160)
    )
    model.norm.scale.assign(model.norm.scale.numpy() * 6.0)  # logits well apart
    path = export_saved_model(
        model, root / "saved", tokenizer=folder, example_prompt="<|eot_id|> hi", verify=False
    )
    return model, folder, path


def test_generate_text_through_the_c_api_equals_the_tokenizers_library(exported):
    model, folder, path = exported
    prompts = [text for text in CORPUS if text]
    replays = check_saved_model(
        path,
        expected=lambda name, inputs: library_answer(model, folder, inputs),
        requests=[("generate_text", requests(prompts))],
    )
    assert len(replays[0].outputs["text"]) == len(prompts)


def test_client_chat_answers_what_chat_answers(exported):
    """`TFServingClient.chat` (template written client-side) against `Chat.send`, served
    by `LocalServer` (TF Serving's loader, the C API session)."""
    from keras_recipes.causal_lm import GenerationConfig
    from keras_recipes.causal_lm.chat import Chat
    from keras_recipes.serving import LocalServer, TFServingClient

    model, folder, path = exported
    date = {"date_string": "26 Jul 2024"}  # Llama 3.2's template writes today's date otherwise
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there, 12345?"},
    ]
    settings = GenerationConfig(max_new_tokens=NEW_TOKENS, temperature=0.0)
    chat = Chat(model, TokenizerJson(folder / "tokenizer.json"), system="Be brief.",
                settings=settings, template_variables=date)  # fmt: skip
    expected = chat.send(messages[1]["content"])
    with LocalServer(path.parent) as server:
        reply = TFServingClient(server.url).chat(
            path.parent.name, messages, tokenizer=folder, max_new_tokens=NEW_TOKENS, **date
        )
    assert reply == expected


@pytest.mark.parametrize("kind", sorted(FOLDERS))
def test_graph_tokenizer_equals_the_tokenizers_library(kind, tmp_path):
    """Ids and text of the graph ops, eagerly, on the corpus and on random strings."""
    check_graph_tokenizer(FOLDERS[kind](tmp_path / kind))


@pytest.mark.slow
def test_graph_tokenizer_on_real_files():
    """Llama 3, SmolLM2 and TinyLlama's own tokenizer.json (folder from the environment)."""
    root = os.environ.get("KERAS_RECIPES_TOKENIZER_FILES")
    if not root or not Path(root).is_dir():
        pytest.skip(
            "KERAS_RECIPES_TOKENIZER_FILES names no folder of real tokenizer.json files "
            "(one subfolder each, e.g. llama3/, smollm2/, tinyllama/)"
        )
    folders = [f for f in sorted(Path(root).iterdir()) if (f / "tokenizer.json").is_file()]
    assert folders, f"no tokenizer.json under {root}"
    for folder in folders:
        check_graph_tokenizer(folder)


def check_graph_tokenizer(folder):
    import random

    import tensorflow as tf

    library = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer = TokenizerJson(folder / "tokenizer.json")
    graph = GraphTokenizer(tokenizer, vocab_size=tokenizer.vocab_size + 4)
    rng = random.Random(0)
    pool = list(" \t\n\r\x0b\x85\u00a0\u3000aAé'sStTmM1234½٣.,;!?-()\"日🙂ſK#") + [
        "'ll", "'RE", "<|eot_id|>", "<|im_start|>", "</s>", "<s>", "   ", "\n\n", " \n ",
        "\r\n", "Hello", " world",
    ]  # fmt: skip
    texts = CORPUS + ["".join(rng.choices(pool, k=rng.randint(0, 20))) for _ in range(300)]
    got = graph.tokenize(tf.constant(texts)).to_list()
    for text, ids in zip(texts, got, strict=True):
        assert ids == library.encode(text, add_special_tokens=False).ids, repr(text)
    ids = [[rng.randrange(tokenizer.vocab_size + 4) for _ in range(rng.randint(0, 12))]]
    ids += [library.encode(text, add_special_tokens=False).ids for text in texts]
    out = graph.detokenize(tf.ragged.constant(ids, tf.int32, row_splits_dtype=tf.int64))
    for row, text in zip(ids, out.numpy(), strict=True):
        known = [i for i in row if i < tokenizer.vocab_size]
        assert text.decode() == library.decode(known, skip_special_tokens=True), row


def test_a_pattern_without_a_graph_equivalent_is_refused(tmp_path):
    folder = FOLDERS["llama3"](tmp_path / "possessive")
    spec = json.loads((folder / "tokenizer.json").read_text())
    split = spec["pre_tokenizer"]["pretokenizers"][0]
    split["pattern"]["Regex"] = split["pattern"]["Regex"].replace(r"]?\p{L}+", r"]?+\p{L}+")
    assert "'?+'" in graph_tokenizer_problem(spec)
    spec["pre_tokenizer"] = {"type": "Whitespace"}
    assert "Whitespace has no graph equivalent" in graph_tokenizer_problem(spec)
    spec["pre_tokenizer"] = None
    spec["normalizer"] = {"type": "NFKC"}
    assert "normalizer NFKC" in graph_tokenizer_problem(spec)
    (folder / "tokenizer.json").write_text(
        json.dumps({**spec, "normalizer": {"type": "NFKC"}, "pre_tokenizer": None})
    )
    model = build_llama(LlamaConfig.preset("tiny", vocab_size=2000, max_seq_len=32))
    with pytest.raises(ValueError, match=r"tokenizer.json cannot run inside the SavedModel"):
        export_saved_model(model, tmp_path / "saved", tokenizer=folder, verify=False)
    assert not (tmp_path / "saved" / "1").exists()


def test_a_prompt_holding_the_reserved_marker_is_refused(tmp_path):
    import tensorflow as tf

    graph = GraphTokenizer(TokenizerJson(FOLDERS["llama3"](tmp_path / "t") / "tokenizer.json"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="U\\+FDD0"):
        graph.tokenize(tf.constant(["a  \ufdd0 b"]))
