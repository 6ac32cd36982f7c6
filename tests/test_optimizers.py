"""keras_recipes.optimizers: every Keras optimizer by name, Keras 2 spellings, closed forms."""

import inspect
import textwrap

import keras
import numpy as np
import pytest

from keras_recipes import optimizers
from keras_recipes.optimizers import (
    SGD,
    Adagrad,
    Adam,
    Nadam,
    RMSprop,
    TimeBasedDecay,
    get_optimizer,
    gradient_descent_batch_size,
)


def run_steps(optimizer, gradients, initial=0.0):
    """Applies each gradient in turn to one scalar-vector weight; returns its history."""
    weight = keras.Variable(np.full((1,), initial, dtype="float32"))
    history = [float(weight.numpy()[0])]
    for g in gradients:
        optimizer.apply([np.full((1,), g, dtype="float32")], [weight])
        history.append(float(weight.numpy()[0]))
    return np.array(history)


# The notes' gradients: varied in sign and size so every term of a formula shows.
GRADIENTS = [1.0, -2.0, 0.5, 3.0, -1.5, 0.25]


# ---------------------------------------------------------------- the classes


def keras_optimizer_classes():
    return {
        name: cls
        for name, cls in vars(keras.optimizers).items()
        if inspect.isclass(cls)
        and issubclass(cls, keras.optimizers.Optimizer)
        and cls is not keras.optimizers.Optimizer
    }


def test_every_keras_optimizer_class_is_importable_under_its_keras_name():
    classes = keras_optimizer_classes()
    expected = {
        "SGD", "RMSprop", "Adam", "AdamW", "Adadelta", "Adagrad", "Adamax", "Adafactor",
        "Nadam", "Ftrl", "Lion", "Lamb", "Muon", "ScheduleFreeAdamW", "LossScaleOptimizer",
    }  # fmt: skip
    assert expected <= set(classes)
    for name, keras_cls in classes.items():
        ours = getattr(optimizers, name)
        assert issubclass(ours, keras_cls), name


@pytest.mark.parametrize(
    "name", ["adam", "ADAM", "Adam", "rmsprop", "RMSProp", "schedule_free_adamw"]
)
def test_get_optimizer_is_case_insensitive(name):
    expected = {"adam": Adam, "rmsprop": RMSprop, "schedulefreeadamw": optimizers.ScheduleFreeAdamW}
    assert type(get_optimizer(name)) is expected[name.lower().replace("_", "")]


def test_aliases_build_what_the_notes_mean():
    momentum = get_optimizer("momentum")
    assert type(momentum) is SGD and momentum.momentum == 0.9 and not momentum.nesterov
    nesterov = get_optimizer("Nesterov", lr=0.01)
    assert type(nesterov) is SGD and nesterov.momentum == 0.9 and nesterov.nesterov
    assert float(nesterov.learning_rate) == pytest.approx(0.01)
    assert get_optimizer("amsgrad").amsgrad is True
    assert type(get_optimizer("adamw")) is optimizers.AdamW
    assert get_optimizer("momentum", momentum=0.5).momentum == 0.5  # kwargs override


def test_every_available_name_builds_an_optimizer():
    names = optimizers.available_optimizers()
    assert len(names) == len(set(names))
    for name in names:
        kwargs = {}
        if name == "LossScaleOptimizer":
            kwargs = {"inner_optimizer": "sgd"}
        if name == "MultiOptimizer":
            kwargs = {"optimizer_map": keras.optimizers.OptimizerMap(SGD())}
        assert isinstance(get_optimizer(name, **kwargs), keras.optimizers.Optimizer), name


def test_loss_scale_optimizer_wraps_an_optimizer_given_by_name():
    opt = get_optimizer("LossScaleOptimizer", inner_optimizer="nadam", initial_scale=8.0)
    assert isinstance(opt, keras.optimizers.LossScaleOptimizer)
    assert type(opt.inner_optimizer) is Nadam
    with pytest.raises(ValueError, match="inner_optimizer"):
        get_optimizer("LossScaleOptimizer")


def test_unknown_name_raises_naming_it_and_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"'adamm'.*SGD.*Nadam.*nesterov"):
        get_optimizer("adamm")


@pytest.mark.parametrize(
    "build, listed",
    [
        (lambda: Adam(learning_rate=0.01, momentum=0.9), "beta_1"),
        (lambda: get_optimizer("adam", momentum=0.9), "amsgrad"),
        (
            lambda: get_optimizer("LossScaleOptimizer", inner_optimizer="sgd", momentum=0.9),
            "initial_scale",
        ),
    ],
)
def test_unknown_argument_raises_naming_it_and_listing_the_valid_ones(build, listed):
    with pytest.raises(ValueError, match=rf"'momentum'.*Valid arguments:.*{listed}"):
        build()


