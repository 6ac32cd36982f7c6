"""Reading text and JSON files so that every error names the file and the place.

`read_text_file` decodes with the given encoding, drops a UTF-8 byte-order
mark (a BOM would otherwise glue itself to the first token: `-DOCSTART-`
becomes a word), and turns a decode error into a `ValueError` naming the
file, the line and the byte offset. `format_lines` splits as line-based
formats (CoNLL, TSV) are written: on `\\n` and `\\r\\n` only, never on the
other breaks `str.splitlines` honours (U+2028, form feed, NEL), which may
sit inside a field. `read_json_file` names the file, line and column of
bad JSON.
"""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path


def read_text_file(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """The text of `path`, without a UTF-8 BOM; a decode error names the file and line.

    Examples:

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = path.write_bytes(codecs.BOM_UTF8 + b"hello\\n\\xff")
    >>> read_text_file(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...a.txt, line 2 (byte offset 9): not valid utf-8 text (invalid start byte); ...
    """
    data = Path(path).read_bytes()
    offset = 0
    if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig") and data.startswith(codecs.BOM_UTF8):
        data, offset = data[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{path}, line {line} (byte offset {error.start + offset}): not valid {encoding} "
            f"text ({error.reason}); convert the file to {encoding}, or pass encoding=... "
            "with the one it is in."
        ) from None


def format_lines(text: str) -> list[str]:
    """`text` split on `\\n` and `\\r\\n` only, as line-based data formats are.

    >>> format_lines("a\\u2028b\\tc\\r\\nd\\x0ce\\n")
    ['a\\u2028b\\tc', 'd\\x0ce']
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_json_file(path: str | os.PathLike, encoding: str = "utf-8"):
    """The JSON value in `path`; bad JSON names the file, line and column.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.json"
    >>> _ = path.write_text('{"a": 1,}')
    >>> read_json_file(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...run.json, line 1, column 9: not valid JSON (Expecting property name enclosed in double quotes); ...
    """
    text = read_text_file(path, encoding)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}, line {error.lineno}, column {error.colno}: not valid JSON ({error.msg}); "
            "the file is damaged or not the one expected: restore it, or delete it to let "
            "it be written again."
        ) from None
