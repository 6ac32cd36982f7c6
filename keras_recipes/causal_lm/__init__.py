"""What every decoder family shares: the protocol, generation, sampling, the fused loss.

- `protocol`: the methods a decoder provides (`call_with_cache`,
  `init_caches`, `output_kernel`, `config.vocab_size` / `max_seq_len`) and
  the optional hooks for a family's fast paths.
- `settings`: `GenerationConfig`, the one set of generation controls.
- `generate`: KV-cached, XLA-compiled decoding on the protocol.
- `sampling`: the one sampler (greedy, temperature, top-k, top-p, seed).
- `losses`: the output head fused with cross-entropy for training.
- `graph_generate`: the decoding loop as one TF graph (the SavedModel's).
- `base`: `CausalLM`, the mixin a family's model class takes.

Families (`keras_recipes.llama`, `keras_recipes.gemma`) import from here;
nothing here imports a family.
"""

from keras_recipes.causal_lm.base import CausalLM
from keras_recipes.causal_lm.generation import generate, generate_trace_count
from keras_recipes.causal_lm.losses import FusedTrainStep, LanguageModelLoss
from keras_recipes.causal_lm.protocol import (
    check_causal_lm,
    is_causal_lm,
    missing_parts,
    takes_cache_update,
)
from keras_recipes.causal_lm.settings import GenerationConfig

__all__ = [
    "CausalLM",
    "FusedTrainStep",
    "GenerationConfig",
    "LanguageModelLoss",
    "check_causal_lm",
    "generate",
    "generate_trace_count",
    "is_causal_lm",
    "missing_parts",
    "takes_cache_update",
]
