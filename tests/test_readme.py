"""README runs as written: its two set-up commands, then every other block, top to bottom.

README is the only copy of its snippets: the tests read its fenced `python`
and `bash` blocks and run them in order in a scratch folder, each Python
block in a fresh interpreter (so a block that leans on an earlier block's
names fails), each shell block with `bash -e`. `docker` and `curl` lines are
not run (TF Serving is not installable here); the tests check that each
names a model that README exports, and push each curl body through that
export's signature instead. The set-up commands install things and run for
minutes, so the main job is stood in for by its `--quick` run with the
default context length, run from the scratch folder so that `runs/` and
`saved_models/` land there.

The fast suite runs the quick blocks; `pytest -m slow` runs all of them
(`SLOW_SECTIONS` names the long ones). Every command the main job and the
blocks print as a next step ("Generate more: ...") runs too.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

# The main job, as set-up command 1 runs it, at --quick sizes (the default
# context of 128 tokens, so README's --max-new-tokens fit as they would).
MAIN_JOB_STAND_IN = ("recipes/llama_tiny.py", "--quick", "--seq-len", "128")
# Sections whose blocks take longest; `pytest -m slow` runs them. No fast
# block may use a file that only a slow block writes.
SLOW_SECTIONS = (
    "Chat with a real checkpoint",
    "Fine-tune a checkpoint: LoRA, loss on the answers only",
    "Training: one process, or several (tf.distribute)",
    "Word embeddings",
    "Sequence models",
    "Deploy: TF Serving and TFLite",
    "Deploy: llama.cpp (GGUF) and LiteRT-LM",
)
# Seconds for the stand-in plus the blocks: fast ones, then all of them. On
# 2026-11-30, 2 cores under a load average of 2.5-5 from other work, the fast
# tests of this file took 80-125 s and the slow one 275 s.
FAST_BUDGET_S = 300
ALL_BUDGET_S = 900
NEXT_STEP = re.compile(r"^(?:Generate more: |  )((?:keras-recipes|docker|curl) .+)$", re.M)


def readme_commands():
    text = README.read_text()
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
    assert script == MAIN_JOB_STAND_IN[0]


# ------------------------------------------------------------ the blocks


@dataclass
class Block:
    """One fenced block of README, under its nearest heading."""

    section: str
    language: str  # "python" or "bash"
    code: str
    line: int  # of the opening fence, 1-based

    @property
    def slow(self) -> bool:
        return self.section in SLOW_SECTIONS

    def commands(self) -> list[str]:
        """A shell block's commands (continuations joined), docker and curl lines aside."""
        joined = re.sub(r"\\\n\s*", " ", self.code)
        return [
            line
            for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith(("docker ", "curl ", "#"))
        ]

    def serving_lines(self) -> list[str]:
        joined = re.sub(r"\\\n\s*", " ", self.code)
        return [line for line in joined.splitlines() if line.startswith(("docker ", "curl "))]


def readme_blocks() -> list[Block]:
    """Every fenced python/bash block after "## Set up"'s two commands, in order."""
    blocks, section, fence = [], None, None
    for number, line in enumerate(README.read_text().splitlines(), start=1):
        if fence is None and line.startswith("#"):
            section = line.lstrip("#").strip()
        elif fence is None and line.startswith("```"):
            fence = (line[3:].strip() or "bash", number, [])
        elif fence is not None and line.startswith("```"):
            language, start, lines = fence
            fence = None
            if section == "Set up":
                continue
            assert language in ("python", "bash", "sh"), f"README.md:{start}: ```{language}"
            blocks.append(
                Block(
                    section, "python" if language == "python" else "bash", "\n".join(lines), start
                )
            )
        elif fence is not None:
            fence[2].append(line)
    assert fence is None, "README.md ends inside a code block"
    return blocks


def environment() -> dict:
    """`python` and `keras-recipes` of this interpreter first on PATH; TensorFlow quiet."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "KERAS_BACKEND": "tensorflow",
    }


def run_block(block: Block, scratch: Path, deadline: float) -> str:
    """Runs one block in `scratch`; returns its output. Fails with the output if it fails."""
    if block.language == "python":
        script = scratch / f"readme_line_{block.line}.py"
        script.write_text(block.code + "\n")
        argv = [sys.executable, script.name]
    else:
        argv = ["bash", "-euo", "pipefail", "-c", "\n".join(block.commands())]
    timeout = max(1.0, deadline - time.monotonic())
    try:
        done = subprocess.run(
            argv, cwd=scratch, env=environment(), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(
            f"README.md:{block.line} ({block.section}) ran out of the time budget: {expired}"
        )
    output = done.stdout + done.stderr
    assert done.returncode == 0, (
        f"README.md:{block.line} ({block.section}) failed:\n{output[-6000:]}"
    )
    return output


def run_main_job_stand_in(scratch: Path) -> str:
    script, *flags = MAIN_JOB_STAND_IN
    done = subprocess.run(
        [sys.executable, str(ROOT / script), *flags],
        cwd=scratch,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


# ------------------------------------------- what docker and curl lines name


def docker_models(line: str) -> dict[str, Path | None]:
    """`{model name: host folder}` a `docker run` line serves (a models.config: the names in it)."""
    words = shlex.split(line.replace("$PWD", "."))
    mount = words[words.index("-v") + 1]
    host, _, target = mount.rpartition(":")
    env = dict(w.split("=", 1) for w in words if w.startswith("MODEL_NAME="))
    if "MODEL_NAME" in env:
        assert target == f"/models/{env['MODEL_NAME']}", line
        return {env["MODEL_NAME"]: Path(host)}
    assert any(w.startswith("--model_config_file=") for w in words), line
    return {None: Path(host)}


def curl_request(line: str) -> tuple[str, dict | None]:
    """The model a curl line asks, and its JSON body (None for a GET)."""
    words = shlex.split(line)
    model = re.search(r"/v1/models/([\w-]+)", words[-1]).group(1)
    body = json.loads(words[words.index("-d") + 1]) if "-d" in words else None
    return model, body


def newest_version(model_dir: Path) -> Path:
    versions = [p for p in model_dir.iterdir() if p.name.isdigit()]
    assert versions, f"no version folder in {model_dir}"
    return max(versions, key=lambda p: int(p.name))


def predict(version_dir: Path, body: dict):
    """What TF Serving's REST :predict does with `body`, done on the SavedModel in Python."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the SentencePiece ops of generate_text)

    signature = tf.saved_model.load(str(version_dir)).signatures[
        body.get("signature_name", "serving_default")
    ]
    specs = signature.structured_input_signature[1]
    if "instances" in body:  # row format: one dict (or one value) per example
        rows = body["instances"]
        if isinstance(rows[0], dict):
            inputs = {key: [row[key] for row in rows] for key in rows[0]}
        else:
            (name,) = specs
            inputs = {name: rows}
    else:  # columnar format
        inputs = body["inputs"]
    return signature(**{k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()})


