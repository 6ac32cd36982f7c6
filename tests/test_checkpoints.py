"""load/save of llama2.c and Hugging Face checkpoints, against independent oracles.

Oracles: a numpy port of llama2.c's `run.c` forward pass (float64), and
keras-hub's Llama reading the same Hugging Face folder.
"""

import dataclasses
import json

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from keras_recipes.llama import LlamaConfig, build_llama
from keras_recipes.llama import checkpoints as ckpt
from keras_recipes.llama.checkpoints import (
    CheckpointError,
    llama2c,
    load_hf,
    load_llama2c,
    save_hf,
    save_llama2c,
)

HEADER = ckpt.Llama2cHeader(
    dim=32, hidden_dim=48, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=64, seq_len=64
)
TOKENS = np.array([[1, 17, 5, 33, 60, 2, 9, 41, 12, 7]], np.int32)


def random_tensors(header, seed=0):
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape, _ in llama2c._llama2c_layout(header):
        if name.startswith("freq_cis"):
            continue
        scale = 1.0 if name == "tok_embeddings.weight" or "norm" in name else 0.3
        base = 1.0 if "norm" in name else 0.0
        tensors[name] = (base + scale * rng.normal(size=shape)).astype(np.float32)
    return tensors


def runc_logits(w, h, tokens):
    """llama2.c's run.c `forward`, position by position, in float64."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    hs, kv_dim = h.dim // h.n_heads, h.n_kv_heads * (h.dim // h.n_heads)
    kv_mul = h.n_heads // h.n_kv_heads

    def rmsnorm(x, weight):
        return weight * x / np.sqrt(np.mean(x * x) + 1e-5)

    def rope(vec, pos):
        i = np.arange(0, vec.size, 2)
        freq = 1.0 / 10000.0 ** ((i % hs) / hs)
        cos, sin = np.cos(pos * freq), np.sin(pos * freq)
        v0, v1 = vec[0::2].copy(), vec[1::2].copy()
        out = vec.copy()
        out[0::2], out[1::2] = v0 * cos - v1 * sin, v0 * sin + v1 * cos
        return out

    keys = [[] for _ in range(h.n_layers)]
    values = [[] for _ in range(h.n_layers)]
    all_logits = []
    for pos, token in enumerate(tokens):
        x = w["tok_embeddings.weight"][token].copy()
        for layer in range(h.n_layers):
            p = f"layers.{layer}."
            xb = rmsnorm(x, w[p + "attention_norm.weight"])
            q = rope(w[p + "attention.wq.weight"] @ xb, pos)
            keys[layer].append(rope(w[p + "attention.wk.weight"] @ xb, pos))
            values[layer].append(w[p + "attention.wv.weight"] @ xb)
            k, v = np.stack(keys[layer]), np.stack(values[layer])
            heads = []
            for head in range(h.n_heads):
                kv = (head // kv_mul) * hs
                scores = k[:, kv : kv + hs] @ q[head * hs : (head + 1) * hs] / np.sqrt(hs)
                att = np.exp(scores - scores.max())
                att /= att.sum()
                heads.append(att @ v[:, kv : kv + hs])
            x = x + w[p + "attention.wo.weight"] @ np.concatenate(heads)
            xb = rmsnorm(x, w[p + "ffn_norm.weight"])
            gate = w[p + "feed_forward.w1.weight"] @ xb
            up = w[p + "feed_forward.w3.weight"] @ xb
            x = x + w[p + "feed_forward.w2.weight"] @ (gate / (1 + np.exp(-gate)) * up)
        x = rmsnorm(x, w["norm.weight"])
        classifier = w.get("output.weight", w["tok_embeddings.weight"])
        all_logits.append(classifier @ x)
    assert kv_dim == k.shape[1]
    return np.stack(all_logits)


@pytest.fixture(scope="module")
def llama2c_file(tmp_path_factory):
    """An untied GQA llama2.c v0 checkpoint with random weights, and its tensors."""
    header = dataclasses.replace(HEADER, shared_classifier=False)
    tensors = random_tensors(header)
    path = ckpt.write_llama2c(tmp_path_factory.mktemp("l2c") / "model.bin", header, tensors)
    return path, header, tensors


@pytest.fixture(scope="module")
def llama2c_model(llama2c_file):
    return load_llama2c(llama2c_file[0])


def logits_of(model, tokens=TOKENS):
    return np.asarray(model(tokens))


def test_llama2c_logits_equal_run_c(llama2c_file, llama2c_model):
    _, header, tensors = llama2c_file
    expected = runc_logits(tensors, header, TOKENS[0])
    np.testing.assert_allclose(logits_of(llama2c_model)[0], expected, rtol=1e-4, atol=1e-4)


def test_llama2c_greedy_tokens_equal_run_c(llama2c_file, llama2c_model):
    _, header, tensors = llama2c_file
    prompt = [1, 17, 5]
    out = llama2c_model.generate([prompt], max_new_tokens=20, temperature=0.0)
    sequence = list(prompt)
    for _ in range(20):  # run.c -t 0: argmax of the last position, one token at a time
        sequence.append(int(np.argmax(runc_logits(tensors, header, sequence)[-1])))
    assert out[0].tolist() == sequence


@pytest.mark.parametrize("version", [0, 1])
def test_llama2c_round_trip_reproduces_logits_exactly(tmp_path, llama2c_model, version):
    path = save_llama2c(llama2c_model, tmp_path / f"v{version}.bin", version=version)
    again = load_llama2c(path)
    np.testing.assert_array_equal(logits_of(again), logits_of(llama2c_model))


def test_llama2c_int8_version2_equals_run_c_on_dequantized_weights(
    tmp_path, llama2c_file, llama2c_model
):
    _, header, tensors = llama2c_file
    again = load_llama2c(save_llama2c(llama2c_model, tmp_path / "q.bin", version=2))
    dequantized = {}
    for name, value in tensors.items():
        if "norm" in name:
            dequantized[name] = value
        else:
            q, scale = ckpt.quantize_q80(value, 32)  # dim 32: llama2.c's group size here
            dequantized[name] = (q.reshape(-1, 32) * scale[:, None]).reshape(value.shape)
    expected = runc_logits(dequantized, header, TOKENS[0])
    np.testing.assert_allclose(logits_of(again)[0], expected, rtol=1e-4, atol=1e-4)
    reference = logits_of(llama2c_model)
    assert 0 < np.abs(logits_of(again) - reference).max() < 0.15 * np.abs(reference).max()


def test_hf_round_trip_is_exact_and_permutes_rope(tmp_path, llama2c_model):
    save_hf(llama2c_model, tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_key_value_heads"] == 2
    hf_model = load_hf(tmp_path / "hf")
    assert hf_model.config.rope_convention == "rotate_half"
    np.testing.assert_allclose(logits_of(hf_model), logits_of(llama2c_model), atol=2e-5)
    # And back to llama2.c: rows permuted back, same logits.
    back = load_llama2c(save_llama2c(hf_model, tmp_path / "back.bin"))
    np.testing.assert_allclose(logits_of(back), logits_of(llama2c_model), atol=2e-5)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A random untied GQA Hugging Face folder with Llama 3.1 RoPE scaling."""
    cfg = LlamaConfig(
        vocab_size=96,
        dim=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        hidden_dim=64,
        max_seq_len=128,
        rope_theta=500000.0,
        norm_eps=1e-5,
        rope_convention="rotate_half",
        rope_scaling=dict(
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=16,
        ),
    )
    model = build_llama(cfg)
    rng = np.random.default_rng(3)
    for variable in model.weights:
        variable.assign(rng.normal(scale=0.3, size=variable.shape).astype("float32"))
    return save_hf(model, tmp_path_factory.mktemp("hf") / "llama"), model


