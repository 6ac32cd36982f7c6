"""Which family reads a file of a runtime's format, found by the name the file gives.

A GGUF file names its architecture (`general.architecture`: `"llama"`,
`"gemma2"`, ...); `keras_recipes.export.load_gguf` builds the model through
the loader a family registered under that name, so `export/` never imports a
family. Each family registers in its package's `__init__` (which Keras's
import runs, see `keras_recipes._registry`).
"""

from __future__ import annotations

from collections.abc import Callable

_GGUF_LOADERS: dict[str, Callable] = {}


def register_gguf_loader(architecture: str, loader: Callable) -> None:
    """`loader(fields, tensors, path) -> model` reads GGUF files of `architecture`.

    `fields` is the file's metadata (`{key: value}`), `tensors` maps each
    tensor's GGUF name to a function returning it as a float32 array in
    (out, in) layout, `path` is the file, for error messages.
    """
    _GGUF_LOADERS[architecture] = loader


def gguf_loader(architecture: str) -> Callable:
    """The loader registered for `architecture`; a ValueError naming the known ones if none."""
    import keras  # noqa: F401  (its import registers the package's families)

    if architecture not in _GGUF_LOADERS:
        raise ValueError(
            f"GGUF architecture {architecture!r}: no model family here reads it "
            f"(known: {sorted(_GGUF_LOADERS)})."
        )
    return _GGUF_LOADERS[architecture]
