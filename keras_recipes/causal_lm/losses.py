"""Language-model cross-entropy fused with the output head, computed chunk by chunk.

The plain training step of a LLaMA computes the logits `(B, T, vocab)`,
casts them to float32 and hands them to
`SparseCategoricalCrossentropy(from_logits=True)`. At the stories15M shape
(batch 8 x 256 tokens, vocab 32000) that tensor alone is 262 MB of float32,
written and read several times by the softmax, the loss and its gradient:
about half the training step on a CPU. `fused_head_cross_entropy` computes
the same mean loss from the final hidden states and the output matrix a
chunk of rows at a time, and computes the gradients in the same pass (the
loss is a scalar, so its gradient only scales them): per chunk, logits in
the compute dtype, softmax in float32, `g = softmax - onehot`, then
`dh = g @ W^T` and `dW += h^T @ g`. No whole logits tensor is kept, and the
head costs three matrix products, as in the plain path, with no recompute
([Liger-Kernel's fused linear cross-entropy](https://arxiv.org/abs/2410.10989)
does the same on GPUs).

`LanguageModelLoss` is the loss to `compile` a causal LM with: on logits
it is `SparseCategoricalCrossentropy(from_logits=True)`, and a model whose
`train_step` is `FusedTrainStep`'s (`LlamaModel`, or any causal LM that
mixes it in and provides `hidden_states` and `output_weights`) recognises
it and takes the fused path instead.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from keras_recipes._compat import compiled_metrics, loss_tracker

CHUNK_ROWS = 1024


@keras.saving.register_keras_serializable(package="keras_recipes")
class LanguageModelLoss(keras.losses.SparseCategoricalCrossentropy):
    """Mean token cross-entropy from logits, which `LlamaModel` computes fused with its head.

    On any `(y_true, logits)` it is `SparseCategoricalCrossentropy(
    from_logits=True)`. A `LlamaModel` compiled with it trains with
    `fused_head_cross_entropy` (the same loss and gradients, without the
    whole logits tensor) when the step has no compiled metrics; sample
    weights (a loss mask) are applied in the fused path too.

    Args:
        chunk_rows: int, default 1024. Tokens per chunk of the fused path.
        **kwargs: `SparseCategoricalCrossentropy` arguments other than
            `from_logits`. `reduction="mean_with_sample_weight"` divides by
            the sum of the sample weights (the mean over the tokens a mask
            keeps) instead of the token count; a `reduction` other than
            these two means turns the fused path off.
    """

    def __init__(self, chunk_rows: int = CHUNK_ROWS, name="language_model_loss", **kwargs):
        kwargs.pop("from_logits", None)
        super().__init__(from_logits=True, name=name, **kwargs)
        if chunk_rows < 1:
            raise ValueError(f"LanguageModelLoss: chunk_rows must be >= 1, got {chunk_rows}.")
        self.chunk_rows = int(chunk_rows)

    def get_config(self):
        config = super().get_config()
        config.pop("from_logits", None)
        config["chunk_rows"] = self.chunk_rows
        return config


def fused_head_cross_entropy(
    hidden,
    kernel,
    labels,
    kernel_is_embedding: bool = False,
    chunk_rows: int = CHUNK_ROWS,
    logit_soft_cap: float | None = None,
    sample_weight=None,
    mean_over_weights: bool = False,
    kernel_gradient: bool = True,
):
    """Mean cross-entropy of `softmax(hidden @ kernel)` against `labels`, gradients fused.

    Args:
        hidden: `(..., dim)` final hidden states (after the last norm), in
            the compute dtype.
        kernel: the output matrix, `(dim, vocab)`, or the `(vocab, dim)`
            token embeddings when `kernel_is_embedding` (tied weights), read
            in place instead of transposed. A variable or tensor; it is cast
            to `hidden`'s dtype.
        labels: int `(...)`, the target ids, shaped like `hidden` without
            its last axis.
        kernel_is_embedding: bool, default False.
        chunk_rows: int, default 1024. Rows of logits alive at a time.
        logit_soft_cap: float or None, default None. When set, the logits
            are `cap * tanh(logits / cap)` (Gemma 2's final soft-capping)
            before the softmax, and the gradients go through the tanh.
        sample_weight: float `(...)` like `labels`, or None: each token's
            loss is multiplied by its weight (0 masks it: no loss, no
            gradient), as Keras' losses take `sample_weight`.
        mean_over_weights: bool, default False. Divide the weighted sum by
            the sum of the weights (Keras' `"mean_with_sample_weight"`)
            instead of the token count (`"sum_over_batch_size"`).
        kernel_gradient: bool, default True. False when the kernel is
            frozen (LoRA): its gradient, a third of the head's cost, is
            not computed (it reads as None).

    Returns:
        float32 scalar. Differentiable with respect to `hidden` and `kernel`.
    """
    dim = hidden.shape[-1]
    h = tf.reshape(hidden, [-1, dim])
    y = tf.reshape(tf.cast(labels, tf.int32), [-1])
    w = tf.cast(kernel, h.dtype)
    rows = h.shape[0]
    if rows is None:  # dynamic batch: one chunk
        bounds = [(0, None)]
    else:
        bounds = [(s, min(s + chunk_rows, rows)) for s in range(0, rows, chunk_rows)]
    weights = (
        None if sample_weight is None else tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
    )
    return _fused(
        h,
        w,
        y,
        bounds,
        kernel_is_embedding,
        logit_soft_cap,
        weights,
        mean_over_weights,
        kernel_gradient,
    )


def _fused(
    h,
    w,
    y,
    bounds,
    kernel_is_embedding,
    logit_soft_cap=None,
    weights=None,
    mean_over_weights=False,
    dw_wanted=True,
):
    @tf.custom_gradient
    def loss_and_grads(h, w):
        count = tf.cast(tf.shape(h)[0], tf.float32)
        if weights is not None and mean_over_weights:
            count = tf.reduce_sum(weights)
        count = tf.where(count > 0, count, 1.0)  # all masked: loss and gradients 0
        total = tf.constant(0.0, tf.float32)
        dh_parts, dw = [], None
        for start, stop in bounds:
            h_c = h[start:stop]
            y_c = y[start:stop]
            logits = tf.cast(
                tf.matmul(h_c, w, transpose_b=kernel_is_embedding), tf.float32
            )  # (c, vocab)
            if logit_soft_cap is not None:
                squashed = tf.tanh(logits / logit_soft_cap)
                logits = squashed * logit_soft_cap
            shifted = logits - tf.reduce_max(logits, axis=-1, keepdims=True)
            exps = tf.exp(shifted)
            sums = tf.reduce_sum(exps, axis=-1, keepdims=True)
            target = tf.gather(shifted, y_c[:, None], batch_dims=1)
            token_loss = tf.math.log(sums) - target
            if weights is not None:
                token_loss *= weights[start:stop, None]
            total += tf.reduce_sum(token_loss)
            # d(mean loss)/d logits = (softmax - onehot) / count
            probs = exps * (1.0 / sums)
            rows = tf.range(tf.shape(y_c)[0])
            g = tf.tensor_scatter_nd_sub(
                probs, tf.stack([rows, y_c], axis=1), tf.ones_like(rows, tf.float32)
            )
            if logit_soft_cap is not None:  # d(cap * tanh(z / cap)) / dz
                g = g * (1.0 - tf.square(squashed))
            if weights is not None:
                g *= weights[start:stop, None]
            g = tf.cast(g / count, h.dtype)
            if kernel_is_embedding:  # w: (vocab, dim)
                dh_parts.append(tf.matmul(g, w))
            else:  # w: (dim, vocab)
                dh_parts.append(tf.matmul(g, w, transpose_b=True))
            if dw_wanted:
                if kernel_is_embedding:
                    dw_c = tf.cast(tf.matmul(g, h_c, transpose_a=True), tf.float32)
                else:
                    dw_c = tf.cast(tf.matmul(h_c, g, transpose_a=True), tf.float32)
                dw = dw_c if dw is None else dw + dw_c
        dh = tf.concat(dh_parts, axis=0) if len(dh_parts) > 1 else dh_parts[0]
        dw = None if dw is None else tf.cast(dw, w.dtype)

        def grad(upstream):
            dw_out = None if dw is None else tf.cast(upstream, w.dtype) * dw
            return tf.cast(upstream, h.dtype) * dh, dw_out

        return total / count, grad

    return loss_and_grads(h, w)


class FusedTrainStep:
    """A `train_step` with the output head and the loss fused, for any causal LM.

    Mix it in before `keras.Model` (`class MyLM(FusedTrainStep, keras.Model)`)
    in a model that provides `hidden_states(token_ids, training=None)` (the
    final hidden states `(B, T, dim)`, after the last norm, that the head
    maps to logits) and `output_weights()` (the output matrix's variable,
    and whether it is the embedding table used transposed), and optionally
    `logit_soft_cap()` (a float when the head soft-caps its logits, as
    Gemma 2's does; None or absent otherwise). Compiled with
    `LanguageModelLoss` (no compiled metrics; sample weights allowed, with
    the default mean or `"mean_with_sample_weight"`), the step never builds
    the `(B, T, vocab)` logits:
    `fused_head_cross_entropy` computes the same loss and gradients a chunk
    of tokens at a time. Otherwise it is Keras' own step.
    """

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        loss_fn = self.loss
        fusable = (
            isinstance(loss_fn, LanguageModelLoss)
            and loss_fn.reduction in ("sum_over_batch_size", "mean_with_sample_weight")
            and y is not None
            and not compiled_metrics(self)
            and self.optimizer is not None
        )
        if not fusable:
            return super().train_step(data)
        kernel, kernel_is_embedding = self.output_weights()
        soft_cap = getattr(self, "logit_soft_cap", None)
        soft_cap = soft_cap() if callable(soft_cap) else None
        with tf.GradientTape() as tape:
            hidden = self.hidden_states(x, training=True)
            loss = fused_head_cross_entropy(
                hidden,
                kernel,
                y,
                kernel_is_embedding=kernel_is_embedding,
                chunk_rows=loss_fn.chunk_rows,
                logit_soft_cap=soft_cap,
                sample_weight=sample_weight,
                mean_over_weights=loss_fn.reduction == "mean_with_sample_weight",
                kernel_gradient=bool(getattr(kernel, "trainable", True)),
            )
            if self.losses:
                loss = loss + ops.sum(self.losses)
            # Each replica's share of the mean, as Keras' own step scales it;
            # the tracker gets the unscaled value.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            tracked = loss
            if replicas > 1:
                loss = ops.multiply(loss, ops.cast(1.0 / replicas, loss.dtype))
                tracked = ops.multiply(loss, ops.cast(replicas, loss.dtype))
            loss_tracker(self).update_state(tracked, sample_weight=tf.shape(x)[0])
            loss = self.optimizer.scale_loss(loss)
        variables = self.trainable_weights
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return self.compute_metrics(x, y, None, sample_weight=None)
