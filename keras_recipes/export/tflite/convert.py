"""TFLite (LiteRT) export: LLaMA `prefill` / `decode` with the KV cache as tensors.

The generative convention of LiteRT / ai-edge-torch: the model keeps no
state; every call takes the KV cache of each block as fixed-size input
tensors `(1, max_seq_len, n_kv_heads, head_dim)` and returns the updated
ones, and the caller (`TFLiteGenerator`) carries them from call to call.

- `prefill(tokens (1, P), input_pos (1,), k_cache_i, v_cache_i...)` writes
  the keys and values of `P` tokens starting at `input_pos` and returns
  the caches. Prompts are right-padded to `P`: a padded slot is overwritten
  before any real query can see it.
- `decode(tokens (1, 1), input_pos (1,), caches...)` feeds one token and
  returns `logits (1, vocab)` and the caches.

Only built-in TFLite ops are used (no Flex delegate), so the pip LiteRT
interpreter runs the file as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from keras_recipes._io import atomic_path

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


def _llama_functions(model, prefill_len: int) -> dict:
    cfg = model.config
    cache_spec = [1, cfg.max_seq_len, cfg.n_kv_heads, cfg.head_dim]
    names = [(f"k_cache_{i}", f"v_cache_{i}") for i in range(cfg.n_layers)]
    cache_specs = [tf.TensorSpec(cache_spec, tf.float32, name=n) for pair in names for n in pair]

    def unflatten(flat):
        return [(flat[2 * i], flat[2 * i + 1]) for i in range(cfg.n_layers)]

    def flatten(caches) -> dict:
        out = {}
        for (k_name, v_name), (k, v) in zip(names, caches, strict=True):
            out[k_name], out[v_name] = tf.cast(k, tf.float32), tf.cast(v, tf.float32)
        return out

    def run_blocks(tokens, position, caches):
        x = model.tok_embeddings(tokens)
        new_caches = []
        for block, (k, v) in zip(model.blocks, caches, strict=True):
            x, k, v = block(x, None, k, v, start_index=position)
            new_caches.append((k, v))
        return x, new_caches

    def head(x):
        """Logits `(1, vocab)` of the last hidden states `x (1, dim)`."""
        if model.output_projection is not None:
            return tf.cast(model.output_projection(model.norm(x)), tf.float32)
        # Tied: x @ E^T as a FULLY_CONNECTED on E itself, the constant the
        # embedding GATHER reads, so the file holds the table once. The norm's
        # scale joins the per-row factor: a constant MUL right before the
        # matmul would be folded into a scaled copy of E (stored twice again).
        norm = model.norm
        x = tf.cast(x, tf.float32)
        rms = tf.math.rsqrt(tf.reduce_mean(tf.square(x), -1, keepdims=True) + norm.epsilon)
        h = x * (rms * tf.cast(tf.convert_to_tensor(norm.scale), tf.float32))
        h = tf.cast(h, norm.compute_dtype)
        embeddings = tf.cast(tf.convert_to_tensor(model.tok_embeddings.embeddings), h.dtype)
        return tf.cast(tf.matmul(h, embeddings, transpose_b=True), tf.float32)

    token_spec = tf.TensorSpec([1, prefill_len], tf.int32, name="tokens")
    pos_spec = tf.TensorSpec([1], tf.int32, name="input_pos")

    @tf.function(input_signature=[token_spec, pos_spec, *cache_specs], autograph=False)
    def prefill(tokens, input_pos, *flat):
        _, caches = run_blocks(tokens, input_pos[0], unflatten(flat))
        return flatten(caches)

    @tf.function(
        input_signature=[tf.TensorSpec([1, 1], tf.int32, name="tokens"), pos_spec, *cache_specs],
        autograph=False,
    )
    def decode(tokens, input_pos, *flat):
        x, caches = run_blocks(tokens, input_pos[0], unflatten(flat))
        return {"logits": head(x[:, -1]), **flatten(caches)}

    return {"prefill": prefill, "decode": decode}


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


def _frozen(name: str, function):
    """`function` with its weights as constants, outputs still named, called `name`.

    The converter keeps captured variables as READ_VARIABLE ops that nothing
    initializes; frozen, they are plain constants (one buffer per weight,
    however many ops read it).
    """
    concrete = function.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    keys = sorted(concrete.structured_outputs)  # tf.nest flattens dicts by key

    def named(*args):
        return dict(zip(keys, frozen(*args), strict=True))

    named.__name__ = name
    specs = concrete.structured_input_signature[0]
    return tf.function(named, input_signature=specs, autograph=False).get_concrete_function()


def _convert(model, functions: dict, quantize: str | None) -> bytes:
    # Signatures are named after their functions (one function alone is
    # `serving_default`); from concrete functions, no stray `serve` endpoint
    # of a Keras export shadows them.
    concrete = [_frozen(name, function) for name, function in functions.items()]
    converter = tf.lite.TFLiteConverter.from_concrete_functions(concrete, tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
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


def _share_tied_int8_table(flatbuffer: bytes, vocab_size: int, dim: int) -> bytes:
    """One int8 copy of a tied embedding table instead of two.

    Dynamic-range quantization quantizes the table once per kind of use:
    per row for the output `FULLY_CONNECTED` (`x @ E^T`) and per tensor for
    the `GATHER` of the input embeddings, two `(vocab, dim)` int8 buffers.
    This rewrites every such gather to read the per-row table and scale the
    rows it picks by their own scales (`GATHER`, `CAST`, `GATHER` of the
    scales, `MUL` in place of its `DEQUANTIZE`); the per-tensor buffer is
    dropped. The embeddings are then the output layer's dequantized rows
    exactly. A graph of another shape is returned unchanged.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    ops_ = schema.BuiltinOperator
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))

    def code(op):
        c = model.operatorCodes[op.opcodeIndex]
        return max(c.builtinCode, c.deprecatedBuiltinCode)

    def is_table(tensor, per_row):
        q = tensor.quantization
        rows = per_row and q is not None and q.scale is not None and len(q.scale) == vocab_size
        flat = not per_row and q is not None and q.scale is not None and len(q.scale) == 1
        return (
            tensor.type == schema.TensorType.INT8
            and list(tensor.shape) == [vocab_size, dim]
            and model.buffers[tensor.buffer].data is not None
            and (rows and q.quantizedDimension == 0 or flat)
        )

    heads, gathers = [], []
    for graph in model.subgraphs:
        for op in graph.operators:
            if code(op) == ops_.FULLY_CONNECTED and is_table(graph.tensors[op.inputs[1]], True):
                heads.append(graph.tensors[op.inputs[1]])
            elif code(op) == ops_.GATHER and is_table(graph.tensors[op.inputs[0]], False):
                users = [o for o in graph.operators if op.outputs[0] in list(o.inputs)]
                options = op.builtinOptions or schema.GatherOptionsT()
                if len(users) != 1 or code(users[0]) != ops_.DEQUANTIZE or options.axis:
                    return flatbuffer
                gathers.append((graph, op, users[0]))
    if not gathers or len({t.buffer for t in heads}) != 1:
        return flatbuffer
    head = heads[0]
    old_buffers = {graph.tensors[op.inputs[0]].buffer for graph, op, _ in gathers}

    def dequantized(tensor):
        values = np.frombuffer(model.buffers[tensor.buffer].data.tobytes(), np.int8)
        scale = np.asarray(tensor.quantization.scale, np.float32)
        return values.reshape(vocab_size, dim) * (scale[:, None] if scale.size > 1 else scale)

    # Both must hold the same matrix (one quantization step apart), not, say, a
    # copy the converter pre-multiplied by a scale.
    head_values = dequantized(head)
    for graph, op, _ in gathers:
        table = graph.tensors[op.inputs[0]]
        step = float(table.quantization.scale[0])
        if not np.abs(dequantized(table) - head_values).max() <= step:
            return flatbuffer
    for graph in model.subgraphs:  # nothing else may read the per-tensor table
        for op in graph.operators:
            for i in op.inputs:
                if i >= 0 and graph.tensors[i].buffer in old_buffers:
                    if all(op is not g[1] for g in gathers):
                        return flatbuffer

    def opcode(builtin):
        for i, c in enumerate(model.operatorCodes):
            if max(c.builtinCode, c.deprecatedBuiltinCode) == builtin:
                return i
        c = schema.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = builtin, min(builtin, 127), 1
        model.operatorCodes.append(c)
        return len(model.operatorCodes) - 1

    def new_tensor(graph, name, shape, dtype, buffer=0):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), np.array(shape, np.int32), dtype, buffer
        graph.tensors.append(t)
        return len(graph.tensors) - 1

    def new_op(builtin, inputs, outputs, options_type=0, options=None):
        op = schema.OperatorT()
        op.opcodeIndex = opcode(builtin)
        op.inputs, op.outputs = np.array(inputs, np.int32), np.array(outputs, np.int32)
        op.builtinOptionsType, op.builtinOptions = options_type, options
        return op

    scales = np.asarray(head.quantization.scale, np.float32).reshape(vocab_size, 1)
    scale_buffer = schema.BufferT()
    scale_buffer.data = np.frombuffer(scales.tobytes(), np.uint8)
    model.buffers.append(scale_buffer)
    float32 = schema.TensorType.FLOAT32
    for graph, gather, dequantize in gathers:
        table = graph.tensors[gather.inputs[0]]
        table.buffer, table.quantization = head.buffer, head.quantization
        picked = graph.tensors[gather.outputs[0]]
        picked.quantization = None  # raw int8 rows; the row scales come next
        shape = list(picked.shape)
        rows = new_tensor(graph, "tied_embedding/rows", shape, float32)
        table_scales = new_tensor(
            graph, "tied_embedding/scales", [vocab_size, 1], float32, len(model.buffers) - 1
        )
        row_scales = new_tensor(graph, "tied_embedding/row_scales", [*shape[:-1], 1], float32)
        mul_options = schema.MulOptionsT()
        replacement = [
            new_op(ops_.CAST, [gather.outputs[0]], [rows]),
            new_op(
                ops_.GATHER,
                [table_scales, gather.inputs[1]],
                [row_scales],
                schema.BuiltinOptions.GatherOptions,
                gather.builtinOptions,
            ),
            new_op(
                ops_.MUL,
                [rows, row_scales],
                list(dequantize.outputs),
                schema.BuiltinOptions.MulOptions,
                mul_options,
            ),
        ]
        at = next(i for i, op in enumerate(graph.operators) if op is dequantize)
        graph.operators[at : at + 1] = replacement
    for i in old_buffers:
        model.buffers[i].data = None
    return _pack(model)


