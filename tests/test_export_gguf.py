"""GGUF files: written with llama.cpp's metadata and names, read back by the `gguf` reader.

The fast tests here read our files with the `gguf` package's own reader
(llama.cpp's gguf-py) and with `load_gguf`; the runtime itself checks them
in tests/test_llama_cpp.py (slow, needs llama.cpp).
"""

import json

import gguf
import keras
import numpy as np
import pytest
from runs import run_cli

from keras_recipes.export.gguf import (
    byte_pair_pre_tokenizer,
    load_gguf,
    read_gguf_metadata,
    save_gguf,
)
from keras_recipes.llama import LlamaConfig, build_llama
from keras_recipes.tokenizers import Llama2cTokenizer, train_sentencepiece

TEXT = [
    "once upon a time there was a little cat who liked to sit on the mat",
    "the dog ran to the park and played with a red ball all day long",
] * 20
TOKENS = np.array([[2, 5, 9, 14, 3, 7, 30, 11]], np.int32)


def tiny_llama(vocab_size=64, **overrides):
    keras.utils.set_random_seed(5)
    config = LlamaConfig.preset("tiny", vocab_size=vocab_size, max_seq_len=32, **overrides)
    model = build_llama(config)
    # Trained norms are not all ones: a swapped or dropped norm tensor must show.
    for variable in model.weights:
        if "scale" in variable.path:
            variable.assign(np.random.default_rng(1).uniform(0.5, 1.5, variable.shape))
    model.norm.scale.assign(model.norm.scale.numpy() * 6.0)  # logits well apart
    return model


@pytest.fixture(scope="module")
def tokenizer():
    return train_sentencepiece(TEXT, vocab_size=40)


def tensor_types(path):
    return {
        t.name: gguf.GGMLQuantizationType(t.tensor_type).name for t in gguf.GGUFReader(path).tensors
    }


def test_f32_round_trip_is_exact_and_keeps_the_config(tokenizer, tmp_path):
    model = tiny_llama(n_heads=4, n_kv_heads=2, tie_embeddings=False, norm_eps=1e-6)
    path = save_gguf(model, tmp_path / "m.gguf", tokenizer=tokenizer)
    back = load_gguf(path)
    assert back.config == model.config
    np.testing.assert_array_equal(back(TOKENS), model(TOKENS))
    assert set(tensor_types(path).values()) == {"F32"}


def test_names_and_metadata_are_llama_cpps(tokenizer, tmp_path):
    model = tiny_llama(n_heads=4, n_kv_heads=2, rope_theta=500000.0, tie_embeddings=True)
    path = save_gguf(model, tmp_path / "m.gguf", tokenizer=tokenizer)
    meta = read_gguf_metadata(path)
    cfg = model.config
    assert meta["general.architecture"] == "llama"
    assert meta["llama.context_length"] == cfg.max_seq_len
    assert meta["llama.embedding_length"] == cfg.dim
    assert meta["llama.block_count"] == cfg.n_layers
    assert meta["llama.feed_forward_length"] == cfg.ffn_hidden_dim
    assert (meta["llama.attention.head_count"], meta["llama.attention.head_count_kv"]) == (4, 2)
    assert meta["llama.rope.freq_base"] == 500000.0
    assert meta["llama.rope.dimension_count"] == cfg.head_dim
    names = set(tensor_types(path))
    assert {"token_embd.weight", "output_norm.weight", "blk.0.attn_q.weight"} <= names
    assert {"blk.0.ffn_gate.weight", "blk.0.ffn_down.weight", "blk.0.ffn_up.weight"} <= names
    assert "output.weight" not in names  # tied: llama.cpp reuses token_embd
    reader = gguf.GGUFReader(path)
    shapes = {t.name: tuple(int(n) for n in t.shape) for t in reader.tensors}
    assert shapes["blk.0.attn_k.weight"] == (cfg.dim, 2 * cfg.head_dim)  # ggml ne: (in, out)


def test_rotate_half_weights_are_permuted_to_llama_cpps_layout(tokenizer, tmp_path):
    """A Hugging Face-convention model is stored interleaved, as convert_hf_to_gguf.py does."""
    from keras_recipes.llama.checkpoints import model_tensors, permute_for_interleaved

    model = tiny_llama(n_heads=4, n_kv_heads=2, rope_convention="rotate_half")
    path = save_gguf(model, tmp_path / "hf.gguf", tokenizer=tokenizer)
    stored = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(path).tensors}
    wq = dict(model_tensors(model))["layers.0.attention.wq.weight"]
    np.testing.assert_array_equal(stored["blk.0.attn_q.weight"], permute_for_interleaved(wq, 4))
    back = load_gguf(path)
    assert back.config.rope_convention == "interleaved"
    np.testing.assert_allclose(back(TOKENS), model(TOKENS), rtol=1e-5, atol=1e-5)


