"""A workdir has one owner: a second run on a held workdir is refused at once and changes nothing in it;
the holder's death (kill -9) does not block a rerun, which resumes; a normal end (or an error) lets go.

The lock itself (siamjax.train.workdir.WorkdirLock): an flock on WORKDIR/.lock, and, where the filesystem
has no flock, an exclusive file whose owner is checked by pid on this host.
"""
import errno
import fcntl
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

import siamjax.train as train_lib
from siamjax import checkpoint as ckpt_lib
from siamjax.train import trainer as trainer_mod
from siamjax.train import workdir as workdir_mod
from siamjax.train.metric_writer import read_metrics
from siamjax.train.workdir import LOCK_NAME, WorkdirBusyError, WorkdirLock
from tests.conftest import subprocess_env
from tests.test_train import ALPHABETS, small_config

REPO = pathlib.Path(__file__).resolve().parents[1]
# Settings shared by the command line (the owner process) and small_config (the in-process rerun), so
# that the rerun resumes the owner's checkpoints.
SETTINGS = {"data.batch_size": 32, "optim.warmup_steps": 5, "log_every": 1, "eval.eval_every": 1000,
            "checkpoint_every": 2, "keep_latest": 2}


def _config(omniglot_dir, steps):
    cfg = small_config(omniglot_dir)
    for key, value in {**SETTINGS, "optim.train_steps": steps}.items():
        group, _, name = key.rpartition(".")
        (cfg[group] if group else cfg)[name] = value
    return cfg


def _cmd(omniglot_dir, workdir, steps, *extra):
    flags = {"data.dir": omniglot_dir, "data.alphabets": ALPHABETS, "data.val_alphabets": "('Armenian',)",
             "eval.val_ways": 5, "eval.val_episodes": 10, "data.image_size": 28, **SETTINGS,
             "optim.train_steps": steps}
    return [sys.executable, "train.py", "--workdir", str(workdir), "--progress=false",
            *(f"--config.{k}={v}" for k, v in flags.items()), *extra]


def _snapshot(root: pathlib.Path) -> dict:
    """Every file's bytes and mtime, and every folder's mtime (a created and removed file shows there)."""
    out = {".": root.stat().st_mtime_ns}
    for p in sorted(root.rglob("*")):
        st = p.stat()
        out[str(p.relative_to(root))] = (p.read_bytes(), st.st_mtime_ns) if p.is_file() else st.st_mtime_ns
    return out


def _wait_for_checkpoint(workdir: pathlib.Path, proc, timeout=240) -> None:
    end = time.time() + timeout
    while time.time() < end:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        root = workdir / ckpt_lib.LATEST
        if root.is_dir() and any(p.name.isdigit() for p in root.iterdir()):
            return
        time.sleep(0.2)
    raise TimeoutError("the owner wrote no checkpoint")


def _no_data(cfg):
    pytest.fail("a refused run read its data")


