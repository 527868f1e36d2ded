"""``python -m siamjax.cli.block_pooling CHECKPOINT [--block -2 --pool max --weight 2 | --remove]``: write
(or remove) ``block_pooling.json`` in a model's step folder (each member's, for an ensemble)."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from siamjax.infer.block_pooling import FILENAME, POOLS, BlockPooling, NotServed
from siamjax.infer.load import load
from siamjax.infer.manifest import step_folders


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siamjax.cli.block_pooling", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a workdir, step folder or ensemble folder")
    parser.add_argument("--block", type=int, default=-2, help="block index (default -2, the second to last)")
    parser.add_argument("--pool", choices=POOLS, default="max")
    parser.add_argument("--weight", type=float, default=2.0, help="its cosine's weight (default 2)")
    parser.add_argument("--remove", action="store_true", help=f"delete {FILENAME} instead")
    args = parser.parse_args(argv)
    try:
        steps = step_folders(args.checkpoint)
        if args.remove:
            for step in steps:
                (step / FILENAME).unlink(missing_ok=True)
                print(f"removed {step / FILENAME}")
            return 0
        spec = BlockPooling(args.block, args.pool, args.weight)
        skipped = {}  # ensemble member -> why it gets no file (NotServed.reason)
        for step in steps:  # check every member before writing any file
            try:
                load(step, whitening=False, block_pooling=False).check_block_pooling(spec)
            except NotServed as e:
                if len(steps) == 1:
                    raise
                skipped[step] = e.reason
        if len(skipped) == len(steps):
            raise ValueError(f"no member of {args.checkpoint} can take a pooled block: "
                             + "; ".join(f"{s.parent.name}/{s.name}: {r}" for s, r in skipped.items()))
        for step, reason in skipped.items():
            print(f"skipped {step}: {reason}")
        for step in (s for s in steps if s not in skipped):
            spec.save(step / FILENAME)
            print(f"wrote {step / FILENAME} ({spec})")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