def test_lr_and_learning_rate_together_is_an_error():
    with pytest.raises(ValueError, match="both `lr`.*`learning_rate`"):
        SGD(lr=0.1, learning_rate=0.1)
    with pytest.raises(ValueError, match="both"):
        SGD(0.1, lr=0.1)  # positional learning_rate counts too


def test_lr_means_learning_rate_and_integers_are_accepted():
    assert float(SGD(lr=0.3).learning_rate) == pytest.approx(0.3)
    assert float(optimizers.Adadelta(lr=1).learning_rate) == 1.0  # Keras 2 took an int


@pytest.mark.parametrize("decay", [-0.1, "0.1", True])
def test_bad_decay_raises(decay):
    with pytest.raises(ValueError, match="decay"):
        SGD(lr=0.1, decay=decay)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: SGD(lr=-0.1), r"SGD: `learning_rate` must be a finite number >= 0"),
        (lambda: Adam(learning_rate=float("nan")), r"Adam: `learning_rate` must be a number, not NaN"),
        (lambda: get_optimizer("nadam", learning_rate=float("inf")), r"Nadam: `learning_rate`"),
        (lambda: SGD(lr=-1.0, decay=1e-6), r"`learning_rate` must be a finite number >= 0"),
        (lambda: Adam(beta_1=1.5), r"Adam: `beta_1` must be in \[0, 1\); received beta_1=1.5"),
        (lambda: optimizers.Adamax(beta_1=1.0), r"`beta_1` must be in \[0, 1\)"),
        (lambda: Adam(beta_2=-0.1), r"`beta_2` must be in \[0, 1\)"),
        (lambda: optimizers.Muon(adam_beta_1=2.0), r"`adam_beta_1` must be in"),
        (lambda: SGD(clipnorm=-1), r"`clipnorm` must be a number > 0, or None"),
        (lambda: Adam(clipvalue=0), r"`clipvalue` must be a number > 0"),
        (lambda: Adam(global_clipnorm=float("nan")), r"`global_clipnorm` must be a number, not NaN"),
        (lambda: SGD(lr=0.1, decay=float("nan")), r"`decay` must be a number, not NaN"),
        (lambda: Adam(epsilon=-1e-7), r"`epsilon` must be a finite number >= 0"),
    ],
)  # fmt: skip
def test_hyperparameters_keras_would_train_into_nan_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_valid_edge_values_and_schedules_still_build():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    assert Adam(learning_rate=schedule).beta_1 == 0.9
    assert float(SGD(lr=0).learning_rate) == 0.0  # a frozen run is legitimate
    assert Adam(beta_1=0.0, clipnorm=1.0, epsilon=None).beta_1 == 0.0
    assert optimizers.Lion(beta_1=1.0).beta_1 == 1.0  # Lion only interpolates
    assert float(SGD(lr=np.float32(0.5)).learning_rate) == 0.5  # numpy numbers as floats
    assert isinstance(SGD(lr=0.1, decay=1e-6)._learning_rate, optimizers.TimeBasedDecay)
    with pytest.raises(ValueError, match="finite learning rate"):
        optimizers.TimeBasedDecay(float("nan"), 0.1)


# ---------------------------------------------------------------- closed forms


def test_time_based_decay_moves_the_weight_by_the_closed_form_sum():
    k = 7
    history = run_steps(SGD(lr=0.1, decay=0.5), [1.0] * k)
    moved = history[0] - history[-1]
    np.testing.assert_allclose(moved, sum(0.1 / (1 + 0.5 * t) for t in range(k)), rtol=1e-6)
    # and step by step: update t uses lr / (1 + decay * t), t = updates done before it
    np.testing.assert_allclose(
        -np.diff(history), [0.1 / (1 + 0.5 * t) for t in range(k)], rtol=1e-6
    )


def test_decay_zero_means_no_decay():
    opt = SGD(lr=0.1, decay=0.0)
    assert not isinstance(opt._learning_rate, keras.optimizers.schedules.LearningRateSchedule)
    np.testing.assert_allclose(-np.diff(run_steps(opt, [1.0] * 4)), [0.1] * 4, rtol=1e-6)


