"""`.litertlm` bundles answer through LiteRT-LM's own engine (`litert_lm.Engine`).

The oracle is the Keras model's greedy decoding, computed here; the engine
tokenizes the prompt with the bundled tokenizer, adds the start token from
the bundle's metadata, runs our `prefill` / `decode` signatures on its CPU
executor and stops on the bundle's stop tokens.
"""

import json

import keras
import numpy as np
import pytest

from keras_recipes.export.litertlm import export_litertlm
from keras_recipes.llama import LlamaConfig, build_llama
from keras_recipes.tokenizers import load_tokenizer, train_sentencepiece

litert_lm = pytest.importorskip(
    "litert_lm", reason="LiteRT-LM's engine is not installed: pip install '.[litertlm]'"
)
pytest.importorskip("litert_lm_builder", reason="pip install '.[litertlm]'")

TEXT = [
    "once upon a time there was a little cat who liked to sit on the mat",
    "the dog ran to the park and played with a red ball all day long",
    "a little girl found a shiny stone and showed it to her mother",
] * 20
# Longer than the prefill chunk below, so the engine splits it and pads the last chunk.
PROMPT = "once upon a time there was a little dog"


def peaky_llama(vocab_size, **overrides):
    """A tiny LLaMA whose logits are well apart, so no argmax is decided by rounding."""
    keras.utils.set_random_seed(3)
    config = LlamaConfig.preset("tiny", vocab_size=vocab_size, max_seq_len=96, **overrides)
    model = build_llama(config)
    model.norm.scale.assign(model.norm.scale.numpy() * 6.0)
    return model


def keras_greedy(model, tokenizer, prompt, steps, stop_ids=()):
    """Keras's greedy continuation of `prompt` (BOS first), cut at the first stop id."""
    ids = tokenizer.encode(prompt, add_bos=True)
    new = model.generate([ids], max_new_tokens=steps, temperature=0.0)[0, len(ids) :].tolist()
    for i, token in enumerate(new):
        if token in stop_ids:
            return new[:i]
    return new


def engine_text(path, prompt, steps):
    with litert_lm.Engine(str(path), backend=litert_lm.Backend.CPU()) as engine:
        session = engine.create_session(
            apply_prompt_template=False,
            sampler_config=litert_lm.SamplerConfig(top_k=1, temperature=0.0),
            max_output_tokens=steps,
        )
        session.run_prefill([prompt])
        text = session.run_decode().texts[0]
        session.close()
    return text


@pytest.fixture(scope="module")
def tokenizer():
    return train_sentencepiece(TEXT, vocab_size=40)


@pytest.fixture(scope="module")
def llama(tokenizer):
    return peaky_llama(tokenizer.vocab_size, tie_embeddings=False)


