"""Every use of a private Keras or TensorFlow API, each with its reason.

The package otherwise speaks only public APIs. What Keras 3.15 and
TensorFlow 2.21 do not offer publicly is reached here, and only here, so a
Keras or TensorFlow upgrade means reading one file: each function says what
it touches, why no public API does the job, and what to switch to when one
appears. Where a public equivalent already exists the package uses it
instead (loss scaling by `tf.distribute.get_strategy().num_replicas_in_sync`,
`fit(initial_epoch=...)`, a plain `keras.callbacks.Callback` for backups).

The versions this was written and tested against are `WRITTEN_FOR`;
`checked_versions()` compares them with the running ones, and importing this
module warns (a `RuntimeWarning`, never an error) when they differ, since a
private API may change in any release.

Private APIs used, by the module that needs them:

- `keras_recipes.llama.model` (the fused train step): `compiled_metrics`,
  `loss_tracker`.
- `keras_recipes.llama.distribute`: `detach_from_strategy`,
  `clip_after_all_reduce`, `skip_training_steps`.
- `keras_recipes.optimizers`: `optimizer_slot`, `nadam_momentum_product`,
  `NadamMomentumSchedule`.
- `keras_recipes.export.tflite`: `tflite_schema`, `tflite_flatbuffer_utils`,
  `litert_signature_in_place`.
- `keras_recipes.causal_lm.generation`, `keras_recipes.embeddings.word2vec`:
  `align_function_uids`.
- `keras_recipes.causal_lm.lora`: `replace_sublayer`.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import warnings

# (major, minor) of the releases the private uses below were read from and
# tested with; patch releases of these are assumed to keep them.
WRITTEN_FOR = {"keras": (3, 15), "tensorflow": (2, 21)}


def _major_minor(version: str) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else None


def checked_versions() -> dict[str, dict]:
    """The running Keras and TensorFlow versions against those this module was written for.

    Returns:
        dict: for `"keras"` and `"tensorflow"`, `{"running": str,
        "written_for": "3.15.x" / "2.21.x", "supported": bool}`.

    Examples:

    >>> report = checked_versions()
    >>> sorted(report), report["keras"]["written_for"]
    (['keras', 'tensorflow'], '3.15.x')
    >>> sorted(report["keras"])  # e.g. {'running': '3.15.1', ..., 'supported': True}
    ['running', 'supported', 'written_for']
    """
    import keras

    tf = sys.modules.get("tensorflow")  # loaded with Keras' TensorFlow backend
    tf_version = tf.__version__ if tf is not None else importlib.metadata.version("tensorflow")
    report = {}
    for name, running in (("keras", keras.__version__), ("tensorflow", tf_version)):
        wanted = WRITTEN_FOR[name]
        report[name] = {
            "running": running,
            "written_for": f"{wanted[0]}.{wanted[1]}.x",
            "supported": _major_minor(running) == wanted,
        }
    return report


def warn_if_unsupported(report: dict[str, dict] | None = None) -> bool:
    """Warns (`RuntimeWarning`) for each library outside `WRITTEN_FOR`; True if all fit."""
    report = checked_versions() if report is None else report
    outside = [
        f"{name} {entry['running']} (written for {entry['written_for']})"
        for name, entry in report.items()
        if not entry["supported"]
    ]
    if outside:
        warnings.warn(
            "keras_recipes uses a few private Keras/TensorFlow APIs (all in "
            f"keras_recipes/_compat.py) and runs with {', '.join(outside)}. They may have "
            "changed; if training, distribution, Nadam or TFLite export misbehave, check "
            "that module first.",
            RuntimeWarning,
            stacklevel=2,
        )
    return not outside


# --- keras_recipes.llama.model: the fused train step ---------------------------


def compiled_metrics(model):
    """The metrics `compile(metrics=..., weighted_metrics=...)` set, or `None`.

    Why: the fused train step is only exact when nothing needs the logits it
    skips building; compiled metrics do. Keras keeps them in
    `Trainer._compile_metrics` and has no public way to ask whether any were
    compiled (`model.metrics` also lists the loss tracker and layers'
    metrics, and is empty before the first step).
    Public equivalent: none in Keras 3.15.
    """
    return model._compile_metrics


def loss_tracker(model):
    """The `Mean(name="loss")` metric behind the `loss` that `fit` reports.

    Why: a custom `train_step` that computes its own loss must update the
    tracker Keras' own step updates (`Trainer._loss_tracker`), or `fit`
    logs and `History` show no loss. Public equivalent: none in Keras 3.15
    (it is the first entry of `model.metrics` after a compile, an order
    Keras does not promise).
    """
    return model._loss_tracker


# --- keras_recipes.llama.distribute --------------------------------------------


def detach_from_strategy(model) -> None:
    """Makes `fit` use the strategy in scope instead of the one the model was built in.

    Why: under `MultiWorkerMirroredStrategy`, Keras 3.15's TensorFlow trainer
    calls `strategy.reduce` on a whole data batch while building and fails
    before the first step (tensorflow/tensorflow#72388). With
    `Trainer._distribute_strategy` cleared, `distribute_strategy` falls back
    to `tf.distribute.get_strategy()`, the strategy of the `with
    strategy.scope():` around `fit`. Public equivalent: none; drop this when
    `fit` works under that strategy as it is.
    """
    model._distribute_strategy = None


def clip_after_all_reduce(optimizer) -> None:
    """Clips the summed gradient after the all-reduce, not each replica's share before it.

    Why: Keras 3.15's TensorFlow optimizer clips inside `apply`
    (`BaseOptimizer._clip_gradients`) and sums replicas' gradients later
    (`TFOptimizer._all_reduce_sum_gradients`), so `global_clipnorm`,
    `clipnorm` and `clipvalue` see one replica's share and runs on 1 and N
    replicas differ whenever clipping bites. This swaps the two on this
    optimizer: clipping becomes a no-op, and the all-reduce clips its sum.
    Public equivalent: none (Keras 2 had `experimental_aggregate_gradients`).
    Does nothing when the optimizer does not clip.
    """
    if not (optimizer.global_clipnorm or optimizer.clipnorm or optimizer.clipvalue):
        return
    clip, all_reduce = optimizer._clip_gradients, optimizer._all_reduce_sum_gradients

    def all_reduce_then_clip(grads_and_vars):
        pairs = [(g, v) for g, v in all_reduce(grads_and_vars) if g is not None]
        clipped = clip([g for g, _ in pairs])
        return list(zip(clipped, [v for _, v in pairs], strict=True))

    optimizer._clip_gradients = lambda grads: grads  # each replica's share: not yet
    optimizer._all_reduce_sum_gradients = all_reduce_then_clip


def skip_training_steps(model, steps: int) -> None:
    """The next `steps` steps of the running `fit` consume a batch each and train on none.

    Why: resuming mid-epoch has to pass over the batches a backup already
    trained on while `fit` counts them as steps of the epoch, so the data
    stream and the step count stay aligned. `fit` (Keras 3.15, TensorFlow
    backend) builds `model.train_function` before `on_train_begin` and looks
    it up again for every step; a callback can swap it there, which is what
    this does, putting the real function back after the last skipped step.
    Skipped steps log NaN for every metric, and `skipped_step(model)` is
    True at their callbacks (so a NaN guard lets them pass). Public
    equivalent: none (a callback cannot skip a step);
    `fit(initial_epoch=...)` covers whole epochs only.
    """
    train_function = model.train_function
    skipped_logs = {name: float("nan") for name in model.metrics_names}
    remaining = steps

    def skip_or_train(iterator):
        nonlocal remaining
        if remaining > 0:
            remaining -= 1
            next(iterator)  # the batch this step trained on before the restart
            object.__setattr__(model, "_keras_recipes_skipped_step", True)
            return skipped_logs
        object.__setattr__(model, "_keras_recipes_skipped_step", False)
        model.train_function = train_function
        return train_function(iterator)

    if steps > 0:
        model.train_function = skip_or_train


def skipped_step(model) -> bool:
    """Whether the step whose callbacks run now was passed over by `skip_training_steps`."""
    return getattr(model, "_keras_recipes_skipped_step", False)


# --- keras_recipes.optimizers --------------------------------------------------


def optimizer_slot(optimizer, slots: str, variable):
    """The `variable`'s entry in one of an optimizer's per-variable slot lists.

    `slots` names the list as Keras' class builds it: `"momentums"` or
    `"velocities"` (`Nadam`, `ScheduleFreeAdamW`'s `z` sequence is
    `"momentums"`).

    Why: an `update_step` that replaces Keras' own must read the slots the
    Keras class created in `build` (so checkpoints stay those of the Keras
    optimizer); they are `optimizer._<slots>[optimizer._get_variable_index(v)]`,
    as Keras' own optimizers and its custom-optimizer docstring do.
    Public equivalent: none in Keras 3.15.
    """
    if slots not in ("momentums", "velocities"):
        raise ValueError(f"Unknown optimizer slots {slots!r}; use 'momentums' or 'velocities'.")
    return getattr(optimizer, "_" + slots)[optimizer._get_variable_index(variable)]


def nadam_momentum_product(optimizer):
    """Keras Nadam's running product of the momentum schedule, `prod mu_s` (a variable).

    Why: Nadam's update needs it, and Keras' class keeps it in
    `Nadam._u_product` (created in `build`, saved with the optimizer).
    Public equivalent: none in Keras 3.15.
    """
    return optimizer._u_product


class NadamMomentumSchedule:
    """Mixin for a `keras.optimizers.Nadam` subclass with its own momentum schedule.

    The subclass defines `_momentum_at(step, dtype)`, `mu_step`; before each
    step this multiplies it into `nadam_momentum_product`, in place of Keras'
    fixed schedule, then runs the rest of the optimizer's step as Keras does.
    List it before `keras.optimizers.Nadam` in the bases.

    Why: Keras 3.15 updates the product in `Nadam._backend_update_step`, a
    private hook run once per step before the per-variable `update_step`;
    the only way to change it is to override that hook and skip Nadam's
    version of it. Public equivalent: none.
    """

    def _momentum_at(self, step, dtype):
        raise NotImplementedError

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        import keras
        from keras import ops

        product = nadam_momentum_product(self)
        step = ops.cast(self.iterations + 1, product.dtype)
        self.assign(product, product * self._momentum_at(step, product.dtype))
        # Skip keras Nadam's own product update, keep the rest of the chain.
        super(keras.optimizers.Nadam, self)._backend_update_step(
            grads, trainable_variables, learning_rate
        )


# --- keras_recipes.export.tflite ----------------------------------------------


def tflite_schema():
    """TFLite's flatbuffer schema as Python classes (`BuiltinOperator`, `TensorT`, ...).

    Why: sharing the tied int8 embedding table rewrites the converted
    flatbuffer; TensorFlow ships the schema's generated classes only as
    `tensorflow.lite.python.schema_py_generated`. Public equivalent: none in
    the `tf.lite` API (the separate `tflite` package is read-only).
    """
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


def tflite_flatbuffer_utils():
    """TensorFlow's helpers to read and write a `.tflite` object model.

    Why: as `tflite_schema`; `tensorflow.lite.tools.flatbuffer_utils` is a
    tool module outside the `tf.lite` API. Public equivalent: none.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils


def litert_signature_in_place(interpreter, signature_key: str):
    """One signature of a LiteRT `Interpreter`, run on its tensors in place.

    Returns `(invoke, view)`: `invoke()` runs the signature on what its
    input tensors hold; `view(index)` is a numpy array over one of its
    tensors' memory (valid while the tensors are not reallocated, which
    happens only on a resize). Tensors are allocated once here.

    Why: a `SignatureRunner` call copies every input in and every output
    out, into new arrays; the causal LM generator carries KV caches of
    megabytes from call to call, and those copies (and the page faults of
    fresh arrays) were most of a decode step. `Interpreter.tensor` gives such
    views of the first subgraph only. Public equivalent: none
    (`ai_edge_litert` 2.3).
    """
    runner = interpreter.get_signature_runner(signature_key)
    subgraph = runner._subgraph_index
    wrapper = interpreter._interpreter
    wrapper.AllocateTensors(subgraph)

    def invoke() -> None:
        wrapper.Invoke(subgraph)

    def view(index: int):
        return wrapper.tensor(wrapper, index, subgraph)

    return invoke, view


# --- keras_recipes.causal_lm.generation ----------------------------------------------


def align_function_uids(step: int = 1 << 14) -> int:
    """Moves TensorFlow's process-wide uid counter up to the next multiple of `step`.

    Why: a traced `tf.function` and the functions inside it (`while_loop`
    bodies) are named `__inference_<name>_<uid>` from one counter shared by
    everything the process traced before, and XLA's persistent compilation
    cache keys an executable by those names (its signature and HLO
    fingerprints). Starting each trace of `generate` at an aligned counter
    gives the same names, hence cache hits, in processes that traced
    different things first (training, then sampling). The counter only
    moves forward, so names stay unique; it costs about 10 ms per trace.
    Reaches `tensorflow.python.framework.ops.uid`. Public equivalent: none
    (`tf.function` takes no name for its generated functions).

    Returns:
        The counter's value the next trace starts from.
    """
    from tensorflow.python.framework import ops

    target = (ops.uid() // step + 1) * step
    while ops.uid() < target - 1:
        pass
    return target


# --- keras_recipes.causal_lm.lora ---------------------------------------------


def replace_sublayer(parent, attribute: str, new) -> None:
    """Puts layer `new` in `parent.<attribute>` in place of the layer there, in its position.

    Why: LoRA wraps a built model's `Dense` projections (and unwraps them
    when merging). A built layer's tracker (`Layer._tracker`) is locked
    against new state, and assigning the attribute would append `new` to
    `Layer._layers` while the old layer stayed there: the model's weights
    would then list the replaced layer's variables too, and in another
    order than a freshly built model (`set_weights` by position would put
    one kernel into another of the same shape). So the old layer is
    untracked and `new` takes its place in `_layers`, under the unlock that
    Keras' own `Dense.enable_lora` uses. Public equivalent: none in Keras
    3.15.
    """
    old = getattr(parent, attribute)
    tracker = parent._tracker
    position = next(i for i, layer in enumerate(parent._layers) if layer is old)
    was_locked = tracker.locked
    tracker.unlock()
    try:
        tracker.untrack(old)
        setattr(parent, attribute, new)
        parent._layers.remove(new)
        parent._layers.insert(position, new)
    finally:
        if was_locked:
            tracker.lock()


warn_if_unsupported()
