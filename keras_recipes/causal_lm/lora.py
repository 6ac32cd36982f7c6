"""Low-rank adaptation (LoRA) of a model's dense projections: enable, train, save, merge.

LoRA ([Hu et al. 2021](https://arxiv.org/abs/2106.09685)) freezes a
pretrained model and learns, beside each chosen projection `W` (`d_in x
d_out`), two small matrices `A` (`d_in x r`) and `B` (`r x d_out`), with
`B` starting at zero so the adapted model starts as the pretrained one:

    y = x @ W + (alpha / r) * (x @ A) @ B

Only `A` and `B` train: at rank 8 on LLaMA's `wq` and `wv` that is a few
tenths of a percent of the weights, the optimizer keeps moments for those
alone, and the adapters save as a file of a few megabytes.

Keras' own `Dense.enable_lora` (which keras-hub's `enable_lora` calls)
adds `A @ B` to the kernel before the product, `x @ (W + s A B)`, so its
backward pass forms the full `d_in x d_out` gradient of the merged kernel
and only then projects it onto `A` and `B`: a frozen projection costs as
much to train as a trainable one. `LoRADense` keeps the two products
apart, so the frozen `W` gets no gradient and the adapters' gradients cost
`r / d` of it. It also saves `W` and the adapters as they are (Keras'
`Dense` saves the merged kernel and zeroes its adapters on loading), so a
backup restores a run mid-training exactly.

- `enable_lora(model, rank, alpha, targets)`: freezes every weight of the
  model and wraps each `keras.layers.Dense` named in `targets` (LLaMA's
  `wq`, `wk`, `wv`, `wo`, `w1`, `w2`, `w3`) in a `LoRADense`.
- `lora_weights(model)`: the adapters by path; `save_lora_weights` /
  `load_lora_weights`: them alone, as one safetensors file.
- `merge_lora(model)`: folds `W + (alpha / r) A @ B` into each kernel, in
  place, and unwraps: the model is a plain model again, which every
  checkpoint writer and export takes.

`LoRAMixin` gives a model these as methods (`model.enable_lora(...)`).
`FusedTrainStep` (`causal_lm/losses.py`) trains an adapted model with the
head and the loss fused, a loss mask as `sample_weight`, and no gradient
for a frozen head.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import keras
import numpy as np
from keras import ops

from keras_recipes._compat import replace_sublayer

LLAMA_TARGETS = ("wq", "wk", "wv", "wo", "w1", "w2", "w3")
DEFAULT_TARGETS = ("wq", "wv")  # the LoRA paper's choice, and keras-hub's default
ADAPTER_FORMAT = "keras_recipes.lora/1"


@keras.saving.register_keras_serializable(package="keras_recipes")
class LoRADense(keras.layers.Layer):
    """A frozen `Dense` plus a trainable low-rank update: `base(x) + (alpha / rank) * x A B`.

    Made by `enable_lora`, which puts it where the `Dense` was; the `Dense`
    (its kernel frozen) is kept inside as `base`. `kernel` reads as the
    merged matrix `W + (alpha / rank) A @ B`, so code that reads a
    projection's kernel (checkpoint writers, the fused decode steps of the
    exports) sees the adapted model.

    Args:
        base: a built `keras.layers.Dense` (no bias and no activation, as
            LLaMA's projections, or with them: they apply after the sum).
        rank: int, the rank `r` of the update.
        alpha: float or None (= `rank`). The update is scaled by
            `alpha / rank`, so the learning rate that suits one rank suits
            another.
        a_initializer: initializer of `A`, default `"he_uniform"` (Keras').
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor `(..., d_in)`.

    Examples:

    >>> import numpy as np
    >>> dense = keras.layers.Dense(6, use_bias=False)
    >>> dense.build((None, 4))
    >>> lora = LoRADense(dense, rank=2)
    >>> x = np.ones((3, 4), "float32")
    >>> bool(np.allclose(lora(x), dense(x)))  # B starts at zero
    True
    >>> [w.name for w in lora.trainable_weights]
    ['lora_a', 'lora_b']
    """

    def __init__(
        self,
        base: keras.layers.Dense,
        rank: int,
        alpha: float | None = None,
        a_initializer="he_uniform",
        **kwargs,
    ):
        kwargs.setdefault("name", base.name)
        kwargs.setdefault("dtype", base.dtype_policy)
        super().__init__(**kwargs)
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
            raise ValueError(f"LoRADense: rank must be a positive int, got {rank!r}.")
        if alpha is not None and not alpha > 0:
            raise ValueError(f"LoRADense: alpha must be > 0 or None, got {alpha!r}.")
        if not base.built:
            raise ValueError(f"LoRADense: build {base.name!r} before wrapping it.")
        self.base = base
        self.rank = rank
        self.alpha = float(rank if alpha is None else alpha)
        self.a_initializer = keras.initializers.get(a_initializer)
        base.kernel.trainable = False
        if base.bias is not None:
            base.bias.trainable = False
        d_in, d_out = base.kernel.shape
        # float32 whatever the compute dtype: small updates to them must not round away.
        self.lora_a = self.add_weight(
            name="lora_a", shape=(d_in, rank), initializer=self.a_initializer, dtype="float32"
        )
        self.lora_b = self.add_weight(
            name="lora_b", shape=(rank, d_out), initializer="zeros", dtype="float32"
        )
        self.built = True

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @property
    def units(self) -> int:
        return self.base.units

    @property
    def kernel(self):
        """The merged `(d_in, d_out)` kernel, `W + (alpha / rank) A @ B`, in `W`'s dtype."""
        update = ops.matmul(self.lora_a, self.lora_b) * self.scale
        return ops.add(self.base.kernel, ops.cast(update, self.base.kernel.dtype))

    def call(self, inputs):
        dtype = self.compute_dtype
        # x @ W without the kernel's gradient (it is frozen), then the low-rank path.
        frozen = ops.matmul(inputs, ops.cast(self.base.kernel, dtype))
        update = ops.matmul(
            ops.matmul(inputs, ops.cast(self.lora_a, dtype)), ops.cast(self.lora_b, dtype)
        )
        x = frozen + ops.cast(self.scale, dtype) * update
        if self.base.bias is not None:
            x = ops.add(x, ops.cast(self.base.bias, dtype))
        if self.base.activation is not None:
            x = self.base.activation(x)
        return x

    def compute_output_shape(self, input_shape):
        return self.base.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "base": keras.saving.serialize_keras_object(self.base),
                "rank": self.rank,
                "alpha": self.alpha,
                "a_initializer": keras.initializers.serialize(self.a_initializer),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        base = keras.saving.deserialize_keras_object(config.pop("base"))
        if not base.built:
            raise ValueError("LoRADense.from_config: the base layer's input shape is unknown.")
        return cls(base, **config)


def _dense_slots(layer, prefix: str = "", seen=None):
    """`(path, parent, attribute, child)` for each `Dense` or `LoRADense` attribute under `layer`.

    `path` joins the layer names from the model down (`layers_0/attention/wq`).
    Walks public attributes and lists of layers (LLaMA's `blocks`) in the
    model's own order, each layer once; a `Dense` directly in a list is
    not a slot (LLaMA has none).
    """
    seen = set() if seen is None else seen
    for attribute, value in list(vars(layer).items()):
        if attribute.startswith("_"):
            continue
        in_list = isinstance(value, (list, tuple))
        for child in value if in_list else [value]:
            if not isinstance(child, keras.layers.Layer) or id(child) in seen:
                continue
            seen.add(id(child))
            path = f"{prefix}{child.name}"
            if isinstance(child, (keras.layers.Dense, LoRADense)):
                if not in_list:
                    yield path, layer, attribute, child
            else:
                yield from _dense_slots(child, f"{path}/", seen)


def lora_layers(model) -> dict[str, LoRADense]:
    """The model's `LoRADense` layers by path (`layers_0/attention/wq`), in order."""
    return {
        path: child for path, _, _, child in _dense_slots(model) if isinstance(child, LoRADense)
    }


def enable_lora(
    model,
    rank: int,
    alpha: float | None = None,
    targets: tuple[str, ...] | list[str] = DEFAULT_TARGETS,
    seed: int | None = None,
) -> dict[str, LoRADense]:
    """Freezes `model` and adds rank-`rank` adapters to its `Dense` layers named in `targets`.

    Afterwards `model.trainable_weights` are the adapters only (`A`, `B` of
    each target); every other weight keeps its value bit for bit through
    training. Compile (or recompile) after this call, so the optimizer sees
    the new trainable set.

    Args:
        model: a built `keras.Model` (a `LlamaModel`, or any model whose
            projections are `keras.layers.Dense` sub-layers).
        rank: int >= 1.
        alpha: float or None (= `rank`): updates scale by `alpha / rank`.
        targets: names of the `Dense` layers to adapt. For LLaMA any of
            `LLAMA_TARGETS` (`wq`, `wk`, `wv`, `wo`, `w1`, `w2`, `w3`);
            default `("wq", "wv")`.
        seed: int or None, seeds the initializer of `A`.

    Returns:
        The new `LoRADense` layers by path.

    Raises:
        ValueError: LoRA already on, or a target that names no layer.
    """
    if lora_layers(model):
        raise ValueError(
            "enable_lora: this model has LoRA adapters already; merge_lora(model) first "
            "to add new ones on top of the merged weights."
        )
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    slots = [s for s in _dense_slots(model) if s[3].name in targets]
    missing = sorted(set(targets) - {s[3].name for s in slots})
    if missing or not targets:
        names = sorted({s[3].name for s in _dense_slots(model)})
        raise ValueError(
            f"enable_lora: no Dense layer named {missing or targets}; the model's Dense "
            f"layers are named {names}."
        )
    frozen = [v for v in model.weights if v.trainable]
    for variable in frozen:
        variable.trainable = False
    # Plain attributes, out of Keras' tracking (which would count them as the model's state).
    object.__setattr__(model, "_lora_frozen", tuple(frozen))  # trainable again after merge_lora
    object.__setattr__(
        model, "_lora_settings", {"rank": rank, "alpha": alpha, "targets": list(targets)}
    )
    initializer = keras.initializers.HeUniform(seed=seed)
    for path, parent, attribute, dense in slots:
        with contextlib.ExitStack() as scopes:  # variable paths: layers_0/attention/wq/lora_a
            for name in path.split("/")[:-1]:
                scopes.enter_context(keras.name_scope(name))
            wrapped = LoRADense(dense, rank, alpha, a_initializer=initializer)
        replace_sublayer(parent, attribute, wrapped)
    return lora_layers(model)


def lora_weights(model) -> dict[str, keras.Variable]:
    """The adapters' variables by path: `{path}/lora_a`, `{path}/lora_b` of each `LoRADense`."""
    weights = {}
    for path, layer in lora_layers(model).items():
        weights[f"{path}/lora_a"] = layer.lora_a
        weights[f"{path}/lora_b"] = layer.lora_b
    return weights


def merge_lora(model):
    """Folds each adapter into its kernel, in place, and removes the adapters: `model`.

    Each `LoRADense` gives back its `Dense`, whose kernel becomes `W +
    (alpha / rank) A @ B` (computed in float32); the weights `enable_lora`
    froze are trainable again. The result is a plain model: its logits equal
    the adapted model's to float32 rounding, and `save_checkpoint`,
    `export_saved_model`, `export_tflite` and `model.save` take it as they
    take any other.
    """
    slots = [s for s in _dense_slots(model) if isinstance(s[3], LoRADense)]
    if not slots:
        raise ValueError("merge_lora: the model has no LoRA adapters (see enable_lora).")
    for _, parent, attribute, lora in slots:
        lora.base.kernel.assign(lora.kernel)
        replace_sublayer(parent, attribute, lora.base)
    for variable in getattr(model, "_lora_frozen", []):
        variable.trainable = True
    object.__setattr__(model, "_lora_frozen", ())
    object.__setattr__(model, "_lora_settings", None)
    return model


def save_lora_weights(model, path: str | os.PathLike) -> Path:
    """Writes the adapters alone to `path` (a `.safetensors` file), atomically.

    The file holds `lora_weights(model)` as float32 tensors named by path,
    and in its metadata the rank, alpha and targets, so `load_lora_weights`
    can rebuild the adapters on the base model.
    """
    from safetensors.numpy import save_file

    from keras_recipes._io import atomic_path

    settings = getattr(model, "_lora_settings", None)
    weights = lora_weights(model)
    if not weights or settings is None:
        raise ValueError("save_lora_weights: the model has no LoRA adapters (see enable_lora).")
    tensors = {name: np.asarray(v.numpy(), np.float32) for name, v in weights.items()}
    metadata = {"format": ADAPTER_FORMAT, "lora": json.dumps(settings)}
    with atomic_path(path, suffix=".safetensors") as partial:
        save_file(tensors, str(partial), metadata=metadata)
    return Path(path)


def read_lora_file(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """`(settings, tensors)` of an adapter file written by `save_lora_weights`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"No adapter file at {path}.")
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as error:  # safetensors raises its own error types
        raise ValueError(f"{path} is not a readable safetensors file: {error}") from error
    if metadata.get("format") != ADAPTER_FORMAT:
        raise ValueError(
            f"{path} is not a keras-recipes LoRA adapter file (format "
            f"{metadata.get('format')!r}, expected {ADAPTER_FORMAT!r})."
        )
    return json.loads(metadata["lora"]), tensors


def load_lora_weights(model, path: str | os.PathLike) -> dict[str, LoRADense]:
    """Adds the adapters of `path` to `model` (enabling LoRA as they were saved) and loads them.

    `model` is the base model the adapters were trained on (plain, or with
    LoRA enabled at the same rank and targets). Every tensor must match a
    layer of the model in name and shape; nothing is loaded otherwise.
    """
    settings, tensors = read_lora_file(path)
    if not lora_layers(model):
        enable_lora(model, settings["rank"], settings["alpha"], tuple(settings["targets"]))
    elif getattr(model, "_lora_settings", None) != settings:
        raise ValueError(
            f"{path} holds adapters {settings}, the model has {model._lora_settings}; "
            "load them into the base model (without LoRA enabled)."
        )
    weights = lora_weights(model)
    if set(weights) != set(tensors):
        missing, extra = sorted(set(weights) - set(tensors)), sorted(set(tensors) - set(weights))
        raise ValueError(
            f"{path} does not fit this model: missing {missing[:4]}, unknown {extra[:4]}."
        )
    for name, variable in weights.items():
        if tuple(variable.shape) != tensors[name].shape:
            raise ValueError(
                f"{path}: {name} is {tensors[name].shape}, the model's is {tuple(variable.shape)}; "
                "these adapters were trained on a model of another shape."
            )
    for name, variable in weights.items():
        variable.assign(tensors[name])
    return lora_layers(model)


class LoRAMixin:
    """`enable_lora`, `merge_lora`, `save_lora_weights` and `load_lora_weights` as model methods.

    Mix it into a `keras.Model` whose projections are `Dense` sub-layers
    (`class LlamaModel(FusedTrainStep, LoRAMixin, keras.Model)`).
    `lora_target_names` lists the layer names `enable_lora` accepts, by
    default `LLAMA_TARGETS` (LLaMA's and Gemma's names here); the output
    head is never one: `FusedTrainStep` reads its kernel outside the
    gradient tape.
    """

    lora_target_names: tuple[str, ...] = LLAMA_TARGETS

    def enable_lora(
        self,
        rank: int,
        alpha: float | None = None,
        targets: tuple[str, ...] | list[str] = DEFAULT_TARGETS,
        seed: int | None = None,
    ) -> dict[str, LoRADense]:
        """Freezes the model and adds LoRA adapters; see `keras_recipes.causal_lm.lora.enable_lora`."""
        names = (targets,) if isinstance(targets, str) else tuple(targets)
        unknown = sorted(set(names) - set(self.lora_target_names))
        if unknown:
            raise ValueError(
                f"enable_lora: {unknown} cannot take adapters here; choose among "
                f"{list(self.lora_target_names)}."
            )
        return enable_lora(self, rank, alpha=alpha, targets=names, seed=seed)

    def merge_lora(self):
        """Folds the adapters into the kernels, in place; see `keras_recipes.causal_lm.lora.merge_lora`."""
        return merge_lora(self)

    def save_lora_weights(self, path: str | os.PathLike) -> Path:
        """The adapters alone, to a safetensors file; see `keras_recipes.causal_lm.lora`."""
        return save_lora_weights(self, path)

    def load_lora_weights(self, path: str | os.PathLike) -> dict[str, LoRADense]:
        """Adapters from `save_lora_weights`; see `keras_recipes.causal_lm.lora.load_lora_weights`."""
        return load_lora_weights(self, path)