def _pack(model) -> bytes:
    """Serializes a flatbuffer object model, constant buffers aligned to 16 bytes as the
    converter writes them (flatbuffers' Python builder aligns a vector to its item size)."""
    import flatbuffers

    class AlignedBuilder(flatbuffers.Builder):
        def CreateNumpyVector(self, x):
            if x.dtype != np.uint8 or x.size < 16:
                return super().CreateNumpyVector(x)
            payload = x.tobytes()
            self.StartVector(1, len(payload), 16)
            self.head = self.head - len(payload)
            self.Bytes[self.head : self.head + len(payload)] = payload
            self.vectorNumElems = len(payload)
            return self.EndVector()

    builder = AlignedBuilder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _interpreter(model_path: str | os.PathLike, num_threads: int | None = None):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(model_path), num_threads=num_threads)


class TFLiteGenerator:
    """Generate text token ids with an exported LLaMA `.tflite` and LiteRT.

    Runs the `prefill` and `decode` signatures of a file written by
    `export_tflite`, carrying the KV caches between calls.

    Args:
        path: str or path of the `.tflite` file.
        num_threads: int or None, LiteRT CPU threads (None: its default).

    Examples:

    ```python
    export_tflite(model, "llama.tflite")
    generator = TFLiteGenerator("llama.tflite")
    generator.generate([[1, 5, 9]], max_new_tokens=32)   # same as model.generate
    ```
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"TFLiteGenerator: no .tflite file at {path}.")
        self.interpreter = _interpreter(path, num_threads)
        signatures = self.interpreter.get_signature_list()
        if not {"prefill", "decode"} <= set(signatures):
            raise ValueError(
                f"TFLiteGenerator: {path} has signatures {sorted(signatures)}; a LLaMA export "
                "has `prefill` and `decode` (write it with export_tflite(llama_model, ...))."
            )
        self.prefill_runner = self.interpreter.get_signature_runner("prefill")
        self.decode_runner = self.interpreter.get_signature_runner("decode")
        details = self.decode_runner.get_input_details()
        self.cache_names = sorted(n for n in details if "_cache_" in n)
        self.cache_shape = tuple(details[self.cache_names[0]]["shape"])
        self.context = int(self.cache_shape[1])
        self.prefill_len = int(self.prefill_runner.get_input_details()["tokens"]["shape"][1])
        self.vocab_size = int(self.decode_runner.get_output_details()["logits"]["shape"][-1])

    def _empty_caches(self) -> dict:
        return {name: np.zeros(self.cache_shape, np.float32) for name in self.cache_names}

    def prefill(self, prompt: np.ndarray) -> dict:
        """The caches after the prompt's tokens, all but the last one."""
        caches = self._empty_caches()
        body = prompt[:-1]
        for start in range(0, len(body), self.prefill_len):
            chunk = np.zeros((1, self.prefill_len), np.int32)
            piece = body[start : start + self.prefill_len]
            chunk[0, : len(piece)] = piece
            caches = self.prefill_runner(
                tokens=chunk, input_pos=np.array([start], np.int32), **caches
            )
        return caches

    def decode(self, token: int, position: int, caches: dict) -> tuple[np.ndarray, dict]:
        """Logits `(vocab,)` after feeding `token` at `position`, and the new caches."""
        out = self.decode_runner(
            tokens=np.array([[token]], np.int32), input_pos=np.array([position], np.int32), **caches
        )
        logits = out.pop("logits")[0]
        return logits, out

    def logits(self, token_ids) -> np.ndarray:
        """Logits `(T, vocab)` after each token of one sequence (teacher forcing).

        Row `t` is the prediction for token `t + 1`, as `model(ids)[0, t]`;
        comparing its argmax with a reference continuation measures how
        often a quantized file picks the same next token.
        """
        ids = np.asarray(token_ids, np.int32).reshape(-1)
        if not 0 < len(ids) <= self.context:
            raise ValueError(f"TFLiteGenerator.logits: need 1 to {self.context} token ids.")
        caches = self._empty_caches()
        rows = []
        for position, token in enumerate(ids):
            row, caches = self.decode(int(token), position, caches)
            rows.append(row)
        return np.stack(rows)

    def generate(
        self,
        prompt_ids,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_k: int | None = None,
        seed: int | None = None,
        eos_id: int | None = None,
        pad_id: int = 0,
    ) -> np.ndarray:
        """Continue each prompt; arguments as `LlamaModel.generate`.

        Returns:
            np.int32 `(batch, longest_prompt + max_new_tokens)`, prompts
            included and left-padded with `pad_id`; positions after `eos_id`
            hold `pad_id`. Sampling (temperature > 0) uses numpy's generator
            seeded with `seed`, so it is reproducible but not the same draw
            as `model.generate`'s.
        """
        if isinstance(prompt_ids, np.ndarray) or hasattr(prompt_ids, "shape"):
            array = np.asarray(prompt_ids)
            prompts = [list(row) for row in (array[None] if array.ndim == 1 else array)]
        elif prompt_ids and np.isscalar(prompt_ids[0]):
            prompts = [list(prompt_ids)]  # one prompt as a flat list
        else:
            prompts = [list(p) for p in prompt_ids]
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("TFLiteGenerator.generate: empty prompt; give at least one token id.")
        longest = max(len(p) for p in prompts)
        if longest + max_new_tokens > self.context:
            raise ValueError(
                f"TFLiteGenerator.generate: prompt length {longest} + max_new_tokens "
                f"{max_new_tokens} exceeds the context {self.context}."
            )
        for prompt in prompts:
            ids = np.asarray(prompt)
            if ids.min() < 0 or ids.max() >= self.vocab_size:
                raise ValueError(
                    f"TFLiteGenerator.generate: token ids must be in [0, {self.vocab_size})."
                )
        rng = np.random.default_rng(seed)
        out = np.full((len(prompts), longest + max_new_tokens), pad_id, np.int32)
        for row, prompt in enumerate(prompts):
            prompt = np.asarray(prompt, np.int32)
            offset = longest - len(prompt)
            out[row, offset:longest] = prompt
            if max_new_tokens == 0:
                continue
            caches = self.prefill(prompt)
            token, position = int(prompt[-1]), len(prompt) - 1
            for step in range(max_new_tokens):
                logits, caches = self.decode(token, position, caches)
                token = _pick(logits, temperature, top_k, rng)
                position += 1
                out[row, longest + step] = token
                if eos_id is not None and token == eos_id:
                    break
        return out


