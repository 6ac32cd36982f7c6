"""Every Keras optimizer by name, with the Keras 2 argument spellings.

Each optimizer class of `keras.optimizers` (Keras 3.15) is importable from
here under its Keras name. The gradient-based ones are thin subclasses that
accept the arguments people copy from Keras 2 notes and give them their old
meaning instead of dropping them:

- `lr=` is `learning_rate=` (passing both is an error);
- `decay=d` with `d > 0` is Keras 2's time-based decay,
  `lr_t = lr / (1 + d * t)` with `t` the number of updates already done
  (`decay=0.0` means none). It becomes a serializable `TimeBasedDecay`
  learning-rate schedule, wrapped around a float or a user's schedule;
- `epsilon=None` is the Keras backend epsilon, `keras.config.epsilon()`
  (`1e-7`);
- `Nadam(schedule_decay=...)` drives the Keras 1/2 momentum warm-up
  `mu_t = beta_1 * (1 - 0.5 * 0.96 ** (t * schedule_decay))`.

Everything else keeps Keras 3's defaults and update rules (for example
`Adagrad`'s `initial_accumulator_value=0.1` and `RMSprop`'s
`sqrt(v + epsilon)`), so an optimizer built here without a Keras 2 spelling
trains exactly like the `keras.optimizers` one.

`LossScaleOptimizer`, `MultiOptimizer` and `OptimizerMap` wrap other
optimizers and are Keras's own classes, handed on unchanged.

Examples:

>>> from keras_recipes.optimizers import SGD, Nadam, get_optimizer
>>> opt = SGD(lr=0.01, momentum=0.9, decay=1e-6)  # as in Keras 2 notes
>>> type(opt._learning_rate).__name__
'TimeBasedDecay'
>>> opt = Nadam(learning_rate=0.002, epsilon=None, schedule_decay=0.004)
>>> opt.epsilon, opt.schedule_decay
(1e-07, 0.004)
>>> opt = get_optimizer("nesterov", learning_rate=0.01)  # SGD, momentum 0.9
>>> opt = get_optimizer("Adam", amsgrad=True)
>>> type(opt).__name__, opt.amsgrad
('Adam', True)
"""

from __future__ import annotations

import inspect
import math
import numbers
import re
from typing import Any

import keras
from keras import ops

from keras_recipes._compat import NadamMomentumSchedule, nadam_momentum_product, optimizer_slot

LossScaleOptimizer = keras.optimizers.LossScaleOptimizer
MultiOptimizer = keras.optimizers.MultiOptimizer
OptimizerMap = keras.optimizers.OptimizerMap

KERAS2_ARGUMENTS = ("lr", "decay")


