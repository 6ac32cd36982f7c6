"""Hugging Face Gemma 2 checkpoints: config.json + (sharded) safetensors, `Gemma2ForCausalLM` names.

`load_hf` checks config.json's fields and every tensor's name and shape
(from the safetensors headers, through the `safetensors` library's own
reader) before it builds a model; `save_hf` writes config.json and
model.safetensors together, atomically. The Hugging Face layout is
Gemma's own: `q_proj`/`k_proj` rows are in the rotate-half order that
`GemmaModel` uses, so weights copy across transposed, never permuted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from keras import ops

from keras_recipes._io import atomic_folder
from keras_recipes.gemma.model import GemmaConfig, GemmaModel


class GemmaCheckpointError(ValueError):
    """A Gemma checkpoint cannot be read or written as asked."""


# Hugging Face name (within `model.layers.{i}.`) -> (our sub-layer path, transposed).
HF_LAYER_NAMES = {
    "input_layernorm": ("attention_norm.scale", False),
    "self_attn.q_proj": ("attention.wq.kernel", True),
    "self_attn.k_proj": ("attention.wk.kernel", True),
    "self_attn.v_proj": ("attention.wv.kernel", True),
    "self_attn.o_proj": ("attention.wo.kernel", True),
    "post_attention_layernorm": ("post_attention_norm.scale", False),
    "pre_feedforward_layernorm": ("ffn_norm.scale", False),
    "mlp.gate_proj": ("feed_forward.w1.kernel", True),
    "mlp.up_proj": ("feed_forward.w3.kernel", True),
    "mlp.down_proj": ("feed_forward.w2.kernel", True),
    "post_feedforward_layernorm": ("post_ffn_norm.scale", False),
}
HF_TOP_NAMES = {
    "model.embed_tokens.weight": ("tok_embeddings.embeddings", False),
    "model.norm.weight": ("norm.scale", False),
}
_NUMPY_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def model_variables(model: GemmaModel) -> dict:
    """Hugging Face tensor name -> (the model's variable, whether HF stores it transposed)."""

    def find(layer, path):
        *layers, weight = path.split(".")
        for name in layers:
            layer = getattr(layer, name)
        return getattr(layer, weight)

    found = {hf: (find(model, path), t) for hf, (path, t) in HF_TOP_NAMES.items()}
    for i, block in enumerate(model.blocks):
        for kind, (path, transposed) in HF_LAYER_NAMES.items():
            found[f"model.layers.{i}.{kind}.weight"] = (find(block, path), transposed)
    return found


def _check_number(hf, name, source, positive=True, integer=False, required=False):
    value = hf.get(name)
    if value is None and not required:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or (positive and not value > 0):
        what = "a positive integer" if integer else "a positive number"
        raise GemmaCheckpointError(
            f"{source}: field {name} is {value!r} ({type(value).__name__}); it must be {what}."
        )


def hf_config_to_gemma(hf: dict, source="config.json") -> GemmaConfig:
    """A `GemmaConfig` from a Hugging Face Gemma 2 `config.json` dict, or a clear error.

    Raises:
        GemmaCheckpointError: naming `source` and the field, for another
            architecture, a missing or mistyped field, or a feature this
            model does not have (untied embeddings, biases, another layer
            pattern or activation).
    """
    if not isinstance(hf, dict):
        raise GemmaCheckpointError(
            f"{source}: holds a JSON {type(hf).__name__}; a Hugging Face config.json is one "
            "JSON object of fields (model_type, hidden_size, ...)."
        )
    if hf.get("model_type") != "gemma2":
        raise GemmaCheckpointError(
            f"{source}: model_type is {hf.get('model_type')!r}; keras_recipes.gemma.load_hf "
            "reads Gemma 2 checkpoints (model_type 'gemma2', Gemma2ForCausalLM)."
        )
    required = (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "head_dim",
    )
    missing = [name for name in required if name not in hf]
    if missing:
        raise GemmaCheckpointError(
            f"{source}: required field(s) {', '.join(missing)} missing; a Gemma 2 config.json "
            f"gives each of {', '.join(required)}."
        )
    for name in required + ("num_key_value_heads", "max_position_embeddings", "sliding_window"):
        _check_number(hf, name, source, integer=True, required=name in required)
    for name in ("rms_norm_eps", "rope_theta", "query_pre_attn_scalar"):
        _check_number(hf, name, source)
    for name in ("final_logit_softcapping", "attn_logit_softcapping"):
        _check_number(hf, name, source)
    rope = hf.get("rope_parameters") or {}
    if not isinstance(rope, dict):
        raise GemmaCheckpointError(f"{source}: field rope_parameters is {rope!r}; not an object.")
    rope_theta = hf.get("rope_theta", rope.get("rope_theta", 10000.0))
    _check_number({"rope_theta": rope_theta}, "rope_theta", source)
    problems = []
    activation = hf.get("hidden_activation") or hf.get("hidden_act") or "gelu_pytorch_tanh"
    if activation not in ("gelu_pytorch_tanh", "gelu_tanh"):
        problems.append(f"hidden_activation={activation!r} (Gemma 2 uses gelu_pytorch_tanh)")
    if hf.get("attention_bias"):
        problems.append("attention_bias (this model has no biases)")
    if hf.get("tie_word_embeddings", True) is not True:
        problems.append("tie_word_embeddings=false (this model ties the output to the embeddings)")
    scaling = hf.get("rope_scaling") or (
        rope if rope.get("rope_type", "default") != "default" else None
    )
    if scaling and scaling.get("rope_type", scaling.get("type", "default")) != "default":
        problems.append(f"rope scaling {scaling!r} (only plain RoPE)")
    n_layers = hf["num_hidden_layers"]
    window = hf.get("sliding_window")
    expected_types = [
        "sliding_attention" if window is not None and i % 2 == 0 else "full_attention"
        for i in range(n_layers)
    ]
    if hf.get("layer_types") is not None and list(hf["layer_types"]) != expected_types:
        problems.append(
            f"layer_types {hf['layer_types']!r} (Gemma 2 alternates, sliding layers first)"
        )
    if problems:
        raise GemmaCheckpointError(f"{source}: this model cannot represent {'; '.join(problems)}.")
    try:
        return GemmaConfig(
            vocab_size=hf["vocab_size"],
            dim=hf["hidden_size"],
            n_layers=n_layers,
            n_heads=hf["num_attention_heads"],
            n_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
            head_dim=hf["head_dim"],
            hidden_dim=hf["intermediate_size"],
            max_seq_len=hf.get("max_position_embeddings") or 8192,
            rope_theta=float(rope_theta),
            norm_eps=float(hf.get("rms_norm_eps") or 1e-6),
            query_pre_attn_scalar=hf.get("query_pre_attn_scalar", hf["head_dim"]),
            attn_logit_softcap=hf.get("attn_logit_softcapping"),
            final_logit_softcap=hf.get("final_logit_softcapping"),
            sliding_window=window,
        )
    except ValueError as error:
        raise GemmaCheckpointError(f"{source}: {error}") from None


def gemma_to_hf_config(config: GemmaConfig, dtype: str = "float32") -> dict:
    """The Hugging Face `Gemma2Config` fields of `config` (what `save_hf` writes)."""
    return {
        "architectures": ["Gemma2ForCausalLM"],
        "model_type": "gemma2",
        "vocab_size": config.vocab_size,
        "hidden_size": config.dim,
        "intermediate_size": config.hidden_dim,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads,
        "head_dim": config.head_dim,
        "max_position_embeddings": config.max_seq_len,
        "rope_theta": config.rope_theta,
        "rms_norm_eps": config.norm_eps,
        "query_pre_attn_scalar": config.query_pre_attn_scalar or config.head_dim,
        "attn_logit_softcapping": config.attn_logit_softcap,
        "final_logit_softcapping": config.final_logit_softcap,
        "sliding_window": config.sliding_window,
        "layer_types": [
            "sliding_attention" if i in config.sliding_layers() else "full_attention"
            for i in range(config.n_layers)
        ],
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_act": "gelu_pytorch_tanh",
        "attention_bias": False,
        "tie_word_embeddings": True,
        "torch_dtype": dtype,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "bos_token_id": 2,
    }


def _inside(directory: Path, name: str, what: str) -> Path:
    """`directory / name`, refused unless it (through any symlink) stays in the folder."""
    if (
        not isinstance(name, str)
        or not name
        or Path(name).is_absolute()
        or ".." in Path(name).parts
    ):
        raise GemmaCheckpointError(
            f"{directory}: {what} names {name!r}, not a file of the folder; a checkpoint "
            "folder may only refer to its own files."
        )
    file = directory / name
    roots = [directory.resolve()]
    if roots[0].parent.name == "snapshots":  # the Hugging Face hub cache links into blobs/
        roots.append(roots[0].parent.parent / "blobs")
    if not any(file.resolve().is_relative_to(root) for root in roots):
        raise GemmaCheckpointError(
            f"{directory}: {what} {name!r} leads outside the folder (to {file.resolve()}); "
            "copy the file in instead."
        )
    return file


def safetensors_files(directory: Path) -> list[Path]:
    """`model.safetensors`, or the shards `model.safetensors.index.json` names."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(_inside(directory, index.name, "the index").read_text())[
                "weight_map"
            ]
            names = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise GemmaCheckpointError(
                f"{index}: not a shard index ({error!r}); it must be a JSON object whose "
                "weight_map maps each tensor name to its shard file."
            ) from None
        files = [_inside(directory, name, f"shard {name!r} of {index.name}") for name in names]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise GemmaCheckpointError(
                f"{index} names shards that are not in the folder: {missing}."
            )
        return files
    if (directory / "model.safetensors").is_file():
        return [_inside(directory, "model.safetensors", "the weights file")]
    raise GemmaCheckpointError(
        f"{directory}: no model.safetensors or model.safetensors.index.json; a Hugging Face "
        "Gemma 2 folder holds config.json and its safetensors weights."
    )


def _open_tensors(directory: Path, expected: dict):
    """Yields (HF name, tensor getter) for every expected tensor, after checking each header.

    `expected` maps HF names to the shapes the config needs. Unknown
    tensors are refused, except `lm_head.weight` (a tied checkpoint that
    stores its classifier anyway); missing ones are named.
    """
    from safetensors import SafetensorError, safe_open

    seen = {}
    handles = []
    for file in safetensors_files(directory):
        try:
            handle = safe_open(str(file), framework="numpy")
        except (SafetensorError, OSError, ValueError) as error:
            raise GemmaCheckpointError(
                f"{file}: not a readable safetensors file ({error})."
            ) from None
        handles.append(handle)
        for key in handle.keys():
            if key == "lm_head.weight":
                continue
            if key not in expected:
                raise GemmaCheckpointError(
                    f"{file}: unexpected tensor {key} for this config.json (a larger model, "
                    "or not Gemma 2)."
                )
            shape = tuple(handle.get_slice(key).get_shape())
            if shape != expected[key]:
                raise GemmaCheckpointError(
                    f"{file}: tensor {key} has shape {shape}; the config needs {expected[key]}."
                )
            dtype = handle.get_slice(key).get_dtype()
            if dtype not in ("F32", "F16", "BF16", "F64"):
                raise GemmaCheckpointError(
                    f"{file}: tensor {key} has dtype {dtype}; Gemma weights are floats."
                )
            seen[key] = (handle, file)
    missing = sorted(set(expected) - set(seen))
    if missing:
        raise GemmaCheckpointError(
            f"{directory}: missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}; "
            "the checkpoint is incomplete or its config.json describes a larger model."
        )
    return seen


def load_hf(
    directory: str | os.PathLike, dtype: str | None = None, allow_nonfinite: bool = False
) -> GemmaModel:
    """Loads a Hugging Face Gemma 2 folder (config.json + safetensors) into a `GemmaModel`.

    Reads `model.safetensors` or the shards of
    `model.safetensors.index.json`, tensor by tensor, casting float32,
    float16 or bfloat16 weights to the model's variable dtype. config.json
    and every tensor's name and shape are checked before the model is
    built; weights are checked for NaN and Inf as they are copied.

    Args:
        directory: the checkpoint folder (e.g. a download of
            google/gemma-2-2b).
        dtype: optional Keras dtype policy for the model (default: Keras's).
        allow_nonfinite: bool, default False. Load NaN or Inf weights
            instead of refusing them.

    Raises:
        GemmaCheckpointError: naming the file and the field or tensor.
    """
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise GemmaCheckpointError(f"{directory}: no config.json; not a Hugging Face model folder.")
    try:
        hf = json.loads(_inside(directory, "config.json", "config file").read_text("utf-8"))
    except ValueError as error:
        raise GemmaCheckpointError(f"{config_path}: not valid JSON ({error}).") from None
    config = hf_config_to_gemma(hf, config_path)
    expected = _expected_shapes(config)
    stored = _open_tensors(directory, expected)
    model = GemmaModel(config, initializer="zeros", **({"dtype": dtype} if dtype else {}))
    for name, (variable, transposed) in model_variables(model).items():
        handle, file = stored[name]
        value = handle.get_tensor(name).astype(np.float32)  # assign() casts to the variable's
        if transposed:
            value = value.T
        if not allow_nonfinite and not np.isfinite(value).all():
            raise GemmaCheckpointError(
                f"{file}: tensor {name} holds NaN or Inf; the checkpoint is corrupt or comes "
                "from a run that diverged. Pass allow_nonfinite=True to load it anyway."
            )
        variable.assign(value)
    return model


def _expected_shapes(config: GemmaConfig) -> dict:
    d, hidden = config.dim, config.hidden_dim
    q_dim, kv_dim = config.n_heads * config.head_dim, config.n_kv_heads * config.head_dim
    per_layer = {
        "input_layernorm": (d,),
        "self_attn.q_proj": (q_dim, d),
        "self_attn.k_proj": (kv_dim, d),
        "self_attn.v_proj": (kv_dim, d),
        "self_attn.o_proj": (d, q_dim),
        "post_attention_layernorm": (d,),
        "pre_feedforward_layernorm": (d,),
        "mlp.gate_proj": (hidden, d),
        "mlp.up_proj": (hidden, d),
        "mlp.down_proj": (d, hidden),
        "post_feedforward_layernorm": (d,),
    }
    shapes = {"model.embed_tokens.weight": (config.vocab_size, d), "model.norm.weight": (d,)}
    for i in range(config.n_layers):
        for kind, shape in per_layer.items():
            shapes[f"model.layers.{i}.{kind}.weight"] = shape
    return shapes


def save_hf(model: GemmaModel, directory: str | os.PathLike, dtype: str = "float32") -> Path:
    """Writes `model` as a Hugging Face Gemma 2 folder: config.json + model.safetensors.

    The folder is replaced whole (`keras_recipes._io.atomic_folder`): a
    reader never sees new weights beside an old config. Files of an existing
    folder that are neither weights nor config (a tokenizer, a README) are
    kept.

    Args:
        model: a `GemmaModel`.
        directory: the folder (created if needed).
        dtype: "float32", "float16" or "bfloat16", the stored weight type.
    """
    import ml_dtypes
    from safetensors.numpy import save_file

    if dtype not in _NUMPY_DTYPES:
        raise GemmaCheckpointError(
            f"save_hf: dtype must be one of {list(_NUMPY_DTYPES)}, got {dtype!r}."
        )
    if not isinstance(model, GemmaModel):
        raise GemmaCheckpointError(f"save_hf: expected a GemmaModel, got {type(model).__name__}.")
    stored = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    state = {}
    for name, (variable, transposed) in model_variables(model).items():
        value = np.asarray(ops.convert_to_numpy(variable), np.float32)
        state[name] = np.ascontiguousarray((value.T if transposed else value).astype(stored))
    hf_config = gemma_to_hf_config(model.config, dtype)

    def kept(name: str) -> bool:
        replaced = ("config.json", "model.safetensors.index.json")
        return name not in replaced and not name.endswith((".safetensors", ".partial"))

    directory = Path(directory)
    with atomic_folder(directory, carry_over=kept) as tmp:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2), encoding="utf-8")
    return directory


def load_checkpoint(path: str | os.PathLike, dtype: str | None = None) -> GemmaModel:
    """A `GemmaModel` from a `.keras` file or a Hugging Face Gemma 2 folder.

    Raises:
        GemmaCheckpointError: for a missing path, another model in a
            `.keras` file, or a folder `load_hf` refuses.
    """
    import keras

    path = Path(path)
    if path.is_dir():
        return load_hf(path, dtype=dtype)
    if path.suffix != ".keras" or not path.is_file():
        raise GemmaCheckpointError(
            f"{path}: not a Gemma checkpoint; give a .keras file or a Hugging Face Gemma 2 "
            "folder (config.json + model.safetensors)."
        )
    model = keras.models.load_model(path)
    if not isinstance(model, GemmaModel):
        raise GemmaCheckpointError(f"{path}: holds a {type(model).__name__}, not a GemmaModel.")
    return model


def save_checkpoint(model: GemmaModel, path: str | os.PathLike) -> Path:
    """Writes `model` as `path`: a `.keras` file, or else a Hugging Face folder (`save_hf`)."""
    from keras_recipes._io import atomic_path

    path = Path(path)
    if path.suffix != ".keras":
        return save_hf(model, path)
    if not isinstance(model, GemmaModel):
        raise GemmaCheckpointError(f"save_checkpoint: expected a GemmaModel, got {type(model)}.")
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    return path
