"""Keras model -> `.tflite` file: the signatures, the SavedModel, the converter and `export_tflite`.

Each kind of model gets its signature functions (LLaMA `prefill` /
`decode` with the KV cache as tensors, `Seq2Seq` `encode` / `decode_step` /
`tokenizers`, any other one-input model `serving_default`); they are written
as a SavedModel's signatures and converted with built-in TFLite ops only
(the converter freezes the weights into constants), the tied
int8 embedding table shared (`flatbuffer.py`), and the file written under a
temporary name, verified (`verify.py`) and renamed into place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_recipes._io import atomic_path
from keras_recipes.causal_lm import is_causal_lm
from keras_recipes.export.tflite.flatbuffer import share_tied_int8_table
from keras_recipes.export.tflite.verify import verify_tflite

QUANTIZE_MODES = (None, "dynamic-int8", "float16")


def _prefill_length(context: int, wanted: int | None) -> int:
    if wanted is not None:
        if not isinstance(wanted, int) or wanted < 1 or context % wanted:
            raise ValueError(
                f"export_tflite: prefill_len must be a positive divisor of max_seq_len "
                f"({context}) so prompt chunks tile the cache; got {wanted!r}."
            )
        return wanted
    for size in (64, 32, 16, 8, 4, 2, 1):
        if context % size == 0 and size <= context:
            return size
    return 1


def _causal_lm_functions(model, prefill_len: int) -> dict:
    """`prefill` / `decode` of any causal LM, through its `call_with_cache` alone.

    The caches are `init_caches(1, max_seq_len)` flattened (`tf.nest`) into
    float32 tensors named `kv_cache_<i>`. (LLaMA has its own functions, with
    a head that stores a tied embedding table once.)
    """
    cfg = model.config
    template = model.init_caches(1, cfg.max_seq_len)
    flat_template = tf.nest.flatten(template)
    names = [f"kv_cache_{i}" for i in range(len(flat_template))]
    cache_specs = [
        tf.TensorSpec(cache.shape, tf.float32, name=name)
        for name, cache in zip(names, flat_template, strict=True)
    ]

    def unflatten(flat):
        cast = [tf.cast(c, t.dtype) for c, t in zip(flat, flat_template, strict=True)]
        return tf.nest.pack_sequence_as(template, cast)

    def flatten(caches) -> dict:
        flat = tf.nest.flatten(caches)
        return {name: tf.cast(c, tf.float32) for name, c in zip(names, flat, strict=True)}

    token_spec = tf.TensorSpec([1, prefill_len], tf.int32, name="tokens")
    pos_spec = tf.TensorSpec([1], tf.int32, name="input_pos")

    @tf.function(input_signature=[token_spec, pos_spec, *cache_specs], autograph=False)
    def prefill(tokens, input_pos, *flat):
        _, caches = model.call_with_cache(tokens, unflatten(flat), input_pos[0])
        return flatten(caches)

    @tf.function(
        input_signature=[tf.TensorSpec([1, 1], tf.int32, name="tokens"), pos_spec, *cache_specs],
        autograph=False,
    )
    def decode(tokens, input_pos, *flat):
        logits, caches = model.call_with_cache(tokens, unflatten(flat), input_pos[0])
        return {"logits": tf.cast(logits, tf.float32), **flatten(caches)}

    return {"prefill": prefill, "decode": decode}


def _tied(model) -> bool:
    """Whether a causal LM's output matrix is its embedding table (`output_weights`)."""
    output_weights = getattr(model, "output_weights", None)
    return output_weights is not None and bool(output_weights()[1])


def _keras_functions(model) -> dict:
    if len(model.inputs or []) != 1:
        raise ValueError(
            f"export_tflite: {model.name!r} has {len(model.inputs or [])} inputs; the exporter "
            "converts LlamaModel and one-input models (classifiers, taggers, RNNs)."
        )
    spec = model.inputs[0]
    if any(d is None for d in spec.shape[1:]):
        raise ValueError(
            f"export_tflite: input of {model.name!r} has shape {spec.shape}; give the time "
            "dimension a fixed size (e.g. sequence_length=...) so no TensorList ops are needed."
        )
    input_spec = tf.TensorSpec([1, *spec.shape[1:]], tf.as_dtype(spec.dtype), name="inputs")

    @tf.function(input_signature=[input_spec], autograph=False)
    def serving_default(inputs):
        return {"outputs": tf.cast(model(inputs, training=False), tf.float32)}

    return {"serving_default": serving_default}


