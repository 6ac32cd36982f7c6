"""GGUF: the file llama.cpp (and Ollama on top of it) runs.

`save_gguf(model, "model.gguf", tokenizer=...)` writes a LLaMA with the
`llama` architecture's metadata, its tensors under llama.cpp's names, and
the tokenizer llama.cpp needs to turn text into the model's ids;
`load_gguf("model.gguf")` builds a `LlamaModel` from a GGUF file, ours or
one written by llama.cpp's own converters. Keys and tensor names come from
the `gguf` package's constants (llama.cpp's `gguf-py`), so they are the
ones llama.cpp's loader looks up.

Layouts. GGUF keeps PyTorch's (out, in) matrices (llama.cpp reverses the
axes into its `ne` order) and, for the `llama` architecture, Meta's
interleaved-pair RoPE rows of `attn_q` / `attn_k`: llama.cpp's
`convert_hf_to_gguf.py` permutes Hugging Face's rotate-half rows back to
them. A model with `rope_convention="rotate_half"` (a Hugging Face import)
gets the same permutation here; a model loaded from GGUF is interleaved.
Llama 3.1 RoPE scaling travels as llama.cpp's `rope_freqs.weight`, one
divisor per rotated pair.

Tokenizers (`tokenizer.ggml.*`):

- a SentencePiece BPE `.model` (Llama 2's kind): llama.cpp's `llama`
  vocabulary, pieces with their scores and types;
- a SentencePiece unigram `.model` (what `train_sentencepiece` trains by
  default): llama.cpp's `t5` vocabulary, its Viterbi unigram tokenizer,
  with SentencePiece's normalization table (`precompiled_charsmap`);
- llama2.c's `tokenizer.bin`: the `llama` vocabulary, spaces written as
  SentencePiece's `▁` as llama.cpp's `llama-convert-llama2c-to-ggml` does;
- a Hugging Face byte-level BPE `tokenizer.json`: llama.cpp's `gpt2`
  vocabulary with its merges, and the pre-tokenizer name that selects the
  word-splitting regex (`llama-bpe` for Llama 3's, `gpt-2` for GPT-2's),
  plus the chat template of `tokenizer_config.json` when there is one.

Weights are written as `f32`, `f16` or `q8_0` (llama.cpp's 8-bit blocks of
32 with one f16 scale); norms stay f32 as llama.cpp's converter keeps them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

GGUF_TYPES = ("f32", "f16", "q8_0")
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
_PAD_PIECE = "[PAD{}]"
_BYTE_PIECE = re.compile(rb"^<0x[0-9A-Fa-f]{2}>$")
# The word-splitting regexes of the two byte-level BPE families llama.cpp
# knows by name (its `tokenizer.ggml.pre`), as tokenizer.json files spell them.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _gguf():
    try:
        import gguf
    except ImportError as error:  # pragma: no cover - gguf is a dependency
        raise ImportError(
            "GGUF files need the `gguf` package: pip install gguf (llama.cpp's gguf-py)."
        ) from error
    return gguf


def gguf_tensor_name(canonical: str) -> str:
    """llama.cpp's name for a canonical tensor: `layers.3.attention.wq.weight` -> `blk.3.attn_q.weight`."""
    gguf = _gguf()
    if canonical in _TOP_TENSORS:
        member = gguf.MODEL_TENSOR[_TOP_TENSORS[canonical]]
        return gguf.TENSOR_NAMES[member] + ".weight"
    _, index, *kind, _ = canonical.split(".")
    member = gguf.MODEL_TENSOR[_LAYER_TENSORS[".".join(kind)]]
    return gguf.TENSOR_NAMES[member].format(bid=int(index)) + ".weight"


def _canonical_names_by_gguf(config) -> dict[str, str]:
    from keras_recipes.llama.checkpoints import canonical_names

    return {gguf_tensor_name(name): name for name in canonical_names(config)}


# ---------------------------------------------------------------------------
# Writing


