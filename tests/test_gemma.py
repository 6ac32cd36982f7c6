"""Gemma 2: logits equal keras-hub's `GemmaBackbone`, Hugging Face import/export, cached decoding.

The oracle is keras-hub's own Gemma (gemma2 settings: post-attention and
post-feed-forward norms, attention and final soft-capping, sliding-window
layers) at the same random weights; the Hugging Face files are read back by
keras-hub's own Hugging Face converter. Weights are drawn large and the caps
set low so that both soft caps bend the logits, and the prompts are longer
than the sliding window so that the window masks keys.
"""

import json

import keras
import numpy as np
import pytest

from keras_recipes.causal_lm import LanguageModelLoss, generate, is_causal_lm
from keras_recipes.gemma import (
    GemmaCheckpointError,
    GemmaConfig,
    GemmaModel,
    build_gemma,
    load_hf,
    save_hf,
)
from keras_recipes.gemma.model import soft_cap

# keras-hub scales queries by 1/sqrt(head_dim) whatever its flag says, so the
# oracle's settings keep query_pre_attn_scalar == head_dim (24).
CONFIG = GemmaConfig.preset(
    "tiny", vocab_size=97, n_layers=3, attn_logit_softcap=4.0, final_logit_softcap=3.0
)
PROMPT = np.random.default_rng(0).integers(0, CONFIG.vocab_size, size=(2, 40)).astype("int32")


def randomize(model: GemmaModel, seed: int) -> None:
    """Large random weights (norm offsets included) so that caps and windows matter."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        scale = 0.1 if "norm" in variable.path else 0.35
        variable.assign(rng.normal(0.0, scale, variable.shape).astype("float32"))


@pytest.fixture(scope="module")
def gemma():
    model = GemmaModel(CONFIG)
    randomize(model, seed=1)
    return model


@pytest.fixture(scope="module")
def small_gemma(gemma):
    """The fixture's first two layers with a 40-token context: exports in a fraction of the time."""
    model = GemmaModel(CONFIG.replace(n_layers=2, max_seq_len=40))
    model.set_weights(gemma.get_weights()[: len(model.get_weights()) - 1] + [gemma.norm.scale])
    return model


def keras_hub_twin(model: GemmaModel):
    """keras-hub's GemmaBackbone with gemma2 settings and `model`'s weights."""
    import keras_hub

    c = model.config
    hub = keras_hub.models.GemmaBackbone(
        vocabulary_size=c.vocab_size,
        num_layers=c.n_layers,
        num_query_heads=c.n_heads,
        num_key_value_heads=c.n_kv_heads,
        hidden_dim=c.dim,
        intermediate_dim=2 * c.hidden_dim,  # keras-hub counts both gated halves
        head_dim=c.head_dim,
        query_head_dim_normalize=True,
        use_post_ffw_norm=True,
        use_post_attention_norm=True,
        attention_logit_soft_cap=c.attn_logit_softcap,
        final_logit_soft_cap=c.final_logit_softcap,
        use_sliding_window_attention=True,
        sliding_window_size=c.sliding_window,
        layer_norm_epsilon=c.norm_eps,
    )
    hd, heads, kv = c.head_dim, c.n_heads, c.n_kv_heads
    hub.get_layer("token_embedding").embeddings.assign(model.tok_embeddings.embeddings)
    hub.get_layer("final_normalization").scale.assign(model.norm.scale)
    for i, block in enumerate(model.blocks):
        theirs = hub.get_layer(f"decoder_block_{i}")
        att = block.attention
        pairs = [
            (theirs.pre_attention_norm.scale, block.attention_norm.scale),
            (theirs.post_attention_norm.scale, block.post_attention_norm.scale),
            (theirs.pre_ffw_norm.scale, block.ffn_norm.scale),
            (theirs.post_ffw_norm.scale, block.post_ffn_norm.scale),
            (theirs.gating_ffw.kernel, block.feed_forward.w1.kernel),
            (theirs.gating_ffw_2.kernel, block.feed_forward.w3.kernel),
            (theirs.ffw_linear.kernel, block.feed_forward.w2.kernel),
        ]
        for target, source in pairs:
            target.assign(source)
        for dense, ours, n in (
            (theirs.attention.query_dense, att.wq, heads),
            (theirs.attention.key_dense, att.wk, kv),
            (theirs.attention.value_dense, att.wv, kv),
        ):  # ours (dim, n * hd) -> theirs (n, dim, hd)
            dense.kernel.assign(np.reshape(ours.kernel.numpy(), (c.dim, n, hd)).transpose(1, 0, 2))
        theirs.attention.output_dense.kernel.assign(
            np.reshape(att.wo.kernel.numpy(), (heads, hd, c.dim))
        )
    return hub


