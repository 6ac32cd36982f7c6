"""LLaMA in GGUF: llama.cpp's `llama` architecture keys and tensor names, both ways.

`keras_recipes.export.save_gguf` writes what `LlamaModel.gguf_metadata()` and
`gguf_tensors()` return (this module); `load_gguf` reads a file through
`load_llama_gguf`, registered for the architecture `"llama"` in
`keras_recipes.causal_lm.families`. Keys and names come from the `gguf`
package's constants (llama.cpp's gguf-py).

GGUF keeps PyTorch's (out, in) matrices and, for `llama`, Meta's
interleaved-pair RoPE rows of `attn_q` / `attn_k`: llama.cpp's
`convert_hf_to_gguf.py` permutes Hugging Face's rotate-half rows back to
them, and so does `llama_gguf_tensors` for a `rope_convention="rotate_half"`
model. A model read from GGUF is interleaved. Llama 3.1 RoPE scaling travels
as llama.cpp's `rope_freqs.weight`, one divisor per rotated pair, and is
recovered on reading when it matches published settings.
"""

from __future__ import annotations

import numpy as np

from keras_recipes.llama.checkpoints.weights import (
    _permuted,
    assign_tensors,
    canonical_names,
    model_tensors,
)

ARCHITECTURE = "llama"
# Canonical (Meta) names -> llama.cpp's MODEL_TENSOR members.
_LAYER_TENSORS = {
    "attention_norm": "ATTN_NORM",
    "attention.wq": "ATTN_Q",
    "attention.wk": "ATTN_K",
    "attention.wv": "ATTN_V",
    "attention.wo": "ATTN_OUT",
    "ffn_norm": "FFN_NORM",
    "feed_forward.w1": "FFN_GATE",
    "feed_forward.w2": "FFN_DOWN",
    "feed_forward.w3": "FFN_UP",
}
_TOP_TENSORS = {
    "tok_embeddings.weight": "TOKEN_EMBD",
    "norm.weight": "OUTPUT_NORM",
    "output.weight": "OUTPUT",
}


def gguf_tensor_name(canonical: str) -> str:
    """llama.cpp's name: `layers.3.attention.wq.weight` -> `blk.3.attn_q.weight`."""
    import gguf

    if canonical in _TOP_TENSORS:
        return gguf.TENSOR_NAMES[gguf.MODEL_TENSOR[_TOP_TENSORS[canonical]]] + ".weight"
    _, index, *kind, _ = canonical.split(".")
    member = gguf.MODEL_TENSOR[_LAYER_TENSORS[".".join(kind)]]
    return gguf.TENSOR_NAMES[member].format(bid=int(index)) + ".weight"


def _rope_freqs_name() -> str:
    import gguf

    return gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight"


def llama_gguf_metadata(model) -> dict:
    """`general.architecture` and the `llama.*` keys (ints are uint32, floats float32 in GGUF)."""
    import gguf

    cfg = model.config
    keys = gguf.Keys

    def key(name):
        return name.format(arch=ARCHITECTURE)

    return {
        keys.General.ARCHITECTURE: ARCHITECTURE,
        key(keys.LLM.VOCAB_SIZE): cfg.vocab_size,
        key(keys.LLM.CONTEXT_LENGTH): cfg.max_seq_len,
        key(keys.LLM.EMBEDDING_LENGTH): cfg.dim,
        key(keys.LLM.BLOCK_COUNT): cfg.n_layers,
        key(keys.LLM.FEED_FORWARD_LENGTH): cfg.ffn_hidden_dim,
        key(keys.Attention.HEAD_COUNT): cfg.n_heads,
        key(keys.Attention.HEAD_COUNT_KV): cfg.n_kv_heads,
        key(keys.Attention.LAYERNORM_RMS_EPS): float(cfg.norm_eps),
        key(keys.Rope.FREQ_BASE): float(cfg.rope_theta),
        key(keys.Rope.DIMENSION_COUNT): cfg.head_dim,
    }


def rope_frequency_divisors(config) -> np.ndarray:
    """llama.cpp's `rope_freqs`: each pair's unscaled frequency over its Llama 3.1 scaled one."""
    from keras_recipes.layers.rotary_embedding import rope_inverse_frequencies

    plain = rope_inverse_frequencies(config.head_dim, config.rope_theta)
    scaled = rope_inverse_frequencies(config.head_dim, config.rope_theta, config.rope_scaling)
    return (plain.astype(np.float64) / scaled.astype(np.float64)).astype(np.float32)


def llama_gguf_tensors(model):
    """Yields (llama.cpp's name, float32 array, (out, in)) for every tensor, RoPE rows interleaved."""
    cfg = model.config
    if cfg.rope_scaling:
        yield _rope_freqs_name(), rope_frequency_divisors(cfg)
    tensors = model_tensors(model)
    if cfg.rope_convention == "rotate_half":
        tensors = _permuted(tensors, cfg, "interleaved")
    for canonical, value in tensors:
        yield gguf_tensor_name(canonical), value


def load_llama_gguf(fields: dict, tensors: dict, path, allow_nonfinite: bool = False):
    """A `LlamaModel` from a GGUF file's metadata and tensors (see `families.register_gguf_loader`)."""
    import gguf

    from keras_recipes.llama.config import LlamaConfig
    from keras_recipes.llama.model import build_llama

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