def save_gguf(
    model,
    path: str | os.PathLike,
    tokenizer=None,
    dtype: str = "f32",
    chat_template: str | None = None,
    name: str | None = None,
) -> Path:
    """Writes a LLaMA as a GGUF file that llama.cpp runs.

    Args:
        model: a `LlamaModel` (`build_llama`, `load_llama2c`, `load_hf`,
            `load_gguf`, a `.keras` file).
        path: str or path, the `.gguf` file; written atomically (a partial
            file is renamed onto it when complete).
        tokenizer: the model's tokenizer: a `SentencePieceTokenizer`, a
            `Llama2cTokenizer`, a `BytePairTokenizerJson`, or a path that
            `keras_recipes.tokenizers.load_tokenizer` reads. llama.cpp needs
            one to run the file; `None` is refused.
        dtype: `"f32"` (default), `"f16"` or `"q8_0"`. The type of the
            matrices; norms stay f32. A q8_0 matrix whose rows are not a
            multiple of 32 is written f16, as llama.cpp's converter does.
        chat_template: str or None. A Jinja chat template for llama.cpp's
            chat mode; defaults to the tokenizer's (`tokenizer_config.json`
            beside a `tokenizer.json`), if any.
        name: str or None, `general.name`; defaults to the file's stem.

    Returns:
        The path written.

    Raises:
        ValueError: not a LLaMA, an unknown `dtype`, no tokenizer, or a
            tokenizer whose vocabulary does not fit the model's.

    Examples:

    ```python
    model = load_checkpoint("runs/llama_tiny/model.keras")
    save_gguf(model, "llama_tiny.gguf", tokenizer="runs/llama_tiny/tokenizer.model")
    # then: llama-simple -m llama_tiny.gguf -n 32 "The government said"
    ```
    """
    from keras_recipes._io import atomic_path
    from keras_recipes.llama import LlamaModel
    from keras_recipes.llama.checkpoints import model_tensors
    from keras_recipes.llama.checkpoints.weights import _permuted

    gguf = _gguf()
    if not isinstance(model, LlamaModel):
        raise ValueError(
            f"save_gguf: expected a LlamaModel, got {type(model).__name__}; GGUF's `llama` "
            "architecture describes LLaMA models only."
        )
    if dtype not in GGUF_TYPES:
        raise ValueError(f"save_gguf: dtype must be one of {list(GGUF_TYPES)}, got {dtype!r}.")
    if tokenizer is None:
        raise ValueError(
            "save_gguf: pass tokenizer= (the model's .model, tokenizer.bin or tokenizer.json): "
            "llama.cpp reads the vocabulary from the GGUF file and cannot run one without it."
        )
    if isinstance(tokenizer, (str, os.PathLike)):
        from keras_recipes.tokenizers import load_tokenizer

        tokenizer = load_tokenizer(tokenizer, vocab_size=model.config.vocab_size)
    path = Path(path)
    config = model.config
    file_type = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[dtype]
    with atomic_path(path, suffix=".gguf") as partial:
        writer = gguf.GGUFWriter(partial, ARCHITECTURE)
        writer.add_name(name or path.stem)
        writer.add_file_type(int(file_type))
        if dtype == "q8_0":
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        writer.add_vocab_size(config.vocab_size)
        writer.add_context_length(config.max_seq_len)
        writer.add_embedding_length(config.dim)
        writer.add_block_count(config.n_layers)
        writer.add_feed_forward_length(config.ffn_hidden_dim)
        writer.add_head_count(config.n_heads)
        writer.add_head_count_kv(config.n_kv_heads)
        writer.add_layer_norm_rms_eps(config.norm_eps)
        writer.add_rope_freq_base(config.rope_theta)
        writer.add_rope_dimension_count(config.head_dim)
        _add_tokenizer(writer, tokenizer, config.vocab_size, chat_template)
        if config.rope_scaling:
            writer.add_tensor(
                gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight",
                rope_frequency_divisors(config),
            )
        tensors = model_tensors(model)
        if config.rope_convention == "rotate_half":
            tensors = _permuted(tensors, config, "interleaved")
        for canonical, value in tensors:
            data, raw_dtype = _encode(value, dtype)
            writer.add_tensor(gguf_tensor_name(canonical), data, raw_dtype=raw_dtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return path


def rope_frequency_divisors(config) -> np.ndarray:
    """llama.cpp's `rope_freqs`: each pair's unscaled frequency over its Llama 3.1 scaled one."""
    from keras_recipes.layers.rotary_embedding import rope_inverse_frequencies

    plain = rope_inverse_frequencies(config.head_dim, config.rope_theta)
    scaled = rope_inverse_frequencies(config.head_dim, config.rope_theta, config.rope_scaling)
    return (plain.astype(np.float64) / scaled.astype(np.float64)).astype(np.float32)


def _encode(value: np.ndarray, dtype: str):
    """`(data, raw_dtype)` for `GGUFWriter.add_tensor`: norms f32, matrices as asked."""
    gguf = _gguf()
    value = np.ascontiguousarray(value, np.float32)
    if value.ndim == 1 or dtype == "f32":
        return value, None
    block = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0]
    if dtype == "f16" or value.shape[-1] % block:
        return value.astype(np.float16), None
    q8 = gguf.GGMLQuantizationType.Q8_0
    return gguf.quants.quantize(value, q8), q8