def test_decay_divides_a_user_schedule():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    steps = -np.diff(run_steps(SGD(learning_rate=schedule, decay=0.25), [1.0] * 5))
    np.testing.assert_allclose(steps, [0.1 * 0.5**t / (1 + 0.25 * t) for t in range(5)], rtol=1e-6)


def test_decay_also_applies_to_adaptive_optimizers():
    # Adam's first step is lr * sign(g) (up to epsilon); its second uses lr / (1 + decay).
    plain = -np.diff(run_steps(Adam(learning_rate=0.01), [1.0, 1.0]))
    decayed = -np.diff(run_steps(Adam(learning_rate=0.01, decay=1.0), [1.0, 1.0]))
    np.testing.assert_allclose(decayed, plain * np.array([1.0, 0.5]), rtol=1e-6)


def test_epsilon_none_is_the_keras_backend_epsilon():
    assert keras.config.epsilon() == 1e-7
    for cls in (Adagrad, Adam, RMSprop, Nadam, optimizers.Adadelta, optimizers.Adamax):
        assert cls(epsilon=None).epsilon == 1e-7, cls.__name__


def test_adagrad_step_with_epsilon_none_matches_hand_formula():
    g, lr = 1e-4, 0.1  # a gradient small enough that epsilon shows in the step
    opt = Adagrad(learning_rate=lr, initial_accumulator_value=0.0, epsilon=None)
    step = -np.diff(run_steps(opt, [g]))[0]
    np.testing.assert_allclose(step, lr * g / np.sqrt(g**2 + 1e-7), rtol=1e-5)
    assert abs(step - lr * g / np.sqrt(g**2 + 1e-8)) > 0.01  # 1e-8 would be visibly different


def keras_adam_steps(gradients, lr, b1, b2, eps):
    """Keras's Adam: bias corrections folded into alpha, epsilon added to sqrt(v)."""
    m = v = 0.0
    steps = []
    for t, g in enumerate(gradients, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        steps.append(alpha * m / (np.sqrt(v) + eps))
    return np.array(steps)


def test_adam_step_with_epsilon_none_matches_hand_formula():
    gradients = [1e-5, -3e-5, 2e-5]  # small enough that epsilon shows in the step
    opt = Adam(
        learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=None, decay=0.0, amsgrad=False
    )
    steps = -np.diff(run_steps(opt, gradients))
    np.testing.assert_allclose(
        steps, keras_adam_steps(gradients, 0.001, 0.9, 0.999, 1e-7), rtol=1e-5
    )
    assert not np.allclose(steps, keras_adam_steps(gradients, 0.001, 0.9, 0.999, 1e-8), rtol=1e-2)


def test_rmsprop_step_with_epsilon_none_matches_hand_formula():
    lr, rho, eps = 0.001, 0.9, 1e-7
    gradients = [1e-3, -2e-3, 5e-4]
    v, expected = 0.0, []
    for g in gradients:
        v = rho * v + (1 - rho) * g * g
        expected.append(lr * g / np.sqrt(v + eps))
    opt = RMSprop(learning_rate=lr, rho=rho, epsilon=None, decay=0.0)
    np.testing.assert_allclose(-np.diff(run_steps(opt, gradients)), expected, rtol=1e-5)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_and_nesterov_updates_match_their_formulas(nesterov):
    lr, mu = 0.01, 0.9
    w, velocity, expected = 0.0, 0.0, [0.0]
    for g in GRADIENTS:
        velocity = mu * velocity - lr * g
        w = w + (mu * velocity - lr * g if nesterov else velocity)
        expected.append(w)
    history = run_steps(SGD(lr=lr, momentum=mu, nesterov=nesterov), GRADIENTS)
    np.testing.assert_allclose(history, expected, rtol=1e-5, atol=1e-7)


def keras2_nadam(gradients, lr, beta_1, beta_2, epsilon, schedule_decay):
    """Keras 2.2 `Nadam.get_updates`, transcribed to numpy for one scalar weight."""
    p, m, v, m_schedule, history = 0.0, 0.0, 0.0, 1.0, [0.0]
    for iterations, g in enumerate(gradients):
        t = iterations + 1
        momentum_cache_t = beta_1 * (1.0 - 0.5 * 0.96 ** (t * schedule_decay))
        momentum_cache_t_1 = beta_1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * schedule_decay))
        m_schedule_new = m_schedule * momentum_cache_t
        m_schedule_next = m_schedule * momentum_cache_t * momentum_cache_t_1
        m_schedule = m_schedule_new
        g_prime = g / (1.0 - m_schedule_new)
        m = beta_1 * m + (1.0 - beta_1) * g
        m_t_prime = m / (1.0 - m_schedule_next)
        v = beta_2 * v + (1.0 - beta_2) * g * g
        v_t_prime = v / (1.0 - beta_2**t)
        m_t_bar = (1.0 - momentum_cache_t) * g_prime + momentum_cache_t_1 * m_t_prime
        p = p - lr * m_t_bar / (np.sqrt(v_t_prime) + epsilon)
        history.append(p)
    return np.array(history)


