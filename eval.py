"""Evaluate a checkpoint: ``python eval.py [oneshot|pairs|calibrate|verify|enrol|identify|track] ...``
(the same as ``siamjax-eval``; see siamjax/cli/eval.py and the README)."""
import sys

from siamjax.cli.eval import main

if __name__ == "__main__":
    sys.exit(main())
