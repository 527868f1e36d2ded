"""Train SiamFC on tracking sequences (synthetic ones built from the shared images, or an OTB /
GOT-10k folder): ``python train.py --config configs/siamfc.py --workdir workdirs/siamfc``.

The same machinery as the twin trainer: one per-device step under pmap or jit + shard_map (gradients
and BatchNorm statistics averaged over all devices), batches as functions of ``(seed, step, row)``,
Orbax checkpoints (``checkpoints/`` to resume, ``best/`` by validation success AUC), resume after a
signal, metrics in ``metrics.jsonl`` and TensorBoard. Validation tracks whole held-out sequences with
the real tracker and scores them with OTB's success AUC.
"""
from __future__ import annotations

import dataclasses
import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections

from siamjax import checkpoint as ckpt_lib
from siamjax.train import distributed, loop as train_loop, parallel
from siamjax.train.resume import restore_latest
from siamjax.train.schema import FREE, check_keys_and_types
from siamjax.train.state import TrainState, make_optimizer
from siamjax.train.step import gradient_step
from siamjax.tracking.model import STRIDE, SiamFC, balanced_logistic_loss, label_map, response_size
from siamjax.tracking.net import Geometry, SiamFCNet
from siamjax.tracking.pairs import PairSettings, make_batch_fn
from siamjax.train.workdir import check_free_space, check_workdir_writable, own_workdir, tree_bytes

_NUM = (int, float)
SCHEMA = {
    "task": str, "seed": int,
    # data: synthetic sequences from the shared images, or a folder of OTB / GOT-10k sequences
    "data": str, "data_dir": str, "val_data_dir": str, "train_sequences": int, "sequence_window": int,
    "window_steps": int, "frames": int,
    "frame_size": (tuple, list), "val_sequences": int, "val_frames": int,
    # geometry and pairs
    "exemplar_size": int, "search_size": int, "context": _NUM, "max_gap": int, "scale_jitter": _NUM,
    "shift_px": _NUM, "positive_radius": _NUM,
    # model and optimiser
    "widths": (tuple, list), "batch_size": int, "optimizer": str, "learning_rate": _NUM, "weight_decay": _NUM,
    "warmup_steps": int, "train_steps": int,
    # the tracker used for validation (siamjax.tracking.tracker.TrackerSettings keys)
    "tracker": FREE,
    # devices and bookkeeping
    "parallel": str, "num_devices": int, "log_every": int, "eval_every": int, "checkpoint_every": int,
    "keep_latest": int, "keep_best": int,
}
BEST_METRIC = "val_auc"


def check_config(cfg: ml_collections.ConfigDict) -> None:
    """ValueError (with the fix) for unknown keys, wrong types and settings that cannot work."""
    check_keys_and_types(cfg, SCHEMA)
    if cfg.data not in ("synthetic", "folder"):
        raise ValueError(f"config.data={cfg.data!r}; choose synthetic (generated from config.data_dir's images) "
                         "or folder (OTB / GOT-10k sequences under config.data_dir)")
    pair_settings(cfg)  # ValueError for bad sizes / jitters
    if response_size(cfg.exemplar_size, cfg.search_size) < 3:
        raise ValueError(f"exemplar_size={cfg.exemplar_size}, search_size={cfg.search_size} give a "
                         f"{response_size(cfg.exemplar_size, cfg.search_size)}-cell response; make the search larger")
    for key in ("train_steps", "log_every", "eval_every", "checkpoint_every", "batch_size", "val_sequences",
                "window_steps"):
        if cfg[key] < 1:
            raise ValueError(f"config.{key} must be >= 1, got {cfg[key]}")
    if cfg.positive_radius <= 0:
        raise ValueError(f"config.positive_radius must be > 0 search-crop pixels, got {cfg.positive_radius}")
    from siamjax.tracking.tracker import TrackerSettings

    TrackerSettings.from_dict(dict(cfg.tracker))  # names unknown tracker keys


def geometry_from_config(cfg) -> Geometry:
    return Geometry(exemplar_size=cfg.exemplar_size, search_size=cfg.search_size, context=float(cfg.context))


def pair_settings(cfg) -> PairSettings:
    return PairSettings(exemplar_size=cfg.exemplar_size, search_size=cfg.search_size, context=float(cfg.context),
                        max_gap=cfg.max_gap, scale_jitter=float(cfg.scale_jitter), shift_px=float(cfg.shift_px))


def model_meta(cfg) -> dict:
    """What :func:`siamjax.tracking.net.load_siamfc` needs, plus the config."""
    return {"kind": "siamfc", "config": cfg.to_dict(), "geometry": dataclasses.asdict(geometry_from_config(cfg)),
            "model": {"widths": list(cfg.widths)}}


def optim_settings(cfg) -> ml_collections.ConfigDict:
    """This (flat) config's optimiser settings, as :func:`siamjax.train.state.make_optimizer` reads them (the
    twin config's ``optim`` group)."""
    return ml_collections.ConfigDict(dict(name=cfg.optimizer, learning_rate=cfg.learning_rate,
                                          weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps,
                                          train_steps=cfg.train_steps, proxy_lr_multiplier=1.0))


