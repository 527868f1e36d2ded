"""Issue 51's oneDNN question, bounded before building anything: how much of conv-4's training step would
oneDNN's convolution kernels (PyTorch's) save if JAX called them through jax.ffi?

For each convolution of conv-4 at 28 px (256 images = 128 pairs, 3x3 SAME, NHWC), time forward + input
gradient + weight gradient, alone:

  --framework torch   torch.nn.functional.conv2d and its backward (oneDNN), channels-last, eager
  --framework jax     siamjax.nn.fastconv.conv2d (the fast CPU path) and lax.conv (plain XLA), jitted

Prints one JSON line per layer and framework, then the sum. The bound: a JAX step whose convolutions
took PyTorch's time would take  step_jax - conv_jax + conv_torch  (everything else unchanged, no FFI or
layout-conversion overhead counted, so the real gain is smaller).

  .venv-torch/bin/python experiments/speed/conv_kernel_bound.py --framework torch
  .venv/bin/python experiments/speed/conv_kernel_bound.py --framework jax
"""
from __future__ import annotations

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

from matmul import median_time  # noqa: E402

# (input size, C_in, C_out) of conv-4's four 3x3 convolutions at 28 px (each followed by a 2x2 max-pool)
LAYERS = [(28, 1, 64), (14, 64, 64), (7, 64, 64), (3, 64, 64)]


def run_torch(n: int, repeats: int) -> list[dict]:
    import torch

    torch.manual_seed(0)
    rows = []
    for size, cin, cout in LAYERS:
        x = torch.randn(n, cin, size, size).contiguous(memory_format=torch.channels_last).requires_grad_(True)
        w = torch.randn(cout, cin, 3, 3, requires_grad=True)
        g = torch.randn(n, cout, size, size).contiguous(memory_format=torch.channels_last)

        def step():
            x.grad = w.grad = None
            y = torch.nn.functional.conv2d(x, w, padding=1)
            y.backward(g)

        rows.append({"framework": "torch", "impl": "oneDNN", "size": size, "cin": cin, "cout": cout,
                     "seconds": median_time(step, repeats, warmup=3), "version": torch.__version__,
                     "threads": torch.get_num_threads()})
    return rows


def run_jax(n: int, repeats: int) -> list[dict]:
    import jax
    from jax import lax

    from siamjax.nn import fastconv

    rows = []
    for size, cin, cout in LAYERS:
        key = jax.random.PRNGKey(0)
        x = jax.random.normal(key, (n, size, size, cin))
        w = jax.random.normal(key, (3, 3, cin, cout))
        g = jax.random.normal(key, (n, size, size, cout))
        impls = {
            "fast": lambda x, w: fastconv.conv2d(x, w, "SAME", fast=True),
            "xla": lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                         dimension_numbers=fastconv.DIMENSION_NUMBERS),
        }
        for name, conv in impls.items():
            def fwd_bwd(x, w, g, conv=conv):
                y, vjp = jax.vjp(conv, x, w)
                return (y,) + vjp(g)

            fn = jax.jit(fwd_bwd)
            rows.append({"framework": "jax", "impl": name, "size": size, "cin": cin, "cout": cout,
                         "seconds": median_time(lambda: jax.block_until_ready(fn(x, w, g)), repeats, warmup=3),
                         "version": jax.__version__})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", choices=("torch", "jax"), required=True)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    rows = (run_torch if args.framework == "torch" else run_jax)(args.images, args.repeats)
    for r in rows:
        print(json.dumps({**r, "seconds": round(r["seconds"], 5)}))
    for impl in sorted({r["impl"] for r in rows}):
        total = sum(r["seconds"] for r in rows if r["impl"] == impl)
        print(json.dumps({"framework": args.framework, "impl": impl, "layers": "all", "seconds": round(total, 5),
                          "loadavg_1m": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
