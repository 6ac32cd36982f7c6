"""Docstring examples run: no fenced Python block in the package's docstrings.

`pytest --doctest-modules` (setup.cfg) runs every `>>>` example in
`keras_recipes`, but a Markdown code fence is never run, so its code can rot
unseen. Every docstring of a module, class or function (methods and nested
functions included), read from the source with `ast`, must hold its code
examples as doctests; an example that cannot run offline in a second is
prose that names the calls. A fence tagged `python` / `py` / `pycon`, or an
untagged fence whose body parses as Python, fails; shell fences (`docker
run ...`) are fine. An `Examples:` section must hold a `>>>` example.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "keras_recipes"
FENCE = re.compile(r"^[ \t]*```[ \t]*(?P<tag>[\w+-]*)[ \t]*\n(?P<body>.*?)^[ \t]*```", re.M | re.S)
PYTHON_TAGS = {"python", "python3", "py", "pycon", "ipython"}
EXAMPLES = re.compile(r"^[ \t]*Examples?:[ \t]*$", re.M)


def _docstrings(source: str):
    """`(line, name, docstring)` for the module and every class and function in `source`."""
    tree = ast.parse(source)
    nodes = [tree] + [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    for node in nodes:
        docstring = ast.get_docstring(node, clean=True)
        if docstring:
            yield getattr(node, "lineno", 1), getattr(node, "name", "<module>"), docstring


def _is_python(tag: str, body: str) -> bool:
    if tag.lower() in PYTHON_TAGS:
        return True
    if tag or not body.strip():
        return False
    try:
        ast.parse(body)
    except SyntaxError:
        return False
    return True


def fenced_python_blocks(source: str) -> list[str]:
    """`"line name"` of each docstring in `source` that holds a fenced Python block."""
    return [
        f"{line} {name}"
        for line, name, docstring in _docstrings(source)
        for match in FENCE.finditer(docstring)
        if _is_python(match["tag"], match["body"])
    ]


def examples_without_doctest(source: str) -> list[str]:
    """`"line name"` of each docstring whose `Examples:` section has no `>>>` line."""
    return [
        f"{line} {name}"
        for line, name, docstring in _docstrings(source)
        if (section := EXAMPLES.search(docstring)) and ">>>" not in docstring[section.end() :]
    ]


def _package_files() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50, f"expected the package's modules under {PACKAGE}, found {len(files)}"
    return files


def test_no_docstring_in_the_package_holds_a_fenced_python_block():
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{where}"
        for path in _package_files()
        for where in fenced_python_blocks(path.read_text(encoding="utf-8"))
    ]
    assert not found, (
        "Fenced Python blocks in docstrings never run; make each a `>>>` doctest under "
        "`Examples:` (tiny inputs, no network, well under a second) or prose naming the "
        "calls:\n" + "\n".join(found)
    )


def test_every_examples_section_in_the_package_holds_a_doctest():
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{where}"
        for path in _package_files()
        for where in examples_without_doctest(path.read_text(encoding="utf-8"))
    ]
    assert not found, "`Examples:` sections without a `>>>` example:\n" + "\n".join(found)


FENCED_MODULE = '''"""A module.

```python
x = 1
```
"""


class Model:
    """A class."""

    def fit(self):
        """A method.

        Examples:

        ```
        model.fit(x, y)
        ```
        """
'''


@pytest.mark.parametrize(
    "source, found",
    [
        (FENCED_MODULE, ["1 <module>", "12 fit"]),
        (
            'def f():\n    """Serve it:\n\n    ```\n    docker run -p 8501:8501 x\n    ```\n    """\n',
            [],
        ),
        ('def f():\n    """Examples:\n\n    >>> 1 + 1\n    2\n    """\n', []),
        ('def f():\n    """A `python` word and ``code``."""\n', []),
    ],
    ids=["python-fences-found", "shell-fence-allowed", "doctest-allowed", "inline-code"],
)
def test_the_fence_check_finds_python_fences_and_only_them(source, found):
    assert fenced_python_blocks(source) == found


def test_the_examples_check_finds_a_section_without_a_doctest():
    assert examples_without_doctest(FENCED_MODULE) == ["12 fit"]
    assert examples_without_doctest('"""Examples:\n\n>>> 1\n1\n"""\n') == []