@keras.saving.register_keras_serializable(package="keras_recipes")
class TimeBasedDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Keras 2's time-based learning-rate decay, `lr_t = lr(t) / (1 + decay * t)`.

    Keras 2 optimizers took `decay=` and divided the learning rate by
    `1 + decay * iterations` before every update, `iterations` counting the
    updates already done (0 for the first one). Keras 3 dropped the argument;
    this schedule brings the same numbers back. `learning_rate` may itself be
    a schedule, whose value at step `t` is then decayed the same way (what
    `tf.keras` 2.x did when both were given).

    Args:
        learning_rate: float or `keras.optimizers.schedules.LearningRateSchedule`.
            The undecayed learning rate.
        decay: float, `>= 0`. The Keras 2 `decay` argument.

    Examples:

    >>> schedule = TimeBasedDecay(0.1, decay=0.5)
    >>> [round(float(schedule(t)), 4) for t in range(3)]  # 0.1 / (1 + 0.5 t)
    [0.1, 0.0667, 0.05]
    >>> opt = keras.optimizers.SGD(learning_rate=schedule)
    """

    def __init__(
        self,
        learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
        decay: float,
    ):
        if isinstance(learning_rate, dict):
            learning_rate = keras.saving.deserialize_keras_object(learning_rate)
        if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)):
                raise ValueError(
                    "TimeBasedDecay needs a float learning rate or a LearningRateSchedule; "
                    f"received learning_rate={learning_rate!r}."
                )
            learning_rate = float(learning_rate)
            if not 0 <= learning_rate < math.inf:
                raise ValueError(
                    "TimeBasedDecay needs a finite learning rate >= 0; received "
                    f"learning_rate={learning_rate!r}."
                )
        if (
            isinstance(decay, bool)
            or not isinstance(decay, (int, float))
            or not 0 <= decay < math.inf
        ):
            raise ValueError(
                f"`decay` must be a number >= 0 (Keras 2 time-based decay); received decay={decay!r}."
            )
        self.learning_rate = learning_rate
        self.decay = float(decay)

    def __call__(self, step):
        if isinstance(self.learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            learning_rate = self.learning_rate(step)
        else:
            learning_rate = self.learning_rate
        t = ops.cast(step, keras.config.floatx())
        return ops.divide(learning_rate, ops.add(1.0, ops.multiply(self.decay, t)))

    def get_config(self) -> dict[str, Any]:
        learning_rate = self.learning_rate
        if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            learning_rate = keras.saving.serialize_keras_object(learning_rate)
        return {"learning_rate": learning_rate, "decay": self.decay}


def _keras_parent(cls: type) -> type:
    """The `keras.optimizers` class a keras_recipes optimizer extends."""
    for base in cls.__mro__[1:]:
        if base.__module__.startswith("keras.") and issubclass(base, keras.optimizers.Optimizer):
            return base
    raise TypeError(f"{cls.__name__} does not extend a keras.optimizers class.")


def _init_parameters(keras_cls: type) -> list[inspect.Parameter]:
    parameters = inspect.signature(keras_cls.__init__).parameters.values()
    return [p for p in parameters if p.name != "self" and p.kind is not p.VAR_KEYWORD]


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# Moment decay rates: 1 would stop the average moving, and Adam's bias
# correction divides by 1 - beta ** t, which is 0 at beta = 1.
FRACTIONS = {
    "beta_1": "[0, 1)",
    "beta_2": "[0, 1)",
    "adam_beta_1": "[0, 1)",
    "adam_beta_2": "[0, 1)",
}


class _Keras2Spellings:
    """Mixin: translates the Keras 2 arguments, then calls the Keras 3 class."""

    keras2_extra_arguments: tuple[str, ...] = ()
    fraction_bounds: dict[str, str] = FRACTIONS

    def __init__(self, *args, **kwargs):
        keras_cls = _keras_parent(type(self))
        parameters = _init_parameters(keras_cls)
        names = [p.name for p in parameters]
        if len(args) > len(names):
            raise TypeError(
                f"{type(self).__name__} takes at most {len(names)} positional arguments."
            )
        for name, value in zip(names, args, strict=False):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__} got multiple values for argument '{name}'.")
            kwargs[name] = value

        valid = names + list(KERAS2_ARGUMENTS) + list(self.keras2_extra_arguments)
        unknown = [key for key in kwargs if key not in valid]
        if unknown:
            raise ValueError(
                f"{type(self).__name__} got unknown argument(s) {', '.join(map(repr, unknown))}. "
                f"Valid arguments: {', '.join(valid)}."
            )

        if "lr" in kwargs:
            if "learning_rate" in kwargs:
                raise ValueError(
                    f"{type(self).__name__} got both `lr` (the Keras 2 spelling) and "
                    "`learning_rate`; pass only one of them."
                )
            kwargs["learning_rate"] = kwargs.pop("lr")
        defaults = {p.name: p.default for p in parameters}
        learning_rate = kwargs.get("learning_rate", defaults["learning_rate"])
        if _is_real(learning_rate):
            learning_rate = float(
                learning_rate
            )  # Keras 2 took `lr=1` (or numpy); Keras 3 wants float

        arguments = {**kwargs, "learning_rate": learning_rate}
        _check_hyperparameters(type(self).__name__, arguments, self.fraction_bounds)
        decay = kwargs.pop("decay", None)
        if decay is not None:
            if (
                isinstance(decay, bool)
                or not isinstance(decay, (int, float))
                or not 0 <= decay < math.inf
            ):
                raise ValueError(
                    f"`decay` must be a number >= 0 (Keras 2 time-based decay, "
                    f"lr / (1 + decay * iterations)); received decay={decay!r}."
                )
            if decay > 0:
                learning_rate = TimeBasedDecay(learning_rate, decay)
        kwargs["learning_rate"] = learning_rate

        if "epsilon" in kwargs and kwargs["epsilon"] is None:
            kwargs["epsilon"] = keras.config.epsilon()
        super().__init__(**kwargs)


def _check_hyperparameters(owner: str, kwargs: dict, fractions: dict[str, str]) -> None:
    """Refuses numbers Keras would accept and train on into NaN or nothing.

    Only plain numbers are checked: schedules, callables and tensors pass.
    """

    def refuse(name, value, want):
        raise ValueError(f"{owner}: `{name}` must be {want}; received {name}={value!r}.")

    for name, value in kwargs.items():
        if _is_real(value) and math.isnan(value):
            refuse(name, value, "a number, not NaN")
    learning_rate = kwargs.get("learning_rate")
    if _is_real(learning_rate) and not (0 <= learning_rate < math.inf):
        refuse("learning_rate", learning_rate, "a finite number >= 0 (or a LearningRateSchedule)")
    for name, interval in fractions.items():
        value = kwargs.get(name)
        if not _is_real(value):
            continue
        high_ok = interval.endswith("]")
        if not (0 <= value and (value <= 1 if high_ok else value < 1)):
            refuse(name, value, f"in {interval}")
    for name in ("clipnorm", "clipvalue", "global_clipnorm"):
        value = kwargs.get(name)
        if value is not None and not (_is_real(value) and 0 < value < math.inf):
            refuse(name, value, "a number > 0, or None for no clipping")
    for name in ("epsilon", "weight_decay"):
        value = kwargs.get(name)
        if _is_real(value) and not (0 <= value < math.inf):
            refuse(name, value, "a finite number >= 0")


_KERAS2_DOC = """
    Keras 2 spellings: `lr=` for `learning_rate=`, `decay=` for time-based decay
    `lr / (1 + decay * iterations)` (a `TimeBasedDecay` schedule), and
    `epsilon=None` for `keras.config.epsilon()` (where the class has `epsilon`).
    The remaining arguments are those of `keras.optimizers.{name}`:
