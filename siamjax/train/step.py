"""The per-device training step ``(state, batch) -> (state, metrics)``: augmentation, encoder, loss,
gradients averaged over the devices, optimizer update. One pure function, jitted by the runner.

The loss is looked up by ``config.loss.name`` in :data:`LOSS_TERMS`: each entry takes a
:class:`StepContext`, the variables, the parameters, the batch and the step's key and returns
``(loss, (metrics, new batch_stats))``. The P x K losses share one entry and differ only in
:data:`EMBEDDING_LOSSES` ``(embeddings [B, D], labels [B], ctx, class_vectors [C, D] or None) -> (loss,
metrics)`` (the class vectors: the loss's learned ``params["proxies"]``, when it has them); the pair losses
in :data:`PAIR_LOSSES` ``(embeddings [2, B, D], same [B], variables, ctx) -> (loss, metrics)``. The margin
softmaxes over class vectors (loss.name cosface / arcface, and the proxy term's loss.proxy_loss) are in
:data:`MARGIN_LOSSES`. A new loss is one entry there (and its name in siamjax.train.config.LOSSES).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from siamjax.data.augment import apply_affine, sample_affine
from siamjax.data.preprocess import Preprocessing, to_float
from siamjax.data.views import make_views, two_views
from siamjax.losses import (arcface_loss, bce_loss, contrastive_loss, cosface_loss, ntxent_loss, output_std,
                            prototypical_loss, relational_distillation_loss, simsiam_loss, triplet_loss)
from siamjax.nn.twin import Twin
from siamjax.train.config import SSL_LOSSES, augment_config, train_views_from_config, views_from_config
from siamjax.train.state import TRAIN_ONLY, TrainState, make_optimizer, state_variables


def gradient_step(state, loss_fn: Callable, schedule: Callable, axis_name: str | None = None):
    """One optimizer step of a per-device training step: ``loss_fn(params) -> (loss, (metrics, batch
    stats or None))``; with ``axis_name`` the gradients and metrics are averaged over the devices. A
    gathered loss (triplet, NT-Xent) is the same on every device and each device's gradient holds
    num_shards x its share (all_gather transposes to a sum), so pmean gives the full gradient there too.
    Returns (new state, metrics with ``loss``, ``learning_rate`` and ``finite``: False when a new
    parameter, BatchNorm statistic or gradient is NaN or infinite, for the loop to stop on)."""
    (loss, (metrics, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = {**metrics, "loss": loss}
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        metrics = jax.lax.pmean(metrics, axis_name)
    metrics["learning_rate"] = schedule(state.step)
    new_state = state.apply_gradients(grads=grads, batch_stats=stats if stats is not None else state.batch_stats)
    # An extra output only: behind the barrier, nothing of the update fuses with it (same numerics). After the
    # pmean, so the same on every device.
    metrics["finite"] = all_finite(jax.lax.optimization_barrier((new_state.params, new_state.batch_stats, grads)))
    return new_state, metrics


def all_finite(tree) -> jax.Array:
    """One boolean: every float leaf of ``tree`` is finite (no NaN, no infinity)."""
    leaves = [x for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in leaves])) if leaves else jnp.array(True)


@dataclasses.dataclass(frozen=True)
class StepContext:
    """What a loss term needs besides the batch: the twin, the config's ``loss`` group, the image
    preparation (``prep(uint8 images, key) -> float distorted``), ``gather`` (all devices' rows of an
    array), the shard index, the head's normalisation, and the unsupervised views."""

    twin: Twin
    loss: Any
    spec: Preprocessing
    prep: Callable
    gather: Callable
    shard_index: Callable
    center: bool
    normalize: bool
    views: Any


def triplet_term(e, labels, ctx: StepContext, class_vectors=None):
    c = ctx.loss
    return triplet_loss(e, labels, margin=c.margin, mining=c.mining, normalize=ctx.normalize,
                        reduction=c.triplet_reduction)


