"""Time one training step of a twin: B pairs, both images through the shared encoder, contrastive loss
on the Euclidean distance, Adam. Prints ONE JSON line (one per combination of comma-listed --dtype and --parallel).

  python bench/train_step.py --framework jax --model conv4 --batch 128 --impl fast
  python bench/train_step.py --framework jax --model conv4 --batch 128 --impl xla
  python bench/train_step.py --framework jax --model conv4 --batch 128 --dtype bfloat16
  python bench/train_step.py --framework jax --model koch --batch 128 --parallel shard_map
  python bench/train_step.py --framework torch --model koch --batch 32

JAX runs siamjax's own step (``train_lib.make_train_step``, jitted with the state donated, as
``train.py`` does; augmentation off), with ``model_kwargs.fast_cpu`` = (impl != "xla"; ``fast-conv`` / ``fast-pool`` keep only that half of it) and
``config.model.compute_dtype`` = ``--dtype`` (float32, or bfloat16: bfloat16 activations and convolutions,
float32 weights and optimizer state; see configs/omniglot.py). ``--parallel pmap|shard_map`` runs the step as
train.py does on several devices (``siamjax.train.parallel.make_runner``: the per-device step with its
``pmean``s, state replicated, the batch split over ``--devices``); ``none`` jits the one-device step. The torch
branch is the same architecture (conv4 with BatchNorm over all 2B images of a step, as the JAX twin
shares its statistics over both branches; Koch exactly), the same loss and Adam, in eager mode;
torch is imported only there (a bench-only dependency).

pairs_per_s: B / median step time over the timed steps (after warm-up, device synchronised).
gflops_per_s: analytic model FLOPs of forward + backward (2 * multiply-adds of every convolution and
dense layer: forward, weight gradient, and input gradient for all but the first layer; BatchNorm,
ReLU, pooling and the optimizer are not counted) / median step time. ``xla_gflop`` (JAX only) is
XLA's own cost analysis of the compiled step, for reference.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

DEFAULT_SIZE = {"conv4": 28, "koch": 105}


# FLOP counting: bench/flops.py (layer_shapes and step_flops are imported from there).
sys.path.insert(0, os.path.join(REPO, "bench"))
from flops import layer_shapes, step_flops  # noqa: E402,F401


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_times() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs from /proc/stat ((0, 0) elsewhere). Steal is time the
    hypervisor gave to other guests: on a shared virtual machine it slows every step at random."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[7], sum(v[:8])
    except (OSError, IndexError, ValueError):
        return 0, 0


def steal_pct(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return round(100.0 * (after[0] - before[0]) / total, 1) if total > 0 else 0.0


def minor_faults() -> int:
    """Minor page faults of this process so far (fresh memory touched: a cost of big allocations)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def make_batch(batch: int, size: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    left = rng.integers(0, 256, (batch, size, size, 1), dtype=np.uint8)
    right = rng.integers(0, 256, (batch, size, size, 1), dtype=np.uint8)
    same = (np.arange(batch) % 2 == 0).astype(np.float32)
    return {"left": left, "right": right, "same": same}


# ------------------------------------------------------------------------------------------- JAX
def run_jax(args) -> dict:
    import jax
    import ml_collections

    from configs.omniglot import get_config
    import siamjax.train as train_lib

    cfg = get_config()
    cfg.model.name = args.model
    cfg.model.kwargs = ml_collections.ConfigDict({"fast_cpu": args.impl != "xla"})
    if args.impl in ("fast-conv", "fast-pool"):  # ablation: one half of the fast path, XLA's other half
        import flax.linen as nn

        from siamjax.nn import encoders, fastconv

        if args.impl == "fast-conv":
            encoders._max_pool = lambda x, fast=False: fastconv.max_pool_2x2(x, fast=False)
        else:
            encoders._conv_cls = lambda fast: nn.Conv
    cfg.model.head = "euclidean"
    cfg.loss.name = "contrastive"
    cfg.loss.margin = 1.0
    cfg.optim.name = "adam"
    cfg.optim.learning_rate = 1e-4
    cfg.data.batch_size = args.batch
    cfg.data.image_size = args.size
    cfg.augment.enabled = False
    cfg.model.compute_dtype = args.dtype
    spec = train_lib.preprocessing_from_config(cfg)
    twin = train_lib.twin_from_config(cfg)
    state = train_lib.create_state(twin, cfg, spec)
    devices = 1
    if args.parallel == "none":
        step = jax.jit(train_lib.make_train_step(twin, cfg, spec), donate_argnums=0)
        batch = jax.device_put(make_batch(args.batch, args.size))
    else:  # train.py's own runner: the per-device step under pmap or jit + shard_map, state replicated
        from siamjax.train import parallel

        devs = parallel.select_devices(args.devices)
        devices = len(devs)
        parallel.check_batch_divides(args.batch, devices, "--batch")
        runner = parallel.make_runner(train_lib.make_train_step(twin, cfg, spec, axis_name=parallel.AXIS,
                                                                num_shards=devices), args.parallel, devs)
        step = runner.step
        state = runner.put_state(state)
        batch = runner.put_batch(make_batch(args.batch, args.size))
    xla_gflop = None
    try:  # compile once, ahead of time, and run that executable (calling `step` would compile it again)
        compiled = step.lower(state, batch).compile()
    except Exception:
        compiled = None
    if compiled is not None:
        step = compiled
        try:
            cost = compiled.cost_analysis()
            cost = cost[0] if isinstance(cost, (list, tuple)) else cost
            xla_gflop = float(cost["flops"]) / 1e9
        except Exception:  # cost analysis is best-effort
            pass
    times = []
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            faults0, cpu0 = minor_faults(), cpu_times()
        t0 = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready((state, metrics))
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    faults = (minor_faults() - faults0) / args.steps
    steal = steal_pct(cpu0, cpu_times())
    loss = float(jax.device_get(metrics["loss"]).reshape(-1)[0])  # pmap: one row per device, all equal
    return {"times": times, "loss": loss, "xla_gflop": xla_gflop, "page_faults_per_step": round(faults), "cpu_steal_pct": steal,
            "parallel": args.parallel, "devices": devices, "backend": jax.default_backend(),
            "device_kind": jax.devices()[0].device_kind, "version": jax.__version__}


# ----------------------------------------------------------------------------------------- torch
def run_torch(args) -> dict:
    import numpy as np
    import torch
    from torch import nn

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)

    def conv4():
        blocks, c = [], 1
        for _ in range(4):
            blocks += [nn.Conv2d(c, 64, 3, padding=1), nn.BatchNorm2d(64, momentum=0.1), nn.ReLU(),
                       nn.MaxPool2d(2, 2)]
            c = 64
        return nn.Sequential(*blocks, nn.Flatten())

    def koch(size):
        h = size
        for k in (10, 7, 4):
            h = (h - k + 1) // 2
        h = h - 4 + 1
        return nn.Sequential(
            nn.Conv2d(1, 64, 10), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(64, 128, 7), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(128, 128, 4), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(128, 256, 4), nn.ReLU(), nn.Flatten(),
            nn.Linear(256 * h * h, 4096), nn.Sigmoid())

    net = conv4() if args.model == "conv4" else koch(args.size)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    b = make_batch(args.batch, args.size)
    left = torch.from_numpy(np.ascontiguousarray(b["left"].transpose(0, 3, 1, 2)))
    right = torch.from_numpy(np.ascontiguousarray(b["right"].transpose(0, 3, 1, 2)))
    same = torch.from_numpy(b["same"])
    margin = 1.0

    def step():
        x = torch.cat([left, right]).float() * (1.0 / 255.0)  # both branches in one batch: shared BN stats
        emb = net(x)
        a, c = emb[: args.batch], emb[args.batch:]
        sq = ((a - c) ** 2).sum(-1)
        d = torch.where(sq > 0, torch.sqrt(torch.where(sq > 0, sq, torch.ones_like(sq))), torch.zeros_like(sq))
        loss = (0.5 * (same * d ** 2 + (1 - same) * torch.relu(margin - d) ** 2)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    times = []
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            faults0, cpu0 = minor_faults(), cpu_times()
        t0 = time.perf_counter()
        loss = step()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    faults = (minor_faults() - faults0) / args.steps
    steal = steal_pct(cpu0, cpu_times())
    return {"times": times, "loss": float(loss.detach()), "page_faults_per_step": round(faults), "cpu_steal_pct": steal,
            "threads": torch.get_num_threads(), "version": torch.__version__}


def main(argv=None) -> dict | list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--framework", choices=("jax", "torch"), required=True)
    p.add_argument("--model", choices=("conv4", "koch"), required=True)
    p.add_argument("--batch", type=int, required=True, help="pairs per step")
    p.add_argument("--size", type=int, default=None, help="image side (conv4: 28, koch: 105)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (conv4: 10, koch: 5)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--impl", choices=("fast", "xla", "fast-conv", "fast-pool"), default="fast",
                   help="JAX only: siamjax.nn.fastconv or XLA's; fast-conv / fast-pool: only its convolutions / "
                        "only its max-pooling (the ablation of the fast path)")
    p.add_argument("--dtype", type=_choices("float32", "bfloat16"), default=["float32"],
                   help="JAX only: config.model.compute_dtype of the step (parameters stay float32); a comma list "
                        "(float32,bfloat16) measures each in turn in this process, one JSON line each")
    p.add_argument("--threads", type=int, default=0, help="torch only: torch.set_num_threads (0: default)")
    p.add_argument("--parallel", type=_choices("none", "pmap", "shard_map"), default=["none"],
                   help="JAX only: none = the step jitted on one device (default); pmap / shard_map = train.py's "
                        "runner (siamjax.train.parallel) over --devices devices, the batch split over them; a comma "
                        "list measures each (for each --dtype)")
    p.add_argument("--devices", type=int, default=0, help="JAX --parallel pmap|shard_map: local devices (0 = all)")
    p.add_argument("--allow_size", action="store_true", help=argparse.SUPPRESS)  # dry runs: Koch at other sizes
    args = p.parse_args(argv)
    args.size = args.size or DEFAULT_SIZE[args.model]
    args.steps = args.steps or (10 if args.model == "conv4" else 5)
    if args.model == "koch" and args.size != 105 and not args.allow_size:
        raise SystemExit("koch is the 105x105 network: --size 105")
    if args.framework == "torch" and (args.dtype != ["float32"] or args.parallel != ["none"]):
        raise SystemExit("--dtype bfloat16 and --parallel are JAX only (the torch branch is float32, eager)")
    outs = []
    for dtype in args.dtype:
        for parallel in args.parallel:
            one = argparse.Namespace(**{**vars(args), "dtype": dtype, "parallel": parallel})
            outs.append(measure(one))
    return outs[0] if len(outs) == 1 else outs


def _choices(*valid):
    def parse(text: str) -> list[str]:
        items = [x for x in text.split(",") if x]
        bad = [x for x in items if x not in valid]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"{text!r}: give one or more of {', '.join(valid)}, comma-separated")
        return items
    return parse


def measure(args) -> dict:
    """One configuration (a single dtype and parallel mode): time it and print its JSON line."""
    r = run_jax(args) if args.framework == "jax" else run_torch(args)
    t = statistics.median(r.pop("times"))
    flops = step_flops(args.model, args.size, 2 * args.batch)
    out = {"framework": args.framework, "model": args.model, "batch": args.batch, "size": args.size,
           "impl": args.impl if args.framework == "jax" else "eager", "dtype": args.dtype, "steps": args.steps,
           "step_s": round(t, 4), "pairs_per_s": round(args.batch / t, 1),
           "gflops_per_s": round(flops / t / 1e9, 1), "model_gflop": round(flops / 1e9, 2),
           "flops": "analytic: conv+dense fwd + dW + dX (not first layer)", "peak_rss_mb": round(peak_rss_mb()),
           "loadavg_1m": round(os.getloadavg()[0], 2), **r}
    if out.get("xla_gflop") is not None:
        out["xla_gflop"] = round(out["xla_gflop"], 2)
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
