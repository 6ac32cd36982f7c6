"""`CausalLM`: what a decoder family's model class mixes in to get the shared machinery.

A family's model subclasses `CausalLM` before `keras.Model`
(`class LlamaModel(CausalLM, keras.Model)`) and gets `model.generate(...)`
and the fused training step (`FusedTrainStep`: compiled with
`LanguageModelLoss`, it trains without the `(B, T, vocab)` logits).
"""

from __future__ import annotations

import numpy as np

from keras_recipes.causal_lm.generation import generate
from keras_recipes.causal_lm.losses import FusedTrainStep
from keras_recipes.causal_lm.settings import GenerationConfig


class CausalLM(FusedTrainStep):
    """Mixin of the shared causal-LM methods; see `keras_recipes.causal_lm.protocol`."""

    def generate(
        self,
        prompt_ids,
        max_new_tokens: int | None = None,
        *,
        settings: GenerationConfig | None = None,
        callback=None,
        **controls,
    ) -> np.ndarray:
        """Continue prompts with KV-cached decoding; see `keras_recipes.causal_lm.generation`."""
        return generate(
            self, prompt_ids, max_new_tokens, settings=settings, callback=callback, **controls
        )
