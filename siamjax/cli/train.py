"""``siamjax-train``: train a twin network (or a SiamFC tracker) from a config.

  siamjax-train --config=omniglot --workdir=workdirs/omniglot [--config.optim.train_steps=3000 ...]
  python train.py --config configs/omniglot.py --workdir workdirs/omniglot     (the same, in a clone)

``--config`` takes a config file, or the short name of an installed one (``omniglot``, ``att_faces``, ...),
either with ``:VARIANT`` for a named variant of the recipe (``omniglot:moments64``).

Metrics go to WORKDIR/metrics.jsonl and TensorBoard files in WORKDIR/tb; Orbax checkpoints to
WORKDIR/checkpoints (latest) and WORKDIR/best (best validation accuracy). Rerunning the same command
resumes from the latest checkpoint.

One host, all its devices: the command above (config.parallel.num_devices=0; config.parallel.mode=pmap|shard_map).

Several hosts (processes): run the same command on every host, with the same --workdir on a
filesystem they all see, plus

  --coordinator_address=HOST0:PORT --num_processes=N --process_id=I     (I = 0 .. N-1; 0 on HOST0)

or, under Slurm (srun), Open MPI (mpirun) or on a Cloud TPU slice, nothing more: the settings are read
from the launcher's environment (see siamjax/distributed.py). config.data.batch_size is the global batch;
it must divide over all devices of all processes. Waits are bounded: --distributed_init_timeout for
every process to join, --distributed_heartbeat_timeout before the others stop when one dies.
"""
from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from siamjax.cli.config_flags import (renamed_override_message, resolve_config, resolve_config_argv,
                                      unknown_override_message)

try:  # short names (omniglot, omniglot:moments64) -> the installed files
    sys.argv = resolve_config_argv(sys.argv)
    DEFAULT_CONFIG = resolve_config("omniglot")
except ValueError as e:
    sys.exit(f"error: {e}")
try:  # ml_collections applies the --config.KEY=VALUE overrides here, when the flag is defined
    config_flags.DEFINE_config_file("config", DEFAULT_CONFIG,
                                    "Experiment config: a file (get_config()) or an installed config's name, "
                                    "optionally with :VARIANT.")
except (AttributeError, KeyError) as e:  # an override of a key the config file lacks
    sys.exit(f"error: {unknown_override_message(sys.argv, None, e)}")
flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and TensorBoard files go.", required=True)
flags.DEFINE_bool("progress", True, "Show a progress bar.")
flags.DEFINE_string("coordinator_address", None,
                    "Several processes: HOST:PORT of process 0's coordinator (the same on every process).")
flags.DEFINE_integer("num_processes", None, "Several processes: how many in all.")
flags.DEFINE_integer("process_id", None, "Several processes: this one's index, 0 .. num_processes-1.")
flags.DEFINE_enum("distributed", "auto", ["auto", "on", "off"],
                  "auto: start jax.distributed when the flags above, JAX_COORDINATOR_ADDRESS or a multi-task "
                  "Slurm / Open MPI / Cloud TPU environment ask for it; on: always (JAX auto-detects the "
                  "settings); off: never.")
flags.DEFINE_float("distributed_init_timeout", 120, "Seconds for every process to join the coordinator.")
flags.DEFINE_integer("distributed_heartbeat_timeout", 30,
                     "Seconds without heartbeats after which a process counts as dead and all others stop.")
flags.DEFINE_integer("distributed_shutdown_timeout", 60, "Seconds a finished process waits for the others at exit.")
flags.DEFINE_bool("traceback", False, "On an error, print the full Python traceback, not one line.")
FLAGS = flags.FLAGS


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, with one clear line for an unknown ``--config.KEY`` (closest keys suggested)."""
    try:
        return FLAGS(argv)
    except (AttributeError, KeyError) as e:  # ml_collections, for an override of a key the config lacks
        sys.exit(f"error: {unknown_override_message(argv, None, e)}")
    except flags.Error as e:
        renamed = renamed_override_message(argv) if "--config." in str(e) else None
        if renamed:  # e.g. --config.data=folder, where data is a group of settings now
            sys.exit(f"error: {renamed}")
        sys.exit(f"error: {e}\nPass --helpshort or --helpfull to see help on flags.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # keep Orbax's INFO lines off the console
    # jax.distributed must start before any other JAX use: nothing above has touched a device.
    from siamjax.train import distributed

    try:
        distributed.initialize(distributed.Settings(
            coordinator_address=FLAGS.coordinator_address, num_processes=FLAGS.num_processes,
            process_id=FLAGS.process_id, mode=FLAGS.distributed, init_timeout=FLAGS.distributed_init_timeout,
            heartbeat_timeout=FLAGS.distributed_heartbeat_timeout,
            shutdown_timeout=FLAGS.distributed_shutdown_timeout))
    except distributed.DistributedError as e:
        sys.exit(f"DistributedError: {e}")
    import siamjax.train as train_lib

    cfg = FLAGS.config
    from siamjax.cli.errors import exit_on_user_error

    run = train_lib.train
    if cfg.get("task", "twin") == "siamfc":  # object tracking (configs/siamfc.py)
        from siamjax.tracking.train import train as run
    result = exit_on_user_error(lambda: run(cfg, FLAGS.workdir, progress=FLAGS.progress),
                                FLAGS.traceback, "nothing in the workdir was removed; --traceback shows where")
    best = best_checkpoint_line(FLAGS.workdir)  # every process: Orbax reads in step with all of them
    if distributed.is_primary():
        summary = ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.items()))
        print(f"done: {summary}")
        print(best)


def best_checkpoint_line(workdir: str) -> str:
    """'best checkpoint: WORKDIR/best/STEP (val_accuracy 0.801): siamjax.load(WORKDIR) reads it'."""
    from siamjax import checkpoint as ckpt_lib

    try:
        step_dir = ckpt_lib.resolve_checkpoint(workdir)
        metrics = ckpt_lib.read_meta(step_dir).get("metrics") or {}
    except (OSError, ValueError) as e:  # e.g. stopped before the first checkpoint
        return f"no checkpoint to load yet in {workdir} ({e})"
    shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()) if isinstance(v, (int, float)))
    return f"best checkpoint: {step_dir}" + (f" ({shown})" if shown else "") + f"; siamjax.load({workdir!r}) reads it"


def run() -> None:
    """The ``siamjax-train`` entry point. ``--help`` lists this command's flags."""
    if any(a in ("-h", "--help", "--helpshort") for a in sys.argv[1:]):
        print(__doc__ + "\nflags:\n" + FLAGS.module_help(sys.modules[__name__]))
        sys.exit(0)
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
