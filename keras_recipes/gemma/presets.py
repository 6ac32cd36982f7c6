"""Gemma 2 presets: the published shapes, and a tiny one for tests.

Each entry is the keyword arguments of `GemmaConfig`, as read from the
Hugging Face `config.json` of the published checkpoint (google/gemma-2-2b,
-9b, -27b). Names accepted by `GemmaConfig.preset`.
"""

_GEMMA2 = dict(
    vocab_size=256000,
    max_seq_len=8192,
    rope_theta=10000.0,
    norm_eps=1e-6,
    attn_logit_softcap=50.0,
    final_logit_softcap=30.0,
    sliding_window=4096,
)

PRESETS = {
    "gemma2-2b": dict(
        _GEMMA2,
        dim=2304,
        n_layers=26,
        n_heads=8,
        n_kv_heads=4,
        head_dim=256,
        hidden_dim=9216,
        query_pre_attn_scalar=256,
    ),
    "gemma2-9b": dict(
        _GEMMA2,
        dim=3584,
        n_layers=42,
        n_heads=16,
        n_kv_heads=8,
        head_dim=256,
        hidden_dim=14336,
        query_pre_attn_scalar=256,
    ),
    # The 27B scales queries by width / heads (144), not by head_dim (128).
    "gemma2-27b": dict(
        _GEMMA2,
        dim=4608,
        n_layers=46,
        n_heads=32,
        n_kv_heads=16,
        head_dim=128,
        hidden_dim=36864,
        query_pre_attn_scalar=144,
    ),
    # For tests and quick recipes: head_dim apart from dim / n_heads, and a
    # sliding window shorter than the context so that it matters.
    "tiny": dict(
        _GEMMA2,
        vocab_size=512,
        dim=64,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        head_dim=24,
        hidden_dim=128,
        query_pre_attn_scalar=24,
        max_seq_len=256,
        sliding_window=16,
    ),
}
