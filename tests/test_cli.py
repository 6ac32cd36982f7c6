"""The keras-recipes command: help, version, recipe listing, quiet start-up."""

import subprocess
import sys

from runs import run_cli

from keras_recipes import __version__, cli


def test_help_lists_subcommands_without_loading_tensorflow():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "recipes" in result.stdout and "optimizers" in result.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from keras_recipes import cli; cli.build_parser(); "
            "print('tensorflow' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.stdout.strip() == "False"


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"keras-recipes {__version__}"


def test_recipes_lists_every_script_with_a_description():
    rows = cli.recipe_summaries()
    scripts = sorted(p.name for p in cli.RECIPES_DIR.glob("*.py"))
    assert [name for name, _ in rows] == scripts
    assert all(summary for _, summary in rows), rows
    result = run_cli("recipes")
    assert result.returncode == 0
    for name in scripts:
        assert name in result.stdout


def test_optimizers_subcommand_is_quiet_and_lists_names():
    result = run_cli("optimizers")
    assert result.returncode == 0, result.stderr
    names = result.stdout.split()
    assert {"sgd", "adam", "nadam"} <= {n.lower() for n in names}
    assert "cuda" not in result.stderr.lower() and "oneDNN" not in result.stderr
