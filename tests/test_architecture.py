"""The import walk: what docs/architecture.md claims about imports, checked.

Every `import` in the package is read from the source (function-local ones
included, since they hide cycles as well as any other), resolved to a
module of the package, and the graph must have no cycle and no arrow that
points up the layering of docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "keras_recipes"
FAMILIES = ("llama", "gemma")
# room -> the rooms it may not import (arrows point down).
FORBIDDEN = {
    "layers": ("causal_lm", *FAMILIES, "export", "serving", "cli", "embeddings", "seq2seq"),
    "causal_lm": (*FAMILIES, "export", "serving", "cli"),
    "tokenizers": ("causal_lm", *FAMILIES, "export", "serving", "cli"),
    "export": (*FAMILIES, "cli"),
    "serving": (*FAMILIES, "export", "cli"),
    **{family: ("export", "serving", "cli") for family in FAMILIES},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, modules: dict) -> set[str]:
    """The package's modules that `name` imports (the deepest that exists)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target.startswith("keras_recipes") and target != name:
                found.add(target)
                break
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    # `from keras_recipes.x import y` where y is a name in x's __init__ resolves to x;
    # a submodule importing its own package's __init__ is Python's normal start-up
    # order only when that __init__ does not import the submodule back (the cycle check).
    return graph


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_walk_sees_function_local_imports():
    graph = import_graph()
    # cli.py imports most of the package inside its command functions.
    assert "keras_recipes.causal_lm.generation" in graph["keras_recipes.causal_lm.base"]
    assert len(graph["keras_recipes.cli"]) > 5


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_can_fail():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_no_arrow_points_up(room):
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if _room(module) == room
        for target in targets
        if _room(target) in FORBIDDEN[room]
    )
    assert not upward, f"{room} imports what sits above it: {upward}"


def test_nothing_imports_cli():
    importers = sorted(m for m, targets in import_graph().items() if "keras_recipes.cli" in targets)
    assert not importers


def _table_rows() -> dict[str, list[str]]:
    """docs/architecture.md's "What each part holds": part -> the file names in its row."""
    import re

    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    rows = {}
    for line in text.splitlines():
        match = re.match(r"\| `([\w/.]+)` \| (.*) \|$", line)
        if match:
            rows[match.group(1)] = re.findall(r"`([\w/]+\.py|[\w]+/)`", match.group(2))
    return rows


def test_architecture_table_names_only_files_that_exist():
    missing = []
    for part, names in _table_rows().items():
        if not (PACKAGE / part).exists():
            missing.append(part)
        if part.endswith("/"):  # a folder's row names the files in it
            missing += [f"{part}{name}" for name in names if not (PACKAGE / part / name).exists()]
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def test_every_top_level_part_has_a_row():
    rows = _table_rows()
    parts = {
        p.name + ("/" if p.is_dir() else "")
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py")
        or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert not sorted(parts - set(rows)), "parts without a row in docs/architecture.md"


# install_requires name -> the module it provides.
_MODULE_OF = {
    "tensorflow-text": "tensorflow_text",
    "tensorflow-serving-api": "tensorflow_serving",
    "ai-edge-litert": "ai_edge_litert",
    "keras-hub": "keras_hub",
}


def _install_requires() -> list[str]:
    import configparser
    import re

    config = configparser.ConfigParser()
    config.read(PACKAGE.parent / "setup.cfg")
    lines = config["options"]["install_requires"].strip().splitlines()
    return [re.split(r"[<>=!~ ;\[]", line.strip())[0] for line in lines if line.strip()]


def test_every_install_requirement_is_imported():
    """A dependency every user installs is imported by the package or its recipes."""
    sources = [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "recipes").glob("*.py")]
    imported = set()
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    unused = [
        name
        for name in _install_requires()
        if _MODULE_OF.get(name, name.replace("-", "_")) not in imported
    ]
    assert not unused, f"install_requires lists packages nothing imports: {unused}"


def test_keras_nlp_is_keras_hub_under_its_old_name():
    keras_nlp = pytest.importorskip("keras_nlp")
    import keras_hub

    assert keras_nlp.models.LlamaBackbone is keras_hub.models.LlamaBackbone
