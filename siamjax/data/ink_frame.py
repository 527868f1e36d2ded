"""Where the ink of one image is, and the frame cropped around it (``Preprocessing.crop_to_ink``).

Inputs are polarity-corrected float32 images ``[H, W, C]`` (C = 1 or 3) in [0, 1], ink high;
coordinates are pixels (row / column indices, pixel centres at +0.5). ``spec`` is the
:class:`~siamjax.data.preprocess_spec.Preprocessing` (its ``ink_threshold``, ``crop_margin``,
``crop_radius``).
"""

from __future__ import annotations

import math

import numpy as np

from siamjax.data.preprocess_spec import Preprocessing

__all__ = ["LUMA", "grey_of", "ink_box", "moment_frame"]

# PIL "L" conversion weights (ITU-R 601-2 luma).
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def grey_of(f: np.ndarray) -> np.ndarray:
    """float image [H, W, C] (C = 1 or 3) -> its grey values [H, W] (the luma of RGB), which decide what is ink."""
    return f[..., 0] if f.shape[-1] == 1 else f @ LUMA


def ink_box(f: np.ndarray, spec: Preprocessing) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), bottom / right exclusive: the ink's bounding box of one polarity-corrected
    float image [H, W, C] (C = 1 or 3), widened by ``spec.crop_margin``; the whole image if it has no ink."""
    h, w, _ = f.shape
    grey = grey_of(f)
    ink = grey > np.float32(spec.ink_threshold)
    rows = np.flatnonzero(ink.any(axis=1))
    if rows.size == 0:
        return 0, h, 0, w
    cols = np.flatnonzero(ink.any(axis=0))
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    m = int(math.ceil(spec.crop_margin * max(bottom - top, right - left) - 1e-9))
    return max(top - m, 0), min(bottom + m, h), max(left - m, 0), min(right + m, w)


def moment_frame(f: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """One polarity-corrected float image [H, W, C] -> its "moments" frame [S, S, C]: the square centred
    on the ink's centre of mass (pixels above ``spec.ink_threshold``, weighted by their grey value) with
    half-side ``spec.crop_radius`` x the ink's RMS distance from that centre (at least 1 pixel), parts
    outside the image filled with 0; the whole image if it has no ink."""
    h, w, c = f.shape
    grey = grey_of(f)
    weight = np.where(grey > np.float32(spec.ink_threshold), grey, np.float32(0.0)).astype(np.float64)
    total = weight.sum()
    if total <= 0.0:
        return f
    ys = np.arange(h, dtype=np.float64) + 0.5  # pixel centres
    xs = np.arange(w, dtype=np.float64) + 0.5
    cy = float(weight.sum(axis=1) @ ys) / total
    cx = float(weight.sum(axis=0) @ xs) / total
    spread = float(weight.sum(axis=1) @ (ys - cy) ** 2 + weight.sum(axis=0) @ (xs - cx) ** 2) / total
    half = max(spec.crop_radius * math.sqrt(spread), 1.0)
    side = max(int(round(2.0 * half)), 1)
    top, left = int(round(cy - side / 2.0)), int(round(cx - side / 2.0))
    out = np.zeros((side, side, c), np.float32)
    y0, y1 = max(top, 0), min(top + side, h)
    x0, x1 = max(left, 0), min(left + side, w)
    if y0 < y1 and x0 < x1:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = f[y0:y1, x0:x1]
    return out
