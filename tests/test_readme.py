"""README's two set-up commands stay true: CI runs the test one verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands():
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:bash|sh)?\n(.+?)\n```", setup, flags=re.S)


def test_readme_has_exactly_two_setup_commands():
    commands = readme_commands()
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert "pip install" in main_job and "recipes/" in main_job
    assert "pip install" in tests and "pytest" in tests


def test_ci_runs_readme_test_command_verbatim():
    _, tests = readme_commands()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests.strip() in ci_lines


def test_main_job_script_exists():
    main_job, _ = readme_commands()
    script = re.search(r"python3? (recipes/\S+\.py)", main_job).group(1)
    assert (ROOT / script).is_file(), script
