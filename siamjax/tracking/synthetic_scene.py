"""The random pieces of one synthetic tracking sequence, drawn from a ``np.random.Generator``: smooth
sprite motion (:func:`trajectory`, centres in frame px, scale, angle in radians) and the target's boxes
under it (:func:`sprite_boxes`, x, y, w, h px), distinct pool images (:class:`Picker`), the cluttered
background (:func:`make_background`) and occluders crossing the target (:func:`occluder`).
:func:`siamjax.tracking.synthetic.make_spec` calls them in a fixed order.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

from siamjax.tracking.synthetic_render import Sprite, composite
from siamjax.tracking.synthetic_sources import (Sources, colour_field, object_sprite, occluder_sprite, pil_rgba,
                                                premultiply, random_colour)

__all__ = ["MAX_OCCLUDED_FRAMES", "MIN_SIZE", "Picker", "make_background", "freeze", "occluder", "scale_range",
           "sprite_boxes", "trajectory"]

MIN_SIZE = 16.0  # px (sqrt of the box area, at 240 px frame height): objects never shrink below it
MAX_OCCLUDED_FRAMES = 20  # an occluder overlaps the target's box for at most this many frames (and T / 2)


def freeze(*arrays):
    for a in arrays:
        a.setflags(write=False)


def trajectory(rng, T: int, hw: tuple[int, int], wh, max_speed: float, inside: float,
                scale_range=(0.6, 1.6), max_angle: float = 0.0):
    """Smooth motion of a sprite whose unscaled size is ``wh``: centre float32 [T, 2], scale [T], angle [T].
    Velocity with random (smoothed) acceleration, speed <= max_speed, bouncing so that at least ``inside``
    of the sprite's width and height stays in the frame; log-scale and angle drift smoothly."""
    H, W = hw
    lo, hi = np.log(scale_range[0]), np.log(scale_range[1])
    scales = np.empty(T, np.float32)
    ls, vs = float(np.clip(0.0, lo, hi)), rng.normal(0.0, 0.008)
    for t in range(T):
        scales[t] = math.exp(ls)
        vs = float(np.clip(0.92 * vs + rng.normal(0.0, 0.003), -0.02, 0.02))
        ls += vs
        if ls < lo or ls > hi:
            ls, vs = float(np.clip(2 * np.clip(ls, lo, hi) - ls, lo, hi)), -vs
    amp = rng.uniform(0.0, max_angle) if rng.random() < 0.6 else 0.0
    tt = np.arange(T, dtype=np.float32)
    angles = (amp * np.sin(2 * np.pi * tt / rng.uniform(40, 160) + rng.uniform(0, 2 * np.pi))).astype(np.float32)
    ca, sa = np.abs(np.cos(angles)), np.abs(np.sin(angles))
    half = np.stack([ca * wh[0] + sa * wh[1], sa * wh[0] + ca * wh[1]], 1) * scales[:, None] / 2  # [T, 2]
    k = 2 * inside - 1  # centre at least k * half from the edge: at most 1 - inside of the extent outside
    lows, highs = k * half, np.array([W, H], np.float32) - k * half
    highs = np.maximum(highs, lows)
    p = rng.uniform(lows[0], highs[0])
    direction = rng.uniform(0, 2 * np.pi)
    v = np.array([np.cos(direction), np.sin(direction)]) * rng.uniform(0.2, 1.0) * max_speed
    acc = np.zeros(2)
    centers = np.empty((T, 2), np.float32)
    for t in range(T):
        centers[t] = p
        acc = 0.7 * acc + rng.normal(0.0, 0.12 * max_speed, 2)
        v = v + acc
        speed = float(np.hypot(*v))
        if speed > max_speed:
            v *= max_speed / speed
        p = p + v
        if t + 1 < T:
            lo2, hi2 = lows[t + 1], highs[t + 1]
            for a in range(2):
                if p[a] < lo2[a]:
                    p[a], v[a] = 2 * lo2[a] - p[a], abs(v[a])
                elif p[a] > hi2[a]:
                    p[a], v[a] = 2 * hi2[a] - p[a], -abs(v[a])
            p = np.clip(p, lo2, hi2)
    return centers, scales, angles


