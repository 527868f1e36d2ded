"""Inference throughput of a twin's encoder, or the time of Lake's 400 one-shot trials from image files.
Prints ONE JSON line.

  python bench/embed.py --framework jax   --model conv4 --batch 512
  python bench/embed.py --framework torch --model conv4 --batch 512
  python bench/embed.py --framework jax   --model koch  --batch 64
  python bench/embed.py --lake_trials [--checkpoint DIR] [--repeats 5]

Embedding mode: uint8 images [B, S, S, 1] -> embeddings, on a freshly initialised encoder (the
numbers do not depend on the weights). JAX runs what ``train_lib.make_embedder`` jits:
``twin.embed(variables, to_float(x))`` (f32, BatchNorm on running statistics, the encoders' default
``fast_cpu``; ``--impl xla`` turns it off). torch is the same architecture as bench/train_step.py's
models, ``eval()`` under ``torch.inference_mode()``, the uint8 -> float conversion inside the timed
call; torch is imported only there (a bench-only dependency).
images_per_s: B / median call time (after warm-up, device synchronised). gflops_per_s: analytic
forward FLOPs (2 x multiply-adds of every convolution and dense layer, ``forward_flops`` of
bench/flops.py) / median call time.

Lake mode (``--lake_trials``, JAX): writes 20 run folders in the layout of Lake et al.'s one-shot
runs (``runXX/training/classNN.png``, ``runXX/test/itemNN.png``, ``class_labels.txt``) into a
temporary folder: each run is 20 characters of one Omniglot evaluation alphabet, the support images
from one drawer and the queries from another, the original PNG files copied out of the zip. So 20 x 20
= 400 trials and 800 PNGs. Then it times what ``eval.py --lake_runs`` runs: ``read_runs`` (decode the
PNGs) + ``evaluate.evaluate_lake_runs(model.embed, model.pairwise, runs)`` with a checkpoint
(``--checkpoint``) or a fresh conv4 / cosine twin at 28x28 (the default config's) wrapped in
:class:`siamjax.Model` as :func:`siamjax.load` does. One untimed pass compiles; the median of
``--repeats`` passes is reported (``total_s``, split into ``read_s`` and ``embed_score_s``).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

from flops import forward_flops, layer_shapes  # noqa: E402,F401
from train_step import DEFAULT_SIZE, peak_rss_mb  # noqa: E402

DEFAULT_BATCH = {"conv4": 512, "koch": 64}
DEFAULT_DATA = os.path.join(os.path.dirname(REPO), "shared", "data", "omniglot")


def make_images(batch: int, size: int, seed: int = 0):
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, (batch, size, size, 1), dtype=np.uint8)


# ------------------------------------------------------------------------------------------- JAX
def run_jax(args) -> dict:
    import jax
    import ml_collections

    from configs.omniglot import get_config
    import siamjax.train as train_lib
    from siamjax.data.preprocess import to_float

    cfg = get_config()
    cfg.model.name = args.model
    cfg.model.kwargs = ml_collections.ConfigDict({"fast_cpu": args.impl == "fast"})
    cfg.data.image_size = args.size
    if "compute_dtype" in cfg:
        cfg.model.compute_dtype = "float32"  # inference is float32 (as make_embedder, eval.py, siamjax.load)
    spec = train_lib.preprocessing_from_config(cfg)
    twin = train_lib.twin_from_config(cfg)
    variables = twin.init(jax.random.key(0), (spec.size, spec.size, spec.channels))
    fn = jax.jit(lambda v, x: twin.embed(v, to_float(x, spec)))  # as train_lib.make_embedder
    x = jax.device_put(make_images(args.batch, args.size))
    times = []
    for i in range(args.warmup + args.calls):
        t0 = time.perf_counter()
        out = fn(variables, x)
        out.block_until_ready()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    return {"times": times, "embed_dim": int(out.shape[-1]), "backend": jax.default_backend(),
            "version": jax.__version__}


# ----------------------------------------------------------------------------------------- torch
def run_torch(args) -> dict:
    import torch
    from torch import nn

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)

    def conv4():
        blocks, c = [], 1
        for _ in range(4):
            blocks += [nn.Conv2d(c, 64, 3, padding=1), nn.BatchNorm2d(64, momentum=0.1), nn.ReLU(),
                       nn.MaxPool2d(2, 2)]
            c = 64
        return nn.Sequential(*blocks, nn.Flatten())

    def koch(size):
        h = size
        for k in (10, 7, 4):
            h = (h - k + 1) // 2
        h = h - 4 + 1
        return nn.Sequential(
            nn.Conv2d(1, 64, 10), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(64, 128, 7), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(128, 128, 4), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(128, 256, 4), nn.ReLU(), nn.Flatten(),
            nn.Linear(256 * h * h, 4096), nn.Sigmoid())

    net = conv4() if args.model == "conv4" else koch(args.size)
    net.eval()
    x = torch.from_numpy(make_images(args.batch, args.size).transpose(0, 3, 1, 2).copy())  # NCHW uint8
    times = []
    with torch.inference_mode():
        for i in range(args.warmup + args.calls):
            t0 = time.perf_counter()
            out = net(x.float() * (1.0 / 255.0))
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
    return {"times": times, "embed_dim": int(out.shape[-1]), "threads": torch.get_num_threads(),
            "version": torch.__version__}


# --------------------------------------------------------------------------------- Lake one-shot runs
def write_lake_runs(root: pathlib.Path, data_dir: str, runs: int = 20, ways: int = 20, seed: int = 0) -> int:
    """``runs`` Lake-layout folders under ``root`` from Omniglot's evaluation zip (or folder):
    each run is ``ways`` characters of one alphabet, support from one drawer, queries (shuffled) from
    another; PNG files copied as they are. Returns the number of PNGs written."""
    import zipfile

    import numpy as np

    from siamjax.data import omniglot

    src = omniglot._resolve_source(data_dir, "evaluation")
    zf = zipfile.ZipFile(src.path) if src.kind == "zip" else None
    try:
        tree = omniglot._list_items(src, "evaluation", zf)
        read = (lambda it: zf.read(it.ref)) if zf is not None else (lambda it: (src.path / it.ref).read_bytes())
        drawer = lambda it: int(omniglot._DRAWER_RE.search(it.filename).group(1))
        alphabets = [a for a, chars in tree.items() if len(chars) >= ways]
        rng = np.random.default_rng(seed)
        written = 0
        for r in range(1, runs + 1):
            alpha = alphabets[(r - 1) % len(alphabets)]
            names = sorted(tree[alpha])
            chars = [names[i] for i in rng.choice(len(names), ways, replace=False)]
            by_drawer = [{drawer(it): it for it in tree[alpha][c]} for c in chars]
            common = sorted(set.intersection(*(set(d) for d in by_drawer)))
            d_support, d_query = rng.choice(common, 2, replace=False)
            run = root / f"run{r:02d}"
            (run / "training").mkdir(parents=True)
            (run / "test").mkdir()
            for c in range(ways):
                (run / "training" / f"class{c + 1:02d}.png").write_bytes(read(by_drawer[c][d_support]))
            lines = []
            for i, c in enumerate(rng.permutation(ways)):
                (run / "test" / f"item{i + 1:02d}.png").write_bytes(read(by_drawer[c][d_query]))
                lines.append(f"run{r:02d}/test/item{i + 1:02d}.png run{r:02d}/training/class{c + 1:02d}.png")
            (run / "class_labels.txt").write_text("\n".join(lines) + "\n")
            written += 2 * ways
        return written
    finally:
        if zf is not None:
            zf.close()


def fresh_model(model: str = "conv4", size: int = 28):
    """A freshly initialised twin of the default config, as :func:`siamjax.load` would return it."""
    import jax

    from configs.omniglot import get_config
    import siamjax.train as train_lib
    from siamjax.infer.model import Model

    cfg = get_config()
    cfg.model.name = model
    cfg.data.image_size = size
    if "compute_dtype" in cfg:
        cfg.model.compute_dtype = "float32"
    spec = train_lib.preprocessing_from_config(cfg)
    twin = train_lib.twin_from_config(cfg)
    variables = twin.init(jax.random.key(cfg.seed), (spec.size, spec.size, spec.channels))
    return Model(twin=twin, variables=variables, preprocessing=spec, meta=train_lib.model_meta(cfg, spec))


def run_lake(args) -> dict:
    import jax

    import siamjax
    from siamjax.eval import episodes as evaluate
    from siamjax.data.lake_runs import read_runs

    model = siamjax.load(args.checkpoint) if args.checkpoint else fresh_model()
    with tempfile.TemporaryDirectory(prefix="siamjax-lake-runs-") as tmp:
        t0 = time.perf_counter()
        images = write_lake_runs(pathlib.Path(tmp), args.data_dir, runs=args.runs, ways=args.ways)
        write_s = time.perf_counter() - t0
        passes = []
        for i in range(1 + args.repeats):  # the first pass compiles
            t0 = time.perf_counter()
            runs = read_runs(tmp)
            t1 = time.perf_counter()
            r = evaluate.evaluate_lake_runs(model.embed, model.pairwise, runs)
            t2 = time.perf_counter()
            passes.append((t1 - t0, t2 - t1, t2 - t0, r["error"]))
    warm, timed = passes[0], passes[1:]
    if len({p[3] for p in passes}) != 1:
        raise RuntimeError(f"the error changed between passes: {[p[3] for p in passes]}")
    med = lambda k: round(statistics.median(p[k] for p in timed), 4)
    return {"mode": "lake_trials", "framework": "jax", "runs": r["runs"], "trials": r["questions"],
            "images": images, "total_s": med(2), "read_s": med(0), "embed_score_s": med(1),
            "first_pass_s": round(warm[2], 3), "repeats": args.repeats, "target_s": 2.0,
            "error_pct": round(r["error"], 2),
            "model": "checkpoint" if args.checkpoint else "fresh conv4/cosine 28x28",
            "checkpoint": str(model.path) if model.path else None, "write_runs_s": round(write_s, 3),
            "peak_rss_mb": round(peak_rss_mb()), "loadavg_1m": round(os.getloadavg()[0], 2),
            "backend": jax.default_backend(), "version": jax.__version__}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--framework", choices=("jax", "torch"), default="jax")
    p.add_argument("--model", choices=("conv4", "koch"), default="conv4")
    p.add_argument("--batch", type=int, default=None, help="images per call (conv4: 512, koch: 64)")
    p.add_argument("--size", type=int, default=None, help="image side (conv4: 28, koch: 105)")
    p.add_argument("--calls", type=int, default=None, help="timed calls (conv4: 20, koch: 5)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--impl", choices=("fast", "xla"), default="fast", help="JAX only: model_kwargs.fast_cpu")
    p.add_argument("--threads", type=int, default=0, help="torch only: torch.set_num_threads (0: default)")
    p.add_argument("--lake_trials", action="store_true", help="time 20 Lake-layout runs (400 trials) from PNGs")
    p.add_argument("--checkpoint", default=None, help="lake_trials: a training workdir / checkpoint (else fresh)")
    p.add_argument("--data_dir", default=DEFAULT_DATA, help="lake_trials: folder with images_evaluation.zip")
    p.add_argument("--repeats", type=int, default=5, help="lake_trials: timed passes after the compiling one")
    p.add_argument("--runs", type=int, default=20, help=argparse.SUPPRESS)
    p.add_argument("--ways", type=int, default=20, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.lake_trials:
        if args.framework != "jax":
            raise SystemExit("--lake_trials runs siamjax's own evaluation: --framework jax")
        out = run_lake(args)
        print(json.dumps(out), flush=True)
        return out
    args.size = args.size or DEFAULT_SIZE[args.model]
    args.batch = args.batch or DEFAULT_BATCH[args.model]
    args.calls = args.calls or (20 if args.model == "conv4" else 5)
    if args.model == "koch" and args.size != 105:
        raise SystemExit("koch is the 105x105 network: --size 105")
    r = run_jax(args) if args.framework == "jax" else run_torch(args)
    t = statistics.median(r.pop("times"))
    flops = forward_flops(args.model, args.size, args.batch)
    out = {"mode": "embed", "framework": args.framework, "model": args.model, "batch": args.batch,
           "size": args.size, "impl": args.impl if args.framework == "jax" else "eager", "calls": args.calls,
           "call_s": round(t, 5), "images_per_s": round(args.batch / t, 1),
           "gflops_per_s": round(flops / t / 1e9, 1), "model_gflop": round(flops / 1e9, 3),
           "flops": "analytic: conv+dense forward", "peak_rss_mb": round(peak_rss_mb()),
           "loadavg_1m": round(os.getloadavg()[0], 2), **r}
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