def _pick(logits: np.ndarray, temperature: float, top_k: int | None, rng) -> int:
    if temperature == 0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / temperature
    if top_k:
        cutoff = np.sort(scaled)[-min(top_k, scaled.size)]
        scaled = np.where(scaled >= cutoff, scaled, -np.inf)
    probs = np.exp(scaled - scaled.max())
    return int(rng.choice(scaled.size, p=probs / probs.sum()))


def verify_tflite(path, model, quantize: str | None = None, steps: int = 8) -> dict:
    """Checks a `.tflite` export against the Keras model; returns what it measured.

    Float32 exports must give the same greedy tokens and logits within
    1e-3 (relative to their scale); quantized ones logits whose cosine
    similarity to the Keras model's is at least 0.95.
    """
    from keras_recipes.llama import LlamaModel

    if isinstance(model, LlamaModel):
        generator = TFLiteGenerator(path)
        prompt = (np.arange(7) * 11 + 1) % model.config.vocab_size
        steps = min(steps, model.config.max_seq_len - len(prompt))
        caches = generator.prefill(prompt)
        got, _ = generator.decode(int(prompt[-1]), len(prompt) - 1, caches)
        want = np.asarray(model(prompt[None].astype("int32"), training=False))[0, -1]
        report = {"cosine": _cosine(got, want)}
        if quantize is None:
            worst = float(np.abs(got - want).max())
            if not worst <= 1e-3 * max(1.0, float(np.abs(want).max())):
                raise ValueError(f"verify_tflite: decode logits differ from Keras by {worst:g}.")
            tokens = generator.generate(prompt[None], steps)
            expected = model.generate(prompt[None], steps)
            if not np.array_equal(tokens, expected):
                raise ValueError(
                    f"verify_tflite: greedy tokens differ from model.generate:\n{tokens}\n{expected}"
                )
        elif not report["cosine"] >= 0.95:
            raise ValueError(
                f"verify_tflite: {quantize} logits are too far from the Keras model's "
                f"(cosine similarity {report['cosine']:.3f} < 0.95)."
            )
        return report
    from keras_recipes.seq2seq import Seq2Seq

    if isinstance(model, Seq2Seq):
        return _verify_seq2seq(path, model, quantize)
    interpreter = _interpreter(path)
    runner = interpreter.get_signature_runner("serving_default")
    detail = runner.get_input_details()["inputs"]
    shape = tuple(detail["shape"])
    if np.issubdtype(detail["dtype"], np.integer):
        x = (np.arange(np.prod(shape)).reshape(shape) * 7 + 1) % _vocab(model)
    else:
        x = np.sin(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape)
    x = x.astype(detail["dtype"])
    got = runner(inputs=x)["outputs"]
    want = np.asarray(model(x, training=False), np.float32)
    tolerance = 1e-4 if quantize is None else 0.05
    worst = float(np.abs(got - want).max())
    if not worst <= tolerance * max(1.0, float(np.abs(want).max())):
        raise ValueError(f"verify_tflite: outputs differ from the Keras model by {worst:g}.")
    return {"max_abs_error": worst}


