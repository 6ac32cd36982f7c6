"""A `LlamaModel` from a GGUF file of the `llama` architecture (see `gguf_format`).

Apart from `gguf_format` because it builds a model: `model.py` imports
`gguf_format` for its `gguf_metadata` / `gguf_tensors` hooks, and this
module imports `model.py`.
"""

from __future__ import annotations

import numpy as np

from keras_recipes.llama.checkpoints.weights import assign_tensors, canonical_names
from keras_recipes.llama.config import LlamaConfig
from keras_recipes.llama.gguf_format import (
    ARCHITECTURE,
    _rope_freqs_name,
    gguf_tensor_name,
    rope_frequency_divisors,
)
from keras_recipes.llama.model import build_llama


def load_llama_gguf(fields: dict, tensors: dict, path, allow_nonfinite: bool = False):
    """A `LlamaModel` from a GGUF file's metadata and tensors (see `families.register_gguf_loader`)."""
    import gguf

    if "token_embd.weight" not in tensors:
        raise ValueError(f"{path}: no token_embd.weight tensor; the file is incomplete.")

    def key(name, default=None):
        full = name.format(arch=ARCHITECTURE)
        if full not in fields and default is None:
            raise ValueError(f"{path}: metadata key {full} is missing; the file is incomplete.")
        return fields.get(full, default)

    keys = gguf.Keys
    n_heads = int(key(keys.Attention.HEAD_COUNT))
    dim = int(key(keys.LLM.EMBEDDING_LENGTH))
    rope_dims = key(keys.Rope.DIMENSION_COUNT, dim // n_heads)
    if int(rope_dims) != dim // n_heads:
        raise ValueError(
            f"{path}: RoPE rotates {rope_dims} of {dim // n_heads} head features; this "
            "LLaMA rotates all of them."
        )
    embedding = tensors["token_embd.weight"]()
    config = LlamaConfig(
        vocab_size=int(embedding.shape[0]),
        dim=dim,
        n_layers=int(key(keys.LLM.BLOCK_COUNT)),
        n_heads=n_heads,
        n_kv_heads=int(key(keys.Attention.HEAD_COUNT_KV, n_heads)),
        hidden_dim=int(key(keys.LLM.FEED_FORWARD_LENGTH)),
        max_seq_len=int(key(keys.LLM.CONTEXT_LENGTH)),
        rope_theta=float(f"{float(key(keys.Rope.FREQ_BASE, 10000.0)):.7g}"),  # stored as f32
        norm_eps=float(f"{float(key(keys.Attention.LAYERNORM_RMS_EPS)):.7g}"),
        tie_embeddings="output.weight" not in tensors,
        rope_convention="interleaved",
    )
    tensors = dict(tensors)
    rope_freqs = tensors.pop(_rope_freqs_name(), None)
    if rope_freqs is not None:
        config = config.replace(rope_scaling=_rope_scaling(path, config, rope_freqs()))
    names = {gguf_tensor_name(name): name for name in canonical_names(config)}
    unknown = sorted(set(tensors) - set(names))
    if unknown:
        raise ValueError(
            f"{path}: tensors {unknown[:5]} are not a LLaMA's; this GGUF holds another model."
        )
    model = build_llama(config)
    stream = ((names[name], read()) for name, read in tensors.items())
    assign_tensors(model, stream, path, allow_nonfinite=allow_nonfinite)
    return model


def _rope_scaling(path, config, divisors: np.ndarray) -> dict:
    """The Llama 3.1 settings whose divisors are `divisors` (llama.cpp keeps only these)."""
    factor = float(divisors.max())
    for original in (8192, 4096, 2048, 16384, 32768, 131072):
        for low, high in ((1.0, 4.0), (1.0, 2.0), (1.0, 8.0), (2.0, 4.0)):
            scaling = {
                "factor": factor,
                "low_freq_factor": low,
                "high_freq_factor": high,
                "original_max_position_embeddings": original,
            }
            candidate = rope_frequency_divisors(config.replace(rope_scaling=scaling))
            if np.allclose(candidate, divisors.reshape(-1), rtol=1e-5, atol=1e-6):
                return scaling
    raise ValueError(
        f"{path}: rope_freqs.weight is not Llama 3.1 scaling with any published settings "
        f"(divisors from {divisors.min():.3g} to {factor:.3g}); this model cannot represent it."
    )
