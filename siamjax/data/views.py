"""Random views of unlabeled images for unsupervised Siamese training (SimSiam / SimCLR), on device.

Each call of :func:`make_views` turns a batch of images into one random *view* of every image;
:func:`two_views` makes the two views a SimSiam / SimCLR step compares. Per image, in this order:

1. one geometric warp with a single bilinear resampling: horizontal flip, random resized crop
   (an affine zoom + shift), affine distortion (rotation, shear, translation) and an elastic
   displacement field added to the affine sampling coordinates;
2. stroke-width jitter: a 3x3 grey dilation (max filter) or erosion (min filter), 50/50;
3. photometric jitter: brightness (additive), contrast (about the image mean), saturation (RGB
   only), additive Gaussian noise. Values are not clipped (images may be mean/std normalised).

Conventions are those of :mod:`siamjax.data.augment`: images are ``[N, H, W, C]`` float, ink high on
a 0 background; points ``(x, y)`` are in pixels (x = column, y = row, y down) measured from the
image centre ``((W - 1) / 2, (H - 1) / 2)``; a forward map ``A = [M | t]`` moves the content at
``p_in`` to ``M p_in + t``, so output pixel ``p`` samples the input at ``M^-1 (p - t)``.

Randomness: image ``i`` of a batch uses only ``jax.random.fold_in(key, row_offset + i)``, so a
row's view depends on its global row index, not on how the batch is split over devices:
``make_views(k, x, cfg)[a:b] == make_views(k, x[a:b], cfg, row_offset=a)``.

CLI: ``python -m siamjax.data.views --data_dir DIR --out views.png`` draws a grid of Omniglot
characters (first column) and random views of each (ink dark on light).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from siamjax.data.augment import affine_matrix, bilinear_sample
from siamjax.settings import dataclass_from_mapping

__all__ = ["ViewConfig", "make_views", "two_views"]

ArrayLike = Any

# ITU-R 601 luma weights (as siamjax.data.preprocess), for the grey image of the saturation jitter.
_LUMA = (0.299, 0.587, 0.114)

# Columns of the per-image uniform draw (one draw of _N_UNIFORM values per image, whatever the
# config, so switching one component on or off never changes the randomness of the others).
(_U_SCALE, _U_RATIO, _U_CX, _U_CY, _U_ROT, _U_SHX, _U_SHY, _U_TX, _U_TY, _U_ELASTIC, _U_STROKE,
 _U_DILATE, _U_BRIGHT, _U_CONTRAST, _U_SAT, _U_FLIP) = range(16)
_N_UNIFORM = 16

_FIELDS_NONNEG = ("rotation_deg", "shear", "translate_px", "elastic_alpha", "brightness", "noise_std")
_FIELDS_PROB = ("elastic_prob", "stroke_prob", "flip_prob")
_FIELDS_UNIT = ("contrast", "saturation")  # factors U[1 - v, 1 + v] need v in [0, 1]


@dataclasses.dataclass(frozen=True)
class ViewConfig:
    """Ranges of the view augmentation; frozen and hashable, so usable as a static jit argument.

    The defaults are the handwriting preset (28-32 px Omniglot characters, ink high on 0).
    Every component with a non-zero magnitude is always applied, except those with a probability.
    """

    # Random resized crop, as an affine zoom + shift; resized back to the full H x W.
    crop_scale_min: float = 0.65  # area of the crop / image area ~ U[min, max]
    crop_scale_max: float = 1.0
    crop_ratio_min: float = 3.0 / 4.0  # aspect (crop w/h relative to image W/H), log-uniform
    crop_ratio_max: float = 4.0 / 3.0
    # Affine, after the crop (in output pixels): uniform ranges as in AffineConfig.
    rotation_deg: float = 10.0  # theta ~ U[-r, r] degrees
    shear: float = 0.2  # shear_x, shear_y ~ U[-s, s]
    translate_px: float = 1.5  # tx, ty ~ U[-t, t] pixels
    # Elastic: smooth random displacement field of max length alpha px, added to the warp.
    elastic_prob: float = 0.5
    elastic_alpha: float = 2.0  # max displacement, pixels
    elastic_sigma: float = 3.0  # Gaussian smoothing of the field, pixels
    # Stroke width: 3x3 grey dilation or erosion (50/50) with this probability.
    stroke_prob: float = 0.1
    # Photometric (image value units; no clipping).
    brightness: float = 0.1  # additive shift ~ U[-b, b]
    contrast: float = 0.2  # factor ~ U[1 - c, 1 + c] about the image mean
    saturation: float = 0.0  # RGB only: blend with grey, factor ~ U[1 - s, 1 + s]
    noise_std: float = 0.02  # additive N(0, std^2) per pixel and channel
    flip_prob: float = 0.0  # horizontal flip (0 for handwriting)
    fill: float = 0.0  # value outside the image

    def __post_init__(self) -> None:
        bad = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            try:
                if isinstance(value, bool) or isinstance(value, (str, bytes)):
                    raise TypeError
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"ViewConfig.{f.name} must be a number, got {value!r}") from None
            if not math.isfinite(value):
                bad.append(f"{f.name}={value} is not finite")
            object.__setattr__(self, f.name, value)
        if bad:
            raise ValueError("bad ViewConfig: " + "; ".join(bad))
        if not 0.0 < self.crop_scale_min <= self.crop_scale_max <= 1.0:
            bad.append(f"need 0 < crop_scale_min <= crop_scale_max <= 1, got {self.crop_scale_min}, "
                       f"{self.crop_scale_max}")
        if not 0.0 < self.crop_ratio_min <= self.crop_ratio_max:
            bad.append(f"need 0 < crop_ratio_min <= crop_ratio_max, got {self.crop_ratio_min}, "
                       f"{self.crop_ratio_max}")
        bad += [f"{n} must be >= 0, got {getattr(self, n)}" for n in _FIELDS_NONNEG if getattr(self, n) < 0]
        bad += [f"{n} must lie in [0, 1], got {getattr(self, n)}" for n in _FIELDS_PROB + _FIELDS_UNIT
                if not 0.0 <= getattr(self, n) <= 1.0]
        if self.elastic_sigma <= 0:
            bad.append(f"elastic_sigma must be > 0, got {self.elastic_sigma}")
        if bad:
            raise ValueError("bad ViewConfig: " + "; ".join(bad))

    @classmethod
    def handwriting(cls) -> "ViewConfig":
        """The defaults: 28-32 px handwritten characters (ink high on 0), no flip."""
        return cls()

    @classmethod
    def photos(cls) -> "ViewConfig":
        """Natural photos (SimCLR-like): crop 0.3..1, flip 0.5, colour jitter 0.4; no elastic / stroke."""
        return cls(crop_scale_min=0.3, rotation_deg=0.0, shear=0.0, translate_px=0.0, elastic_prob=0.0,
                   elastic_alpha=0.0, stroke_prob=0.0, brightness=0.4, contrast=0.4, saturation=0.4,
                   noise_std=0.0, flip_prob=0.5)

    @classmethod
    def none(cls) -> "ViewConfig":
        """The identity: every component off (``make_views`` returns the images unchanged)."""
        return cls(crop_scale_min=1.0, crop_scale_max=1.0, crop_ratio_min=1.0, crop_ratio_max=1.0,
                   rotation_deg=0.0, shear=0.0, translate_px=0.0, elastic_prob=0.0, elastic_alpha=0.0,
                   stroke_prob=0.0, brightness=0.0, contrast=0.0, saturation=0.0, noise_std=0.0,
                   flip_prob=0.0)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | Any) -> "ViewConfig":
        """From a plain dict or ``ml_collections.ConfigDict``; missing keys keep the defaults.

        Raises ``ValueError`` naming unknown keys (and listing the known ones) or bad values.
        """
        return dataclass_from_mapping(cls, d)

    @property
    def crop_is_identity(self) -> bool:
        return self.crop_scale_min == 1.0 and self.crop_ratio_min == self.crop_ratio_max == 1.0

    @property
    def affine_is_identity(self) -> bool:
        return self.rotation_deg == 0.0 and self.shear == 0.0 and self.translate_px == 0.0

    @property
    def elastic_on(self) -> bool:
        return self.elastic_prob > 0.0 and self.elastic_alpha > 0.0

    @property
    def warp_on(self) -> bool:
        """True when the geometric warp (flip, crop, affine, elastic) can move any pixel."""
        return self.flip_prob > 0.0 or not self.crop_is_identity or not self.affine_is_identity or self.elastic_on

    @property
    def is_identity(self) -> bool:
        """True when every view equals its image exactly (every component off)."""
        return (not self.warp_on and self.stroke_prob == 0.0 and self.brightness == 0.0 and self.contrast == 0.0
                and self.saturation == 0.0 and self.noise_std == 0.0)


# ------------------------------------------------------------------------------------ sampling


def _gaussian_matrix(n: int, sigma: float) -> jax.Array:
    """``[n, n]`` float32 Gaussian smoothing (zero padding) as a matrix: ``G @ v`` smooths ``v``."""
    i = jnp.arange(n, dtype=jnp.float32)
    return jnp.exp(-((i[:, None] - i[None, :]) ** 2) / (2.0 * sigma * sigma))


def _uniform01(bits: jax.Array, nbits: int = 23) -> jax.Array:
    """Random integers in [0, 2**nbits) -> float32 uniform on the open interval (0, 1), exactly."""
    return (bits.astype(jnp.float32) + 0.5) * jnp.float32(2.0**-nbits)


def _normal16(bits: jax.Array) -> jax.Array:
    """``[N, K]`` uint32 random words -> ``[N, 2K]`` float32 N(0, 1) samples, two per word
    (16-bit uniforms through the inverse normal CDF: |z| <= 4.3; halves the random bits drawn)."""
    halves = jnp.concatenate([bits & 0xFFFF, bits >> 16], axis=1)
    return jnp.float32(math.sqrt(2.0)) * jax.lax.erf_inv(2.0 * _uniform01(halves, 16) - 1.0)


def _sample(keys: jax.Array, h: int, w: int, c: int, cfg: ViewConfig) -> dict[str, jax.Array]:
    """Random parameters of the views of ``N`` images, image ``i`` from ``keys[i]`` only.

    Returns a dict: ``u`` [N, _N_UNIFORM] uniforms on (0, 1); ``inv`` [N, 2, 3] inverse maps
    (``p_in = inv[:, :2] @ p_out + inv[:, 2]``, pixels about the centre) when the warp is on;
    ``field`` [N, H, W, 2] N(0, 1) elastic noise when elastic is on; ``noise`` [N, H, W, C]
    N(0, 1) when ``noise_std > 0``.
    """
    # One flat draw of random bits per image for everything (a single 1-D threefry call compiles
    # far faster than one per component, or than a multi-dimensional one); the rest is batched.
    # Layout: uniforms, then elastic field, then pixel noise. (With JAX's default partitionable
    # threefry a longer draw keeps the same prefix, so the uniforms do not depend on which of
    # the other two are on.)
    n = keys.shape[0]
    w_field = h * w if cfg.elastic_on else 0  # two 16-bit normals per word
    w_noise = (h * w * c + 1) // 2 if cfg.noise_std > 0.0 else 0
    bits = jax.vmap(lambda k: jax.random.bits(k, (_N_UNIFORM + w_field + w_noise,), jnp.uint32))(keys)
    u = _uniform01(bits[:, :_N_UNIFORM] >> 9)
    out = {"u": u}
    if w_field:
        field = _normal16(bits[:, _N_UNIFORM:_N_UNIFORM + w_field])[:, :h * w * 2]
        out["field"] = field.reshape(n, h, w, 2)
    if w_noise:
        noise = _normal16(bits[:, _N_UNIFORM + w_field:])[:, :h * w * c]
        out["noise"] = noise.reshape(n, h, w, c)
    if cfg.warp_on:
        out["inv"] = _inverse_maps(u, h, w, cfg)
    return out


def _inverse_maps(u: jax.Array, h: int, w: int, cfg: ViewConfig) -> jax.Array:
    """``[N, _N_UNIFORM]`` uniforms -> ``[N, 2, 3]`` inverse maps of flip, crop and affine."""
    # Random resized crop: area fraction s, relative aspect r (log-uniform); the crop is fw x fh
    # of the image, centred at (cx, cy) px (input coordinates) so that it stays inside.
    s = cfg.crop_scale_min + (cfg.crop_scale_max - cfg.crop_scale_min) * u[:, _U_SCALE]
    lo, hi = math.log(cfg.crop_ratio_min), math.log(cfg.crop_ratio_max)
    r = jnp.exp(lo + (hi - lo) * u[:, _U_RATIO])
    fw = jnp.minimum(jnp.sqrt(s * r), 1.0)
    fh = jnp.minimum(jnp.sqrt(s / r), 1.0)
    cx = (2.0 * u[:, _U_CX] - 1.0) * (1.0 - fw) * (w - 1) / 2.0
    cy = (2.0 * u[:, _U_CY] - 1.0) * (1.0 - fh) * (h - 1) / 2.0
    flip = jnp.where(u[:, _U_FLIP] < cfg.flip_prob, -1.0, 1.0)

    def sym(col: int, mag: float) -> jax.Array:
        return (2.0 * u[:, col] - 1.0) * mag

    # Forward map L p + t - L c: flip, zoom about the crop centre, then T * R * Shear.
    a = affine_matrix(sym(_U_ROT, cfg.rotation_deg), sym(_U_SHX, cfg.shear), sym(_U_SHY, cfg.shear),
                      flip / fw, 1.0 / fh, sym(_U_TX, cfg.translate_px), sym(_U_TY, cfg.translate_px))
    m00, m01, m10, m11 = a[:, 0, 0], a[:, 0, 1], a[:, 1, 0], a[:, 1, 1]
    det = m00 * m11 - m01 * m10
    i00, i01, i10, i11 = m11 / det, -m01 / det, -m10 / det, m00 / det
    tx, ty = a[:, 0, 2], a[:, 1, 2]
    e = cx - (i00 * tx + i01 * ty)  # p_in = L^-1 (p_out - t) + c
    f = cy - (i10 * tx + i11 * ty)
    return jnp.stack([jnp.stack([i00, i01, e], -1), jnp.stack([i10, i11, f], -1)], -2)


def _elastic(field: jax.Array, on: jax.Array, cfg: ViewConfig) -> jax.Array:
    """``[N, H, W, 2]`` N(0, 1) noise -> displacements (dx, dy) in pixels: Gaussian-smoothed
    (sigma ``elastic_sigma``), scaled so that each image's longest vector is ``elastic_alpha``
    (zero where ``on`` [N] is False)."""
    _, h, w, _ = field.shape
    gh, gw = _gaussian_matrix(h, cfg.elastic_sigma), _gaussian_matrix(w, cfg.elastic_sigma)
    hi = jax.lax.Precision.HIGHEST
    smooth = jnp.einsum("yi,nijk,xj->nyxk", gh, field, gw, precision=hi)
    norm = jnp.sqrt(jnp.max(jnp.sum(smooth * smooth, axis=-1), axis=(1, 2)))  # [N]
    scale = jnp.where(on, cfg.elastic_alpha / jnp.maximum(norm, 1e-12), 0.0)
    return smooth * scale[:, None, None, None]


# ------------------------------------------------------------------------------------ applying


def _warp(x: jax.Array, p: dict[str, jax.Array], cfg: ViewConfig) -> jax.Array:
    """One bilinear resampling of ``[N, H, W, C]`` float32 by the inverse maps ``p["inv"]`` [N, 2, 3]
    plus the elastic displacements (a gather of the four neighbours of every output pixel)."""
    _, h, w, _ = x.shape
    inv = p["inv"][:, :, :, None, None]  # [N, 2, 3, 1, 1]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    xo = jnp.arange(w, dtype=jnp.float32)[None, :] - cx  # [1, W]
    yo = jnp.arange(h, dtype=jnp.float32)[:, None] - cy  # [H, 1]
    xi = inv[:, 0, 0] * xo + inv[:, 0, 1] * yo + inv[:, 0, 2] + cx  # [N, H, W]
    yi = inv[:, 1, 0] * xo + inv[:, 1, 1] * yo + inv[:, 1, 2] + cy
    if cfg.elastic_on:
        d = _elastic(p["field"], p["u"][:, _U_ELASTIC] < cfg.elastic_prob, cfg)
        xi, yi = xi + d[..., 0], yi + d[..., 1]
    return bilinear_sample(x, xi, yi, cfg.fill)


def _stroke(x: jax.Array, u: jax.Array, cfg: ViewConfig) -> jax.Array:
    """3x3 grey dilation (max filter) or erosion (min filter), 50/50, of the images whose coin
    ``u[:, _U_STROKE] < stroke_prob``; SAME padding (the border sees only the image).

    One separable max filter serves both: erosion is ``-max_filter(-x)``."""
    on = (u[:, _U_STROKE] < cfg.stroke_prob)[:, None, None, None]
    sign = jnp.where(u[:, _U_DILATE] < 0.5, 1.0, -1.0)[:, None, None, None]
    y = sign * x
    for win in ((1, 3, 1, 1), (1, 1, 3, 1)):  # 3x1 then 1x3 = 3x3 (exact for max)
        y = jax.lax.reduce_window(y, -jnp.inf, jax.lax.max, win, (1, 1, 1, 1), "SAME")
    return jnp.where(on, sign * y, x)


def _photometric(x: jax.Array, p: dict[str, jax.Array], cfg: ViewConfig) -> jax.Array:
    """Brightness, contrast, saturation (C == 3) and noise of ``[N, H, W, C]`` float32."""
    u = p["u"][:, :, None, None, None]  # [N, K, 1, 1, 1]
    shift = (2.0 * u[:, _U_BRIGHT] - 1.0) * cfg.brightness
    if cfg.contrast > 0.0:
        # Brightness then contrast about the (shifted) mean, as one expression: mean + shift + f (x - mean).
        mean = jnp.mean(x.reshape(x.shape[0], -1), axis=1)[:, None, None, None]
        x = mean + shift + (1.0 + (2.0 * u[:, _U_CONTRAST] - 1.0) * cfg.contrast) * (x - mean)
    elif cfg.brightness > 0.0:
        x = x + shift
    if cfg.saturation > 0.0 and x.shape[-1] == 3:
        # A dot, not sum(x * luma, -1): XLA:CPU reduces a minor axis of size 3 many times slower.
        grey = jnp.dot(x, jnp.asarray(_LUMA, jnp.float32), precision=jax.lax.Precision.HIGHEST)[..., None]
        x = grey + (1.0 + (2.0 * u[:, _U_SAT] - 1.0) * cfg.saturation) * (x - grey)
    if cfg.noise_std > 0.0:
        x = x + cfg.noise_std * p["noise"]
    return x


def _views(keys: jax.Array, images: jax.Array, cfg: ViewConfig) -> jax.Array:
    """One view of each image with its own key ``keys[i]`` ([N] keys, [N, H, W, C] images)."""
    _, h, w, c = images.shape
    p = _sample(keys, h, w, c, cfg)
    x = images.astype(jnp.float32)
    if cfg.warp_on:
        x = _warp(x, p, cfg)
    if cfg.stroke_prob > 0.0:
        x = _stroke(x, p["u"], cfg)
    x = _photometric(x, p, cfg)
    return x.astype(images.dtype)


def _row_keys(key: jax.Array, n: int, row_offset: ArrayLike) -> jax.Array:
    """``[n]`` keys ``fold_in(key, row_offset + i)``."""
    rows = jnp.asarray(row_offset, jnp.int32) + jnp.arange(n, dtype=jnp.int32)
    return jax.vmap(lambda r: jax.random.fold_in(key, r))(rows)


@functools.partial(jax.jit, static_argnums=(2,))
def make_views(key: jax.Array, images: jax.Array, cfg: ViewConfig, row_offset: ArrayLike = 0) -> jax.Array:
    """One random view of each image.

    Args:
      key: a PRNG key (typed or raw); image ``i`` uses ``fold_in(key, row_offset + i)``.
      images: ``[N, H, W, C]`` float (ink high, background 0).
      cfg: static :class:`ViewConfig`; an identity config returns ``images`` unchanged.
      row_offset: global row index of ``images[0]`` (int, may be traced, e.g. from
        ``lax.axis_index``), so the views of a sharded batch equal those of the whole batch.
    Returns: ``[N, H, W, C]``, same dtype as ``images``.
    """
    if cfg.is_identity:
        return images
    return _views(_row_keys(key, images.shape[0], row_offset), images, cfg)


@functools.partial(jax.jit, static_argnums=(2,))
def two_views(key: jax.Array, images: jax.Array, cfg: ViewConfig, row_offset: ArrayLike = 0) -> jax.Array:
    """Two random views of each image: ``[2, N, H, W, C]``, view ``v`` being
    ``make_views(fold_in(key, v), images, cfg, row_offset)`` (both computed in one batched pass)."""
    if cfg.is_identity:
        return jnp.stack([images, images])
    n = images.shape[0]
    view_keys = jax.vmap(lambda v: jax.random.fold_in(key, v))(jnp.arange(2, dtype=jnp.int32))
    keys = jax.vmap(lambda k: _row_keys(k, n, row_offset))(view_keys)  # [2, n] (+ [2] for raw keys)
    keys = keys.reshape((2 * n,) + keys.shape[2:])  # view-major
    out = _views(keys, jnp.concatenate([images, images]), cfg)
    return out.reshape((2,) + images.shape)
