"""Orbax checkpoints of a twin: weights, optimizer state and a JSON description of the model.

A workdir holds two Orbax managers:
  ``WORKDIR/checkpoints/<step>/``  the latest ``keep_latest`` steps, for resuming training;
  ``WORKDIR/best/<step>/``         the best ``keep_best`` steps by validation accuracy, for use.
Each step folder holds the items ``variables`` (``params`` + ``batch_stats``), ``meta`` (JSON: the
config, the preprocessing, the step and metrics) and, under ``checkpoints/``, ``train`` (optimizer
state and step). ``meta`` is enough to rebuild the model, so :func:`load_variables` needs nothing else.

Weights holding a NaN or an infinity (a diverged run) are never written (:meth:`CheckpointIO.save` raises)
nor read without asking (:func:`read_variables` raises unless ``allow_nonfinite``).
"""
from __future__ import annotations

import gc
import os
import pathlib
import sys
import tempfile
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

LATEST, BEST = "checkpoints", "best"
TRAIN_ITEM = "train"  # the optimizer-state item of a step under checkpoints/ (see CheckpointManager.save)


def nonfinite_leaves(tree: Any) -> list[str]:
    """The paths (``params/conv1/kernel``) of the float arrays of ``tree`` that hold a NaN or an infinity.
    A global ``jax.Array`` is checked on one local copy (the checkpointed arrays are fully replicated)."""
    found = []
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if isinstance(x, jax.Array):
            x = x.addressable_data(0)
        if not hasattr(x, "dtype") or not np.issubdtype(np.dtype(x.dtype), np.inexact):
            continue
        if not np.all(np.isfinite(np.asarray(x))):
            found.append("/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path))
    return found


def _where(found: list[str], total: int) -> str:
    return f"{len(found)} of {total} arrays, e.g. {', '.join(found[:3])}"


def _float_leaves(tree: Any) -> int:
    return sum(1 for x in jax.tree_util.tree_leaves(tree)
               if hasattr(x, "dtype") and np.issubdtype(np.dtype(x.dtype), np.inexact))


def _manager(directory: pathlib.Path, keep: int, best_metric: str | None = None, read_only=False):
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=not read_only, read_only=read_only,
        best_fn=(lambda m: float(m[best_metric])) if best_metric else None, best_mode="max",
        keep_checkpoints_without_metrics=False if best_metric else True)
    return ocp.CheckpointManager(directory.resolve(), options=options)


class CheckpointIO:
    """Save / restore for one training workdir (async saves; call :meth:`close` at the end)."""

    def __init__(self, workdir: str | pathlib.Path, keep_latest: int = 2, keep_best: int = 1,
                 best_metric: str = "val_accuracy"):
        self.workdir = pathlib.Path(workdir)
        self.best_metric = best_metric
        self.latest = _manager(self.workdir / LATEST, keep_latest)
        self.best = _manager(self.workdir / BEST, keep_best, best_metric)

    def latest_step(self) -> int | None:
        return self.latest.latest_step()

    def save(self, step: int, variables: dict, train: dict, meta: dict, metrics: dict | None = None,
             force: bool = False) -> None:
        """Save the latest state; also offer it to the best-N manager when ``metrics`` has the metric.

        With several processes, one manager's asynchronous save is finished before the other's starts:
        each save's background threads meet the other processes at barriers, and two managers' threads
        interleaving differently in two processes deadlocked at exit (seen once in a 2-process test).

        Raises FloatingPointError, writing nothing, when a float of ``variables`` is NaN or infinite: the last
        line of defence against keeping a diverged model (the training loop stops before that)."""
        bad = nonfinite_leaves(variables)
        if bad:
            raise FloatingPointError(
                f"refusing to save step {step}: its weights are not finite (NaN or Inf in "
                f"{_where(bad, _float_leaves(variables))}); training diverged, nothing of step {step} was "
                f"written to {self.workdir}")
        several = jax.process_count() > 1
        if several:
            self.best.wait_until_finished()
        self.latest.save(step, args=ocp.args.Composite(
            variables=ocp.args.StandardSave(variables), train=ocp.args.StandardSave(train),
            meta=ocp.args.JsonSave(meta)), force=force)
        if metrics is not None and self.best_metric in metrics and step not in self.best.all_steps():
            # (a step already in best/ was saved before a resume from an earlier checkpoint: kept as is)
            if several:
                self.latest.wait_until_finished()
            self.best.save(step, args=ocp.args.Composite(
                variables=ocp.args.StandardSave(variables), meta=ocp.args.JsonSave(meta)),
                metrics={self.best_metric: float(metrics[self.best_metric])}, force=True)

    def meta(self, step: int) -> dict:
        """The JSON ``meta`` item of ``step`` in ``checkpoints/`` (cheap: no arrays are read)."""
        return read_meta(self.workdir / LATEST / str(step))

    def restore(self, step: int, abstract_variables: Any, abstract_train: Any) -> tuple[dict, dict, dict]:
        """Restore (variables, train, meta) of ``step`` from ``checkpoints/``."""
        out = self.latest.restore(step, args=ocp.args.Composite(
            variables=ocp.args.StandardRestore(abstract_variables),
            train=ocp.args.StandardRestore(abstract_train), meta=ocp.args.JsonRestore()))
        return out["variables"], out["train"], out["meta"]

    def wait(self) -> None:
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        self.latest.close()
        self.best.close()