def _vocab(model) -> int:
    for layer in model.layers:
        if isinstance(layer, keras.layers.Embedding):
            return layer.input_dim
    return 2


def _cosine(a, b) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def export_tflite(
    model: keras.Model,
    path: str | os.PathLike,
    quantize: str | None = None,
    prefill_len: int | None = None,
    verify: bool = True,
    overwrite: bool = False,
) -> Path:
    """Convert a model to a `.tflite` file that runs with built-in ops only.

    A `LlamaModel` gets the `prefill` and `decode` signatures described in
    this module's docstring (run them with `TFLiteGenerator`); other
    one-input models (classifiers, taggers, RNNs with a fixed sequence
    length) get `serving_default` (`inputs` -> `outputs`) at batch size 1.
    The file is written under a temporary name, checked against the Keras
    model (`verify_tflite`) and renamed into place.

    Args:
        model: `LlamaModel` or a one-input `keras.Model`.
        path: str or path of the `.tflite` file to write.
        quantize: None (float32), `"dynamic-int8"` (int8 weights, float
            activations) or `"float16"` (float16 weights).
        prefill_len: int or None, tokens per `prefill` call; must divide
            `max_seq_len` (default: the largest of 64, 32, ... that does).
        verify: bool, default True.
        overwrite: bool, default False. An existing file is an error unless
            True.

    Returns:
        The `Path` written.

    Examples:

    ```python
    model = build_llama("tiny")
    export_tflite(model, "saved_models/llama.tflite")
    export_tflite(model, "saved_models/llama-int8.tflite", quantize="dynamic-int8")
    TFLiteGenerator("saved_models/llama.tflite").generate([[1, 2, 3]], 16)
    ```
    """
    from keras_recipes.llama import LlamaModel

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

    if isinstance(model, LlamaModel):
        functions = _llama_functions(model, _prefill_length(model.config.max_seq_len, prefill_len))
    elif isinstance(model, Seq2Seq):
        functions = _seq2seq_functions(model)
    else:
        functions = _keras_functions(model)
    flatbuffer = _convert(model, functions, quantize)
    if quantize == "dynamic-int8" and getattr(model, "output_projection", 1) is None:
        cfg = model.config  # a tied LlamaModel
        flatbuffer = _share_tied_int8_table(flatbuffer, cfg.vocab_size, cfg.dim)
    # Written and verified under a temporary name (.NAME.*.partial.tflite),
    # synced, then renamed: a kill leaves the old file or the new one.
    with atomic_path(path, suffix=".tflite") as partial:
        partial.write_bytes(flatbuffer)
        if verify:
            verify_tflite(partial, model, quantize)
    return path