def test_hf_logits_agree_with_keras_hub(hf_dir):
    import keras_hub

    directory, model = hf_dir
    ours = load_hf(directory)
    backbone = keras_hub.models.Backbone.from_preset(str(directory))
    hidden = backbone({"token_ids": TOKENS, "padding_mask": np.ones_like(TOKENS)})
    theirs = np.asarray(backbone.token_embedding(hidden, reverse=True))
    np.testing.assert_allclose(logits_of(ours), theirs, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(logits_of(ours), logits_of(model))


def test_hf_bfloat16_and_sharded_folders_load(tmp_path, hf_dir):
    directory, model = hf_dir
    state = load_file(str(directory / "model.safetensors"))
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[::2]}
    shards["model-00002-of-00002.safetensors"] = names[1::2]
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "config.json").write_text((directory / "config.json").read_text())
    weight_map = {}
    for file, keys in shards.items():
        save_file({k: state[k] for k in keys}, str(sharded / file))
        weight_map.update({k: file for k in keys})
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    np.testing.assert_array_equal(logits_of(load_hf(sharded)), logits_of(model))

    bf16 = load_hf(save_hf(model, tmp_path / "bf16", dtype="bfloat16"))
    reference = logits_of(model)
    assert np.abs(logits_of(bf16) - reference).max() < 0.05 * np.abs(reference).max()


