"""``python -m siamjax.cli.whitening CHECKPOINT [--data_dir DIR] [--shrinkage 3] [--rank 128]``: fit a
model's within-class whitening (:mod:`siamjax.infer.whitening`) on its own training split and write
``whitening.npz`` into its step folder (into each member's, for an ensemble)."""
from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Sequence

from siamjax.data.sources import load_data
from siamjax.infer.load import load
from siamjax.infer.manifest import step_folders
from siamjax.infer.whitening import FILENAME, HEADS, Whitening, _check_shrinkage, fit


def fit_model(step_dir: str | pathlib.Path, data_dir: str | None = None, shrinkage: float = 3.0,
              rank: int | None = 128) -> Whitening:
    """Embed the training split of the model in ``step_dir`` (its stored config; no turned or mirrored
    copies) and fit its map. ``data_dir`` overrides the config's."""
    _check_shrinkage(shrinkage)  # before the embedding
    model = load(step_dir, whitening=False, block_pooling=False)  # the map is of the last block alone
    head = model.meta["model"]["head"]
    if head not in HEADS:
        raise ValueError(f"{step_dir}: whitening needs a cosine or correlation head, this model has {head!r}")
    cfg = model.config
    cfg.data.rotate_classes = False
    cfg.data.mirror_classes = False
    if data_dir is not None:
        cfg.data.dir = data_dir
    train, _, _ = load_data(cfg)
    if train.num_classes < 2:
        raise ValueError(f"{step_dir}: the training split has {train.num_classes} class(es); need at least 2")
    return fit(model.embed_preprocessed(train.images), train.labels, shrinkage, rank)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siamjax.cli.whitening", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a workdir, step folder or ensemble folder")
    parser.add_argument("--data_dir", default=None, help="the training data (default: the stored config's)")
    parser.add_argument("--shrinkage", type=float, default=3.0, help="in units of the mean eigenvalue (default 3)")
    parser.add_argument("--rank", type=int, default=128, help="eigen-directions kept exactly (0 = all; default 128)")
    args = parser.parse_args(argv)
    try:
        steps = step_folders(args.checkpoint)
        for step in steps:
            w = fit_model(step, args.data_dir, args.shrinkage, args.rank or None)
            w.save(step / FILENAME)
            print(f"wrote {step / FILENAME} (D={w.dim}, rank {w.basis.shape[1]}, shrinkage {w.shrinkage:g})")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
