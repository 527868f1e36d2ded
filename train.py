"""Train from a config: ``python train.py --config configs/omniglot.py --workdir DIR`` (the same as
``siamjax-train``; see siamjax/cli/train.py and docs/training.md)."""
from siamjax.cli.train import run

if __name__ == "__main__":
    run()
