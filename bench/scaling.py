"""Data-parallel scaling on simulated CPU devices: training steps/s for 1, 2, 4, 8 devices.

  python bench/scaling.py [--mode pmap|shard_map] [--batch 128] [--steps 10]

Each device count runs in a fresh process with XLA_FLAGS=--xla_force_host_platform_device_count=8
(the flag must be set before JAX starts). The model is the default Omniglot config (conv-4, 28x28,
triplet loss); images are random (the step's cost does not depend on them). Prints one JSON line
per device count. On one 2-core machine the simulated devices share the same cores, so this measures
the overhead of splitting a step, not a speed-up; on real accelerators each device brings its own.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def worker(devices: int, mode: str, batch: int, steps: int) -> dict:
    import jax
    import numpy as np

    sys.path.insert(0, str(REPO))
    from configs.omniglot import get_config
    from siamjax.train import parallel
    import siamjax.train as train_lib

    cfg = get_config()
    cfg.data.batch_size, cfg.parallel.num_devices, cfg.parallel.mode = batch, devices, mode
    spec = train_lib.preprocessing_from_config(cfg)
    twin = train_lib.twin_from_config(cfg, bn_axis_name=("twin", parallel.AXIS))
    devs = parallel.select_devices(devices)
    runner = parallel.make_runner(train_lib.make_train_step(twin, cfg, spec, parallel.AXIS, len(devs)), mode, devs)
    state = runner.put_state(train_lib.create_state(twin, cfg, spec))
    rng = np.random.default_rng(0)
    k = cfg.data.images_per_class
    batch_np = {"images": (rng.random((batch, 28, 28, 1)) * 255).astype(np.uint8),
                "labels": np.repeat(np.arange(batch // k), k).astype(np.int32)}
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        state, m = runner.step(state, runner.put_batch(batch_np))
        jax.block_until_ready(m)
        if i >= 2:  # the first two include compilation
            times.append(time.perf_counter() - t)
    med = float(np.median(times))
    return {"devices": devices, "mode": mode, "batch": batch, "steps_per_s": round(1 / med, 3),
            "images_per_s": round(batch / med, 1), "median_step_s": round(med, 4),
            "loadavg_1m": round(os.getloadavg()[0], 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", default="pmap", choices=["pmap", "shard_map"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--devices", default="1,2,4,8")
    ap.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.mode, a.batch, a.steps)))
        return
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    for n in map(int, a.devices.split(",")):
        out = subprocess.run([sys.executable, __file__, "--worker", str(n), "--mode", a.mode, "--batch",
                              str(a.batch), "--steps", str(a.steps)], env=env, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
