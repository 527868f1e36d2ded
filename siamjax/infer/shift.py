"""Shift test-time augmentation: an image moved by a few pixels, with the corner pixel filling the border."""
from __future__ import annotations

import numpy as np


def moves(pixels: int) -> list[tuple[int, int]]:
    return [(-pixels, 0), (pixels, 0), (0, -pixels), (0, pixels)]


def shift_image(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """uint8 [N, H, W, C] moved by (dy, dx) pixels (down / right positive); the uncovered border takes
    the value of the corner pixel of each image (the background of centred drawings)."""
    out = np.roll(x, (dy, dx), axis=(1, 2))
    fill = x[:, :1, :1, :]  # [N, 1, 1, C]
    if dy > 0:
        out[:, :dy] = fill
    elif dy < 0:
        out[:, dy:] = fill
    if dx > 0:
        out[:, :, :dx] = fill
    elif dx < 0:
        out[:, :, dx:] = fill
    return out