def test_f16_and_q8_0_types_and_closeness(tokenizer, tmp_path):
    model = tiny_llama(tie_embeddings=False)
    reference = np.asarray(model(TOKENS))
    for dtype, matrix_type, tolerance in (("f16", "F16", 2e-3), ("q8_0", "Q8_0", 5e-2)):
        path = save_gguf(model, tmp_path / f"{dtype}.gguf", tokenizer=tokenizer, dtype=dtype)
        types = tensor_types(path)
        assert types["blk.0.attn_q.weight"] == matrix_type
        assert types["blk.0.attn_norm.weight"] == "F32"  # norms stay f32
        logits = np.asarray(load_gguf(path)(TOKENS))
        assert np.abs(logits - reference).max() < tolerance * np.abs(reference).max()
        if dtype == "f16":
            np.testing.assert_array_equal(logits.argmax(-1), reference.argmax(-1))
    assert read_gguf_metadata(tmp_path / "q8_0.gguf")["general.file_type"] == 7  # MOSTLY_Q8_0


def test_llama31_rope_scaling_travels_as_rope_freqs(tokenizer, tmp_path):
    scaling = {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    model = tiny_llama(dim=64, n_heads=1, n_kv_heads=1, rope_theta=500000.0, rope_scaling=scaling)
    path = save_gguf(model, tmp_path / "m.gguf", tokenizer=tokenizer)
    assert tensor_types(path)["rope_freqs.weight"] == "F32"
    back = load_gguf(path)
    assert back.config.rope_scaling == scaling
    np.testing.assert_array_equal(back(TOKENS), model(TOKENS))


def test_sentencepiece_vocabularies(tokenizer, tmp_path):
    from sentencepiece import sentencepiece_model_pb2

    model = tiny_llama(vocab_size=48)  # 8 rows beyond the tokenizer's 40
    meta = read_gguf_metadata(save_gguf(model, tmp_path / "u.gguf", tokenizer=tokenizer))
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(tokenizer.proto)
    assert meta["tokenizer.ggml.model"] == "t5"  # unigram: llama.cpp's UGM tokenizer
    assert meta["tokenizer.ggml.tokens"][:40] == [p.piece for p in proto.pieces]
    assert meta["tokenizer.ggml.tokens"][40:] == [f"[PAD{i}]" for i in range(40, 48)]
    np.testing.assert_allclose(meta["tokenizer.ggml.scores"][:40], [p.score for p in proto.pieces])
    assert meta["tokenizer.ggml.token_type"][:4] == [3, 2, 3, 3]  # pad control, unk, bos, eos
    assert set(meta["tokenizer.ggml.token_type"][40:]) == {5}  # UNUSED
    assert len(meta["tokenizer.ggml.precompiled_charsmap"]) > 0
    ids = (meta["tokenizer.ggml.bos_token_id"], meta["tokenizer.ggml.eos_token_id"])
    assert ids == (tokenizer.bos_id, tokenizer.eos_id)
    assert meta["tokenizer.ggml.add_bos_token"] is True
    bpe = train_sentencepiece(TEXT, vocab_size=300, model_type="bpe", byte_fallback=True)
    meta = read_gguf_metadata(
        save_gguf(tiny_llama(vocab_size=bpe.vocab_size), tmp_path / "b.gguf", tokenizer=bpe)
    )
    assert meta["tokenizer.ggml.model"] == "llama"  # SentencePiece BPE: llama.cpp's SPM
    byte_types = [
        t
        for p, t in zip(
            meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"], strict=True
        )
        if p.startswith("<0x")
    ]
    assert byte_types and set(byte_types) == {6}  # BYTE


def test_llama2c_vocabulary_spells_spaces_as_sentencepiece_does(tmp_path):
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n", b"<0x0A>", b" the", b"cat", b" "]
    tok = Llama2cTokenizer(pieces, [0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -3.0])
    meta = read_gguf_metadata(
        save_gguf(tiny_llama(vocab_size=7), tmp_path / "m.gguf", tokenizer=tok)
    )
    assert meta["tokenizer.ggml.model"] == "llama"
    assert meta["tokenizer.ggml.tokens"][3:] == ["<0x0A>", "\u2581the", "cat", "\u2581"]
    assert meta["tokenizer.ggml.token_type"] == [2, 3, 3, 6, 1, 1, 1]


def test_tokenizer_json_vocabulary_with_merges_and_chat_template(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    from keras_recipes.tokenizers import load_tokenizer

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(TEXT, trainer)
    tok.save(str(tmp_path / "tokenizer.json"))
    template = "{% for m in messages %}{{ m['content'] }}<|eot_id|>{% endfor %}"
    config = {
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|end_of_text|>",
        "chat_template": template,
    }
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    ours = load_tokenizer(tmp_path / "tokenizer.json")
    path = save_gguf(tiny_llama(vocab_size=ours.vocab_size), tmp_path / "m.gguf", tokenizer=ours)
    meta = read_gguf_metadata(path)
    vocab = json.loads((tmp_path / "tokenizer.json").read_text())["model"]
    assert (meta["tokenizer.ggml.model"], meta["tokenizer.ggml.pre"]) == ("gpt2", "gpt-2")
    assert meta["tokenizer.ggml.tokens"][vocab["vocab"]["the"]] == "the"
    assert meta["tokenizer.ggml.merges"] == [
        " ".join(m) if isinstance(m, list) else m for m in vocab["merges"]
    ]
    assert meta["tokenizer.ggml.token_type"][:3] == [3, 3, 3]  # the special tokens: CONTROL
    assert meta["tokenizer.chat_template"] == template
    assert meta["tokenizer.ggml.eot_token_id"] == 2


def test_pre_tokenizer_names():
    from keras_recipes.export.gguf import _LLAMA3_SPLIT

    llama3 = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": _LLAMA3_SPLIT}, "behavior": "Isolated"},
            {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False},
        ],
    }
    assert byte_pair_pre_tokenizer(llama3) == "llama-bpe"
    assert byte_pair_pre_tokenizer({"type": "ByteLevel", "use_regex": True}) == "gpt-2"
    with pytest.raises(ValueError, match="pre_tokenizer"):
        byte_pair_pre_tokenizer({"type": "Whitespace"})


