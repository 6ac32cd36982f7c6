"""LlamaConfig, presets, build_llama, and the keras-hub oracle (independent Llama)."""

import json

import keras
import numpy as np
import pytest

from keras_recipes.llama import LlamaConfig, LlamaModel, build_llama


def test_llama2_7b_parameter_count_is_the_published_one():
    assert LlamaConfig.preset("llama2-7b").num_parameters() == 6_738_415_616


def test_published_parameter_counts_of_other_presets():
    # Meta's model cards / HF safetensors headers.
    assert LlamaConfig.preset("llama2-13b").num_parameters() == 13_015_864_320
    assert LlamaConfig.preset("llama3-8b").num_parameters() == 8_030_261_248
    assert LlamaConfig.preset("llama3.2-1b").num_parameters() == 1_235_814_400


def test_presets_have_the_papers_shapes():
    assert LlamaConfig.preset("llama-7b").max_seq_len == 2048
    assert LlamaConfig.preset("llama2-7b").max_seq_len == 4096
    assert LlamaConfig.preset("llama2-13b").max_seq_len == 4096
    s = LlamaConfig.preset("stories15M")
    assert (s.dim, s.n_layers, s.n_heads, s.vocab_size, s.max_seq_len) == (288, 6, 6, 32000, 256)
    # llama2.c's model.py configs; the names round the parameter counts (ties included).
    for name, shape, millions in (("stories42M", (512, 8, 8, 1376), 42), ("stories110M", (768, 12, 12, 2048), 110)):  # fmt: skip
        s = LlamaConfig.preset(name)
        assert (s.dim, s.n_layers, s.n_heads, s.ffn_hidden_dim) == shape
        assert (s.vocab_size, s.max_seq_len, s.tie_embeddings) == (32000, 1024, True)
        assert round(s.num_parameters() / 1e6) == millions
    s = LlamaConfig.preset("stories260K")
    assert (s.dim, s.ffn_hidden_dim, s.n_layers, s.n_heads, s.n_kv_heads) == (64, 172, 5, 8, 4)
    assert (s.vocab_size, s.max_seq_len) == (512, 512)
    assert LlamaConfig.preset("tiny").max_seq_len >= 128
    assert set(LlamaConfig.presets()) >= {"llama-7b", "llama2-7b", "llama3-8b", "tiny"}


def test_hidden_dim_rule_gives_llama_sizes():
    assert LlamaConfig.preset("llama2-7b", hidden_dim=None).ffn_hidden_dim == 11008
    cfg = LlamaConfig.preset("llama3-8b", hidden_dim=None, multiple_of=1024, ffn_dim_multiplier=1.3)
    assert cfg.ffn_hidden_dim == 14336


@pytest.mark.parametrize(
    "changes, field",
    [
        (dict(dim=65), "dim"),
        (dict(n_kv_heads=3), "n_kv_heads"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(n_layers=-1), "n_layers"),
        (dict(dim=12, n_heads=4), "head_dim"),
        (dict(norm_eps=0.0), "norm_eps"),
        (dict(rope_convention="sideways"), "rope_convention"),
        (dict(rope_scaling={"factor": 8.0}), "rope_scaling"),
    ],
)
def test_bad_config_names_field_and_rule(changes, field):
    with pytest.raises(ValueError, match=field):
        LlamaConfig.preset("tiny", **changes)


def test_unknown_preset_lists_choices():
    with pytest.raises(ValueError, match="stories15M"):
        LlamaConfig.preset("llama9")


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    return build_llama("tiny")


def test_forward_maps_int_ids_to_float32_logits(tiny):
    logits = tiny(np.zeros((2, 11), "int32"))
    assert tuple(logits.shape) == (2, 11, 512) and logits.dtype == "float32"
    assert tiny.count_params() == tiny.config.num_parameters()


