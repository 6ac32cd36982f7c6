"""LLaMA's presets: the published shapes, by name (`LlamaConfig.preset(name)`)."""

_LLAMA_7B = dict(vocab_size=32000, dim=4096, n_layers=32, n_heads=32, hidden_dim=11008)
_LLAMA3 = dict(vocab_size=128256, n_kv_heads=8, rope_theta=500000.0, rope_convention="rotate_half")
PRESETS = {
    # LLaMA 1 (Touvron et al. 2023, table 2): 2K context, eps 1e-6.
    "llama-7b": dict(_LLAMA_7B, max_seq_len=2048, norm_eps=1e-6),
    # Llama 2: 4K context.
    "llama2-7b": dict(_LLAMA_7B, max_seq_len=4096),
    "llama2-13b": dict(
        vocab_size=32000, dim=5120, n_layers=40, n_heads=40, hidden_dim=13824, max_seq_len=4096
    ),
    # Llama 3 / 3.2 (as published on the Hugging Face hub, hence rotate_half).
    "llama3-8b": dict(
        _LLAMA3, dim=4096, n_layers=32, n_heads=32, hidden_dim=14336, max_seq_len=8192
    ),
    "llama3.2-1b": dict(
        _LLAMA3,
        dim=2048,
        n_layers=16,
        n_heads=32,
        hidden_dim=8192,
        max_seq_len=131072,
        tie_embeddings=True,
        rope_scaling=dict(
            factor=32.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=8192,
        ),
    ),
    # llama2.c's TinyStories models (Karpathy).
    "stories15M": dict(
        vocab_size=32000,
        dim=288,
        n_layers=6,
        n_heads=6,
        hidden_dim=768,
        max_seq_len=256,
        tie_embeddings=True,
    ),
    "stories42M": dict(
        vocab_size=32000,
        dim=512,
        n_layers=8,
        n_heads=8,
        hidden_dim=1376,
        max_seq_len=1024,
        tie_embeddings=True,
    ),
    "stories110M": dict(
        vocab_size=32000,
        dim=768,
        n_layers=12,
        n_heads=12,
        hidden_dim=2048,
        max_seq_len=1024,
        tie_embeddings=True,
    ),
    "stories260K": dict(
        vocab_size=512,
        dim=64,
        n_layers=5,
        n_heads=8,
        n_kv_heads=4,
        hidden_dim=172,
        max_seq_len=512,
        tie_embeddings=True,
    ),
    # For tests and quick recipes: builds and runs in well under a second.
    "tiny": dict(
        vocab_size=512, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=192, max_seq_len=256
    ),
}
