"""Several processes through jax.distributed, on this machine over loopback (127.0.0.1 only).

Two train.py processes with 2 CPU devices each (gloo collectives) give the same run as one process
with 4 devices; a multi-process checkpoint resumes in one process and in several; when one process
dies the other stops with JAX's clear message within a bounded time; a coordinator that cannot be
reached, or processes that never join, give one clear line quickly.
"""
import contextlib
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from siamjax import checkpoint as ckpt_lib
import siamjax.train as train_lib
from siamjax.train.metric_writer import read_metrics
from tests.conftest import subprocess_env
from tests.test_train import ALPHABETS, small_config

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 6
SETTINGS = dict(loss=dict(name="contrastive"), model=dict(head="euclidean"), optim=dict(name="sgd", train_steps=STEPS),
                eval=dict(eval_every=STEPS), data=dict(batch_size=32), checkpoint_every=2, keep_latest=3)


def _free_ports(n: int) -> list[int]:
    """n distinct ports free now: all n sockets are held open together, so the OS cannot hand out one twice
    (two _free_port() calls in a row can, and two "unrelated" processes would then find each other)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _free_port() -> int:
    return _free_ports(1)[0]


@contextlib.contextmanager
def _killed_on_exit(procs):
    """Yield; then kill (and reap) every process of ``procs`` still running, so none outlives its test."""
    try:
        yield
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()


def _env(devices: int) -> dict:
    # The persistent compilation cache of conftest.py is passed on through the environment.
    return subprocess_env(devices=devices, PYTHONUNBUFFERED="1")


def _cmd(omniglot_dir, workdir, steps=STEPS, parallel="pmap", *extra):
    """train.py with small_config(**SETTINGS) (tests/test_train.py) on the command line."""
    return [sys.executable, "train.py", "--workdir", str(workdir), "--progress=false",
            f"--config.data.dir={omniglot_dir}", f"--config.data.alphabets={ALPHABETS}",
            "--config.data.val_alphabets=('Armenian',)", "--config.eval.val_ways=5", "--config.eval.val_episodes=10",
            "--config.data.batch_size=32", f"--config.optim.train_steps={steps}", "--config.optim.warmup_steps=5",
            "--config.log_every=1", f"--config.eval.eval_every={STEPS}", "--config.checkpoint_every=2",
            "--config.keep_latest=3",
            "--config.loss.name=contrastive", "--config.model.head=euclidean", "--config.optim.name=sgd",
            f"--config.parallel.mode={parallel}", *extra]


def _start_pair(omniglot_dir, workdir, steps, parallel, heartbeat=10, workdirs=None):
    """Two processes of one run on a free port; ``workdirs``: one per process instead of ``workdir``."""
    port = _free_port()
    procs = []
    for pid in range(2):
        cmd = _cmd(omniglot_dir, workdirs[pid] if workdirs else workdir, steps, parallel,
                   f"--coordinator_address=127.0.0.1:{port}",
                   "--num_processes=2", f"--process_id={pid}", f"--distributed_heartbeat_timeout={heartbeat}",
                   "--distributed_init_timeout=120")
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    return procs


def _final_leaves(workdir):
    cfg = small_config("unused", **SETTINGS)
    twin = train_lib.twin_from_config(cfg)
    shapes = jax.eval_shape(lambda k: twin.init(k, (28, 28, 1)), jax.random.key(0))
    step_dir = ckpt_lib.resolve_checkpoint(pathlib.Path(workdir) / "checkpoints")
    assert ckpt_lib.read_meta(step_dir)["step"] == STEPS
    variables = ckpt_lib.read_variables(step_dir, shapes)
    return [(jax.tree_util.keystr(k), np.asarray(x)) for k, x in jax.tree_util.tree_flatten_with_path(variables)[0]]


@pytest.fixture(scope="module")
def runs(omniglot_dir, tmp_path_factory):
    """2 processes x 2 devices (shard_map over a global mesh) and, at the same time, 1 process x 4 devices (pmap)."""
    multi, single = tmp_path_factory.mktemp("multi"), tmp_path_factory.mktemp("single")
    t0 = time.time()
    procs = _start_pair(omniglot_dir, multi, STEPS, "shard_map")
    ref = subprocess.Popen(_cmd(omniglot_dir, single, STEPS, "pmap"), cwd=REPO, env=_env(4), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=400) for p in [*procs, ref]]
    for p, (out, err) in zip([*procs, ref], outs):
        assert p.returncode == 0, err[-3000:]
    return {"multi": multi, "single": single, "outs": outs, "seconds": time.time() - t0}


def test_two_processes_match_one_process_with_four_devices(omniglot_dir, runs):
    multi, single = runs["multi"], runs["single"]
    records = read_metrics(multi)
    assert records[0]["devices"] == 4 and records[0]["processes"] == 2
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == list(range(1, STEPS + 1))  # written once, by process 0 alone
    loss_multi = np.array([r["loss"] for r in records if "loss" in r])
    loss_single = np.array([r["loss"] for r in read_metrics(single) if "loss" in r])
    np.testing.assert_allclose(loss_multi, loss_single, rtol=0, atol=1e-5)
    got, want = _final_leaves(multi), _final_leaves(single)
    scale = max(float(np.max(np.abs(b))) for _, b in want)
    for (k, a), (_, b) in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * max(scale, 1.0), err_msg=k)
    val = [r["val_accuracy"] for r in records if "val_accuracy" in r]
    assert len(val) == 1 and 0.0 <= val[0] <= 1.0
    (out0, _), (out1, _), (out_ref, _) = runs["outs"]
    assert "done:" in out0 and "val 5-way" in out0
    assert "done:" not in out1 and "val 5-way" not in out1  # only process 0 prints
    # A multi-process checkpoint restores in one process on one device (nothing left to train).
    cfg = small_config(omniglot_dir, **SETTINGS)
    assert train_lib.train(cfg, multi, progress=False)["step"] == STEPS


def test_resumed_two_process_run_stops_when_one_process_is_killed(omniglot_dir, runs, tmp_path):
    # Resume the 2-process run from its step-2 checkpoint under pmap (both processes restore the
    # replicated arrays together), then kill -9 process 1 while the two train.
    workdir = tmp_path / "w"
    shutil.copytree(runs["multi"], workdir)
    for step in (4, 6):
        shutil.rmtree(workdir / "checkpoints" / str(step))
    p0, p1 = _start_pair(omniglot_dir, workdir, STEPS, "pmap", heartbeat=5)
    with _killed_on_exit((p0, p1)):
        end = time.time() + 300
        while [r["step"] for r in read_metrics(workdir) if "loss" in r][STEPS:] != [3]:
            assert p0.poll() is None and p1.poll() is None, (p0.poll(), p1.poll(), p0.stderr.read()[-2000:])
            assert time.time() < end, "the resumed 2-process run made no progress"
            time.sleep(0.02)
        # Steps 4-6, validation and a checkpoint still need process 1: kill it now.
        p1.send_signal(signal.SIGKILL)
        _, err = p0.communicate(timeout=60)  # a hang guard: the heartbeat (5 s) stops it well before
    assert p0.returncode != 0
    assert "another task died" in err, err[-3000:]  # stopped by the heartbeat's detection, not by a timeout
    # The resumed run repeated step 3 exactly (restored from the step-2 checkpoint on 2 processes).
    records = [r for r in read_metrics(workdir) if r.get("step") == 3 and "loss" in r]
    assert len(records) == 2 and abs(records[0]["loss"] - records[1]["loss"]) < 1e-5, records


def test_unreachable_coordinator_and_missing_processes_fail_fast_and_clearly(omniglot_dir, tmp_path):
    procs = {}
    # Process 1 of 2 whose coordinator never starts; process 0 of 2 whose peer never comes.
    cases = ((1, "could not reach the coordinator at"), (0, "but not all processes joined"))
    for port, (pid, what) in zip(_free_ports(2), cases):  # distinct ports, or the two would form a pair and train
        address = f"127.0.0.1:{port}"
        cmd = _cmd(omniglot_dir, tmp_path / str(pid), STEPS, "pmap", f"--coordinator_address={address}",
                   "--num_processes=2", f"--process_id={pid}", "--distributed_init_timeout=3")
        procs[pid] = (subprocess.Popen(cmd, cwd=REPO, env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True), address, what)
    with _killed_on_exit([p for p, _, _ in procs.values()]):  # a process that hangs must not outlive the test
        for pid, (p, address, what) in procs.items():
            _, err = p.communicate(timeout=120)  # a hang guard
            assert p.returncode != 0, (pid, p.returncode, err[-2000:])
            assert "Traceback" not in err, err[-2000:]
            assert "DistributedError" in err and what in err and address in err, err[-2000:]
            # gave up after --distributed_init_timeout=3, not after a default of minutes
            assert ("within 3 s" if pid == 1 else "waited 3 s") in err, err[-2000:]
            assert not (tmp_path / str(pid)).exists()  # failed before any training work


def test_processes_that_do_not_share_the_workdir_stop_at_start_up(omniglot_dir, tmp_path):
    """Two processes of one run given different workdirs (as if each host had its own disk) would train and
    then wait forever at the first checkpoint; both stop before training, saying why."""
    procs = _start_pair(omniglot_dir, None, STEPS, "pmap", workdirs=[tmp_path / "a", tmp_path / "b"])
    with _killed_on_exit(procs):
        for p in procs:
            _, err = p.communicate(timeout=120)  # a hang guard; that no training ran is checked below
            assert p.returncode != 0, (p.returncode, err[-2000:])
            assert "do not see the file process 0 wrote" in err and "[1]" in err, err[-2000:]
            assert "Traceback" not in err, err[-2000:]
    assert not list((tmp_path / "a").iterdir()) and not list((tmp_path / "b").iterdir())  # no checkpoint, no probe
