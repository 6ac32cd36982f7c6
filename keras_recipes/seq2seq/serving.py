"""`Seq2Seq` as a TensorFlow graph of strings: the `translate` signature TF Serving runs.

`translation_module(model)` wraps a trained model in a `tf.Module` whose
`translate` `tf.function` maps a string tensor `(batch,)` to a string tensor
`(batch,)` with TensorFlow ops only: the tokenizers become lookup tables and
decoding is a fixed-length greedy loop. `Seq2Seq.translation_module()` and
`export_saved_model` reach it through the model.
"""

from __future__ import annotations

from keras_recipes.seq2seq.tokenizer import END_ID, PAD_ID, START_ID, UNK_ID


def translation_module(model, max_length: int | None = None):
    """A `tf.Module` whose `translate` maps a string tensor `(batch,)` to one `(batch,)`.

    `translate` is a `tf.function` made of TensorFlow ops only: the
    tokenizer is a lookup table (word level splits with the RE2 pattern
    `[\\pL\\pN_]+|[^\\pL\\pN_\\s]`, Python's `\\w` spelled for RE2),
    decoding is greedy for a fixed `max_length` steps, cut at `<end>`.
    Sources longer than `max_source_length` tokens are truncated. The
    module holds the model and the table, so it saves as a SavedModel
    with a `translate` signature (TensorFlow backend only): for a trained
    dates model, `module = model.translation_module()` then
    `module.translate(tf.constant(["9 May 2018"]))` gives `[b"2018-05-09"]`,
    and `tf.saved_model.save(module, path, signatures={"translate": module.translate})`
    writes it (`tests/test_seq2seq.py` runs both; tracing the graph takes
    seconds, too long for a doctest).
    """
    import tensorflow as tf

    max_length = max_length or model.max_target_length
    source, target = model.source_tokenizer, model.target_tokenizer
    separator = "" if target.level == "char" else " "

    class Translator(tf.Module):
        def __init__(self):
            super().__init__(name="seq2seq_translator")
            self.model = model
            self.source_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(source.tokens), tf.range(len(source), dtype=tf.int64)
                ),
                default_value=UNK_ID,
            )
            self.target_tokens = tf.constant(target.tokens)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
        def translate(self, texts):
            if source.lowercase:
                texts = tf.strings.lower(texts, encoding="utf-8")
            if source.level == "char":
                pieces = tf.strings.unicode_split(texts, "UTF-8")
            else:
                pieces = tf.strings.split(
                    tf.strings.regex_replace(texts, r"([\pL\pN_]+|[^\pL\pN_\s])", r" \1 ")
                )
            ids = tf.cast(self.source_table.lookup(pieces), tf.int32)
            ids = ids[:, : model.max_source_length].to_tensor(PAD_ID)
            ids = tf.concat([ids, tf.zeros([tf.shape(ids)[0], 1], tf.int32)], axis=1)
            encoder_outputs, states, source_mask = model.encode(ids)
            tokens = tf.fill([tf.shape(ids)[0], 1], START_ID)
            out = []
            for _ in range(max_length):
                logits, states, _ = model.decode(tokens, encoder_outputs, states, source_mask)
                tokens = tf.cast(tf.argmax(logits[:, -1], axis=-1), tf.int32)[:, None]
                out.append(tokens)
            out = tf.concat(out, axis=1)
            alive = tf.cumsum(tf.cast(tf.equal(out, END_ID), tf.int32), axis=1) == 0
            keep = alive & (out != PAD_ID) & (out != START_ID)  # as SequenceTokenizer.decode
            words = tf.ragged.boolean_mask(tf.gather(self.target_tokens, out), keep)
            return tf.strings.reduce_join(words, axis=1, separator=separator)

    return Translator()
