"""XLA's persistent compilation cache, on by default: the second run skips the compile wait.

`generate` runs XLA-compiled functions. Compiling them costs seconds the
first time a process decodes with a shape (batch size, prompt bucket, cache
window); TensorFlow can keep the compiled executables on disk and load them
in later processes instead (`TF_XLA_FLAGS=--tf_xla_persistent_cache_directory=DIR`,
read by TensorFlow's `DeviceExecutablePersistor` for every `jit_compile=True`
function, CPU included). Importing `keras_recipes` turns this on, in

    $KERAS_RECIPES_XLA_CACHE      if set to a path,
    $XDG_CACHE_HOME/keras-recipes/xla/<tensorflow version>-<CPU hash>/
                                  otherwise (~/.cache when XDG_CACHE_HOME is unset).

The TensorFlow version and a hash of the CPU's model and flags (and of
`XLA_FLAGS`) name the folder, because a cached executable is machine code
for the CPU that compiled it (a home folder shared by machines with and
without AMX must not hand one's code to the other) and TensorFlow keys its
entries by the program only, not by its own version or XLA's options. Entries are a few hundred KB each; delete the folder to
reclaim the space.

Turn it off with `KERAS_RECIPES_XLA_CACHE=0` (or `off`, `false`, `no`). If
`TF_XLA_FLAGS` already names a cache folder, that one is kept.

The cache heals itself, because TensorFlow fails every later compiled call
on a damaged entry ("Read less bytes than requested", "Failed to parse
serialized CpuAotCompilationResult", "Serialized cache key does not
match"): at import, `heal_xla_cache` removes entries that are empty,
truncated, not the entry their name says, or changed since the process that
wrote them recorded their checksum (in `keras_recipes_entries.json`, at
exit), with one warning line; TensorFlow then compiles them again. A folder
that cannot be written, or a disk with less than `MIN_FREE_BYTES` free,
turns the cache off with a warning instead of failing `generate`. A path
with spaces is quoted in `TF_XLA_FLAGS` (TensorFlow's flag parser takes
double quotes); one holding a double quote turns the cache off, saying why.

TensorFlow reads `TF_XLA_FLAGS` once, when its runtime starts (the first
op or device query), so this must run before that: importing
`keras_recipes` does it, and `import tensorflow` / `import keras` before
it is fine as long as no TensorFlow op has run yet.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import json
import os
import shlex
import shutil
import tempfile
import time
import warnings

ENVIRONMENT = "KERAS_RECIPES_XLA_CACHE"
DIRECTORY_FLAG = "--tf_xla_persistent_cache_directory"
OFF = ("0", "off", "false", "no")
MANIFEST = "keras_recipes_entries.json"
ENTRY_GLOB = "xla_compile_cache__*.pb"
MIN_FREE_BYTES = 64 * 2**20
STALE_TEMPORARY_SECONDS = 600  # a younger temporary file may be another process's write


def _tensorflow_version() -> str:
    for distribution in ("tensorflow", "tensorflow-cpu", "tf-nightly"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def _machine_tag(environ) -> str:
    from keras_recipes.hardware import cpu_features, cpu_model

    # XLA_FLAGS change the code XLA emits but not the cache's keys.
    text = cpu_model() + " ".join(sorted(cpu_features())) + environ.get("XLA_FLAGS", "")
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def xla_cache_directory(environ=None) -> str | None:
    """The folder the persistent XLA cache uses, or None when it is turned off.

    Args:
        environ: a mapping of environment variables; default `os.environ`.

    Examples:

    >>> xla_cache_directory({"KERAS_RECIPES_XLA_CACHE": "0"}) is None
    True
    >>> xla_cache_directory({"KERAS_RECIPES_XLA_CACHE": "/tmp/my-xla"})
    '/tmp/my-xla'
    >>> xla_cache_directory({"XDG_CACHE_HOME": "/c"}).startswith("/c/keras-recipes/xla/")
    True
    """
    environ = os.environ if environ is None else environ
    value = environ.get(ENVIRONMENT, "").strip()
    if value.lower() in OFF:
        return None
    if value and value.lower() not in ("1", "on", "true", "yes"):
        return os.path.abspath(os.path.expanduser(value))
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(
        base, "keras-recipes", "xla", f"{_tensorflow_version()}-{_machine_tag(environ)}"
    )


def enable_xla_cache(environ=None) -> str | None:
    """Points TensorFlow's persistent XLA cache at `xla_cache_directory()`.

    Adds `--tf_xla_persistent_cache_directory=DIR` to `TF_XLA_FLAGS` in
    `environ` (default `os.environ`) unless the cache is turned off or the
    variable already names a folder. Called by `import keras_recipes`.

    Before that it heals the folder (`heal_xla_cache`), and at exit it
    records the checksums of the entries this process wrote.

    Returns:
        The folder in use (the user's own if `TF_XLA_FLAGS` named one), or
        None when turned off, or when the folder cannot be written, its
        disk is nearly full or its path cannot be written in `TF_XLA_FLAGS`
        (then with a one-line `RuntimeWarning`: TensorFlow would fail every
        compiled call that tries to save into it).

    Examples:

    >>> env = {"KERAS_RECIPES_XLA_CACHE": "/tmp/xla", "TF_XLA_FLAGS": "--tf_xla_auto_jit=0"}
    >>> enable_xla_cache(env)
    '/tmp/xla'
    >>> env["TF_XLA_FLAGS"]
    '--tf_xla_auto_jit=0 --tf_xla_persistent_cache_directory=/tmp/xla'
    >>> enable_xla_cache({"KERAS_RECIPES_XLA_CACHE": "off"}) is None
    True
    """
    environ = os.environ if environ is None else environ
    flags = environ.get("TF_XLA_FLAGS", "")
    try:
        words = shlex.split(flags)
    except ValueError:
        words = flags.split()
    for flag in words:
        if flag.startswith(DIRECTORY_FLAG + "="):
            return flag.partition("=")[2] or None
    directory = xla_cache_directory(environ)
    if directory is None:
        return None
    if '"' in directory or "\\" in directory:
        reason = f"its folder {directory!r} holds a quote or a backslash"
        return _off(reason + ", which TF_XLA_FLAGS cannot carry", stacklevel=3)
    problem = _unusable(directory)
    if problem:
        return _off(problem, stacklevel=3)
    heal_xla_cache(directory)
    quoted = f'"{directory}"' if any(c.isspace() for c in directory) else directory
    environ["TF_XLA_FLAGS"] = f"{flags} {DIRECTORY_FLAG}={quoted}".strip()
    if environ is os.environ:
        started = time.time()
        atexit.register(record_xla_cache_entries, directory, started)
    return directory


def _off(reason: str, stacklevel: int = 2) -> None:
    warnings.warn(
        f"keras_recipes: XLA's compilation cache is off: {reason}. Set {ENVIRONMENT} to a "
        "writable folder with free space, or to 0 to silence this.",
        RuntimeWarning,
        stacklevel=stacklevel + 1,
    )
    return None


def _unusable(directory: str) -> str | None:
    """Why the cache cannot live in `directory` (TensorFlow would fail the compiled call), or None."""
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        return f"cannot write its folder {directory} ({error.strerror or error})"
    free = shutil.disk_usage(directory).free
    if free < MIN_FREE_BYTES:
        return f"the disk of {directory} has {free / 2**20:.0f} MiB free"
    return None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("a varint runs past the end")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _wire_fields(data: bytes) -> dict:
    """A protobuf message's fields `{number: [value, ...]}`; ValueError where it is cut or garbled."""
    fields, pos = {}, 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, pos = data[pos : pos + width], pos + width
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ValueError(f"wire type {wire}")
        if pos > len(data):
            raise ValueError("a field runs past the end")
        fields.setdefault(number, []).append(value)
    return fields


def entry_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with a cache entry (an `XlaSerializedCacheEntry`), or None.

    Checks what TensorFlow checks before it trusts the entry: it parses,
    its key names the fingerprints and device its file name says, and it
    holds a program and an executable that parse.
    """
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        return "empty"
    try:
        entry = _wire_fields(data)
        key = _wire_fields(entry[1][0])
        for part in (2, 3):  # hlo_module, executable
            if not entry.get(part) or not entry[part][0]:
                return "incomplete"
            _wire_fields(entry[part][0])
    except (KeyError, ValueError) as error:
        return f"truncated or damaged ({error})"
    name = os.path.basename(path)[len("xla_compile_cache__") : -len(".pb")].split("__")
    device = bytes(key.get(3, [b""])[0]).decode("utf-8", "replace")
    said = [str(key.get(1, [0])[0]), str(key.get(2, [0])[0]), device]
    if len(name) != 3 or name != said:
        return "not the entry its name says"
    return None


def _checksum(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _read_manifest(directory: str) -> dict:
    try:
        with open(os.path.join(directory, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
        return manifest if isinstance(manifest, dict) else {}
    except (OSError, ValueError):
        return {}


def heal_xla_cache(directory: str | os.PathLike) -> list[str]:
    """Removes the damaged entries of a cache folder (and stale temporary files); their names.

    An entry is damaged when `entry_problem` finds it so, or when its
    checksum differs from the one its writer recorded. One warning line
    names what was removed; TensorFlow compiles those programs again.
    """
    directory = str(directory)
    manifest = _read_manifest(directory)
    removed = []
    now = time.time()
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return removed
    for name in names:
        path = os.path.join(directory, name)
        try:
            if ".tmp" in name or name.endswith("~"):
                if now - os.path.getmtime(path) > STALE_TEMPORARY_SECONDS:
                    os.remove(path)
                continue
            if not (name.startswith("xla_compile_cache__") and name.endswith(".pb")):
                continue
            problem = entry_problem(path)
            if problem is None and name in manifest and manifest[name] != _checksum(path):
                problem = "changed since it was written"
            if problem is not None:
                os.remove(path)
                removed.append(f"{name} ({problem})")
        except OSError:
            continue
    if removed:
        warnings.warn(
            f"keras_recipes: removed {len(removed)} damaged XLA cache entr"
            f"{'y' if len(removed) == 1 else 'ies'} from {directory}, to be compiled again: "
            f"{'; '.join(removed)}",
            RuntimeWarning,
            stacklevel=2,
        )
    return removed


def record_xla_cache_entries(directory: str, since: float = 0.0) -> None:
    """Records the checksums of the entries written since `since` (at exit, by their writer)."""
    try:
        manifest = _read_manifest(directory)
        changed = False
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            if not (name.startswith("xla_compile_cache__") and name.endswith(".pb")):
                continue
            if name in manifest or os.path.getmtime(path) < since:
                continue
            manifest[name] = _checksum(path)
            changed = True
        if changed:
            from keras_recipes._io import atomic_write

            with atomic_write(os.path.join(directory, MANIFEST), "w") as f:
                json.dump(manifest, f, indent=0)
    except OSError:  # a full or read-only disk: the entries stay, unrecorded
        pass