"""


def _without_doctest_prompts(text: str) -> str:
    """`text` with `>>>` / `...` prompts removed: Keras's examples, shown as plain code.

    Keras's own examples assume names from its test setup (`model`,
    `keras.backend.Variable`), so under our docstrings they are for
    reading; `pytest --doctest-modules` collects only our examples.
    """
    return re.sub(r"(?m)^(\s*)(?:>>>|\.\.\.)(?: |$)", r"\1", text)


def _keras2_compatible(cls: type) -> type:
    """Registers `cls` for serialization and appends its Keras parent's manual."""
    keras_cls = _keras_parent(cls)
    cls.__doc__ = (
        (cls.__doc__ or "")
        + _KERAS2_DOC.format(name=keras_cls.__name__)
        + "\n    "
        + _without_doctest_prompts(keras_cls.__doc__ or "")
    )
    return keras.saving.register_keras_serializable(package="keras_recipes")(cls)


@_keras2_compatible
class SGD(_Keras2Spellings, keras.optimizers.SGD):
    """Gradient descent, optionally with momentum or Nesterov momentum.

    With `momentum=m` the update is `v = m * v - lr * g; w = w + v`; with
    `nesterov=True` it is `w = w + m * v - lr * g` (the velocity `v` after its
    update). Batch, mini-batch and stochastic gradient descent are this
    optimizer with different batch sizes, see `gradient_descent_batch_size`.

    Examples:

    Two steps on `w = 1` with gradient `0.5`: `v = -0.05`, then
    `v = 0.9 * -0.05 - 0.05 = -0.095`.

    >>> import numpy as np
    >>> w = keras.Variable([1.0])
    >>> opt = SGD(lr=0.1, momentum=0.9)
    >>> for _ in range(2):
    ...     opt.apply([np.array([0.5], "float32")], [w])
    >>> round(float(w.numpy()[0]), 6)
    0.855
    >>> opt = SGD(lr=0.01, momentum=0.9, nesterov=True)
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> model.compile(loss="mean_squared_error", optimizer=opt)
    """


