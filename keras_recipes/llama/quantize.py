"""Weights at 2 and 1 bytes for decoding: `quantize_for_decoding(model, "int8" | "bfloat16")`.

At batch 1 a decode step reads every weight once and does two flops with
each, so its speed is the speed of reading weights. Fewer bytes only pay
when the matmul reads them as they are, and TensorFlow has no core matmul
that reads int8 weights with float activations: dequantising to float32 at
every step reads and writes more bytes than float32 does (why Keras's
`model.quantize("int8")` decodes no faster; dequantising in L2-sized tiles
helps, see README's Performance section),
oneDNN's `QuantizedMatMulWithBiasAndDequantize` builds a new kernel for
every new input range, and XLA's fused `sum(convert(w) * x)` does not
vectorise (`benchmarks/quantize_bench.py` times every form tried). So:

- The stored weights are 1 or 2 bytes: bfloat16, or int8 with one float32
  scale per output channel (symmetric, `scale = max|w| / 127`; the values
  in [-127, 127] kept as uint8 `value + 128`, what `Dequantize` reads
  fastest), rows = output channels. That is what a SavedModel holds and
  what `model(token_ids)` multiplies (int8 by `Dequantize` in tiles of rows
  small enough to stay in L2).
- A decoding loop (`generate`, the SavedModel's `generate` signatures)
  runs inside `QuantizedLlama.decoding()`: each matrix is converted to
  bfloat16 where the CPU multiplies it (AVX512-BF16 or AMX,
  `keras_recipes.hardware.has_fast_bfloat16`; int8's values are exact in
  bfloat16, the scales applied to the outputs), else to float32, and every
  step multiplies those copies (oneDNN's bfloat16 matmul as `weight @ x.T`,
  float32 accumulation). In-process `generate` converts once per model and
  keeps the copies (`kept_copies`); a SavedModel converts once per request.
  The matmul's output is rounded to bfloat16, so the 8 likeliest logits are
  recomputed in float32. Where the CPU has no bfloat16, the
  copies are float32 and a step is float32's graph step (not measured on
  such a CPU yet).

Activations (norms, RoPE, attention, the residual stream, the KV caches)
stay float32 (bfloat16 matmul inputs excepted). The token embedding table
is stored the same way (its rows dequantised when gathered); with tied
embeddings it is the output head too.

The result, `QuantizedLlama`, is a causal LM in the sense of
`keras_recipes.causal_lm` (`call_with_cache`, `init_caches`,
`output_kernel`, `config`), decodes like the float model
(`.generate(prompt_ids, max_new_tokens, temperature=..., top_k=..., top_p=...,
seed)`, the same sampler) and exports with
`export_saved_model(model, path, weights="int8")`. Its forward pass is
written with plain TensorFlow ops and runs without XLA (TF Serving runs
without it, and XLA's CPU code for these forms is slower);
`tests/test_quantize.py` holds it equal to `LlamaModel.call` within
quantisation error.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import tensorflow as tf

from keras_recipes.causal_lm.generation import check_prompts, windows_for
from keras_recipes.causal_lm.graph_generate import generate_in_graph
from keras_recipes.causal_lm.settings import GenerationConfig
from keras_recipes.hardware import has_fast_bfloat16
from keras_recipes.layers.causal_self_attention import MASK_VALUE
from keras_recipes.llama.config import LlamaConfig
from keras_recipes.llama.graph_ops import (
    attend_one,
    rms_norm,
    rope_tables,
    rotate,
    update_cache_slice,
)

# Dequantising tiles of at most this many weights keeps each float32 tile in L2.
_TILE_WEIGHTS = 1 << 18
# Logits oneDNN's bfloat16 matmul gives (rounded to bfloat16) that are recomputed in float32.
_REFINED_LOGITS = 8


def bfloat16_kernel() -> str:
    """`"onednn"` where the CPU multiplies bfloat16 natively, else `"dequantize"`."""
    return "onednn" if has_fast_bfloat16() else "dequantize"


def _tiles(rows: int, columns: int) -> list[int]:
    """Row counts of the tiles a `(rows, columns)` matrix is dequantised in."""
    per_tile = max(1, _TILE_WEIGHTS // columns)
    return [min(per_tile, rows - start) for start in range(0, rows, per_tile)]


class _Matrix:
    """One weight matrix `(out, in)` (rows = output channels) in its storage dtype.

    int8: symmetric per-row scales, values in [-127, 127] stored as uint8
    `value + 128`; each tile of rows is dequantised by TensorFlow's
    `Dequantize` (MIN_FIRST from -128: the value itself, vectorised)
    into a float32 tile small enough to stay in L2, multiplied, and the
    outputs scaled per channel. bfloat16: one oneDNN bfloat16 matmul where
    the CPU multiplies bfloat16, else the same tiling with a cast.
    """

    def __init__(self, kernel: np.ndarray, dtype: str, name: str):
        """`kernel` is Keras's `(in, out)` layout (float32)."""
        rows = np.ascontiguousarray(np.asarray(kernel, np.float32).T)
        self.dtype, self.shape = dtype, rows.shape
        self.tiles = _tiles(*rows.shape)
        if dtype == "int8":
            peak = np.abs(rows).max(axis=1)
            scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
            values = np.clip(np.round(rows / scale[:, None]), -127, 127)
            # Offset binary (value + 128, as uint8): what `Dequantize`'s
            # MIN_FIRST mode reads, exactly and faster than its int8 SCALED mode.
            stored = (values + 128).astype(np.uint8)
            self.scale = tf.Variable(scale, trainable=False, name=f"{name}_scale")
            self.weight = tf.Variable(stored, trainable=False, name=name)
            self.kernel = "dequantize"
        else:
            self.scale = None
            self.weight = tf.Variable(tf.constant(rows, tf.bfloat16), trainable=False, name=name)
            self.kernel = bfloat16_kernel()

    @property
    def variables(self) -> list:
        return [self.weight] + ([self.scale] if self.scale is not None else [])

    def working_copy(self):
        """The matrix as a decoding loop multiplies it, built once per loop
        (`QuantizedLlama.decoding`): bfloat16 where the CPU multiplies it
        (int8's values are exact in bfloat16, the scales applied after),
        else float32."""
        if self.dtype == "int8":
            if bfloat16_kernel() != "onednn":
                return self._dequantize(self.weight)
            # `value + 128` minus 128 wraps, in uint8, to the value's int8 bits:
            # fewer bytes moved than `Dequantize` to float32 and a cast.
            return tf.cast(tf.bitcast(self.weight - 128, tf.int8), tf.bfloat16)
        # Read once, before the loop: a variable read inside the loop body
        # copied the whole matrix at every step (15% of a bfloat16 step).
        stored = tf.convert_to_tensor(self.weight)
        return stored if self.kernel == "onednn" else tf.cast(stored, tf.float32)

    def __call__(self, x, working=None):
        """`x (N, in)` float32 -> `(N, out)` float32; `working`: `working_copy()` or None."""
        if working is not None or self.kernel == "onednn":
            weight = self.weight if working is None else working
            if weight.dtype == tf.bfloat16:
                # `weight @ x.T`: oneDNN's bfloat16 matmul reads a (out, in)
                # left operand faster than the `x @ weight.T` form.
                product = tf.matmul(weight, tf.cast(x, tf.bfloat16), transpose_b=True)
                out = tf.transpose(tf.cast(product, tf.float32))
            else:
                out = tf.matmul(x, weight, transpose_b=True)
            return out * self.scale if self.scale is not None else out
        tiles = tf.split(self.weight, self.tiles, axis=0) if len(self.tiles) > 1 else [self.weight]
        outs = [tf.matmul(x, self._dequantize(tile), transpose_b=True) for tile in tiles]
        out = tf.concat(outs, axis=1) if len(outs) > 1 else outs[0]
        return out * self.scale if self.scale is not None else out

    def _dequantize(self, tile):
        if self.dtype == "int8":
            return tf.raw_ops.Dequantize(
                input=tf.bitcast(tile, tf.quint8),
                min_range=tf.constant(-128.0),
                max_range=tf.constant(127.0),
                mode="MIN_FIRST",
                dtype=tf.float32,
            )
        return tf.cast(tile, tf.float32)

    def rows(self, ids):
        """Float32 rows `ids` (the embedding lookup of a tied table)."""
        rows = tf.cast(tf.gather(self.weight, ids), tf.float32)
        if self.scale is not None:
            rows = (rows - 128.0) * tf.gather(self.scale, ids)[..., None]
        return rows

    def dequantized(self) -> np.ndarray:
        """The float32 `(out, in)` matrix this one stands for (for tests and checks)."""
        rows = np.asarray(tf.cast(self.weight, tf.float32))
        if self.scale is None:
            return rows
        return (rows - 128.0) * self.scale.numpy()[:, None]


