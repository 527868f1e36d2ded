"""``train(cfg, workdir)``: one run from a config, resumed from the workdir when it holds one.

The step is one pure function of (state, batch): the augmentation key is ``fold_in(seed, step)``
and the batch is a function of ``(seed, step)`` (see :mod:`siamjax.data.samplers`), so a resumed
run repeats an uninterrupted one.
"""
from __future__ import annotations

import pathlib
import time

import ml_collections
import numpy as np
from absl import logging

from siamjax import checkpoint as ckpt_lib
from siamjax.data.sources import load_data
from siamjax.nn.twin import TWIN_AXIS
from siamjax.train import distributed, loop as train_loop, parallel
from siamjax.train.batches import make_batch_fn_checked
from siamjax.train.collapse import CollapseMonitor
from siamjax.train.config import SSL_LOSSES, check_config, model_meta, projection_from_config, twin_from_config
from siamjax.train.resume import init_from_checkpoint, restore_latest
from siamjax.train.state import create_state
from siamjax.train.step import make_train_step
from siamjax.train.validate import make_validator
from siamjax.train.workdir import check_free_space, check_workdir_writable, own_workdir, tree_bytes


def _collapse_logger(cfg, writer):
    """The loop's ``on_metrics`` hook of an unsupervised run: every step's output_std (and std * sqrt(P))
    to the writer, a loud warning on collapse; the last std and the count of collapsed steps to the summary."""

    monitor = CollapseMonitor(dim=int(projection_from_config(cfg)["dim"]),
                              threshold=float(cfg.loss.collapse_ratio))

    def on_metrics(host: list[dict], done: int, say) -> dict:
        for i, m in enumerate(host):
            step = done - len(host) + i + 1
            std = float(np.asarray(m["output_std"]).reshape(-1)[0])
            writer.write(step, {"output_std": std, "output_std_ratio": monitor.ratio(std)})
            message = monitor.update(step, std)
            if message:
                logging.warning(message)
                say(f"WARNING: {message}")
        return {"output_std": float(np.asarray(host[-1]["output_std"]).reshape(-1)[0]),
                "collapsed_steps": monitor.collapsed_steps}

    return on_metrics


def startup_summary(cfg, train_data, val_data, devices, workdir: pathlib.Path, start: int) -> str:
    """A few lines saying what a run is about to do: data and its splits, devices, parallel mode, and
    whether it resumes (printed by process 0 before the first step)."""
    where = f" ({cfg.data.dir})" if cfg.data.dir else ""
    kinds = sorted({d.platform for d in devices})
    processes = distributed.process_count()
    lines = [
        f"data: {cfg.data.source}{where}, {spec_text(cfg)}",
        f"  train: {len(train_data)} images in {train_data.num_classes} classes ({train_data.num_groups} groups)",
        f"  validation: {len(val_data)} images in {val_data.num_classes} classes ({val_data.num_groups} groups), "
        f"{cfg.eval.val_ways}-way one-shot",
        f"model: {cfg.model.name} + {cfg.model.head} head, loss {cfg.loss.name}, batch {cfg.data.batch_size}, "
        f"{cfg.optim.train_steps} steps",
        f"devices: {len(devices)} x {'/'.join(kinds)}" + (f" over {processes} processes" if processes > 1 else "")
        + f", parallel: {cfg.parallel.mode}",
        f"workdir: {workdir} (" + (f"resumed from step {start})" if start else "new run)"),
    ]
    return "\n".join(lines)


def spec_text(cfg) -> str:
    return f"{cfg.data.image_size}x{cfg.data.image_size} px, {cfg.data.channels} channel(s)"


