"""Every export answers through TF Serving's own loader: TensorFlow's C++ session loader.

`check_saved_model` loads a SavedModel with `TF_LoadSessionFromSavedModel`
(the C API in the tensorflow wheel) in a fresh process that imports no
TensorFlow Python and loads no op library but tensorflow-text's, and replays
its warm-up records by the SignatureDefs' tensor names. The oracle is the
Keras model, computed here; exports are written with `verify=False` so the
export's own check is not what passes.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from runs import run_cli

from keras_recipes.export import export_saved_model, write_warmup_requests
from keras_recipes.serving import SavedModelSession, ServingError, check_saved_model
from keras_recipes.serving.check import replay_in_fresh_process
from keras_recipes.tokenizers import train_sentencepiece

TEXT = [
    "once upon a time there was a little cat who liked to sit on the mat",
    "the dog ran to the park and played with a red ball all day long",
    "a little girl found a shiny stone and showed it to her mother",
] * 20


def keras_answer(model, tokenizer, name, inputs):
    """What the Keras model answers to one request (computed without the exporter)."""
    if name == "serving_default":
        return {"logits": np.asarray(model(inputs["token_ids"]))}
    controls = dict(
        max_new_tokens=int(inputs["max_new_tokens"][0]),
        temperature=float(inputs["temperature"][0]),
        top_k=int(inputs["top_k"][0]) or None,
        top_p=float(inputs["top_p"][0]) if 0 < inputs["top_p"][0] < 1 else None,
        seed=int(inputs["seed"][0]),
    )
    if name == "generate":
        return {"token_ids": model.generate(inputs["token_ids"], **controls)}
    if name == "generate_padded":  # each prompt alone (uniform controls), prompt first, 0 after
        rows = [
            np.asarray(model.generate(ids[None, :length], **controls))[0]
            for ids, length in zip(inputs["token_ids"], inputs["lengths"], strict=True)
        ]
        out = np.zeros([len(rows), max(map(len, rows))], np.int32)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return {"token_ids": out}
    texts = []
    for prompt in inputs["prompt"]:
        ids = tokenizer.encode(prompt.decode(), add_bos=True)
        new = model.generate([ids], eos_id=tokenizer.eos_id, **controls)[0, len(ids) :]
        ends = np.flatnonzero(new == tokenizer.eos_id)
        texts.append(tokenizer.decode([*ids, *(new[: ends[0]] if len(ends) else new)]).encode())
    return {"text": np.array(texts, object)}


@pytest.fixture(scope="module")
def tokenizer():
    return train_sentencepiece(TEXT, vocab_size=40)


@pytest.fixture(scope="module")
def llama(tokenizer, peaky_llama):
    return peaky_llama(vocab_size=tokenizer.vocab_size, max_seq_len=64, tie_embeddings=False)


@pytest.fixture(scope="module")
def export_dir(llama, tokenizer, tmp_path_factory):
    base = tmp_path_factory.mktemp("saved_models") / "llama_tiny"
    export_saved_model(
        llama, base, tokenizer=tokenizer, example_prompt="once upon a time", verify=False
    )
    return base


def test_llama_with_tokenizer_replays_its_warmups_through_the_c_api(export_dir, llama, tokenizer):
    replays = check_saved_model(
        export_dir, expected=lambda name, inputs: keras_answer(llama, tokenizer, name, inputs)
    )
    names = ["serving_default", "generate", "generate_padded", "generate_text"]
    assert [r.signature for r in replays] == names
    text = replays[3].outputs["text"]
    assert text.dtype == object and text[0].decode().startswith("once upon a time")


def test_signature_defs_as_the_model_server_reads_them(export_dir):
    with SavedModelSession(export_dir / "1") as session:
        signatures = session.signatures
    assert signatures["serving_default"].inputs["token_ids"].dtype_name == "DT_INT32"
    assert signatures["serving_default"].inputs["token_ids"].shape == (-1, -1)
    assert signatures["serving_default"].outputs["logits"].shape == (-1, -1, 40)
    assert sorted(signatures["generate_text"].inputs) == [
        "max_new_tokens",
        "prompt",
        "seed",
        "temperature",
        "top_k",
        "top_p",
    ]
    assert signatures["generate_text"].outputs["text"].dtype_name == "DT_STRING"


def test_an_answer_that_differs_from_the_oracle_is_named(export_dir, llama, tokenizer):
    def off_by_a_little(name, inputs):
        answer = keras_answer(llama, tokenizer, name, inputs)
        if name == "serving_default":
            answer["logits"] = answer["logits"] + 1e-3
        return answer

    with pytest.raises(ServingError, match="'serving_default'.*'logits' differs"):
        check_saved_model(export_dir, expected=off_by_a_little)


def test_wrapped_keras_variables_are_not_restored_and_the_check_says_so(llama, tmp_path):
    # What the exporter saved before: a module tracking the keras.Variable
    # wrappers. tf.saved_model.load restores it; TF Serving's loader does not.
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids")])
    def serving_default(token_ids):
        return {"logits": llama(token_ids)}

    root = tf.Module()
    root.model_variables = list(llama.weights)
    tf.saved_model.save(root, str(tmp_path / "1"), signatures={"serving_default": serving_default})
    ids = np.array([[2, 5, 9]], np.int32)
    np.testing.assert_allclose(
        tf.saved_model.load(str(tmp_path / "1")).signatures["serving_default"](
            token_ids=tf.constant(ids)
        )["logits"],
        llama(ids),
        atol=1e-5,
    )
    write_warmup_requests(
        tmp_path / "1/assets.extra/tf_serving_warmup_requests",
        "m",
        {"serving_default": {"token_ids": ids}},
    )
    with pytest.raises(ServingError, match="not restored by the SavedModel's saver"):
        check_saved_model(tmp_path)


def test_an_op_outside_the_loaded_libraries_is_refused_by_name(export_dir):
    # generate_text needs tensorflow-text's SentencePiece ops: without that
    # library the loader refuses the graph, naming the op.
    requests = [("serving_default", {"token_ids": np.array([[1, 2]], np.int32)})]
    with pytest.raises(ServingError, match="op 'Sentencepiece.*neither in core TensorFlow"):
        replay_in_fresh_process(export_dir / "1", requests, op_libraries=[])


def test_not_a_saved_model_and_no_warmups_are_clear_errors(export_dir, tmp_path):
    with pytest.raises(ServingError, match="not a SavedModel"):
        check_saved_model(tmp_path)
    bare = tmp_path / "bare"
    (bare / "1").mkdir(parents=True)
    (bare / "1" / "saved_model.pb").write_bytes((export_dir / "1" / "saved_model.pb").read_bytes())
    with pytest.raises(ServingError, match="no warm-up file"):
        check_saved_model(bare)


def test_mixed_bfloat16_and_tied_llamas_answer_through_the_c_api(tmp_path, peaky_llama):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = peaky_llama(vocab_size=64, max_seq_len=32)
    finally:
        keras.config.set_dtype_policy("float32")
    tied = peaky_llama(vocab_size=64, max_seq_len=32, tie_embeddings=True)
    # bfloat16 matmuls sum in another order in the graph than in eager Keras:
    # logits agree to one or two bfloat16 steps (2**-8 relative); tokens exactly.
    for name, model, atol in [("mixed", mixed, 2.0**-6), ("tied", tied, 1e-5)]:
        export_saved_model(model, tmp_path / name, verify=False)
        check_saved_model(
            tmp_path / name,
            expected=lambda sig, inputs, model=model: keras_answer(model, None, sig, inputs),
            atol=atol,
        )


def test_serve_check_command_prints_each_signature(export_dir):
    result = run_cli("serve", "check", str(export_dir))
    assert result.returncode == 0, result.stderr
    for name in ("serving_default", "generate", "generate_padded", "generate_text"):
        assert f"{name}: warm-up request replayed" in result.stdout
    assert "out text: string (2,) ['once upon a time" in result.stdout
    assert "OK: 4 warm-up requests" in result.stdout
    missing = run_cli("serve", "check", str(export_dir / "nope"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("keras-recipes serve check:") and "Traceback" not in (
        missing.stderr
    )


def test_generate_text_rows_with_their_own_settings_equal_each_request_alone(export_dir):
    rows = {
        "prompt": np.array([b"once upon a time", b"the dog"], object),
        "max_new_tokens": np.array([6, 3], np.int32),
        "temperature": np.array([0.0, 1.2], np.float32),
        "top_k": np.array([0, 5], np.int32),
        "top_p": np.array([1.0, 0.9], np.float32),
        "seed": np.array([0, 13], np.int32),
    }
    with SavedModelSession(export_dir / "1") as session:
        together = session.run("generate_text", rows)["text"]
        for i in range(2):
            alone = session.run("generate_text", {k: v[i : i + 1] for k, v in rows.items()})
            assert together[i] == alone["text"][0]
