"""llama2.c's `tokenizer.bin`: a SentencePiece BPE vocabulary with merge scores."""

from __future__ import annotations

import heapq
import struct
from pathlib import Path

from keras_recipes._io import atomic_write


class Llama2cTokenizer:
    """llama2.c's `tokenizer.bin`: a SentencePiece BPE vocabulary with scores.

    The file holds an int32 max token length, then for each token a float32
    merge score, an int32 byte length and the bytes. `encode` and `decode`
    follow llama2.c's `run.c` exactly: a dummy-prefix space before non-empty
    text, UTF-8 code points looked up whole or split into byte-fallback tokens
    `<0xNN>` (id = byte + 3), then greedy merges of the adjacent pair whose
    concatenation has the highest score; decoding drops the leading space of
    the first piece after BOS and turns `<0xNN>` pieces back into raw bytes.

    Args:
        pieces: list of `bytes`, the token strings, indexed by id.
        scores: list of float merge scores, one per piece.
        bos_id: int, default 1. eos_id: int, default 2.

    Examples:

    >>> tok = Llama2cTokenizer.load("tokenizer.bin")      # doctest: +SKIP
    >>> tok.decode(tok.encode("Once upon a time"))        # doctest: +SKIP
    'Once upon a time'
    """

    def __init__(self, pieces, scores, bos_id: int = 1, eos_id: int = 2):
        if len(pieces) != len(scores) or not pieces:
            raise ValueError(
                f"Llama2cTokenizer needs one score per piece and at least one piece; "
                f"got {len(pieces)} pieces and {len(scores)} scores."
            )
        self.pieces = [bytes(p) for p in pieces]
        self.scores = [float(s) for s in scores]
        self.bos_id, self.eos_id = bos_id, eos_id
        self.max_token_length = max(len(p) for p in self.pieces)
        self._ids = {}
        for i, piece in enumerate(self.pieces):
            self._ids.setdefault(piece, i)

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    @classmethod
    def load(cls, path, vocab_size: int | None = None) -> Llama2cTokenizer:
        """Reads `tokenizer.bin`; `vocab_size` (from the model) checks the count."""
        path = Path(path)
        data = path.read_bytes()
        if len(data) < 4:
            raise ValueError(f"{path}: too short for a llama2.c tokenizer.bin.")
        offset, pieces, scores = 4, [], []
        while offset < len(data):
            if offset + 8 > len(data):
                raise ValueError(f"{path}: truncated at token {len(pieces)} (byte {offset}).")
            score, length = struct.unpack_from("<fi", data, offset)
            offset += 8
            if length < 0 or offset + length > len(data):
                raise ValueError(
                    f"{path}: token {len(pieces)} claims {length} bytes at byte {offset}, "
                    f"past the end of the file ({len(data)} bytes); the file is truncated "
                    "or not a llama2.c tokenizer.bin."
                )
            pieces.append(data[offset : offset + length])
            scores.append(score)
            offset += length
            if vocab_size is not None and len(pieces) == vocab_size:
                break
        if vocab_size is not None and len(pieces) != vocab_size:
            raise ValueError(
                f"{path}: holds {len(pieces)} tokens but the model's vocab_size is "
                f"{vocab_size}; use the tokenizer the checkpoint was trained with."
            )
        return cls(pieces, scores)

    def save(self, path) -> Path:
        """Writes `tokenizer.bin` in llama2.c's format, atomically (`_io.atomic_write`)."""
        path = Path(path)
        body = [struct.pack("<i", self.max_token_length)]
        for piece, score in zip(self.pieces, self.scores, strict=True):
            body.append(struct.pack("<fi", score, len(piece)) + piece)
        with atomic_write(path) as f:
            f.write(b"".join(body))
        return path

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = False) -> list[int]:
        """Token ids of `text`, as `run.c`'s `encode`."""
        raw = text.encode("utf-8")
        tokens = [self.bos_id] if add_bos else []
        if raw:
            tokens.append(self._ids[b" "])
        i = 0
        while i < len(raw):
            # A UTF-8 code point: the lead byte and its continuation bytes.
            j = i + 1
            while j < len(raw) and (raw[j] & 0xC0) == 0x80 and j - i < 4:
                j += 1
            point = raw[i:j]
            if point in self._ids:
                tokens.append(self._ids[point])
            else:
                tokens.extend(byte + 3 for byte in point)
            i = j
        return self._merge(tokens) + ([self.eos_id] if add_eos else [])

    def _merge(self, tokens: list[int]) -> list[int]:
        """run.c's merge loop — always the best-scoring adjacent pair, leftmost on
        ties — with a heap over a linked list instead of a rescan per merge."""
        following = list(range(1, len(tokens))) + [-1]
        preceding = list(range(-1, len(tokens) - 1))
        heap = []

        def push(i):
            j = following[i]
            if i >= 0 and j >= 0:
                merged = self._ids.get(self.pieces[tokens[i]] + self.pieces[tokens[j]])
                if merged is not None:
                    heapq.heappush(heap, (-self.scores[merged], i, tokens[i], tokens[j], merged))

        for i in range(len(tokens) - 1):
            push(i)
        alive = [True] * len(tokens)
        while heap:
            _, i, left, right, merged = heapq.heappop(heap)
            j = following[i]
            if not alive[i] or j < 0 or tokens[i] != left or tokens[j] != right:
                continue  # Stale: one side was merged away since this was pushed.
            tokens[i], alive[j] = merged, False
            following[i] = following[j]
            if following[j] >= 0:
                preceding[following[j]] = i
            push(preceding[i])
            push(i)
        return [token for token, keep in zip(tokens, alive, strict=True) if keep]

    def piece_bytes(self, previous: int, token: int) -> bytes:
        """The bytes `token` adds after `previous`, as `run.c`'s `decode`."""
        piece = self.pieces[token]
        if previous == self.bos_id and piece.startswith(b" "):
            piece = piece[1:]
        if len(piece) == 6 and piece.startswith(b"<0x") and piece.endswith(b">"):
            try:
                return bytes([int(piece[3:5], 16)])
            except ValueError:
                return piece
        return piece

    def decode(self, ids) -> str:
        """Text of a sequence of ids (BOS/EOS dropped), invalid UTF-8 replaced."""
        ids = [int(t) for t in ids]
        out, previous = [], self.bos_id
        for token in ids:
            if token in (self.bos_id, self.eos_id):
                previous = token
                continue
            out.append(self.piece_bytes(previous, token))
            previous = token
        return b"".join(out).decode("utf-8", errors="replace")
