"""The one place a LiteRT `Interpreter` is made for the package's `.tflite` files.

`ai_edge_litert` is imported when a file is opened, not when the package is,
so converting a model needs TensorFlow only; the runtimes (`TFLiteGenerator`,
`TFLiteTranslator`) and `verify_tflite` open their files through
`load_interpreter`.
"""

from __future__ import annotations

import os


def load_interpreter(model_path: str | os.PathLike, num_threads: int | None = None):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(model_path), num_threads=num_threads)
