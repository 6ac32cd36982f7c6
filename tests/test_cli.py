"""The keras-recipes command: help, version, recipe listing, quiet start-up."""

import subprocess
import sys

import pytest
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


def test_path_mistakes_are_one_line_on_stderr_not_tracebacks(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    checkpoint = tmp_path / "model.bin"
    checkpoint.write_bytes(b"\0" * 3)
    cases = [
        ["llama", "convert", str(tmp_path / "missing.bin"), str(tmp_path / "o.bin")],
        ["llama", "convert", str(checkpoint), str(tmp_path / "o.bin")],  # truncated header
        ["export", "--checkpoint", str(tmp_path / "missing.keras"), "--out", str(a_file)],
        ["serve", "check", str(a_file)],
        ["llama", "train", "--quick", "--out", str(a_file)],  # --out is a file
    ]
    for argv in cases:
        code = cli.main(argv)
        err = capsys.readouterr().err.strip()
        assert code in (1, 2), (argv, code)
        assert err.startswith("keras-recipes "), (argv, err)
        assert len(err.splitlines()) == 1 and "Traceback" not in err, (argv, err)


def test_unexpected_failures_point_at_debug_which_shows_the_traceback(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("something broke\nsecond line")

    monkeypatch.setattr(cli, "_list_optimizers", broken)
    assert cli.main(["optimizers"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "keras-recipes optimizers: RuntimeError: something broke "
        "(run again with --debug for the traceback)"
    )
    with pytest.raises(RuntimeError, match="something broke"):
        cli.main(["--debug", "optimizers"])
