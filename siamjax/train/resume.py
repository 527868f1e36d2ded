"""Resuming a run from its workdir, and starting one from another model's weights (``init_from``)."""
from __future__ import annotations

import json
import pathlib
import sys

import jax
import jax.numpy as jnp
from absl import logging

from siamjax import checkpoint as ckpt_lib
from siamjax.data.preprocess import Preprocessing
from siamjax.infer.ensemble import Ensemble
from siamjax.infer.load import load
from siamjax.train import distributed, parallel
from siamjax.config_layout import flatten, upgrade_config
from siamjax.train.state import TRAIN_ONLY, TrainState, state_variables, train_items, with_train_items


# Settings of a twin config (dotted names) that may change when a run is resumed; any other difference means
# another experiment. model.compute_dtype is one: parameters and optimizer state are float32 in every
# precision (same tree), and checkpoints written before the key existed (float32) resume under either value.
RESUMABLE_KEYS = {"optim.train_steps", "log_every", "eval.eval_every", "checkpoint_every", "eval.val_episodes",
                  "keep_latest", "keep_best", "data.dir", "parallel.mode", "parallel.num_devices",
                  "model.compute_dtype", "data.lazy", "data.cache_items", "data.tfds_data_dir", "init_from"}
# The same for a flat config of another trainer (SiamFC: configs/siamfc.py).
FLAT_RESUMABLE_KEYS = {"train_steps", "log_every", "eval_every", "checkpoint_every", "keep_latest", "keep_best",
                       "data_dir", "parallel", "num_devices", "val_sequences", "val_frames", "tracker"}


def check_resume_compatible(saved: dict, cfg) -> None:
    """ValueError naming the first setting (other than :data:`RESUMABLE_KEYS`) in which ``cfg`` differs from
    the config a checkpoint's metadata ``saved`` stores. A twin run's stored config, flat (written before
    the groups existed) or nested, and ``cfg`` are both completed by
    :func:`siamjax.config_layout.upgrade_config` and compared key by key, so a key added after the run
    began counts at the value the run had."""
    stored = saved.get("config", {})
    if cfg.get("task", "twin") == "twin":
        old = flatten(json.loads(upgrade_config(stored).to_json()))
        new = flatten(json.loads(upgrade_config(cfg).to_json()))
        resumable = RESUMABLE_KEYS
    else:
        old, new, resumable = stored, json.loads(cfg.to_json()), FLAT_RESUMABLE_KEYS
    for key in sorted(set(old) | set(new)):
        if key not in resumable and old.get(key) != new.get(key):
            raise ValueError(f"the workdir holds a run with {key}={old.get(key)!r} but the config says "
                             f"{key}={new.get(key)!r}; use a new --workdir or the old setting")


def restore_latest(ckpt: ckpt_lib.CheckpointIO, cfg, state: TrainState, workdir: pathlib.Path,
                    runner: parallel.Runner, best_metric: str = "val_accuracy"):
    """(state, start step, CheckpointIO) from the newest readable checkpoint. An unreadable one is
    reported, moved to ``WORKDIR/corrupt/`` (never deleted) and the previous one is tried.

    Arrays are restored replicated over all the runner's devices (every process takes part, as in
    saving), whatever device count wrote them; the returned state is this process's local copy."""
    while (step := ckpt.latest_step()) is not None:
        try:
            meta = ckpt.meta(step)
        except Exception as e:  # noqa: BLE001 - any failure to read means a damaged checkpoint
            meta, error = None, e
        if meta is not None:
            check_resume_compatible(meta, cfg)  # a config mismatch is the user's to fix: raise
            try:
                variables, items, _ = ckpt.restore(step, runner.replicated_abstract(state_variables(state)),
                                                   runner.replicated_abstract(train_items(state)))
                variables, items = runner.local_copy(variables), runner.local_copy(items)
                return with_train_items(state, variables, items), step, ckpt
            except Exception as e:  # noqa: BLE001
                error = e
        ckpt.close()
        if distributed.is_primary():  # one process moves it; the others wait for that
            moved = ckpt_lib.quarantine(workdir, step)
            logging.error("checkpoint %d in %s is unreadable (%s: %s); moved it to %s, trying the previous one",
                          step, workdir, type(error).__name__, str(error).splitlines()[0][:200], moved)
            print(f"WARNING: checkpoint {step} is unreadable ({type(error).__name__}); moved to {moved}; "
                  "resuming from the previous one", file=sys.stderr)
        distributed.barrier(f"siamjax-quarantine-{step}")
        ckpt = ckpt_lib.CheckpointIO(workdir, keep_latest=cfg.keep_latest, keep_best=cfg.keep_best,
                                     best_metric=best_metric)
    return state, 0, ckpt


def init_from_checkpoint(state: TrainState, cfg, spec: Preprocessing) -> TrainState:
    """``state`` with the params / batch_stats of the model at ``cfg.init_from`` (anything
    :func:`siamjax.load` reads), for a fresh run; the optimizer state and step stay new. The checkpoint
    must have the same model, kwargs, head and image shape (ValueError otherwise)."""
    path = str(cfg.init_from)
    try:
        src = load(path)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"config.init_from={path!r}: cannot load a checkpoint there ({type(e).__name__}: {e})") from e
    if isinstance(src, Ensemble):
        raise ValueError(f"config.init_from={path!r} is an ensemble of {len(src.members)} models; start from one "
                         "of its member folders instead")
    mine = {"model": cfg.model.name, "model_kwargs": dict(cfg.model.kwargs), "head": cfg.model.head,
            "image_shape": [spec.size, spec.size, spec.channels]}
    m, p = src.meta["model"], src.preprocessing
    theirs = {"model": m["model"], "model_kwargs": dict(m.get("model_kwargs") or {}), "head": m["head"],
              "image_shape": [p.size, p.size, p.channels]}
    diff = [f"{k}: {theirs[k]!r} there, {mine[k]!r} here" for k in mine if json.dumps(mine[k], sort_keys=True)
            != json.dumps(theirs[k], sort_keys=True)]
    if diff:
        raise ValueError(f"config.init_from={path!r} holds another model ({'; '.join(diff)}); "
                         "use the same model.name, model.kwargs, model.head, data.image_size and data.channels")
    new = src.variables
    old = state_variables(state)
    if (jax.tree.structure(new) != jax.tree.structure(old)
            or [x.shape for x in jax.tree.leaves(new)] != [x.shape for x in jax.tree.leaves(old)]):
        raise ValueError(f"config.init_from={path!r}: its variables do not match this model's (tree or shapes differ)")
    logging.info("initialised params%s from %s", " and batch_stats" if "batch_stats" in new else "", src.path)
    params = jax.tree.map(jnp.asarray, new["params"])
    if TRAIN_ONLY in state.params:  # the loss's class proxies start fresh
        params = {**params, TRAIN_ONLY: state.params[TRAIN_ONLY]}
    return state.replace(params=params,
                         batch_stats=jax.tree.map(jnp.asarray, new["batch_stats"]) if "batch_stats" in new
                         else state.batch_stats)
