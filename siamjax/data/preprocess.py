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

The spec (:class:`Preprocessing`, :data:`OPTIONAL_FIELDS`) is defined in
:mod:`siamjax.data.preprocess_spec` and the ink geometry of step 5 in :mod:`siamjax.data.ink_frame`;
the spec's names are importable from here too.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

from siamjax.data.ink_frame import LUMA as _LUMA
from siamjax.data.ink_frame import ink_box, moment_frame
from siamjax.data.preprocess_spec import CROP_FRAMES, OPTIONAL_FIELDS, Preprocessing

__all__ = ["CROP_FRAMES", "OPTIONAL_FIELDS", "Preprocessing", "preprocess_image", "preprocess_batch", "to_float"]

# Images handled per vectorised chunk in preprocess_batch (bounds float32 temporaries).
_CHUNK = 256


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
        f = moment_frame(f, spec)
    elif spec.crop_to_ink:
        top, bottom, left, right = ink_box(f, spec)
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
            differing sizes, dtypes and channel counts, file paths or PIL images, decoded as the
            data loaders decode files (:func:`siamjax.data.image_input.to_arrays`). Arrays are taken
            as pixel values: ``np.asarray`` of a palette or CMYK image is wrong; pass those as paths
            or PIL images.
        spec: the :class:`Preprocessing` to apply.
    """
    from siamjax.data.image_input import to_arrays  # paths, PIL images -> arrays

    images = to_arrays(images)
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
