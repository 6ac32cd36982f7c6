"""The `docker run` line that serves an export with TF Serving's official image."""

from __future__ import annotations

from pathlib import Path


def serving_command(base_dir: str | Path) -> str:
    """The `docker run` line that serves `base_dir` (a folder of versions) with TF Serving.

    The model is named after the folder; REST answers on port 8501, gRPC on 8500.

    >>> serving_command("/srv/saved_models/llama_tiny")  # doctest: +NORMALIZE_WHITESPACE
    'docker run -p 8501:8501 -p 8500:8500 -v "/srv/saved_models/llama_tiny:/models/llama_tiny"
    -e MODEL_NAME=llama_tiny tensorflow/serving'
    """
    base_dir = Path(base_dir).resolve()
    return (
        f'docker run -p 8501:8501 -p 8500:8500 -v "{base_dir}:/models/{base_dir.name}" '
        f"-e MODEL_NAME={base_dir.name} tensorflow/serving"
    )
