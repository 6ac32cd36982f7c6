"""Import and export of real LLaMA checkpoints: llama2.c `.bin` and Hugging Face.

One file per idea:

- `weights.py`: the canonical tensors both formats are read into (Meta's
  `model.py` names, PyTorch's (out, in) layout), `StoredTensor`, and copying
  tensors into and out of a `LlamaModel` block by block, refusing NaN and Inf.
- `llama2c.py`: llama2.c files, versions 0, 1 and 2 (`load_llama2c`, `save_llama2c`).
- `safetensors_files.py`: the safetensors files of a Hugging Face folder and
  their headers, each checked to lie inside the folder.
- `hf.py`: Hugging Face folders: tensor names, config.json, `load_hf`, `save_hf`.
- `errors.py`: `CheckpointError`, which all of them raise.

Here: `load_checkpoint` / `save_checkpoint`, which pick the format from the
path (a `.keras` file, a llama2.c `.bin`, or a Hugging Face folder), and the
public names of the files above.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from keras_recipes._io import atomic_path
from keras_recipes.llama.checkpoints.errors import CheckpointError
from keras_recipes.llama.checkpoints.hf import (
    HF_LAYER_NAMES,
    HF_TOP_NAMES,
    canonical_to_hf_name,
    hf_config_to_llama,
    hf_to_canonical_name,
    iter_hf_tensors,
    load_hf,
    save_hf,
)
from keras_recipes.llama.checkpoints.llama2c import (
    LLAMA2C_HEADER_BYTES,
    LLAMA2C_MAGIC,
    LLAMA2C_VERSIONS,
    Llama2cHeader,
    iter_llama2c,
    llama2c_file_bytes,
    load_llama2c,
    quantize_q80,
    read_llama2c,
    read_llama2c_header,
    save_llama2c,
    write_llama2c,
)
from keras_recipes.llama.checkpoints.safetensors_files import (
    SAFETENSORS_DTYPES,
    hf_safetensors_files,
    read_safetensors_header,
)
from keras_recipes.llama.checkpoints.weights import (
    StoredTensor,
    assign_tensors,
    canonical_names,
    model_tensors,
    permute_for_interleaved,
    permute_for_rotate_half,
)

__all__ = [
    "HF_LAYER_NAMES",
    "HF_TOP_NAMES",
    "LLAMA2C_HEADER_BYTES",
    "LLAMA2C_MAGIC",
    "LLAMA2C_VERSIONS",
    "SAFETENSORS_DTYPES",
    "CheckpointError",
    "Llama2cHeader",
    "StoredTensor",
    "assign_tensors",
    "canonical_names",
    "canonical_to_hf_name",
    "hf_config_to_llama",
    "hf_safetensors_files",
    "hf_to_canonical_name",
    "iter_hf_tensors",
    "iter_llama2c",
    "llama2c_file_bytes",
    "load_checkpoint",
    "load_hf",
    "load_llama2c",
    "model_tensors",
    "permute_for_interleaved",
    "permute_for_rotate_half",
    "quantize_q80",
    "read_llama2c",
    "read_llama2c_header",
    "read_safetensors_header",
    "save_checkpoint",
    "save_hf",
    "save_llama2c",
    "write_llama2c",
]


def load_checkpoint(path: str | os.PathLike, allow_nonfinite: bool = False):
    """A `LlamaModel` from any checkpoint this package reads, chosen by its form.

    A `.keras` file (saved by Keras / `llama train`), a llama2.c `.bin`, or a
    Hugging Face folder holding `config.json`. NaN or Inf weights are
    refused, naming the tensor, unless `allow_nonfinite=True`.
    """
    import keras

    from keras_recipes.llama.model import LlamaModel

    path = Path(path)
    if path.is_dir():
        return load_hf(path, allow_nonfinite=allow_nonfinite)
    if not path.is_file():
        raise CheckpointError(
            f"No checkpoint at {path}: give a .keras file, a llama2.c .bin, or a Hugging "
            "Face folder with config.json and safetensors."
        )
    if path.suffix == ".keras":
        try:
            model = keras.models.load_model(path)
        except (OSError, ValueError, KeyError, UnicodeDecodeError, zipfile.BadZipFile) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise CheckpointError(
                f"{path} cannot be read as a .keras file ({type(error).__name__}: {first[:200]}); "
                "it is damaged or truncated. Save the model again, or train it again "
                "(keras-recipes llama train --overwrite)."
            ) from None
        if not isinstance(model, LlamaModel):
            raise CheckpointError(f"{path} holds a {type(model).__name__}, not a LLaMA model.")
        if not allow_nonfinite:
            for variable in model.weights:
                if not np.isfinite(np.asarray(variable.numpy(), np.float32)).all():
                    raise CheckpointError(
                        f"{path}: weight {variable.path} holds NaN or Inf values; the model "
                        "comes from a run that diverged. Pass allow_nonfinite=True to load "
                        "it anyway."
                    )
        return model
    return load_llama2c(path, allow_nonfinite=allow_nonfinite)


def save_checkpoint(
    model,
    path: str | os.PathLike,
    llama2c_version: int = 0,
    allow_nonfinite: bool = False,
    tokenizer=None,
) -> Path:
    """Writes `model` in the format `path` names: `.keras`, `.bin` (llama2.c) or a folder (HF).

    NaN or Inf weights are refused, naming the weight, unless `allow_nonfinite=True`.
    `tokenizer` (optional) gives a Hugging Face folder's bos/eos ids (`save_hf`).
    """
    from keras_recipes._finite import check_finite, model_weights

    path = Path(path)
    check_finite(model_weights(model), f"save_checkpoint {path}", allow_nonfinite)
    if path.suffix == ".keras":
        with atomic_path(path, suffix=".keras") as tmp:  # Keras insists on the extension
            model.save(tmp)
        return path
    if path.suffix == ".bin":
        return save_llama2c(model, path, version=llama2c_version, allow_nonfinite=True)
    if path.suffix:
        raise CheckpointError(
            f"{path}: unknown checkpoint format {path.suffix!r}; use .keras, .bin (llama2.c) "
            "or a folder name (Hugging Face)."
        )
    return save_hf(model, path, allow_nonfinite=allow_nonfinite, tokenizer=tokenizer)
