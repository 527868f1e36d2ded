"""Synthetic tracking sequences built from the real images in ``shared/data`` (no tracking benchmark can be
downloaded here): a coloured face, character, digit or signature moves smoothly over a cluttered collage
of other images, among look-alike distractors, and is now and then partly covered by passing occluders.

Everything random about sequence ``index`` of ``seed`` is drawn once by :func:`make_spec` from
``np.random.default_rng((seed, index))`` into a :class:`SequenceSpec`; :func:`render` then draws any one
frame from the spec alone (a few ms), so training can take two frames of a random sequence without
generating the rest, and ``render(spec, t)`` is the same whether or not frames ``0..t-1`` were drawn.
``spec.boxes[t]`` (x, y, w, h, top-left corner, pixels) is the tight box of the whole target (occluded
parts included), computed from the very transform used to paste it. :func:`load_sources` gives disjoint
train / test pools (:mod:`siamjax.tracking.synthetic_sources`).

Write sequences in the OTB layout (``DIR/synth_0000/img/0001.jpg``, ``groundtruth_rect.txt``)::

    python -m siamjax.tracking.synthetic --data ../shared/data --split test --num 20 --frames 100 --seed 1 \\
        --out DIR --preview DIR/preview.png
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import pathlib
import sys

import numpy as np
from PIL import Image, ImageFilter

from siamjax.tracking.sequences import write_otb
from siamjax.tracking.synthetic_sources import (KINDS, Sources, colour_field, hull_points, load_sources, object_sprite,
                                                occluder_sprite, pil_rgba, premultiply, random_colour, with_shadow)

__all__ = ["Sources", "load_sources", "Sprite", "SequenceSpec", "make_spec", "render", "generate", "preview", "main",
           "KINDS"]

PAN = 16  # the background is this many px larger than the frame on every side (camera pan)
_NOISE_PAD = 16
EXPOSURE = 0.5  # shutter time in frames: motion blur smears a sprite over this much of its path
MIN_SIZE = 16.0  # px (sqrt of the box area, at 240 px frame height): objects never shrink below it
MAX_OCCLUDED_FRAMES = 20  # an occluder overlaps the target's box for at most this many frames (and T / 2)


@dataclasses.dataclass(frozen=True, eq=False)
class Sprite:
    """One moving image: ``rgba`` (premultiplied, uint8 [h, w, 4]) whose centre sits at ``centers[t]``
    (x, y frame px), scaled by ``scales[t]`` (frame px per sprite px) and turned by ``angles[t]`` radians."""

    rgba: np.ndarray
    centers: np.ndarray  # float32 [T, 2]
    scales: np.ndarray  # float32 [T]
    angles: np.ndarray  # float32 [T]
    kind: str = ""
    source_id: str = ""
    _cache: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    def pil(self) -> Image.Image:
        img = self._cache.get("pil")
        if img is None:
            img = self._cache["pil"] = pil_rgba(self.rgba)
        return img


@dataclasses.dataclass(frozen=True, eq=False)
class SequenceSpec:
    """Every random choice of one sequence (see the module docstring). Frames are drawn bottom to top:
    ``background`` (seen through a window moved by ``pan``), ``distractors``, ``target`` (None: left
    out, e.g. via ``dataclasses.replace``), ``occluders``; then per-frame brightness ``gains`` /
    ``biases``, a colour cast and sensor noise. ``boxes``: float32 [T, 4] x, y, w, h of the target."""

    seed: int
    index: int
    frame_size: tuple[int, int]  # (H, W)
    num_frames: int
    target_kind: str
    boxes: np.ndarray
    target: Sprite | None
    distractors: tuple[Sprite, ...]
    occluders: tuple[Sprite, ...]
    background: np.ndarray  # uint8 [H + 2 PAN, W + 2 PAN, 3]
    pan: np.ndarray  # int32 [T, 2] (y, x) top-left of the view into the background
    gains: np.ndarray  # float32 [T]
    biases: np.ndarray  # float32 [T]
    noise_sigma: float
    noise_seed: int
    noise_offsets: np.ndarray  # int32 [T, 2]
    white_balance: np.ndarray  # float32 [3] per-channel gains (colour cast of the camera)
    source_ids: tuple[str, ...]  # every pool image the sequence shows
    shadow: tuple[float, float, float, float] | None = None  # drop shadows in the sprites: dx, dy, blur, opacity
    _cache: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)


# ----------------------------------------------------------------------------------------
# Geometry


def _frozen(*arrays):
    for a in arrays:
        a.setflags(write=False)


def _trajectory(rng, T: int, hw: tuple[int, int], wh, max_speed: float, inside: float,
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


def _boxes(points: np.ndarray, wh, centers, scales, angles) -> np.ndarray:
    """float32 [T, 4] x, y, w, h: extent of the sprite ``points`` (hull_points) under each frame's transform."""
    q = points - np.array([wh[0] / 2, wh[1] / 2], np.float32)
    c, s = np.cos(angles)[:, None], np.sin(angles)[:, None]
    k = scales[:, None]
    x = k * (c * q[None, :, 0] - s * q[None, :, 1]) + centers[:, 0:1]
    y = k * (s * q[None, :, 0] + c * q[None, :, 1]) + centers[:, 1:2]
    x0, y0 = x.min(1), y.min(1)
    return np.stack([x0, y0, x.max(1) - x0, y.max(1) - y0], 1).astype(np.float32)