def train(cfg: ml_collections.ConfigDict, workdir: str | pathlib.Path, progress: bool = True) -> dict:
    """Train (resuming from ``workdir`` if it holds a checkpoint); returns the last metrics.

    SIGTERM / SIGINT stop after the current step with a checkpoint (``result["preempted"]`` is the
    signal number); rerunning resumes. The batch at step s and its distortions depend on (seed, s)
    only, so an interrupted and resumed run ends where an uninterrupted one does.

    With several processes (after :func:`siamjax.train.distributed.initialize`) every process runs this
    with the same config and workdir (a filesystem all of them see): each builds only its rows of
    every global batch, collectives span all devices, all take part in checkpoints, and process 0
    alone validates (sharing the result), prints and writes metrics. SIGTERM to any process stops
    all of them at the same step, with a checkpoint.

    The run owns ``workdir`` while it lasts (:func:`siamjax.train.workdir.own_workdir`): a second run on it
    is refused at once with :class:`siamjax.train.workdir.WorkdirBusyError`, the workdir untouched.
    """
    check_config(cfg)
    devices = parallel.select_devices(cfg.parallel.num_devices)  # global: every process's, process by process
    parallel.check_batch_divides(cfg.data.batch_size, len(devices), "config.data.batch_size")
    # One run per workdir: taken before any data is read or anything is written, held to the end (errors too).
    with own_workdir(workdir):
        return _run(cfg, pathlib.Path(workdir), devices, progress)


def _run(cfg: ml_collections.ConfigDict, workdir: pathlib.Path, devices, progress: bool) -> dict:
    """:func:`train` in a workdir this run owns."""
    primary = distributed.is_primary()
    check_workdir_writable(workdir)  # fail now, not at the first checkpoint an hour later
    t0 = time.time()
    train_data, val_data, spec = load_data(cfg)
    make_batch = make_batch_fn_checked(cfg, train_data, val_data, parallel.process_rows(cfg.data.batch_size, len(devices)))
    twin = twin_from_config(cfg, bn_axis_name=(TWIN_AXIS, parallel.AXIS))
    state = create_state(twin, cfg, spec, num_classes=train_data.num_classes)
    runner = parallel.make_runner(
        make_train_step(twin, cfg, spec, axis_name=parallel.AXIS, num_shards=len(devices)), cfg.parallel.mode, devices)
    if primary:  # every kept checkpoint holds the variables and the optimizer state, plus one being written
        check_free_space(workdir, tree_bytes((state.params, state.batch_stats, state.opt_state)),
                         copies=cfg.keep_latest + cfg.keep_best + 1)
    ckpt = ckpt_lib.CheckpointIO(workdir, keep_latest=cfg.keep_latest, keep_best=cfg.keep_best)
    meta = model_meta(cfg, spec)
    state, start, ckpt = restore_latest(ckpt, cfg, state, workdir, runner)
    if start == 0 and cfg.init_from:
        state = init_from_checkpoint(state, cfg, spec)
    # Validation (model selection) computes in float32, as siamjax.load and eval.py do: the same
    # float32 weights, so the best checkpoint is chosen by the numbers its users will get.
    val_twin = twin_from_config(cfg, bn_axis_name=(TWIN_AXIS, parallel.AXIS), compute_dtype="float32")
    validate = make_validator(val_twin, cfg, spec, val_data) if primary else None
    writer = train_loop.metric_writer(workdir, primary)
    if start == 0:
        info = {"data_seconds": time.time() - t0, "train_images": len(train_data), "val_images": len(val_data),
                "devices": len(devices)}
        if distributed.process_count() > 1:
            info["processes"] = distributed.process_count()
        writer.write(0, info)
    if primary:
        print(startup_summary(cfg, train_data, val_data, devices, workdir, start), flush=True)
    placed = runner.put_state(state)
    del state
    # unsupervised: watch for collapse at every step
    on_metrics = _collapse_logger(cfg, writer) if cfg.loss.name in SSL_LOSSES else None
    kind = "within-alphabet" if cfg.data.source == "omniglot" else "one-shot"
    loop = train_loop.Loop(
        runner=runner, make_batch=make_batch, ckpt=ckpt, meta=meta, workdir=workdir, validate=validate,
        val_placeholder={"val_accuracy": 0.0, "val_ci95": 0.0},
        val_message=lambda done, val: (f"step {done}: val {cfg.eval.val_ways}-way {kind} accuracy "
                                       f"{val['val_accuracy']:.3f} +- {val['val_ci95']:.3f}"),
        on_metrics=on_metrics, hidden=("output_std",))
    cadence = train_loop.Cadence(train_steps=cfg.optim.train_steps, eval_every=cfg.eval.eval_every,
                                 checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every)
    last = train_loop.run(loop, cadence, placed, start, writer, progress)
    last["train_seconds"] = time.time() - t0
    return last