class QuantizedLlama(tf.Module):
    """A `LlamaModel` for decoding, with int8 or bfloat16 weights (`quantize_for_decoding`).

    A causal LM (`keras_recipes.causal_lm`): `call_with_cache`,
    `init_caches`, `output_kernel`, `config`; `model(token_ids)` gives the
    float32 logits `(B, T, vocab)` and `generate(...)` decodes as
    `LlamaModel.generate` does, with the same sampler, in one TensorFlow
    graph run by TensorFlow's kernels (the graph the SavedModel's `generate`
    signature holds). Greedy decoding is deterministic; sampled draws are
    TensorFlow's, not XLA's (see `keras_recipes.causal_lm.sampling`).

    Its forward pass restates `LlamaModel.call` on the stored weights:
    q, k, v as one matrix and w1, w3 as another; RoPE as `x * cos +
    swap(x) * sin` on queries and keys together (the queries' 1/sqrt(hd)
    folded into the tables); attention over the `(B, S, kv_heads, hd)`
    caches, written in place.
    """

    def __init__(self, config, weights: str, arrays):
        """Built by `quantize_for_decoding(model, weights)` or `QuantizedLlama.random`.

        `arrays(name)` gives each float32 weight in Keras's layout, one at a
        time (so a model is never held in float32 whole): `"{i}.wq"`,
        `"{i}.wk"`, `"{i}.wv"`, `"{i}.wo"`, `"{i}.w1"`, `"{i}.w2"`, `"{i}.w3"`
        `(in, out)` and `"{i}.attention_norm"`, `"{i}.ffn_norm"` for block
        `i`; `"tok_embeddings"` `(vocab, dim)`, `"norm"`, and `"output"`
        `(dim, vocab)` where the head is not tied.
        """
        super().__init__(name=f"quantized_llama_{weights}")
        cfg = config
        self.config, self.weights_dtype = cfg, weights
        self.n_heads, self.n_kv, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.norm_eps = cfg.norm_eps

        def matrix(names, name):
            kernel = np.concatenate([arrays(n) for n in names], 1)
            return _Matrix(kernel, weights, name)

        def norm(name):
            return tf.Variable(arrays(name), trainable=False)

        self.layers = [
            dict(
                attention_norm=norm(f"{i}.attention_norm"),
                wqkv=matrix([f"{i}.wq", f"{i}.wk", f"{i}.wv"], f"layers_{i}_wqkv"),
                wo=matrix([f"{i}.wo"], f"layers_{i}_wo"),
                ffn_norm=norm(f"{i}.ffn_norm"),
                w13=matrix([f"{i}.w1", f"{i}.w3"], f"layers_{i}_w13"),
                w2=matrix([f"{i}.w2"], f"layers_{i}_w2"),
            )
            for i in range(cfg.n_layers)
        ]
        self.norm = norm("norm")
        self.embeddings = _Matrix(arrays("tok_embeddings").T, weights, "tok_embeddings")
        self.head = self.embeddings if cfg.tie_embeddings else matrix(["output"], "output")
        self.rotate_half = cfg.rope_convention == "rotate_half"
        self.cos, self.sin = rope_tables(
            cfg.head_dim, cfg.max_seq_len, cfg.rope_theta, cfg.rope_scaling, cfg.rope_convention
        )
        scale = [1.0 / math.sqrt(self.head_dim)] * self.n_heads + [1.0] * self.n_kv
        self.row_scale = tf.constant(scale)[:, None]
        self._generate_functions = {}
        self._working = None
        self._copies = None

    @classmethod
    def random(cls, config, weights: str, seed: int = 0, stddev: float = 0.02):
        """A randomly initialised model of `config` in `weights`, never held in float32.

        For timing models too large to build in float32 first (the 1B row of
        `benchmarks/llama_bench.py --scaling`): each matrix is drawn from
        N(0, stddev) in float32 on its own and stored at once; norms are 1.

        >>> from keras_recipes.llama import LlamaConfig
        >>> QuantizedLlama.random(LlamaConfig.preset("tiny"), "int8").generate([[1]], 2).shape
        (1, 3)
        """
        if weights not in ("int8", "bfloat16"):
            raise ValueError(
                f"QuantizedLlama.random: weights must be 'int8' or 'bfloat16', got {weights!r}."
            )
        rng = np.random.default_rng(seed)
        q, kv = config.n_heads * config.head_dim, config.n_kv_heads * config.head_dim
        shapes = dict(
            wq=(config.dim, q), wk=(config.dim, kv), wv=(config.dim, kv), wo=(q, config.dim),
            w1=(config.dim, config.hidden_dim), w3=(config.dim, config.hidden_dim),
            w2=(config.hidden_dim, config.dim),
            tok_embeddings=(config.vocab_size, config.dim), output=(config.dim, config.vocab_size),
        )  # fmt: skip

        def arrays(name):
            kind = name.split(".")[-1]
            if kind.endswith("norm"):
                return np.ones(config.dim, np.float32)
            return (rng.standard_normal(shapes[kind], np.float32) * stddev).astype(np.float32)

        return cls(config, weights, arrays)

    @contextlib.contextmanager
    def decoding(self, copies: dict | None = None):
        """Within it, graph code built multiplies per-loop working copies of the matrices.

        TensorFlow has no core matmul that reads int8 weights with float
        activations, and dequantising at every step costs more than reading
        float32. So a decoding loop (`generate`, the SavedModel's `generate`
        signature) converts every matrix once, before its first step: to
        bfloat16 where the CPU multiplies bfloat16 (int8's values are exact
        in it; the per-channel scales apply to the outputs), else to
        float32. The stored weights stay 1 or 2 bytes; while a loop runs,
        its copies take 2 (or 4) bytes per weight. Use it inside a
        `tf.function`, around the loop: `with model.decoding():` then
        `out = generate_in_graph(model, ...)`.

        `copies`: working copies made earlier (`kept_copies()`), used
        instead of converting again.
        """
        self._working = self._working_copies() if copies is None else copies
        try:
            yield self
        finally:
            self._working = None

    def kept_copies(self) -> dict:
        """The working copies `generate` multiplies, made on its first call and kept.

        Converting every matrix reads and writes all of them (the time of
        a few decode steps), so `generate` in this
        process does it once, not per call: an int8 model then also holds
        a bfloat16 copy of its matrices (2 bytes per weight; a bfloat16
        model's copies are its own weights). An exported SavedModel converts per request
        (its variables are the 1- or 2-byte weights). `del model` frees both.
        """
        if self._copies is None:
            with tf.init_scope():  # made eagerly, even while a function traces
                self._copies = self._working_copies()
        return self._copies

    def _working_copies(self) -> dict:
        return {id(m): m.working_copy() for m in self.matrices}

    def _multiply(self, matrix, x):
        return matrix(x, self._working.get(id(matrix)) if self._working else None)

    @property
    def matrices(self) -> list:
        """Every stored matrix, each once (the tied head is the embedding table)."""
        found = [m for layer in self.layers for m in layer.values() if isinstance(m, _Matrix)]
        found.append(self.embeddings)
        return found + ([self.head] if self.head is not self.embeddings else [])

    @property
    def variables(self) -> list:
        """The stored tensors, each once: 1- or 2-byte matrices, float32 scales and norms."""
        norms = [v for layer in self.layers for v in (layer["attention_norm"], layer["ffn_norm"])]
        return [v for m in self.matrices for v in m.variables] + norms + [self.norm]

    def weights_nbytes(self) -> int:
        """Bytes of the stored tensors."""
        return sum(int(np.prod(v.shape)) * v.dtype.size for v in self.variables)

    # The causal-LM protocol.

    def init_caches(self, batch, length: int):
        """Zero float32 caches, one `(keys, values)` pair per block, `(batch, length, kv, hd)`."""
        shape = (batch, length, self.n_kv, self.head_dim)
        return [(tf.zeros(shape), tf.zeros(shape)) for _ in self.layers]

    def output_kernel(self):
        """The stored output head, `(vocab, dim)` in the storage dtype (not a float
        `(dim, vocab)` matrix: `call_with_cache` reads its own head, so a decode
        loop passing this back costs nothing)."""
        return self.head.weight

    def call_with_cache(
        self, token_ids, caches, start_index, padding_mask=None, output_kernel=None
    ):
        """One cached step over `token_ids (B, t)` at positions `start_index ..`.

        Returns the float32 logits of the last position `(B, vocab)` and the
        new caches; `padding_mask` is bool `(B, S)` over the cache slots.
        `output_kernel` is accepted for the protocol and not needed.
        """
        hidden, caches = self._hidden(token_ids, caches, start_index, padding_mask)
        return self._logits(rms_norm(hidden[:, -1], self.norm, self.norm_eps)), caches

    def __call__(self, token_ids, padding_mask=None, training=None):
        """float32 logits `(B, T, vocab)` of int32 `token_ids (B, T)`, as `LlamaModel.call`."""
        from keras_recipes._ids import check_ids

        check_ids(token_ids, self.config.vocab_size, "token id", type(self).__name__)
        token_ids = tf.convert_to_tensor(token_ids, tf.int32)
        batch, length = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
        caches = self.init_caches(batch, length)
        key_mask = None if padding_mask is None else tf.cast(padding_mask, tf.bool)
        hidden, _ = self._hidden(token_ids, caches, 0, key_mask)
        flat = tf.reshape(rms_norm(hidden, self.norm, self.norm_eps), [-1, self.config.dim])
        return tf.reshape(self._logits(flat), [batch, length, self.config.vocab_size])

    def _logits(self, hidden):
        """float32 logits `(N, vocab)` of final hidden states `(N, dim)`.

        oneDNN's bfloat16 matmul rounds its output to bfloat16 (2**-9 of a
        logit), which reorders near-equal logits (greedy picks, and 1.3% of
        next-token argmaxes on the main job's model): the likeliest few are
        recomputed in float32 from the stored rows.
        """
        logits = self._multiply(self.head, hidden)
        working = self._working.get(id(self.head)) if self._working else None
        if (self.head.weight if working is None else working).dtype != tf.bfloat16:
            return logits
        k = min(_REFINED_LOGITS, self.config.vocab_size)
        top = tf.math.top_k(logits, k=k).indices  # (N, k)
        rows = self.head.rows(top)  # (N, k, dim) float32
        exact = tf.reduce_sum(rows * hidden[:, None], axis=-1)
        index = tf.stack([tf.repeat(tf.range(tf.shape(top)[0]), k), tf.reshape(top, [-1])], 1)
        return tf.tensor_scatter_nd_update(logits, index, tf.reshape(exact, [-1]))

    def _hidden(self, token_ids, caches, start, key_mask):
        """The last block's output `(B, t, dim)` and the new caches."""
        q_width, kv_width = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        batch, steps = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
        x = self.embeddings.rows(tf.reshape(token_ids, [-1]))  # (B * t, dim)
        positions = start + tf.range(steps)
        cos = tf.gather(self.cos, positions)[:, None] * self.row_scale  # (t, H + kv, hd)
        sin = tf.gather(self.sin, positions)[:, None] * self.row_scale
        # Attention reads only the slots written so far, `visible` of the S
        # (without XLA, shapes may change from step to step; reading all S
        # slots cost a step as much as its weights at 1,024 slots).
        visible = start + steps
        # 0 where a key may be attended, MASK_VALUE on later slots and left padding.
        allowed = (tf.range(visible)[None, :] <= positions[:, None])[None]  # (1, t, visible)
        if key_mask is not None:
            allowed = tf.logical_and(allowed, key_mask[:, None, :visible])
        bias = tf.where(allowed, 0.0, MASK_VALUE)  # (B or 1, t, visible)
        new_caches = []
        for layer, (keys, values) in zip(self.layers, caches, strict=True):
            qkv = self._multiply(layer["wqkv"], rms_norm(x, layer["attention_norm"], self.norm_eps))
            qk, v = tf.split(qkv, [q_width + kv_width, kv_width], axis=1)
            qk = tf.reshape(qk, [batch, steps, self.n_heads + self.n_kv, self.head_dim])
            qk = rotate(qk, cos, sin, self.head_dim, self.rotate_half)  # q also / sqrt(hd)
            q, k = tf.split(qk, [self.n_heads, self.n_kv], axis=2)
            keys = _write(keys, k, start)
            values = _write(values, tf.reshape(v, [batch, steps, self.n_kv, self.head_dim]), start)
            new_caches.append((keys, values))
            attended = self._attend(
                q, keys[:, :visible], values[:, :visible], bias, single=token_ids.shape[1] == 1
            )
            x = x + self._multiply(layer["wo"], attended)
            hidden = self._multiply(layer["w13"], rms_norm(x, layer["ffn_norm"], self.norm_eps))
            gate, up = tf.split(hidden, 2, axis=1)
            x = x + self._multiply(layer["w2"], gate / (1.0 + tf.exp(-gate)) * up)
        return tf.reshape(x, [batch, steps, self.config.dim]), new_caches

    def _attend(self, q, keys, values, bias, single: bool):
        """Queries `(B, t, H, hd)` over `(B, S, kv, hd)` caches -> `(B * t, H * hd)`.

        `bias (B or 1, t, S)`: 0 where a key may be attended, else MASK_VALUE.
        """
        groups = self.n_heads // self.n_kv
        if single:  # one query: the fused decode step's attention
            q = tf.reshape(q, [-1, 1, self.n_kv, groups, self.head_dim])
            bias = tf.reshape(bias, [tf.shape(bias)[0], -1, 1, 1])
            attended = attend_one(q, keys, values, bias, seq_axis=1)
            return tf.reshape(attended, [-1, self.n_heads * self.head_dim])
        shape = tf.shape(q)
        q = tf.reshape(q, [shape[0], shape[1], self.n_kv, groups, self.head_dim])
        scores = tf.einsum("btkgd,bskd->bkgts", q, keys) + bias[:, None, None]
        weights = tf.nn.softmax(scores, axis=-1)
        attended = tf.einsum("bkgts,bskd->btkgd", weights, values)
        return tf.reshape(attended, [-1, self.n_heads * self.head_dim])

    # Decoding.

    def generate(
        self,
        prompt_ids,
        max_new_tokens: int | None = None,
        *,
        settings: GenerationConfig | None = None,
        **controls,
    ) -> np.ndarray:
        """Continue prompts as `LlamaModel.generate` does (same arguments, same sampler).

        The whole KV-cached loop runs in one TensorFlow graph
        (`keras_recipes.causal_lm.graph_generate.generate_in_graph`), traced once
        per cache size (256, 512, ... up to the context, as `generate`'s
        windows). After a stop id a sequence is filled with `pad_id`.
        The settings are `keras_recipes.causal_lm.GenerationConfig`'s.

        Returns:
            np.int32 `(batch, longest_prompt + max_new_tokens)`, prompts
            included (shorter ones left-padded with `pad_id`).
        """
        if max_new_tokens is not None:
            controls["max_new_tokens"] = max_new_tokens
        settings = GenerationConfig.of(settings, **controls)
        prompts = check_prompts(
            prompt_ids, settings, self.config.vocab_size, self.config.max_seq_len
        )
        max_new_tokens, pad_id, seed = settings.max_new_tokens, settings.pad_id, settings.seed
        longest = max(len(p) for p in prompts)
        ids = np.zeros((len(prompts), longest), np.int32)
        for row, prompt in zip(ids, prompts, strict=True):
            row[longest - len(prompt) :] = prompt
        if max_new_tokens == 0:
            out = ids
        else:
            # The graph pads prompts to a multiple of 16, as `generate` does.
            needed = -(-longest // 16) * 16 + max_new_tokens
            window = next(w for w in windows_for(self.config.max_seq_len) if w >= needed)
            if window not in self._generate_functions:
                self._generate_functions[window] = _generate_function(self, window)
            if seed is None:
                seed = int(np.random.randint(0, 2**31 - 1))
            out = self._generate_functions[window](
                tf.constant(ids),
                tf.constant([len(p) for p in prompts], tf.int32),
                tf.constant(int(max_new_tokens)),
                tf.constant(float(settings.temperature)),
                tf.constant(0 if settings.top_k is None else int(settings.top_k)),
                tf.constant(1.0 if settings.top_p is None else float(settings.top_p)),
                tf.constant(int(seed) % (2**31 - 1)),
            ).numpy()
        for row, prompt in zip(out, prompts, strict=True):
            row[: longest - len(prompt)] = pad_id
            ends = np.flatnonzero(np.isin(row[longest:], settings.stop_ids))
            if len(ends):
                row[longest + ends[0] + 1 :] = pad_id
        return np.ascontiguousarray(out, np.int32)


class _Windowed:
    """A `QuantizedLlama` seen with a shorter context: `generate_in_graph`
    sizes its caches by `config.max_seq_len`, so early tokens attend over
    a window, not the whole context."""

    def __init__(self, model: QuantizedLlama, window: int):
        self.model, self.config = model, model.config.replace(max_seq_len=window)
        self.call_with_cache = model.call_with_cache
        self.init_caches = model.init_caches
        self.output_kernel = model.output_kernel


def _generate_function(model: QuantizedLlama, window: int):
    windowed = _Windowed(model, window)
    scalar = tf.TensorSpec([], tf.int32)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([None], tf.int32),
            scalar,
            tf.TensorSpec([], tf.float32),
            scalar,
            tf.TensorSpec([], tf.float32),
            scalar,
        ],
        autograph=False,
    )
    def run(ids, lengths, max_new_tokens, temperature, top_k, top_p, seed):
        # The kept copies are captured by reference: no conversion per call.
        with model.decoding(model.kept_copies()):
            return generate_in_graph(
                windowed, ids, lengths, max_new_tokens, temperature, top_k, top_p, seed
            )

    return run


