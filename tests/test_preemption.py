"""Preemption: SIGTERM saves and stops; kill -9 then rerun resumes and ends exactly where an
uninterrupted run ends; a damaged latest checkpoint is reported, kept aside, and the previous one used."""
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import siamjax
from siamjax import checkpoint as ckpt_lib
import siamjax.train as train_lib
from siamjax.train.metric_writer import read_metrics
from tests.test_train import ALPHABETS, small_config

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 20


def _cmd(omniglot_dir, workdir):
    return [sys.executable, "train.py", "--workdir", str(workdir), "--progress=false",
            f"--config.data.dir={omniglot_dir}", f"--config.data.alphabets={ALPHABETS}",
            "--config.data.val_alphabets=('Armenian',)", "--config.eval.val_ways=5", "--config.eval.val_episodes=10",
            "--config.data.batch_size=32", f"--config.optim.train_steps={STEPS}", "--config.optim.warmup_steps=5",
            "--config.log_every=1", "--config.eval.eval_every=12", "--config.checkpoint_every=4"]


def _wait_for_step(workdir, step, proc, timeout=240):
    end = time.time() + timeout
    while time.time() < end:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        path = pathlib.Path(workdir) / "metrics.jsonl"
        if path.is_file() and any(r.get("step", 0) >= step and "loss" in r for r in read_metrics(workdir)):
            return
        time.sleep(0.2)
    raise TimeoutError(f"training did not reach step {step}")


def _wait_for_checkpoint_after(workdir, step, proc, timeout=240):
    """Until a finalised checkpoint (a step folder named by its number) later than ``step`` exists."""
    end = time.time() + timeout
    while time.time() < end:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        root = pathlib.Path(workdir) / ckpt_lib.LATEST
        if any(p.name.isdigit() and int(p.name) > step for p in root.iterdir()):
            return
        time.sleep(0.2)
    raise TimeoutError(f"no checkpoint after step {step} was written")


def _probe_images():
    rng = np.random.default_rng(7)
    return [rng.random((105, 105)) > 0.8 for _ in range(8)]


def _final_embeddings(workdir):
    model = siamjax.load(ckpt_lib.resolve_checkpoint(pathlib.Path(workdir) / "checkpoints"))
    assert model.meta["step"] == STEPS
    return model.embed(_probe_images())


@pytest.fixture(scope="module")
def uninterrupted(omniglot_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    proc = subprocess.run(_cmd(omniglot_dir, workdir), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return _final_embeddings(workdir)


def test_sigterm_then_kill_9_then_rerun_ends_where_an_uninterrupted_run_ends(omniglot_dir, tmp_path, uninterrupted):
    # 1. SIGTERM: a checkpoint at the step it stopped, a clean exit, a message saying how to resume.
    proc = subprocess.Popen(_cmd(omniglot_dir, tmp_path), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for_step(tmp_path, 5, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "rerun the same command to resume" in out + err
    stopped = ckpt_lib.CheckpointIO(tmp_path).latest_step()
    assert 5 <= stopped < STEPS
    assert max(r["step"] for r in read_metrics(tmp_path)) == stopped
    # 2. Rerun, then kill -9 mid-way: only complete checkpoints remain.
    proc = subprocess.Popen(_cmd(omniglot_dir, tmp_path), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    _wait_for_step(tmp_path, stopped + 6, proc)
    _wait_for_checkpoint_after(tmp_path, stopped, proc)  # async saves finish in the background
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    latest = ckpt_lib.CheckpointIO(tmp_path).latest_step()
    assert latest is not None and stopped < latest < STEPS
    # 3. Rerun to the end: the same parameters as a run never interrupted.
    rerun = subprocess.run(_cmd(omniglot_dir, tmp_path), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    np.testing.assert_allclose(_final_embeddings(tmp_path), uninterrupted, atol=1e-5, rtol=0)


def test_corrupt_latest_checkpoint_falls_back_and_is_kept(omniglot_dir, tmp_path):
    cfg = small_config(omniglot_dir, optim=dict(train_steps=8), eval=dict(eval_every=8), checkpoint_every=4)
    train_lib.train(cfg, tmp_path, progress=False)
    step_dir = tmp_path / "checkpoints" / "8"
    files = sorted((p for p in (step_dir / "variables").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    victim = files[-1]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])  # truncated
    cfg.optim.train_steps = 12
    result = train_lib.train(cfg, tmp_path, progress=False)
    assert result["step"] == 12
    steps = [r["step"] for r in read_metrics(tmp_path) if "loss" in r]
    assert steps[-4:] == [9, 10, 11, 12] and steps.count(5) == 2  # resumed from 4, not 8
    kept = tmp_path / "corrupt" / "8"
    assert (kept / "meta").is_dir()  # nothing deleted: the damaged checkpoint is kept aside, as it was
    assert (kept / victim.relative_to(step_dir)).stat().st_size == len(victim.read_bytes()) if victim.exists() \
        else (kept / victim.relative_to(step_dir)).is_file()