def test_hf_missing_and_misshapen_tensors_name_the_file_and_tensor(tmp_path, hf_dir):
    directory, _ = hf_dir
    state = load_file(str(directory / "model.safetensors"))
    config = (directory / "config.json").read_text()

    def folder(name, tensors, config_text=config):
        path = tmp_path / name
        path.mkdir()
        (path / "config.json").write_text(config_text)
        save_file(tensors, str(path / "model.safetensors"))
        return path

    missing = dict(state)
    del missing["model.layers.1.mlp.up_proj.weight"]
    with pytest.raises(CheckpointError, match=r"missing tensors.*layers.1.feed_forward.w3"):
        load_hf(folder("missing", missing))

    wrong = dict(state)
    wrong["model.layers.0.self_attn.k_proj.weight"] = np.zeros((8, 32), np.float32)
    with pytest.raises(CheckpointError, match=r"model.safetensors: tensor layers.0.attention.wk"):
        load_hf(folder("shape", wrong))

    ints = dict(state)
    ints["model.norm.weight"] = np.ones(32, np.int32)
    with pytest.raises(CheckpointError, match=r"norm.weight \(model.norm.weight\) has dtype I32"):
        load_hf(folder("dtype", ints))

    linear = json.loads(config)
    linear["rope_scaling"] = {"rope_type": "linear", "factor": 2.0}
    with pytest.raises(CheckpointError, match="rope_scaling of type 'linear'"):
        load_hf(folder("linear", state, json.dumps(linear)))

    mistral = json.loads(config) | {"model_type": "mistral"}
    with pytest.raises(CheckpointError, match="model_type is 'mistral'"):
        load_hf(folder("mistral", state, json.dumps(mistral)))

    with pytest.raises(CheckpointError, match="no config.json"):
        load_hf(tmp_path)


def test_llama2c_refuses_what_run_c_cannot_compute(tmp_path, hf_dir):
    _, model = hf_dir  # theta 500000 with Llama 3.1 scaling
    with pytest.raises(CheckpointError, match="rope_theta=500000.0.*rope_scaling"):
        save_llama2c(model, tmp_path / "x.bin")
    assert not list(tmp_path.iterdir())


def test_truncated_llama2c_file_fails_before_building(tmp_path, llama2c_file):
    data = llama2c_file[0].read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.bin: file is truncated"):
        load_llama2c(tmp_path / "cut.bin")


def test_block_by_block_copy_equals_whole_tensor_copy(tmp_path, hf_dir, monkeypatch):
    """Loaders copy large tensors a block of rows at a time; tiny blocks change nothing."""
    directory, model = hf_dir
    untied = build_llama(model.config.replace(rope_theta=10000.0, rope_scaling=None))
    l2c = save_llama2c(untied, tmp_path / "untied.bin")
    bf16 = save_hf(untied, tmp_path / "bf16", dtype="bfloat16")  # cast block by block
    whole = [logits_of(load_hf(directory)), logits_of(load_llama2c(l2c)), logits_of(load_hf(bf16))]
    monkeypatch.setattr(
        "keras_recipes.llama.checkpoints.weights.ROWS_BLOCK_BYTES", 3 * 32 * 4
    )  # three rows per block
    np.testing.assert_array_equal(logits_of(load_hf(directory)), whole[0])
    np.testing.assert_array_equal(logits_of(load_llama2c(l2c)), whole[1])
    np.testing.assert_array_equal(logits_of(load_hf(bf16)), whole[2])


def test_loaded_model_is_fully_allocated_and_trains(llama2c_file):
    # Loaders create each variable from its tensor (no zeros first); what the
    # checkpoint does not hold (dropout seed states) is initialized after.
    model = load_llama2c(llama2c_file[0])
    assert all(v._value is not None for v in model.variables)
    with keras.StatelessScope():  # nothing of the model is left pending in Keras
        pass
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True))
    loss = model.train_on_batch(TOKENS, np.roll(TOKENS, -1, axis=1))
    assert np.isfinite(loss)


def test_save_hf_writes_the_tokenizers_bos_and_eos_ids(tmp_path):
    import json

    from keras_recipes.llama import LlamaConfig, build_llama, save_hf
    from keras_recipes.tokenizers import train_sentencepiece

    tokenizer = train_sentencepiece(
        ["the fire spread fast", "the wind blew the fire"] * 20, vocab_size=20
    )
    model = build_llama(LlamaConfig.preset("tiny", vocab_size=20, max_seq_len=16))
    save_hf(model, tmp_path / "with", tokenizer=tokenizer)
    config = json.loads((tmp_path / "with" / "config.json").read_text())
    assert (config["bos_token_id"], config["eos_token_id"]) == (tokenizer.bos_id, tokenizer.eos_id)
    assert (tokenizer.bos_id, tokenizer.eos_id) != (1, 2)  # the defaults would be wrong here
    save_hf(model, tmp_path / "without")
    config = json.loads((tmp_path / "without" / "config.json").read_text())
    assert (config["bos_token_id"], config["eos_token_id"]) == (1, 2)  # Hugging Face's defaults
