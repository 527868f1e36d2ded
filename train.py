"""Train a twin network from a config file.

  python train.py --config configs/omniglot.py --workdir workdirs/omniglot [--config.train_steps=3000 ...]

Metrics go to WORKDIR/metrics.jsonl and TensorBoard files in WORKDIR/tb; Orbax checkpoints to
WORKDIR/checkpoints (latest) and WORKDIR/best (best validation accuracy). Rerunning the same command
resumes from the latest checkpoint.
"""
from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", "configs/omniglot.py", "Experiment config file (get_config()).")
flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and TensorBoard files go.", required=True)
flags.DEFINE_bool("progress", True, "Show a progress bar.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # keep Orbax's INFO lines off the console
    from siamjax import train_lib

    cfg = FLAGS.config
    result = train_lib.train(cfg, FLAGS.workdir, progress=FLAGS.progress)
    summary = ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.items()))
    print(f"done: {summary}")


if __name__ == "__main__":
    app.run(main)
