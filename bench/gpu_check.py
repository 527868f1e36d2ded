"""Does the accelerator give the CPU's losses? The same training steps on a fixed batch, on the CPU backend and
on the default backend (a GPU or TPU when there is one), compared. One JSON line per model; exit status 1
when a loss differs by more than the tolerance.

  python bench/gpu_check.py                      # conv4 at 28 px and configs/omniglot.py:koch105 at 105 px
  python bench/gpu_check.py --dry_run            # tiny batches (Koch at 65 px) on the CPU: the script's own test

For each model, one state (``create_state``, initialised on the CPU) is copied to the CPU and to the default
backend's first device (with a single backend: the last CPU device, so the comparison still runs), and
``--steps`` training steps (``siamjax.train.make_train_step``, jitted, affine distortions on) run on the same
fixed batch on each. The step's ``loss`` is computed before its update, so step 1 compares the forward pass
and loss alone, later steps the gradients and Adam's updates too.

* conv4: the default config's conv-4 at 28 px, Euclidean head, contrastive loss on pairs (BatchNorm in).
* koch: configs/omniglot.py:koch105 (Koch's network at 105 px, weighted-L1 head, binary cross-entropy).

On the accelerator the steps run twice: at ``jax.default_matmul_precision("highest")`` (float32 products:
the losses must match the CPU's to ``--rtol`` relative, 1e-4 by default) and at the default precision
(XLA may use TF32 tensor cores on a GPU, bfloat16 passes on a TPU: ``--rtol_default``, 2e-2). The CPU
runs its own fast path (siamjax.nn.fastconv's gradients), the accelerator XLA's convolutions. With no
accelerator (a dry run) the target is the last CPU device and the default-precision run is the 'highest' one.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def pair_batch(batch: int, size: int, seed: int = 0) -> dict:
    """A fixed batch of ``batch`` pairs: sparse random 'ink' (uint8) and alternating same / different."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ink = lambda: (rng.random((batch, size, size, 1)) < 0.15).astype(np.uint8) * 255
    return {"left": ink(), "right": ink(), "same": (np.arange(batch) % 2 == 0).astype(np.float32)}


def model_config(model: str, size: int, batch: int):
    import ml_collections

    from configs.omniglot import get_config

    if model == "koch":
        cfg = get_config("koch105")
    else:
        cfg = get_config()
        cfg.model.name = "conv4"
        cfg.model.head = "euclidean"
        cfg.loss.name = "contrastive"
        cfg.loss.margin = 1.0
        cfg.optim.learning_rate = 1e-3
        cfg.optim.warmup_steps = 1
    cfg.model.kwargs = ml_collections.ConfigDict(cfg.model.kwargs.to_dict())
    cfg.data.image_size = size
    cfg.data.batch_size = batch
    cfg.augment.enabled = True
    cfg.model.compute_dtype = "float32"
    return cfg


def losses_on(device, state, batch, step, steps: int, precision: str | None) -> list[float]:
    import contextlib

    import jax

    state = jax.device_put(state, device)
    batch = jax.device_put(batch, device)
    out = []
    ctx = jax.default_matmul_precision(precision) if precision else contextlib.nullcontext()
    with ctx:
        for _ in range(steps):
            state, metrics = step(state, batch)
            out.append(float(jax.device_get(metrics["loss"])))
    return out


def rel_diff(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) / max(abs(x), abs(y), 1e-12) for x, y in zip(a, b))


def check(model: str, size: int, batch: int, steps: int, rtol: float, rtol_default: float) -> dict:
    import math

    import jax

    import siamjax.train as train_lib

    cfg = model_config(model, size, batch)
    spec = train_lib.preprocessing_from_config(cfg)
    twin = train_lib.twin_from_config(cfg)
    cpu = jax.devices("cpu")[0]
    with jax.default_device(cpu):
        state = jax.device_get(train_lib.create_state(twin, cfg, spec))  # host arrays: copied to each device
    step = jax.jit(train_lib.make_train_step(twin, cfg, spec))
    data = pair_batch(batch, size)
    target = jax.devices()[0] if jax.default_backend() != "cpu" else jax.devices("cpu")[-1]
    on_cpu = losses_on(cpu, state, data, step, steps, None)
    highest = losses_on(target, state, data, step, steps, "highest")
    # On a CPU target float32 products are float32 at any precision: the default run would repeat this one.
    default = losses_on(target, state, data, step, steps, None) if target.platform != "cpu" else list(highest)
    d_high, d_default = rel_diff(on_cpu, highest), rel_diff(on_cpu, default)
    finite = all(math.isfinite(x) for x in on_cpu + highest + default)
    return {"bench": "gpu_check", "model": model, "size": size, "pairs": batch, "steps": steps,
            "loss": cfg.loss.name, "head": cfg.model.head, "cpu_losses": on_cpu, "device_losses_highest": highest,
            "device_losses_default": default, "rel_diff_highest": d_high, "rel_diff_default": d_default,
            "rtol": rtol, "rtol_default": rtol_default,
            "match": bool(finite and d_high <= rtol and d_default <= rtol_default),
            "backend": jax.default_backend(), "device": str(target), "device_kind": target.device_kind,
            "cpu_device": str(cpu), "version": jax.__version__}


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry_run", action="store_true", help="tiny batches, Koch at 65 px (the smallest it takes)")
    p.add_argument("--models", default="conv4,koch")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rtol", type=float, default=1e-4, help="float32 ('highest' precision) relative tolerance")
    p.add_argument("--rtol_default", type=float, default=2e-2, help="relative tolerance at the default precision")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    args = p.parse_args(argv)
    sizes = {"conv4": (28, 4 if args.dry_run else 64), "koch": (65 if args.dry_run else 105, 2 if args.dry_run else 16)}
    rows = []
    for model in args.models.split(","):
        size, batch = sizes[model]
        row = check(model, size, batch, 2 if args.dry_run else args.steps, args.rtol, args.rtol_default)
        row["dry_run"] = args.dry_run
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    if not all(r["match"] for r in rows):
        print("gpu_check: the accelerator's losses differ from the CPU's beyond the tolerance", file=sys.stderr)
        raise SystemExit(1)
    return rows


if __name__ == "__main__":
    main()
