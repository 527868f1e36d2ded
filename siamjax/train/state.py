"""The train state: parameters, BatchNorm statistics, optimizer, and the loss's training-only parameters.

A loss may train parameters of its own beside the model's (the class vectors of the proxy term and of
loss.name cosface / arcface, ``params["proxies"]``): they are optimised with the model and saved with the
optimizer state, but they are never part of the model's variables (:func:`state_variables`), so a
checkpoint loads as a model.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from siamjax.data.preprocess import Preprocessing
from siamjax.nn.twin import Twin
from siamjax.train.config import needs_class_vectors


class TrainState(train_state.TrainState):
    batch_stats: Any = None


# A training-only entry of ``state.params`` (learned class proxies of the proxy loss): optimised with the
# model, saved with the optimizer state, never part of the model's variables.
TRAIN_ONLY = "proxies"


def state_variables(state) -> dict:
    """``{"params", "batch_stats"?}`` of a train state: what checkpoints and validation take (the model's
    variables, without training-only entries such as the loss's class proxies)."""
    params = state.params
    if isinstance(params, dict) and TRAIN_ONLY in params:
        params = {k: v for k, v in params.items() if k != TRAIN_ONLY}
    v = {"params": params}
    if state.batch_stats is not None:
        v["batch_stats"] = state.batch_stats
    return v


def train_items(state) -> dict:
    """What a checkpoint keeps besides the model's variables: ``{"opt_state", "step", "proxies"?}``."""
    items = {"opt_state": state.opt_state, "step": state.step}
    if isinstance(state.params, dict) and TRAIN_ONLY in state.params:
        items[TRAIN_ONLY] = state.params[TRAIN_ONLY]
    return items


def with_train_items(state, variables: dict, items: dict):
    """``state`` with restored model ``variables`` and :func:`train_items` (the inverse of the two)."""
    params = variables["params"]
    if TRAIN_ONLY in items:
        params = {**params, TRAIN_ONLY: items[TRAIN_ONLY]}
    return state.replace(params=params, batch_stats=variables.get("batch_stats"), opt_state=items["opt_state"],
                         step=items["step"])


def make_optimizer(optim) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Optimizer and its learning-rate schedule (linear warm-up, cosine decay to 0) of ``optim``, a twin
    config's ``optim`` group (name, learning_rate, weight_decay, warmup_steps, train_steps,
    proxy_lr_multiplier). With ``proxy_lr_multiplier`` m != 1, the loss's class proxies (``params["proxies"]``)
    get their own optimizer of the same kind at m x that schedule (its state then sits in an
    ``optax.multi_transform``)."""
    warmup = min(int(optim.warmup_steps), max(int(optim.train_steps) - 1, 0))
    schedule = optax.warmup_cosine_decay_schedule(0.0, optim.learning_rate, max(warmup, 1), max(optim.train_steps, 2))

    def optimizer(lr):
        if optim.name == "adam":
            return optax.adam(lr)
        if optim.name == "adamw":
            return optax.adamw(lr, weight_decay=optim.weight_decay)
        if optim.name == "sgd":
            return optax.sgd(lr, momentum=0.9, nesterov=True)
        raise ValueError(f"config.optim.name={optim.name!r}; choose adam, adamw or sgd")

    mult = float(optim.proxy_lr_multiplier)
    if mult == 1.0:
        return optimizer(schedule), schedule

    def labels(params):
        return {k: jax.tree.map(lambda _, k=k: "proxies" if k == TRAIN_ONLY else "encoder", v) for k, v in params.items()}

    tx = optax.multi_transform({"encoder": optimizer(schedule), "proxies": optimizer(lambda s: mult * schedule(s))},
                               labels)
    return tx, schedule


def create_state(twin: Twin, cfg, spec: Preprocessing, num_classes: int = 0) -> TrainState:
    """Fresh train state. When the loss trains class vectors (:func:`~siamjax.train.config.needs_class_vectors`:
    ``config.loss.proxy_weight > 0``, or loss.name cosface / arcface) its params also hold ``proxies``
    [num_classes, D] (normal, std 1/sqrt(D)), one learned vector per training class."""
    tx, _ = make_optimizer(cfg.optim)
    proxies = needs_class_vectors(cfg)
    if proxies and num_classes < 2:
        what = ("config.loss.proxy_weight > 0" if float(cfg.loss.proxy_weight) > 0
                else f"config.loss.name={cfg.loss.name!r}")
        raise ValueError(f"{what} learns one vector per training class and needs a training split of >= 2 classes, "
                         f"got {num_classes}")

    def init(key):
        variables = twin.init(key, (spec.size, spec.size, spec.channels))
        params = variables["params"]
        if proxies:
            x = jnp.zeros((1, spec.size, spec.size, spec.channels), jnp.float32)
            dim = jax.eval_shape(lambda v: twin.embed(v, x), variables).shape[-1]
            # about unit length, so Adam's steps of ~learning_rate per coordinate turn them within tens of steps
            w = jax.random.normal(jax.random.fold_in(key, 1), (num_classes, dim)) / jnp.sqrt(float(dim))
            params = {**params, TRAIN_ONLY: w}
        return TrainState.create(apply_fn=None, params=params, tx=tx, batch_stats=variables.get("batch_stats"))

    # One compiled program rather than one per initialiser op: with several processes only process 0
    # writes the persistent compilation cache, so the others would compile every small op each run.
    return jax.jit(init)(jax.random.key(cfg.seed))