def test_weight_names_are_metas(tiny):
    names = {v.path.split("/", 1)[1] for v in tiny.weights}  # drop the model name
    assert "tok_embeddings/embeddings" in names
    assert "layers_0/attention/wq/kernel" in names
    assert "layers_1/feed_forward/w3/kernel" in names
    assert "layers_1/ffn_norm/scale" in names and "output/kernel" in names


def test_keras_file_round_trip_keeps_logits_and_generate(tiny, tmp_path):
    path = tmp_path / "tiny.keras"
    tiny.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, LlamaModel) and loaded.config == tiny.config
    ids = np.random.default_rng(0).integers(0, 512, (2, 9)).astype("int32")
    np.testing.assert_array_equal(np.asarray(loaded(ids)), np.asarray(tiny(ids)))
    np.testing.assert_array_equal(loaded.generate(ids, 5), tiny.generate(ids, 5))


def test_mixed_bfloat16_reaches_every_layer_and_survives_a_keras_file(tiny, tmp_path):
    mixed = LlamaModel(tiny.config, dtype="mixed_bfloat16")
    mixed.set_weights(tiny.get_weights())
    block = mixed.blocks[-1]
    layers = [mixed.tok_embeddings, mixed.norm, mixed.output_projection, block.attention.wq]
    assert {layer.compute_dtype for layer in layers + [block.feed_forward.w2]} == {"bfloat16"}
    assert {w.dtype for w in mixed.weights} == {"float32"}  # mixed: float32 variables
    ids = np.random.default_rng(1).integers(0, 512, (2, 9)).astype("int32")
    want, got = np.asarray(tiny(ids)), np.asarray(mixed(ids))
    assert got.dtype == np.float32
    assert np.abs(got - want).max() < 0.1 * np.abs(want).max()  # bfloat16 error
    mixed.save(tmp_path / "mixed.keras")
    loaded = keras.models.load_model(tmp_path / "mixed.keras")
    assert loaded.blocks[0].attention.wq.compute_dtype == "bfloat16"
    np.testing.assert_array_equal(np.asarray(loaded(ids)), got)


def test_padding_mask_hides_left_padding(tiny):
    ids = np.array([[7, 8, 9, 10]], "int32")
    padded = np.array([[0, 0, 7, 8, 9, 10]], "int32")
    mask = np.array([[0, 0, 1, 1, 1, 1]], "int32")
    plain = np.asarray(tiny(ids))[0]
    masked = np.asarray(tiny(padded, padding_mask=mask))[0, 2:]
    np.testing.assert_allclose(masked, plain, atol=1e-5)


# ---- keras-hub oracle: a random Hugging Face checkpoint loaded by both ----

HF = dict(vocab=96, dim=64, layers=2, heads=4, kv_heads=2, hidden=96, context=128, eps=1e-6)


def _random_hf_checkpoint(directory):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(42)
    d, kv = HF["dim"], HF["kv_heads"] * HF["dim"] // HF["heads"]

    def w(*shape, scale=0.15):
        return (rng.standard_normal(shape) * scale).astype("float32")

    tensors = {
        "model.embed_tokens.weight": w(HF["vocab"], d, scale=1.0),
        "model.norm.weight": 1 + w(d, scale=0.1),
        "lm_head.weight": w(HF["vocab"], d),
    }
    for i in range(HF["layers"]):
        p = f"model.layers.{i}."
        tensors.update(
            {
                p + "self_attn.q_proj.weight": w(d, d),
                p + "self_attn.k_proj.weight": w(kv, d),
                p + "self_attn.v_proj.weight": w(kv, d),
                p + "self_attn.o_proj.weight": w(d, d),
                p + "mlp.gate_proj.weight": w(HF["hidden"], d),
                p + "mlp.up_proj.weight": w(HF["hidden"], d),
                p + "mlp.down_proj.weight": w(d, HF["hidden"]),
                p + "input_layernorm.weight": 1 + w(d, scale=0.1),
                p + "post_attention_layernorm.weight": 1 + w(d, scale=0.1),
            }
        )
    save_file(tensors, str(directory / "model.safetensors"))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": HF["vocab"],
        "hidden_size": d,
        "intermediate_size": HF["hidden"],
        "num_hidden_layers": HF["layers"],
        "num_attention_heads": HF["heads"],
        "num_key_value_heads": HF["kv_heads"],
        "max_position_embeddings": HF["context"],
        "rms_norm_eps": HF["eps"],
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "hidden_act": "silu",
        "torch_dtype": "float32",
    }
    (directory / "config.json").write_text(json.dumps(config))
    return tensors


