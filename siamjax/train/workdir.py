"""A training workdir: one run owns it, and it can take the run's checkpoints (checked before any step).

A read-only or full disk should stop a run at start-up with one clear message, not an hour later
at the first checkpoint (and never by damaging what the workdir already holds: the probe is a new
file, removed again).

Ownership (:func:`own_workdir`): a run holds an exclusive lock on ``WORKDIR/.lock`` from before it reads
any data until it ends, so a second run on the same workdir is refused at once (:class:`WorkdirBusyError`,
naming the owner's host, pid and start time) instead of interleaving its checkpoints and metrics with
the first one's.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import pathlib
import shutil
import socket
import time

import jax
import numpy as np

__all__ = ["LOCK_NAME", "WorkdirBusyError", "WorkdirError", "WorkdirLock", "own_workdir", "check_workdir_writable", "check_workdir_shared", "check_free_space", "tree_bytes"]

# Room asked for beyond the checkpoints themselves (metrics, TensorBoard files, Orbax metadata).
HEADROOM_BYTES = 64 << 20
_PROBE_BYTES = 1 << 20


class WorkdirError(OSError):
    """The workdir cannot be created or written, or its disk is too full for the run's checkpoints."""


class WorkdirBusyError(WorkdirError):
    """Another run owns the workdir (holds ``WORKDIR/.lock``)."""


def _cause(e: OSError) -> str:
    return {errno.EROFS: "the filesystem is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted", errno.ENOSPC: "no space left on the device",
            errno.EDQUOT: "disk quota exceeded", errno.ENOTDIR: "a file is in the way of the path",
            errno.EEXIST: "a file is in the way of the path"}.get(e.errno, e.strerror or str(e))


def _cannot_write(path: pathlib.Path, e: OSError) -> WorkdirError:
    return WorkdirError(e.errno, f"cannot write to the workdir {path}: {_cause(e)}; choose another --workdir "
                                 "(on a writable disk with space for the checkpoints)")


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
        raise _cannot_write(path, e) from e
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


# Ownership ------------------------------------------------------------------------------------------------------

LOCK_NAME = ".lock"
# flock() errors that mean "this filesystem cannot lock files" (some network filesystems), not "another holds it"
_NO_FLOCK = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL})
_OWNER_WAIT = 1.0  # s: an owner that has just created or locked the file writes its details right after