def make_train_step(module: SiamFC, cfg, axis_name: str | None = None):
    """Per-device ``(state, batch) -> (state, metrics)``: the balanced logistic loss of the response
    to each (exemplar, search) pair, positives within ``positive_radius`` search-crop px of the
    target. Metrics: ``loss``, ``peak_hit`` (share of maps whose maximum is a positive cell)."""
    _, schedule = make_optimizer(optim_settings(cfg))
    r = response_size(cfg.exemplar_size, cfg.search_size)
    radius = float(cfg.positive_radius) / STRIDE

    def step(state: TrainState, batch: dict):
        z = batch["exemplar"].astype(jnp.float32)
        x = batch["search"].astype(jnp.float32)
        labels = label_map(r, batch["offset"] / STRIDE, radius)

        def loss_fn(params):
            logits, upd = module.apply({"params": params, "batch_stats": state.batch_stats}, z, x, train=True,
                                       mutable=["batch_stats"])
            peak = jnp.argmax(logits.reshape(logits.shape[0], -1), axis=1)
            hit = jnp.take_along_axis(labels.reshape(labels.shape[0], -1), peak[:, None], axis=1).mean()
            return balanced_logistic_loss(logits, labels), ({"peak_hit": hit}, upd["batch_stats"])

        return gradient_step(state, loss_fn, schedule, axis_name)

    return step


def create_state(module: SiamFC, cfg) -> TrainState:
    tx, _ = make_optimizer(optim_settings(cfg))
    e, x = cfg.exemplar_size, cfg.search_size

    def init(key):
        v = module.init(key, jnp.zeros((1, e, e, 3)), jnp.zeros((1, x, x, 3)))
        return TrainState.create(apply_fn=None, params=v["params"], tx=tx, batch_stats=v["batch_stats"])

    return jax.jit(init)(jax.random.key(cfg.seed))


def make_validator(cfg, sequences):
    """``variables -> {"val_auc", "val_precision"}``: the tracker run over every validation sequence
    (a list of (name, frames uint8 [T, H, W, 3], boxes [T, 4])), OTB success AUC / precision@20 (mean
    over sequences)."""
    from siamjax.tracking.otb_metrics import evaluate_sequences
    from siamjax.tracking.tracker import SiamFCTracker, TrackerSettings

    module = SiamFC(widths=tuple(cfg.widths), fast_cpu=False)
    settings = TrackerSettings.from_dict(dict(cfg.tracker))
    geometry = geometry_from_config(cfg)
    net = SiamFCNet(module, {}, geometry)

    def validate(variables) -> dict:
        net.variables = variables
        tracker = SiamFCTracker(net, settings)
        runs = []
        for name, frames, boxes in sequences:
            pred, _ = tracker.track(frames, boxes[0])
            runs.append((name, pred, boxes))
        res = evaluate_sequences(runs)
        return {"val_auc": float(res["success_auc"]), "val_precision": float(res["precision_20"])}

    return validate


def train(cfg: ml_collections.ConfigDict, workdir: str | pathlib.Path, progress: bool = True) -> dict:
    """Train (resuming from ``workdir`` if it holds a checkpoint); returns the last metrics. The run owns
    ``workdir`` while it lasts: a second run on it is refused (:class:`siamjax.train.workdir.WorkdirBusyError`)."""
    check_config(cfg)
    devices = parallel.select_devices(cfg.num_devices)
    parallel.check_batch_divides(cfg.batch_size, len(devices))
    # One run per workdir: taken before any data is read or anything is written, held to the end (errors too).
    with own_workdir(workdir):
        return _run(cfg, pathlib.Path(workdir), devices, progress)


def _run(cfg: ml_collections.ConfigDict, workdir: pathlib.Path, devices, progress: bool) -> dict:
    """:func:`train` in a workdir this run owns."""
    from siamjax.tracking.sources import train_and_val_sequences

    primary = distributed.is_primary()
    check_workdir_writable(workdir)
    t0 = time.time()
    source, val_sequences = train_and_val_sequences(cfg)
    make_batch = make_batch_fn(source, pair_settings(cfg), cfg.batch_size, cfg.seed,
                               parallel.process_rows(cfg.batch_size, len(devices)),
                               window=cfg.get("sequence_window", 0), window_steps=cfg.get("window_steps", 1))
    module = SiamFC(widths=tuple(cfg.widths), bn_axis_name=parallel.AXIS)
    state = create_state(module, cfg)
    runner = parallel.make_runner(make_train_step(module, cfg, axis_name=parallel.AXIS), cfg.parallel, devices)
    if primary:
        check_free_space(workdir, tree_bytes((state.params, state.batch_stats, state.opt_state)),
                         copies=cfg.keep_latest + cfg.keep_best + 1)
    ckpt = ckpt_lib.CheckpointIO(workdir, keep_latest=cfg.keep_latest, keep_best=cfg.keep_best,
                                 best_metric=BEST_METRIC)
    state, start, ckpt = restore_latest(ckpt, cfg, state, workdir, runner, best_metric=BEST_METRIC)
    validate = make_validator(cfg, val_sequences) if primary else None
    writer = train_loop.metric_writer(workdir, primary)
    if start == 0:
        writer.write(0, {"data_seconds": time.time() - t0, "train_sequences": len(source),
                         "val_sequences": len(val_sequences), "devices": len(devices)})
    placed = runner.put_state(state)
    del state
    loop = train_loop.Loop(
        runner=runner, make_batch=make_batch, ckpt=ckpt, meta=model_meta(cfg), workdir=workdir, validate=validate,
        val_placeholder={"val_auc": 0.0, "val_precision": 0.0},
        val_message=lambda done, val: (f"step {done}: validation tracking success AUC {val['val_auc']:.3f}, "
                                       f"precision@20px {val['val_precision']:.3f} ({len(val_sequences)} sequences)"),
        postfix=("loss", "peak_hit"))
    cadence = train_loop.Cadence(train_steps=cfg.train_steps, eval_every=cfg.eval_every,
                                 checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every)
    last = train_loop.run(loop, cadence, placed, start, writer, progress)
    last["train_seconds"] = time.time() - t0
    return last
