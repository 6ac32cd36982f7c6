"""A Llama 3.2-shaped Hugging Face folder end to end: load, logits against
keras-hub, chat (Python, CLI, TF Serving client) and stop ids from
generation_config.json.

The folder (`tokenizer_files.llama32_folder`) is a tiny random model with
Llama 3.2's config fields (rope_scaling of type llama3, tied embeddings,
128256 ids, rms_norm_eps 1e-5), its tokenizer shape and chat template.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from tokenizer_files import LLAMA32_STOP_IDS, LLAMA32_VOCAB, llama32_folder

from keras_recipes.causal_lm import GenerationConfig
from keras_recipes.causal_lm.chat import Chat
from keras_recipes.llama import load_hf
from keras_recipes.tokenizers import load_tokenizer

SYSTEM = "You answer in one short line."
NEW_TOKENS = 6


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return llama32_folder(tmp_path_factory.mktemp("hf") / "Llama-3.2-tiny-Instruct")


@pytest.fixture(scope="module")
def model(folder):
    return load_hf(folder)


@pytest.fixture(scope="module")
def tokenizer(folder):
    return load_tokenizer(folder)


def greedy_chat(model, tokenizer, **kwargs):
    return Chat(
        model,
        tokenizer,
        system=SYSTEM,
        settings=GenerationConfig(max_new_tokens=NEW_TOKENS, temperature=0.0),
        **kwargs,
    )


def test_llama32_folder_loads_with_its_config(model, tokenizer):
    cfg = model.config
    assert cfg.vocab_size == LLAMA32_VOCAB and cfg.tie_embeddings and cfg.norm_eps == 1e-5
    assert cfg.rope_scaling["factor"] == 32.0
    assert (tokenizer.bos_id, tokenizer.eos_id) == (128000, 128009)


def test_logits_match_keras_hub_with_the_configs_epsilon(folder, model, tokenizer):
    import keras_hub

    ids = np.array([tokenizer.encode("Hello world, 12345 is a number.", add_bos=True)], np.int32)
    ours = np.asarray(model(ids))
    # keras-hub's Hugging Face converter ignores rms_norm_eps and keeps its
    # default of 1e-6 (Llama 3 configs say 1e-5), so it is set here from the
    # config; with its default the logits differ by ~30x more than this bound.
    backbone = keras_hub.models.Llama3Backbone.from_preset(
        str(folder),
        layer_norm_epsilon=json.loads((folder / "config.json").read_text())["rms_norm_eps"],
    )
    hidden = backbone({"token_ids": ids, "padding_mask": np.ones_like(ids)})
    theirs = np.asarray(backbone.token_embedding(hidden, reverse=True))
    assert np.abs(ours - theirs).max() <= 1e-4 * np.abs(theirs).max()


def test_chat_stops_on_the_second_stop_id_of_generation_config(folder, tmp_path, model):
    tokenizer = load_tokenizer(folder)
    chat = greedy_chat(model, tokenizer)
    ids = chat.prompt_ids([*chat.messages, {"role": "user", "content": "Hi"}])
    free = model.generate([ids], max_new_tokens=NEW_TOKENS, temperature=0.0)[0, len(ids) :]
    stop = int(free[2])
    assert stop not in free[:2].tolist()  # the random model's third token is new
    stopped = tmp_path / "stopped"
    shutil.copytree(folder, stopped)
    generation = {"eos_token_id": [LLAMA32_STOP_IDS[0], stop, LLAMA32_STOP_IDS[2]]}
    (stopped / "generation_config.json").write_text(json.dumps(generation))
    chat = greedy_chat(model, load_tokenizer(stopped))
    pieces = []
    reply = chat.send("Hi", stream=pieces.append)
    assert reply == tokenizer.decode(free[:2].tolist(), skip_special_tokens=True)
    assert "".join(pieces) == reply
    assert chat.messages[-1] == {"role": "assistant", "content": reply}


def run_cli(*args, stdin=""):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run(
        [sys.executable, "-m", "keras_recipes.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_chat_command_streams_turns_and_resets(folder, model, tokenizer):
    chat = greedy_chat(model, tokenizer)
    first = chat.send("Hi there")
    second = chat.send("And then?")
    out = run_cli(
        "llama", "chat", "--checkpoint", str(folder), "--system", SYSTEM,
        "--temperature", "0", "--max-new-tokens", str(NEW_TOKENS),
        stdin="Hi there\nAnd then?\n/reset\nHi there\n/exit\nnever read\n",
    )  # fmt: skip
    assert out.splitlines() == [first, second, first]


@pytest.mark.slow
def test_generate_chat_makes_one_turn(folder, model, tokenizer):
    reply = greedy_chat(model, tokenizer).send("Hi there")
    out = run_cli(
        "llama", "generate", "--chat", "--checkpoint", str(folder), "--system", SYSTEM,
        "--prompt", "Hi there", "--temperature", "0", "--max-new-tokens", str(NEW_TOKENS),
    )  # fmt: skip
    assert out.splitlines() == [reply]


@pytest.mark.slow
def test_export_serves_chat_through_the_client(folder, model, tokenizer, tmp_path):
    from keras_recipes.export import export_saved_model
    from keras_recipes.serving import LocalServer, TFServingClient

    date = {"date_string": "26 Jul 2024"}
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Hi there, 12345?"},
    ]
    chat = greedy_chat(model, tokenizer, template_variables=date)
    expected = chat.send(messages[1]["content"])
    # LocalServer answers through TF Serving's own loader (the C API session).
    export_saved_model(model, tmp_path / "llama32", tokenizer=folder, verify=False)
    with LocalServer(tmp_path / "llama32") as server:
        client = TFServingClient(server.url)
        reply = client.chat(
            "llama32", messages, tokenizer=folder, max_new_tokens=NEW_TOKENS, **date
        )
    assert reply == expected
