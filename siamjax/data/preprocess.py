"""Host-side image preprocessing: any decoded image -> uint8 [size, size, channels].

Everything here is NumPy on the host except :func:`to_float`, which uses ``jax.numpy``
(imported lazily) so that it can run on device inside ``jit``.

Pipeline of :func:`preprocess_image` / :func:`preprocess_batch`:

1. to float32 in [0, 1] (bool: False=0, True=1; uint8 /255; uint16 /65535; float as is);
2. alpha (LA / RGBA) is composited over white paper;
3. colour conversion: RGB -> grey with the ITU-R 601 weights PIL uses for mode "L",
   or grey -> RGB by replication;
4. polarity: ``invert=True`` maps x -> 1 - x, ``"auto"`` does so when the image's mean
   (over all pixels and channels, before resizing) is > 0.5, so that dark ink on light
   paper becomes high values;
5. optional (``crop_to_ink``): crop to the bounding box of the pixels whose value (grey, or
   luma of RGB, after polarity) is above ``ink_threshold``, widened on every side by
   ``crop_margin`` x the box's longer side (clipped at the image border); an image with no
   such pixel stays whole. With ``crop_frame="moments"`` the crop is instead a square centred
   on the ink's centre of mass, of half-side ``crop_radius`` x the ink's RMS distance from that
   centre (moment normalisation: one stray stroke moves it far less than a bounding box), and
   any part of it outside the image is background (0);
6. separable antialiased bilinear (triangle filter) resize to size x size, numerically
   the same as PIL's ``Image.resize(..., BILINEAR)`` on a float32 "F" image; with
   ``keep_aspect`` the longer side is resized to ``size``, the shorter one in proportion
   (at least 1 pixel), and the result is centred on a size x size canvas of 0 (the
   background once polarity puts ink high);
7. ``rint(clip(255 * x, 0, 255))`` -> uint8.

``crop_to_ink`` and ``keep_aspect`` default to False (``crop_frame`` to "box"): the pipeline is
then exactly steps 1-4, 6, 7 as before they existed, and :meth:`Preprocessing.to_dict` leaves them
out, so stored dicts (checkpoints, cache keys) are unchanged. With either on, images are processed one by one
(each has its own crop / output shape), still deterministic and NumPy only.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Sequence

import numpy as np

__all__ = ["CROP_FRAMES", "Preprocessing", "preprocess_image", "preprocess_batch", "to_float"]

# What crop_to_ink crops to (Preprocessing.crop_frame).
CROP_FRAMES = ("box", "moments")

# PIL "L" conversion weights (ITU-R 601-2 luma).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Images handled per vectorised chunk in preprocess_batch (bounds float32 temporaries).
_CHUNK = 256


def _is_finite_real(value) -> bool:
    """True for a finite Python or NumPy int or float (not a bool)."""
    return (not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
            and math.isfinite(float(value)))


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How raw images become uint8 [size, size, channels] arrays (and floats on device).

    Attributes:
        size: output height and width in pixels.
        channels: 1 = grey, 3 = RGB.
        invert: True flips polarity (x -> 1 - x), False keeps it, "auto" flips when the
            image's mean in [0, 1] is > 0.5 (light paper), so ink ends up as high values.
        mean, std: applied on device by :func:`to_float`: x = (uint8 / 255 - mean) / std.
        crop_to_ink: crop each image to the bounding box of its ink (pixels above
            ``ink_threshold`` after grey conversion and polarity) before resizing, so that
            small drawings on large pages (signatures, scans) fill the frame. No ink: whole image.
        ink_threshold: in [0, 1): what counts as ink for ``crop_to_ink`` (values after polarity,
            so ink is high; with RGB output the luma decides).
        crop_margin: >= 0: ``crop_to_ink`` widens the box on each side by this fraction of its
            longer side (rounded up to whole pixels, clipped at the image border).
        keep_aspect: resize the longer side to ``size`` and the shorter in proportion, then pad
            centred with 0 to size x size (instead of stretching to a square).
        crop_frame: what ``crop_to_ink`` crops to: "box" (the bounding box above) or "moments" (a
            square centred on the ink's centre of mass, pixel values above ``ink_threshold``
            weighted by their value, of half-side ``crop_radius`` x their RMS distance from it, in
            pixels; ``crop_margin`` is then unused).
        crop_radius: > 0: the "moments" frame's half-side in units of the ink's RMS radius (2.0
            frames a median Omniglot character about 1.2x wider than its box with a 10% margin).
    """

    size: int = 105
    channels: int = 1
    invert: bool | str = "auto"
    mean: float = 0.0
    std: float = 1.0
    crop_to_ink: bool = False
    ink_threshold: float = 0.5
    crop_margin: float = 0.02
    keep_aspect: bool = False
    crop_frame: str = "box"
    crop_radius: float = 2.0

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, (int, np.integer)) or self.size < 1:
            raise ValueError(f"Preprocessing.size must be a positive int, got {self.size!r}")
        if isinstance(self.channels, bool) or self.channels not in (1, 3):
            raise ValueError(f"Preprocessing.channels must be 1 (grey) or 3 (RGB), got {self.channels!r}")
        if not (isinstance(self.invert, (bool, np.bool_)) or self.invert == "auto"):
            raise ValueError(f"Preprocessing.invert must be True, False or 'auto', got {self.invert!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"Preprocessing.{name} must be a float, got {value!r}")
            if not math.isfinite(float(value)):
                raise ValueError(f"Preprocessing.{name} must be finite, got {value!r}")
        if float(self.std) <= 0.0:
            raise ValueError(f"Preprocessing.std must be > 0, got {self.std!r}")
        for name in ("crop_to_ink", "keep_aspect"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"Preprocessing.{name} must be True or False, got {getattr(self, name)!r}")
        for name, lo, hi in (("ink_threshold", 0.0, 1.0), ("crop_margin", 0.0, math.inf)):
            value = getattr(self, name)
            if not _is_finite_real(value) or not lo <= float(value) < hi:
                raise ValueError(f"Preprocessing.{name} must be a float in [{lo:g}, {hi:g}), got {value!r}")
        if self.crop_frame not in CROP_FRAMES:
            raise ValueError(f"Preprocessing.crop_frame must be one of {CROP_FRAMES}, got {self.crop_frame!r}")
        if not _is_finite_real(self.crop_radius) or float(self.crop_radius) <= 0.0:
            raise ValueError(f"Preprocessing.crop_radius must be a finite float > 0, got {self.crop_radius!r}")
        # Normalise types so that equality, hashing and JSON round trips are exact.
        object.__setattr__(self, "size", int(self.size))
        object.__setattr__(self, "channels", int(self.channels))
        object.__setattr__(self, "invert", self.invert if self.invert == "auto" else bool(self.invert))
        object.__setattr__(self, "mean", float(self.mean))
        object.__setattr__(self, "std", float(self.std))
        object.__setattr__(self, "crop_to_ink", bool(self.crop_to_ink))
        object.__setattr__(self, "ink_threshold", float(self.ink_threshold))
        object.__setattr__(self, "crop_margin", float(self.crop_margin))
        object.__setattr__(self, "keep_aspect", bool(self.keep_aspect))
        object.__setattr__(self, "crop_radius", float(self.crop_radius))

    def uncropped(self, size: int | None = None) -> "Preprocessing":
        """The same without ink cropping or aspect keeping (those fields at their defaults), at ``size``
        pixels (default: this one's)."""
        return dataclasses.replace(self, size=self.size if size is None else size, **OPTIONAL_FIELDS)

    @property
    def per_image(self) -> bool:
        """True when images are cropped or aspect-kept (processed one by one)."""
        return self.crop_to_ink or self.keep_aspect

    def check_batch(self, x: np.ndarray, note: str = "") -> None:
        """Raise ValueError unless ``x`` is what :func:`preprocess_batch` returns for this spec: uint8
        [N, size, size, channels]. ``note`` is added to the message after the expected shape."""
        if x.ndim != 4 or x.shape[1:] != (self.size, self.size, self.channels) or x.dtype != np.uint8:
            raise ValueError(f"expected uint8 [N, {self.size}, {self.size}, {self.channels}]{note}, "
                             f"got {x.dtype} {x.shape}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of the fields (inverse of :meth:`from_dict`).

        The crop / aspect fields (:data:`OPTIONAL_FIELDS`) are left out while at their defaults, so
        the dict of a spec that does not use them is the one written before they existed."""
        d = dataclasses.asdict(self)
        for name, default in OPTIONAL_FIELDS.items():
            if d[name] == default:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocessing":
        """Build from :meth:`to_dict` output; missing keys take defaults, unknown keys raise."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown Preprocessing field(s) {unknown}; expected a subset of {sorted(known)}")
        return cls(**d)


# Fields added after checkpoints already stored preprocessing dicts, and their defaults (the dataclass's):
# to_dict omits them at these values (older dicts lack them; from_dict fills them in).
OPTIONAL_FIELDS = {f.name: f.default for f in dataclasses.fields(Preprocessing) if f.name in (
    "crop_to_ink", "ink_threshold", "crop_margin", "keep_aspect", "crop_frame", "crop_radius")}


# ----------------------------------------------------------------------------------------
# Resize weights


@functools.lru_cache(maxsize=64)
def _resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """float32 [out_size, in_size] row-normalised triangle-filter weights (PIL BILINEAR).

    Pixel centres are aligned (half-pixel convention); when shrinking, the filter support
    is widened by the scale factor, which is what makes the resize antialiased.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    centers = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    taps = np.arange(in_size, dtype=np.float64) + 0.5
    w = np.maximum(0.0, 1.0 - np.abs((taps[None, :] - centers[:, None]) / filterscale))
    w /= w.sum(axis=1, keepdims=True)
    out = w.astype(np.float32)
    out.setflags(write=False)
    return out


# ----------------------------------------------------------------------------------------
# Core (stacked [N, H, W, C] arrays)


def _to_unit_float(x: np.ndarray, what: str) -> np.ndarray:
    """Raw pixel array of a supported dtype -> float32 in [0, 1] (same shape)."""
    dt = x.dtype
    if dt == np.bool_:
        return x.astype(np.float32)
    if dt == np.uint8:
        return x.astype(np.float32) * np.float32(1.0 / 255.0)
    if dt.kind == "u" and dt.itemsize == 2:
        return x.astype(np.float32) * np.float32(1.0 / 65535.0)
    if dt.kind == "f" and dt.itemsize in (2, 4, 8):
        y = x.astype(np.float32)
        if not np.isfinite(y).all():
            raise ValueError(f"{what}: float image contains NaN or inf")
        lo, hi = float(y.min()), float(y.max())
        if lo < -1e-6 or hi > 1.0 + 1e-6:
            raise ValueError(f"{what}: float image must lie in [0, 1], got values in [{lo:g}, {hi:g}]")
        return np.clip(y, 0.0, 1.0)
    raise ValueError(
        f"{what}: unsupported dtype {dt}; expected bool, uint8, uint16 or float (in [0, 1])"
    )


def _auto_flip(x: np.ndarray) -> np.ndarray:
    """bool [N]: mean of each bool / uint8 image [N, H, W, C], as values in [0, 1], > 0.5 (exact integer maths)."""
    flat = x.reshape(x.shape[0], -1)
    if x.dtype == np.bool_:
        return np.count_nonzero(flat, axis=1) * 2 > flat.shape[1]
    return flat.sum(axis=1, dtype=np.int64) * 2 > 255 * flat.shape[1]


def _grey(f: np.ndarray) -> np.ndarray:
    """float image [H, W, C] (C = 1 or 3) -> its grey values [H, W] (the luma of RGB), which decide what is ink."""
    return f[..., 0] if f.shape[-1] == 1 else f @ _LUMA


def _ink_box(f: np.ndarray, spec: Preprocessing) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), bottom / right exclusive: the ink's bounding box of one polarity-corrected
    float image [H, W, C] (C = 1 or 3), widened by ``spec.crop_margin``; the whole image if it has no ink."""
    h, w, _ = f.shape
    grey = _grey(f)
    ink = grey > np.float32(spec.ink_threshold)
    rows = np.flatnonzero(ink.any(axis=1))
    if rows.size == 0:
        return 0, h, 0, w
    cols = np.flatnonzero(ink.any(axis=0))
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    m = int(math.ceil(spec.crop_margin * max(bottom - top, right - left) - 1e-9))
    return max(top - m, 0), min(bottom + m, h), max(left - m, 0), min(right + m, w)


def _moment_frame(f: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """One polarity-corrected float image [H, W, C] -> its "moments" frame [S, S, C]: the square centred
    on the ink's centre of mass (pixels above ``spec.ink_threshold``, weighted by their grey value) with
    half-side ``spec.crop_radius`` x the ink's RMS distance from that centre (at least 1 pixel), parts
    outside the image filled with 0; the whole image if it has no ink."""
    h, w, c = f.shape
    grey = _grey(f)
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


def _unit_colour_and_flip(x: np.ndarray, c: int, spec: Preprocessing, what: str):
    """Steps 1-4 of the pipeline on ``x`` [N, H, W, c]: (float32 [N, H, W, c'] in [0, 1] with alpha
    composited over white and RGB made grey when ``spec.channels == 1``, bool [N] flip, c')."""
    f = _to_unit_float(x, what)
    if c in (2, 4):  # composite over white paper
        alpha = f[..., -1:]
        f = f[..., :-1] * alpha + (1.0 - alpha)
        c -= 1
    if spec.channels == 1 and c == 3:
        f = (f @ _LUMA)[..., None]
        c = 1
    if spec.invert == "auto":
        flip = f.reshape(len(f), -1).mean(axis=1, dtype=np.float64) > 0.5
    else:
        flip = np.full(len(f), bool(spec.invert))
    return f, flip, c


def _preprocess_one(f: np.ndarray, flip: bool, spec: Preprocessing) -> np.ndarray:
    """One float image [H, W, C] in [0, 1] (C = 1 or 3, colour already converted) -> float32
    [size, size, C] in [0, 1]: polarity, optional ink crop, resize (optionally keeping the aspect)."""
    if flip:
        f = 1.0 - f
    if spec.crop_to_ink and spec.crop_frame == "moments":
        f = _moment_frame(f, spec)
    elif spec.crop_to_ink:
        top, bottom, left, right = _ink_box(f, spec)
        f = f[top:bottom, left:right]
    h, w, c = f.shape
    size = spec.size
    if spec.keep_aspect:
        scale = size / max(h, w)
        oh = min(size, max(1, int(round(h * scale))))
        ow = min(size, max(1, int(round(w * scale))))
    else:
        oh = ow = size
    if (h, w) != (oh, ow):
        rh = _resize_matrix(h, oh)
        rw = _resize_matrix(w, ow)
        f = (rh @ np.ascontiguousarray(f.transpose(2, 0, 1)) @ rw.T).transpose(1, 2, 0)
    if (oh, ow) == (size, size):
        return f
    out = np.zeros((size, size, c), np.float32)
    y0, x0 = (size - oh) // 2, (size - ow) // 2
    out[y0:y0 + oh, x0:x0 + ow] = f
    return out


def _preprocess_stack(x: np.ndarray, spec: Preprocessing, what: str) -> np.ndarray:
    """Raw images [N, H, W, C] (C in 1..4) -> uint8 [N, size, size, spec.channels]."""
    n, h, w, c = x.shape
    if h == 0 or w == 0:
        raise ValueError(f"{what}: empty image of shape {(h, w)}")
    if c not in (1, 2, 3, 4):
        raise ValueError(
            f"{what}: unsupported channel count {c}; expected 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA)"
        )
    if spec.per_image:
        # One image at a time: each has its own crop, and float copies of large scans stay small.
        out = np.empty((n, spec.size, spec.size, spec.channels), np.uint8)
        for i in range(n):
            f, flip, _ = _unit_colour_and_flip(x[i:i + 1], c, spec, what)
            f = _preprocess_one(f[0], bool(flip[0]), spec) * np.float32(255.0)
            np.rint(f, out=f)
            np.clip(f, 0.0, 255.0, out=f)
            out[i] = f.astype(np.uint8)  # grey -> RGB by broadcasting
        return out
    resize = (h, w) != (spec.size, spec.size)
    if not resize and c in (1, spec.channels) and x.dtype in (np.bool_, np.uint8):
        # Exact integer fast path (no resampling, no colour conversion).
        if spec.invert == "auto":
            flip = _auto_flip(x)
        else:
            flip = np.full(n, bool(spec.invert))
        if x.dtype == np.bool_:
            out = (x != flip[:, None, None, None]).view(np.uint8) * np.uint8(255)
        else:
            out = np.where(flip[:, None, None, None], 255 - x, x).astype(np.uint8, copy=False)
    else:
        f, flip, c = _unit_colour_and_flip(x, c, spec, what)
        if resize:
            # Resampling is linear with rows summing to 1, so it commutes with x -> 1 - x;
            # inverting afterwards touches fewer pixels.
            rh = _resize_matrix(h, spec.size)
            rw = _resize_matrix(w, spec.size)
            f = np.ascontiguousarray(f.transpose(0, 3, 1, 2))  # [N, C, H, W]
            f = (rh @ f @ rw.T).transpose(0, 2, 3, 1)  # [N, size, size, C]
        if flip.all():
            f = 1.0 - f
        elif flip.any():
            f = np.where(flip[:, None, None, None], 1.0 - f, f)
        f = f * np.float32(255.0)
        np.rint(f, out=f)
        np.clip(f, 0.0, 255.0, out=f)
        out = f.astype(np.uint8)
    if spec.channels == 3 and c == 1:
        out = np.repeat(out, 3, axis=-1)
    return np.ascontiguousarray(out)


def _as_array(image: Any, what: str) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype == object:
        raise ValueError(f"{what}: unsupported dtype object; pass a numeric array")
    return arr


# ----------------------------------------------------------------------------------------
# Public API


def preprocess_image(image: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """One decoded image -> uint8 [spec.size, spec.size, spec.channels].

    Args:
        image: as ``np.asarray(PIL.Image.open(path))`` returns it: bool [H, W],
            uint8 / uint16 / float-in-[0, 1] [H, W], [H, W, 1], [H, W, 2] (grey + alpha),
            [H, W, 3] (RGB) or [H, W, 4] (RGBA); any H, W >= 1.
        spec: the :class:`Preprocessing` to apply.

    Raises:
        ValueError: empty image, ndim not 2 or 3, unsupported dtype or channel count,
            float values outside [0, 1].
    """
    arr = _as_array(image, "preprocess_image")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    elif arr.ndim != 3:
        raise ValueError(
            f"preprocess_image: expected an image of shape [H, W] or [H, W, C], got shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"preprocess_image: empty image of shape {arr.shape}")
    return _preprocess_stack(arr[None], spec, "preprocess_image")[0]


def preprocess_batch(images: np.ndarray | Sequence[np.ndarray], spec: Preprocessing) -> np.ndarray:
    """Many images -> uint8 [N, spec.size, spec.size, spec.channels].

    Args:
        images: one stacked array [N, H, W] or [N, H, W, C] (vectorised), or a sequence of
            per-image arrays as accepted by :func:`preprocess_image`, possibly of
            differing sizes, dtypes and channel counts.
        spec: the :class:`Preprocessing` to apply.
    """
    out_tail = (spec.size, spec.size, spec.channels)
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            images = images[..., None]
        elif images.ndim != 4:
            raise ValueError(
                f"preprocess_batch: expected a stacked array [N, H, W] or [N, H, W, C], got shape {images.shape}"
            )
        n = images.shape[0]
        out = np.empty((n, *out_tail), dtype=np.uint8)
        if n == 0:
            return out
        if images.dtype == object:
            raise ValueError("preprocess_batch: unsupported dtype object; pass a numeric array")
        for start in range(0, n, _CHUNK):
            out[start:start + _CHUNK] = _preprocess_stack(
                images[start:start + _CHUNK], spec, "preprocess_batch"
            )
        return out
    images = list(images)
    out = np.empty((len(images), *out_tail), dtype=np.uint8)
    for i, img in enumerate(images):
        try:
            out[i] = preprocess_image(img, spec)
        except ValueError as e:
            raise ValueError(f"preprocess_batch: image {i}: {e}") from e
    return out


def to_float(images_uint8: Any, spec: Preprocessing) -> Any:
    """uint8 images (any shape) -> float32 ``(x / 255 - spec.mean) / spec.std`` as a jax array.

    Pure ``jax.numpy``; usable inside ``jit`` (``spec`` is a static Python object).
    """
    import jax.numpy as jnp

    x = jnp.asarray(images_uint8).astype(jnp.float32) * jnp.float32(1.0 / 255.0)
    if spec.mean != 0.0:
        x = x - jnp.float32(spec.mean)
    if spec.std != 1.0:
        x = x / jnp.float32(spec.std)
    return x
