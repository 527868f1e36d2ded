"""Host input pipeline throughput for the default Omniglot config (configs/omniglot.py). Prints one
JSON line per stage.

  python bench/pipeline.py                                   # all 30 background alphabets, 200 steps
  python bench/pipeline.py --train_images_per_s 2500         # also the ratio to a training step's need
  python bench/pipeline.py --alphabets 3 --steps 20          # a quick smoke run

Stages (images_per_s each):
  decode        load_omniglot(background, cache_dir=False): read the zip and decode + preprocess
                every PNG (28x28, inverted), no npz cache read or written.
  sample_batch  make_batch_fn(cfg, train)(step) for --steps steps (sampler + fancy-index gather of
                uint8 images; triplet: P x K = 128 images a step), on the training alphabets (the
                decoded ones minus config.data.val_alphabets).
  prefetch      the same batches through siamjax.data.prefetch.prefetch (a background thread,
                ``size`` batches at most), the consumer doing nothing with them.
  folder_lazy   siamjax.data.folder.load_image_folder(lazy=True) on a synthetic class-per-folder
                set of --folder_images PNGs (--folder_px square, grey strokes on white, 20 per class)
                written to a temporary folder: every image read once through LazyImages in batches
                of 128 (decode + preprocess on its thread pool). open_seconds = listing + header
                checks; eager_images_per_s = the same folder decoded whole at open (lazy=False).
With --train_images_per_s X (images a training step consumes per second, e.g. from
bench/train_step.py: triplet batch / step_s, pairs 2 x pairs_per_s) each line gets
``ratio_to_train`` = images_per_s / X: above 1 the host keeps up.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

from train_step import peak_rss_mb  # noqa: E402

DEFAULT_DATA = os.path.join(os.path.dirname(REPO), "shared", "data", "omniglot")


def emit(args, out: dict) -> None:
    if args.train_images_per_s:
        out["train_images_per_s"] = args.train_images_per_s
        out["ratio_to_train"] = round(out["images_per_s"] / args.train_images_per_s, 2)
    out["peak_rss_mb"] = round(peak_rss_mb())
    out["loadavg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out), flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_dir", default=DEFAULT_DATA, help="folder with images_background.zip")
    p.add_argument("--alphabets", type=int, default=0, help="decode only the first N alphabets (0: all 30)")
    p.add_argument("--steps", type=int, default=200, help="batches for sample_batch and prefetch")
    p.add_argument("--loss", default=None, help="override config.loss.name (triplet: P x K images; contrastive/bce: pairs)")
    p.add_argument("--batch_size", type=int, default=None, help="override config.data.batch_size")
    p.add_argument("--prefetch_size", type=int, default=2, help="prefetch(size=...)")
    p.add_argument("--folder_images", type=int, default=2000, help="folder_lazy stage: PNGs written (0: skip)")
    p.add_argument("--folder_px", type=int, default=105, help="folder_lazy stage: image side in pixels")
    p.add_argument("--train_images_per_s", type=float, default=None,
                   help="images a training step consumes per second: adds ratio_to_train to every line")
    args = p.parse_args(argv)

    import numpy as np

    from configs.omniglot import get_config
    import siamjax.train as train_lib
    from siamjax.data.omniglot import load_omniglot
    from siamjax.data.prefetch import prefetch

    cfg = get_config()
    cfg.data.dir = args.data_dir
    if args.loss:
        cfg.loss.name = args.loss
        if args.loss != "triplet" and cfg.model.head == "koch":
            cfg.model.head = "cosine"
    if args.batch_size:
        cfg.data.batch_size = args.batch_size
    train_lib.check_config(cfg)
    spec = train_lib.preprocessing_from_config(cfg)
    common = {"config": "configs/omniglot.py", "loss": cfg.loss.name, "batch_size": cfg.data.batch_size,
              "image_size": spec.size}

    # (a) decode, no cache
    t0 = time.perf_counter()
    data = load_omniglot(cfg.data.dir, "background", spec, alphabets=args.alphabets or None, cache_dir=False)
    dt = time.perf_counter() - t0
    emit(args, {"stage": "decode", **common, "alphabets": data.num_groups, "images": len(data),
                "seconds": round(dt, 3), "images_per_s": round(len(data) / dt, 1), "cache": "off"})

    val = [a for a in cfg.data.val_alphabets if a in data.group_names]
    train = data.select_groups(val, exclude=True) if val else data
    make_batch = train_lib.make_batch_fn(cfg, train)

    def images_in(batch: dict) -> int:
        return len(batch["images"]) if "images" in batch else len(batch["left"]) + len(batch["right"])

    per_step = images_in(make_batch(0))
    stats = {"train_images": len(train), "train_alphabets": train.num_groups, "images_per_step": per_step,
             "steps": args.steps}

    # (b) sample + batch, in this thread
    times = []
    t0 = time.perf_counter()
    for step in range(args.steps):
        t = time.perf_counter()
        batch = make_batch(step)
        times.append(time.perf_counter() - t)
    dt = time.perf_counter() - t0
    emit(args, {"stage": "sample_batch", **common, **stats, "seconds": round(dt, 4),
                "images_per_s": round(args.steps * per_step / dt, 1),
                "median_step_ms": round(1e3 * statistics.median(times), 3)})

    # (c) the same through the prefetch thread
    t0 = time.perf_counter()
    n = 0
    for step, batch in prefetch(make_batch, 0, args.steps, size=args.prefetch_size):
        n += 1
    dt = time.perf_counter() - t0
    assert n == args.steps
    emit(args, {"stage": "prefetch", **common, **stats, "prefetch_size": args.prefetch_size,
                "seconds": round(dt, 4), "images_per_s": round(args.steps * per_step / dt, 1),
                "numpy": np.__version__})

    # (d) a class-per-folder set of PNGs read lazily (siamjax.data.folder)
    if args.folder_images > 0:
        emit(args, {"stage": "folder_lazy", **common, **folder_throughput(args.folder_images, args.folder_px, spec)})


def folder_throughput(n: int, px: int, spec) -> dict:
    """Write ``n`` PNGs (20 per class) to a temporary folder; time lazy reads of all, and an eager open."""
    import tempfile

    import numpy as np
    from PIL import Image, ImageDraw

    from siamjax.data.folder import load_image_folder

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="siamjax-bench-folder-") as tmp:
        for i in range(n):
            im = Image.new("L", (px, px), 255)
            draw = ImageDraw.Draw(im)
            for _ in range(4):  # a few pen strokes, like a handwritten character
                pts = [tuple(int(v) for v in rng.integers(5, px - 5, 2)) for _ in range(4)]
                draw.line(pts, fill=0, width=3)
            path = os.path.join(tmp, f"class{i // 20:04d}", f"{i % 20:02d}.png")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            im.convert("1").save(path)
        t0 = time.perf_counter()
        data = load_image_folder(tmp, spec, lazy=True)
        open_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for start in range(0, len(data), 128):
            data.images[start:start + 128]
        dt = time.perf_counter() - t0
        assert data.images.decoded == len(data) == n
        t0 = time.perf_counter()
        eager = load_image_folder(tmp, spec, lazy=False)
        eager_s = time.perf_counter() - t0
        assert len(eager) == n
    return {"images": n, "image_px": px, "classes": data.num_classes, "threads": data.images._store.threads,
            "open_seconds": round(open_s, 3), "seconds": round(dt, 3), "images_per_s": round(n / dt, 1),
            "eager_seconds": round(eager_s, 3), "eager_images_per_s": round(n / eager_s, 1)}


if __name__ == "__main__":
    main()
