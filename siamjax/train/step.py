"""The per-device training step ``(state, batch) -> (state, metrics)``: augmentation, encoder, loss,
gradients averaged over the devices, optimizer update. One pure function, jitted by the runner."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from siamjax.data.augment import apply_affine, sample_affine
from siamjax.data.preprocess import Preprocessing, to_float
from siamjax.data.views import make_views, two_views
from siamjax.losses import (bce_loss, contrastive_loss, ntxent_loss, output_std, prototypical_loss, proxy_softmax_loss,
                            simsiam_loss, triplet_loss)
from siamjax.nn.twin import Twin
from siamjax.train.config import PK_LOSSES, SSL_LOSSES, augment_config, train_views_from_config, views_from_config
from siamjax.train.state import TRAIN_ONLY, TrainState, make_optimizer, state_variables


def gradient_step(state, loss_fn: Callable, schedule: Callable, axis_name: str | None = None):
    """One optimizer step of a per-device training step: ``loss_fn(params) -> (loss, (metrics, batch
    stats or None))``; with ``axis_name`` the gradients and metrics are averaged over the devices. A
    gathered loss (triplet, NT-Xent) is the same on every device and each device's gradient holds
    num_shards x its share (all_gather transposes to a sum), so pmean gives the full gradient there too.
    Returns (new state, metrics with ``loss`` and ``learning_rate``)."""
    (loss, (metrics, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = {**metrics, "loss": loss}
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        metrics = jax.lax.pmean(metrics, axis_name)
    metrics["learning_rate"] = schedule(state.step)
    new_state = state.apply_gradients(grads=grads, batch_stats=stats if stats is not None else state.batch_stats)
    return new_state, metrics


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
    loss_cfg, loss_name = cfg.loss, cfg.loss.name
    aug = augment_config(cfg)
    views = views_from_config(cfg) if loss_name in SSL_LOSSES else None
    extra_views = None if loss_name in SSL_LOSSES else train_views_from_config(cfg)
    _, schedule = make_optimizer(cfg.optim)
    base_key = jax.random.key(cfg.seed)
    center = cfg.model.head == "correlation"
    normalize = cfg.model.head in ("cosine", "correlation")
    proxy_weight = float(loss_cfg.proxy_weight)

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

    def ssl_loss(variables, images, key):
        """Two views of every image (each a function of seed, step and the image's global row) ->
        SimSiam's or SimCLR's loss; NT-Xent's negatives are the other views of the whole global batch."""
        x = to_float(images, spec)
        v = two_views(key, x, views, row_offset=shard_index() * x.shape[0])
        (_, z, p), stats = twin.project_views(variables, v)
        if loss_name == "simsiam":
            loss, m = simsiam_loss(p[0], p[1], z[0], z[1], stop_gradient=bool(loss_cfg.stop_gradient))
        else:
            zg = jnp.concatenate([gather(z[0]), gather(z[1])])  # [2B, P]: row i and i + B are one image
            loss, m = ntxent_loss(zg, temperature=float(loss_cfg.ssl_temperature))
        m["output_std"] = output_std(gather(z[0]))  # over the global batch
        return loss, (m, stats)

    def step(state: TrainState, batch: dict):
        key = jax.random.fold_in(base_key, state.step)

        def loss_fn(params):
            variables = state_variables(state.replace(params=params))
            if loss_name in SSL_LOSSES:
                return ssl_loss(variables, batch["images"], key)
            if loss_name in PK_LOSSES:
                emb, stats = twin.embed_views(variables, prep(batch["images"], key)[None])
                e = gather(emb[0])
                e = e - e.mean(-1, keepdims=True) if center else e
                if loss_name == "triplet":
                    loss, m = triplet_loss(e, gather(batch["labels"]), margin=loss_cfg.margin, mining=loss_cfg.mining,
                                           normalize=normalize, reduction=loss_cfg.triplet_reduction)
                else:
                    loss, m = prototypical_loss(e, gather(batch["labels"]), normalize=normalize,
                                                temperature=float(loss_cfg.proto_temperature))
                if proxy_weight > 0:
                    extra, pm = proxy_softmax_loss(e, gather(batch["labels"]), params[TRAIN_ONLY],
                                                   scale=float(loss_cfg.proxy_scale), margin=float(loss_cfg.proxy_margin))
                    m = {**m, **pm, "proxy_loss": extra}
                    loss = loss + proxy_weight * extra
            else:
                k1, k2 = jax.random.split(key)
                views = jnp.stack([prep(batch["left"], k1), prep(batch["right"], k2)])
                emb, stats = twin.embed_views(variables, views)
                if loss_name == "contrastive":
                    d = twin.distance(variables, emb[0], emb[1])
                    loss, m = contrastive_loss(d, batch["same"], margin=loss_cfg.margin)
                else:
                    loss, m = bce_loss(twin.compare(variables, emb[0], emb[1]).logit, batch["same"])
            return loss, (m, stats)

        return gradient_step(state, loss_fn, schedule, axis_name)

    return step