def proto_term(e, labels, ctx: StepContext, class_vectors=None):
    return prototypical_loss(e, labels, normalize=ctx.normalize, temperature=float(ctx.loss.proto_temperature))


def contrastive_term(emb, same, variables, ctx: StepContext):
    return contrastive_loss(ctx.twin.distance(variables, emb[0], emb[1]), same, margin=ctx.loss.margin)


def bce_term(emb, same, variables, ctx: StepContext):
    return bce_loss(ctx.twin.compare(variables, emb[0], emb[1]).logit, same)


# Margin softmaxes over learned class vectors [C, D]: (embeddings [B, D], labels [B], class vectors, scale,
# margin) -> (loss, metrics). loss.name alone, or the proxy term beside triplet / proto (loss.proxy_loss).
MARGIN_LOSSES = {"cosface": cosface_loss, "arcface": arcface_loss}


def margin_term(name: str, e, labels, class_vectors, ctx: StepContext):
    """``MARGIN_LOSSES[name]`` of the embeddings against the class vectors, at proxy_scale / proxy_margin."""
    return MARGIN_LOSSES[name](e, labels, class_vectors, scale=float(ctx.loss.proxy_scale),
                               margin=float(ctx.loss.proxy_margin))


def cosface_term(e, labels, ctx: StepContext, class_vectors=None):
    return margin_term("cosface", e, labels, class_vectors, ctx)


def arcface_term(e, labels, ctx: StepContext, class_vectors=None):
    return margin_term("arcface", e, labels, class_vectors, ctx)


EMBEDDING_LOSSES = {"triplet": triplet_term, "proto": proto_term,  # P x K batches of labelled images
                    "cosface": cosface_term, "arcface": arcface_term}
PAIR_LOSSES = {"contrastive": contrastive_term, "bce": bce_term}  # balanced same / different pairs


def pk_batch_loss(ctx: StepContext, variables, params, batch, key):
    """P x K batch {images, labels}: embeddings gathered over the devices, the embedding loss over the
    global batch (loss.name cosface / arcface: the margin softmax over the class vectors alone), plus
    ``proxy_weight`` x the ``proxy_loss`` margin softmax over the class vectors when on, plus
    ``distill_weight`` x the relational distillation loss towards the batch's ``teacher`` rows (compared
    within each ``symmetry``) when on."""
    emb, stats = ctx.twin.embed_views(variables, ctx.prep(batch["images"], key)[None])
    e = ctx.gather(emb[0])
    e = e - e.mean(-1, keepdims=True) if ctx.center else e
    labels = ctx.gather(batch["labels"])
    class_vectors = params.get(TRAIN_ONLY)  # None unless the loss learns class vectors (state.create_state)
    loss, m = EMBEDDING_LOSSES[ctx.loss.name](e, labels, ctx, class_vectors)
    proxy_weight = float(ctx.loss.proxy_weight)
    if proxy_weight > 0:
        extra, pm = margin_term(ctx.loss.proxy_loss, e, labels, class_vectors, ctx)
        m = {**m, "proxy_accuracy": pm["accuracy"], "proxy_loss": extra}
        loss = loss + proxy_weight * extra
    distill_weight = float(ctx.loss.distill_weight)
    if distill_weight > 0:
        teacher = ctx.gather(batch["teacher"].astype(jnp.float32))
        extra, dm = relational_distillation_loss(e, teacher, ctx.gather(batch["symmetry"]), normalize=ctx.normalize,
                                                 temperature=float(ctx.loss.distill_temperature),
                                                 teacher_temperature=float(ctx.loss.distill_teacher_temperature))
        m = {**m, **dm, "distill_loss": extra}
        loss = loss + distill_weight * extra
    return loss, (m, stats)


def pair_batch_loss(ctx: StepContext, variables, params, batch, key):
    """Pair batch {left, right, same}: both sides distorted with keys of their own, embedded together."""
    k1, k2 = jax.random.split(key)
    views = jnp.stack([ctx.prep(batch["left"], k1), ctx.prep(batch["right"], k2)])
    emb, stats = ctx.twin.embed_views(variables, views)
    loss, m = PAIR_LOSSES[ctx.loss.name](emb, batch["same"], variables, ctx)
    return loss, (m, stats)


