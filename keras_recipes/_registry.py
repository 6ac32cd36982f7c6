"""Registers the package's Keras classes as soon as Keras is imported.

A `.keras` file names its classes (`keras_recipes>LlamaModel`,
`keras_recipes>RMSNorm`, ...); `keras.models.load_model` finds them only if
the modules that define them have run their
`@keras.saving.register_keras_serializable` decorators. Those modules import
Keras and TensorFlow, which `import keras_recipes` must not (the command
line answers `--help` without them). So `import keras_recipes` only leaves a
note on `sys.meta_path`: when Keras is imported, by anyone and in any order,
the defining modules are imported right after it (about 0.1 s on top of
Keras' seconds), and `load_model` finds every class this package saves.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# The modules holding every `register_keras_serializable` class.
MODULES = (
    "keras_recipes.layers",
    "keras_recipes.llama",
    "keras_recipes.gemma",
    "keras_recipes.seq2seq",
    "keras_recipes.optimizers",
    "keras_recipes.taggers",
)


def register() -> None:
    """Imports `MODULES`; a failure warns instead of breaking `import keras`."""
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001  (keras itself must still import)
            warnings.warn(
                f"keras_recipes could not register the Keras classes of {name} ({error!r}); "
                f"import {name} before loading a .keras file that uses them.",
                stacklevel=2,
            )


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Finds nothing itself; makes `register()` run once Keras is loaded.

    It wraps the loading of `keras` and of this package's submodules. When
    Keras has loaded, `register()` runs at once, unless one of this
    package's modules is still being imported (`import keras_recipes.activations`
    imports Keras half-way through): then it runs as soon as the outermost
    of them has finished, so no registering module meets a half-initialized
    one. A mere `importlib.util.find_spec("keras")` (TensorFlow probes for
    Keras) loads nothing, so the finder stays until Keras is actually executed.
    """

    def __init__(self):
        self._finding = False
        self._importing = 0  # this package's modules being executed, nested
        self._pending = False

    def find_spec(self, fullname, path=None, target=None):
        ours = fullname.startswith("keras_recipes.")
        if (fullname != "keras" and not ours) or self._finding:
            return None
        self._finding = True  # the search below asks this finder again
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_keras(module):
            exec_module(module)
            self._pending = True
            self._maybe_register()

        def exec_ours(module):
            self._importing += 1
            try:
                exec_module(module)
            finally:
                self._importing -= 1
            self._maybe_register()

        spec.loader.exec_module = exec_ours if ours else exec_keras
        return spec

    def _maybe_register(self):
        if self._pending and self._importing == 0:
            self._pending = False
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            register()


def register_when_keras_loads() -> None:
    """`register()` now if Keras is loaded, else right after `import keras`."""
    if "keras" in sys.modules:
        register()
    elif not any(isinstance(f, _RegisterAfterKeras) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterKeras())