def test_second_run_is_refused_at_once_and_a_killed_owner_does_not_block_the_rerun(omniglot_dir, tmp_path,
                                                                                   monkeypatch):
    work = tmp_path / "w"
    owner = subprocess.Popen(_cmd(omniglot_dir, work, 1000), cwd=REPO, env=subprocess_env(), text=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_checkpoint(work, owner)
        record = json.loads((work / LOCK_NAME).read_text())
        assert (record["pid"], record["host"]) == (owner.pid, socket.gethostname()) and record["since"]
        owner.send_signal(signal.SIGSTOP)  # the owner still holds the workdir, but changes nothing in it now
        time.sleep(0.5)
        before = _snapshot(work)
        # A second process with other settings: one line naming the owner, exit status 1, nothing written.
        second = subprocess.run(_cmd(omniglot_dir, work, 7, "--config.optim.learning_rate=0.5"), cwd=REPO,
                                env=subprocess_env(), capture_output=True, text=True, timeout=300)
        assert second.returncode == 1, second.stderr[-2000:]
        error = [line for line in second.stderr.splitlines() if line.startswith("error:")]
        assert len(error) == 1 and error[0].startswith(
            f"error: WorkdirBusyError: [Errno {errno.EBUSY}] the workdir {work} is in use by another training run "
            f"(process {owner.pid} on host {socket.gethostname()}, running since {record['since']})"), second.stderr
        assert "choose another --workdir" in error[0] and "done:" not in second.stdout
        # A second train() in this process: refused before any data is read, and at once: the lock is
        # asked for without waiting (the stopped owner never lets go, so a waiting call would hang).
        monkeypatch.setattr(trainer_mod, "load_data", _no_data)
        real_flock, flock_ops = fcntl.flock, []

        def flock(fd, op):
            if os.path.samestat(os.fstat(fd), os.stat(work / LOCK_NAME)):  # only the workdir's lock file
                flock_ops.append(op)
            return real_flock(fd, op)

        monkeypatch.setattr(workdir_mod.fcntl, "flock", flock)
        with pytest.raises(WorkdirBusyError, match=f"process {owner.pid} on host"):
            train_lib.train(_config(omniglot_dir, 7), work, progress=False)
        monkeypatch.undo()
        assert flock_ops and all(op & fcntl.LOCK_NB for op in flock_ops), flock_ops
        assert _snapshot(work) == before, "a refused run changed the workdir"
    finally:
        owner.send_signal(signal.SIGKILL)  # kill -9 (works on a stopped process too)
        owner.communicate()
    # The killed owner leaves its lock file behind; its presence alone does not refuse the rerun, which resumes.
    assert (work / LOCK_NAME).is_file()
    latest = ckpt_lib.CheckpointIO(work).latest_step()
    assert latest is not None and latest >= 2
    result = train_lib.train(_config(omniglot_dir, latest + 2), work, progress=False)
    assert result["step"] == latest + 2
    steps = [r["step"] for r in read_metrics(work) if "loss" in r]
    assert steps.count(1) == 1 and steps[-2:] == [latest + 1, latest + 2]  # resumed, not restarted
    assert not (work / LOCK_NAME).exists()  # released at the end


def test_lock_is_released_after_a_normal_end_and_after_an_error(omniglot_dir, tmp_path, monkeypatch):
    train_lib.train(_config(omniglot_dir, 2), tmp_path, progress=False)
    assert not (tmp_path / LOCK_NAME).exists()
    result = train_lib.train(_config(omniglot_dir, 4), tmp_path, progress=False)  # right after: resumes
    assert result["step"] == 4
    assert [r["step"] for r in read_metrics(tmp_path) if "loss" in r] == [1, 2, 3, 4]

    def broken(cfg):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()  # held while running
        raise ValueError("no data")

    monkeypatch.setattr(trainer_mod, "load_data", broken)
    with pytest.raises(ValueError, match="no data"):
        train_lib.train(_config(omniglot_dir, 6), tmp_path, progress=False)
    assert not (tmp_path / LOCK_NAME).exists()
    with WorkdirLock.acquire(tmp_path):  # nothing still holds it
        pass


def test_a_held_workdir_refuses_both_trainers_and_stays_as_it_was(omniglot_dir, tmp_path, monkeypatch):
    from configs import siamfc
    from siamjax.tracking import train as tracking_train

    (tmp_path / "keep.txt").write_text("precious")
    monkeypatch.setattr(trainer_mod, "load_data", _no_data)
    with WorkdirLock.acquire(tmp_path) as held:
        assert held.mode == "flock"
        before = _snapshot(tmp_path)
        with pytest.raises(WorkdirBusyError, match=rf"the workdir {re.escape(str(tmp_path))} is in use by another training run "
                                                   rf"\(process {os.getpid()} on host {socket.gethostname()}, "
                                                   r"running since \S+\): wait for it to end or stop it, or "
                                                   r"choose another --workdir$"):
            train_lib.train(small_config(omniglot_dir), tmp_path, progress=False)
        with pytest.raises(WorkdirBusyError, match=f"process {os.getpid()} on host"):
            tracking_train.train(siamfc.get_config(), tmp_path, progress=False)
        assert _snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_a_lock_file_nobody_holds_does_not_refuse(tmp_path):
    other = {"host": socket.gethostname(), "pid": os.getpid(), "since": "2020-01-01T00:00:00", "mode": "flock"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(other))
    with WorkdirLock.acquire(tmp_path) as lock:
        assert json.loads((tmp_path / LOCK_NAME).read_text()) == lock.owner != other
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_new_workdir_is_created_and_its_lock_released(tmp_path):
    work = tmp_path / "a" / "b"
    with WorkdirLock.acquire(work):
        with pytest.raises(WorkdirBusyError):
            WorkdirLock.acquire(work)
    assert work.is_dir() and not any(work.iterdir())


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def no_flock(monkeypatch):
    """A filesystem without flock (as some network filesystems): flock fails with ENOLCK."""

    def flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", flock)


def test_without_flock_an_exclusive_file_owns_the_workdir(tmp_path, no_flock):
    with WorkdirLock.acquire(tmp_path) as lock:
        assert lock.mode == "exclusive"
        with pytest.raises(WorkdirBusyError, match=rf"process {os.getpid()} on host .*; if that run is surely "
                                                   rf"gone, delete {re.escape(str(tmp_path / LOCK_NAME))}"):
            WorkdirLock.acquire(tmp_path)
    assert not (tmp_path / LOCK_NAME).exists()
    with WorkdirLock.acquire(tmp_path):  # released: free again
        pass


def test_without_flock_a_dead_owner_on_this_host_is_taken_over_another_hosts_is_not(tmp_path, no_flock):
    path = tmp_path / LOCK_NAME
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid(), "since": "x", "mode": "exclusive"}))
    with WorkdirLock.acquire(tmp_path) as lock:
        assert json.loads(path.read_text())["pid"] == os.getpid() == lock.owner["pid"]
    path.write_text(json.dumps({"host": "another-host", "pid": 1, "since": "2026-01-01T00:00:00", "mode": "exclusive"}))
    with pytest.raises(WorkdirBusyError, match="process 1 on host another-host, running since 2026-01-01T00:00:00.*delete"):
        WorkdirLock.acquire(tmp_path)
    assert path.is_file()  # left as it was


