"""LLaMA: the whole forward pass.

Read top to bottom: `LlamaModel` (embedding -> n_layers x `LlamaBlock` ->
RMSNorm -> output projection) and `build_llama`. The hyper-parameters are
`LlamaConfig` (`config.py`, presets in `presets.py`); the layers live in
`keras_recipes.layers`; KV-cached decoding, sampling and the fused training
loss are shared by every family in `keras_recipes.causal_lm`.
Paper: [LLaMA](https://arxiv.org/abs/2302.13971),
[Llama 2](https://arxiv.org/abs/2307.09288),
[Llama 3](https://arxiv.org/abs/2407.21783).
"""

import keras
from keras import ops

from keras_recipes._ids import check_ids
from keras_recipes.causal_lm import CausalLM
from keras_recipes.causal_lm.lora import LoRAMixin
from keras_recipes.layers import LlamaBlock, RMSNorm
from keras_recipes.llama import fused_decode, quantize, tflite_functions
from keras_recipes.llama.config import LlamaConfig
from keras_recipes.llama.presets import PRESETS

__all__ = ["PRESETS", "LlamaConfig", "LlamaModel", "build_llama"]


@keras.saving.register_keras_serializable(package="keras_recipes")
class LlamaModel(CausalLM, LoRAMixin, keras.Model):
    """A LLaMA decoder: int32 token ids `(B, T)` -> float32 logits `(B, T, vocab)`.

    Build it with `build_llama(config)`. Layer names are Meta's and
    llama2.c's: `tok_embeddings`, `layers_{i}` (each with `attention.wq/wk/
    wv/wo`, `feed_forward.w1/w2/w3`, `attention_norm`, `ffn_norm`), `norm`,
    `output` (absent when `tie_embeddings`).

    Args:
        config: `LlamaConfig` or its `to_dict()`.
        initializer: initializer of every matrix, default
            `RandomNormal(stddev=0.02)`; not saved in the config (it only
            matters before training or loading).

    Call arguments:
        token_ids: int tensor `(batch, seq_len)`.
        padding_mask: optional `(batch, seq_len)`, 1 for real tokens.
        training: bool, whether dropout is active.

    The forward pass is `call` below. For speed it is restated in a few
    places; each restatement is held equal to `call` by a test:

    - `call_with_cache` (KV-cached steps, `generate`):
      `tests/test_llama_generate.py::test_greedy_equals_uncached_argmax_across_cache_windows`
      and keras-hub's Llama, `tests/test_llama_model.py::test_logits_match_keras_hub_on_the_same_checkpoint`,
      and with the export's scatter cache write (`cache_update=`, the SavedModel
      graph without XLA): `tests/test_llama_graph.py::test_fused_and_layer_by_layer_loops_agree`;
    - `FusedDecodeStep` (`keras_recipes/llama/fused_decode.py`, the SavedModel's
      decode step): `tests/test_llama_graph.py::test_fused_step_equals_the_models_cached_call`;
    - TFLite's prefill/decode functions (`keras_recipes/llama/tflite_functions.py`):
      `tests/test_export_tflite.py::test_teacher_forced_float32_logits_match_keras`;
    - the fused head + cross-entropy of training (`keras_recipes/causal_lm/losses.py`):
      `tests/test_llama_losses.py::test_fused_equals_logits_then_cross_entropy`.
    - `QuantizedLlama` (`keras_recipes/llama/quantize.py`, int8 / bfloat16
      weights for decoding): equal to `call` on the weights int8 stands for,
      `tests/test_quantize.py::test_int8_forward_pass_equals_call_on_the_dequantized_weights`,
      and within bfloat16 error, `tests/test_quantize.py::test_bfloat16_logits_within_bfloat16_error`.

    It is a causal LM in the sense of `keras_recipes.causal_lm.protocol`
    (`call_with_cache`, `init_caches`, `output_kernel`, `config`), with the
    optional hooks `fused_decode_step`, `tflite_functions` and
    `quantized_for_export` below.

    `enable_lora(rank, alpha=..., targets=("wq", "wv"))` freezes it and adds
    LoRA adapters to the named projections (`keras_recipes.causal_lm.lora`);
    `merge_lora()` folds them back into the kernels.

    Examples:

    >>> import numpy as np
    >>> model = build_llama(LlamaConfig.preset("tiny"))
    >>> tuple(model(np.zeros((2, 16), "int32")).shape)
    (2, 16, 512)
    >>> out = model.generate([[1, 5, 9]], max_new_tokens=8)  # greedy
    >>> out.shape
    (1, 11)
    """

    def __init__(self, config: "LlamaConfig | dict", initializer=None, **kwargs):
        super().__init__(**kwargs)
        cfg = config if isinstance(config, LlamaConfig) else LlamaConfig.from_dict(config)
        self.config = cfg
        # Weights about to be overwritten (checkpoint loading) start as "zeros":
        # random draws of a large embedding cost several times its size.
        init = initializer or keras.initializers.RandomNormal(stddev=0.02)
        policy = self.dtype_policy  # e.g. dtype="mixed_bfloat16" reaches every layer
        self.tok_embeddings = keras.layers.Embedding(
            cfg.vocab_size,
            cfg.dim,
            embeddings_initializer=init,
            dtype=policy,
            name="tok_embeddings",
        )
        self.blocks = [
            LlamaBlock(
                cfg.n_heads,
                cfg.n_kv_heads,
                cfg.ffn_hidden_dim,
                cfg.multiple_of,
                cfg.ffn_dim_multiplier,
                cfg.norm_eps,
                cfg.rope_theta,
                cfg.rope_convention,
                cfg.rope_scaling,
                cfg.dropout,
                kernel_initializer=initializer or "default",
                dtype=policy,
                name=f"layers_{i}",
            )
            for i in range(cfg.n_layers)
        ]
        self.norm = RMSNorm(cfg.norm_eps, dtype=policy, name="norm")
        self.output_projection = None
        if not cfg.tie_embeddings:
            self.output_projection = keras.layers.Dense(
                cfg.vocab_size,
                use_bias=False,
                kernel_initializer=init,
                dtype=policy,
                name="output",
            )
        self.build((None, None))

    def build(self, input_shape):
        hidden_shape = (None, None, self.config.dim)
        self.tok_embeddings.build(input_shape)
        for block in self.blocks:
            block.build(hidden_shape)
        self.norm.build(hidden_shape)
        if self.output_projection is not None:
            self.output_projection.build(hidden_shape)
        self.built = True

    def __call__(self, token_ids, *args, **kwargs):
        # An eager call checks its ids: the embedding would read row 63 for -1.
        check_ids(token_ids, self.config.vocab_size, "token id", type(self).__name__)
        return super().__call__(token_ids, *args, **kwargs)

    def call(self, token_ids, padding_mask=None, training=None):
        return self.logits(self.hidden_states(token_ids, padding_mask, training))

    def hidden_states(self, token_ids, padding_mask=None, training=None):
        """The final hidden states `(B, T, dim)`, after the last norm (what `logits` maps)."""
        x = self.tok_embeddings(token_ids)
        for block in self.blocks:
            x = block(x, padding_mask=padding_mask, training=training)
        return self.norm(x)

    def output_weights(self):
        """The output matrix's variable and whether it is the embedding table.

        Tied: `(tok_embeddings.embeddings, True)` (vocab x dim, used
        transposed); untied: `(output.kernel, False)` (dim x vocab). What the
        fused training step (`FusedTrainStep`) differentiates.
        """
        if self.output_projection is None:
            return self.tok_embeddings.embeddings, True
        return self.output_projection.kernel, False

    def call_with_cache(
        self,
        token_ids,
        caches,
        start_index,
        padding_mask=None,
        output_kernel=None,
        cache_update=None,
    ):
        """One cached step: writes `token_ids`' keys/values at `start_index`.

        `caches` is a list of `(key_cache, value_cache)` per block. Returns
        the logits of the last position `(B, vocab)` and the new caches.
        `output_kernel` optionally gives the `(dim, vocab)` output matrix
        (`output_kernel()`), so a decode loop need not transpose tied
        embeddings at every step. `cache_update` optionally replaces the
        cache write (`CausalSelfAttention`'s dynamic-update-slice).
        """
        x = self.tok_embeddings(token_ids)
        new_caches = []
        for block, (key_cache, value_cache) in zip(self.blocks, caches, strict=True):
            x, key_cache, value_cache = block(
                x,
                padding_mask,
                key_cache,
                value_cache,
                start_index=start_index,
                cache_update=cache_update,
            )
            new_caches.append((key_cache, value_cache))
        return self.logits(self.norm(x[:, -1]), output_kernel), new_caches

    def init_caches(self, batch, length: int):
        """Zero key/value caches, one `(key, value)` pair per block, each
        `(batch, length, n_kv_heads, head_dim)` in the compute dtype."""
        shape = (batch, length, self.config.n_kv_heads, self.config.head_dim)
        return [
            (ops.zeros(shape, self.compute_dtype), ops.zeros(shape, self.compute_dtype))
            for _ in self.blocks
        ]

    def output_kernel(self):
        """The `(dim, vocab)` output matrix (the transposed embeddings when tied)."""
        if self.output_projection is None:
            return ops.transpose(self.tok_embeddings.embeddings)
        return self.output_projection.kernel

    def logits(self, x, output_kernel=None):
        if output_kernel is not None:
            return ops.cast(ops.matmul(x, ops.cast(output_kernel, x.dtype)), "float32")
        if self.output_projection is None:
            embeddings = ops.cast(self.tok_embeddings.embeddings, x.dtype)
            return ops.cast(ops.matmul(x, ops.transpose(embeddings)), "float32")
        return ops.cast(self.output_projection(x), "float32")

    # Optional protocol hooks: LLaMA's fast paths (keras_recipes.causal_lm.protocol).
    def fused_decode_step(self, output_kernel, key_mask):
        """`FusedDecodeStep` for the SavedModel's in-graph loop, or None if not float32."""
        if not fused_decode.fusable(self):
            return None
        return fused_decode.FusedDecodeStep(self, output_kernel, key_mask)

    def tflite_functions(self, prefill_len: int) -> dict:
        """The `prefill` / `decode` functions `export_tflite` converts."""
        return tflite_functions.llama_functions(self, prefill_len)

    def litertlm_functions(self, prefill_len: int) -> dict:
        """The `prefill` / `decode` functions `export_litertlm` converts (LiteRT-LM's names)."""
        from keras_recipes.llama.litertlm_functions import litertlm_functions

        return litertlm_functions(self, prefill_len)

    def gguf_metadata(self) -> dict:
        """GGUF's `general.architecture` and `llama.*` keys of this model (`save_gguf`)."""
        from keras_recipes.llama.gguf_format import llama_gguf_metadata

        return llama_gguf_metadata(self)

    def gguf_tensors(self):
        """(llama.cpp's name, float32 array) of every tensor, in GGUF's layout (`save_gguf`)."""
        from keras_recipes.llama.gguf_format import llama_gguf_tensors

        return llama_gguf_tensors(self)

    def quantized_for_export(self, weights: str):
        """The `QuantizedLlama` that `export_saved_model(..., weights=)` serves."""
        return quantize.quantize_for_decoding(self, weights)

    def get_config(self):
        config = {
            "config": self.config.to_dict(),
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }
        if getattr(self, "_lora_settings", None):
            config["lora"] = dict(self._lora_settings)  # rebuilt with adapters on loading
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        lora = config.pop("lora", None)
        model = cls(**config)
        if lora:
            model.enable_lora(lora["rank"], lora["alpha"], tuple(lora["targets"]))
        return model


def build_llama(config: "LlamaConfig | str") -> LlamaModel:
    """Build a randomly initialized LLaMA from a config or a preset name.

    Args:
        config: `LlamaConfig`, or a name from `LlamaConfig.presets()`.

    Returns:
        A built `LlamaModel` (a `keras.Model`): int32 `(B, T)` -> float32
        logits `(B, T, vocab)`, with `.generate(...)`.

    Examples:

    >>> model = build_llama("tiny")
    >>> model.count_params() == LlamaConfig.preset("tiny").num_parameters()
    True
    """
    if isinstance(config, str):
        config = LlamaConfig.preset(config)
    if not isinstance(config, LlamaConfig):
        raise ValueError(f"build_llama: expected a LlamaConfig or preset name, got {type(config)}.")
    return LlamaModel(config)
