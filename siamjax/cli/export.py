"""``python -m siamjax.cli.export CHECKPOINT OUT [--weights_dtype float16]``: copy the model a training run
serves (its best step folder, as :func:`siamjax.load` picks it) to OUT, without the optimizer state and
optionally with half-size weights. Fit its whitening there afterwards if wanted
(``python -m siamjax.cli.whitening OUT``)."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from siamjax.infer.build_ensemble import WEIGHTS_DTYPES, write_model


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siamjax.cli.export", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a workdir, manager folder or step folder")
    parser.add_argument("out", help="the folder to create")
    parser.add_argument("--weights_dtype", default="float32", choices=WEIGHTS_DTYPES,
                        help="float32 (default) copies the weights unchanged; float16 / bfloat16 store them at half "
                             "the size (loaded as float32)")
    args = parser.parse_args(argv)
    try:
        out = write_model(args.out, args.checkpoint, args.weights_dtype)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
