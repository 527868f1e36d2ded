"""The training loop both trainers share: the twins' (:mod:`siamjax.train`) and SiamFC's
(:mod:`siamjax.tracking.train`).

Steps run one batch ahead of the host (a prefetch thread); the host reads metrics back only every
``log_every`` steps and before every save; a non-finite loss, parameter or gradient (the step's ``finite``
flag, :func:`siamjax.train.step.gradient_step`) or validation number stops the run before anything from
that step is validated or saved; process 0 validates every ``eval_every`` steps and every process takes its
numbers, so all make the same best-checkpoint decisions; SIGTERM / SIGINT (or, with several
processes, a preemption notice) stop after the current step with a checkpoint.
"""
from __future__ import annotations

import dataclasses
import pathlib
import signal
import threading
import time
from typing import Any, Callable

import jax
import numpy as np
from tqdm.auto import tqdm

from siamjax.train import distributed
from siamjax.data.prefetch import prefetch
from siamjax.train.state import state_variables, train_items


@dataclasses.dataclass(frozen=True)
class Cadence:
    """How long a run lasts and how often it logs, validates and saves (steps)."""

    train_steps: int
    eval_every: int
    checkpoint_every: int
    log_every: int


FINITE = "finite"  # the per-step metric: all new parameters, BatchNorm statistics and gradients finite


def nonfinite(values: dict) -> dict:
    """The entries of ``values`` that are numbers but not finite."""
    out = {}
    for k, v in values.items():
        a = np.asarray(v)
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            out[k] = float(a.reshape(-1)[0]) if a.size == 1 else v
    return out


def diverged_message(step: int, metrics: dict, kept: int | None, workdir: pathlib.Path,
                     validation: bool = False) -> str:
    """Why the run stopped at ``step``: ``metrics`` are the step's (``loss``, ``finite``) or, with
    ``validation``, its validation numbers; ``kept`` is the last checkpoint written before it."""
    if validation:
        what = f"validation at step {step} gave " + ", ".join(f"{k}={v}" for k, v in nonfinite(metrics).items())
    else:
        value = float(np.asarray(metrics["loss"]).reshape(-1)[0])
        what = (f"the loss became {value} at step {step}" if not np.isfinite(value) else
                f"the weights or gradients became non-finite at step {step} (the loss was still {value})")
    keep = (f"the last good checkpoint (step {kept}) is kept in {workdir}" if kept is not None else f"no checkpoint had been written to {workdir} yet")
    return (f"{what}; training stopped before saving anything from that step: "
            f"{keep}. Lower the learning rate (or raise the warm-up steps) and rerun with a new --workdir.")


def _diverged(m: dict) -> bool:
    return not (np.all(np.isfinite(m["loss"])) and np.all(m.get(FINITE, True)))


class NoWriter:
    """Processes other than 0 write no metrics."""

    def write(self, step, metrics):
        pass

    def close(self):
        pass


def metric_writer(workdir: pathlib.Path, primary: bool):
    """TensorBoard + metrics.jsonl on process 0 (tensorboardX, and torch if installed, imported there only)."""
    if not primary:
        return NoWriter()
    from siamjax.train.metric_writer import MetricWriter

    return MetricWriter(workdir)


class StopSignal:
    """Turns SIGTERM / SIGINT into a flag the loop checks after each step (main thread only).

    Not with several processes (``enabled=False``): there JAX's preemption notifier owns SIGTERM and
    :class:`siamjax.train.distributed.PreemptionSync` makes every process stop at the same step."""

    def __init__(self, enabled: bool = True):
        self.received: int | None = None
        self.enabled = enabled
        self._old = {}

    def __enter__(self):
        if self.enabled and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


@dataclasses.dataclass
class Loop:
    """What differs between trainers.

    runner: :class:`siamjax.train.parallel.Runner` of the per-device step. make_batch: ``step -> host batch``
    (this process's rows). ckpt: :class:`siamjax.checkpoint.CheckpointIO`. meta: the JSON stored with
    every checkpoint (``step`` and ``metrics`` added). validate: ``variables -> metrics`` on process 0
    (None elsewhere); ``val_placeholder``: the keys it returns, for the other processes.
    val_message: ``(step, metrics) -> str`` printed after validation. on_metrics: ``(host metrics of
    the steps since the last read, last step, say) -> extra summary entries`` (e.g. the collapse
    monitor); ``hidden``: per-step metric names left out of the averaged summary. postfix: the
    summary entries shown on the progress bar."""

    runner: Any
    make_batch: Callable[[int], dict]
    ckpt: Any
    meta: dict
    workdir: pathlib.Path
    validate: Callable[[dict], dict] | None
    val_placeholder: dict
    val_message: Callable[[int, dict], str]
    on_metrics: Callable[[list, int, Callable], dict] | None = None
    hidden: tuple[str, ...] = ()
    postfix: tuple[str, ...] = ("loss",)