def _composite(canvas: np.ndarray, img: Image.Image, center, scale: float, angle: float) -> None:
    """Paste premultiplied ``img`` onto uint8 ``canvas`` [H, W, 3] in place: its centre at ``center``
    (x, y; or [k, 2] centres, averaged: motion blur), scaled and turned (bilinear, PIL's half-pixel
    convention, the one :func:`_boxes` assumes)."""
    H, W = canvas.shape[:2]
    w, h = img.size
    centers = np.asarray(center, np.float64).reshape(-1, 2)
    c, s = math.cos(angle), math.sin(angle)
    ex = scale * (abs(c) * w + abs(s) * h) / 2
    ey = scale * (abs(s) * w + abs(c) * h) / 2
    x0 = max(int(math.floor(centers[:, 0].min() - ex)), 0)
    x1 = min(int(math.ceil(centers[:, 0].max() + ex)), W)
    y0 = max(int(math.floor(centers[:, 1].min() - ey)), 0)
    y1 = min(int(math.ceil(centers[:, 1].max() + ey)), H)
    if x1 <= x0 or y1 <= y0:
        return
    a, b, d, e = c / scale, s / scale, -s / scale, c / scale  # frame -> sprite
    outs = []
    for cx, cy in centers:
        ox, oy = cx - x0, cy - y0
        coeffs = (a, b, w / 2 - a * ox - b * oy, d, e, h / 2 - d * ox - e * oy)
        outs.append(np.asarray(img.transform((x1 - x0, y1 - y0), Image.AFFINE, coeffs, resample=Image.BILINEAR)))
    if len(outs) == 1:
        out = outs[0]
    else:
        out = np.sum(outs, axis=0, dtype=np.uint16)
        out = (out + len(outs) // 2) // len(outs)
    region = canvas[y0:y1, x0:x1]
    mixed = out[..., :3] + (region * (255 - out[..., 3:4].astype(np.uint16)) + 127) // 255
    region[...] = np.minimum(mixed, 255)


def _blur_centers(s: Sprite, t: int) -> np.ndarray:
    """Centre(s) of sprite ``s`` during frame ``t``'s exposure: one, or up to 5 spread along its velocity
    over :data:`EXPOSURE` of a frame when it moves fast enough to smear by more than 1.5 px."""
    T = len(s.centers)
    lo, hi = max(t - 1, 0), min(t + 1, T - 1)
    if hi == lo:
        return s.centers[t]
    v = (s.centers[hi] - s.centers[lo]) / (hi - lo)
    k = int(np.clip(np.ceil(float(np.hypot(*v)) * EXPOSURE / 1.5), 1, 5))
    if k == 1:
        return s.centers[t]
    return s.centers[t] + np.linspace(-EXPOSURE / 2, EXPOSURE / 2, k)[:, None] * v


# ----------------------------------------------------------------------------------------
# Random choices


class _Picker:
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


def _background(rng, sources: Sources, picker: _Picker, hw: tuple[int, int], unit: float) -> np.ndarray:
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
        _composite(canvas, panel, rng.uniform(0, [W, H]), 1.0, rng.normal(0, 0.05))
    n_big, n_small = int(rng.integers(1, 4)), int(rng.integers(18, 45))
    for j in range(n_big + n_small):
        kind = picker.kind()
        size = (rng.uniform(90, 200) if j < n_big else rng.uniform(14, 80)) * unit
        rgba = object_sprite(rng, sources, kind, picker.take(kind), size)
        fade = rng.uniform(0.25, 0.5) if j < n_big else rng.uniform(0.35, 1.0)
        img = pil_rgba(np.rint(rgba.astype(np.float32) * fade).astype(np.uint8))
        _composite(canvas, img, rng.uniform(0, [W, H]), 1.0, rng.normal(0, 0.35))
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


def _occluder(rng, sources: Sources, picker: _Picker, boxes: np.ndarray, hw, unit: float) -> Sprite | None:
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


def _scale_range(wh, size: float, hw, unit: float) -> tuple[float, float]:
    """x0.6..x1.6, but at most 60% of the frame's height / width and at least :data:`MIN_SIZE` px."""
    hi = float(min(1.6, 0.6 * hw[1] / wh[0], 0.6 * hw[0] / wh[1]))
    lo = max(min(0.6, 0.6 * hi), MIN_SIZE * unit / size)
    return min(lo, 0.9 * hi), hi


def make_spec(sources: Sources, seed: int, index: int, num_frames: int = 100,
              frame_size: tuple[int, int] = (240, 320)) -> SequenceSpec:
    """Draw every random choice of sequence ``index`` of ``seed`` (only from
    ``np.random.default_rng((seed, index))``): target image, looks and trajectory (start size 24..64 px,
    scale x0.6..x1.6, speed <= 8 px / frame, at least ~80% in the frame), 2-5 distractors (at least one
    of the target's kind), 0-2 occluders, background, camera pan, brightness and noise."""
    T = int(num_frames)
    H, W = (int(frame_size[0]), int(frame_size[1]))
    if T < 1 or H < 32 or W < 32:
        raise ValueError(f"need num_frames >= 1 and a frame of at least 32 x 32 px, got {T}, {(H, W)}")
    rng = np.random.default_rng((int(seed), int(index)))
    unit = min(1.0, min(H, W) / 240.0)
    picker = _Picker(rng, sources)
    light, dist = rng.uniform(0, 2 * np.pi), rng.uniform(1.5, 6.0) * unit
    shadow = ((float(dist * np.cos(light)), float(dist * np.sin(light)), float(rng.uniform(0.8, 2.5) * unit),
               float(rng.uniform(0.3, 0.6))) if rng.random() < 0.6 else None)

    def shaded(rgba, pts=None):  # the sprite over its drop shadow, and its hull points on the padded canvas
        pts = hull_points(rgba[..., 3]) if pts is None else pts
        if shadow is None:
            return rgba, pts
        out, pad = with_shadow(rgba, *shadow)
        return out, pts + pad

    kind = picker.kind()
    ti = picker.take(kind)
    picker.reserved[kind] = ti
    size0 = rng.uniform(24, 64) * unit
    colour_seed = int(rng.integers(2 ** 63))
    rgba, pts = shaded(object_sprite(rng, sources, kind, ti, size0, colour_rng=np.random.default_rng(colour_seed)))
    wh = (rgba.shape[1], rgba.shape[0])
    centers, scales, angles = _trajectory(rng, T, (H, W), wh, rng.uniform(1.0, 8.0) * unit, 0.9,
                                          _scale_range(wh, size0, (H, W), unit), np.deg2rad(rng.uniform(0, 10)))
    target = Sprite(rgba, centers, scales, angles, kind, sources.source_id(kind, ti))
    boxes = _boxes(pts, wh, centers, scales, angles)

    distractors = []
    n_distract = int(rng.integers(2, 6))
    for j in range(n_distract):
        dkind = kind if j == 0 or rng.random() < 0.3 else picker.kind()
        same_palette = dkind == kind and rng.random() < 0.4
        di = picker.take(dkind)
        d_rgba, _ = shaded(object_sprite(rng, sources, dkind, di, size0 * rng.uniform(0.7, 1.35),
                                         colour_rng=np.random.default_rng(colour_seed) if same_palette else None))
        dwh = (d_rgba.shape[1], d_rgba.shape[0])
        d = _trajectory(rng, T, (H, W), dwh, rng.uniform(0.5, 6.0) * unit, 0.4, _scale_range(dwh, size0, (H, W), unit),
                        np.deg2rad(rng.uniform(0, 15)))
        distractors.append(Sprite(d_rgba, *d, dkind, sources.source_id(dkind, di)))

    occluders = []
    for _ in range(int(rng.choice([0, 1, 1, 1, 2, 2]))):
        o = _occluder(rng, sources, picker, boxes, (H, W), unit)
        if o is not None:
            occluders.append(dataclasses.replace(o, rgba=shaded(o.rgba, np.zeros((1, 2), np.float32))[0]))

    background = _background(rng, sources, picker, (H + 2 * PAN, W + 2 * PAN), unit)
    pan = np.empty((T, 2), np.int32)
    p, v = rng.uniform(0, 2 * PAN, 2), rng.normal(0, 0.4, 2) * (rng.random() < 0.7)
    for t in range(T):
        pan[t] = np.rint(p)
        v = np.clip(0.9 * v + rng.normal(0, 0.1, 2) * (v != 0), -1.5, 1.5)
        p = p + v
        v = np.where((p < 0) | (p > 2 * PAN), -v, v)
        p = np.clip(p, 0, 2 * PAN)

    tt = np.arange(T, dtype=np.float32)
    log_gain = rng.uniform(0, 0.2) * np.sin(2 * np.pi * tt / rng.uniform(30, 200) + rng.uniform(0, 2 * np.pi))
    if rng.random() < 0.25:  # a light switched on or off: a step over a few frames
        step = np.clip((tt - rng.uniform(0, T)) / 4, 0, 1)
        log_gain = log_gain + rng.choice([-1, 1]) * rng.uniform(0.15, 0.35) * step
    gains = np.exp(log_gain).astype(np.float32)
    biases = rng.uniform(-12, 12) * np.sin(2 * np.pi * tt / rng.uniform(40, 200) + rng.uniform(0, 2 * np.pi))
    biases = biases.astype(np.float32)
    noise_sigma = float(rng.uniform(0, 7))
    noise_offsets = rng.integers(0, 2 * _NOISE_PAD, (T, 2)).astype(np.int32)
    white_balance = np.exp(rng.normal(0, 0.07, 3)).astype(np.float32)

    for s in [target, *distractors, *occluders]:
        _frozen(s.rgba, s.centers, s.scales, s.angles)
    _frozen(boxes, background, pan, gains, biases, noise_offsets, white_balance)
    ids = tuple(dict.fromkeys([target.source_id] + picker.ids))
    return SequenceSpec(int(seed), int(index), (H, W), T, kind, boxes, target, tuple(distractors), tuple(occluders),
                        background, pan, gains, biases, noise_sigma, int(rng.integers(2 ** 63)), noise_offsets,
                        white_balance, ids, shadow)


# ----------------------------------------------------------------------------------------
# Drawing


def _noise(spec: SequenceSpec) -> np.ndarray:
    noise = spec._cache.get("noise")
    if noise is None:
        H, W = spec.frame_size
        shape = (H + 2 * _NOISE_PAD, W + 2 * _NOISE_PAD, 3)
        g = np.random.default_rng(spec.noise_seed).normal(0, spec.noise_sigma, shape)
        noise = spec._cache["noise"] = np.rint(g).astype(np.int16)
    return noise


def render(spec: SequenceSpec, t: int) -> np.ndarray:
    """Frame ``t`` of the sequence, uint8 [H, W, 3], drawn from ``spec`` alone (deterministic)."""
    t = int(t)
    if not 0 <= t < spec.num_frames:
        raise IndexError(f"frame {t} out of range for a sequence of {spec.num_frames} frames")
    H, W = spec.frame_size
    oy, ox = (int(v) for v in spec.pan[t])
    frame = spec.background[oy:oy + H, ox:ox + W].copy()
    layers = [*spec.distractors, *([spec.target] if spec.target is not None else []), *spec.occluders]
    for s in layers:
        _composite(frame, s.pil(), _blur_centers(s, t), float(s.scales[t]), float(s.angles[t]))
    gain = spec.gains[t] * spec.white_balance  # [3]
    luts = np.clip(np.arange(256, dtype=np.float32)[None, :] * gain[:, None] + spec.biases[t], 0, 255).astype(np.uint8)
    if spec.noise_sigma >= 0.5:
        ny, nx = (int(v) for v in spec.noise_offsets[t])
        noisy = frame.astype(np.int16)
        noisy += _noise(spec)[ny:ny + H, nx:nx + W]
        np.clip(noisy, 0, 255, out=noisy)
        frame = noisy
    out = np.empty((H, W, 3), np.uint8)
    for c in range(3):
        out[..., c] = luts[c][frame[..., c]]
    return out


def generate(sources: Sources, seed: int, index: int, num_frames: int = 100,
             frame_size: tuple[int, int] = (240, 320)) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 [T, H, W, 3], boxes float32 [T, 4] x, y, w, h) of sequence ``index`` of ``seed``."""
    spec = make_spec(sources, seed, index, num_frames, frame_size)
    frames = np.stack([render(spec, t) for t in range(spec.num_frames)])
    return frames, np.array(spec.boxes, np.float32)


def preview(specs, path, columns: int = 6) -> pathlib.Path:
    """PNG grid: one row per spec, ``columns`` frames spread over it, the target's box drawn in green
    (:func:`siamjax.tracking.plots.frame_strip`, the tiles numbered by frame)."""
    from siamjax.tracking.plots import frame_strip

    frames, boxes, numbers = [], [], []
    for spec in specs:
        for t in np.linspace(0, spec.num_frames - 1, columns).round().astype(int):
            frames.append(render(spec, int(t)))
            boxes.append(spec.boxes[t])
            numbers.append(int(t))
    return frame_strip(frames, np.stack(boxes), None, path, columns=columns, indices=numbers)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m siamjax.tracking.synthetic", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("SIAMJAX_DATA", "../shared/data"),
                    help="folder holding omniglot/, att_faces/, mnist_test/, signatures_sigcomp2011_dutch/")
    ap.add_argument("--split", choices=("train", "test"), default="test")
    ap.add_argument("--num", type=int, default=20, help="sequences to write")
    ap.add_argument("--start", type=int, default=0, help="index of the first sequence")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"), help="frame size")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="write DIR/synth_NNNN/{img/0001.jpg..., groundtruth_rect.txt}")
    ap.add_argument("--preview", help="write a PNG grid of a few frames of the first sequences, boxes in green")
    ap.add_argument("--preview_rows", type=int, default=4)
    args = ap.parse_args(argv)
    if not args.out and not args.preview:
        ap.error("nothing to do: give --out DIR and / or --preview PATH.png")
    if args.num < 1 or args.frames < 1:
        ap.error("--num and --frames must be >= 1")
    try:
        sources = load_sources(args.data, args.split)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    indices = range(args.start, args.start + args.num)
    shown = {i: None for i in list(indices)[:args.preview_rows]} if args.preview else {}

    def spec_of(i):
        spec = shown.get(i) or make_spec(sources, args.seed, i, args.frames, tuple(args.size))
        if i in shown:
            shown[i] = spec
        return spec

    if args.out:
        from tqdm import tqdm

        out = pathlib.Path(args.out)
        with tqdm(total=args.num * args.frames, unit="frame", desc=f"synthetic {args.split}") as bar:
            for i in indices:
                spec = spec_of(i)

                def frames(spec=spec):
                    for t in range(spec.num_frames):
                        yield render(spec, t)
                        bar.update(1)

                write_otb(out / f"synth_{i:04d}", frames(), spec.boxes)
        print(f"wrote {args.num} sequences of {args.frames} frames to {out}")
    if args.preview:
        path = preview([spec_of(i) for i in shown], args.preview)
        print(f"preview: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
