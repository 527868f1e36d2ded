"""``python -m siamjax.cli.distill_targets TEACHER OUT.npz --config CONFIG[:VARIANT] [--data_dir DIR]``: embed
every upright training image of CONFIG's run with the teacher (a model or an ensemble folder, e.g.
``pretrained/omniglot``) and store the distillation targets a run with
``--config.loss.distill_targets=OUT.npz --config.loss.distill_weight=W`` trains towards
(:mod:`siamjax.train.distill`). The teacher sees the images with its own preprocessing; the file is checked
against the run's training classes when the run starts.
"""
from __future__ import annotations

import argparse
import copy
import sys
from typing import Sequence

from siamjax.cli.config_flags import load_config
from siamjax.data.preprocess_spec import OPTIONAL_FIELDS
from siamjax.data.sources import load_data, preprocessing_from_config
from siamjax.infer.load import load
from siamjax.train.config import check_config
from siamjax.train.distill import teacher_rows, write_targets


def teacher_view_config(cfg, spec):
    """``cfg`` (changed in place) reading its training data with the Preprocessing ``spec`` and without the
    turned / mirrored copies: the same images in the same order, as the teacher preprocesses them."""
    d = cfg.data
    d.image_size, d.channels, d.invert = spec.size, spec.channels, spec.invert
    for name in OPTIONAL_FIELDS:
        d[name] = getattr(spec, name)
    d.rotate_classes = d.mirror_classes = False
    if preprocessing_from_config(cfg) != spec:
        raise ValueError(f"the teacher's preprocessing {spec.to_dict()} cannot be expressed as a config's data keys")
    return cfg


def make_targets(teacher_path: str, cfg, out: str, progress: bool = True) -> int:
    """Write OUT's targets for the training images of the run ``cfg`` configures; returns their number."""
    cfg = copy.deepcopy(cfg)
    cfg.loss.distill_weight = 0.0  # the targets file it names may be the one being made
    check_config(cfg)
    teacher = load(teacher_path)
    train, _, _ = load_data(teacher_view_config(cfg, teacher.preprocessing))
    from tqdm.auto import tqdm

    with tqdm(total=len(train), desc="teacher", unit="image", disable=not progress) as bar:
        targets = teacher_rows(teacher, train.images, progress=bar.update)
    write_targets(out, targets, train, teacher_path)
    return len(targets)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siamjax.cli.distill_targets", description=__doc__.split("\n")[0])
    parser.add_argument("teacher", help="the teacher: a workdir, step folder or ensemble folder")
    parser.add_argument("out", help="the targets file to write (.npz)")
    parser.add_argument("--config", required=True, help="the student's config, as siamjax-train takes it "
                        "(a file or an installed name, with :VARIANT), e.g. omniglot:moments64")
    parser.add_argument("--data_dir", default=None, help="the training data (default: the config's data.dir)")
    parser.add_argument("--noprogress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
        if args.data_dir is not None:
            cfg.data.dir = args.data_dir
        n = make_targets(args.teacher, cfg, args.out, progress=not args.noprogress)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: the targets of {n} training images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