def _ours_from_hf(tensors):
    """Map the HF tensors into our model (HF checkpoints use rotate-half RoPE)."""
    cfg = LlamaConfig(
        vocab_size=HF["vocab"], dim=HF["dim"], n_layers=HF["layers"], n_heads=HF["heads"],
        n_kv_heads=HF["kv_heads"], hidden_dim=HF["hidden"], max_seq_len=HF["context"],
        norm_eps=HF["eps"], tie_embeddings=False, rope_convention="rotate_half",
    )  # fmt: skip
    model = build_llama(cfg)
    model.tok_embeddings.embeddings.assign(tensors["model.embed_tokens.weight"])
    model.norm.scale.assign(tensors["model.norm.weight"])
    model.output_projection.kernel.assign(tensors["lm_head.weight"].T)
    for i, block in enumerate(model.blocks):
        p = f"model.layers.{i}."
        pairs = [
            (block.attention.wq, "self_attn.q_proj"), (block.attention.wk, "self_attn.k_proj"),
            (block.attention.wv, "self_attn.v_proj"), (block.attention.wo, "self_attn.o_proj"),
            (block.feed_forward.w1, "mlp.gate_proj"), (block.feed_forward.w3, "mlp.up_proj"),
            (block.feed_forward.w2, "mlp.down_proj"),
        ]  # fmt: skip
        for layer, name in pairs:
            layer.kernel.assign(tensors[p + name + ".weight"].T)
        block.attention_norm.scale.assign(tensors[p + "input_layernorm.weight"])
        block.ffn_norm.scale.assign(tensors[p + "post_attention_layernorm.weight"])
    return model


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    keras_hub = pytest.importorskip("keras_hub")
    directory = tmp_path_factory.mktemp("hf_llama")
    tensors = _random_hf_checkpoint(directory)
    backbone = keras_hub.models.Backbone.from_preset(str(directory))

    def hub_logits(ids):
        ids = np.asarray(ids, "int32")
        hidden = backbone({"token_ids": ids, "padding_mask": np.ones_like(ids)})
        return np.asarray(backbone.token_embedding(hidden, reverse=True))

    return _ours_from_hf(tensors), backbone, hub_logits


def test_oracle_checkpoint_has_gqa_and_untied_head(oracle):
    _, backbone, _ = oracle
    assert backbone.num_key_value_heads == HF["kv_heads"] < backbone.num_query_heads
    assert not backbone.tie_word_embeddings


def test_logits_match_keras_hub_on_the_same_checkpoint(oracle):
    ours, _, hub_logits = oracle
    ids = np.random.default_rng(1).integers(0, HF["vocab"], (2, 40)).astype("int32")
    expected = hub_logits(ids)
    assert np.abs(expected).max() > 1.0  # a test that would notice a wrong mapping
    np.testing.assert_allclose(np.asarray(ours(ids)), expected, atol=1e-4, rtol=0)


def test_cached_greedy_generation_matches_keras_hub_argmax(oracle):
    ours, _, hub_logits = oracle
    prompts = np.array([[1, 17, 33, 4, 60], [5, 9, 2, 71, 13]], "int32")
    new = 32
    out = ours.generate(prompts, max_new_tokens=new)
    assert out.shape == (2, 5 + new) and out.dtype == np.int32
    # Keras-hub's full forward pass over the generated text: its argmax at
    # every position must be the token we produced next.
    argmax = hub_logits(out).argmax(-1)
    np.testing.assert_array_equal(argmax[:, 4:-1], out[:, 5:])
