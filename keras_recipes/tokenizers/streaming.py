"""Text of a growing id sequence, a piece at a time, for printing tokens as they come.

Decoding the whole sequence again at every new token costs time that grows
with the text, and slicing one token's piece out alone gets spaces wrong:
SentencePiece writes a word's leading space as part of its piece ("▁upon")
and `decode` drops it at the start of a text, and a character outside ASCII
may arrive as several byte tokens. `IncrementalDecoder` decodes a short
window instead, the last token already shown plus the new ones, and hands
out what the window adds to the text it had before: the leading space comes
out right because the window starts before it, and nothing is handed out
while the text ends inside a character (decoded as U+FFFD) until the
character is complete. This is how Hugging Face's text-generation-inference
streams text; it needs only the tokenizer's own `decode`, so it works for
every tokenizer here (SentencePiece, llama2.c `tokenizer.bin`,
`tokenizer.json`).
"""

from __future__ import annotations

from collections.abc import Iterable

REPLACEMENT = "\ufffd"  # what `decode` gives for an incomplete UTF-8 character
CONTEXT = 4  # tokens of the prompt a first window starts with


class IncrementalDecoder:
    """Hands out the new text of a growing sequence of token ids.

    The text handed out, joined, is what `tokenizer.decode` gives for the
    new ids after `ids`: `decode(ids) + "".join(pieces) + finish()` equals
    `decode(ids + new ids)` for text the tokenizer encodes (valid UTF-8).
    Each `push` decodes only a few tokens, so printing N tokens costs O(N).

    Args:
        tokenizer: anything with `decode(ids) -> str` (the tokenizers in
            `keras_recipes.tokenizers`).
        ids: the ids whose text is already shown (the prompt, BOS included).

    Examples:

    >>> from keras_recipes.tokenizers import Llama2cTokenizer
    >>> pieces = [b"<unk>", b"<s>", b"</s>", b"Once", b" upon", b" a", b" time"]
    >>> tokenizer = Llama2cTokenizer(pieces, [0.0] * len(pieces))
    >>> decoder = IncrementalDecoder(tokenizer, [1, 3])
    >>> [decoder.push([token]) for token in (4, 5)], decoder.push([6]) + decoder.finish()
    ([' upon', ' a'], ' time')
    """

    def __init__(self, tokenizer, ids: Iterable[int] = ()):
        self.tokenizer = tokenizer
        self.ids = [int(token) for token in ids]
        self._read = len(self.ids)  # the text of ids[:read] is handed out
        self._prefix = max(self._read - CONTEXT, 0)  # where the window starts

    def push(self, new_ids: Iterable[int]) -> str:
        """Adds `new_ids`; returns the text they complete ("" while a character is unfinished)."""
        self.ids.extend(int(token) for token in new_ids)
        shown = self.tokenizer.decode(self.ids[self._prefix : self._read])
        text = self.tokenizer.decode(self.ids[self._prefix :])
        if len(text) <= len(shown) or text.endswith(REPLACEMENT):
            return ""
        self._read = len(self.ids)
        self._advance_window()
        return text[len(shown) :]

    def _advance_window(self) -> None:
        """Starts the next window at the last shown token that decodes to a visible character.

        A window that starts with whitespace pieces loses them (SentencePiece
        drops the spaces at the start of a text), so a run of space tokens
        keeps the window's start at the token before it.
        """
        for start in range(self._read - 1, self._prefix, -1):
            text = self.tokenizer.decode(self.ids[start : start + 1])
            if text and not text[0].isspace():
                self._prefix = start
                return

    def finish(self) -> str:
        """The text still held back (an unfinished character at the end, as `decode` writes it)."""
        shown = self.tokenizer.decode(self.ids[self._prefix : self._read])
        text = self.tokenizer.decode(self.ids[self._prefix :])
        self._read = len(self.ids)
        self._advance_window()
        return text[len(shown) :]
