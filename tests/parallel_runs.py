"""Run a tiny training under several (devices, parallel) settings and compare them to the first.

Started by tests/test_parallel.py in a fresh process with 8 simulated CPU devices:
  python tests/parallel_runs.py OMNIGLOT_DIR WORKROOT LOSS HEAD OPTIMIZER 1:pmap 8:pmap 8:shard_map [resume]
Prints one JSON line: for every setting, the largest absolute difference from the first setting in
the per-step losses and in the final parameters / BatchNorm statistics.
"""
import json
import pathlib
import sys

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from siamjax import checkpoint as ckpt_lib  # noqa: E402
import siamjax.train as train_lib  # noqa: E402
from siamjax.train.metric_writer import read_metrics  # noqa: E402
from tests.test_train import small_config  # noqa: E402


def loss_settings(loss: str) -> dict:
    """Config overrides of a LOSS argument; ``proto+proxies``: the prototypical loss plus the class-proxy
    loss, whose proxies are replicated parameters scored against the gathered global batch."""
    if loss == "proto+proxies":
        return {"loss": {"name": "proto", "proxy_weight": 1.0, "proxy_scale": 16.0}}
    return {"loss": {"name": loss, **({"mining": "all"} if loss == "triplet" else {})}}


def run(omniglot_dir, workdir, loss, head, devices, mode, optimizer):
    cfg = small_config(omniglot_dir, model=dict(head=head), optim=dict(train_steps=6, name=optimizer),
                       eval=dict(eval_every=6), data=dict(batch_size=32), parallel=dict(num_devices=devices, mode=mode),
                       checkpoint_every=6, **loss_settings(loss))
    train_lib.train(cfg, workdir, progress=False)
    losses = [r["loss"] for r in read_metrics(workdir) if "loss" in r]
    step_dir = ckpt_lib.resolve_checkpoint(pathlib.Path(workdir) / "checkpoints")
    meta = ckpt_lib.read_meta(step_dir)
    twin = train_lib.twin_from_config(cfg)
    shapes = jax.eval_shape(lambda k: twin.init(k, (28, 28, 1)), jax.random.key(0))
    variables = ckpt_lib.read_variables(step_dir, shapes)
    leaves = jax.tree_util.tree_flatten_with_path(variables)[0]
    return np.asarray(losses), [(jax.tree_util.keystr(k), np.asarray(x)) for k, x in leaves], meta


def main():
    omniglot_dir, root, loss, head, optimizer, *settings = sys.argv[1:]
    resume = "resume" in settings  # also resume the last run on 2 devices under shard_map
    settings = [x for x in settings if x != "resume"]
    assert jax.local_device_count() == 8, jax.local_devices()
    out = {}
    ref = None
    for s in settings:
        n, mode = s.split(":")
        losses, leaves, _ = run(omniglot_dir, pathlib.Path(root) / s.replace(":", "_"), loss, head, int(n), mode, optimizer)
        if ref is None:
            ref = (losses, leaves)
        out[s] = {"steps": len(losses),
                  "loss_diff": float(np.max(np.abs(losses - ref[0]))),
                  "early_loss_diff": float(np.max(np.abs(losses[:2] - ref[0][:2]))),  # steps 1 and 2
                  "loss_scale": float(np.max(np.abs(ref[0]))),
                  "param_diff": float(max(np.max(np.abs(a - b)) for (_, a), (_, b) in zip(leaves, ref[1]))),
                  "param_scale": float(max(np.max(np.abs(b)) for _, b in ref[1])),
                  "worst": max((float(np.max(np.abs(a - b))), k) for (k, a), (_, b) in zip(leaves, ref[1]))[1]}
    if not resume:
        print(json.dumps(out))
        return
    # Resume the last run on another device count and mode: Orbax restores onto any devices.
    last = pathlib.Path(root) / settings[-1].replace(":", "_")
    cfg = small_config(omniglot_dir, model=dict(head=head), optim=dict(train_steps=8, name=optimizer),
                       eval=dict(eval_every=8), data=dict(batch_size=32), parallel=dict(num_devices=2, mode="shard_map"),
                       checkpoint_every=8, **loss_settings(loss))
    train_lib.train(cfg, last, progress=False)
    out["resumed_steps"] = [r["step"] for r in read_metrics(last) if "loss" in r][6:]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
