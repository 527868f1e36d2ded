"""The SiamFC tracker (Bertinetto et al. 2016): one exemplar, a few scaled search crops per frame.

State: the target centre ``(cx, cy)`` and a scale ``k`` relative to the first frame, so that the
target is ``k * (w0, h0)`` px and the exemplar side ``s_z = k * context_size(w0, h0)`` px. Crops follow
:mod:`siamjax.tracking.crops`: centred on the target centre ``(x + w / 2, y + h / 2)``, side in frame
px, mean-colour fill (the first frame's mean, kept for the whole sequence).

Every frame: search crops of side ``s_x * f`` for the scale factors ``f = scale_step ** (i - (S-1)/2)``
(``s_x = s_z * search_size / exemplar_size``), resized to ``search_size`` px; the net's response maps
``[S, r, r]``; each upsampled (bicubic) to ``R = r * response_up``; the peaks of the non-unit scales
penalised; the best scale's map normalised to sum 1 and blended with a Hann window; its argmax is the
new centre (:func:`peak_to_displacement`), and ``k`` moves a share ``scale_lr`` of the way to
``k * f_best``. The crops and the map processing run as two jitted programs, compiled once per frame
shape (the first compile happens in :meth:`SiamFCTracker.init`).
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from siamjax.tracking.crops import context_size, crop_resize, sample_grid

__all__ = [
    "SiamFCTracker",
    "TrackerSettings",
    "hann_window",
    "locate_peak",
    "peak_to_displacement",
    "penalised_peaks",
    "scale_factors",
    "search_crops",
    "smoothed_scale",
]


@dataclasses.dataclass(frozen=True)
class TrackerSettings:
    """SiamFC's published tracking hyper-parameters (SiamFC-3s).

    scales: number of search scales S (odd: the middle one is 1). scale_step: ratio between
    neighbouring scales. scale_penalty: factor on the peak of every non-unit scale. scale_lr: share of
    the best scale taken each frame (``k <- k * ((1 - lr) + lr * f_best)``). window_influence: weight
    of the Hann window against the normalised response. response_up: bicubic upsampling factor of the
    response maps. min_scale / max_scale: clamps of ``k`` (target size relative to the first frame)."""

    scales: int = 3
    scale_step: float = 1.0375
    scale_penalty: float = 0.9745
    scale_lr: float = 0.59
    window_influence: float = 0.176
    response_up: int = 16
    min_scale: float = 0.2
    max_scale: float = 5.0

    def __post_init__(self):
        problems = []
        if not (isinstance(self.scales, (int, np.integer)) and self.scales >= 1 and self.scales % 2 == 1):
            problems.append(f"scales must be an odd number >= 1, got {self.scales!r}")
        if not self.scale_step > 0:
            problems.append(f"scale_step must be > 0, got {self.scale_step!r}")
        if not 0 < self.scale_penalty <= 1:
            problems.append(f"scale_penalty must be in (0, 1], got {self.scale_penalty!r}")
        if not 0 <= self.scale_lr <= 1:
            problems.append(f"scale_lr must be in [0, 1], got {self.scale_lr!r}")
        if not 0 <= self.window_influence <= 1:
            problems.append(f"window_influence must be in [0, 1], got {self.window_influence!r}")
        if not (isinstance(self.response_up, (int, np.integer)) and self.response_up >= 1):
            problems.append(f"response_up must be an integer >= 1, got {self.response_up!r}")
        if not 0 < self.min_scale <= 1 <= self.max_scale:
            problems.append(f"need 0 < min_scale <= 1 <= max_scale, got {self.min_scale!r}, {self.max_scale!r}")
        if problems:
            raise ValueError("tracker settings: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, d: dict) -> "TrackerSettings":
        """Settings from a dict of field values (missing fields keep their defaults; unknown keys raise)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(f"unknown tracker settings {unknown}; known: {sorted(fields)}")
        return cls(**{k: type(fields[k].default)(v) for k, v in d.items()})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------ small pure pieces
def scale_factors(scales: int, scale_step: float) -> np.ndarray:
    """float64 [S]: ``scale_step ** (i - (S - 1) / 2)``, e.g. 3, 1.0375 -> [0.964, 1, 1.0375]."""
    return float(scale_step) ** (np.arange(scales, dtype=np.float64) - (scales - 1) / 2)


def hann_window(size: int) -> np.ndarray:
    """float32 [size, size]: the outer product of two Hann (raised cosine) windows, summing to 1."""
    w = np.outer(np.hanning(size), np.hanning(size))
    return (w / w.sum()).astype(np.float32)


def penalised_peaks(peaks, scale_penalty: float):
    """Peaks ``[S]`` of the scales' maps with every non-unit scale (all but the middle) penalised:
    multiplied by ``scale_penalty`` when >= 0 (SiamFC), divided by it when negative, so that the
    penalty lowers a logit whatever its sign. NumPy or JAX arrays (returns ``jnp``)."""
    peaks = jnp.asarray(peaks)
    s = peaks.shape[-1]
    unit = jnp.arange(s) == (s - 1) // 2
    pen = jnp.where(peaks >= 0, peaks * scale_penalty, peaks / scale_penalty)
    return jnp.where(unit, peaks, pen)


