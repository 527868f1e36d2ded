"""Checks that a training workdir can take the run's checkpoints, made before any training step.

A read-only or full disk should stop a run at start-up with one clear message, not an hour later
at the first checkpoint (and never by damaging what the workdir already holds: the probe is a new
file, removed again).
"""
from __future__ import annotations

import errno
import os
import pathlib
import shutil

import jax
import numpy as np

__all__ = ["WorkdirError", "check_workdir_writable", "check_workdir_shared", "check_free_space", "tree_bytes"]

# Room asked for beyond the checkpoints themselves (metrics, TensorBoard files, Orbax metadata).
HEADROOM_BYTES = 64 << 20
_PROBE_BYTES = 1 << 20


class WorkdirError(OSError):
    """The workdir cannot be created or written, or its disk is too full for the run's checkpoints."""


def _probe(workdir: pathlib.Path) -> None:
    """Create, fill (1 MiB, fsync) and remove a new file in ``workdir``."""
    probe = workdir / f".siamjax-write-probe-{os.getpid()}"
    try:
        with open(probe, "xb") as f:
            f.write(b"\0" * _PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    finally:
        try:
            probe.unlink()
        except FileNotFoundError:
            pass


def check_workdir_writable(workdir: str | os.PathLike) -> pathlib.Path:
    """Create ``workdir`` if needed and write a 1 MiB probe file there.

    Raises:
        WorkdirError: the folder cannot be created or written (read-only filesystem, no permission,
            a file in the way, disk full), naming the path and the cause.
    """
    path = pathlib.Path(workdir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        _probe(path)
    except OSError as e:
        cause = {errno.EROFS: "the filesystem is read-only", errno.EACCES: "permission denied",
                 errno.EPERM: "operation not permitted", errno.ENOSPC: "no space left on the device",
                 errno.EDQUOT: "disk quota exceeded", errno.ENOTDIR: "a file is in the way of the path",
                 errno.EEXIST: "a file is in the way of the path"}.get(e.errno, e.strerror or str(e))
        raise WorkdirError(e.errno, f"cannot write to the workdir {path}: {cause}; choose another --workdir "
                                    "(on a writable disk with space for the checkpoints)") from e
    check_workdir_shared(path)
    return path


def check_workdir_shared(workdir: pathlib.Path) -> None:
    """With several processes: raise :class:`WorkdirError` on every process unless all of them see the file
    process 0 writes into ``workdir`` (one folder on a filesystem they share). Without this check, processes
    with different or host-local workdirs train and then wait forever at the first checkpoint."""
    if jax.process_count() == 1:
        return
    from siamjax.train import distributed
    from jax.experimental import multihost_utils

    token = distributed.broadcast_floats_from_primary({"token": float(int.from_bytes(os.urandom(6), "big"))})
    probe = workdir / f".siamjax-shared-probe-{int(token['token']):012x}"  # 48 random bits: exact in a float
    if distributed.is_primary():
        probe.touch()
    distributed.barrier("workdir probe written")
    seen = np.asarray(multihost_utils.process_allgather(np.asarray([probe.exists()], np.int32))).reshape(-1)
    distributed.barrier("workdir probe read")
    if distributed.is_primary():
        probe.unlink(missing_ok=True)
    if not seen.all():
        missing = [i for i, ok in enumerate(seen) if not ok]
        raise WorkdirError(errno.ENOENT, f"process(es) {missing} do not see the file process 0 wrote into its "
                                         f"workdir ({workdir} on this process): every process needs the same "
                                         "--workdir on a filesystem that all of them see")


def tree_bytes(tree) -> int:
    """Bytes of all arrays in a pytree (what one checkpoint of it holds, uncompressed)."""
    return int(sum(np.dtype(x.dtype).itemsize * int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree)
                   if hasattr(x, "shape")))


def check_free_space(workdir: str | os.PathLike, checkpoint_bytes: int, copies: int) -> None:
    """Raise :class:`WorkdirError` when the disk of ``workdir`` has less free space than ``copies``
    checkpoints of ``checkpoint_bytes`` each plus :data:`HEADROOM_BYTES`."""
    need = checkpoint_bytes * max(1, copies) + HEADROOM_BYTES
    free = shutil.disk_usage(workdir).free
    if free < need:
        raise WorkdirError(errno.ENOSPC, f"the disk of the workdir {workdir} has {free / 2**20:.0f} MiB free but the run "
                                         f"needs about {need / 2**20:.0f} MiB ({copies} checkpoints of "
                                         f"{checkpoint_bytes / 2**20:.1f} MiB, config.keep_latest + config.keep_best "
                                         "+ 1 being written); free space or choose another --workdir")