def test_refusals_name_the_problem(tokenizer, tmp_path):
    model = tiny_llama()
    with pytest.raises(ValueError, match="tokenizer="):
        save_gguf(model, tmp_path / "a.gguf")
    with pytest.raises(ValueError, match="dtype"):
        save_gguf(model, tmp_path / "a.gguf", tokenizer=tokenizer, dtype="q4_0")
    with pytest.raises(ValueError, match="gguf_metadata"):
        save_gguf(
            keras.Sequential([keras.layers.Dense(2)]), tmp_path / "a.gguf", tokenizer=tokenizer
        )
    with pytest.raises(ValueError, match="vocab_size"):
        save_gguf(tiny_llama(vocab_size=16), tmp_path / "a.gguf", tokenizer=tokenizer)
    assert not list(tmp_path.iterdir())  # nothing half-written
    writer = gguf.GGUFWriter(tmp_path / "other.gguf", "gpt2")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match="'gpt2': no model family"):
        load_gguf(tmp_path / "other.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(ValueError, match="not a readable GGUF"):
        load_gguf(tmp_path / "junk.gguf")


def test_convert_command_writes_gguf(tokenizer, tmp_path):
    model = tiny_llama(vocab_size=tokenizer.vocab_size)
    model.save(tmp_path / "model.keras")
    tokenizer.save(tmp_path / "tokenizer.model")
    done = run_cli(
        "llama",
        "convert",
        str(tmp_path / "model.keras"),
        str(tmp_path / "m.gguf"),
        "--gguf-type",
        "q8_0",
    )
    assert done.returncode == 0, done.stderr
    assert tensor_types(tmp_path / "m.gguf")["blk.0.attn_q.weight"] == "Q8_0"
    back = load_gguf(tmp_path / "m.gguf")
    agree = np.asarray(back(TOKENS)).argmax(-1) == np.asarray(model(TOKENS)).argmax(-1)
    assert agree.mean() >= 0.75
    (tmp_path / "tokenizer.model").unlink()
    done = run_cli("llama", "convert", str(tmp_path / "model.keras"), str(tmp_path / "n.gguf"))
    assert done.returncode == 2 and "--tokenizer" in done.stderr