def smoothed_scale(scale: float, best_factor: float, scale_lr: float, min_scale: float = 0.0,
                   max_scale: float = np.inf) -> float:
    """SiamFC's scale update: ``scale * ((1 - lr) + lr * best_factor)``, clamped to [min, max]."""
    return float(np.clip(scale * ((1 - scale_lr) + scale_lr * best_factor), min_scale, max_scale))


def peak_to_displacement(peak, up_size: int, response_up: int, stride: float, crop_side: float,
                         search_size: int) -> np.ndarray:
    """Frame displacement ``(dx, dy)`` px (float64 [2]) of the target for a peak of the upsampled map.

    peak: ``(row, col)`` in the ``up_size x up_size`` upsampled map (``up_size = r * response_up``; its
    centre ``(up_size - 1) / 2`` is the centre of the response, hence of the search crop). The offset
    from the centre, ``/ response_up``, is in response cells; ``* stride`` in search-crop px;
    ``* crop_side / search_size`` in frame px (``crop_side`` = the side in frame px of the crop the
    map came from, ``s_x * scale factor``)."""
    row, col = (np.asarray(peak, np.float64) - (up_size - 1) / 2) / response_up * stride * crop_side / search_size
    return np.array([col, row])


# ------------------------------------------------------------------------------ jitted per-frame work
@jax.jit
def _gather_crops(frame, fill, x0, wx, y0, wy):
    """Bilinear samples of ``frame`` [H, W, C] at the grids -> float32 [S, out, out, C]; fill outside."""
    f = frame.astype(jnp.float32)
    h, w, _ = f.shape

    def sample(yi, xi):  # [S, out] each -> [S, out, out, C]
        valid = ((yi >= 0) & (yi < h))[:, :, None] & ((xi >= 0) & (xi < w))[:, None, :]
        v = f[jnp.clip(yi, 0, h - 1)[:, :, None], jnp.clip(xi, 0, w - 1)[:, None, :]]
        return jnp.where(valid[..., None], v, fill)

    ax = wx[:, None, :, None]
    ay = wy[:, :, None, None]
    top = sample(y0, x0) * (1 - ax) + sample(y0, x0 + 1) * ax
    bot = sample(y0 + 1, x0) * (1 - ax) + sample(y0 + 1, x0 + 1) * ax
    return top * (1 - ay) + bot * ay


def search_crops(frame: np.ndarray, cx: float, cy: float, sides, out: int, fill) -> jax.Array:
    """Square crops of every side in ``sides`` (frame px) centred on (cx, cy), each resized to
    ``out x out``: float32 ``[S, out, out, C]`` (a device array), the same samples as
    :func:`siamjax.tracking.crops.crop_resize` (one jitted gather for all scales)."""
    sides = np.atleast_1d(np.asarray(sides, np.float64))
    if not (np.all(np.isfinite(sides)) and np.all(sides > 0)):
        raise ValueError(f"crop sides must be positive numbers of pixels, got {sides}")
    x0, wx = sample_grid(cx, sides, out)
    y0, wy = sample_grid(cy, sides, out)
    x0, y0 = x0.astype(np.int32), y0.astype(np.int32)
    return _gather_crops(jnp.asarray(frame), jnp.asarray(fill, jnp.float32), x0, wx, y0, wy)


@functools.partial(jax.jit, static_argnames=("response_up",))
def locate_peak(responses, window, window_influence, scale_penalty, response_up: int):
    """Best scale and peak of the response maps.

    responses: ``[S, r, r]`` logits; window: ``[R, R]`` (R = r * response_up) summing to 1. Each map is
    upsampled bicubically to ``R x R``; the scale whose (penalised, :func:`penalised_peaks`) maximum is
    largest wins; its map, shifted to a minimum of 0 and divided by its sum, is blended
    ``(1 - wi) * map + wi * window``. Returns int32 scalars ``(scale index, row, col)`` in the
    upsampled map."""
    s, r, _ = responses.shape
    up = r * response_up
    maps = jax.image.resize(responses.astype(jnp.float32), (s, up, up), "bicubic")
    best = jnp.argmax(penalised_peaks(maps.max(axis=(1, 2)), scale_penalty))
    m = maps[best]
    m = m - m.min()
    m = m / (m.sum() + 1e-16)
    m = (1 - window_influence) * m + window_influence * window
    idx = jnp.argmax(m)
    return best.astype(jnp.int32), (idx // up).astype(jnp.int32), (idx % up).astype(jnp.int32)


def _check_frame(frame) -> np.ndarray:
    a = np.asarray(frame)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"a frame must be an [H, W, 3] image, got shape {a.shape}")
    return a