def check_serving_lines(lines: list[str], scratch: Path) -> None:
    """Each docker line mounts an export that exists; each curl body runs on its model."""
    served: dict[str, Path] = {}
    for line in lines:
        if line.startswith("docker "):
            for name, host in docker_models(line).items():
                host = host if host.is_absolute() else scratch / host
                if name is None:  # a models.config: every model it lists, under host
                    config = (host / "models.config").read_text()
                    for listed in re.findall(r'name: "([\w-]+)"', config):
                        served[listed] = host / listed
                else:
                    served[name] = host
    for line in lines:
        if line.startswith("curl "):
            model, body = curl_request(line)
            assert model in served, f"{line}\nasks {model}, which no docker line serves"
            version = newest_version(served[model])
            assert (version / "saved_model.pb").is_file(), version
            if body is not None:
                predict(version, body)


def run_next_steps(output: str, scratch: Path) -> int:
    """Runs the `keras-recipes ...` commands `output` prints as next steps; checks docker/curl."""
    steps = NEXT_STEP.findall(output)
    for command in steps:
        if command.startswith("keras-recipes "):
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=scratch,
                env=environment(),
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
    check_serving_lines([s for s in steps if not s.startswith("keras-recipes ")], scratch)
    return len(steps)


# ------------------------------------------------------------------ tests


def test_every_curl_line_asks_a_model_that_readme_exports():
    blocks = readme_blocks()
    exported = set()
    for block in blocks:
        code = "\n".join(block.commands()) if block.language == "bash" else block.code
        exported |= set(re.findall(r"saved_models/([\w-]+)\"?(?:[\s,)]|$)", code))
    served = {}
    for block in blocks:
        for line in block.serving_lines():
            if line.startswith("docker "):
                served.update(docker_models(line))
            else:
                model, _ = curl_request(line)
                assert model in exported, f"README curl asks {model!r}; README never exports it"
                assert model in served or None in served, f"no docker line before {line}"


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    """A scratch folder where the main job's stand-in ran; its printed output."""
    scratch = tmp_path_factory.mktemp("readme")
    return scratch, run_main_job_stand_in(scratch)


@pytest.mark.heavy  # the main job's stand-in trains and exports: pytest -m "heavy and not slow"
def test_main_job_next_steps_run_on_what_it_wrote(main_job):
    scratch, output = main_job
    assert "Generate more: keras-recipes llama generate" in output
    assert run_next_steps(output, scratch) == 3  # generate, docker run, curl


def run_blocks(blocks: list[Block], scratch: Path, budget_s: float) -> dict[int, float]:
    deadline, seconds = time.monotonic() + budget_s, {}
    for block in blocks:
        started = time.monotonic()
        output = run_block(block, scratch, deadline)
        run_next_steps(output, scratch)
        seconds[block.line] = round(time.monotonic() - started, 1)
    print(f"README block seconds by line: {seconds}")
    return seconds


@pytest.mark.heavy
def test_readme_fast_blocks_run_in_order(main_job):
    scratch, _ = main_job
    fast = [b for b in readme_blocks() if not b.slow]
    assert {b.language for b in fast} == {"python", "bash"}
    run_blocks(fast, scratch, FAST_BUDGET_S)


@pytest.mark.slow
def test_readme_runs_top_to_bottom(tmp_path):
    """The "Done when" of issue 19: set-up command 1, then every block, nothing edited."""
    run_next_steps(run_main_job_stand_in(tmp_path), tmp_path)
    # Set-up command 1 again: the main job keeps its model and says how to train anew.
    again = run_main_job_stand_in(tmp_path)
    assert "nothing to train" in again and "--overwrite" in again
    assert run_next_steps(again, tmp_path) == 1
    blocks = readme_blocks()
    run_blocks(blocks, tmp_path, ALL_BUDGET_S)
    check_serving_lines([line for b in blocks for line in b.serving_lines()], tmp_path)
