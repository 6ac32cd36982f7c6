"""A `tokenizer.json` as TensorFlow ops: the tokenizer a SavedModel's `generate_text` runs.

`GraphTokenizer` rebuilds, with core TensorFlow and tensorflow-text ops
only (RE2 regular expressions, hash tables, a `while_loop`), the pipeline
the Hugging Face `tokenizers` library runs for the file, so TF Serving's C++
loader can run it:

1. added tokens (`<|eot_id|>`, `<s>`, ...) are cut out of the text first
   (longest match first, as the library's added vocabulary);
2. byte-level files (Llama 3, GPT-2, SmolLM2): the pre-tokenizer's split
   patterns, then each piece's UTF-8 bytes as GPT-2's byte characters;
   SentencePiece-derived files (Llama 2, TinyLlama): "▁" prepended and
   spaces written as "▁";
3. BPE: the lowest-ranked adjacent pair is merged, leftmost first, until no
   pair has a merge (the library's order), after a whole-word lookup when the
   file sets `ignore_merges`; SentencePiece-derived files fall back to
   `<0xNN>` byte tokens for characters outside the vocabulary.

The split patterns are Oniguruma regular expressions, and RE2 differs in
two ways that change ids: its `\\s` is ASCII only (Oniguruma's is Unicode
White_Space), and it has no lookahead, which Llama 3's and GPT-2's
`\\s+(?!\\S)` need. The first is met by writing White_Space out as a class.
The second by an equivalent without lookahead: `\\s+(?!\\S)|\\s+` always
ends a whitespace run's piece before the run's last character when a
non-space follows (Llama 3: unless that character is a line break, which
`\\s*[\\r\\n]+` already took), so a marker (U+FDD0, a noncharacter) is written
there, kept out of every class, split on and dropped; the tail becomes
`\\s+`. A text holding U+FDD0 itself is refused, never tokenized otherwise.

Every other shape of file (other normalizers, pre-tokenizers, lookaround,
possessive quantifiers, added tokens that strip spaces) is refused by
`graph_tokenizer_problem` with the reason, and `GraphTokenizer` also
tokenizes a probe corpus in eager mode at construction and refuses the file
if a single id differs from the `tokenizers` library's.
"""

from __future__ import annotations

import re

import numpy as np

# Unicode White_Space, what Oniguruma's (and Rust's) \s matches; RE2's \s is ASCII only.
WHITESPACE = r"\t\n\x0B\f\r\x{85}\p{Z}"
MARKER = "\ufdd0"  # a noncharacter: never a token, written where a lookahead would stop
_MARKER_RE2 = r"\x{FDD0}"
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LOOKAHEAD_TAIL = r"|\s+(?!\S)|\s+"
_MAX_RANK = np.iinfo(np.int32).max

PROBE_TEXTS = (
    "The quick brown fox; rose 12345 in 2024, isn't it? I'M SURE it'S.",
    "héllo wörld naïve café 日本語のテキスト 中文 한국어 🙂🚀👩‍👩‍👧",
    "def f(x):\n    return x**2  # sq\n\n\n\tif x >= 10: print('big')\r\n",
    "spaces   between    words    \n  \n and trailing    ",
    " leading\u00a0nbsp\u3000ideographic\u2003em x\x0bvt \x85nl ½ Ⅻ ٣٤٥",
)