def test_with_flock_a_live_exclusive_owner_is_respected_a_dead_one_is_not(tmp_path):
    """A host with flock meets the file of an owner on a host without it."""
    path = tmp_path / LOCK_NAME
    path.write_text(json.dumps({"host": "another-host", "pid": 1, "since": "s", "mode": "exclusive"}))
    with pytest.raises(WorkdirBusyError, match="process 1 on host another-host"):
        WorkdirLock.acquire(tmp_path)
    assert path.is_file()
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid(), "since": "s", "mode": "exclusive"}))
    with WorkdirLock.acquire(tmp_path) as lock:
        assert lock.mode == "flock"


def test_an_unwritable_workdir_is_a_workdir_error(tmp_path, monkeypatch):
    real_open = os.open

    def read_only(path, flags, *a):
        if str(path).endswith(LOCK_NAME):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *a)

    monkeypatch.setattr(workdir_mod.os, "open", read_only)
    with pytest.raises(workdir_mod.WorkdirError, match=rf"cannot write to the workdir {re.escape(str(tmp_path))}: the filesystem is "
                                                       "read-only"):
        WorkdirLock.acquire(tmp_path)


_RACER = """
import os, pathlib, sys, time
from siamjax.train.workdir import WorkdirBusyError, WorkdirLock
ready = pathlib.Path(sys.argv[2])
(ready / str(os.getpid())).touch()
while len(list(ready.iterdir())) < int(sys.argv[3]):  # all imported: try at the same moment
    time.sleep(0.001)
try:
    lock = WorkdirLock.acquire(sys.argv[1])
except WorkdirBusyError as e:
    print("busy", e, flush=True)
    sys.exit(0)
print("owner", flush=True)
time.sleep(2)
lock.release()
"""


def test_runs_started_together_get_one_owner(tmp_path):
    n = 4
    ready = tmp_path / "ready"
    ready.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(tmp_path / "w"), str(ready), str(n)], cwd=REPO,
                              env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(n)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-1000:] for _, err in outs]
    words = sorted(out.split()[0] for out, _ in outs)
    assert words == ["busy"] * (n - 1) + ["owner"], outs
    assert all("in use by another training run (process " in out for out, _ in outs if out.startswith("busy"))
    assert not any((tmp_path / "w").iterdir())