def hub_logits(hub, token_ids):
    hidden = hub({"token_ids": token_ids, "padding_mask": np.ones_like(token_ids)})
    return np.asarray(hub.get_layer("token_embedding")(hidden, reverse=True))


def assert_close_to(got, want, relative=1e-4):
    """Equal to `relative` of the largest |logit| (the issue's tolerance)."""
    np.testing.assert_allclose(got, want, rtol=0, atol=relative * np.abs(want).max())


def test_logits_equal_keras_hub_gemma2_on_the_same_weights(gemma):
    ours = np.asarray(gemma(PROMPT))
    assert_close_to(ours, hub_logits(keras_hub_twin(gemma), PROMPT))
    # The settings bite: the final cap bounds the logits, and the window
    # changes the logits once the prompt is longer than it.
    assert np.abs(ours).max() > 0.8 * CONFIG.final_logit_softcap
    global_only = GemmaModel(CONFIG.replace(sliding_window=None))
    global_only.set_weights(gemma.get_weights())
    unwindowed = np.asarray(global_only(PROMPT))
    window = CONFIG.sliding_window
    np.testing.assert_allclose(unwindowed[:, :window], ours[:, :window], atol=1e-5)
    assert np.abs(unwindowed[:, window:] - ours[:, window:]).max() > 1e-2


def test_soft_cap_is_the_closed_form():
    x = np.array([-100.0, -1.0, 0.0, 2.0, 100.0], "float32")
    np.testing.assert_allclose(soft_cap(x, 3.0), 3.0 * np.tanh(x / 3.0), rtol=1e-6)
    assert soft_cap(x, None) is x


def test_sliding_window_attention_equals_plain_attention_over_the_window():
    """RoPE is relative, so position t with window W sees what a plain layer sees over t-W+1..t."""
    from keras_recipes.layers import CausalSelfAttention

    window, dim = 5, 32
    options = dict(n_heads=4, n_kv_heads=2, head_dim=12, logit_soft_cap=2.0)
    windowed = CausalSelfAttention(sliding_window=window, **options)
    plain = CausalSelfAttention(**options)
    x = np.random.default_rng(4).normal(size=(2, 11, dim)).astype("float32")
    windowed.build(x.shape)
    plain.build(x.shape)
    plain.set_weights(windowed.get_weights())
    out = np.asarray(windowed(x))
    for t in range(11):
        first = max(0, t - window + 1)
        want = np.asarray(plain(x[:, first : t + 1], start_index=first))[:, -1]
        np.testing.assert_allclose(out[:, t], want, atol=1e-5)


