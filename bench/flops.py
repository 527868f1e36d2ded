"""Analytic FLOPs of the twin's training step and the time a recipe should take on an accelerator.

  python bench/flops.py                                  # conv4 and Koch per step; configs/omniglot.py:koch105
  python bench/flops.py --config omniglot:koch105 --utilisation 0.3 0.5
  python bench/flops.py --config omniglot:moments64      # any conv4 / koch recipe of configs/

Counted: 2 x multiply-adds of every convolution and dense layer, for the forward pass, the weight gradient
and the input gradient (not for the first layer, whose input needs none). BatchNorm, ReLU, pooling, the
head, the loss, the affine distortions and the optimizer are not counted (each well under 1% of Koch's
step). bench/train_step.py and bench/embed.py use the same count (``step_flops``, ``forward_flops``).

The time estimate is total FLOPs / (utilisation x peak), for the peaks of :data:`PEAKS` (dense, no
sparsity): an H100 SXM5's 67 TFLOP/s float32 on its CUDA cores, 495 TFLOP/s TF32 and 989 TFLOP/s
bfloat16 on its tensor cores (NVIDIA's H100 datasheet; the PCIe card is about 25% lower). XLA on GPU runs
float32 convolutions and matrix products on the tensor cores as TF32 unless the precision is set to
"highest"; ``--config.model.compute_dtype=bfloat16`` runs them in bfloat16. Small networks sustain a
small share of the peak: bench/run_gpu.sh measures the share (``gflops_per_s`` of bench/train_step.py).
One JSON line per figure.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Dense peaks, TFLOP/s: NVIDIA H100 SXM5 (80 GB) datasheet.
PEAKS = {"h100_fp32": 67.0, "h100_tf32": 494.7, "h100_bf16": 989.4}
KOCH = ((64, 10), (128, 7), (128, 4), (256, 4))  # (channels, kernel) of Koch et al.'s four convolutions


def layer_shapes(model: str, size: int, widths=None, features: int = 4096):
    """[(kind, kh, kw, cin, cout, ho, wo)] of the encoder's matmul layers ("conv" or "dense").

    conv4: 3 x 3 'same' convolutions, one per block of ``widths`` (default four of 64), each followed by
    a 2 x 2 max-pool. koch: Koch et al.'s valid convolutions and their ``features``-wide dense layer."""
    layers = []
    if model == "conv4":
        h, c = size, 1
        for w in (widths or (64,) * 4):
            layers.append(("conv", 3, 3, c, w, h, h))
            h, c = h // 2, w
        return layers
    if model == "koch":
        h, c = size, 1
        for i, (f, k) in enumerate(KOCH):
            h = h - k + 1
            layers.append(("conv", k, k, c, f, h, h))
            c = f
            if i < 3:
                h //= 2
        layers.append(("dense", 1, 1, h * h * c, features, 1, 1))
        return layers
    raise ValueError(model)


def forward_flops(model: str, size: int, images: int, widths=None) -> float:
    """Forward FLOPs of ``images`` images."""
    return sum(2.0 * images * ho * wo * kh * kw * cin * cout
               for _, kh, kw, cin, cout, ho, wo in layer_shapes(model, size, widths))


def step_flops(model: str, size: int, images: int, widths=None) -> float:
    """Training FLOPs of one step over ``images`` images: forward + weight gradient (+ input gradient)."""
    total = 0.0
    for i, (_, kh, kw, cin, cout, ho, wo) in enumerate(layer_shapes(model, size, widths)):
        fwd = 2.0 * images * ho * wo * kh * kw * cin * cout
        total += fwd * (2 if i == 0 else 3)  # forward + weight gradient (+ input gradient)
    return total


def weights(model: str, size: int, widths=None) -> int:
    """Weights of the matmul layers (biases left out)."""
    return sum(kh * kw * cin * cout for _, kh, kw, cin, cout, _, _ in layer_shapes(model, size, widths))


def recipe(config: str) -> dict:
    """The FLOPs of a twin recipe of configs/ (``NAME`` or ``NAME:VARIANT``): training steps and validation."""
    sys.path.insert(0, REPO)
    import importlib

    name, _, variant = config.partition(":")
    c = importlib.import_module(f"configs.{name}").get_config(*([variant] if variant else []))
    model, size = c.model.name, int(c.data.image_size)
    if model not in ("conv4", "koch"):
        raise SystemExit(f"bench/flops.py counts conv4 and koch, not {model!r}")
    kw = c.model.kwargs.to_dict()
    if kw.get("embed_dim") or kw.get("features", 4096) != 4096:
        raise SystemExit("bench/flops.py does not count conv4's embed_dim or Koch's features")
    widths = tuple(kw["widths"]) if kw.get("widths") else (kw.get("width", 64),) * kw.get("blocks", 4)
    pairs = c.loss.name in ("contrastive", "bce")
    images = 2 * c.data.batch_size if pairs else c.data.batch_size  # images per step
    steps = int(c.optim.train_steps)
    per_step = step_flops(model, size, images, widths if model == "conv4" else None)
    # Each validation embeds every image of its episodes once: val_episodes x val_ways x 2 (support + query).
    vals = steps // int(c.eval.eval_every)
    val = vals * forward_flops(model, size, int(c.eval.val_episodes) * int(c.eval.val_ways) * 2,
                               widths if model == "conv4" else None)
    return {"config": config, "model": model, "size": size, "loss": c.loss.name, "batch": int(c.data.batch_size),
            "images_per_step": images, "train_steps": steps, "step_tflop": round(per_step / 1e12, 4),
            "train_pflop": round(steps * per_step / 1e15, 2), "validations": vals,
            "validation_pflop": round(val / 1e15, 3), "total_pflop": round((steps * per_step + val) / 1e15, 2)}


def estimates(total_pflop: float, utilisation=(0.3, 0.5)) -> list[dict]:
    """Time for ``total_pflop`` at each peak of :data:`PEAKS` x each sustained share of it."""
    out = []
    for peak, tflops in PEAKS.items():
        for u in utilisation:
            s = total_pflop * 1e15 / (u * tflops * 1e12)
            out.append({"peak": peak, "peak_tflops": tflops, "utilisation": u, "sustained_tflops": round(u * tflops, 1),
                        "seconds": round(s), "minutes": round(s / 60, 1)})
    return out


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="omniglot:koch105", help="NAME or NAME:VARIANT of configs/")
    p.add_argument("--utilisation", type=float, nargs="+", default=[0.3, 0.5],
                   help="sustained shares of the peak to estimate the time at")
    args = p.parse_args(argv)
    rows = []
    for model, size in (("conv4", 28), ("koch", 105)):
        rows.append({"what": "step", "model": model, "size": size, "pairs": 128,
                     "step_gflop": round(step_flops(model, size, 256) / 1e9, 2),
                     "forward_gflop_per_image": round(forward_flops(model, size, 1) / 1e9, 4),
                     "weights": weights(model, size)})
    r = recipe(args.config)
    rows.append({"what": "recipe", **r})
    for e in estimates(r["total_pflop"], args.utilisation):
        rows.append({"what": "estimate", "config": args.config, **e})
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


if __name__ == "__main__":
    main()
