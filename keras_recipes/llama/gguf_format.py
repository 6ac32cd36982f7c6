"""LLaMA in GGUF: llama.cpp's `llama` architecture keys and tensor names, both ways.

`keras_recipes.export.save_gguf` writes what `LlamaModel.gguf_metadata()` and
`gguf_tensors()` return (this module); `load_gguf` reads a file through
`keras_recipes.llama.gguf_load.load_llama_gguf`, registered for the
architecture `"llama"` in `keras_recipes.causal_lm.families`. Keys and names come from the `gguf`
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
