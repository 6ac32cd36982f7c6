"""A second decoder, defined only here, gets generation and export from the causal-LM protocol.

`TinyGPT` is a GPT-2-style decoder (learned positions, LayerNorm, GELU MLP,
multi-head attention with biases): nothing like LLaMA's blocks. It
implements `keras_recipes.causal_lm` (`call_with_cache`, `init_caches`,
`output_kernel`, `config`), and `hidden_states` / `output_weights` with the
`FusedTrainStep` mixin for the fused training loss; `generate`,
`export_saved_model` (checked through TF Serving's own loader),
`export_tflite` and the fused loss must work on it unchanged.
"""

import dataclasses

import keras
import numpy as np
import pytest
from keras import ops

from keras_recipes.causal_lm import check_causal_lm, is_causal_lm
from keras_recipes.causal_lm.generation import generate
from keras_recipes.causal_lm.losses import FusedTrainStep, LanguageModelLoss
from keras_recipes.export import TFLiteGenerator, export_saved_model, export_tflite
from keras_recipes.serving import SavedModelSession, check_saved_model


@dataclasses.dataclass(frozen=True)
class TinyGPTConfig:
    vocab_size: int = 40
    max_seq_len: int = 32
    dim: int = 16
    n_heads: int = 2
    n_layers: int = 2