def _check_box(box) -> np.ndarray:
    b = np.asarray(box, np.float64).reshape(-1)
    if b.shape != (4,) or not np.all(np.isfinite(b)) or b[2] <= 0 or b[3] <= 0:
        raise ValueError(f"the initial box must be 4 finite numbers x, y, w, h with w, h > 0, got {box!r}")
    return b


# ------------------------------------------------------------------------------ the tracker
class SiamFCTracker:
    """SiamFC tracking with ``net`` (a :class:`siamjax.tracking.net.SiamFCNet` or any object with its
    ``embed``, ``respond``, ``exemplar_size``, ``search_size``, ``stride`` and ``context``).

    ``init(frame, box)`` then ``update(frame) -> box`` for each later frame, or ``track(frames, box)``.
    Frames are uint8 ``[H, W, 3]``; boxes ``x, y, w, h`` px (top-left corner)."""

    def __init__(self, net, settings: TrackerSettings = TrackerSettings()):
        self.net = net
        self.settings = settings
        self.factors = scale_factors(settings.scales, settings.scale_step)
        self._window = None  # device [R, R], made at the first response (r is the net's)
        self.center = None

    # --- state
    @property
    def target_size(self) -> np.ndarray:
        """(w, h) px of the current target."""
        return self.base_size * self.scale

    @property
    def exemplar_side(self) -> float:
        """s_z: side in frame px of the exemplar-sized window at the current scale."""
        return self.base_side * self.scale

    @property
    def search_side(self) -> float:
        """s_x: side in frame px of the unit-scale search crop."""
        return self.exemplar_side * self.net.search_size / self.net.exemplar_size

    @property
    def box(self) -> np.ndarray:
        """float32 [4] ``x, y, w, h`` px of the current estimate."""
        w, h = self.target_size
        return np.array([self.center[0] - w / 2, self.center[1] - h / 2, w, h], np.float32)

    # --- steps
    def init(self, frame, box) -> None:
        """Start on ``frame`` (uint8 [H, W, 3]) with the target at ``box`` (x, y, w, h px): embeds the
        exemplar crop (side ``context_size(w, h)``, resized to ``exemplar_size``) and compiles the
        per-frame programs for this frame shape (one dry run, state unchanged)."""
        frame = _check_frame(frame)
        x, y, w, h = _check_box(box)
        self.center = np.array([x + w / 2, y + h / 2])
        self.base_size = np.array([w, h])
        self.base_side = float(context_size(w, h, self.net.context))
        self.scale = 1.0
        self.fill = frame.reshape(-1, 3).astype(np.float64).mean(0).astype(np.float32)
        z = crop_resize(frame, self.center[0], self.center[1], self.base_side, self.net.exemplar_size, self.fill)
        self.z_feat = self.net.embed(z[None])
        self._locate(frame)  # warm-up: compile for this frame shape

    def _locate(self, frame: np.ndarray):
        """(scale index, (row, col), up_size, crop sides [S]) of the best peak in ``frame``."""
        st = self.settings
        sides = self.search_side * self.factors
        crops = search_crops(frame, self.center[0], self.center[1], sides, self.net.search_size, self.fill)
        responses = jnp.asarray(self.net.respond(self.z_feat, crops))
        up = responses.shape[-1] * st.response_up
        if self._window is None or self._window.shape[0] != up:
            self._window = jnp.asarray(hann_window(up))
        best, row, col = jax.device_get(locate_peak(responses, self._window, st.window_influence,
                                                    st.scale_penalty, response_up=st.response_up))
        return int(best), (int(row), int(col)), up, sides

    def update(self, frame) -> np.ndarray:
        """Track into ``frame`` (uint8 [H, W, 3]) -> float32 [4] box ``x, y, w, h`` px."""
        if self.center is None:
            raise RuntimeError("call init(frame, box) before update(frame)")
        frame = _check_frame(frame)
        st = self.settings
        best, peak, up, sides = self._locate(frame)
        d = peak_to_displacement(peak, up, st.response_up, self.net.stride, sides[best], self.net.search_size)
        h, w = frame.shape[:2]
        self.center = np.clip(self.center + d, 0, [w, h])
        self.scale = smoothed_scale(self.scale, self.factors[best], st.scale_lr, st.min_scale, st.max_scale)
        return self.box

    def track(self, frames: Iterable, first_box) -> tuple[np.ndarray, float]:
        """Track through ``frames`` (an iterable of uint8 [H, W, 3], e.g. a lazy loader) from
        ``first_box`` in the first -> (float32 [T, 4] boxes with ``boxes[0] = first_box``, seconds per
        frame of :meth:`update` over frames 2..T; NaN when T = 1). Reading the frames is not timed."""
        it = iter(frames)
        try:
            first = next(it)
        except StopIteration:
            raise ValueError("no frames to track") from None
        self.init(first, first_box)
        boxes = [np.asarray(first_box, np.float32).reshape(4)]
        spent = 0.0
        for frame in it:
            t0 = time.perf_counter()
            boxes.append(self.update(frame))
            spent += time.perf_counter() - t0
        n = len(boxes) - 1
        return np.stack(boxes).astype(np.float32), (spent / n if n else float("nan"))
