"""SentencePiece training, encoding, decoding, saving and its error messages."""

import numpy as np
import pytest

from keras_recipes.data import load_builtin_corpus
from keras_recipes.tokenizers import (
    SentencePieceTokenizer,
    load_sentencepiece,
    train_sentencepiece,
)


@pytest.fixture(scope="module")
def documents():
    return load_builtin_corpus("lee_background")


@pytest.fixture(scope="module")
def tokenizer(documents):
    return train_sentencepiece(documents, vocab_size=512)


def test_special_ids_follow_keras_hub(tokenizer):
    assert tokenizer.vocab_size == 512
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2, 3)


def test_long_documents_are_learned_not_skipped():
    # SentencePiece skips lines over 4192 bytes unless told otherwise; a
    # character that only a 6,000-byte document holds must still be in the
    # vocabulary rather than mapping to unk.
    documents = ["the quick brown fox jumps over the lazy dog"] * 20
    documents.append("the lazy dog sleeps in " * 300 + "Zürich")
    tokenizer = train_sentencepiece(documents, vocab_size=40, hard_vocab_limit=False)
    ids = tokenizer.encode("Zürich")
    assert tokenizer.unk_id not in ids
    assert tokenizer.decode(ids) == "Zürich"


def test_encode_decode_round_trip_and_bos_eos(tokenizer):
    text = "Hundreds of people have been forced to vacate their homes."
    ids = tokenizer.encode(text, add_bos=True, add_eos=True)
    assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id
    assert all(isinstance(i, int) for i in ids)
    assert tokenizer.decode(ids) == text
    assert tokenizer.decode(np.asarray(ids, dtype=np.int32)) == text


def test_batches_encode_to_lists_and_decode_from_2d_arrays(tokenizer):
    texts = ["the fire", "the fire service"]
    batch = tokenizer.encode(texts)
    assert batch == [tokenizer.encode(t) for t in texts]
    width = max(map(len, batch))
    padded = np.full((2, width), tokenizer.pad_id, dtype=np.int32)
    for row, ids in zip(padded, batch, strict=True):
        row[: len(ids)] = ids
    assert tokenizer.decode(padded) == texts


def test_ids_agree_with_keras_hub_tokenizer(tokenizer):
    # keras-hub tokenizes with tensorflow-text's SentencePiece op, a separate
    # code path from the Python sentencepiece processor used here.
    hub = tokenizer.to_keras_hub()
    text = "Firefighters battled the blaze near Sydney on Tuesday."
    assert np.asarray(hub(text)).tolist() == tokenizer.encode(text)
    assert hub.vocabulary_size() == tokenizer.vocab_size


def test_save_and_load_round_trip(tokenizer, tmp_path):
    path = tokenizer.save(tmp_path / "run" / "tokenizer.model")
    loaded = load_sentencepiece(path)
    assert loaded.proto == tokenizer.proto
    text = "A storm cell moved east across the Blue Mountains."
    assert loaded.encode(text) == tokenizer.encode(text)
    assert not list((tmp_path / "run").glob("*.partial"))


def test_decode_rejects_ids_out_of_range(tokenizer):
    with pytest.raises(ValueError, match=r"512 is outside .*\[0, 512\)"):
        tokenizer.decode([5, 512])
    with pytest.raises(ValueError, match="-1 is outside"):
        tokenizer.decode(np.array([[5, -1]]))


def test_too_large_vocab_names_the_largest_allowed():
    with pytest.raises(ValueError, match=r"vocab_size <= \d+"):
        train_sentencepiece(["a tiny corpus of few words"] * 3, vocab_size=5000)


def test_too_small_vocab_names_the_smallest_allowed(documents):
    with pytest.raises(ValueError, match=r"vocab_size >= \d+"):
        train_sentencepiece(documents, vocab_size=20)


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="No SentencePiece model"):
        SentencePieceTokenizer(tmp_path / "missing.model")
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        SentencePieceTokenizer(b"not a proto")
    with pytest.raises(ValueError, match="model_type"):
        train_sentencepiece(["text"], vocab_size=50, model_type="wordpiece")
    with pytest.raises(ValueError, match="no text"):
        train_sentencepiece(["", "  "], vocab_size=50)