def sprite_boxes(points: np.ndarray, wh, centers, scales, angles) -> np.ndarray:
    """float32 [T, 4] x, y, w, h: extent of the sprite ``points`` (hull_points) under each frame's transform."""
    q = points - np.array([wh[0] / 2, wh[1] / 2], np.float32)
    c, s = np.cos(angles)[:, None], np.sin(angles)[:, None]
    k = scales[:, None]
    x = k * (c * q[None, :, 0] - s * q[None, :, 1]) + centers[:, 0:1]
    y = k * (s * q[None, :, 0] + c * q[None, :, 1]) + centers[:, 1:2]
    x0, y0 = x.min(1), y.min(1)
    return np.stack([x0, y0, x.max(1) - x0, y.max(1) - y0], 1).astype(np.float32)


class Picker:
    """Distinct pool images per kind; the target's is never shown again (when the pool has another)."""

    def __init__(self, rng, sources: Sources):
        self.rng, self.sources = rng, sources
        self.used: dict[str, set[int]] = {k: set() for k in sources.kinds}
        self.reserved: dict[str, int] = {}
        self.ids: list[str] = []

    def take(self, kind: str) -> int:
        n = self.sources.count(kind)
        i = int(self.rng.integers(n))
        for _ in range(8):
            if i not in self.used[kind]:
                break
            i = int(self.rng.integers(n))
        if self.reserved.get(kind) == i and n > 1:
            i = (i + 1 + int(self.rng.integers(n - 1))) % n
        self.used[kind].add(i)
        self.ids.append(self.sources.source_id(kind, i))
        return i

    def kind(self) -> str:
        kinds = self.sources.kinds
        return kinds[int(self.rng.integers(len(kinds)))]


def make_background(rng, sources: Sources, picker: Picker, hw: tuple[int, int], unit: float) -> np.ndarray:
    """A cluttered static scene: shaded base with colour blotches, a few large panels, a collage of
    tinted pool images of every kind (some big and faint, most object-sized), partly desaturated,
    optional blur and grain."""
    H, W = hw
    base = colour_field(rng, H, W, random_colour(rng, sat=(0.0, 0.7), val=(0.2, 0.9)), jitter=0.35, noise=0.0)
    blotch = Image.fromarray(np.rint(rng.random((3, 4, 3)) * 255).astype(np.uint8)).resize((W, H), Image.BICUBIC)
    base = base + (np.asarray(blotch, np.float32) / 255.0 - base) * rng.uniform(0.1, 0.5)
    canvas = np.rint(np.clip(base, 0, 1) * 255).astype(np.uint8)
    for _ in range(int(rng.integers(1, 6))):  # panels: walls, tables, signs
        pw, ph = int(W * rng.uniform(0.15, 0.7)), int(H * rng.uniform(0.15, 0.7))
        rgb = colour_field(rng, ph, pw, random_colour(rng, sat=(0.0, 0.8), val=(0.1, 1.0)), jitter=0.15, noise=0.02)
        panel = pil_rgba(premultiply(rgb * rng.uniform(0.4, 0.9), np.full((ph, pw), 1.0, np.float32)))
        panel = pil_rgba((np.asarray(panel).astype(np.float32) * rng.uniform(0.4, 0.9)).astype(np.uint8))
        composite(canvas, panel, rng.uniform(0, [W, H]), 1.0, rng.normal(0, 0.05))
    n_big, n_small = int(rng.integers(1, 4)), int(rng.integers(18, 45))
    for j in range(n_big + n_small):
        kind = picker.kind()
        size = (rng.uniform(90, 200) if j < n_big else rng.uniform(14, 80)) * unit
        rgba = object_sprite(rng, sources, kind, picker.take(kind), size)
        fade = rng.uniform(0.25, 0.5) if j < n_big else rng.uniform(0.35, 1.0)
        img = pil_rgba(np.rint(rgba.astype(np.float32) * fade).astype(np.uint8))
        composite(canvas, img, rng.uniform(0, [W, H]), 1.0, rng.normal(0, 0.35))
    grey = canvas.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    canvas = grey[..., None] + (canvas - grey[..., None]) * rng.uniform(0.35, 1.0)  # desaturate
    canvas = np.rint(np.clip(canvas, 0, 255)).astype(np.uint8)
    img = Image.fromarray(canvas)
    if rng.random() < 0.7:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.6) * max(unit, 0.5)))
    out = np.asarray(img).astype(np.int16)
    grain = rng.uniform(0, 6)
    if grain > 0.5:
        out += np.rint(rng.normal(0, grain, (H, W, 1))).astype(np.int16)
    return np.clip(out, 0, 255).astype(np.uint8)