def _verify_seq2seq(path, model, quantize) -> dict:
    """Greedy ids of the `.tflite` equal the model's on a probe source (float32 exports)."""
    translator = TFLiteTranslator(path)
    vocab = len(model.source_tokenizer)
    length = model.max_source_length
    probe = ((np.arange(length) * 5 + 3) % max(1, vocab - 4) + 4).astype("int32")[None]
    got = translator.greedy_search(probe)
    want, _ = model.greedy_search(probe)
    report = {"greedy_equal": bool(np.array_equal(got, want))}
    if quantize is None and not report["greedy_equal"]:
        raise ValueError(f"verify_tflite: greedy ids differ from the Keras model's:\n{got}\n{want}")
    return report


class TFLiteTranslator:
    """Translate strings with a `Seq2Seq` exported by `export_tflite`, on LiteRT.

    One source at a time: `encode` once, then one `decode_step` per output
    token (per hypothesis, for beam search), the decoder state and encoder
    outputs carried between calls. Greedy and beam search return the Keras
    model's translations. The tokenizers come from the file itself.

    Args:
        path: the `.tflite` file.
        num_threads: LiteRT threads (None: its default).

    Examples:

    ```python
    export_tflite(model, "dates.tflite")
    TFLiteTranslator("dates.tflite").translate(["9 May 2018"])  # ["2018-05-09"]
    TFLiteTranslator("dates.tflite").translate(["9 May 2018"], beam_width=4)
    ```
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        import json

        from keras_recipes.seq2seq import SequenceTokenizer

        interpreter = _interpreter(path, num_threads)
        names = interpreter.get_signature_list()
        if not {"encode", "decode_step", "tokenizers"} <= set(names):
            raise ValueError(
                f"TFLiteTranslator: {path} has signatures {sorted(names)}, not a Seq2Seq export "
                "(encode, decode_step, tokenizers)."
            )
        self._encode = interpreter.get_signature_runner("encode")
        self._decode = interpreter.get_signature_runner("decode_step")
        configs = interpreter.get_signature_runner("tokenizers")()["configs"][0]
        configs = json.loads(configs.decode() if isinstance(configs, bytes) else configs)
        self.source_tokenizer = SequenceTokenizer.from_config(configs["source"])
        self.target_tokenizer = SequenceTokenizer.from_config(configs["target"])
        self.max_source_length = int(self._encode.get_input_details()["source_ids"]["shape"][1])
        self.max_target_length = int(configs["max_target_length"])

    def _check_sources(self, source_ids) -> np.ndarray:
        source_ids = np.asarray(source_ids, np.int32)
        if source_ids.ndim != 2 or source_ids.shape[1] > self.max_source_length:
            raise ValueError(
                f"TFLiteTranslator: source ids must be (batch, <= {self.max_source_length}), "
                f"got shape {source_ids.shape}."
            )
        return source_ids

    def _encode_row(self, row):
        """`(context, states)` of one source: the inputs `decode_step` takes besides the token."""
        from keras_recipes.seq2seq import PAD_ID

        padded = np.full((1, self.max_source_length), PAD_ID, np.int32)
        padded[0, : len(row)] = row
        encoded = self._encode(source_ids=padded)
        context = {k: encoded[k] for k in ("encoder_outputs", "source_mask")}
        return context, self._states(encoded)

    @staticmethod
    def _states(outputs) -> dict:
        return {k: v for k, v in outputs.items() if k.startswith("state_")}

    def greedy_search(self, source_ids, max_length: int | None = None) -> np.ndarray:
        """Greedy target ids `(B, L)` for source ids `(B, S)`, as `Seq2Seq.greedy_search`."""
        from keras_recipes.seq2seq import END_ID, PAD_ID, START_ID

        max_length = max_length or self.max_target_length
        rows = []
        for row in self._check_sources(source_ids):
            context, states = self._encode_row(row)
            token, out = START_ID, []
            for _ in range(max_length):
                step = self._decode(token=np.array([[token]], np.int32), **context, **states)
                states = self._states(step)
                token = int(np.argmax(step["logits"][0]))
                out.append(token)
                if token == END_ID:
                    break
            rows.append(out)
        width = max(len(r) for r in rows)
        return np.array([r + [PAD_ID] * (width - len(r)) for r in rows], np.int32)

    def beam_search(
        self,
        source_ids,
        beam_width: int = 4,
        length_penalty: float = 0.0,
        max_length: int | None = None,
    ) -> np.ndarray:
        """Target ids `(B, L)` of the best hypothesis per source, as `Seq2Seq.beam_search`.

        The same search (`keras_recipes.seq2seq.beam_search`, GNMT length
        penalty), each hypothesis stepped through the file's `decode_step`.
        """
        from keras_recipes.seq2seq import beam_search, check_beam_width

        k = check_beam_width(beam_width)
        contexts, states = [], []
        for row in self._check_sources(source_ids):
            context, state = self._encode_row(row)
            contexts += [context] * k
            states += [state] * k

        def step(tokens, states):
            outputs = [
                self._decode(token=tokens[i : i + 1], **contexts[i], **state)
                for i, state in enumerate(states)
            ]
            logits = np.concatenate([out["logits"] for out in outputs])
            return logits, [self._states(out) for out in outputs], None

        ids, _ = beam_search(
            step,
            states,
            len(states) // k,
            k,
            max_length or self.max_target_length,
            length_penalty,
            lambda states, rows: [states[row] for row in rows],
        )
        return ids

    def translate(
        self,
        texts,
        beam_width: int = 1,
        length_penalty: float = 0.0,
        max_length: int | None = None,
    ) -> list[str]:
        """Source strings -> target strings: greedy, or beam search for `beam_width > 1`."""
        from keras_recipes.seq2seq import encode_sources

        ids = encode_sources(self.source_tokenizer, texts, self.max_source_length)
        if beam_width == 1:
            out = self.greedy_search(ids, max_length)
        else:
            out = self.beam_search(ids, beam_width, length_penalty, max_length)
        return [self.target_tokenizer.decode(row) for row in out]