@pytest.mark.parametrize("schedule_decay", [0.004, 0.5])
def test_nadam_schedule_decay_matches_keras2_nadam(schedule_decay):
    opt = Nadam(
        learning_rate=0.002, beta_1=0.9, beta_2=0.999, epsilon=None, schedule_decay=schedule_decay
    )
    got = run_steps(opt, GRADIENTS)
    want = keras2_nadam(GRADIENTS, 0.002, 0.9, 0.999, 1e-7, schedule_decay)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)


def test_nadam_without_schedule_decay_is_keras3_nadam_which_is_schedule_decay_one():
    ours = run_steps(Nadam(learning_rate=0.002), GRADIENTS)
    theirs = run_steps(keras.optimizers.Nadam(learning_rate=0.002), GRADIENTS)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(
        ours, keras2_nadam(GRADIENTS, 0.002, 0.9, 0.999, 1e-7, 1.0), rtol=1e-5, atol=1e-8
    )
    keras2_default = run_steps(Nadam(learning_rate=0.002, schedule_decay=0.004), GRADIENTS)
    assert not np.allclose(ours, keras2_default, rtol=1e-3)


def test_time_based_decay_schedule_values_and_validation():
    schedule = TimeBasedDecay(0.1, decay=0.5)
    np.testing.assert_allclose([float(schedule(t)) for t in range(3)], [0.1, 0.1 / 1.5, 0.05])
    with pytest.raises(ValueError, match="learning rate"):
        TimeBasedDecay("0.1", decay=0.5)
    with pytest.raises(ValueError, match="decay"):
        TimeBasedDecay(0.1, decay=-1.0)


# ---------------------------------------------------------------- serialization


@pytest.mark.parametrize(
    "build",
    [
        lambda: SGD(lr=0.1, decay=0.5, momentum=0.9),
        lambda: SGD(
            learning_rate=keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5), decay=0.25
        ),
        lambda: Nadam(learning_rate=0.002, epsilon=None, schedule_decay=0.004),
        lambda: RMSprop(learning_rate=0.001, rho=0.9, epsilon=None, decay=0.01),
    ],
)
def test_keras2_optimizers_round_trip_through_config_with_the_same_numbers(build):
    opt = build()
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(restored) is type(opt)
    assert type(opt).from_config(opt.get_config()).get_config() == opt.get_config()
    np.testing.assert_allclose(
        run_steps(restored, GRADIENTS), run_steps(build(), GRADIENTS), rtol=1e-7
    )


def test_every_class_round_trips_through_get_config():
    for name, cls in optimizers.OPTIMIZERS.items():
        if name in ("LossScaleOptimizer", "MultiOptimizer"):
            continue
        opt = cls(lr=0.01, decay=0.1)
        assert type(opt).from_config(opt.get_config()).get_config() == opt.get_config(), name


def tiny_regression(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5], [3.0]], "float32") + 0.1).astype("float32")
    return x, y


def tiny_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])


def test_model_with_keras2_optimizer_saves_and_loads(tmp_path):
    x, y = tiny_regression()
    model = tiny_model()
    model.compile(loss="mse", optimizer=SGD(lr=0.05, decay=0.5, momentum=0.9))
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer) is SGD
    assert int(loaded.optimizer.iterations.numpy()) == 2
    assert isinstance(loaded.optimizer._learning_rate, TimeBasedDecay)
    np.testing.assert_allclose(float(loaded.optimizer.learning_rate), 0.05 / (1 + 0.5 * 2))


def test_schedule_free_adamw_trains_in_fit_as_keras_built_eagerly():
    import tensorflow as tf

    x, y = tiny_regression()
    model = tiny_model()
    initial = model.get_weights()
    model.compile(loss="mse", optimizer=optimizers.ScheduleFreeAdamW(learning_rate=0.01))
    model.fit(x, y, batch_size=64, epochs=3, shuffle=False, verbose=0)
    # Oracle: Keras's own optimizer, built eagerly (where its z = weights copy holds),
    # stepping a copy of the same model by hand.
    reference = tiny_model()
    reference.set_weights(initial)
    opt = keras.optimizers.ScheduleFreeAdamW(learning_rate=0.01)
    opt.build(reference.trainable_variables)
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = keras.ops.mean(keras.ops.square(y - reference(x)))
        opt.apply(tape.gradient(loss, reference.trainable_variables), reference.trainable_variables)
    for got, want in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- the notes' snippets

