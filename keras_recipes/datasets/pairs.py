"""Sentence pairs for translation: the Anki / Tatoeba tab-separated format.

The bilingual files of https://www.manythings.org/anki/ (`spa.txt` in
`spa-eng.zip`, `fra.txt`, `deu.txt`, ...; the data of the keras.io and
TensorFlow translation tutorials) hold one pair per line,
`English<TAB>Other language`. Files from 2019 on add a third column, the
Tatoeba attribution (`CC-BY 2.0 (France) Attribution: tatoeba.org #... `),
which `read_pairs` reads past. An English sentence with several
translations appears once per translation.
"""

from __future__ import annotations

import os
from pathlib import Path

from keras_recipes._text import format_lines, read_text_file


def read_pairs(path: str | os.PathLike, encoding: str = "utf-8-sig") -> list[tuple[str, str]]:
    """Reads `source<TAB>target[<TAB>attribution]` lines into `(source, target)` pairs.

    Two or three tab-separated columns per line (the third, Tatoeba's
    attribution, is ignored); blank lines are skipped; whitespace around
    each sentence is stripped. Any other line is an error that names the
    line, so a file in the wrong format fails before any training.

    Args:
        path: path of the file (e.g. `spa-eng/spa.txt`).
        encoding: str. Defaults to `"utf-8-sig"` (UTF-8, a leading byte-order
            mark dropped).

    Returns:
        A list of `(source, target)` str pairs, in file order.

    Examples:

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "spa.txt"
    >>> _ = path.write_text("Go.\\tVe.\\nHi.\\tHola.\\tCC-BY 2.0 (France) #538123\\n")
    >>> read_pairs(path)
    [('Go.', 'Ve.'), ('Hi.', 'Hola.')]
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Sentence-pair file {str(path)!r} does not exist; check the path.")
    pairs = []
    for number, line in enumerate(format_lines(read_text_file(path, encoding)), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) not in (2, 3):
            raise ValueError(
                f"{path}:{number}: {line[:80]!r} has {len(fields)} tab-separated "
                f"column{'s' if len(fields) != 1 else ''}; expected 2 or 3: "
                "source<TAB>target, optionally <TAB>attribution (the Anki/Tatoeba "
                "format). Separate the columns with tabs, not spaces."
            )
        source, target = fields[0].strip(), fields[1].strip()
        if not source or not target:
            side = "source (first column)" if not source else "target (second column)"
            raise ValueError(f"{path}:{number}: the {side} is empty in {line[:80]!r}.")
        pairs.append((source, target))
    if not pairs:
        raise ValueError(f"Sentence-pair file {str(path)!r} holds no source<TAB>target lines.")
    return pairs