def _add_tokenizer(writer, tokenizer, vocab_size: int, chat_template: str | None) -> None:
    from keras_recipes.tokenizers import (
        BytePairTokenizerJson,
        Llama2cTokenizer,
        SentencePieceTokenizer,
    )

    if isinstance(tokenizer, SentencePieceTokenizer):
        vocab = _sentencepiece_vocab(tokenizer)
    elif isinstance(tokenizer, Llama2cTokenizer):
        vocab = _llama2c_vocab(tokenizer)
    elif isinstance(tokenizer, BytePairTokenizerJson):
        vocab = _byte_pair_vocab(tokenizer)
        chat_template = chat_template or tokenizer.chat_template
    else:
        raise ValueError(
            f"save_gguf: no GGUF vocabulary for a {type(tokenizer).__name__}; pass a "
            "SentencePieceTokenizer, Llama2cTokenizer or BytePairTokenizerJson (or its file)."
        )
    tokens, scores, types = vocab["tokens"], vocab["scores"], vocab["types"]
    if len(tokens) > vocab_size:
        raise ValueError(
            f"save_gguf: the tokenizer has {len(tokens)} tokens but the model's vocab_size is "
            f"{vocab_size}; pass the tokenizer the model was trained with."
        )
    gguf = _gguf()
    for i in range(len(tokens), vocab_size):  # rows the model has beyond the tokenizer
        tokens.append(_PAD_PIECE.format(i))
        scores.append(-1000.0)
        types.append(int(gguf.TokenType.UNUSED))
    writer.add_tokenizer_model(vocab["model"])
    writer.add_tokenizer_pre(vocab.get("pre", "default"))
    writer.add_token_list(tokens)
    if vocab["model"] != "gpt2":
        writer.add_token_scores(scores)
    writer.add_token_types(types)
    if "merges" in vocab:
        writer.add_token_merges(vocab["merges"])
    for key in ("add_space_prefix", "remove_extra_whitespaces"):
        if key in vocab:
            getattr(writer, f"add_{key}")(vocab[key])
    if vocab.get("precompiled_charsmap"):
        writer.add_precompiled_charsmap(vocab["precompiled_charsmap"])
    special = {"bos": tokenizer.bos_id, "eos": tokenizer.eos_id, **vocab.get("special", {})}
    for kind, token_id in special.items():
        if token_id is not None and token_id >= 0:
            getattr(writer, f"add_{kind}_token_id")(int(token_id))
    writer.add_add_bos_token(tokenizer.bos_id is not None and tokenizer.bos_id >= 0)
    writer.add_add_eos_token(False)
    if chat_template:
        writer.add_chat_template(chat_template)


