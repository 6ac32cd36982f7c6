"""llama2.c and Hugging Face checkpoint formats, without a model."""

import dataclasses
import struct

import numpy as np
import pytest

from keras_recipes.llama import checkpoints as ckpt
from keras_recipes.llama.checkpoints import llama2c

HEADER = ckpt.Llama2cHeader(
    dim=16, hidden_dim=24, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=32, seq_len=8
)


def random_tensors(header, shared=True, seed=0):
    rng = np.random.default_rng(seed)
    h = dataclasses.replace(header, shared_classifier=shared)
    return {
        name: rng.normal(size=shape).astype(np.float32)
        for name, shape, _ in llama2c._llama2c_layout(h)
        if not name.startswith("freq_cis")
    }


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("shared", [True, False])
def test_llama2c_fp32_round_trip_is_exact(tmp_path, version, shared):
    header = dataclasses.replace(HEADER, version=version, shared_classifier=shared)
    tensors = random_tensors(header, shared)
    path = ckpt.write_llama2c(tmp_path / "m.bin", header, tensors)
    read_header, read = ckpt.read_llama2c(path)
    assert read_header == header
    assert read.keys() == tensors.keys()
    for name in tensors:
        np.testing.assert_array_equal(read[name], tensors[name], err_msg=name)


def test_legacy_file_layout_matches_run_c_offsets(tmp_path):
    """Byte offsets as llama2.c's run.c `memory_map_weights` walks a v0 file."""
    header = dataclasses.replace(HEADER, shared_classifier=False)
    tensors = random_tensors(header, shared=False)
    path = ckpt.write_llama2c(tmp_path / "m.bin", header, tensors)
    raw = path.read_bytes()
    ints = struct.unpack("<7i", raw[:28])
    assert ints == (16, 24, 2, 4, 2, -32, 8)  # negative vocab: unshared classifier
    floats = np.frombuffer(raw[28:], "<f4")
    d, L, hd, kv = 16, 2, 24, 8
    offset = 0

    def take(n):
        nonlocal offset
        offset += n
        return floats[offset - n : offset]

    np.testing.assert_array_equal(take(32 * d), tensors["tok_embeddings.weight"].ravel())
    take(L * d)  # rms_att_weight
    wq = take(L * d * d).reshape(L, d, d)
    np.testing.assert_array_equal(wq[1], tensors["layers.1.attention.wq.weight"])
    take(L * kv * d), take(L * kv * d), take(L * d * d), take(L * d)
    w1 = take(L * hd * d).reshape(L, hd, d)
    np.testing.assert_array_equal(w1[0], tensors["layers.0.feed_forward.w1.weight"])
    take(L * d * hd), take(L * hd * d), take(d)
    take(8 * 4 // 2), take(8 * 4 // 2)  # freq_cis_real, freq_cis_imag
    np.testing.assert_array_equal(take(32 * d), tensors["output.weight"].ravel())
    assert offset == floats.size


def test_version2_q80_dequantizes_within_half_a_step(tmp_path):
    header = dataclasses.replace(HEADER, version=2)
    tensors = random_tensors(header)
    path = ckpt.write_llama2c(tmp_path / "q.bin", header, tensors)
    read_header, read = ckpt.read_llama2c(path)
    assert read_header.group_size == 16  # 64 halved until it divides dim=16
    for name, value in tensors.items():
        if "norm" in name:
            np.testing.assert_array_equal(read[name], value)
        else:
            step = np.abs(value.reshape(-1, 16)).max(axis=1, keepdims=True) / 127.0
            err = np.abs(read[name].reshape(-1, 16) - value.reshape(-1, 16))
            assert np.all(err <= step / 2 + 1e-7), name


def test_q80_matches_llama2c_definition():
    w = np.array([0.0, 1.0, -2.0, 0.5, 0.25, -0.125, 3.0, -3.0], np.float32)
    q, scale = ckpt.quantize_q80(w, 4)
    np.testing.assert_allclose(scale, [2.0 / 127, 3.0 / 127])
    np.testing.assert_array_equal(q[:4], np.round(w[:4] / (2.0 / 127)).astype(np.int8))
    assert q[2] == -127 and q[6] == 127


def test_truncated_file_names_the_sizes(tmp_path):
    path = ckpt.write_llama2c(tmp_path / "m.bin", HEADER, random_tensors(HEADER))
    data = path.read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-10])
    with pytest.raises(ckpt.CheckpointError, match="cut.bin.*truncated"):
        ckpt.read_llama2c(tmp_path / "cut.bin")
    (tmp_path / "long.bin").write_bytes(data + b"\0" * 8)
    with pytest.raises(ckpt.CheckpointError, match="longer than its header"):
        ckpt.read_llama2c(tmp_path / "long.bin")