def quarantine(workdir: str | pathlib.Path, step: int) -> pathlib.Path:
    """Move ``WORKDIR/checkpoints/<step>`` aside to ``WORKDIR/corrupt/<step>[-n]`` (kept, not deleted)."""
    src = pathlib.Path(workdir) / LATEST / str(step)
    dest_root = pathlib.Path(workdir) / "corrupt"
    dest_root.mkdir(exist_ok=True)
    dest, n = dest_root / str(step), 1
    while dest.exists():
        dest, n = dest_root / f"{step}-{n}", n + 1
    src.rename(dest)
    return dest


def _is_step_dir(path: pathlib.Path) -> bool:
    return (path / "meta").is_dir() and (path / "variables").is_dir()


def _best_score(meta: dict) -> float:
    """The validation metric ``best/`` ranks by: one-shot accuracy (twins) or success AUC (SiamFC)."""
    metrics = meta.get("metrics", {})
    return float(metrics.get("val_accuracy", metrics.get("val_auc", float("-inf"))))


def resolve_checkpoint(path: str | pathlib.Path) -> pathlib.Path:
    """The step folder to load from ``path``: a step folder, a manager folder (its newest step,
    or its best one for ``best/``), or a workdir (``best/`` first, then ``checkpoints/``)."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint path {path} does not exist")
    if _is_step_dir(path):
        return path
    for sub in (path / BEST, path / LATEST, path):
        steps = sorted((int(p.name), p) for p in sub.glob("*") if p.name.isdigit() and _is_step_dir(p)) \
            if sub.is_dir() else []
        if steps and sub.name == BEST:  # the best of the kept ones, by the metric stored in meta
            scored = [(_best_score(read_meta(p)), s, p) for s, p in steps]
            return max(scored)[2]
        if steps:
            return steps[-1][1]
    raise FileNotFoundError(f"no checkpoint found under {path} (expected best/<step>/, checkpoints/<step>/ "
                            "or a step folder holding variables/ and meta/)")


def read_meta(step_dir: str | pathlib.Path) -> dict:
    """The JSON ``meta`` item of a step folder."""
    handler = ocp.Checkpointer(ocp.JsonCheckpointHandler())
    return handler.restore(pathlib.Path(step_dir).resolve() / "meta")


class _HeldStderr:
    """Keep a failed restore's error to its one line. When one array of a checkpoint cannot be read, Orbax
    raises at once and closes its event loop while the other arrays' reads still run in TensorStore's
    threads: their callbacks print ``RuntimeError: Event loop is closed`` tracebacks, and the unfinished read
    tasks are reported ("Task exception was never retrieved", "Exception ignored in: <coroutine ...>") when
    collected (orbax 0.12.8, on Python 3.11 and now and then 3.13), before or after the error reaches us.
    So the restore runs with this process's stderr (file descriptor 2) held in a temporary file: replayed
    when the restore succeeds (Orbax's warnings are kept, only later), dropped after a failure, once the
    failed reads have had ``settle_s`` to finish and have been collected. Where stderr has no file
    descriptor (captured), nothing is held."""

    def __init__(self, settle_s: float = 0.5):
        self.settle_s, self.fd, self.saved, self.held = settle_s, None, None, None

    def hold(self) -> "_HeldStderr":
        try:
            sys.stderr.flush()
            self.fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            return self
        self.held = tempfile.TemporaryFile()
        self.saved = os.dup(self.fd)
        os.dup2(self.held.fileno(), self.fd)
        return self

    def release(self, replay: bool) -> None:
        if not replay:
            time.sleep(self.settle_s)
            gc.collect()
        if self.held is None:
            return
        sys.stderr.flush()
        os.dup2(self.saved, self.fd)
        os.close(self.saved)
        if replay:
            self.held.seek(0)
            os.write(self.fd, self.held.read())
        self.held.close()
        self.held = None


def read_variables(step_dir: str | pathlib.Path, abstract_variables: Any, allow_nonfinite: bool = False) -> dict:
    """The ``variables`` item of a step folder, restored onto the default device (leaves of the
    template without a sharding), whatever devices or processes wrote it. Weights holding a NaN or an
    infinity raise ValueError unless ``allow_nonfinite``."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def on_device(x):
        if isinstance(x, jax.ShapeDtypeStruct) and x.sharding is None:
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device)
        return x

    handler = ocp.StandardCheckpointer()
    where = pathlib.Path(step_dir).resolve() / "variables"
    failure, held = None, _HeldStderr().hold()
    try:
        variables = handler.restore(where, jax.tree_util.tree_map(on_device, abstract_variables))
    except Exception as e:  # noqa: BLE001 - TensorStore / Orbax raise bare Exceptions with long dumps
        failure = f"{type(e).__name__}: " + (str(e).splitlines()[0][:200] if str(e) else "")
    except BaseException:  # KeyboardInterrupt: give stderr back first
        held.release(replay=True)
        raise
    held.release(replay=failure is None)  # outside the except block, so that the failed reads can be collected
    if failure is not None:
        raise ValueError(f"{where}: the weights cannot be read ({failure}); the checkpoint is "
                         "damaged or incomplete (a truncated copy?): copy it again, or load another step")
    bad = [] if allow_nonfinite else nonfinite_leaves(variables)
    if bad:
        raise ValueError(f"{where.parent}: the weights are not finite (NaN or Inf in "
                         f"{_where(bad, _float_leaves(variables))}): the run had diverged; load an earlier step, "
                         "or pass allow_nonfinite=True to read them as they are")
    return variables


def abstract(tree: Any) -> Any:
    """ShapeDtypeStruct tree (with the arrays' shardings) for Orbax restore templates."""
    return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, tree)