def _sentencepiece_vocab(tokenizer) -> dict:
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(tokenizer.proto)
    kinds = {1: "t5", 2: "llama"}  # UNIGRAM -> llama.cpp's UGM, BPE -> its SPM
    model_type = proto.trainer_spec.model_type
    if model_type not in kinds:
        raise ValueError(
            f"save_gguf: SentencePiece model type {model_type} (word or char) has no llama.cpp "
            "tokenizer; train a unigram or bpe model (train_sentencepiece(model_type=...))."
        )
    # SentencePiece's piece types (NORMAL 1 ... BYTE 6) are GGUF's TokenType numbers.
    vocab = {
        "model": kinds[model_type],
        "tokens": [piece.piece for piece in proto.pieces],
        "scores": [float(piece.score) for piece in proto.pieces],
        "types": [int(piece.type) for piece in proto.pieces],
        "add_space_prefix": bool(proto.normalizer_spec.add_dummy_prefix),
        "remove_extra_whitespaces": bool(proto.normalizer_spec.remove_extra_whitespaces),
        "special": {"unk": tokenizer.unk_id, "pad": tokenizer.pad_id},
    }
    if model_type == 1:
        vocab["precompiled_charsmap"] = bytes(proto.normalizer_spec.precompiled_charsmap)
    return vocab


def _llama2c_vocab(tokenizer) -> dict:
    gguf = _gguf()
    tokens, types = [], []
    for token_id, piece in enumerate(tokenizer.pieces):
        if token_id in (tokenizer.bos_id, tokenizer.eos_id):
            kind = gguf.TokenType.CONTROL
        elif token_id == 0:
            kind = gguf.TokenType.UNKNOWN
        elif _BYTE_PIECE.match(piece):
            kind = gguf.TokenType.BYTE
        else:
            kind = gguf.TokenType.NORMAL
        tokens.append(piece.decode("utf-8", errors="replace").replace(" ", "\u2581"))
        types.append(int(kind))
    return {
        "model": "llama",
        "tokens": tokens,
        "scores": list(tokenizer.scores),
        "types": types,
        "special": {"unk": 0},
    }


def _byte_pair_vocab(tokenizer) -> dict:
    gguf = _gguf()
    by_id = {token_id: piece for piece, token_id in tokenizer.vocabulary.items()}
    added = {token["id"]: token for token in tokenizer.added_tokens}
    tokens, types = [], []
    for token_id in range(tokenizer.vocab_size):
        if token_id in added:
            tokens.append(added[token_id]["content"])
            special = added[token_id].get("special", True)
            types.append(int(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED))
        else:
            tokens.append(by_id.get(token_id, _PAD_PIECE.format(token_id)))
            types.append(int(gguf.TokenType.NORMAL if token_id in by_id else gguf.TokenType.UNUSED))
    eot = tokenizer.vocabulary.get("<|eot_id|>")
    return {
        "model": "gpt2",
        "pre": byte_pair_pre_tokenizer(tokenizer.pre_tokenizer),
        "tokens": tokens,
        "scores": [0.0] * len(tokens),
        "types": types,
        "merges": list(tokenizer.merges),
        "special": {"eot": eot} if eot is not None else {},
    }


def byte_pair_pre_tokenizer(pre_tokenizer: dict | None) -> str:
    """llama.cpp's `tokenizer.ggml.pre` name for a tokenizer.json `pre_tokenizer`.

    `llama-bpe` when it splits with Llama 3's regex, `gpt-2` for GPT-2's
    byte-level splitter; any other splitter is refused, since llama.cpp
    would split words its own way and the ids would differ.
    """
    steps = []
    if pre_tokenizer:
        steps = pre_tokenizer.get("pretokenizers", [pre_tokenizer])
    for step in steps:
        pattern = step.get("pattern", {}) if step.get("type") == "Split" else {}
        if pattern.get("Regex") == _LLAMA3_SPLIT:
            return "llama-bpe"
    if len(steps) == 1 and steps[0].get("type") == "ByteLevel" and steps[0].get("use_regex", True):
        return "gpt-2"
    raise ValueError(
        f"save_gguf: tokenizer.json's pre_tokenizer {pre_tokenizer!r} is neither Llama 3's "
        "regex split nor GPT-2's byte-level one; llama.cpp names only known splitters "
        "(tokenizer.ggml.pre), so its ids would not be this tokenizer's."
    )


# ---------------------------------------------------------------------------
# Reading


def read_gguf_metadata(path: str | os.PathLike) -> dict:
    """Every key-value pair of a GGUF file's header (arrays as lists), tensors left unread."""
    gguf = _gguf()
    reader = _open(path, gguf)
    return {key: _field_value(field, gguf) for key, field in reader.fields.items()}