def _seq2seq_functions(model) -> dict:
    """`encode` and `decode_step` of a `Seq2Seq`, batch 1, sources padded to their maximum.

    Fixed shapes let the converter lower the encoder's recurrent loop to
    built-in ops. The decoder's recurrent state and the encoder outputs
    travel between calls as tensors, as the KV cache does for LLaMA; a
    third signature, `tokenizers`, returns the two tokenizers' configs as
    JSON, so the `.tflite` file alone translates text (`TFLiteTranslator`).
    """
    import json

    length = model.max_source_length
    _, states, _ = model.encode(np.ones((1, length), "int32"))
    width = model.units * (2 if model.bidirectional else 1)
    state_specs = [
        tf.TensorSpec([1, state.shape[-1]], tf.float32, name=f"state_{i}")
        for i, state in enumerate(states)
    ]

    def named_states(states):
        return {f"state_{i}": tf.cast(state, tf.float32) for i, state in enumerate(states)}

    @tf.function(input_signature=[tf.TensorSpec([1, length], tf.int32, name="source_ids")])
    def encode(source_ids):
        outputs, states, mask = model.encode(source_ids)
        return {
            "encoder_outputs": tf.cast(outputs, tf.float32),
            "source_mask": tf.cast(mask, tf.float32),
            **named_states(states),
        }

    @tf.function(
        input_signature=[
            tf.TensorSpec([1, 1], tf.int32, name="token"),
            tf.TensorSpec([1, length, width], tf.float32, name="encoder_outputs"),
            tf.TensorSpec([1, length], tf.float32, name="source_mask"),
            *state_specs,
        ]
    )
    def decode_step(token, encoder_outputs, source_mask, *states):
        logits, states, _ = model.decode(token, encoder_outputs, list(states), source_mask > 0.5)
        return {"logits": tf.cast(logits[:, -1], tf.float32), **named_states(states)}

    configs = json.dumps(
        {
            "source": model.source_tokenizer.get_config(),
            "target": model.target_tokenizer.get_config(),
            "max_target_length": model.max_target_length,
        }
    )

    @tf.function(input_signature=[])
    def tokenizers():
        return {"configs": tf.constant([configs])}

    return {"encode": encode, "decode_step": decode_step, "tokenizers": tokenizers}


def _saved_model(functions: dict, folder: Path) -> None:
    """Writes `functions` as the signatures of a SavedModel in `folder`, their weights as variables.

    The converter reads the variables from the checkpoint and freezes them
    into constants itself, one buffer per weight however many ops read it.
    Freezing the functions in Python first (`convert_variables_to_constants_v2`
    and `from_concrete_functions`) copies every weight through a chain of
    GraphDefs instead, tens of copies at once (the stories110M shape did not
    fit in 20 GB; `benchmarks/runtimes_bench.py`). `ExportArchive` tracks the variables each function reads,
    so the converter sees them unmodified (a `tf.Module` holding the model
    leaves them as READ_VARIABLE ops).
    """
    archive = keras.export.ExportArchive()
    for name, function in functions.items():
        archive.add_endpoint(name, function)
    archive.write_out(str(folder), verbose=False)