@pytest.fixture(scope="module")
def bundle(llama, tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("litertlm") / "llama.litertlm"
    return export_litertlm(llama, path, tokenizer=tokenizer, prefill_len=8)


def test_engine_greedy_text_equals_keras(bundle, llama, tokenizer):
    new = keras_greedy(llama, tokenizer, PROMPT, 24, stop_ids=(tokenizer.eos_id,))
    assert len(new) >= 8  # enough tokens for the comparison to mean something
    assert engine_text(bundle, PROMPT, 24) == tokenizer.decode(new)


def test_engine_reads_start_and_stop_tokens_from_the_bundle(bundle, tokenizer):
    with litert_lm.Engine(str(bundle), backend=litert_lm.Backend.CPU()) as engine:
        assert engine.bos_token_id == tokenizer.bos_id
        assert engine.eos_token_ids == [[tokenizer.eos_id]]
        assert engine.tokenize(PROMPT) == tokenizer.encode(PROMPT)


def test_a_stop_token_ends_the_turn(llama, tokenizer, tmp_path):
    full = keras_greedy(llama, tokenizer, PROMPT, 24, stop_ids=(tokenizer.eos_id,))
    stop = full[5]  # a token Keras emits mid-answer: the engine must stop right before it
    path = export_litertlm(
        llama, tmp_path / "stop.litertlm", tokenizer=tokenizer, stop_token_ids=[stop]
    )
    text = engine_text(path, PROMPT, 24)
    assert text == tokenizer.decode(full[: full.index(stop)])
    assert len(text) < len(tokenizer.decode(full))


def test_tied_model_with_dynamic_int8_weights(tokenizer, tmp_path):
    model = peaky_llama(tokenizer.vocab_size, tie_embeddings=True)
    path = export_litertlm(
        model, tmp_path / "int8.litertlm", tokenizer=tokenizer, quantize="dynamic-int8"
    )
    float_path = export_litertlm(model, tmp_path / "f32.litertlm", tokenizer=tokenizer)
    assert path.stat().st_size < 0.7 * float_path.stat().st_size
    expected = tokenizer.decode(keras_greedy(model, tokenizer, PROMPT, 16, (tokenizer.eos_id,)))
    assert engine_text(float_path, PROMPT, 16) == expected
    # int8 weights move the logits a little; the peaky model's greedy path survives it.
    assert engine_text(path, PROMPT, 16) == expected


def test_tokenizer_json_bundle(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|begin_of_text|>", "<|end_of_text|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(TEXT, trainer)
    tok.save(str(tmp_path / "tokenizer.json"))
    config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    ours = load_tokenizer(tmp_path / "tokenizer.json")
    model = peaky_llama(ours.vocab_size)
    path = export_litertlm(model, tmp_path / "bpe.litertlm", tokenizer=tmp_path / "tokenizer.json")
    new = keras_greedy(model, ours, PROMPT, 16, stop_ids=(ours.eos_id,))
    with litert_lm.Engine(str(path), backend=litert_lm.Backend.CPU()) as engine:
        assert engine.tokenize(PROMPT) == tok.encode(PROMPT).ids
    assert engine_text(path, PROMPT, 16) == ours.decode(new)


def test_refusals_name_the_problem(llama, tokenizer, bundle, tmp_path):
    with pytest.raises(ValueError, match="exists"):
        export_litertlm(llama, bundle, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="quantize"):
        export_litertlm(llama, tmp_path / "x.litertlm", tokenizer=tokenizer, quantize="int4")
    with pytest.raises(ValueError, match="litertlm_functions"):
        export_litertlm(
            keras.Sequential([keras.layers.Dense(2)]), tmp_path / "y.litertlm", tokenizer
        )
    with pytest.raises(ValueError, match="stop token"):
        export_litertlm(llama, tmp_path / "z.litertlm", tokenizer, stop_token_ids=[999])
    with pytest.raises(ValueError, match="without stop tokens"):
        export_litertlm(llama, tmp_path / "z.litertlm", tokenizer, stop_token_ids=[])
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_prefill_positions_never_overwrite_slot_zero(llama):
    """The engine pads a chunk with token 0 at position 0; those rows write nothing."""
    import tensorflow as tf

    functions = llama.litertlm_functions(4)
    cfg = llama.config
    zeros = [tf.zeros([1, cfg.n_kv_heads, cfg.max_seq_len, cfg.head_dim])] * (2 * cfg.n_layers)
    first = functions["prefill"](tf.constant([[5, 6, 7, 8]]), tf.constant([0, 1, 2, 3]), *zeros)
    caches = [first[f"kv_cache_{kind}_{i}"] for i in range(cfg.n_layers) for kind in "kv"]
    padded = functions["prefill"](tf.constant([[9, 0, 0, 0]]), tf.constant([4, 0, 0, 0]), *caches)
    for name, cache in padded.items():
        np.testing.assert_array_equal(cache[:, :, :4], first[name][:, :, :4])
        assert np.abs(cache[:, :, 4]).sum() > 0 and not np.any(cache[:, :, 5:])


@pytest.mark.slow
def test_trained_model_greedy_text_equals_keras(corpus, tmp_path):
    from runs import train_tiny_llama

    from keras_recipes.llama.checkpoints import load_checkpoint
    from keras_recipes.tokenizers import load_sentencepiece

    out = train_tiny_llama(tmp_path / "run", corpus)
    model = load_checkpoint(out / "model.keras")
    tokenizer = load_sentencepiece(out / "tokenizer.model")
    path = export_litertlm(model, tmp_path / "tiny.litertlm", tokenizer=tokenizer)
    for prompt in ("The government said", "Police say"):
        new = keras_greedy(model, tokenizer, prompt, 64, stop_ids=(tokenizer.eos_id,))
        assert len(new) >= 16
        assert engine_text(path, prompt, 64) == tokenizer.decode(new)


def test_export_command_writes_a_bundle_the_engine_runs(llama, tokenizer, tmp_path):
    from runs import run_cli

    llama.save(tmp_path / "model.keras")
    tokenizer.save(tmp_path / "tokenizer.model")
    done = run_cli(
        "export",
        "--checkpoint",
        str(tmp_path / "model.keras"),
        "--format",
        "litertlm",
        "--out",
        str(tmp_path / "llama"),
        "--quantize",
        "dynamic-int8",
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "llama.litertlm").is_file()
    with litert_lm.Engine(
        str(tmp_path / "llama.litertlm"), backend=litert_lm.Backend.CPU()
    ) as engine:
        assert engine.tokenize(PROMPT) == tokenizer.encode(PROMPT)