def _process_start(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, Linux ``/proc``): tells a reused pid from the owner."""
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _maybe_alive(owner: dict) -> bool:
    """False only when the owner provably is gone: it ran on this host and its process no longer exists."""
    if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return True  # another host's process cannot be checked from here
    pid = owner["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start, now = owner.get("pid_start"), _process_start(pid)
    return start is None or now is None or start == now


def _owner_record(mode: str) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": _process_start(os.getpid()),
            "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "mode": mode}


def _read_owner(fd: int, wait: float = _OWNER_WAIT) -> dict | None:
    """The owner record in the open lock file (waiting up to ``wait`` s for an owner still writing it)."""
    end = time.monotonic() + wait
    while True:
        try:
            owner = json.loads(os.pread(fd, 4096, 0).decode())
            if isinstance(owner, dict):
                return owner
        except (OSError, ValueError):
            pass
        if time.monotonic() >= end:
            return None
        time.sleep(0.05)


def _write_owner(fd: int, owner: dict) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
    os.fsync(fd)


def _same_file(fd: int, path: pathlib.Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _busy(workdir: pathlib.Path, path: pathlib.Path, owner: dict | None, stale_hint: bool = False) -> WorkdirBusyError:
    if owner:
        who = f"process {owner.get('pid')} on host {owner.get('host')}, running since {owner.get('since')}"
    else:
        who = f"its details in {path} cannot be read"
    hint = f"; if that run is surely gone, delete {path}" if stale_hint else ""
    return WorkdirBusyError(errno.EBUSY, f"the workdir {workdir} is in use by another training run ({who}): wait for "
                                         f"it to end or stop it, or choose another --workdir{hint}")


class WorkdirLock:
    """One process's exclusive hold on ``WORKDIR/.lock`` (:meth:`acquire`); :meth:`release` (or leaving the
    ``with`` block) removes the file and lets go. ``owner``: the record written in the file (host, pid,
    pid_start, since, mode)."""

    def __init__(self, path: pathlib.Path, fd: int, mode: str, owner: dict):
        self.path, self.mode, self.owner, self._fd = path, mode, owner, fd

    @classmethod
    def acquire(cls, workdir: str | os.PathLike) -> "WorkdirLock":
        """Create ``workdir`` if needed and take ``workdir/.lock``, writing this process's host, pid and
        start time in it; never waits.

        The lock is an exclusive ``flock`` on the file, held for the life of the returned object. The
        kernel lets go of it when the process dies (kill -9 included), so a file left behind by a killed
        run does not block a rerun: only a live holder refuses. On release the file is removed.

        Limits: on a filesystem without ``flock`` (``ENOLCK`` / ``EOPNOTSUPP``, as some network filesystems
        report) the lock falls back to creating the file exclusively (``O_EXCL``); there a file left by a
        killed process is taken over only when that process ran on this host and is gone (checked by pid
        and its start time); one left by another host's killed run refuses until it is deleted by hand
        (the message says so). NFS maps ``flock`` to its byte-range locks (lockd): it holds across hosts
        as long as the lock service works. Locking is advisory: only siamjax runs respect it.

        Raises:
            WorkdirBusyError: another live process holds the lock (message: its host, pid and start time).
            WorkdirError: the workdir or its lock file cannot be created or written.
        """
        workdir = pathlib.Path(workdir)
        path = workdir / LOCK_NAME
        try:
            workdir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _cannot_write(workdir, e) from e
        for _ in range(100):  # more than one pass only while other processes replace the file
            created = True
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                created = False
                try:
                    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)  # an existing file is opened, never changed
                except FileNotFoundError:
                    continue  # its owner just removed it
                except OSError as e:
                    raise _cannot_write(workdir, e) from e
            except OSError as e:
                raise _cannot_write(workdir, e) from e
            try:
                lock = cls._lock_open_file(workdir, path, fd, created)
            except BaseException:
                os.close(fd)
                raise
            if lock is not None:
                return lock
            os.close(fd)
        raise WorkdirBusyError(errno.EBUSY, f"could not take {path}: other processes kept replacing it; "
                                            "is another run starting on this workdir? choose another --workdir")

    @classmethod
    def _lock_open_file(cls, workdir, path, fd, created) -> "WorkdirLock | None":
        """The lock on the open ``fd``; None to try again (the file was replaced meanwhile)."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(workdir, path, _read_owner(fd)) from None
        except OSError as e:
            if e.errno not in _NO_FLOCK:
                raise _cannot_write(workdir, e) from e
            # No flock on this filesystem: whoever created the file owns it while its process lives.
            if created:
                return cls._take(workdir, path, fd, "exclusive")
            owner = _read_owner(fd)
            if owner is not None and not _maybe_alive(owner):  # left by a dead process of this host
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                return None
            raise _busy(workdir, path, owner, stale_hint=True) from None
        if not _same_file(fd, path):  # its owner removed it on release after we opened it: take the new one
            return None
        if not created:
            previous = _read_owner(fd, wait=0)
            if previous and previous.get("mode") == "exclusive" and _maybe_alive(previous):
                raise _busy(workdir, path, previous, stale_hint=True)  # a holder on a host without flock
        return cls._take(workdir, path, fd, "flock")

    @classmethod
    def _take(cls, workdir, path, fd, mode) -> "WorkdirLock":
        owner = _owner_record(mode)
        try:
            _write_owner(fd, owner)
        except OSError as e:
            if _same_file(fd, path):
                with contextlib.suppress(OSError):
                    os.unlink(path)
            raise _cannot_write(workdir, e) from e
        return cls(path, fd, mode, owner)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file (while still holding it, so no one else's file is removed) and let go."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if _same_file(fd, self.path):
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
        finally:
            os.close(fd)  # lets go of the flock

    def __enter__(self) -> "WorkdirLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def own_workdir(workdir: str | os.PathLike):
    """Hold the workdir for one run: ``with own_workdir(w): ...`` (see :meth:`WorkdirLock.acquire`).

    With several processes (one run over several hosts, one workdir on a shared filesystem) only process
    0 takes the lock; the others trust the run's coordinator, and all of them raise together when process
    0 cannot take it (so none is left waiting in a collective). Yields the :class:`WorkdirLock` on process
    0 (None on the others); released when the block ends, also on errors.
    """
    from siamjax.train import distributed

    lock, error = None, None
    if distributed.is_primary():
        try:
            lock = WorkdirLock.acquire(workdir)
        except OSError as e:
            error = e
    if distributed.process_count() > 1:
        owned = distributed.broadcast_floats_from_primary({"owned": float(error is None)})["owned"]
        if error is None and not owned:
            raise WorkdirBusyError(errno.EBUSY, f"process 0 could not take the workdir {workdir} for this run "
                                                "(its error says why: another run may own it)")
    if error is not None:
        raise error
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()
