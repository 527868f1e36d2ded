"""Tracking plots as PNG files: OTB success and precision plots, and a strip of annotated frames.

matplotlib is imported lazily with the non-interactive Agg backend (no display needed). The curves
come from :mod:`siamjax.tracking.otb_metrics`; boxes are ``x, y, w, h`` px (see
:mod:`siamjax.tracking.boxes`). Success and precision plots are FIGSIZE x DPI pixels (600 x 500).
"""
from __future__ import annotations

import math
import pathlib

import numpy as np

from siamjax.eval.plots import pyplot, save_figure

__all__ = ["DPI", "FIGSIZE", "frame_strip", "plot_precision", "plot_success"]

FIGSIZE = (6.0, 5.0)  # inches
DPI = 100
GT_COLOR = (0, 255, 0)  # green
PRED_COLOR = (255, 0, 0)  # red


def _curves(curves: dict, score) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """[(name, thresholds, values, score)], best score first."""
    if not curves:
        raise ValueError("no curves to plot")
    rows = []
    for name, (thr, val) in curves.items():
        thr, val = np.asarray(thr, np.float64), np.asarray(val, np.float64)
        if thr.shape != val.shape or thr.ndim != 1:
            raise ValueError(f"curve {name!r}: thresholds and values must be 1-D of the same length, got "
                             f"{thr.shape} and {val.shape}")
        rows.append((str(name), thr, val, score(thr, val)))
    return sorted(rows, key=lambda r: -r[3])


def plot_success(curves: dict, path, title: str = "Success plots of OPE") -> pathlib.Path:
    """Success plot -> PNG at ``path``.

    ``curves``: ``{name: (overlap thresholds [K], success rates [K])}``; legend "name [AUC 0.xxx]",
    AUC = mean of the success rates, best first."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for name, thr, val, auc in _curves(curves, lambda t, v: float(np.mean(v))):
        ax.plot(thr, val, lw=1.8, label=f"{name} [AUC {auc:.3f}]")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("Overlap threshold")
    ax.set_ylabel("Success rate")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left")
    return save_figure(fig, path, dpi=DPI, tight=False)  # FIGSIZE x DPI pixels


def plot_precision(curves: dict, path, title: str = "Precision plots of OPE",
                   at: float = 20) -> pathlib.Path:
    """Precision plot -> PNG at ``path``.

    ``curves``: ``{name: (location error thresholds [K] px, precision [K])}``; legend "name [0.xxx]"
    with the precision at ``at`` px (20; interpolated if not a threshold), best first."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for name, thr, val, p in _curves(curves, lambda t, v: float(np.interp(at, t, v))):
        ax.plot(thr, val, lw=1.8, label=f"{name} [{p:.3f}]")
    hi = max(float(np.max(t)) for _, (t, _) in curves.items())
    ax.set_xlim(0, hi)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("Location error threshold (px)")
    ax.set_ylabel("Precision")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return save_figure(fig, path, dpi=DPI, tight=False)  # FIGSIZE x DPI pixels


def _draw_box(draw, box, color, width: int) -> None:
    box = np.asarray(box, np.float64)
    if np.isnan(box).any():
        return
    x1, y1 = int(round(box[0])), int(round(box[1]))
    x2 = max(int(round(box[0] + box[2])) - 1, x1)  # last pixel column inside the box
    y2 = max(int(round(box[1] + box[3])) - 1, y1)
    draw.rectangle([x1, y1, x2, y2], outline=color, width=width)


def frame_strip(frames, gt_boxes, pred_boxes, path, columns: int = 5, indices=None,
                pad: int = 2) -> pathlib.Path:
    """Frames with their boxes, laid out in a grid -> PNG at ``path``.

    Args:
        frames: list of uint8 [H, W, 3] images (N).
        gt_boxes: [N, 4] ``x, y, w, h`` px drawn in green, or None.
        pred_boxes: [N, 4] px drawn in red (under the ground truth), or None. NaN rows are not drawn.
        columns: tiles per row (fewer when N is smaller); rows as needed.
        indices: the frame numbers written in each tile's top-left corner (default 0 .. N - 1).
        pad: pixels of dark grey between tiles.

    The image is ``columns * W + (columns - 1) * pad`` wide and ``rows * H + (rows - 1) * pad`` high,
    with W, H the largest frame width and height.
    """
    from PIL import Image, ImageDraw, ImageFont

    frames = [np.asarray(f) for f in frames]
    n = len(frames)
    if n == 0:
        raise ValueError("no frames to draw")
    for i, f in enumerate(frames):
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            raise ValueError(f"frame {i}: expected uint8 [H, W, 3], got {f.dtype} {f.shape}")
    sets = []
    for label, b in (("pred_boxes", pred_boxes), ("gt_boxes", gt_boxes)):
        if b is not None:
            b = np.asarray(b, np.float64)
            if b.shape != (n, 4):
                raise ValueError(f"{label} must be [{n}, 4] (one x, y, w, h per frame), got shape {b.shape}")
        sets.append(b)
    indices = list(range(n)) if indices is None else list(indices)
    if len(indices) != n:
        raise ValueError(f"indices: {len(indices)} for {n} frames")
    cols = max(1, min(int(columns), n))
    rows = math.ceil(n / cols)
    h = max(f.shape[0] for f in frames)
    w = max(f.shape[1] for f in frames)
    sheet = Image.new("RGB", (cols * w + (cols - 1) * pad, rows * h + (rows - 1) * pad), (40, 40, 40))
    width = max(1, min(h, w) // 120)
    try:
        font = ImageFont.load_default(size=max(10, h // 20))  # Pillow >= 10.1
    except TypeError:
        font = ImageFont.load_default()
    for i, f in enumerate(frames):
        tile = Image.fromarray(f)
        draw = ImageDraw.Draw(tile)
        for b, color in zip(sets, (PRED_COLOR, GT_COLOR)):
            if b is not None:
                _draw_box(draw, b[i], color, width)
        text = str(indices[i])
        left, top, right, bottom = draw.textbbox((2, 1), text, font=font)
        draw.rectangle([0, 0, right + 1, bottom + 1], fill=(0, 0, 0))
        draw.text((2, 1), text, fill=(255, 255, 0), font=font)
        r, c = divmod(i, cols)
        sheet.paste(tile, (c * (w + pad), r * (h + pad)))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