def _open(path, gguf):
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"No GGUF file at {path}.")
    try:
        return gguf.GGUFReader(path)
    except (ValueError, OSError, IndexError) as error:
        raise ValueError(f"{path}: not a readable GGUF file ({error}).") from error


def _field_value(field, gguf):
    value = field.contents()
    if field.types and field.types[0] == gguf.GGUFValueType.ARRAY:
        if field.types[-1] == gguf.GGUFValueType.STRING:
            return value
        return list(value)
    return value


def load_gguf(path: str | os.PathLike, allow_nonfinite: bool = False):
    """A `LlamaModel` from a GGUF file of the `llama` architecture.

    f32, f16, bf16 and the quantized types the `gguf` package dequantizes
    (q8_0, q4_0, k-quants ...) are read and stored as float32. The model's
    RoPE convention is `"interleaved"`, the layout GGUF stores; Llama 3.1
    scaling is recovered from `rope_freqs.weight` when it matches the
    published settings.

    Raises:
        ValueError: not a GGUF file, another architecture, metadata that
            contradicts the tensors, or a tensor type that cannot be read.
    """
    from keras_recipes.llama import LlamaConfig, build_llama
    from keras_recipes.llama.checkpoints import assign_tensors

    gguf = _gguf()
    path = Path(path)
    reader = _open(path, gguf)
    fields = {key: _field_value(field, gguf) for key, field in reader.fields.items()}
    architecture = fields.get("general.architecture")
    if architecture != ARCHITECTURE:
        raise ValueError(
            f"{path}: GGUF architecture {architecture!r}; only {ARCHITECTURE!r} models load here."
        )
    tensors = {tensor.name: tensor for tensor in reader.tensors}
    embedding = tensors.get("token_embd.weight")
    if embedding is None:
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
    config = LlamaConfig(
        vocab_size=int(np.prod(embedding.shape)) // dim,
        dim=dim,
        n_layers=int(key(keys.LLM.BLOCK_COUNT)),
        n_heads=n_heads,
        n_kv_heads=int(key(keys.Attention.HEAD_COUNT_KV, n_heads)),
        hidden_dim=int(key(keys.LLM.FEED_FORWARD_LENGTH)),
        max_seq_len=int(key(keys.LLM.CONTEXT_LENGTH)),
        rope_theta=float(key(keys.Rope.FREQ_BASE, 10000.0)),
        norm_eps=float(f"{float(key(keys.Attention.LAYERNORM_RMS_EPS)):.7g}"),  # stored as f32
        tie_embeddings="output.weight" not in tensors,
        rope_convention="interleaved",
    )
    rope_freqs = tensors.pop("rope_freqs.weight", None)
    if rope_freqs is not None:
        config = config.replace(rope_scaling=_rope_scaling(path, config, _dequantize(rope_freqs)))
    names = _canonical_names_by_gguf(config)
    unknown = sorted(set(tensors) - set(names))
    if unknown:
        raise ValueError(
            f"{path}: tensors {unknown[:5]} are not a LLaMA's; this GGUF holds another model."
        )
    model = build_llama(config)
    stream = (
        (names[name], _dequantize(tensor, path).reshape(_shape(tensor)))
        for name, tensor in tensors.items()
    )
    assign_tensors(model, stream, path, allow_nonfinite=allow_nonfinite)
    return model


def _shape(tensor) -> tuple[int, ...]:
    return tuple(int(n) for n in reversed(tensor.shape))  # ggml's ne is innermost first


def _dequantize(tensor, path=None) -> np.ndarray:
    gguf = _gguf()
    kind = gguf.GGMLQuantizationType(tensor.tensor_type)
    if kind == gguf.GGMLQuantizationType.F32:
        return np.asarray(tensor.data, np.float32)
    if kind == gguf.GGMLQuantizationType.F16:
        return np.asarray(tensor.data).astype(np.float32)
    try:
        return gguf.quants.dequantize(np.asarray(tensor.data), kind).astype(np.float32)
    except NotImplementedError as error:
        raise ValueError(
            f"{path}: tensor {tensor.name} has type {kind.name}, which the gguf package cannot "
            "dequantize; convert the file to f16 or q8_0 with llama-quantize first."
        ) from error


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