class TinyGPT(FusedTrainStep, keras.Model):
    def __init__(self, config: TinyGPTConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        c = config
        self.wte = keras.layers.Embedding(c.vocab_size, c.dim)
        self.wpe = keras.layers.Embedding(c.max_seq_len, c.dim)
        self.blocks = [
            {
                "ln1": keras.layers.LayerNormalization(epsilon=1e-5),
                "qkv": keras.layers.Dense(3 * c.dim),
                "proj": keras.layers.Dense(c.dim),
                "ln2": keras.layers.LayerNormalization(epsilon=1e-5),
                "fc": keras.layers.Dense(4 * c.dim, activation="gelu"),
                "out": keras.layers.Dense(c.dim),
            }
            for _ in range(c.n_layers)
        ]
        self.ln_f = keras.layers.LayerNormalization(epsilon=1e-5)
        self.head = keras.layers.Dense(c.vocab_size, use_bias=False)
        self.head_dim = c.dim // c.n_heads
        self.call(ops.zeros((1, 2), "int32"))  # builds every layer

    def _heads(self, x):
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        return ops.reshape(x, (batch, length, self.config.n_heads, self.head_dim))

    def _attend(self, q, keys, values, allowed):
        """q `(B, t, H, hd)` over keys/values `(B, S, H, hd)`; allowed bool `(B, t, S)`."""
        scores = ops.einsum("bthd,bshd->bhts", q, keys) / np.sqrt(self.head_dim)
        scores = ops.where(allowed[:, None], scores, -1e9)
        out = ops.einsum("bhts,bshd->bthd", ops.softmax(scores, axis=-1), values)
        batch, length = ops.shape(out)[0], ops.shape(out)[1]
        return ops.reshape(out, (batch, length, self.config.dim))

    def _block(self, block, x, keys, values, allowed):
        q, k, v = ops.split(block["qkv"](block["ln1"](x)), 3, axis=-1)
        x = x + block["proj"](self._attend(self._heads(q), keys(k), values(v), allowed))
        return x + block["out"](block["fc"](block["ln2"](x)))

    def hidden_states(self, token_ids, training=None):
        length = ops.shape(token_ids)[1]
        x = self.wte(token_ids) + self.wpe(ops.arange(length))[None]
        causal = ops.arange(length)[:, None] >= ops.arange(length)[None, :]
        for block in self.blocks:
            x = self._block(block, x, self._heads, self._heads, causal[None])
        return self.ln_f(x)

    def call(self, token_ids):
        return self.head(self.hidden_states(token_ids))

    def output_weights(self):  # for the fused training loss
        return self.head.kernel, False

    # --- the causal-LM protocol ---------------------------------------------

    def init_caches(self, batch, length):
        shape = (batch, length, self.config.n_heads, self.head_dim)
        return [(ops.zeros(shape), ops.zeros(shape)) for _ in self.blocks]

    def output_kernel(self):
        return self.head.kernel

    def call_with_cache(
        self, token_ids, caches, start_index, padding_mask=None, output_kernel=None
    ):
        length = ops.shape(token_ids)[1]
        slots = ops.arange(ops.shape(caches[0][0])[1])
        positions = start_index + ops.arange(length)
        # Prompts come left-padded: learned positions count from the first real token.
        n_pad = 0 if padding_mask is None else ops.sum(1 - ops.cast(padding_mask, "int32"), 1)
        learned = ops.maximum(positions[None, :] - ops.reshape(n_pad, (-1, 1)), 0)
        x = self.wte(token_ids) + self.wpe(learned)
        # The new keys/values go to slots start_index .. start_index + length - 1,
        # written with a mask (no XLA op, so TF Serving runs it as it is).
        offset = ops.clip(slots - start_index, 0, length - 1)
        is_new = ((slots >= start_index) & (slots < start_index + length))[None, :, None, None]
        allowed = slots[None, None, :] <= positions[None, :, None]
        if padding_mask is not None:
            allowed = allowed & padding_mask[:, None, :]
        new_caches = []
        for block, (key_cache, value_cache) in zip(self.blocks, caches, strict=True):
            written = {}

            def write(new, cache, name, written=written):
                placed = ops.take(self._heads(new), offset, axis=1)
                written[name] = ops.where(is_new, placed, cache)
                return written[name]

            x = self._block(
                block,
                x,
                lambda k, c=key_cache, w=write: w(k, c, "k"),
                lambda v, c=value_cache, w=write: w(v, c, "v"),
                allowed,
            )
            new_caches.append((written["k"], written["v"]))
        kernel = self.head.kernel if output_kernel is None else output_kernel
        logits = ops.matmul(self.ln_f(x[:, -1]), kernel)
        return ops.cast(logits, "float32"), new_caches


@pytest.fixture(scope="module")
def gpt():
    keras.utils.set_random_seed(11)
    model = TinyGPT(TinyGPTConfig())
    # Larger logits, same ranking: no argmax decided by float rounding.
    model.head.kernel.assign(model.head.kernel.numpy() * 8.0)
    return model


PROMPTS = [[3, 17, 5, 9, 30], [8, 2, 11]]


def uncached_greedy(model, prompt, new_tokens):
    ids = list(prompt)
    for _ in range(new_tokens):
        ids.append(int(np.argmax(np.asarray(model(np.array([ids], np.int32)))[0, -1])))
    return ids


def test_tiny_gpt_follows_the_protocol_and_a_plain_model_does_not(gpt):
    assert is_causal_lm(gpt)
    plain = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not a causal LM.*call_with_cache.*config.vocab_size"):
        check_causal_lm(plain, "generate")


def test_generate_equals_the_uncached_argmax_of_its_forward_pass(gpt):
    out = generate(gpt, PROMPTS, max_new_tokens=10)
    for row, prompt in zip(out, PROMPTS, strict=True):
        want = uncached_greedy(gpt, prompt, 10)
        assert row[-len(want) :].tolist() == want


def test_sampled_generation_is_seeded_and_within_top_k(gpt):
    a = generate(gpt, PROMPTS, 8, temperature=1.0, top_k=3, top_p=0.9, seed=5)
    b = generate(gpt, PROMPTS, 8, temperature=1.0, top_k=3, top_p=0.9, seed=5)
    np.testing.assert_array_equal(a, b)
    logits = np.asarray(gpt(a[:1, :-1]))[0]
    for position in range(len(PROMPTS[0]) - 1, a.shape[1] - 1):
        rank = int((logits[position] > logits[position, a[0, position + 1]]).sum())
        assert rank < 3


def test_saved_model_answers_through_tf_servings_loader(gpt, tmp_path):
    path = export_saved_model(gpt, tmp_path / "gpt")  # verified through the C API loader
    replays = check_saved_model(path)
    assert [r.signature for r in replays] == ["serving_default", "generate", "generate_padded"]
    prompt = np.array([PROMPTS[0]], np.int32)
    controls = {"max_new_tokens": [6], "temperature": [0.0], "top_k": [0], "top_p": [1.0]}
    with SavedModelSession(path) as session:
        out = session.run("generate", {"token_ids": prompt, **controls, "seed": [0]})
        logits = session.run("serving_default", {"token_ids": prompt})["logits"]
    assert out["token_ids"][0].tolist() == uncached_greedy(gpt, PROMPTS[0], 6)
    np.testing.assert_allclose(logits, gpt(prompt), atol=1e-5)


def test_tflite_prefill_and_decode_generate_its_tokens(gpt, tmp_path):
    path = export_tflite(gpt, tmp_path / "gpt.tflite")  # verified against the Keras model
    out = TFLiteGenerator(path).generate([PROMPTS[0]], 10)
    assert out[0].tolist() == uncached_greedy(gpt, PROMPTS[0], 10)


def test_fused_training_step_equals_keras_step_on_the_second_decoder(monkeypatch):
    import keras_recipes.causal_lm.losses as losses

    calls = []
    original = losses.fused_head_cross_entropy
    monkeypatch.setattr(
        losses, "fused_head_cross_entropy", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    x = np.random.default_rng(2).integers(0, 40, size=(2, 12)).astype("int32")
    weights = []
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)  # Keras' own step
    for loss in (LanguageModelLoss(chunk_rows=7), plain):
        keras.utils.set_random_seed(4)
        model = TinyGPT(TinyGPTConfig())
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
        model.train_on_batch(x, np.roll(x, -1, axis=1))
        weights.append(model.get_weights())
    assert calls, "the fused path did not run"
    for fused, plain in zip(*weights, strict=True):
        np.testing.assert_allclose(fused, plain, atol=1e-5)
