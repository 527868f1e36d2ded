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
                decoded ones minus config.val_alphabets).
  prefetch      the same batches through siamjax.data.prefetch.prefetch (a background thread,
                ``size`` batches at most), the consumer doing nothing with them.
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
    p.add_argument("--loss", default=None, help="override config.loss (triplet: P x K images; contrastive/bce: pairs)")
    p.add_argument("--batch_size", type=int, default=None, help="override config.batch_size")
    p.add_argument("--prefetch_size", type=int, default=2, help="prefetch(size=...)")
    p.add_argument("--train_images_per_s", type=float, default=None,
                   help="images a training step consumes per second: adds ratio_to_train to every line")
    args = p.parse_args(argv)

    import numpy as np

    from configs.omniglot import get_config
    from siamjax import train_lib
    from siamjax.data.omniglot import load_omniglot
    from siamjax.data.prefetch import prefetch

    cfg = get_config()
    cfg.data_dir = args.data_dir
    if args.loss:
        cfg.loss = args.loss
        if args.loss != "triplet" and cfg.head == "koch":
            cfg.head = "cosine"
    if args.batch_size:
        cfg.batch_size = args.batch_size
    train_lib.check_config(cfg)
    spec = train_lib.preprocessing_from_config(cfg)
    common = {"config": "configs/omniglot.py", "loss": cfg.loss, "batch_size": cfg.batch_size,
              "image_size": spec.size}

    # (a) decode, no cache
    t0 = time.perf_counter()
    data = load_omniglot(cfg.data_dir, "background", spec, alphabets=args.alphabets or None, cache_dir=False)
    dt = time.perf_counter() - t0
    emit(args, {"stage": "decode", **common, "alphabets": data.num_groups, "images": len(data),
                "seconds": round(dt, 3), "images_per_s": round(len(data) / dt, 1), "cache": "off"})

    val = [a for a in cfg.val_alphabets if a in data.group_names]
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


if __name__ == "__main__":
    main()
