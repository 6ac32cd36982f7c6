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

TensorFlow reads `TF_XLA_FLAGS` once, when its runtime starts (the first
op or device query), so this must run before that: importing
`keras_recipes` does it, and `import tensorflow` / `import keras` before
it is fine as long as no TensorFlow op has run yet.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import warnings

ENVIRONMENT = "KERAS_RECIPES_XLA_CACHE"
DIRECTORY_FLAG = "--tf_xla_persistent_cache_directory"
OFF = ("0", "off", "false", "no")


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

    Returns:
        The folder in use (the user's own if `TF_XLA_FLAGS` named one), or
        None when turned off or when the folder cannot be created or written
        (then with a `RuntimeWarning`: TensorFlow would fail every compiled
        call that tries to save into it).

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
    for flag in flags.split():
        if flag.startswith(DIRECTORY_FLAG + "="):
            return flag.partition("=")[2] or None
    directory = xla_cache_directory(environ)
    if directory is None:
        return None
    # TensorFlow fails the compiled call itself when it cannot write an entry.
    try:
        os.makedirs(directory, exist_ok=True)
        writable = os.access(directory, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        warnings.warn(
            f"keras_recipes: cannot write XLA's compilation cache folder {directory}; "
            f"compiling without a cache. Set {ENVIRONMENT} to a writable folder, or to 0.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    environ["TF_XLA_FLAGS"] = f"{flags} {DIRECTORY_FLAG}={directory}".strip()
    return directory