def _write(cache, value, start):
    """`cache[:, start : start + t] = value`, in place when TensorFlow can forward the buffer."""
    begin = tf.stack([0, start, 0, 0])
    return update_cache_slice(cache, value, begin, begin + tf.stack([0, tf.shape(value)[1], 0, 0]))


def quantize_for_decoding(model, weights: str, allow_nonfinite: bool = False) -> QuantizedLlama:
    """A copy of a float32 `LlamaModel` with 1- or 2-byte weights, for decoding.

    Weight-only: every decoder matrix (q/k/v/o, w1/w2/w3), the token
    embeddings and the output head; activations stay float32.

    Args:
        model: a `LlamaModel` with float32 weights (from `build_llama`,
            a checkpoint loader, or `keras.models.load_model`).
        weights: `"int8"` (per-output-channel float32 scales) or
            `"bfloat16"`.
        allow_nonfinite: bool, default False. Quantize NaN or Inf weights
            (int8 turns them into finite garbage) instead of refusing them.

    Returns:
        A `QuantizedLlama`: `generate(...)` as `LlamaModel.generate`,
        `model(token_ids)` logits, the causal-LM protocol, and
        `export_saved_model(model, path, weights=...)` exports it.

    Examples:

    >>> import numpy as np
    >>> from keras_recipes.llama import build_llama
    >>> small = quantize_for_decoding(build_llama("tiny"), "int8")
    >>> small.generate([[1, 5, 9]], max_new_tokens=4).shape
    (1, 7)
    >>> tuple(small(np.zeros((1, 3), "int32")).shape)
    (1, 3, 512)
    """
    if weights not in ("int8", "bfloat16"):
        raise ValueError(
            f"quantize_for_decoding: weights must be 'int8' or 'bfloat16', got {weights!r}."
        )
    if not (isinstance(getattr(model, "config", None), LlamaConfig) and hasattr(model, "blocks")):
        raise ValueError(
            f"quantize_for_decoding: expected a LlamaModel, got {type(model).__name__}; "
            "other causal LMs are not supported (their forward pass is not restated here)."
        )
    not_float32 = sorted({str(w.dtype) for w in model.weights} - {"float32"})
    if not_float32 or model.compute_dtype != "float32":
        raise ValueError(
            "quantize_for_decoding: the model must hold float32 weights and compute in "
            f"float32 (it has {not_float32 or model.compute_dtype}); build or load it "
            "under the float32 policy."
        )
    from keras_recipes._finite import check_finite, model_weights

    check_finite(model_weights(model), "quantize_for_decoding", allow_nonfinite)
    return QuantizedLlama(model.config, weights, _keras_arrays(model))


def _keras_arrays(model):
    """`QuantizedLlama`'s `arrays(name)` over a `LlamaModel`'s variables."""

    def arrays(name):
        if name == "tok_embeddings":
            variable = model.tok_embeddings.embeddings
        elif name == "norm":
            variable = model.norm.scale
        elif name == "output":
            variable = model.output_projection.kernel
        else:
            index, kind = name.split(".")
            block = model.blocks[int(index)]
            variable = {
                "attention_norm": block.attention_norm.scale,
                "ffn_norm": block.ffn_norm.scale,
                "wq": block.attention.wq.kernel,
                "wk": block.attention.wk.kernel,
                "wv": block.attention.wv.kernel,
                "wo": block.attention.wo.kernel,
                "w1": block.feed_forward.w1.kernel,
                "w2": block.feed_forward.w2.kernel,
                "w3": block.feed_forward.w3.kernel,
            }[kind]
        return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable, np.float32)

    return arrays