def occluder(rng, sources: Sources, picker: Picker, boxes: np.ndarray, hw, unit: float) -> Sprite | None:
    """A foreground patch on a straight path across the target's around a random frame, placed (along the
    normal of its path) so that it covers at most half of the target's box at any frame (ideally 20-50%)
    and overlaps it for at most :data:`MAX_OCCLUDED_FRAMES` frames. None if no try finds such a path."""
    T = len(boxes)
    tt = np.arange(T, dtype=np.float32)[None, :] - 0.0
    area = np.maximum(boxes[:, 2] * boxes[:, 3], 1e-6)
    max_frames = min(MAX_OCCLUDED_FRAMES, max(T // 2, 1))
    for _ in range(4):
        tm = int(rng.integers(int(0.1 * T), max(int(0.9 * T), int(0.1 * T) + 1)))
        bx, by, bw, bh = (float(v) for v in boxes[tm])
        if rng.random() < 0.35:  # a pole or post sliding sideways
            ow, oh = bw * rng.uniform(0.25, 0.5), bh * rng.uniform(1.3, 3.0)
            phi = 0.0 if rng.random() < 0.5 else np.pi
        else:
            ow, oh = bw * rng.uniform(0.5, 1.3), bh * rng.uniform(0.5, 1.3)
            phi = rng.uniform(-0.6, 0.6) + (np.pi if rng.random() < 0.5 else 0.0)
            phi += np.pi / 2 if rng.random() < 0.3 else 0.0
        ow, oh = max(int(round(ow)), 3), max(int(round(oh)), 3)
        speed = float(np.clip((bw + ow) / rng.uniform(5, 16), 2.0 * unit, 14.0 * unit))
        v = speed * np.array([np.cos(phi), np.sin(phi)], np.float32)
        n = np.array([-np.sin(phi), np.cos(phi)], np.float32)
        reach = (bw + bh + ow + oh) / 2
        offsets = np.linspace(-reach, reach, 61, dtype=np.float32)[:, None, None]
        pos = np.array([bx + bw / 2, by + bh / 2], np.float32) + offsets * n + (tt - tm)[..., None] * v  # [61, T, 2]
        ix = np.minimum(pos[..., 0] + ow / 2, boxes[:, 0] + boxes[:, 2]) - np.maximum(pos[..., 0] - ow / 2, boxes[:, 0])
        iy = np.minimum(pos[..., 1] + oh / 2, boxes[:, 1] + boxes[:, 3]) - np.maximum(pos[..., 1] - oh / 2, boxes[:, 1])
        cover = np.clip(ix, 0, None) * np.clip(iy, 0, None) / area  # [61, T]
        peak, frames = cover.max(axis=1), (cover > 0).sum(axis=1)
        ok = (peak > 0.05) & (peak <= 0.5) & (frames <= max_frames)
        if ok.any():
            err = np.where(ok, np.abs(peak - rng.uniform(0.2, 0.5)), np.inf)
            best = pos[int(err.argmin())]
            break
    else:
        return None
    texture = None
    if rng.random() < 0.5:
        kind = picker.kind()
        texture = sources.image(kind, picker.take(kind))
    rgba = occluder_sprite(rng, ow, oh, texture)
    return Sprite(rgba, best.astype(np.float32), np.ones(T, np.float32), np.zeros(T, np.float32), "occluder")


def scale_range(wh, size: float, hw, unit: float) -> tuple[float, float]:
    """x0.6..x1.6, but at most 60% of the frame's height / width and at least :data:`MIN_SIZE` px."""
    hi = float(min(1.6, 0.6 * hw[1] / wh[0], 0.6 * hw[0] / wh[1]))
    lo = max(min(0.6, 0.6 * hi), MIN_SIZE * unit / size)
    return min(lo, 0.9 * hi), hi
