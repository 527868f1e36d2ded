"""Drawing synthetic tracking frames: the :class:`Sprite` and :class:`SequenceSpec` records that
:func:`siamjax.tracking.synthetic.make_spec` fills, and :func:`render`, which draws frame ``t`` of a
spec from the spec alone (uint8 [H, W, 3]; positions in frame pixels x, y; angles in radians).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image

from siamjax.tracking.synthetic_sources import pil_rgba

__all__ = ["EXPOSURE", "NOISE_PAD", "SequenceSpec", "Sprite", "composite", "render"]

NOISE_PAD = 16  # the sensor-noise field is this many px larger than the frame on every side
EXPOSURE = 0.5  # shutter time in frames: motion blur smears a sprite over this much of its path


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
    """Every random choice of one sequence (see :mod:`siamjax.tracking.synthetic`). Frames are drawn bottom to top:
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
    background: np.ndarray  # uint8 [H + 2 PAN, W + 2 PAN, 3] (PAN: siamjax.tracking.synthetic.PAN)
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


def composite(canvas: np.ndarray, img: Image.Image, center, scale: float, angle: float) -> None:
    """Paste premultiplied ``img`` onto uint8 ``canvas`` [H, W, 3] in place: its centre at ``center``
    (x, y; or [k, 2] centres, averaged: motion blur), scaled and turned (bilinear, PIL's half-pixel
    convention, the one :func:`siamjax.tracking.synthetic_scene.sprite_boxes` assumes)."""
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


def _noise(spec: SequenceSpec) -> np.ndarray:
    noise = spec._cache.get("noise")
    if noise is None:
        H, W = spec.frame_size
        shape = (H + 2 * NOISE_PAD, W + 2 * NOISE_PAD, 3)
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
        composite(frame, s.pil(), _blur_centers(s, t), float(s.scales[t]), float(s.angles[t]))
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