@_keras2_compatible
class RMSprop(_Keras2Spellings, keras.optimizers.RMSprop):
    """RMSprop: divides the gradient by a moving root mean square of past gradients.

    Examples:

    >>> opt = RMSprop(learning_rate=0.001, rho=0.9, epsilon=None, decay=0.0)
    >>> opt.rho, opt.epsilon  # epsilon=None is keras.config.epsilon()
    (0.9, 1e-07)
    """


@_keras2_compatible
class Adam(_Keras2Spellings, keras.optimizers.Adam):
    """Adam: adaptive first- and second-moment estimates (Kingma and Ba, 2014).

    `weight_decay=` gives decoupled weight decay (AdamW), `amsgrad=True` keeps
    the running maximum of the second moment (AMSGrad).

    Examples:

    >>> opt = Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=None,
    ...            decay=0.0, amsgrad=False)
    >>> opt = Adam(weight_decay=0.01)
    >>> opt = Adam(amsgrad=True)
    >>> opt.amsgrad
    True
    """


@_keras2_compatible
class AdamW(_Keras2Spellings, keras.optimizers.AdamW):
    """AdamW: Adam with decoupled weight decay (Loshchilov and Hutter, 2017).

    Examples:

    >>> opt = AdamW(lr=0.001, weight_decay=0.01)
    >>> round(float(opt.learning_rate), 6), opt.weight_decay
    (0.001, 0.01)
    """


@_keras2_compatible
class Adadelta(_Keras2Spellings, keras.optimizers.Adadelta):
    """Adadelta: Adagrad with a decaying window of squared gradients.

    Examples:

    >>> opt = Adadelta(learning_rate=1.0, rho=0.95, epsilon=None, decay=0.0)
    >>> opt.rho
    0.95
    """


@_keras2_compatible
class Adagrad(_Keras2Spellings, keras.optimizers.Adagrad):
    """Adagrad: a per-weight learning rate from the sum of its squared gradients.

    Examples:

    >>> opt = Adagrad(learning_rate=0.01, epsilon=1e-08)
    >>> opt.epsilon
    1e-08
    """


@_keras2_compatible
class Adamax(_Keras2Spellings, keras.optimizers.Adamax):
    """Adamax: Adam with the infinity norm in place of the second moment.

    Examples:

    >>> opt = Adamax(learning_rate=0.002, beta_1=0.9, beta_2=0.999, epsilon=None, decay=0.0)
    >>> opt.beta_2
    0.999
    """


@_keras2_compatible
class Adafactor(_Keras2Spellings, keras.optimizers.Adafactor):
    """Adafactor: Adam-like, with factored second moments to save memory.

    Examples:

    >>> opt = Adafactor(lr=0.01)
    >>> round(float(opt.learning_rate), 6)
    0.01
    """


