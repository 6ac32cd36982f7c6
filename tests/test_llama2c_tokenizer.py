"""llama2.c's tokenizer.bin: run.c's encode/decode against SentencePiece itself."""

import io

import pytest
import sentencepiece as spm
from gensim.test.utils import datapath

from keras_recipes.tokenizers import Llama2cTokenizer

SAMPLES = [
    "Once upon a time, there was a little girl named Lily.",
    "héllo wörld 🙂 naïve café, 1234 and 56.7%",
    "  two  spaces\tand a tab",
    "x",
]


@pytest.fixture(scope="module")
def corpus():
    with open(datapath("lee_background.cor"), encoding="latin-1") as f:
        return [line.strip() for line in f if line.strip()]


@pytest.fixture(scope="module")
def sentencepiece_and_bin(corpus, tmp_path_factory):
    """A byte-fallback BPE SentencePiece model, exported as llama2.c's tokenizer.py does."""
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=proto,
        vocab_size=600,
        model_type="bpe",
        byte_fallback=True,
        normalization_rule_name="identity",
        character_coverage=1.0,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    pieces, scores = [], []
    for i in range(sp.get_piece_size()):
        piece = {1: "\n<s>\n", 2: "\n</s>\n"}.get(i, sp.id_to_piece(i))
        pieces.append(piece.replace("\u2581", " ").encode("utf-8"))
        scores.append(sp.get_score(i))
    path = Llama2cTokenizer(pieces, scores).save(tmp_path_factory.mktemp("tok") / "tokenizer.bin")
    return sp, path


def test_encode_matches_sentencepiece_on_a_corpus(sentencepiece_and_bin, corpus):
    sp, path = sentencepiece_and_bin
    tokenizer = Llama2cTokenizer.load(path, vocab_size=600)
    for text in corpus[:300] + SAMPLES:
        assert tokenizer.encode(text, add_bos=False) == sp.encode(text), text


def test_decode_inverts_encode_with_byte_fallback(sentencepiece_and_bin):
    tokenizer = Llama2cTokenizer.load(sentencepiece_and_bin[1])
    for text in SAMPLES:
        ids = tokenizer.encode(text, add_bos=True, add_eos=True)
        assert ids[0] == 1 and ids[-1] == 2
        assert tokenizer.decode(ids) == text
    emoji = tokenizer.encode("🙂", add_bos=False)
    assert [tokenizer.pieces[i] for i in emoji[1:]] == [b"<0xF0>", b"<0x9F>", b"<0x99>", b"<0x82>"]


def test_piece_after_bos_drops_its_leading_space(sentencepiece_and_bin):
    tokenizer = Llama2cTokenizer.load(sentencepiece_and_bin[1])
    ids = tokenizer.encode("the the", add_bos=True)
    assert tokenizer.pieces[ids[1]] == tokenizer.pieces[ids[2]] == b" the"
    assert tokenizer.piece_bytes(1, ids[1]) == b"the"
    assert tokenizer.piece_bytes(ids[1], ids[2]) == b" the"


def test_save_load_round_trip_is_byte_exact(sentencepiece_and_bin, tmp_path):
    path = sentencepiece_and_bin[1]
    again = Llama2cTokenizer.load(path).save(tmp_path / "again.bin")
    assert again.read_bytes() == path.read_bytes()


def test_truncated_or_mismatched_files_are_refused(sentencepiece_and_bin, tmp_path):
    data = sentencepiece_and_bin[1].read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-3])
    with pytest.raises(ValueError, match="cut.bin: truncated at token 599"):
        Llama2cTokenizer.load(tmp_path / "cut.bin")
    with pytest.raises(ValueError, match="holds 600 tokens but the model's vocab_size is 32000"):
        Llama2cTokenizer.load(sentencepiece_and_bin[1], vocab_size=32000)
