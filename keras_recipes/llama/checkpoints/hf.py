"""Hugging Face LLaMA checkpoints: config.json + (sharded) safetensors, `LlamaForCausalLM` names.

Tensor names map one to one onto the canonical names of `weights`, and
config.json onto a `LlamaConfig`. `load_hf` checks the config's fields and
every tensor's name and shape before it builds a model; `save_hf` replaces
the folder's weights and config together, atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from keras_recipes._finite import check_finite
from keras_recipes._io import atomic_folder, umask
from keras_recipes.llama.checkpoints.errors import CheckpointError
from keras_recipes.llama.checkpoints.safetensors_files import (
    SAFETENSORS_DTYPES,
    _inside_folder,
    _is_int,
    _read_json,
    hf_safetensors_files,
    read_safetensors_header,
)
from keras_recipes.llama.checkpoints.weights import (
    StoredTensor,
    _iter_canonical_names,
    _permuted,
    assign_tensors,
    model_tensors,
)

HF_LAYER_NAMES = {
    "input_layernorm": "attention_norm",
    "self_attn.q_proj": "attention.wq",
    "self_attn.k_proj": "attention.wk",
    "self_attn.v_proj": "attention.wv",
    "self_attn.o_proj": "attention.wo",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "feed_forward.w1",
    "mlp.down_proj": "feed_forward.w2",
    "mlp.up_proj": "feed_forward.w3",
}
HF_TOP_NAMES = {
    "model.embed_tokens.weight": "tok_embeddings.weight",
    "model.norm.weight": "norm.weight",
    "lm_head.weight": "output.weight",
}


def hf_to_canonical_name(name: str) -> str | None:
    """`model.layers.3.mlp.up_proj.weight` -> `layers.3.feed_forward.w3.weight`."""
    if name in HF_TOP_NAMES:
        return HF_TOP_NAMES[name]
    parts = name.split(".")
    if len(parts) >= 5 and parts[:2] == ["model", "layers"] and parts[-1] == "weight":
        kind = ".".join(parts[3:-1])
        if kind in HF_LAYER_NAMES:
            return f"layers.{parts[2]}.{HF_LAYER_NAMES[kind]}.weight"
    return None


def canonical_to_hf_name(name: str) -> str:
    for hf, ours in HF_TOP_NAMES.items():
        if name == ours:
            return hf
    _, index, *kind, _ = name.split(".")
    inverse = {ours: hf for hf, ours in HF_LAYER_NAMES.items()}
    return f"model.layers.{index}.{inverse['.'.join(kind)]}.weight"


def iter_hf_tensors(directory: str | os.PathLike):
    """Yields (canonical name, `StoredTensor`, file) for each LLaMA tensor, unread.

    The safetensors files are read tensor by tensor with plain file reads
    (the format is an 8-byte header length, a JSON header of dtype, shape
    and byte offsets, then the raw data), never mapped or read whole. Stored dtypes F32, F16, BF16 and F64 are
    read; a tensor whose bytes run past the end of its file is an error
    naming both. Biases, which LLaMA has none of, are refused.
    """
    import ml_dtypes

    for file in hf_safetensors_files(directory):
        header, data_start = read_safetensors_header(file)
        size = file.stat().st_size
        for key, info in header.items():
            name = hf_to_canonical_name(key)
            if name is None:
                if key.endswith(".bias"):
                    raise CheckpointError(
                        f"{file}: tensor {key} is a bias; LLaMA has none, so this model "
                        "cannot represent the checkpoint."
                    )
                continue
            dtype = SAFETENSORS_DTYPES.get(info["dtype"])
            if dtype is None:
                raise CheckpointError(
                    f"{file}: tensor {name} ({key}) has dtype {info['dtype']}; LLaMA "
                    f"weights are floats ({', '.join(SAFETENSORS_DTYPES)})."
                )
            dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
            begin, end = info["data_offsets"]
            shape = tuple(info["shape"])
            if end - begin != int(np.prod(shape)) * np.dtype(dtype).itemsize:
                raise CheckpointError(
                    f"{file}: tensor {key} claims shape {shape} but holds {end - begin} bytes."
                )
            if data_start + end > size:
                raise CheckpointError(
                    f"{file}: tensor {key} runs past the end of the file; it is truncated."
                )
            yield name, StoredTensor(file, data_start + begin, shape, dtype), file


_HF_REQUIRED_SIZES = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
)
_HF_OPTIONAL_SIZES = ("num_key_value_heads", "head_dim", "max_position_embeddings")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_hf_fields(hf, source) -> None:
    """Refuses a config.json whose LLaMA fields are missing or of the wrong type."""
    if not isinstance(hf, dict):
        raise CheckpointError(
            f"{source}: holds a JSON {type(hf).__name__}; a Hugging Face config.json is one "
            "JSON object of fields (model_type, hidden_size, ...)."
        )
    missing = [name for name in _HF_REQUIRED_SIZES if name not in hf]
    if missing:
        raise CheckpointError(
            f"{source}: required field(s) {', '.join(missing)} missing; a LLaMA config.json "
            f"gives each of {', '.join(_HF_REQUIRED_SIZES)}."
        )
    for name in _HF_REQUIRED_SIZES + _HF_OPTIONAL_SIZES:
        value = hf.get(name)
        if (value is not None or name in _HF_REQUIRED_SIZES) and not (_is_int(value) and value > 0):
            raise CheckpointError(
                f"{source}: field {name} is {value!r} ({type(value).__name__}); it must be a "
                "positive integer."
            )
    for name in ("rope_theta", "rms_norm_eps"):
        value = hf.get(name)
        if value is not None and not (_is_number(value) and value > 0):
            raise CheckpointError(
                f"{source}: field {name} is {value!r} ({type(value).__name__}); it must be a "
                "positive number."
            )
    tie = hf.get("tie_word_embeddings")
    if tie is not None and not isinstance(tie, bool):
        raise CheckpointError(
            f"{source}: field tie_word_embeddings is {tie!r}; it must be true or false."
        )
    for name in ("rope_scaling", "rope_parameters"):
        if hf.get(name) is not None and not isinstance(hf[name], dict):
            raise CheckpointError(
                f"{source}: field {name} is {hf[name]!r}; it must be an object or null."
            )


def hf_config_to_llama(hf: dict, source="config.json"):
    """A `LlamaConfig` from a Hugging Face `config.json` dict, or a clear error.

    Raises:
        CheckpointError: naming `source` and the field, for another
            architecture, a missing field, or a field of the wrong type.
    """
    from keras_recipes.llama.model import LlamaConfig

    if not isinstance(hf, dict) or hf.get("model_type") != "llama":
        _check_hf_fields(hf, source)  # A JSON list is reported as such.
        raise CheckpointError(
            f"{source}: model_type is {hf.get('model_type')!r}; load_hf reads LLaMA "
            "checkpoints (model_type 'llama', LlamaForCausalLM)."
        )
    _check_hf_fields(hf, source)
    problems = []
    if hf.get("hidden_act", "silu") != "silu":
        problems.append(f"hidden_act={hf['hidden_act']!r} (LLaMA uses silu)")
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        problems.append("attention_bias/mlp_bias (LLaMA has no biases)")
    n_heads = hf["num_attention_heads"]
    head_dim = hf.get("head_dim")
    if head_dim is not None and head_dim != hf["hidden_size"] // n_heads:
        problems.append(f"head_dim={head_dim} != hidden_size / num_attention_heads")
    scaling = hf.get("rope_scaling")
    rope_theta = hf.get("rope_theta", (hf.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    if not _is_number(rope_theta) or rope_theta <= 0:
        raise CheckpointError(
            f"{source}: field rope_parameters.rope_theta is {rope_theta!r}; it must be a "
            "positive number."
        )
    if scaling:
        kind = scaling.get("rope_type", scaling.get("type"))
        keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
        if kind == "default":
            scaling = None
        elif kind != "llama3":
            problems.append(f"rope_scaling of type {kind!r} (only 'llama3' is supported)")
        elif not all(_is_number(scaling.get(key)) for key in keys):
            raise CheckpointError(
                f"{source}: field rope_scaling of type 'llama3' needs numbers for each of "
                f"{', '.join(keys)}; it has {scaling!r}."
            )
        else:
            scaling = {key: scaling[key] for key in keys}
    if problems:
        raise CheckpointError(f"{source}: this model cannot represent {'; '.join(problems)}.")
    try:
        return LlamaConfig(
            vocab_size=hf["vocab_size"],
            dim=hf["hidden_size"],
            n_layers=hf["num_hidden_layers"],
            n_heads=n_heads,
            n_kv_heads=hf.get("num_key_value_heads") or n_heads,
            hidden_dim=hf["intermediate_size"],
            max_seq_len=hf.get("max_position_embeddings") or 2048,
            rope_theta=float(rope_theta),
            norm_eps=float(hf.get("rms_norm_eps") or 1e-6),
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
            rope_scaling=scaling,
            rope_convention="rotate_half",
        )
    except ValueError as error:
        raise CheckpointError(f"{source}: {error}") from None


def _expected_shape(config, name: str) -> tuple[int, ...] | None:
    """The (out, in) shape of canonical tensor `name` in a model of `config`; None if it has none."""
    d, q_dim = config.dim, config.n_heads * config.head_dim
    kv_dim, hidden = config.n_kv_heads * config.head_dim, config.ffn_hidden_dim
    if name in ("tok_embeddings.weight", "output.weight"):
        return None if name == "output.weight" and config.tie_embeddings else (config.vocab_size, d)
    if name == "norm.weight":
        return (d,)
    parts = name.split(".")
    if len(parts) < 4 or parts[0] != "layers" or not parts[1].isdigit():
        return None
    if int(parts[1]) >= config.n_layers:
        return None
    return {
        "attention_norm": (d,),
        "ffn_norm": (d,),
        "attention.wq": (q_dim, d),
        "attention.wk": (kv_dim, d),
        "attention.wv": (kv_dim, d),
        "attention.wo": (d, q_dim),
        "feed_forward.w1": (hidden, d),
        "feed_forward.w2": (d, hidden),
        "feed_forward.w3": (hidden, d),
    }.get(".".join(parts[2:-1]))


def _check_hf_tensors(directory: Path, config) -> None:
    """Every tensor's name and shape from the safetensors headers, before a model is built.

    A config.json promising more layers or a larger vocabulary than the
    weights hold fails here in milliseconds instead of after allocating
    the model it describes.
    """
    stored = set()
    for name, tensor, file in iter_hf_tensors(directory):
        want = _expected_shape(config, name)
        if want is None:
            if name == "output.weight":
                continue  # A tied checkpoint that stores the classifier anyway.
            raise CheckpointError(f"{file}: unexpected tensor {name} for this config.")
        if tensor.shape != want:
            raise CheckpointError(
                f"{file}: tensor {name} has shape {tensor.shape}, the config needs {want}."
            )
        stored.add(name)
    if len(stored) < 9 * config.n_layers + 2 + (not config.tie_embeddings):
        missing = []
        for name in _iter_canonical_names(config):
            if name not in stored:
                missing.append(name)
                if len(missing) > 5:
                    break
        raise CheckpointError(
            f"{directory}: missing tensors {sorted(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}; the checkpoint is incomplete or its "
            "config.json describes a larger model."
        )


def load_hf(directory: str | os.PathLike, dtype: str | None = None, allow_nonfinite: bool = False):
    """Loads a Hugging Face LLaMA folder (config.json + safetensors) into a `LlamaModel`.

    Reads `model.safetensors` or the shards listed in
    `model.safetensors.index.json`, tensor by tensor (plain reads, never a
    whole file at once), casting bfloat16 / float16 / float32 weights to the
    model's dtype. Tied or untied embeddings, grouped-query attention,
    `rope_theta` and `rope_scaling` of type "llama3" are honoured; the model
    keeps Hugging Face's rotate-half RoPE, so its logits are the checkpoint's.

    Before a model is built, config.json's fields and every tensor's name
    and shape (from the safetensors headers) are checked; files outside the
    folder (an absolute or `..` shard name, a symlink leading out) are
    refused. Weights are checked for NaN and Inf as they are copied.

    Args:
        directory: the checkpoint folder.
        dtype: optional Keras dtype policy for the model (default: Keras's).
        allow_nonfinite: bool. Load NaN or Inf weights instead of refusing
            them. Defaults to False.

    `model = load_hf("path/to/TinyLlama-1.1B")` loads a downloaded
    checkpoint folder, then `model.generate([[1, 450, 4996]],
    max_new_tokens=20)` continues a prompt. `save_hf` writes the same
    layout back (no doctest: a real checkpoint is gigabytes).
    """
    from keras_recipes.llama.model import LlamaModel

    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{directory}: no config.json; not a Hugging Face model folder.")
    _inside_folder(directory, config_path.name, "config file")
    hf = _read_json(config_path, "a Hugging Face config.json is one JSON object of fields.")
    config = hf_config_to_llama(hf, config_path)
    _check_hf_tensors(directory, config)  # A clear error before building a large model.
    model = LlamaModel(config, initializer="zeros", **({"dtype": dtype} if dtype else {}))
    assign_tensors(model, iter_hf_tensors(directory), directory, allow_nonfinite=allow_nonfinite)
    return model


def _special_ids(tokenizer) -> dict:
    """`config.json`'s bos/eos ids: the tokenizer's, else Hugging Face's LLaMA defaults."""
    ids = {"bos_token_id": 1, "eos_token_id": 2}
    for key, attribute in (("bos_token_id", "bos_id"), ("eos_token_id", "eos_id")):
        value = getattr(tokenizer, attribute, None) if tokenizer is not None else None
        if isinstance(value, int) and value >= 0:
            ids[key] = value
    return ids


def save_hf(
    model,
    directory: str | os.PathLike,
    dtype: str = "float32",
    allow_nonfinite: bool = False,
    tokenizer=None,
) -> Path:
    """Writes `model` as a Hugging Face LLaMA folder: config.json + model.safetensors.

    Interleaved-RoPE models (llama2.c) get their wq/wk rows permuted to
    Hugging Face's rotate-half order, so `transformers` and keras-hub compute
    the same logits.

    The folder is replaced as a whole (`keras_recipes._io.atomic_folder`):
    the new files are written into a temporary folder beside it, synced,
    then swapped in, so a reader (or a kill) never sees new weights beside
    an old config. Files of an existing folder that are not weights or
    config (a tokenizer, a README) are kept; its old safetensors shards and
    index are not, so they cannot shadow the new weights.

    Args:
        model: a `LlamaModel`.
        directory: the folder (created if needed).
        dtype: "float32", "float16" or "bfloat16", the stored weight type.
        allow_nonfinite: bool, default False. Write NaN or Inf weights
            (after the cast: a value that overflows float16 counts) instead
            of refusing them, naming the tensor.
        tokenizer: the model's tokenizer (anything with `bos_id` / `eos_id`),
            or None. `config.json`'s `bos_token_id` / `eos_token_id` are its
            ids; without one they are Hugging Face's LLaMA defaults, 1 and 2,
            which a tokenizer trained here does not use (readers such as
            llama.cpp's converter and our chat take them as BOS and a stop id).
    """
    import ml_dtypes
    from safetensors.numpy import save_file

    numpy_dtypes = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
    if dtype not in numpy_dtypes:
        raise CheckpointError(f"save_hf: dtype must be one of {list(numpy_dtypes)}, got {dtype!r}.")
    config = model.config
    directory = Path(directory)
    tensors = model_tensors(model)
    if config.rope_convention == "interleaved":
        tensors = _permuted(tensors, config, "rotate_half")
    state = {
        canonical_to_hf_name(name): np.ascontiguousarray(value.astype(numpy_dtypes[dtype]))
        for name, value in tensors
    }
    check_finite(state.items(), f"save_hf {directory}", allow_nonfinite)
    hf_config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": config.dim,
        "intermediate_size": config.ffn_hidden_dim,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads,
        "head_dim": config.head_dim,
        "vocab_size": config.vocab_size,
        "max_position_embeddings": config.max_seq_len,
        "rope_theta": config.rope_theta,
        "rms_norm_eps": config.norm_eps,
        "tie_word_embeddings": config.tie_embeddings,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": dtype,
        **_special_ids(tokenizer),
    }
    if config.rope_scaling:
        hf_config["rope_scaling"] = {"rope_type": "llama3", **config.rope_scaling}
    with atomic_folder(directory, carry_over=_kept_beside_hf_weights) as tmp:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        # safetensors creates its file 0600 whatever the umask; the house rule is the umask's.
        os.chmod(tmp / "model.safetensors", 0o666 & ~umask())
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2), encoding="utf-8")
    return directory


def _kept_beside_hf_weights(name: str) -> bool:
    """Whether `save_hf` keeps a file of the folder it replaces (not weights, not config)."""
    replaced = ("config.json", "model.safetensors.index.json")
    return name not in replaced and not name.endswith((".safetensors", ".partial"))