@_keras2_compatible
class Nadam(_Keras2Spellings, NadamMomentumSchedule, keras.optimizers.Nadam):
    """Nadam: Adam with Nesterov momentum (Dozat, 2015).

    Both Keras generations warm the momentum up as
    `mu_t = beta_1 * (1 - 0.5 * 0.96 ** (t * schedule_decay))`, `t` counting
    from 1. Keras 1/2 took `schedule_decay` (default `0.004`, a warm-up over
    thousands of steps); Keras 3 fixed the exponent to `t`, which is
    `schedule_decay=1`. Pass `schedule_decay=` to get the Keras 1/2 schedule;
    leave it `None` for Keras 3's.

    Args:
        schedule_decay: float or `None`. The Keras 1/2 momentum-schedule
            decay; `None` (default) keeps Keras 3's schedule.

    Examples:

    >>> opt = Nadam(learning_rate=0.002, beta_1=0.9, beta_2=0.999, epsilon=None,
    ...             schedule_decay=0.004)
    >>> opt.get_config()["schedule_decay"]
    0.004
    """

    keras2_extra_arguments = ("schedule_decay",)

    def __init__(self, *args, schedule_decay: float | None = None, **kwargs):
        if schedule_decay is not None and (
            isinstance(schedule_decay, bool)
            or not isinstance(schedule_decay, (int, float))
            or not 0 <= schedule_decay < math.inf
        ):
            raise ValueError(
                f"`schedule_decay` must be a number >= 0 or None; received {schedule_decay!r}."
            )
        super().__init__(*args, **kwargs)
        self.schedule_decay = None if schedule_decay is None else float(schedule_decay)

    def _momentum_at(self, step, dtype):
        """mu_step = beta_1 * (1 - 0.5 * 0.96 ** (step * schedule_decay)).

        `NadamMomentumSchedule` multiplies it into the running product before
        each step, in place of Keras' fixed schedule.
        """
        exponent = step if self.schedule_decay is None else step * self.schedule_decay
        beta_1 = ops.cast(self.beta_1, dtype)
        return beta_1 * (1.0 - 0.5 * ops.power(ops.cast(0.96, dtype), exponent))

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        local_step = ops.cast(self.iterations + 1, dtype)
        beta_1 = ops.cast(self.beta_1, dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        u_t = self._momentum_at(local_step, dtype)
        u_t_1 = self._momentum_at(local_step + 1.0, dtype)
        u_product_t = ops.cast(nadam_momentum_product(self), dtype)
        u_product_t_1 = u_product_t * u_t_1

        m = optimizer_slot(self, "momentums", variable)
        v = optimizer_slot(self, "velocities", variable)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - beta_2))
        m_hat = ops.add(
            ops.divide(ops.multiply(u_t_1, m), 1 - u_product_t_1),
            ops.divide(ops.multiply(1 - u_t, gradient), 1 - u_product_t),
        )
        v_hat = ops.divide(v, 1 - ops.power(beta_2, local_step))
        self.assign_sub(
            variable,
            ops.divide(ops.multiply(m_hat, lr), ops.add(ops.sqrt(v_hat), self.epsilon)),
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["schedule_decay"] = self.schedule_decay
        return config


@_keras2_compatible
class Ftrl(_Keras2Spellings, keras.optimizers.Ftrl):
    """FTRL-Proximal (McMahan et al., 2013), for large sparse problems.

    Examples:

    >>> opt = Ftrl()
    >>> round(float(opt.learning_rate), 6)
    0.001
    """


@_keras2_compatible
class Lion(_Keras2Spellings, keras.optimizers.Lion):
    """Lion: the sign of an interpolated momentum (Chen et al., 2023).

    Lion's betas only interpolate (no bias correction), so 1 is allowed.

    Examples:

    >>> opt = Lion(lr=1e-4)
    >>> round(float(opt.learning_rate), 6)
    0.0001
    """

    fraction_bounds = {"beta_1": "[0, 1]", "beta_2": "[0, 1]"}


@_keras2_compatible
class Lamb(_Keras2Spellings, keras.optimizers.Lamb):
    """LAMB: Adam with a per-layer trust ratio, for large batches (You et al., 2019).

    Examples:

    >>> opt = Lamb(lr=1e-3)
    >>> round(float(opt.learning_rate), 6)
    0.001
    """


@_keras2_compatible
class Muon(_Keras2Spellings, keras.optimizers.Muon):
    """Muon: orthogonalised momentum for matrices, AdamW for the other weights.

    Examples:

    >>> opt = Muon(lr=1e-3)
    >>> round(float(opt.learning_rate), 6)
    0.001
    """


@_keras2_compatible
class ScheduleFreeAdamW(_Keras2Spellings, keras.optimizers.ScheduleFreeAdamW):
    """Schedule-Free AdamW (Defazio et al., 2024): no learning-rate schedule needed.

    The sequence `z` (Keras calls it `momentum`) must start at the model's
    weights. Keras 3.15 copies them into it in `build`, which `model.fit`
    runs inside a traced `tf.function`, where the copy is lost: `z` starts
    at zero and the first update sets every weight to about `-lr * sign(g)`.
    This class makes the copy on the first update instead, so `fit` trains as
    the algorithm says (and as `keras.optimizers.ScheduleFreeAdamW` does when
    built eagerly).

    Examples:

    >>> opt = ScheduleFreeAdamW(lr=0.0025)
    >>> round(float(opt.learning_rate), 6)
    0.0025
    """

    def update_step(self, gradient, variable, learning_rate):
        z = optimizer_slot(self, "momentums", variable)
        self.assign(z, ops.where(ops.equal(self.iterations, 0), variable, z))
        super().update_step(gradient, variable, learning_rate)


OPTIMIZERS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        SGD,
        RMSprop,
        Adam,
        AdamW,
        Adadelta,
        Adagrad,
        Adamax,
        Adafactor,
        Nadam,
        Ftrl,
        Lion,
        Lamb,
        Muon,
        ScheduleFreeAdamW,
        LossScaleOptimizer,
        MultiOptimizer,
    )
}