def run(loop: Loop, cfg: Cadence, placed, start: int, writer, progress: bool = True) -> dict:
    """Train from step ``start`` to ``cfg.train_steps`` (or a stop signal), validating every
    ``cfg.eval_every`` steps, saving every ``cfg.checkpoint_every`` (and after validation), logging every
    ``cfg.log_every``; returns the last metrics (``step``, and ``preempted`` = the signal number when
    stopped by one). Closes the writer and the checkpoint managers."""
    primary = distributed.is_primary()
    runner, ckpt = loop.runner, loop.ckpt
    last: dict = {"step": start}
    pending = []
    bar = tqdm(total=cfg.train_steps, initial=start, disable=not (progress and primary), desc="train", unit="step")
    say = bar.write if primary else (lambda *a, **k: None)
    t_log = time.time()
    done = start
    try:
        with StopSignal(enabled=distributed.process_count() == 1) as stop:
            preemption = distributed.PreemptionSync()
            for step, batch in prefetch(lambda s: runner.put_batch(loop.make_batch(s)), start, cfg.train_steps):
                placed, metrics = runner.step(placed, batch)
                pending.append(metrics)
                done = step + 1
                if preemption.reached(done):  # several processes: all see it at the same step
                    stop.received = signal.SIGTERM
                evaluate = done % cfg.eval_every == 0 or done == cfg.train_steps
                # One look at the signal flag per step: a signal arriving later in this iteration is acted
                # on after the next step, never between the decision to save and the decision to stop.
                stopping = stop.received
                save = evaluate or done % cfg.checkpoint_every == 0 or stopping is not None
                if save or done % cfg.log_every == 0:  # the only host syncs: logging, and before every save
                    host = jax.device_get([runner.get_metrics(m) for m in pending])
                    bad = [i for i, m in enumerate(host) if _diverged(m)]
                    if bad:  # never validate or save a diverged model
                        raise FloatingPointError(diverged_message(done - len(host) + bad[0] + 1, host[bad[0]],
                                                                  ckpt.latest_step(), loop.workdir))
                    host = [{k: v for k, v in m.items() if k != FINITE} for m in host]
                    pending = []
                    extra = loop.on_metrics(host, done, say) if loop.on_metrics else {}
                    last = {k: float(np.mean([m[k] for m in host])) for k in host[0] if k not in loop.hidden}
                    last["steps_per_s"] = len(host) / max(time.time() - t_log, 1e-9)
                    t_log = time.time()
                    bar.set_postfix({k: f"{last[k]:.4f}" for k in loop.postfix if k in last})
                    writer.write(done, last)
                    last.update(extra)
                val = None
                if evaluate:
                    state_vars = state_variables(runner.get_state(placed))
                    val = loop.validate(state_vars) if primary else dict(loop.val_placeholder)
                    val = distributed.broadcast_floats_from_primary(val)
                    if nonfinite(val):  # the same numbers on every process: all stop here, nothing saved
                        raise FloatingPointError(diverged_message(done, val, ckpt.latest_step(), loop.workdir,
                                                                  validation=True))
                    last.update(val)
                    writer.write(done, val)
                    say(loop.val_message(done, val))
                if save:
                    # Every process saves the same global, fully replicated arrays; Orbax writes each once.
                    saved = runner.replicated(runner.get_state(placed))
                    ckpt.save(done, state_variables(saved), train_items(saved),
                              {**loop.meta, "step": done, "metrics": val or {}}, metrics=val, force=True)
                bar.update(1)
                if stopping is not None:
                    last["preempted"] = stopping
                    say(f"signal {stopping}: stopped at step {done} with a checkpoint in {loop.workdir}; "
                        "rerun the same command to resume")
                    break
    finally:
        bar.close()
        ckpt.wait()
        ckpt.close()
        writer.close()
    last["step"] = done
    return last
