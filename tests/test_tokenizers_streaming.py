"""IncrementalDecoder: the pieces it hands out join to the tokenizer's own full decode."""

import numpy as np
import pytest

from keras_recipes.tokenizers import Llama2cTokenizer, train_sentencepiece
from keras_recipes.tokenizers.streaming import IncrementalDecoder

TEXTS = [
    "Once upon a time, there was a little girl named Lily.",
    "She liked to play outside   with her friends, and eat crème brûlée.",
    "Über café: naïve façade — 東京 😀 ok.",
    "  leading spaces and trailing ones  ",
    "numbers 12345 and punctuation!?",
]


@pytest.fixture(scope="module")
def sentencepiece():
    # byte_fallback: characters outside the vocabulary become one token per UTF-8 byte.
    corpus = TEXTS[:2] * 20 + ["the cat sat on the mat with a hat"] * 20
    return train_sentencepiece(corpus, vocab_size=300, byte_fallback=True)


def llama2c():
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % i for i in range(256)]
    pieces += [b" ", b"a", b"e", b" a", b"on", b" on", b"Once", b" upon", b" time", b" the"]
    return Llama2cTokenizer(pieces, [0.0] * 259 + [-float(i) for i in range(1, 11)])


def streamed(tokenizer, ids, split, chunks):
    """The prompt's text, then the decoder's pieces for `ids[split:]` in chunks."""
    decoder = IncrementalDecoder(tokenizer, ids[:split])
    text = tokenizer.decode(ids[:split])
    rest = ids[split:]
    for chunk in np.array_split(np.arange(len(rest)), chunks):
        text += decoder.push([rest[i] for i in chunk])
    return text + decoder.finish()


@pytest.mark.parametrize("which", ["sentencepiece", "llama2c"])
@pytest.mark.parametrize("chunks", [1, 3, 1000])  # one push, a few, one token a push
def test_pieces_join_to_the_full_decode(sentencepiece, which, chunks):
    tokenizer = sentencepiece if which == "sentencepiece" else llama2c()
    for text in TEXTS:
        ids = tokenizer.encode(text, add_bos=True)
        full = tokenizer.decode(ids)
        for split in range(1, len(ids)):
            if tokenizer.decode(ids[:split]).endswith("\ufffd"):
                continue  # a prompt ends with a whole character (it was text)
            assert streamed(tokenizer, ids, split, min(chunks, len(ids) - split)) == full


def test_a_character_split_over_byte_tokens_waits_until_complete():
    tokenizer = llama2c()
    smile = [3 + b for b in "😀".encode()]  # four byte tokens
    decoder = IncrementalDecoder(tokenizer, [1, 265])  # BOS "Once"
    assert [decoder.push([token]) for token in smile] == ["", "", "", "😀"]
    assert decoder.push([266]) == " upon"  # the space kept, not dropped as at a text's start
    decoder.push(smile[:2])
    assert decoder.finish() == "\ufffd"  # an unfinished character at the end, as decode writes it


def test_each_push_decodes_a_window_not_the_whole_text(sentencepiece):
    calls = []

    class Counting:
        def decode(self, ids):
            calls.append(len(ids))
            return sentencepiece.decode(ids)

    ids = sentencepiece.encode(" ".join(TEXTS[:2] * 4), add_bos=True)
    decoder = IncrementalDecoder(Counting(), ids[:2])
    for token in ids[2:]:
        decoder.push([token])
    assert len(ids) > 60 and max(calls) <= 8  # never the whole text


@pytest.mark.parametrize("chunks", [1, 3, 1000])
def test_a_run_of_space_tokens_streams_every_space(sentencepiece, chunks):
    # What an undertrained model emits: "▁" again and again. A window that
    # starts on a space piece decodes without it, so each one used to vanish.
    space = [i for i in range(sentencepiece.vocab_size) if sentencepiece.id_to_piece(i) == "▁"]
    ids = sentencepiece.encode("The cat", add_bos=True)
    tail = [space[0]] * 6 + sentencepiece.encode("sat", add_bos=False) + [space[0]] * 3
    full = ids + tail
    assert streamed(sentencepiece, full, len(ids), min(chunks, len(tail))) == (
        sentencepiece.decode(full)
    )
