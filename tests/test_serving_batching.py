"""Requests batched as TF Serving's batcher batches them, answered in one C API call.

TF Serving with `--enable_batching` and `pad_variable_length_inputs: true`
concatenates concurrent requests on axis 0 and pads every other axis after
the values, with each request's own first value
(tensorflow_serving/batching/batching_util.cc). `merge_as_tf_serving` does
the same here; the merged request goes through TensorFlow's C API session
loader (the one TF Serving uses), and each row must equal its request
answered alone.
"""

import numpy as np
import pytest

from keras_recipes.export import export_saved_model
from keras_recipes.serving import SavedModelSession


def merge_as_tf_serving(requests: list[dict]) -> dict:
    """Requests -> one batch, as TF Serving's batcher merges them (`pad_variable_length_inputs`)."""
    merged = {}
    for name in requests[0]:
        tensors = [np.asarray(request[name]) for request in requests]
        widest = np.max([t.shape for t in tensors], axis=0)
        padded = [
            np.pad(
                t,
                [(0, 0)] + [(0, int(w - n)) for w, n in zip(widest[1:], t.shape[1:], strict=True)],
                constant_values=t.flat[0],  # batching_util.cc: pad_value = input.flat<T>()(0)
            )
            for t in tensors
        ]
        merged[name] = np.concatenate(padded, axis=0)
    return merged


def request(prompt, max_new_tokens, temperature, top_k=0, top_p=1.0, seed=0):
    return {
        "token_ids": np.array([prompt], np.int32),
        "lengths": np.array([len(prompt)], np.int32),
        "max_new_tokens": np.array([max_new_tokens], np.int32),
        "temperature": np.array([temperature], np.float32),
        "top_k": np.array([top_k], np.int32),
        "top_p": np.array([top_p], np.float32),
        "seed": np.array([seed], np.int32),
    }


@pytest.fixture(scope="module")
def llama(peaky_llama):
    return peaky_llama(vocab_size=48, max_seq_len=48)


@pytest.fixture(scope="module")
def session(llama, tmp_path_factory):
    base = tmp_path_factory.mktemp("saved_models") / "llama_tiny"
    export_saved_model(llama, base, verify=False)
    with SavedModelSession(base / "1") as session:
        yield session


# A short greedy prompt and a longer sampled one (first id 7: the batcher pads with it).
GREEDY = request([7, 3, 9], max_new_tokens=9, temperature=0.0)
SAMPLED = request(
    [7, 11, 2, 30, 5, 17, 8], max_new_tokens=5, temperature=1.3, top_k=6, top_p=0.9, seed=21
)
SAMPLED_2 = request([4, 1], max_new_tokens=7, temperature=0.8, top_k=0, top_p=0.7, seed=5)


def test_merge_pads_like_tf_serving():
    merged = merge_as_tf_serving([GREEDY, SAMPLED])
    assert merged["token_ids"].tolist() == [[7, 3, 9, 7, 7, 7, 7], [7, 11, 2, 30, 5, 17, 8]]
    assert merged["lengths"].tolist() == [3, 7]
    assert merged["temperature"].tolist() == pytest.approx([0.0, 1.3])


@pytest.mark.parametrize("requests", [[GREEDY, SAMPLED], [SAMPLED_2, GREEDY, SAMPLED]])
def test_each_row_of_a_merged_batch_equals_its_request_alone(session, requests):
    batched = session.run("generate_padded", merge_as_tf_serving(requests))["token_ids"]
    # The widest prompt + the most new tokens asked for (each row: its own, then 0).
    width = max(len(r["token_ids"][0]) for r in requests)
    width += max(int(r["max_new_tokens"][0]) for r in requests)
    assert batched.shape == (len(requests), width)
    for row, alone_request in zip(batched, requests, strict=True):
        alone = session.run("generate_padded", alone_request)["token_ids"][0]
        assert row[: len(alone)].tolist() == alone.tolist()
        assert not row[len(alone) :].any()  # 0 past the row's own max_new_tokens
        # `generate_padded` alone is `generate` on the unpadded prompt.
        plain = {k: v for k, v in alone_request.items() if k != "lengths"}
        assert alone.tolist() == session.run("generate", plain)["token_ids"][0].tolist()


def test_greedy_row_equals_keras_generate(session, llama):
    batched = session.run("generate_padded", merge_as_tf_serving([SAMPLED, GREEDY]))["token_ids"]
    want = np.asarray(llama.generate(GREEDY["token_ids"], 9))[0]
    assert batched[1, : len(want)].tolist() == want.tolist()


def test_sampled_rows_follow_their_own_seed(session):
    reseeded = {**SAMPLED, "seed": np.array([22], np.int32)}
    answers = [
        session.run("generate_padded", merge_as_tf_serving([GREEDY, r]))["token_ids"][1]
        for r in (SAMPLED, SAMPLED, reseeded)
    ]
    assert answers[0].tolist() == answers[1].tolist()
    prompt = len(SAMPLED["token_ids"][0])
    assert answers[0][prompt:].any()
    assert answers[0][prompt:].tolist() != answers[2][prompt:].tolist()


def test_lengths_outside_the_prompt_are_refused(session):
    bad = {**GREEDY, "lengths": np.array([4], np.int32)}
    with pytest.raises(Exception, match="lengths must hold one prompt length per row"):
        session.run("generate_padded", bad)


def test_export_writes_batching_parameters_that_parse_as_tf_servings_proto(llama, tmp_path):
    from google.protobuf import text_format

    from keras_recipes.serving import read_batching_parameters
    from keras_recipes.serving.batching import batching_parameters_class

    base = tmp_path / "llama"
    settings = {"max_batch_size": 4, "batch_timeout_micros": 2000, "allowed_batch_sizes": [2, 4]}
    export_saved_model(llama, base, verify=False, batching=settings)
    text = (base / "batching_parameters.txt").read_text()
    # TF Serving reads the file with the text-format parser into BatchingParameters.
    parsed = text_format.Parse(text, batching_parameters_class()())
    assert parsed.max_batch_size.value == 4 and parsed.batch_timeout_micros.value == 2000
    assert list(parsed.allowed_batch_sizes) == [2, 4]
    assert parsed.pad_variable_length_inputs and parsed.num_batch_threads.value == 1
    assert read_batching_parameters(base / "batching_parameters.txt") == parsed
    assert sorted(p.name for p in base.iterdir()) == ["1", "batching_parameters.txt"]


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"max_batch_size": 0}, "max_batch_size` must be an int >= 1"),
        ({"max_batch_size": 4, "allowed_batch_sizes": [2, 3]}, "last is max_batch_size"),
        ({"max_batch_size": 4, "allowed_batch_sizes": [4, 2, 4]}, "must be increasing"),
        ({"batch_size": 4}, "unknown batching settings"),
    ],
)
def test_bad_batching_settings_are_refused_before_exporting(llama, tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        export_saved_model(llama, tmp_path / "llama", verify=False, batching=settings)
    assert not (tmp_path / "llama").exists()