def test_unknown_magic_and_version_are_refused(tmp_path):
    (tmp_path / "junk.bin").write_bytes(b"PK\x03\x04" + b"\0" * 300)
    with pytest.raises(ckpt.CheckpointError, match="unknown magic"):
        ckpt.read_llama2c(tmp_path / "junk.bin")
    head = struct.pack("<Ii7iB", ckpt.LLAMA2C_MAGIC, 7, 16, 24, 2, 4, 2, 32, 8, 1)
    (tmp_path / "v7.bin").write_bytes(head + b"\0" * (256 - len(head)))
    with pytest.raises(ckpt.CheckpointError, match="version 7 is not supported"):
        ckpt.read_llama2c(tmp_path / "v7.bin")
    (tmp_path / "tiny.bin").write_bytes(b"\1\2")
    with pytest.raises(ckpt.CheckpointError, match="too short"):
        ckpt.read_llama2c(tmp_path / "tiny.bin")


def test_inconsistent_header_is_refused(tmp_path):
    head = struct.pack("<7i", 18, 24, 2, 4, 2, 32, 8)  # dim 18 not divisible by 4 heads
    (tmp_path / "bad.bin").write_bytes(head + b"\0" * 4096)
    with pytest.raises(ckpt.CheckpointError, match="dim must divide by n_heads"):
        ckpt.read_llama2c(tmp_path / "bad.bin")


def test_failed_write_leaves_no_file(tmp_path):
    tensors = random_tensors(HEADER)
    del tensors["layers.1.feed_forward.w3.weight"]
    with pytest.raises(ckpt.CheckpointError, match="layers.1.feed_forward.w3.weight is missing"):
        ckpt.write_llama2c(tmp_path / "m.bin", HEADER, tensors)
    assert list(tmp_path.iterdir()) == []


def test_rope_permutations_are_inverse_and_match_hf():
    rng = np.random.default_rng(1)
    n_heads, head_dim, dim = 2, 8, 16
    w = rng.normal(size=(n_heads * head_dim, dim)).astype(np.float32)
    hf = ckpt.permute_for_rotate_half(w, n_heads)
    np.testing.assert_array_equal(ckpt.permute_for_interleaved(hf, n_heads), w)
    # HF's convert script: within a head, interleaved row 2i -> i, 2i+1 -> i + head_dim/2.
    np.testing.assert_array_equal(hf[3], w[6])
    np.testing.assert_array_equal(hf[3 + 4], w[7])
    np.testing.assert_array_equal(hf[8 + 1], w[8 + 2])


def test_hf_names_map_both_ways():
    for hf in [
        "model.embed_tokens.weight",
        "model.layers.11.self_attn.k_proj.weight",
        "model.layers.0.mlp.down_proj.weight",
        "model.layers.3.post_attention_layernorm.weight",
        "lm_head.weight",
    ]:
        ours = ckpt.hf_to_canonical_name(hf)
        assert ours is not None and ckpt.canonical_to_hf_name(ours) == hf
    assert ckpt.hf_to_canonical_name("model.layers.0.self_attn.rotary_emb.inv_freq") is None
    assert ckpt.hf_to_canonical_name("model.layers.0.mlp.down_proj.weight") == (
        "layers.0.feed_forward.w2.weight"
    )
