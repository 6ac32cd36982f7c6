"""GGUF: the file llama.cpp (and Ollama on top of it) runs.

`save_gguf(model, "model.gguf", tokenizer=...)` writes a model's
architecture metadata and tensors under llama.cpp's names, plus the
tokenizer llama.cpp needs to turn text into the model's ids;
`load_gguf("model.gguf")` builds a model from a GGUF file, ours or one
written by llama.cpp's own converters. Keys come from the `gguf` package's
constants (llama.cpp's `gguf-py`), so they are the ones llama.cpp's loader
looks up.

The family knows its architecture: a model offers `gguf_metadata()` (the
`general.architecture` and `<arch>.*` keys) and `gguf_tensors()` (name and
float32 array in GGUF's (out, in) layout; LLaMA's, with llama.cpp's RoPE
row order, are `keras_recipes.llama.gguf_format`), and reading goes to the
loader the family registered for the file's architecture
(`keras_recipes.causal_lm.families`). This module holds what every family
shares: the tensor types, the tokenizer, the file itself.

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
    """Writes a model as a GGUF file that llama.cpp runs.

    Args:
        model: a model with `gguf_metadata()` and `gguf_tensors()`: a
            `LlamaModel` (`build_llama`, `load_llama2c`, `load_hf`,
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
        ValueError: a model without the GGUF hooks, an unknown `dtype`, no
            tokenizer, or a tokenizer whose vocabulary does not fit the model's.

    After training, `model = load_checkpoint("runs/llama_tiny/model.keras")`
    and `save_gguf(model, "llama_tiny.gguf",
    tokenizer="runs/llama_tiny/tokenizer.model")` write the file that
    llama.cpp runs: `llama-simple -m llama_tiny.gguf -n 32 "The government
    said"`. (No doctest: it needs a trained checkpoint and its tokenizer.)
    """
    from keras_recipes._io import atomic_path

    gguf = _gguf()
    if not all(callable(getattr(model, hook, None)) for hook in ("gguf_metadata", "gguf_tensors")):
        raise ValueError(
            f"save_gguf: a {type(model).__name__} has no gguf_metadata() / gguf_tensors(); "
            "GGUF files are written for models that offer them (LlamaModel)."
        )
    if dtype not in GGUF_TYPES:
        raise ValueError(f"save_gguf: dtype must be one of {list(GGUF_TYPES)}, got {dtype!r}.")
    if tokenizer is None:
        raise ValueError(
            "save_gguf: pass tokenizer= (the model's .model, tokenizer.bin or tokenizer.json): "
            "llama.cpp reads the vocabulary from the GGUF file and cannot run one without it."
        )
    vocab_size = model.config.vocab_size
    if isinstance(tokenizer, (str, os.PathLike)):
        from keras_recipes.tokenizers import load_tokenizer

        tokenizer = load_tokenizer(tokenizer, vocab_size=vocab_size)
    path = Path(path)
    metadata = dict(model.gguf_metadata())
    architecture = metadata.pop(gguf.Keys.General.ARCHITECTURE)
    file_type = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[dtype]
    with atomic_path(path, suffix=".gguf") as partial:
        writer = gguf.GGUFWriter(partial, architecture)
        writer.add_name(name or path.stem)
        writer.add_file_type(int(file_type))
        if dtype == "q8_0":
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        for key, value in metadata.items():
            if isinstance(value, str):
                writer.add_string(key, value)
            elif isinstance(value, float):
                writer.add_float32(key, value)
            else:
                writer.add_uint32(key, int(value))
        _add_tokenizer(writer, tokenizer, vocab_size, chat_template)
        for tensor_name, value in model.gguf_tensors():
            data, raw_dtype = _encode(value, dtype)
            writer.add_tensor(tensor_name, data, raw_dtype=raw_dtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return path


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
    """A model from a GGUF file, built by the family that reads its architecture.

    f32, f16, bf16 and the quantized types the `gguf` package dequantizes
    (q8_0, q4_0, k-quants ...) are read and stored as float32. A `llama`
    file gives a `LlamaModel` with the RoPE convention GGUF stores
    (`"interleaved"`), and Llama 3.1 scaling recovered from
    `rope_freqs.weight` when it matches the published settings.

    Raises:
        ValueError: not a GGUF file, an architecture no family reads,
            metadata that contradicts the tensors, or a tensor type that
            cannot be read.
    """
    from keras_recipes.causal_lm.families import gguf_loader

    gguf = _gguf()
    path = Path(path)
    reader = _open(path, gguf)
    fields = {key: _field_value(field, gguf) for key, field in reader.fields.items()}
    architecture = fields.get("general.architecture")
    try:
        loader = gguf_loader(architecture)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None

    def reader_of(tensor):
        return lambda: _dequantize(tensor, path).reshape(_shape(tensor))

    tensors = {tensor.name: reader_of(tensor) for tensor in reader.tensors}
    return loader(fields, tensors, path, allow_nonfinite=allow_nonfinite)


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