# The notes' names for optimizers: (Keras class, defaults the name implies).
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "gradient descent": ("SGD", {}),
    "stochastic gradient descent": ("SGD", {}),
    "momentum": ("SGD", {"momentum": 0.9}),
    "gradient descent with momentum": ("SGD", {"momentum": 0.9}),
    "nesterov": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "nag": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "nesterov accelerated gradient": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "amsgrad": ("Adam", {"amsgrad": True}),
}


def _normalize(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.lower())


def available_optimizers() -> list[str]:
    """Every name `get_optimizer` accepts: the Keras class names, then the aliases.

    Returns:
        list of str. Names are matched case-insensitively, ignoring spaces,
        hyphens and underscores.

    Examples:

    >>> "Nadam" in available_optimizers(), "nesterov" in available_optimizers()
    (True, True)
    """
    return list(OPTIMIZERS) + list(ALIASES)


def get_optimizer(name: str, **kwargs: Any) -> keras.optimizers.Optimizer:
    """Builds an optimizer from its name, with keyword arguments.

    Names are the Keras class names (`"SGD"`, `"Adam"`, `"AdamW"`, ...) and
    the notes' names: `"momentum"` (SGD, `momentum=0.9`), `"nesterov"` /
    `"nag"` (SGD, `momentum=0.9, nesterov=True`), `"amsgrad"` (Adam,
    `amsgrad=True`), `"gradient descent"`; see `available_optimizers()`. Case,
    spaces, hyphens and underscores do not matter. Keyword arguments override
    an alias's defaults and may use the Keras 2 spellings (`lr`, `decay`,
    `epsilon=None`, Nadam's `schedule_decay`). For `LossScaleOptimizer`,
    `inner_optimizer` may be a name.

    Args:
        name: str. The optimizer's name.
        **kwargs: arguments for the optimizer's constructor.

    Returns:
        A `keras.optimizers.Optimizer`.

    Raises:
        ValueError: for an unknown name or argument; the message lists the
            valid ones.

    Examples:

    >>> opt = get_optimizer("nadam", learning_rate=0.002)
    >>> opt = get_optimizer("momentum", lr=0.01, decay=1e-6)
    >>> opt.momentum, type(opt._learning_rate).__name__
    (0.9, 'TimeBasedDecay')
    >>> opt = get_optimizer("LossScaleOptimizer", inner_optimizer="adam")
    >>> type(opt.inner_optimizer).__name__
    'Adam'
    >>> opt = get_optimizer("nesterov", learning_rate=0.01)
    >>> type(opt).__name__, opt.momentum, opt.nesterov
    ('SGD', 0.9, True)
    """
    if not isinstance(name, str):
        raise ValueError(f"get_optimizer takes an optimizer name (str); received {name!r}.")
    key = _normalize(name)
    classes = {_normalize(n): n for n in OPTIMIZERS}
    aliases = {_normalize(n): target for n, target in ALIASES.items()}
    if key in classes:
        class_name, defaults = classes[key], {}
    elif key in aliases:
        class_name, defaults = aliases[key]
    else:
        raise ValueError(
            f"Unknown optimizer {name!r}. Valid names (case-insensitive): "
            f"{', '.join(available_optimizers())}."
        )
    cls = OPTIMIZERS[class_name]
    arguments = {**defaults, **kwargs}
    if cls is LossScaleOptimizer:
        inner = arguments.get("inner_optimizer")
        if inner is None:
            raise ValueError(
                "LossScaleOptimizer wraps another optimizer: pass inner_optimizer= "
                "(an optimizer or its name), e.g. get_optimizer('LossScaleOptimizer', "
                "inner_optimizer='adam')."
            )
        if isinstance(inner, str):
            arguments["inner_optimizer"] = get_optimizer(inner)
    if not issubclass(cls, _Keras2Spellings):
        valid = [p.name for p in _init_parameters(cls)]
        unknown = [key for key in arguments if key not in valid]
        if unknown:
            raise ValueError(
                f"{class_name} got unknown argument(s) {', '.join(map(repr, unknown))}. "
                f"Valid arguments: {', '.join(valid)}."
            )
    return cls(**arguments)


