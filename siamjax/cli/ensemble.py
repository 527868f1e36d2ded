"""``python -m siamjax.cli.ensemble OUT CHECKPOINT... [--names a,b] [--weights_dtype float16]``: build an
ensemble folder that :func:`siamjax.load` reads as one model."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from siamjax.infer.build_ensemble import WEIGHTS_DTYPES, write_ensemble
from siamjax.infer.manifest import MANIFEST


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siamjax.cli.ensemble",
                                     description="Build an ensemble folder that siamjax.load reads as one model.")
    parser.add_argument("out", help="the folder to create")
    parser.add_argument("checkpoints", nargs="+", help="workdirs, manager folders or step folders")
    parser.add_argument("--names", default="", help="comma-separated member folder names (default member0, ...)")
    parser.add_argument("--weights_dtype", default="float32", choices=WEIGHTS_DTYPES,
                        help="float32 (default) copies the step folders unchanged; float16 stores their weights at half "
                             "the size (loaded as float32)")
    args = parser.parse_args(argv)
    try:
        out = write_ensemble(args.out, args.checkpoints, args.names.split(",") if args.names else None,
                             args.weights_dtype)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out / MANIFEST} with {len(args.checkpoints)} members")
    return 0


if __name__ == "__main__":
    sys.exit(main())
