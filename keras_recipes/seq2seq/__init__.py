"""The notes' encoder-decoder: an RNN seq2seq with attention, greedy and beam decoding.

Data flows through the package's files in this order:

1. `tokenizer.py`: `SequenceTokenizer`, text -> ids, character or word
   level, with the `<pad>`, `<unk>`, `<start>`, `<end>` markers.
2. `attention.py`: `BahdanauAttention` (additive) and `LuongAttention`
   (multiplicative), how a decoder step scores every encoder step.
3. `model.py`: `Seq2Seq`, the encoder RNN (LSTM or GRU, optionally
   bidirectional) reads the source; its final state initializes the decoder
   RNN; attention lets each decoder step look at every encoder step. Trained
   with teacher forcing on cross-entropy averaged per target token, padding
   masked out. Decodes until `<end>`: `greedy_search`, `beam_search`, and
   `translate(["..."])`, strings in and out, with the attention weights.
4. `search.py`: the beam search (beam width, GNMT length penalty) shared by
   `Seq2Seq` and the TFLite runtime.
5. `serving.py`: `model.translation_module()`, the string-to-string
   TensorFlow graph that TF Serving runs.

`corpus_bleu` (corpus-level BLEU-4, Papineni et al., 2002) lives in
`keras_recipes.metrics` and is handed on here too.

The tokenizers live inside the model, so one `.keras` file holds everything:
`model.save("dates.keras")`, then `keras.models.load_model("dates.keras")`
(after `import keras_recipes.seq2seq`, which registers the classes).

Serving: `model.translation_module()` returns a `tf.Module` whose `translate`
`tf.function` maps a string tensor `(batch,)` to a string tensor `(batch,)`
with TensorFlow ops only (tokenization by lookup table, a fixed-length
greedy loop); it saves as a SavedModel with a `translate` signature. For a
trained dates model, `module = model.translation_module()` then
`module.translate(tf.constant(["9 May 2018"]))` gives `[b'2018-05-09']`;
`tf.saved_model.save(module, path, signatures={"translate": module.translate})`
writes it and `tf.saved_model.load(path).signatures["translate"](texts=...)`
runs it back (`tests/test_seq2seq.py` does both; tracing the graph takes
seconds, too long for a doctest).
"""

from keras_recipes.metrics import corpus_bleu
from keras_recipes.seq2seq.attention import BahdanauAttention, LuongAttention
from keras_recipes.seq2seq.model import ATTENTIONS, Seq2Seq, masked_token_cross_entropy
from keras_recipes.seq2seq.search import beam_search, check_beam_width
from keras_recipes.seq2seq.tokenizer import (
    END,
    END_ID,
    LEVELS,
    PAD,
    PAD_ID,
    SPECIAL_TOKENS,
    START,
    START_ID,
    UNK,
    UNK_ID,
    WORD_PATTERN,
    SequenceTokenizer,
    encode_sources,
    pad_sequences,
)

__all__ = [
    "ATTENTIONS",
    "END",
    "END_ID",
    "LEVELS",
    "PAD",
    "PAD_ID",
    "SPECIAL_TOKENS",
    "START",
    "START_ID",
    "UNK",
    "UNK_ID",
    "WORD_PATTERN",
    "BahdanauAttention",
    "LuongAttention",
    "Seq2Seq",
    "SequenceTokenizer",
    "beam_search",
    "check_beam_width",
    "corpus_bleu",
    "encode_sources",
    "masked_token_cross_entropy",
    "pad_sequences",
]
