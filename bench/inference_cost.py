"""Inference cost of Omniglot models side by side: images per second of ``embed`` and the time of the first
call (load + compile + first embed), one JSON line per model.

  python bench/inference_cost.py                                   # the shipped pretrained/omniglot + one network
  python bench/inference_cost.py --model ensemble=pretrained/omniglot --model single=workdirs/mine
  python bench/inference_cost.py --out bench/results/inference-cpu-$(date +%F).jsonl

Each model is measured in a fresh Python process, one after the other (so no model profits from another's
compiled programs, in memory or on disk: the persistent compilation cache is switched off), on the same
batch of real Omniglot images: ``--batch`` 105 x 105 PNGs of the evaluation alphabets (the zip's order,
read once into uint8 arrays, dark ink on white as the files hold them), which ``model.embed`` preprocesses
to its own input (its size, ink crop, polarity), then embeds. Without the data (``--data_dir``), synthetic
strokes of the same shape stand in, and the JSON line's ``input`` says so.

* ``import_s``: ``import jax, siamjax`` in the fresh process.
* ``first_call_s`` = ``load_s`` (``siamjax.load``) + ``first_embed_s`` (the first ``model.embed(batch)``:
  tracing and compiling, preprocessing, embedding): what a user waits for before the first embedding.
* ``images_per_s``: batch / median time of ``--calls`` further ``model.embed(batch)`` calls, preprocessing
  included (raw 105 x 105 arrays in, embeddings out: an ensemble also resizes and crops the batch for each
  of its preprocessings).
* ``members``, ``embed_dim``, ``weights``, ``disk_mb``: the model's shape and size.

The default pair is ``ensemble`` = pretrained/omniglot and ``single`` = its best member
(pretrained/omniglot/proxiescrophiresmoments_seed0, 91.47% alone) when pretrained/omniglot is an
ensemble; when it is one network, that network alone.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "omniglot"
BEST_MEMBER = "proxiescrophiresmoments_seed0"


def omniglot_images(data_dir: pathlib.Path, n: int):
    """The first ``n`` PNGs of images_evaluation (zip or folder), sorted by name: uint8 [n, 105, 105, 1]."""
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    zpath = pathlib.Path(data_dir) / "images_evaluation.zip"
    if zpath.is_file():
        with zipfile.ZipFile(zpath) as zf:
            names = sorted(x for x in zf.namelist() if x.endswith(".png"))[:n]
            blobs = [zf.read(x) for x in names]
    else:
        files = sorted((pathlib.Path(data_dir) / "images_evaluation").rglob("*.png"))[:n]
        blobs = [f.read_bytes() for f in files]
    if len(blobs) < n:
        raise SystemExit(f"found {len(blobs)} evaluation PNGs under {data_dir}, need {n}")
    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("L"), np.uint8) for b in blobs])[..., None]


def synthetic_images(n: int, size: int = 105, seed: int = 0):
    """Stand-ins when no Omniglot data is at hand (e.g. on a lent GPU host): dark strokes on white,
    uint8 [n, size, size, 1] (a few random thick lines each)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = np.full((n, size, size), 255, np.uint8)
    t = np.linspace(0.0, 1.0, 4 * size)
    for img in out:
        for _ in range(rng.integers(2, 5)):
            (x0, y0), (x1, y1) = rng.uniform(0.2 * size, 0.8 * size, (2, 2))
            xs, ys = (x0 + t * (x1 - x0)).astype(int), (y0 + t * (y1 - y0)).astype(int)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    img[np.clip(ys + dy, 0, size - 1), np.clip(xs + dx, 0, size - 1)] = 0
    return out[..., None]


def default_models() -> list[tuple[str, str]]:
    from siamjax.infer.manifest import is_ensemble

    shipped = REPO / "pretrained" / "omniglot"
    if is_ensemble(shipped):
        return [("ensemble", str(shipped)), ("single", str(shipped / BEST_MEMBER))]
    return [("single", str(shipped))]


def child(name: str, path: str, args) -> dict:
    """One model in this (fresh) process."""
    t0 = time.perf_counter()
    import jax
    import numpy as np

    import siamjax
    from siamjax.infer.manifest import is_ensemble

    import_s = time.perf_counter() - t0
    data = pathlib.Path(args.data_dir)
    if (data / "images_evaluation.zip").is_file() or (data / "images_evaluation").is_dir():
        images, source = omniglot_images(data, args.batch), "omniglot evaluation PNGs, uint8 105x105x1"
    else:  # no data on this host: synthetic strokes of the same shape (said so in the JSON line)
        images, source = synthetic_images(args.batch), "synthetic strokes (no Omniglot data found), uint8 105x105x1"
    t0 = time.perf_counter()
    model = siamjax.load(path)
    t1 = time.perf_counter()
    e = model.embed(images)
    t2 = time.perf_counter()
    times = []
    for _ in range(args.calls):
        t = time.perf_counter()
        e = model.embed(images)
        times.append(time.perf_counter() - t)
    members = model.members if is_ensemble(path) else [model]
    weights = sum(int(np.size(v)) for m in members for v in jax.tree_util.tree_leaves(m.variables.get("params", {})))
    disk = sum(f.stat().st_size for f in pathlib.Path(path).rglob("*") if f.is_file())
    t_call = statistics.median(times)
    shown = os.path.relpath(path, REPO) if path.startswith(str(REPO)) else path
    return {"bench": "inference_cost", "model": name, "path": shown,
            "members": len(members), "sizes": sorted({m.preprocessing.size for m in members}),
            "embed_dim": int(e.shape[-1]), "weights": weights, "disk_mb": round(disk / 1e6, 2),
            "batch": args.batch, "input": source, "calls": args.calls,
            "import_s": round(import_s, 3), "load_s": round(t1 - t0, 3), "first_embed_s": round(t2 - t1, 3),
            "first_call_s": round(t2 - t0, 3), "call_s": round(t_call, 4),
            "images_per_s": round(args.batch / t_call, 1),
            "backend": jax.default_backend(), "devices": jax.device_count(), "cpus": os.cpu_count(),
            "loadavg_1m": round(os.getloadavg()[0], 2), "version": jax.__version__,
            "date": time.strftime("%Y-%m-%d", time.gmtime())}


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", default=None, metavar="NAME=PATH",
                   help="a model to measure (repeatable); default: the shipped pretrained/omniglot and one network")
    p.add_argument("--batch", type=int, default=256, help="images per embed call")
    p.add_argument("--calls", type=int, default=5, help="timed calls after the first")
    p.add_argument("--data_dir", default=os.environ.get("SIAMJAX_OMNIGLOT", str(DEFAULT_DATA)),
                   help="folder with images_evaluation.zip")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    p.add_argument("--child", nargs=2, metavar=("NAME", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, args)), flush=True)
        return []
    models = [tuple(m.split("=", 1)) for m in args.model] if args.model else default_models()
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["JAX_ENABLE_COMPILATION_CACHE"] = "false"  # every first call compiles, as a user's first run does
    rows = []
    for name, path in models:
        cmd = [sys.executable, __file__, "--child", name, str(pathlib.Path(path).resolve()), "--batch", str(args.batch),
               "--calls", str(args.calls), "--data_dir", args.data_dir]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode:
            sys.stderr.write(out.stderr)
            raise SystemExit(f"{name} ({path}) failed with status {out.returncode}")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    return rows


if __name__ == "__main__":
    main()