def _convert(model, functions: dict, quantize: str | None) -> bytes:
    # Signatures are named after their functions, and only they are
    # converted, so no stray endpoint of a Keras export shadows them.
    with tempfile.TemporaryDirectory(prefix="tflite-") as scratch:
        _saved_model(functions, Path(scratch))
        converter = tf.lite.TFLiteConverter.from_saved_model(
            scratch, signature_keys=list(functions)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        # Weights become constants (the converter quantizes and folds them),
        # not VAR_HANDLE / READ_VARIABLE ops that nothing initializes.
        converter.experimental_enable_resource_variables = False
        if quantize == "dynamic-int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif quantize == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        try:
            return converter.convert()
        except Exception as error:  # the converter raises ConverterError and friends
            raise ValueError(
                "export_tflite: the model does not convert with built-in TFLite ops only. "
                f"The converter says:\n{error}\nThe op named there has no TFLite kernel: for "
                "recurrent layers give a fixed batch and sequence length or `unroll=True`."
            ) from error


def export_tflite(
    model: keras.Model,
    path: str | os.PathLike,
    quantize: str | None = None,
    prefill_len: int | None = None,
    verify: bool = True,
    overwrite: bool = False,
    allow_nonfinite: bool = False,
) -> Path:
    """Convert a model to a `.tflite` file that runs with built-in ops only.

    A `LlamaModel`, or any causal LM (`keras_recipes.causal_lm`), gets the
    `prefill` and `decode` signatures described in
    the docstring of `keras_recipes.export.tflite` (run them with
    `TFLiteGenerator`); other one-input models (classifiers, taggers, RNNs
    with a fixed sequence length) get `serving_default` (`inputs` ->
    `outputs`) at batch size 1.
    The file is written under a temporary name, checked against the Keras
    model (`verify_tflite`) and renamed into place.

    Args:
        model: a `LlamaModel` or other causal LM, a `Seq2Seq`, or a one-input
            `keras.Model`.
        path: str or path of the `.tflite` file to write.
        quantize: None (float32), `"dynamic-int8"` (int8 weights, float
            activations) or `"float16"` (float16 weights).
        prefill_len: int or None, tokens per `prefill` call; must divide
            `max_seq_len` (default: the largest of 64, 32, ... that does).
        verify: bool, default True.
        overwrite: bool, default False. An existing file is an error unless
            True.
        allow_nonfinite: bool, default False. Write weights that hold NaN or
            Inf (refused otherwise, naming them).

    Returns:
        The `Path` written.

    For `model = build_llama("tiny")`:
    `export_tflite(model, "saved_models/llama.tflite")` writes the float
    model, `export_tflite(model, "saved_models/llama-int8.tflite",
    quantize="dynamic-int8")` the int8-weight one, and
    `TFLiteGenerator("saved_models/llama.tflite").generate([[1, 2, 3]], 16)`
    decodes with it. (Conversion takes seconds, so
    `tests/test_export_tflite.py` runs these rather than a doctest.)
    """
    from keras_recipes._finite import check_finite, model_weights

    if isinstance(model, keras.Model):
        check_finite(model_weights(model), "export_tflite", allow_nonfinite)
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"export_tflite: quantize must be one of {list(QUANTIZE_MODES)}, got {quantize!r}."
        )
    if not isinstance(model, keras.Model):
        raise ValueError(f"export_tflite: expected a keras.Model, got {type(model).__name__}.")
    path = Path(path)
    if path.exists() and not overwrite:
        raise ValueError(f"export_tflite: {path} exists; pass overwrite=True or another path.")
    from keras_recipes.seq2seq import Seq2Seq

    if hasattr(model, "tflite_functions"):  # the family's own (protocol hook)
        functions = model.tflite_functions(_prefill_length(model.config.max_seq_len, prefill_len))
    elif is_causal_lm(model):
        prefill = _prefill_length(model.config.max_seq_len, prefill_len)
        functions = _causal_lm_functions(model, prefill)
    elif isinstance(model, Seq2Seq):
        functions = _seq2seq_functions(model)
    else:
        functions = _keras_functions(model)
    flatbuffer = _convert(model, functions, quantize)
    if quantize == "dynamic-int8" and is_causal_lm(model) and _tied(model):
        dim = int(model.output_kernel().shape[0])
        flatbuffer = share_tied_int8_table(flatbuffer, model.config.vocab_size, dim)
    # Written and verified under a temporary name (.NAME.*.partial.tflite),
    # synced, then renamed: a kill leaves the old file or the new one.
    with atomic_path(path, suffix=".tflite") as partial:
        partial.write_bytes(flatbuffer)
        if verify:
            verify_tflite(partial, model, quantize)
    return path
