"""Axis-aligned box helpers (pure NumPy).

A box is ``x, y, w, h`` in pixels, float, along the last axis (``[..., 4]``): ``x, y`` is the top-left
corner, ``w, h`` the width and height, so the box covers ``[x, x + w) x [y, y + h)``. Leading axes
broadcast. A row with a NaN stands for "no box" (target absent, unlabelled or lost) and gives NaN
results.
"""
from __future__ import annotations

import numpy as np

__all__ = ["center_error", "centers", "iou", "to_corners"]


def _boxes(b) -> np.ndarray:
    """float64 [..., 4], checked."""
    b = np.asarray(b, np.float64)
    if b.ndim == 0 or b.shape[-1] != 4:
        raise ValueError(f"boxes must be [..., 4] (x, y, w, h), got shape {b.shape}")
    return b


def to_corners(b) -> np.ndarray:
    """``x, y, w, h`` [..., 4] -> ``x1, y1, x2, y2`` [..., 4] (px, float64), with x2 = x + w, y2 = y + h."""
    b = _boxes(b)
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


def centers(b) -> np.ndarray:
    """Box centres [..., 2] = (x + w / 2, y + h / 2), px, float64."""
    b = _boxes(b)
    return b[..., :2] + b[..., 2:] / 2


def iou(a, b) -> np.ndarray:
    """Intersection over union of ``a`` and ``b`` [..., 4] (broadcast), elementwise -> float64 [...].

    0 when the boxes do not overlap (touching edges included) or when the union has zero area; a
    zero-area box therefore always gives 0. Negative widths / heights count as 0. NaN when either box
    has a NaN."""
    a, b = _boxes(a), _boxes(b)
    ca, cb = to_corners(a), to_corners(b)
    iw = np.clip(np.minimum(ca[..., 2], cb[..., 2]) - np.maximum(ca[..., 0], cb[..., 0]), 0, None)
    ih = np.clip(np.minimum(ca[..., 3], cb[..., 3]) - np.maximum(ca[..., 1], cb[..., 1]), 0, None)
    inter = iw * ih
    area_a = np.clip(a[..., 2], 0, None) * np.clip(a[..., 3], 0, None)
    area_b = np.clip(b[..., 2], 0, None) * np.clip(b[..., 3], 0, None)
    union = area_a + area_b - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    nan = np.isnan(a).any(-1) | np.isnan(b).any(-1)
    return np.where(nan, np.nan, out)


def center_error(a, b) -> np.ndarray:
    """Euclidean distance between the centres of ``a`` and ``b`` [..., 4] (broadcast) -> float64 [..., ] px.

    NaN when either box has a NaN."""
    d = centers(a) - centers(b)
    return np.hypot(d[..., 0], d[..., 1])