def _byte_characters() -> list[str]:
    """GPT-2's map of the 256 byte values to printable characters."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def _translate(pattern: str) -> tuple[str, bool] | str:
    """An Oniguruma split pattern as RE2 (see the module docstring), with
    whether a run's last line break stays with the run; or the reason it
    cannot be."""
    if not pattern.endswith(_LOOKAHEAD_TAIL):
        head = pattern
        tail = False
    else:
        head = pattern[: -len(_LOOKAHEAD_TAIL)]
        tail = True
    for construct in ("(?=", "(?!", "(?<", "\\S", "\\b", "\\B", "\\G", "?+", "++", "*+"):
        if construct in head:
            return f"its split pattern uses {construct!r}, which RE2 cannot match the same way"
    if re.search(r"\{\d+(,\d*)?\}\+", head):
        return "its split pattern uses a possessive repeat, which RE2 cannot match the same way"
    out, in_class, i = [], False, 0
    while i < len(head):
        ch = head[i]
        if ch == "\\":
            escape = head[i : i + 2]
            if escape == "\\s":
                out.append(WHITESPACE if in_class else f"[{WHITESPACE}]")
            elif escape in ("\\p", "\\P"):
                end = head.index("}", i) + 1 if head[i + 2 : i + 3] == "{" else i + 3
                out.append(head[i:end])
                i = end
                continue
            elif escape[1:] in "rntfdDwW" or not escape[1:].isalnum():
                out.append(escape)
            else:
                return f"its split pattern uses the escape {escape!r}"
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
            if head[i + 1 : i + 2] == "^":
                out.append("[^" + _MARKER_RE2)
                i += 2
                continue
        elif ch == "]" and in_class:
            in_class = False
        out.append(ch)
        i += 1
    re2 = "".join(out)
    if tail:
        re2 += f"|[{WHITESPACE}]+"
    if not tail:
        return re2, None  # no lookahead: no marker
    # Llama 3's `\s*[\r\n]+` takes a run up to its last line break first.
    return re2, r"\s*[\r\n]+" in head


def _split_stages(pre_tokenizer) -> list | str:
    """(RE2 pattern, marker rule) per split of a byte-level pre-tokenizer, or a reason."""
    if pre_tokenizer is None:
        return "it has no pre-tokenizer but a byte-level model"
    parts = (
        pre_tokenizer.get("pretokenizers", [])
        if pre_tokenizer.get("type") == "Sequence"
        else [pre_tokenizer]
    )
    stages, byte_level = [], False
    for part in parts:
        kind = part.get("type")
        if byte_level:
            return f"its {kind} pre-tokenizer comes after ByteLevel"
        if kind == "Split":
            pattern = part.get("pattern", {})
            if "Regex" not in pattern or part.get("invert") or part.get("behavior") != "Isolated":
                return f"its Split pre-tokenizer {part!r} is not an isolated regex split"
            translated = _translate(pattern["Regex"])
            if isinstance(translated, str):
                return translated
            stages.append(translated)
        elif kind == "Digits":
            stages.append((r"\p{N}" if part.get("individual_digits") else r"\p{N}+", None))
        elif kind == "ByteLevel":
            if part.get("add_prefix_space"):
                return "its ByteLevel pre-tokenizer adds a prefix space"
            if part.get("use_regex", True):
                stages.append(_translate(GPT2_PATTERN))
            byte_level = True
        else:
            return f"its pre-tokenizer {kind} has no graph equivalent here"
    if not byte_level:
        return "its pre-tokenizer has no ByteLevel step"
    return stages


def _is_metaspace_normalizer(normalizer) -> bool:
    """Llama 2's / TinyLlama's normalizer: prepend "▁", then spaces as "▁"."""
    if not normalizer or normalizer.get("type") != "Sequence":
        return False
    steps = normalizer.get("normalizers", [])
    return (
        len(steps) == 2
        and steps[0] == {"type": "Prepend", "prepend": "▁"}
        and (
            steps[1].get("type") == "Replace"
            and steps[1].get("pattern") == {"String": " "}
            and steps[1].get("content") == "▁"
        )
    )


def graph_tokenizer_problem(spec: dict) -> str | None:
    """Why a `tokenizer.json` (its parsed dict) cannot run as graph ops; None if it can."""
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        return f"its model is {model.get('type')!r}; only BPE files run in the graph"
    for key in ("dropout", "continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            return f"its BPE model sets {key}"
    for token in spec.get("added_tokens", []):
        for flag in ("lstrip", "rstrip", "single_word", "normalized"):
            if token.get(flag) and (flag != "normalized" or spec.get("normalizer")):
                return f"its added token {token['content']!r} sets {flag}"
    merges = model.get("merges", [])
    if any(" " in part for merge in merges if isinstance(merge, list) for part in merge):
        return "a merge holds a space"
    if model.get("byte_fallback"):
        if not _is_metaspace_normalizer(spec.get("normalizer")):
            return "its byte-fallback BPE has a normalizer other than Llama 2's (Prepend + Replace)"
        if spec.get("pre_tokenizer") is not None:
            return "its byte-fallback BPE has a pre-tokenizer"
        decoder = spec.get("decoder") or {}
        if [d.get("type") for d in decoder.get("decoders", [])] != [
            "Replace",
            "ByteFallback",
            "Fuse",
            "Strip",
        ]:
            return "its decoder is not Llama 2's (Replace, ByteFallback, Fuse, Strip)"
        if model.get("ignore_merges"):
            return "its byte-fallback BPE sets ignore_merges"
        return None
    if spec.get("normalizer") is not None:
        return f"its normalizer {spec['normalizer'].get('type')} has no graph equivalent here"
    if (spec.get("decoder") or {}).get("type") != "ByteLevel":
        return "its decoder is not ByteLevel"
    stages = _split_stages(spec.get("pre_tokenizer"))
    return stages if isinstance(stages, str) else None


class GraphTokenizer:
    """A `TokenizerJson` as TensorFlow ops (`tokenize`, `detokenize`).

    Args:
        tokenizer: a `keras_recipes.tokenizers.TokenizerJson`.
        vocab_size: int, the model's vocabulary size (ids the model may
            generate; ids the file does not name decode to nothing, as the
            library decodes them). Default: the tokenizer's.

    Raises:
        ValueError: naming the file and the reason, when it cannot run in
            the graph exactly (`graph_tokenizer_problem`), or when the probe
            corpus gets ids other than the `tokenizers` library's.
    """

    def __init__(self, tokenizer, vocab_size: int | None = None):
        import tensorflow as tf

        spec = tokenizer.spec
        problem = graph_tokenizer_problem(spec)
        if problem is not None:
            raise ValueError(
                f"{tokenizer.path}: this tokenizer.json cannot run inside the SavedModel exactly: "
                f"{problem}. Export without generate_text (no tokenizer), or with the "
                "checkpoint's SentencePiece tokenizer.model."
            )
        model = spec["model"]
        self.path = tokenizer.path
        self.byte_fallback = bool(model.get("byte_fallback"))
        self.ignore_merges = bool(model.get("ignore_merges"))
        self.stages = [] if self.byte_fallback else _split_stages(spec.get("pre_tokenizer"))
        merges = [m.split(" ") if isinstance(m, str) else m for m in model.get("merges", [])]
        # SentencePiece-derived files have no pre-tokenizer: BPE runs on the
        # whole text. When no merge joins a piece ending in another character
        # to one starting with "▁" (Llama 2's 61249 merges have none), no
        # token crosses such a point, and the text is cut there first: the
        # same ids, in time linear in the text's length instead of quadratic.
        self.words_at_spaces = not any(a[-1:] != "▁" and b[:1] == "▁" for a, b in merges)
        self.bos_id = tokenizer.bos_id
        vocab = tokenizer._tokenizer.get_vocab(with_added_tokens=True)
        self.vocab_size = max(vocab_size or 0, tokenizer.vocab_size)
        added = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
        # Left out of decoded text: special tokens, and ids the file does not
        # name (the library skips those before its decoder sees the rest).
        self.skipped_ids = np.ones(self.vocab_size, bool)
        self.skipped_ids[list(vocab.values())] = False
        self.skipped_ids[sorted(tokenizer.special_ids)] = True
        self.added_pattern = "|".join(
            re.escape(content) for content in sorted(added, key=len, reverse=True)
        )
        tokens = [""] * self.vocab_size
        for token, index in vocab.items():
            tokens[index] = token
        self.id_to_token = tf.constant(tokens)

        def table(keys, values, default, key_dtype=tf.string, value_dtype=tf.int32):
            initializer = tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys, key_dtype), tf.constant(values, value_dtype)
            )
            return tf.lookup.StaticHashTable(initializer, default)

        self.vocab = table(list(vocab), list(vocab.values()), -1)
        self.added = table(list(added) or [MARKER], list(added.values()) or [-1], -1)
        self.merges = table(
            [f"{a} {b}" for a, b in merges] or [MARKER], list(range(len(merges))) or [0], _MAX_RANK
        )
        byte_chars = _byte_characters()
        byte_strings = [bytes([b]) for b in range(256)]
        if self.byte_fallback:
            byte_ids = [vocab.get(f"<0x{b:02X}>", -1) for b in range(256)]
            self.byte_tokens = table(byte_strings, byte_ids, -1)
            self.byte_values = table(
                [f"<0x{b:02X}>" for b in range(256)], byte_strings, "", value_dtype=tf.string
            )
        else:
            self.byte_to_char = table(byte_strings, byte_chars, "", value_dtype=tf.string)
            self.char_to_byte = table(byte_chars, byte_strings, "", value_dtype=tf.string)
        self.resources = [
            t
            for t in (
                self.vocab,
                self.added,
                self.merges,
                getattr(self, "byte_tokens", None),
                getattr(self, "byte_values", None),
                getattr(self, "byte_to_char", None),
                getattr(self, "char_to_byte", None),
            )
            if t is not None
        ]
        self._check_probe(tokenizer)

    def _check_probe(self, tokenizer) -> None:
        import tensorflow as tf

        texts = list(PROBE_TEXTS) + [
            f"a{token}b {token}" for token in sorted(self._added_names(tokenizer))[:8]
        ]
        got = self.tokenize(tf.constant(texts)).to_list()
        for text, ids in zip(texts, got, strict=True):
            want = tokenizer.encode(text)
            if ids != want:
                raise ValueError(
                    f"{self.path}: this tokenizer.json gives other ids in the graph than in the "
                    f"tokenizers library on {text!r} ({ids[:12]} vs {want[:12]}); it cannot be "
                    "exported with generate_text."
                )

    @staticmethod
    def _added_names(tokenizer) -> list[str]:
        return [t["content"] for t in tokenizer.spec.get("added_tokens", [])]

    # ---- tokenize -------------------------------------------------------------------

    def tokenize(self, texts):
        """`(B,)` strings -> int32 ragged `(B, None)` ids (no begin token)."""
        import tensorflow as tf
        import tensorflow_text as tf_text

        texts = tf.convert_to_tensor(texts, tf.string)
        has_marker = tf.strings.regex_full_match(texts, f"(?s).*{_MARKER_RE2}.*")
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(has_marker)),
            ["prompt: holds U+FDD0, a Unicode noncharacter this tokenizer reserves; remove it"],
        )
        with tf.control_dependencies([check]):
            texts = tf.identity(texts)
        if self.added_pattern:
            segments = tf_text.regex_split(texts, self.added_pattern, self.added_pattern)
        else:
            segments = tf.RaggedTensor.from_tensor(texts[:, None])
        flat = segments.flat_values
        added_id = self.added.lookup(flat)
        is_added = added_id >= 0
        plain = tf.where(is_added, tf.constant(""), flat)
        if self.byte_fallback:
            normalized = tf.strings.regex_replace(plain, " ", "▁")
            normalized = tf.where(plain == "", plain, tf.strings.join(["▁", normalized]))
            if self.words_at_spaces:  # no merge joins a word to the "▁" after it
                pieces = tf_text.regex_split(normalized, "▁*[^▁]+|▁+", "▁*[^▁]+|▁+")
            else:
                pieces = tf.RaggedTensor.from_tensor(normalized[:, None])
                pieces = tf.ragged.boolean_mask(pieces, pieces != "")
        else:
            pieces = tf.RaggedTensor.from_tensor(plain[:, None])
            for pattern, keeps_line_break in self.stages:
                pieces = self._split(pieces, pattern, keeps_line_break)
        piece_ids = self._bpe(pieces.flat_values)  # (P, None)
        added_ragged = tf.RaggedTensor.from_row_lengths(
            tf.boolean_mask(added_id, is_added), tf.cast(is_added, tf.int64)
        )
        per_segment = tf.concat(
            [added_ragged, pieces.with_flat_values(piece_ids).merge_dims(1, 2)], axis=1
        )
        return segments.with_flat_values(per_segment).merge_dims(1, 2)

    def _split(self, pieces, pattern: str, keeps_line_break):
        """Each piece split by `pattern` (isolated), marking where `\\s+(?!\\S)` stops."""
        import tensorflow as tf
        import tensorflow_text as tf_text

        flat = pieces.flat_values
        if keeps_line_break is not None:
            last = f"[{WHITESPACE}]" if not keeps_line_break else r"[\t\x0B\f\x{85}\p{Z}]"
            flat = tf.strings.regex_replace(
                flat, f"([{WHITESPACE}])({last})([^{WHITESPACE}])", f"\\1{MARKER}\\2\\3"
            )
        split = tf_text.regex_split(flat, f"{pattern}|{_MARKER_RE2}", pattern)
        return pieces.with_flat_values(split).merge_dims(1, 2)

    def _bpe(self, words):
        """`(P,)` pieces -> int32 ragged `(P, None)` token ids."""
        import tensorflow as tf

        if self.byte_fallback:
            symbols = tf.strings.unicode_split(words, "UTF-8")
        else:
            raw = tf.strings.bytes_split(words)
            symbols = raw.with_flat_values(self.byte_to_char.lookup(raw.flat_values))
            words = tf.strings.reduce_join(symbols, axis=1)
        dense = symbols.to_tensor("")
        lengths = tf.cast(symbols.row_lengths(), tf.int32)
        if self.ignore_merges:  # a piece that is a token is that token
            whole = self.vocab.lookup(words) >= 0
            lengths = tf.where(whole, tf.minimum(lengths, 1), lengths)
            dense = tf.where(
                whole[:, None] & (tf.range(tf.shape(dense)[1])[None, :] == 0),
                tf.broadcast_to(words[:, None], tf.shape(dense)),
                dense,
            )
        merged, lengths = self._merge(dense, lengths)
        symbols = tf.RaggedTensor.from_tensor(merged, lengths=lengths)
        ids = self.vocab.lookup(symbols.flat_values)
        if self.byte_fallback:
            raw = tf.strings.bytes_split(symbols.flat_values)
            byte_ids = raw.with_flat_values(self.byte_tokens.lookup(raw.flat_values))
            known = ids >= 0
            both = tf.concat([tf.RaggedTensor.from_tensor(ids[:, None]), byte_ids], axis=1)
            keep = tf.concat(
                [
                    tf.RaggedTensor.from_tensor(known[:, None]),
                    raw.with_flat_values(tf.repeat(tf.logical_not(known), raw.row_lengths())),
                ],
                axis=1,
            )
            ids = tf.ragged.boolean_mask(both, keep)
            return symbols.with_flat_values(ids).merge_dims(1, 2)
        check = tf.debugging.Assert(
            tf.reduce_all(ids >= 0), ["tokenize: a byte-level symbol is not in the vocabulary"]
        )
        with tf.control_dependencies([check]):
            return symbols.with_flat_values(tf.identity(ids))

    def _merge(self, symbols, lengths):
        """BPE merges on dense `(P, L)` symbols: per row, the lowest-ranked
        pair, leftmost first, until no adjacent pair has a merge."""
        import tensorflow as tf

        def body(symbols, lengths, _):
            width = tf.shape(symbols)[1]
            pairs = tf.strings.join([symbols[:, :-1], symbols[:, 1:]], separator=" ")
            positions = tf.range(width - 1)[None, :]
            ranks = tf.where(
                positions < (lengths - 1)[:, None], self.merges.lookup(pairs), _MAX_RANK
            )
            best = tf.reduce_min(
                tf.concat([ranks, tf.fill([tf.shape(ranks)[0], 1], _MAX_RANK)], 1), 1
            )
            active = best < _MAX_RANK
            at = tf.reduce_min(tf.where(ranks == best[:, None], positions, width), axis=1)
            at = tf.where(active, at, width)
            columns = tf.range(width)[None, :]
            following = tf.concat([symbols[:, 1:], tf.fill([tf.shape(symbols)[0], 1], "")], 1)
            joined = tf.where(
                columns == at[:, None], tf.strings.join([symbols, following]), symbols
            )
            padded = tf.concat([joined, tf.fill([tf.shape(symbols)[0], 1], "")], 1)
            take = columns + tf.cast(columns > at[:, None], tf.int32)
            symbols = tf.gather(padded, take, batch_dims=1)
            return symbols, lengths - tf.cast(active, tf.int32), tf.reduce_any(active)

        symbols, lengths, _ = tf.while_loop(
            lambda s, n, go: go,
            body,
            (symbols, lengths, tf.constant(True)),
            shape_invariants=(
                tf.TensorShape([None, None]),
                tf.TensorShape([None]),
                tf.TensorShape([]),
            ),
        )
        return symbols, lengths

    # ---- detokenize -----------------------------------------------------------------

    def detokenize(self, ids):
        """int32 ragged `(B, None)` ids -> `(B,)` strings, special tokens left out
        (the library's `decode(ids, skip_special_tokens=True)`)."""
        import tensorflow as tf

        ids = tf.ragged.boolean_mask(ids, ~tf.gather(tf.constant(self.skipped_ids), ids))
        tokens = ids.with_flat_values(tf.gather(self.id_to_token, ids.flat_values))
        if not self.byte_fallback:
            chars = tf.strings.unicode_split(tf.strings.reduce_join(tokens, axis=1), "UTF-8")
            looked = self.char_to_byte.lookup(chars.flat_values)
            raw = chars.with_flat_values(tf.where(looked == "", chars.flat_values, looked))
            return _utf8_lossy(tf.strings.reduce_join(raw, axis=1))
        return self._detokenize_byte_fallback(tokens)

    def _detokenize_byte_fallback(self, tokens):
        """Llama 2's decoder: "▁" as a space, runs of `<0xNN>` tokens as their
        bytes (one U+FFFD per token when the run is not UTF-8), one leading
        space stripped."""
        import tensorflow as tf

        flat = tf.strings.regex_replace(tokens.flat_values, "▁", " ")
        byte = self.byte_values.lookup(tokens.flat_values)
        is_byte = byte != ""
        rows = tokens.value_rowids()
        # A group: a run of byte tokens in one row, or one other token.
        starts = tf.concat(
            [[True], tf.logical_not(is_byte[1:] & is_byte[:-1]) | (rows[1:] != rows[:-1])],
            axis=0,
        )[: tf.size(flat)]
        group = tf.cumsum(tf.cast(starts, tf.int32)) - 1
        groups = tf.reduce_max(tf.concat([group, [-1]], 0)) + 1
        text = tf.strings.unsorted_segment_join(tf.where(is_byte, byte, flat), group, groups)
        count = tf.math.unsorted_segment_sum(tf.ones_like(group), group, groups)
        group_is_byte = tf.math.unsorted_segment_max(tf.cast(is_byte, tf.int32), group, groups)
        group_rows = tf.math.unsorted_segment_max(rows, group, groups)
        replacement = tf.strings.reduce_join(
            tf.RaggedTensor.from_row_lengths(
                tf.fill([tf.reduce_sum(count)], "\ufffd"), tf.cast(count, tf.int64)
            ),
            axis=1,
        )
        invalid = (group_is_byte > 0) & (_utf8_lossy(text) != text)
        text = tf.where(invalid, replacement, text)
        out = tf.strings.unsorted_segment_join(text, group_rows, tokens.nrows())
        return tf.strings.regex_replace(out, "^ ", "")  # Strip(" ", 1, 0)


def _utf8_lossy(raw):
    """Bytes -> UTF-8 text, each invalid sequence as U+FFFD (Rust's from_utf8_lossy)."""
    import tensorflow as tf

    return tf.strings.unicode_transcode(
        raw, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