GRADIENT_DESCENT_VARIANTS = ("batch", "mini-batch", "stochastic")


def gradient_descent_batch_size(variant: str, num_samples: int, mini_batch_size: int = 32) -> int:
    """The batch size that makes `fit` run batch, mini-batch or stochastic GD.

    The three are one algorithm, SGD, fed differently: batch gradient descent
    takes one step per epoch on the gradient of the whole data set, stochastic
    gradient descent one step per sample, mini-batch gradient descent one step
    per `mini_batch_size` samples.

    Args:
        variant: str. `"batch"` (also `"full-batch"`), `"mini-batch"` or
            `"stochastic"`, optionally followed by "gradient descent", "GD"
            or "SGD" (the notes write "Mini-Batch SGD"); case-insensitive.
        num_samples: int. The number of training samples, N.
        mini_batch_size: int. The mini-batch size. Defaults to `32`.

    Returns:
        int. N for batch, `min(mini_batch_size, N)` for mini-batch, 1 for
        stochastic.

    Examples:

    >>> gradient_descent_batch_size("batch", 1000)
    1000
    >>> gradient_descent_batch_size("Mini-Batch SGD", 1000, 64)
    64
    >>> gradient_descent_batch_size("stochastic gradient descent", 1000)
    1

    In training: `model.fit(x, y, batch_size=gradient_descent_batch_size("mini-batch", len(x)))`.
    """
    for value, label in ((num_samples, "num_samples"), (mini_batch_size, "mini_batch_size")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{label}` must be an int >= 1; received {label}={value!r}.")
    key = _normalize(variant) if isinstance(variant, str) else ""
    key = re.sub(r"(gradientdescent|sgd|gd)$", "", key)
    sizes = {
        "batch": num_samples,
        "fullbatch": num_samples,
        "minibatch": min(mini_batch_size, num_samples),
        "stochastic": 1,
    }
    if key not in sizes:
        raise ValueError(
            f"Unknown gradient-descent variant {variant!r}. Valid variants: "
            f"{', '.join(GRADIENT_DESCENT_VARIANTS)} (optionally followed by 'gradient descent')."
        )
    return sizes[key]