def test_geglu_and_unit_offset_rmsnorm_are_their_closed_forms():
    from keras_recipes.layers import GeGLU, RMSNorm

    x = np.random.default_rng(6).normal(size=(3, 8)).astype("float32")
    ffn = GeGLU(hidden_dim=16)
    ffn.build(x.shape)
    w1, w3, w2 = (np.asarray(layer.kernel) for layer in (ffn.w1, ffn.w3, ffn.w2))
    a = x @ w1
    gelu = 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a**3)))
    np.testing.assert_allclose(np.asarray(ffn(x)), (gelu * (x @ w3)) @ w2, atol=1e-5)
    norm = RMSNorm(1e-6, unit_offset=True)
    norm.build(x.shape)
    scale = np.linspace(-0.5, 0.5, 8).astype("float32")
    norm.scale.assign(scale)
    rms = np.sqrt((x**2).mean(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(np.asarray(norm(x)), x / rms * (1 + scale), rtol=1e-5)


def test_hf_export_is_read_by_keras_hubs_own_converter(gemma, tmp_path):
    import keras_hub

    save_hf(gemma, tmp_path / "hf")
    hub = keras_hub.models.GemmaBackbone.from_preset(str(tmp_path / "hf"))
    assert_close_to(hub_logits(hub, PROMPT), np.asarray(gemma(PROMPT)))


def test_hf_export_then_import_gives_the_same_model(gemma, tmp_path):
    save_hf(gemma, tmp_path / "hf")
    (tmp_path / "hf" / "tokenizer.json").write_text("{}")  # kept by a second export
    save_hf(gemma, tmp_path / "hf")
    loaded = load_hf(tmp_path / "hf")
    assert loaded.config == gemma.config
    for got, want in zip(loaded.get_weights(), gemma.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert (tmp_path / "hf" / "tokenizer.json").exists()
    hf = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert hf["layer_types"] == ["sliding_attention", "full_attention", "sliding_attention"]


def test_hf_config_is_read_by_transformers(gemma, tmp_path):
    transformers = pytest.importorskip("transformers")
    save_hf(gemma, tmp_path / "hf")
    hf = transformers.Gemma2Config.from_pretrained(str(tmp_path / "hf"))
    assert (hf.hidden_size, hf.head_dim, hf.intermediate_size) == (64, 24, 128)
    assert hf.layer_types == ["sliding_attention", "full_attention", "sliding_attention"]
    assert (hf.final_logit_softcapping, hf.attn_logit_softcapping) == (3.0, 4.0)


def test_bfloat16_export_loads_within_bfloat16_error(gemma, tmp_path):
    save_hf(gemma, tmp_path / "hf", dtype="bfloat16")
    loaded = load_hf(tmp_path / "hf")
    for got, want in zip(loaded.get_weights(), gemma.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=2**-8, atol=1e-6)


def test_published_gemma2_27b_config_json_maps_to_its_preset():
    """google/gemma-2-27b's config.json fields (transformers 5 spelling: rope_parameters)."""
    from keras_recipes.gemma.checkpoints import hf_config_to_gemma

    published = {
        "architectures": ["Gemma2ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": 50.0,
        "bos_token_id": 2,
        "cache_implementation": "hybrid",
        "eos_token_id": 1,
        "final_logit_softcapping": 30.0,
        "head_dim": 128,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": 4608,
        "initializer_range": 0.02,
        "intermediate_size": 36864,
        "max_position_embeddings": 8192,
        "model_type": "gemma2",
        "num_attention_heads": 32,
        "num_hidden_layers": 46,
        "num_key_value_heads": 16,
        "pad_token_id": 0,
        "query_pre_attn_scalar": 144,
        "rms_norm_eps": 1e-06,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        "sliding_window": 4096,
        "sliding_window_size": 4096,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": 256000,
    }
    assert hf_config_to_gemma(published) == GemmaConfig.preset("gemma2-27b")


def test_hf_import_refuses_what_it_cannot_represent(gemma, tmp_path):
    save_hf(gemma, tmp_path / "hf")
    config_path = tmp_path / "hf" / "config.json"
    hf = json.loads(config_path.read_text())
    for change, message in (
        ({"model_type": "llama"}, "model_type is 'llama'"),
        ({"tie_word_embeddings": False}, "tie_word_embeddings"),
        ({"head_dim": 7}, "head_dim"),
        ({"num_hidden_layers": 4, "layer_types": None}, "missing tensors"),
        ({"intermediate_size": 96}, r"mlp\.\w+\.weight has shape .* config needs"),
        ({"layer_types": ["full_attention"] * 3}, "layer_types"),
    ):
        config_path.write_text(json.dumps({**hf, **change}))
        with pytest.raises(GemmaCheckpointError, match=message):
            load_hf(tmp_path / "hf")
    config_path.write_text(json.dumps(hf))
    (tmp_path / "hf" / "model.safetensors").write_bytes(b"\x08" * 16)
    with pytest.raises(GemmaCheckpointError, match="safetensors"):
        load_hf(tmp_path / "hf")


@pytest.mark.parametrize("write", ["slice", "scatter"])
def test_cached_steps_equal_the_full_forward_pass(gemma, write):
    """Both cache writes: the layers' own, and the SavedModel graph's scatter (no XLA)."""
    from keras_recipes.causal_lm.graph_generate import scatter_cache_update

    cache_update = scatter_cache_update if write == "scatter" else None
    full = np.asarray(gemma(PROMPT))
    caches = gemma.init_caches(2, 48)
    logits, caches = gemma.call_with_cache(PROMPT[:, :20], caches, 0, cache_update=cache_update)
    assert_close_to(np.asarray(logits), full[:, 19])
    for position in range(20, 28):  # keys beyond the window of 16 drop out
        step = PROMPT[:, position : position + 1]
        logits, caches = gemma.call_with_cache(step, caches, position, cache_update=cache_update)
        assert_close_to(np.asarray(logits), full[:, position])


def test_greedy_generation_equals_the_uncached_argmax(small_gemma):
    """Each generated token is the argmax of the full forward pass over the tokens before it."""
    gemma = small_gemma  # a 40-token context: one small cache window to compile
    prompts = [PROMPT[0, :21].tolist(), PROMPT[1, :9].tolist()]
    out = generate(gemma, prompts, max_new_tokens=12)
    for row, prompt in zip(out, prompts, strict=True):
        ids = row[-(len(prompt) + 12) :]
        assert ids[: len(prompt)].tolist() == prompt
        logits = np.asarray(gemma(ids[None, :-1]))[0]
        assert ids[len(prompt) :].tolist() == logits[len(prompt) - 1 :].argmax(-1).tolist()


def test_keras_file_round_trip(gemma, tmp_path):
    assert is_causal_lm(gemma)
    gemma.save(tmp_path / "gemma.keras")
    loaded = keras.models.load_model(tmp_path / "gemma.keras")
    assert isinstance(loaded, GemmaModel) and loaded.config == gemma.config
    np.testing.assert_array_equal(
        np.asarray(loaded(PROMPT[:, :8])), np.asarray(gemma(PROMPT[:, :8]))
    )


def test_mixed_bfloat16_reaches_every_layer_and_survives_a_keras_file(gemma, tmp_path):
    mixed = GemmaModel(CONFIG, dtype="mixed_bfloat16")
    mixed.set_weights(gemma.get_weights())
    block = mixed.blocks[-1]
    layers = [mixed.tok_embeddings, mixed.norm, block.attention.wq, block.feed_forward.w2]
    assert {layer.compute_dtype for layer in layers + [block.post_ffn_norm]} == {"bfloat16"}
    want = np.asarray(gemma(PROMPT))
    got = np.asarray(mixed(PROMPT))
    assert got.dtype == np.float32
    assert np.abs(got - want).max() < 0.1 * np.abs(want).max()  # bfloat16 error, amplified
    mixed.save(tmp_path / "mixed.keras")
    loaded = keras.models.load_model(tmp_path / "mixed.keras")
    assert loaded.dtype_policy.name == "mixed_bfloat16"
    np.testing.assert_array_equal(np.asarray(loaded(PROMPT)), got)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="n_kv_heads .3."):
        GemmaConfig.preset("tiny", n_kv_heads=3)
    with pytest.raises(ValueError, match="head_dim .25. must be even"):
        GemmaConfig.preset("tiny", head_dim=25)
    with pytest.raises(ValueError, match="final_logit_softcap must be a number > 0 or None"):
        GemmaConfig.preset("tiny", final_logit_softcap=0)
    with pytest.raises(ValueError, match="unknown preset 'gemma9'"):
        GemmaConfig.preset("gemma9")
    assert build_gemma("tiny").count_params() == GemmaConfig.preset("tiny").num_parameters()


def uncached_greedy(model, prompt, new_tokens):
    ids = list(prompt)
    for _ in range(new_tokens):
        ids.append(int(np.argmax(np.asarray(model(np.array([ids], "int32")))[0, -1])))
    return ids


@pytest.mark.slow  # ~45 s: the generic export path is in the fast suite (test_causal_lm_protocol)
def test_saved_model_answers_through_tf_servings_loader(small_gemma, tmp_path):
    from keras_recipes.export import export_saved_model
    from keras_recipes.serving import SavedModelSession

    gemma = small_gemma
    path = export_saved_model(gemma, tmp_path / "gemma")  # checked through the C API loader
    prompt = PROMPT[:1, :21]  # longer than the window of 16
    controls = {"max_new_tokens": [6], "temperature": [0.0], "top_k": [0], "top_p": [1.0]}
    with SavedModelSession(path) as session:
        out = session.run("generate", {"token_ids": prompt, **controls, "seed": [0]})
        logits = session.run("serving_default", {"token_ids": prompt})["logits"]
    assert out["token_ids"][0].tolist() == uncached_greedy(gemma, prompt[0], 6)
    assert_close_to(logits, np.asarray(gemma(prompt)))


@pytest.mark.slow  # ~25 s, as above
def test_tflite_prefill_and_decode_generate_its_tokens(small_gemma, tmp_path):
    from keras_recipes.export import TFLiteGenerator, export_tflite

    gemma = small_gemma
    path = export_tflite(gemma, tmp_path / "gemma.tflite")  # verified against the Keras model
    prompt = PROMPT[0, :21].tolist()
    out = TFLiteGenerator(path).generate([prompt], 8)
    assert out[0].tolist() == uncached_greedy(gemma, prompt, 8)


def test_fused_training_step_equals_keras_step_through_the_soft_cap(monkeypatch):
    import keras_recipes.causal_lm.losses as losses

    calls = []
    original = losses.fused_head_cross_entropy
    monkeypatch.setattr(
        losses, "fused_head_cross_entropy", lambda *a, **k: calls.append(k) or original(*a, **k)
    )
    x = PROMPT[:, :24]
    weights = []
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)  # Keras' own step
    for loss in (LanguageModelLoss(chunk_rows=7), plain):
        model = GemmaModel(CONFIG.replace(n_layers=2))
        randomize(model, seed=3)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
        model.train_on_batch(x, np.roll(x, -1, axis=1))
        weights.append(model.get_weights())
    assert calls and calls[0]["logit_soft_cap"] == CONFIG.final_logit_softcap
    for fused, keras_step in zip(*weights, strict=True):
        np.testing.assert_allclose(fused, keras_step, atol=1e-5)


@pytest.fixture(scope="module")
def gemma_folder(tmp_path_factory):
    """A random Gemma 2 Hugging Face folder with a byte-level tokenizer.bin beside its weights."""
    from keras_recipes.tokenizers import Llama2cTokenizer

    folder = tmp_path_factory.mktemp("gemma")
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % i for i in range(256)]
    pieces += [b" ", b"a", b"b", b" a", b"Once", b" upon"]
    tokenizer = Llama2cTokenizer(pieces, [0.0] * 259 + [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0])
    model = GemmaModel(CONFIG.replace(vocab_size=len(pieces), n_layers=2))
    randomize(model, seed=5)
    save_hf(model, folder)
    tokenizer.save(folder / "tokenizer.bin")
    return folder, model, tokenizer


def test_cli_gemma_generate_streams_the_models_greedy_tokens(gemma_folder, capsys):
    from keras_recipes.cli import main

    folder, model, tokenizer = gemma_folder
    args = ["gemma", "generate", "--checkpoint", str(folder), "--prompt", "Once upon"]
    assert main(args + ["--max-new-tokens", "8", "--temperature", "0"]) == 0
    prompt = tokenizer.encode("Once upon", add_bos=True)
    ids = uncached_greedy(model, prompt, 8)
    if tokenizer.eos_id in ids[len(prompt) :]:
        ids = ids[: ids.index(tokenizer.eos_id, len(prompt))]
    assert capsys.readouterr().out.rstrip("\n") == tokenizer.decode(ids)


def test_cli_gemma_convert_round_trips_through_keras_and_hf(gemma_folder, tmp_path, capsys):
    from keras_recipes.cli import main

    folder, model, _ = gemma_folder
    assert main(["gemma", "convert", str(folder), str(tmp_path / "g.keras")]) == 0
    assert main(["gemma", "convert", str(tmp_path / "g.keras"), str(tmp_path / "hf")]) == 0
    for got, want in zip(load_hf(tmp_path / "hf").get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert main(["gemma", "convert", str(tmp_path / "missing"), str(tmp_path / "x.keras")]) == 2
    assert "not a Gemma checkpoint" in capsys.readouterr().err


def test_cli_export_reads_a_gemma_folder_by_its_model_type(gemma_folder):
    from keras_recipes.cli import _load_for_export

    folder, model, _ = gemma_folder
    loaded = _load_for_export(folder, None)  # `keras-recipes export --checkpoint FOLDER`
    assert isinstance(loaded, GemmaModel) and loaded.config == model.config


@pytest.mark.slow
def test_cli_gemma_export_tflite_generates_the_models_tokens(gemma_folder, tmp_path):
    from keras_recipes.cli import main
    from keras_recipes.export import TFLiteGenerator

    folder, model, _ = gemma_folder
    out = tmp_path / "gemma.tflite"
    args = ["gemma", "export", "--checkpoint", str(folder), "--format", "tflite"]
    assert main(args + ["--out", str(out)]) == 0
    prompt = PROMPT[0, :18].tolist()
    want = model.generate([prompt], max_new_tokens=6)[0].tolist()
    assert TFLiteGenerator(out).generate([prompt], 6)[0].tolist() == want
