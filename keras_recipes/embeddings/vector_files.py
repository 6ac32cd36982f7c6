"""Vector files: word2vec.c's text and binary formats, GloVe text, and a pickle-free archive.

- word2vec format (`read_text`, `read_binary`, `write_word2vec`): a
  `count dim` header line, then one entry per key, `key v1 ... vd` (text)
  or `key ` followed by `dim` little-endian float32 values (binary), as
  word2vec.c, gensim and fastText's `.vec` files have them. GloVe files are
  the text format without the header.
- the archive (`save_archive`, `load_archive`): what `KeyedVectors.save`,
  `Word2Vec.save` and `Doc2Vec.save` write, one `.npz` file (a zip of `.npy`
  arrays) whose `meta` entry is UTF-8 JSON (keys, settings). It is read with
  `numpy.load(..., allow_pickle=False)`: loading it runs no code, unlike
  gensim's `save`, which pickles the model. A gensim pickle is recognized and
  refused naming the opt-in, `load(path, allow_pickle=True)`
  (`gensim_files`), and the pickle-free way out (`load_word2vec_format`).

Every write goes through `keras_recipes._io.atomic_write`: a temporary file
beside the destination, synced, then renamed onto it, so an existing file
survives a failed or killed write whole.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Iterable

import numpy as np

from keras_recipes._io import atomic_write
from keras_recipes.embeddings.gensim_files import is_pickle

ARCHIVE_FORMAT = "keras_recipes.embeddings/1"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_text(
    path: str | os.PathLike,
    limit: int | None = None,
    encoding: str = "utf-8",
    unicode_errors: str = "replace",
    header: bool | None = None,
    datatype=np.float32,
    allow_nonfinite: bool = False,
) -> tuple[list[str], np.ndarray, int | None]:
    """Reads a text vector file: `(keys, vectors, declared_count or None)`.

    A first line of exactly two integers is a `count dim` header (detected
    when `header` is None, required when True, never read when False).
    Words may contain spaces (some GloVe files have them): the last `dim`
    fields of a line are the values. Errors name the file and line; a
    "nan" or "inf" value is one, unless `allow_nonfinite`.
    """
    keys, rows = [], []
    declared = dim = None
    with open(path, "rb") as raw_lines:  # split on "\n" only; decoded line by line
        for number, raw in enumerate(raw_lines, 1):
            line = _decoded_line(raw, path, number, encoding, unicode_errors)
            fields = line.rstrip("\n").rstrip(" ").split(" ")
            if number == 1 and header is not False:
                is_header = len(fields) == 2 and all(f.isdigit() for f in fields)
                if header and not is_header:
                    raise ValueError(
                        f"{path}, line 1: expected a '<count> <dim>' header, got {line[:60]!r}. "
                        "For a file without one (GloVe), pass no_header=True."
                    )
                if is_header:
                    declared, dim = int(fields[0]), int(fields[1])
                    continue
            if not line.strip():
                continue
            if limit is not None and len(keys) >= limit:
                break
            if dim is None:
                dim = len(fields) - 1
                if dim < 1:
                    raise ValueError(f"{path}, line {number}: no vector values after {line!r}.")
            if len(fields) < dim + 1:
                ends = (
                    ""
                    if line.endswith("\n")
                    else "; the file ends inside this line: it is truncated"
                )
                raise ValueError(
                    f"{path}, line {number}: word {fields[0]!r} has {len(fields) - 1} values "
                    f"but the file's vectors have {dim} (inconsistent dimensions{ends})."
                )
            if len(fields) > dim + 1 and _is_number(fields[1]):
                raise ValueError(
                    f"{path}, line {number}: word {fields[0]!r} has {len(fields) - 1} values "
                    f"but the file's vectors have {dim} (inconsistent dimensions)."
                )
            word = " ".join(fields[: len(fields) - dim])
            try:
                vector = np.array(fields[len(fields) - dim :], datatype)
            except ValueError:
                raise ValueError(
                    f"{path}, line {number}: word {word!r} has {len(fields) - 1} fields, not "
                    f"{dim} numbers (inconsistent dimensions or a non-numeric value)."
                ) from None
            if not allow_nonfinite and not np.all(np.isfinite(vector)):
                raise ValueError(
                    f"{path}, line {number}: word {word!r} has a NaN or Inf value; the vectors "
                    "come from a training run that diverged or a damaged file (pass "
                    "allow_nonfinite=True to read them anyway)."
                )
            keys.append(word)
            rows.append(vector)
    if declared is not None:
        wanted = declared if limit is None else min(limit, declared)
        if len(keys) < wanted:
            raise ValueError(
                f"{path}: the header promises {declared} words but the file ends after "
                f"{len(keys)}; it is truncated (an interrupted download or write). "
                "Re-create or re-download it."
            )
        if limit is None and len(keys) > declared:
            raise ValueError(
                f"{path}: the header promises {declared} words but the file holds {len(keys)}."
            )
    if not keys:
        raise ValueError(f"{path}: no word vectors found.")
    return keys, np.stack(rows), declared


def _decoded_line(raw: bytes, path, number: int, encoding: str, errors: str) -> str:
    """One line of a text vector file; a decode error names the file and line."""
    if number == 1 and raw.startswith(b"\xef\xbb\xbf") and "utf" in encoding.lower():
        raw = raw[3:]  # a UTF-8 byte-order mark
    try:
        return raw.decode(encoding, errors).replace("\r\n", "\n")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}, line {number} (byte {error.start} of the line): not valid {encoding} "
            f"text ({error.reason}); pass encoding=... or unicode_errors='replace'."
        ) from None


def read_binary(
    path: str | os.PathLike,
    limit: int | None = None,
    encoding: str = "utf-8",
    unicode_errors: str = "strict",
    datatype=np.float32,
    allow_nonfinite: bool = False,
) -> tuple[list[str], np.ndarray]:
    """Reads word2vec.c's binary format (with its `count dim` header): `(keys, vectors)`.

    A vector holding NaN or Inf is an error naming the entry and its byte
    offset, unless `allow_nonfinite`.
    """
    with open(path, "rb") as f:
        header = f.readline().split()
        if len(header) != 2 or not all(h.isdigit() for h in header):
            raise ValueError(
                f"{path}: the first line should be '<count> <dim>' in the binary "
                f"word2vec format, got {b' '.join(header)[:60]!r}."
            )
        count, dim = int(header[0]), int(header[1])
        if limit is not None:
            count = min(count, limit)
        keys, vectors = [], np.empty((count, dim), datatype)
        for row in range(count):
            word = bytearray()
            while True:
                ch = f.read(1)
                if ch == b"":
                    raise ValueError(
                        f"{path}: the file ends inside entry {row + 1} of {count}; it is "
                        "truncated or not in the binary word2vec format."
                    )
                if ch == b" ":
                    break
                if ch != b"\n":  # the newline word2vec.c writes after each vector
                    word += ch
            data = f.read(4 * dim)
            if len(data) != 4 * dim:
                raise ValueError(
                    f"{path}: entry {row + 1} ({word.decode(encoding, 'replace')!r}) has "
                    f"{len(data) // 4} of its {dim} values; the file is truncated."
                )
            keys.append(word.decode(encoding, errors=unicode_errors))
            vectors[row] = np.frombuffer(data, "<f4")
            if not allow_nonfinite and not np.all(np.isfinite(vectors[row])):
                raise ValueError(
                    f"{path}, entry {row + 1} (byte offset {f.tell() - 4 * dim}): word "
                    f"{keys[-1]!r} has a NaN or Inf value; pass allow_nonfinite=True to read "
                    "it anyway."
                )
    return keys, vectors


def write_word2vec(
    path: str | os.PathLike,
    entries: Iterable[tuple[object, np.ndarray]],
    total_vec: int,
    vector_size: int,
    binary: bool = False,
    write_header: bool = True,
    prefix: str = "",
    append: bool = False,
    allow_nonfinite: bool = False,
) -> None:
    """Writes `(key, vector)` entries in word2vec.c's text or binary format, atomically.

    A vector holding NaN or Inf is refused (nothing is written) unless
    `allow_nonfinite`.

    Text lines are `key v1 ... vd` with each float32 value written in full
    (`repr`), so a round trip is exact. Binary entries are `key `, the
    little-endian float32 values and a newline (word2vec.c's layout; gensim
    and word2vec.c read it). `append=True` copies the existing file into the
    temporary first, so the file still changes in one step.
    """
    with atomic_write(path) as out:
        if append and os.path.exists(path):
            with open(path, "rb") as old:
                shutil.copyfileobj(old, out)
        if write_header:
            out.write(f"{total_vec} {vector_size}\n".encode())
        for key, vector in entries:
            key = f"{prefix}{key}"
            if not key or any(c.isspace() for c in key):
                raise ValueError(
                    f"Key {key!r} is empty or contains whitespace; the word2vec format "
                    "cannot store it."
                )
            if not allow_nonfinite and not np.all(np.isfinite(vector)):
                raise ValueError(
                    f"{path}: the vector of {key!r} holds NaN or Inf values; nothing was "
                    "written. Retrain (the run diverged) or pass allow_nonfinite=True."
                )
            if binary:
                out.write(key.encode("utf-8") + b" " + vector.astype("<f4").tobytes() + b"\n")
            else:
                # str of a float32: its shortest round-tripping digits, as gensim writes them.
                values = " ".join(str(v) for v in vector.astype(np.float32))
                out.write(f"{key} {values}\n".encode())


def save_archive(
    path: str | os.PathLike,
    meta: dict,
    arrays: dict[str, np.ndarray],
    allow_nonfinite: bool = False,
) -> None:
    """Writes `arrays` and the JSON `meta` to one `.npz` file at exactly `path`, atomically.

    Float arrays holding NaN or Inf are refused unless `allow_nonfinite`.
    """
    from keras_recipes._finite import check_finite

    check_finite(arrays.items(), str(path), allow_nonfinite)
    meta = {"format": ARCHIVE_FORMAT, **meta}
    encoded = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
    for name, array in arrays.items():
        if np.asarray(array).dtype == object:
            raise ValueError(f"Array {name!r} holds Python objects; it would need pickle.")
    with atomic_write(path) as out:
        np.savez(out, meta=encoded, **arrays)


def load_archive(path: str | os.PathLike, kind: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Reads a `save_archive` file: `(meta, arrays)`; refuses pickles, naming the way out.

    Args:
        path: the file.
        kind: the class name the caller expects (`"KeyedVectors"`, `"Word2Vec"`, ...).
    """
    with open(path, "rb") as f:
        magic = f.read(4)
    if is_pickle(path):
        raise ValueError(
            f"{path} is a Python pickle, most likely written by gensim's save(). Unpickling can "
            "run whatever code a file names, so it is refused by default. For a gensim model "
            f"you trust, pass allow_pickle=True: `{kind}.load(path, allow_pickle=True)` reads "
            "gensim's Word2Vec, Doc2Vec and KeyedVectors files (only gensim's classes and numpy "
            "arrays are unpickled). Or, in gensim, write the vectors in word2vec format: "
            "`model.wv.save_word2vec_format('vectors.bin', binary=True)`, then read them with "
            "`KeyedVectors.load_word2vec_format('vectors.bin', binary=True)`."
        )
    if magic != b"PK\x03\x04":
        raise ValueError(
            f"{path} is not a {kind} saved by keras_recipes (a .npz archive). For word2vec.c, "
            "GloVe or fastText .vec files use KeyedVectors.load_word2vec_format or load_vectors."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{path}: the archive is damaged or truncated ({error}); save it again."
        ) from None
    if "meta" not in arrays:
        raise ValueError(f"{path} is a .npz file without keras_recipes' 'meta' entry.")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path}: its 'meta' entry is not UTF-8 JSON ({error}); the archive is damaged, "
            "save it again."
        ) from None
    if meta.get("format") != ARCHIVE_FORMAT:
        raise ValueError(
            f"{path}: unknown archive format {meta.get('format')!r} (this version reads "
            f"{ARCHIVE_FORMAT!r})."
        )
    saved = meta.get("class")
    if saved != kind:
        hint = {
            "Word2Vec": "Word2Vec.load",
            "Doc2Vec": "Doc2Vec.load",
            "KeyedVectors": "KeyedVectors.load",
        }.get(saved, "the class that saved it")
        raise ValueError(f"{path} holds a {saved}, not a {kind}; load it with {hint}.")
    return meta, arrays
