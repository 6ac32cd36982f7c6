"""The `keras-recipes` command.

    keras-recipes --help
    keras-recipes --version
    keras-recipes recipes                 # the runnable scripts, one line each
    keras-recipes optimizers              # every optimizer name get_optimizer takes

Every subcommand's arguments are declared here; the module doing the work is
imported inside its handler, so `--help` answers without loading TensorFlow,
and TensorFlow's start-up log is silenced before it is.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from pathlib import Path

from keras_recipes import __version__

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


def quiet_tensorflow() -> None:
    """Silences TensorFlow's C++ start-up log (set before TF is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_LOG_LEVEL", "3")


def recipe_summaries(recipes_dir: Path = RECIPES_DIR) -> list[tuple[str, str]]:
    """(script name, one-line description) for each recipe, from its docstring."""
    rows = []
    for path in sorted(recipes_dir.glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        fields = dict(
            line.split(":", 1) for line in doc.splitlines() if ":" in line and not line.startswith(" ")
        )
        summary = fields.get("Description", fields.get("Title", "")).strip()
        rows.append((path.name, summary))
    return rows


def _list_recipes(args) -> int:
    if not RECIPES_DIR.is_dir():
        print(
            "No recipes/ folder next to the package: the recipes ship with the source "
            "checkout (git clone, then `pip install -e .`)."
        )
        return 1
    rows = recipe_summaries()
    width = max((len(name) for name, _ in rows), default=0)
    for name, summary in rows:
        print(f"{name:<{width}}  {summary}")
    return 0


def _list_optimizers(args) -> int:
    from keras_recipes.optimizers import available_optimizers

    for name in available_optimizers():
        print(name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-recipes",
        description="Keras 3 / TensorFlow recipes for sequence models and LLMs.",
    )
    parser.add_argument("--version", action="version", version=f"keras-recipes {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    recipes = subparsers.add_parser("recipes", help="list the runnable recipes, one line each")
    recipes.set_defaults(func=_list_recipes)
    optimizers = subparsers.add_parser(
        "optimizers", help="list every optimizer name get_optimizer accepts"
    )
    optimizers.set_defaults(func=_list_optimizers)
    return parser


def main(argv: list[str] | None = None) -> int:
    quiet_tensorflow()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