def ssl_batch_loss(ctx: StepContext, variables, params, batch, key):
    """Two views of every unlabelled image (each a function of seed, step and the image's global row) ->
    SimSiam's or SimCLR's loss; NT-Xent's negatives are the other views of the whole global batch."""
    x = to_float(batch["images"], ctx.spec)
    v = two_views(key, x, ctx.views, row_offset=ctx.shard_index() * x.shape[0])
    (_, z, p), stats = ctx.twin.project_views(variables, v)
    if ctx.loss.name == "simsiam":
        loss, m = simsiam_loss(p[0], p[1], z[0], z[1], stop_gradient=bool(ctx.loss.stop_gradient))
    else:
        zg = jnp.concatenate([ctx.gather(z[0]), ctx.gather(z[1])])  # [2B, P]: row i and i + B are one image
        loss, m = ntxent_loss(zg, temperature=float(ctx.loss.ssl_temperature))
    m["output_std"] = output_std(ctx.gather(z[0]))  # over the global batch
    return loss, (m, stats)


LOSS_TERMS = {**{name: pk_batch_loss for name in EMBEDDING_LOSSES},
              **{name: pair_batch_loss for name in PAIR_LOSSES},
              **{name: ssl_batch_loss for name in SSL_LOSSES}}


def make_train_step(twin: Twin, cfg, spec: Preprocessing, axis_name: str | None = None, num_shards: int = 1):
    """The per-device step ``(state, batch) -> (state, metrics)``.

    With ``axis_name`` (pmap / shard_map over ``num_shards`` devices) every device holds rows
    ``[i*b, (i+1)*b)`` of the global batch; gradients and metrics are averaged with ``pmean``, triplet
    losses mine over the whole global batch (embeddings are gathered), BatchNorm statistics cover the
    global batch, and each image's distortion depends on its global row only. So N steps on 8 devices
    equal N steps on 1 device with the same global batch, up to float rounding.

    The encoder computes in ``twin``'s dtype (:func:`twin_from_config`: ``cfg.model.compute_dtype``); the
    gradients, the optimizer update and the state are float32 whatever it is.
    """
    loss_name = cfg.loss.name
    term = LOSS_TERMS[loss_name]
    aug = augment_config(cfg)
    extra_views = None if loss_name in SSL_LOSSES else train_views_from_config(cfg)
    _, schedule = make_optimizer(cfg.optim)
    base_key = jax.random.key(cfg.seed)

    def shard_index():
        return jax.lax.axis_index(axis_name) if axis_name is not None else 0

    def prep(x, key):
        """uint8 [b, H, W, C] -> float, distorted with the matrices of its global rows, then given the
        config's train_views (each image's draw a function of its global row too)."""
        x = to_float(x, spec)
        b = x.shape[0]
        if aug is not None:
            mats = sample_affine(key, b * num_shards, aug)  # the whole global batch's draws
            x = apply_affine(x, jax.lax.dynamic_slice_in_dim(mats, shard_index() * b, b))
        if extra_views is not None:
            x = make_views(jax.random.fold_in(key, 1), x, extra_views, row_offset=shard_index() * b)
        return x

    def gather(x):
        return jax.lax.all_gather(x, axis_name, tiled=True) if axis_name is not None else x

    ctx = StepContext(twin=twin, loss=cfg.loss, spec=spec, prep=prep, gather=gather, shard_index=shard_index,
                      center=cfg.model.head == "correlation", normalize=cfg.model.head in ("cosine", "correlation"),
                      views=views_from_config(cfg) if loss_name in SSL_LOSSES else None)

    def step(state: TrainState, batch: dict):
        key = jax.random.fold_in(base_key, state.step)

        def loss_fn(params):
            return term(ctx, state_variables(state.replace(params=params)), params, batch, key)

        return gradient_step(state, loss_fn, schedule, axis_name)

    return step
