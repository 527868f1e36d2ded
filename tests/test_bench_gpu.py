"""bench/run_gpu.sh, the prepared accelerator check, works before a GPU is lent: its --dry-run runs every
measurement for a step or two on the CPU (2 simulated devices, so pmap and shard_map split the batch) and
writes every JSON line the GPU run writes, and the CPU-against-device loss check reports a match."""
import itertools
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from tests.conftest import subprocess_env

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and timeout")
def test_run_gpu_dry_run_writes_every_line_and_the_losses_match(tmp_path):
    out = tmp_path / "gpu-dry-run.jsonl"
    # Without the session's persistent compilation cache: none of these programs is compiled twice, and
    # writing each to the cache costs time.
    env = {k: v for k, v in subprocess_env(devices=2, PY=sys.executable).items() if k != "JAX_COMPILATION_CACHE_DIR"}
    proc = subprocess.run(["bash", str(REPO / "bench" / "run_gpu.sh"), "--dry-run", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]  # every line parses

    env = [r for r in rows if r.get("bench") == "run_gpu" and "backend" in r]
    assert len(env) == 1 and env[0]["dry_run"] and len(env[0]["devices"]) == 2

    steps = {(r["model"], r["dtype"], r["parallel"]): r for r in rows if "pairs_per_s" in r}
    expected = set(itertools.product(("conv4", "koch"), ("float32", "bfloat16"), ("none", "pmap", "shard_map")))
    assert set(steps) == expected
    for (model, dtype, parallel), r in steps.items():
        assert r["step_s"] > 0 and r["gflops_per_s"] > 0 and r["backend"] == "cpu"
        assert r["devices"] == (1 if parallel == "none" else 2)
        assert r["loss"] == r["loss"]  # finite enough to compare: not NaN

    embeds = {r["model"]: r for r in rows if r.get("mode") == "embed"}
    assert set(embeds) == {"conv4", "koch"} and all(r["images_per_s"] > 0 for r in embeds.values())
    assert embeds["koch"]["embed_dim"] == 4096

    checks = {r["model"]: r for r in rows if r.get("bench") == "gpu_check"}
    assert set(checks) == {"conv4", "koch"}
    for r in checks.values():
        assert r["match"] and r["rel_diff_highest"] <= r["rtol"], r
        assert len(r["cpu_losses"]) == len(r["device_losses_highest"]) == 2
        assert r["cpu_device"] != r["device"]  # two devices compared, even on the CPU

    assert not [r for r in rows if "error" in r]
    summary = rows[-1]["summary"]
    assert summary["ok"] and summary["dry_run"] and not summary["failed"]
    assert summary["steps"] == ["environment", "train_step_conv4", "train_step_koch", "embed_conv4", "embed_koch",
                                "gpu_check"]