NOTES_SNIPPETS = {
    "sgd_momentum": "from keras.optimizers import SGD\nopt = SGD(lr=0.01, momentum=0.9)",
    "rmsprop": "from keras.optimizers import RMSprop\n"
    "opt = RMSprop(learning_rate=0.001, rho=0.9, epsilon=None, decay=0.0)",
    "adagrad": "from keras.optimizers import Adagrad\n"
    "opt = Adagrad(learning_rate=0.01, epsilon=1e-08)",
    "adadelta": "from keras.optimizers import Adadelta\n"
    "opt = Adadelta(learning_rate=1.0, rho=0.95, epsilon=None, decay=0.0)",
    "adam": "from keras.optimizers import Adam\n"
    "opt = Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=None, decay=0.0, amsgrad=False)",
    "adamax": "from keras.optimizers import Adamax\n"
    "opt = Adamax(learning_rate=0.002, beta_1=0.9, beta_2=0.999, epsilon=None, decay=0.0)",
    "nadam": "from keras.optimizers import Nadam\n"
    "opt = Nadam(learning_rate=0.002, beta_1=0.9, beta_2=0.999, epsilon=None, schedule_decay=0.004)",
    "nesterov": "from keras.optimizers import SGD\nopt = SGD(lr=0.01, momentum=0.9, nesterov=True)",
    "adamw": "from keras.optimizers import Adam\nopt = Adam(weight_decay=0.01)",
    "ftrl": "from keras.optimizers import Ftrl\nopt = Ftrl()",
    "amsgrad": "from keras.optimizers import Adam\nopt = Adam(amsgrad=True)",
}


def test_the_snippets_fail_on_plain_keras3():
    """The reason for the module: Keras 3 itself rejects the notes' Keras 2 spellings."""
    with pytest.raises((ValueError, TypeError)):
        keras.optimizers.SGD(lr=0.01, momentum=0.9)
    with pytest.raises((ValueError, TypeError)):
        keras.optimizers.Nadam(epsilon=None, schedule_decay=0.004)


@pytest.mark.parametrize("name", sorted(NOTES_SNIPPETS))
def test_notes_snippet_runs_verbatim_and_trains(name):
    snippet = NOTES_SNIPPETS[name].replace("from keras.optimizers", "from keras_recipes.optimizers")
    snippet += "\nmodel.compile(loss='mean_squared_error', optimizer=opt)"
    x, y = tiny_regression()
    model = tiny_model()
    namespace = {"model": model}
    exec(textwrap.dedent(snippet), namespace)
    assert type(namespace["opt"]).__module__ == "keras_recipes.optimizers"
    before_weights = [w.copy() for w in model.get_weights()]
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert after < before, (name, before, after)
    assert any(
        not np.allclose(a, b) for a, b in zip(model.get_weights(), before_weights, strict=True)
    )


# ---------------------------------------------------------------- batch / mini-batch / stochastic


@pytest.mark.parametrize(
    "variant, expected",
    [
        ("batch", 1000),
        ("Batch gradient descent", 1000),
        ("Batch SGD", 1000),
        ("full-batch", 1000),
        ("mini-batch", 32),
        ("Mini-Batch SGD", 32),
        ("minibatch", 32),
        ("mini_batch gradient descent", 32),
        ("stochastic", 1),
        ("Stochastic SGD", 1),
        ("stochastic gradient descent", 1),
    ],
)
def test_gradient_descent_batch_size(variant, expected):
    assert gradient_descent_batch_size(variant, 1000) == expected


def test_mini_batch_is_capped_at_the_data_set_size():
    assert gradient_descent_batch_size("mini-batch", 10, mini_batch_size=64) == 10
    assert gradient_descent_batch_size("mini-batch", 1000, mini_batch_size=64) == 64


@pytest.mark.parametrize(
    "args, match",
    [
        (("momentum", 100), "Unknown gradient-descent variant 'momentum'.*batch, mini-batch"),
        (("batch", 0), "num_samples"),
        (("mini-batch", 100, 0), "mini_batch_size"),
    ],
)
def test_gradient_descent_batch_size_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        gradient_descent_batch_size(*args)
