"""Square crops around a target, resized, as SiamFC takes them (training pairs and the tracker).

A crop is ``(cx, cy, size)``: centre and side in frame pixels, in continuous coordinates (x right,
y down; pixel ``i`` covers ``[i, i + 1)``, so a box ``x, y, w, h`` has its centre at
``(x + w / 2, y + h / 2)``). Outside the frame the crop is filled with the frame's mean colour, as in
SiamFC.
"""
from __future__ import annotations

import numpy as np


def context_size(w, h, context: float = 0.5):
    """SiamFC's exemplar side: ``sqrt((w + p) * (h + p))`` with ``p = context * (w + h)``, in px."""
    p = context * (np.asarray(w, np.float64) + np.asarray(h, np.float64))
    return np.sqrt((w + p) * (h + p))


def sample_grid(c: float, sides, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Where the ``out`` pixels of a crop centred on continuous coordinate ``c`` sample one axis, for
    each crop side in ``sides`` ``[S]`` (px): (int64 floor ``[S, out]``, float32 fraction ``[S, out]``)
    in pixel-index coordinates (pixel i's centre at i). Computed in float64."""
    k = (np.arange(out, dtype=np.float64) - (out - 1) / 2)[None, :] * (np.asarray(sides, np.float64).reshape(-1, 1) / out)
    pos = c - 0.5 + k  # continuous -> pixel-index coordinates
    lo = np.floor(pos)
    return lo.astype(np.int64), (pos - lo).astype(np.float32)


def crop_resize(frame: np.ndarray, cx: float, cy: float, size: float, out: int,
                fill: np.ndarray | None = None) -> np.ndarray:
    """Bilinear crop of the square ``size`` px side centred on (cx, cy), resized to ``out x out``.

    frame: uint8 or float ``[H, W, C]``. Output pixel k covers ``c + (k - out / 2) * size / out`` to
    ``c + (k + 1 - out / 2) * size / out`` and takes the bilinear value at its centre. ``fill``: ``[C]`` colour outside the frame (default the
    frame's mean). Returns float32 ``[out, out, C]`` in the frame's units (0..255 for uint8).
    """
    if size <= 0 or not np.isfinite(size):
        raise ValueError(f"crop size must be a positive number of pixels, got {size}")
    f = np.asarray(frame, np.float32)
    h, w, ch = f.shape
    fill = f.reshape(-1, ch).mean(0) if fill is None else np.asarray(fill, np.float32)
    x0, wx = (a[0] for a in sample_grid(cx, [size], out))
    y0, wy = (a[0] for a in sample_grid(cy, [size], out))
    wx, wy = wx[None, :, None], wy[:, None, None]
    # pad one pixel of fill around the frame; indices beyond it land on the fill pixel
    padded = np.empty((h + 2, w + 2, ch), np.float32)
    padded[...] = fill
    padded[1:-1, 1:-1] = f
    xi0, xi1 = np.clip(x0 + 1, 0, w + 1), np.clip(x0 + 2, 0, w + 1)
    yi0, yi1 = np.clip(y0 + 1, 0, h + 1), np.clip(y0 + 2, 0, h + 1)
    top = padded[yi0][:, xi0] * (1 - wx) + padded[yi0][:, xi1] * wx
    bot = padded[yi1][:, xi0] * (1 - wx) + padded[yi1][:, xi1] * wx
    return top * (1 - wy) + bot * wy
