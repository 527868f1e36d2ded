"""SiamFC training pairs: an exemplar crop and a search crop of one object from two frames of a
sequence at most ``max_gap`` frames apart, with scale and translation jitter.

Every row of a batch is a function of ``(seed, step, row)`` only, so a resumed run repeats an
uninterrupted one and each process can build only its rows of the global batch.
"""
from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from siamjax.tracking.crops import context_size, crop_resize


class SequenceSource(Protocol):
    """Sequences by index: ``len``, ``length(i)`` frames, ``frame(i, t)`` uint8 ``[H, W, 3]``,
    ``box(i, t)`` float ``[4]`` x, y, w, h (NaN where the target is absent)."""

    def __len__(self) -> int: ...

    def length(self, i: int) -> int: ...

    def frame(self, i: int, t: int) -> np.ndarray: ...

    def box(self, i: int, t: int) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class PairSettings:
    """Crop sides (px), SiamFC's context margin, the largest frame gap, and the jitters: the search
    crop's side varies by ``exp(U(-scale_jitter, scale_jitter))`` and its centre moves by up to
    ``shift_px`` search-crop pixels in x and y (the label map follows the target)."""

    exemplar_size: int = 63
    search_size: int = 127
    context: float = 0.5
    max_gap: int = 50
    scale_jitter: float = 0.08
    shift_px: float = 24.0

    def __post_init__(self):
        if self.exemplar_size < 1 or self.search_size <= self.exemplar_size:
            raise ValueError(f"need 0 < exemplar_size < search_size, got {self.exemplar_size}, {self.search_size}")
        if self.max_gap < 0 or self.scale_jitter < 0 or self.shift_px < 0:
            raise ValueError("max_gap, scale_jitter and shift_px must be >= 0")


def _valid(box) -> bool:
    return bool(np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0)


def sequence_window(step: int, count: int, window: int, window_steps: int) -> tuple[int, int]:
    """(first, size) of the sequences step ``step`` draws from: all ``count`` of them when ``window``
    is 0, else ``window`` consecutive ones (modulo ``count``) that move on every ``window_steps``
    steps, so that generated sequences are made once, used for a while, and then replaced."""
    if window <= 0 or window >= count:
        return 0, count
    return (step // window_steps) * window % count, window


def make_pair(source: SequenceSource, rng: np.random.Generator, s: PairSettings, tries: int = 20,
              first: int = 0, size: int | None = None):
    """One pair from the sequences ``first .. first + size - 1`` (modulo their count; default all):
    (exemplar uint8 ``[E, E, 3]``, search uint8 ``[X, X, 3]``, the target's position relative to the
    search crop's centre in search-crop px ``[2]`` (x, y))."""
    size = len(source) if size is None else size
    for _ in range(tries):
        i = (first + int(rng.integers(size))) % len(source)
        n = source.length(i)
        t1 = int(rng.integers(n))
        t2 = int(np.clip(t1 + rng.integers(-s.max_gap, s.max_gap + 1), 0, n - 1))
        b1, b2 = np.asarray(source.box(i, t1), np.float64), np.asarray(source.box(i, t2), np.float64)
        if _valid(b1) and _valid(b2):
            break
    else:
        raise ValueError(f"no frame pair with a visible target found in {tries} draws: do the sequences "
                         "hold ground-truth boxes (not all NaN, positive width and height)?")
    size_z = float(context_size(b1[2], b1[3], s.context))
    z = crop_resize(source.frame(i, t1), b1[0] + b1[2] / 2, b1[1] + b1[3] / 2, size_z, s.exemplar_size)
    size_x = float(context_size(b2[2], b2[3], s.context)) * s.search_size / s.exemplar_size
    size_x *= float(np.exp(rng.uniform(-s.scale_jitter, s.scale_jitter)))
    shift = rng.uniform(-s.shift_px, s.shift_px, size=2)  # search-crop px
    px = size_x / s.search_size  # frame px per search-crop px
    cx, cy = b2[0] + b2[2] / 2 + shift[0] * px, b2[1] + b2[3] / 2 + shift[1] * px
    x = crop_resize(source.frame(i, t2), cx, cy, size_x, s.search_size)
    as_u8 = lambda a: np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return as_u8(z), as_u8(x), (-shift).astype(np.float32)


def make_batch_fn(source: SequenceSource, settings: PairSettings, batch_size: int, seed: int,
                  rows: slice = slice(None), window: int = 0, window_steps: int = 1):
    """``step -> {"exemplar": uint8 [b, E, E, 3], "search": uint8 [b, X, X, 3], "offset": float32 [b, 2]}``
    for the rows ``rows`` of the global batch (b of them); row r of step s from ``(seed, s, r)``, its
    sequence from :func:`sequence_window` ``(s, len(source), window, window_steps)``."""
    rows = range(batch_size)[rows]

    def batch(step: int) -> dict:
        first, size = sequence_window(step, len(source), window, window_steps)
        out = [make_pair(source, np.random.default_rng((seed, step, r)), settings, first=first, size=size)
               for r in rows]
        return {"exemplar": np.stack([o[0] for o in out]), "search": np.stack([o[1] for o in out]),
                "offset": np.stack([o[2] for o in out])}

    return batch
