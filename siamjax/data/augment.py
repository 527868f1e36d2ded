"""Koch et al. (2015) random affine distortions, in JAX, per image, on device.

All public functions are ``jax.jit``-wrapped (``n`` and ``cfg`` static), so
they are fast when called eagerly and inline when called inside a jitted step.

Conventions (used by every function here):

* Images are ``[N, H, W, C]`` float arrays, ink high and background 0.
* A point is ``p = (x, y)`` in pixels, ``x`` the column index and ``y`` the
  row index (row 0 at the top, as ``imshow`` shows it), measured from the image
  centre ``((W - 1) / 2, (H - 1) / 2)``.
* A matrix ``A = [M | t]`` of shape ``[2, 3]`` is the *forward* map
  ``p_out = M @ p_in + t``: the content at ``p_in`` moves to ``p_out``.
  ``apply_affine`` therefore samples output pixel ``p`` at
  ``M^-1 (p - t)`` in the input.
* ``A = T * R * Shear * Scale``, i.e. ``M = R @ [[1, shear_x], [shear_y, 1]]
  @ diag(scale_x, scale_y)`` and ``t = (tx, ty)``.
* Positive ``rotation_deg`` turns the content counter-clockwise as displayed:
  90 degrees equals ``np.rot90(image, k=1, axes=(0, 1))`` (square image).
* Positive ``tx`` moves content right (towards larger columns), positive
  ``ty`` moves it down (towards larger rows); scale > 1 enlarges about the centre.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from siamjax.settings import dataclass_from_mapping

__all__ = [
    "AffineConfig",
    "affine_matrix",
    "apply_affine",
    "bilinear_sample",
    "random_affine",
    "sample_affine",
    "sample_affine_params",
]

ArrayLike = Any


@dataclasses.dataclass(frozen=True)
class AffineConfig:
    """Ranges of Koch et al.'s affine distortion; hashable, so usable as a static jit arg.

    Each of the four components (rotation, shear, scale, translation) is applied
    independently per image with probability ``prob``; when not applied it takes
    its identity value (0 degrees, shear 0, scale 1, shift 0 px).
    """

    rotation_deg: float = 10.0  # theta ~ U[-r, r], degrees
    shear: float = 0.3  # shear_x, shear_y ~ U[-s, s] (dimensionless)
    scale_min: float = 0.8  # scale_x, scale_y ~ U[scale_min, scale_max]
    scale_max: float = 1.2
    translate_px: float = 2.0  # tx, ty ~ U[-t, t], pixels of the augmented image
    prob: float = 0.5  # per-image, per-component probability of applying it
    flip_prob: float = 0.0  # per-image probability of a left-right mirror (faces; not handwriting), its own coin

    def __post_init__(self) -> None:
        for name in ("rotation_deg", "shear", "scale_min", "scale_max", "translate_px", "prob", "flip_prob"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.rotation_deg < 0 or self.shear < 0 or self.translate_px < 0:
            raise ValueError(f"rotation_deg, shear and translate_px must be >= 0, got {self}")
        if not 0 < self.scale_min <= self.scale_max:
            raise ValueError(f"need 0 < scale_min <= scale_max, got {self.scale_min}, {self.scale_max}")
        if not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"prob must lie in [0, 1], got {self.prob}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"flip_prob must lie in [0, 1], got {self.flip_prob}")

    @classmethod
    def none(cls) -> "AffineConfig":
        """The identity: every magnitude zero (rotation 0, shear 0, scale 1..1, shift 0)."""
        return cls(rotation_deg=0.0, shear=0.0, scale_min=1.0, scale_max=1.0, translate_px=0.0)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | Any) -> "AffineConfig":
        """From a plain dict or ``ml_collections.ConfigDict``; missing keys keep defaults.

        Raises ``ValueError`` naming any unknown keys.
        """
        return dataclass_from_mapping(cls, d)

    @property
    def is_identity(self) -> bool:
        """True when every sampled distortion is exactly the identity."""
        return self.flip_prob == 0.0 and (self.prob == 0.0 or (
            self.rotation_deg == 0.0
            and self.shear == 0.0
            and self.scale_min == 1.0
            and self.scale_max == 1.0
            and self.translate_px == 0.0
        ))


@jax.jit
def affine_matrix(
    rotation_deg: ArrayLike,
    shear_x: ArrayLike,
    shear_y: ArrayLike,
    scale_x: ArrayLike,
    scale_y: ArrayLike,
    tx: ArrayLike,
    ty: ArrayLike,
) -> jax.Array:
    """Forward maps ``T * R * Shear * Scale`` about the image centre.

    Args: broadcastable arrays (shape ``S`` after broadcasting); ``rotation_deg``
    in degrees (counter-clockwise as displayed), shears dimensionless, scales
    as factors, ``tx``/``ty`` in pixels (right/down).
    Returns: ``[*S, 2, 3]`` float32.
    """
    args = jnp.broadcast_arrays(
        *(jnp.asarray(a, jnp.float32) for a in (rotation_deg, shear_x, shear_y, scale_x, scale_y, tx, ty))
    )
    theta, hx, hy, sx, sy, tx, ty = args
    rad = jnp.deg2rad(theta)
    c, s = jnp.cos(rad), jnp.sin(rad)
    # R (y axis points down, so this is counter-clockwise on screen) = [[c, s], [-s, c]].
    # R @ [[1, hx], [hy, 1]] = [[c + s*hy, c*hx + s], [-s + c*hy, -s*hx + c]]; then @ diag(sx, sy).
    m00 = (c + s * hy) * sx
    m01 = (c * hx + s) * sy
    m10 = (c * hy - s) * sx
    m11 = (c - s * hx) * sy
    row0 = jnp.stack([m00, m01, tx], axis=-1)
    row1 = jnp.stack([m10, m11, ty], axis=-1)
    return jnp.stack([row0, row1], axis=-2)


@functools.partial(jax.jit, static_argnums=(1, 2))
def sample_affine_params(rng: jax.Array, n: int, cfg: AffineConfig) -> dict[str, jax.Array]:
    """Raw Koch parameters for ``n`` images: dict of ``[n]`` float32 arrays.

    Keys are ``affine_matrix``'s argument names (so ``affine_matrix(**params)``
    works): ``rotation_deg`` (degrees), ``shear_x``, ``shear_y``, ``scale_x``,
    ``scale_y``, ``tx``, ``ty`` (pixels). A component that is not applied
    (probability ``1 - cfg.prob``, independently per image and component) holds
    its identity value; shear x/y, scale x/y and shift x/y share one coin each. With ``cfg.flip_prob`` > 0
    an image is also mirrored left-right (``scale_x`` negated) with that probability, from a key of its own
    (the other draws are those of ``flip_prob`` 0).
    """
    # One uniform draw for everything (a single threefry call keeps compiles short):
    # rows 0-6 are the seven magnitudes, rows 7-10 the four per-component coins.
    u = jax.random.uniform(rng, (11, n), jnp.float32)
    lo = jnp.array([-cfg.rotation_deg, -cfg.shear, -cfg.shear, cfg.scale_min, cfg.scale_min,
                    -cfg.translate_px, -cfg.translate_px], jnp.float32)[:, None]
    hi = jnp.array([cfg.rotation_deg, cfg.shear, cfg.shear, cfg.scale_max, cfg.scale_max,
                    cfg.translate_px, cfg.translate_px], jnp.float32)[:, None]
    vals = lo + (hi - lo) * u[:7]
    on = u[7:] < cfg.prob  # [4, n]: rotation, shear, scale, translation
    on = jnp.stack([on[0], on[1], on[1], on[2], on[2], on[3], on[3]])
    ident = jnp.array([0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0], jnp.float32)[:, None]
    vals = jnp.where(on, vals, ident)
    theta, shear, scale, shift = vals[0], vals[1:3], vals[3:5], vals[5:7]
    if cfg.flip_prob > 0:
        mirror = jax.random.uniform(jax.random.fold_in(rng, 1), (n,), jnp.float32) < cfg.flip_prob
        scale = scale.at[0].set(jnp.where(mirror, -scale[0], scale[0]))
    return {
        "rotation_deg": theta,
        "shear_x": shear[0],
        "shear_y": shear[1],
        "scale_x": scale[0],
        "scale_y": scale[1],
        "tx": shift[0],
        "ty": shift[1],
    }


@functools.partial(jax.jit, static_argnums=(1, 2))
def sample_affine(rng: jax.Array, n: int, cfg: AffineConfig) -> jax.Array:
    """``[n, 2, 3]`` float32 forward maps (pixels, about the centre), one per image."""
    return affine_matrix(**sample_affine_params(rng, n, cfg))


def _invert(matrices: jax.Array) -> tuple[jax.Array, ...]:
    """Closed-form inverse of ``[..., 2, 3]`` maps: ``(a, b, c, d, e, f)`` with
    ``p_in = [[a, b], [c, d]] @ p_out + (e, f)``, each ``[...]``."""
    m00, m01, tx = matrices[..., 0, 0], matrices[..., 0, 1], matrices[..., 0, 2]
    m10, m11, ty = matrices[..., 1, 0], matrices[..., 1, 1], matrices[..., 1, 2]
    det = m00 * m11 - m01 * m10
    a, b, c, d = m11 / det, -m01 / det, -m10 / det, m00 / det
    return a, b, c, d, -(a * tx + b * ty), -(c * tx + d * ty)


@jax.jit
def apply_affine(images: jax.Array, matrices: jax.Array, fill: float = 0.0) -> jax.Array:
    """Warp each image by its forward map, bilinearly.

    Args:
      images: ``[N, H, W, C]`` float.
      matrices: ``[N, 2, 3]`` forward maps in pixels about the centre; output
        pixel ``p`` takes the input at ``inverse(A) p``.
      fill: value of everything outside the input, a scalar (may be traced);
        matches ``map_coordinates(order=1, mode="constant", cval=fill)``.
    Returns: ``[N, H, W, C]``, same dtype as ``images``.
    """
    n, h, w, ch = images.shape
    a, b, c, d, e, f = (v.astype(jnp.float32)[:, None, None] for v in _invert(jnp.asarray(matrices)))
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    xo = jnp.arange(w, dtype=jnp.float32)[None, None, :] - cx  # [1, 1, W]
    yo = jnp.arange(h, dtype=jnp.float32)[None, :, None] - cy  # [1, H, 1]
    xi = a * xo + b * yo + e + cx  # [N, H, W] input column
    yi = c * xo + d * yo + f + cy  # [N, H, W] input row
    return bilinear_sample(images, xi, yi, fill).astype(images.dtype)


def bilinear_sample(images: jax.Array, xi: jax.Array, yi: jax.Array, fill: float = 0.0) -> jax.Array:
    """Sample ``[N, H, W, C]`` images at input columns ``xi`` / rows ``yi`` ``[N, Ho, Wo]`` (pixel indices,
    not centred), bilinearly, ``fill`` outside (as ``map_coordinates(order=1, mode="constant")``).
    Returns ``[N, Ho, Wo, C]`` float32."""
    n, h, w, ch = images.shape
    x0f, y0f = jnp.floor(xi), jnp.floor(yi)
    wx, wy = (xi - x0f)[..., None], (yi - y0f)[..., None]  # [N, Ho, Wo, 1]
    # Clip in float first so far-away (all-fill) coordinates never overflow int32.
    x0i = jnp.clip(x0f, -2.0, float(w)).astype(jnp.int32)
    y0i = jnp.clip(y0f, -2.0, float(h)).astype(jnp.int32)
    # Pad one pixel of `fill` all round: then clipping corner indices into the padded
    # image is exact (any corner outside the input lands on a fill pixel), no masks.
    hp, wp = h + 2, w + 2
    flat = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=fill).reshape(n * hp * wp, ch)
    x0, x1 = jnp.clip(x0i + 1, 0, wp - 1), jnp.clip(x0i + 2, 0, wp - 1)
    y0, y1 = jnp.clip(y0i + 1, 0, hp - 1), jnp.clip(y0i + 2, 0, hp - 1)
    base = (jnp.arange(n, dtype=jnp.int32) * (hp * wp))[:, None, None]
    r0, r1 = base + y0 * wp, base + y1 * wp
    v00, v01 = flat[r0 + x0], flat[r0 + x1]  # [N, Ho, Wo, C]
    v10, v11 = flat[r1 + x0], flat[r1 + x1]
    v00, v01, v10, v11 = (v.astype(jnp.float32) for v in (v00, v01, v10, v11))
    top = v00 + wx * (v01 - v00)
    bot = v10 + wx * (v11 - v10)
    return top + wy * (bot - top)


@functools.partial(jax.jit, static_argnums=(2,))
def random_affine(rng: jax.Array, images: jax.Array, cfg: AffineConfig) -> jax.Array:
    """Independent Koch distortion of every image: ``[N, H, W, C]`` -> same shape/dtype.

    ``cfg`` is a static Python value (hashable; close over it or pass it as a
    static arg). An identity ``cfg`` returns ``images`` unchanged without any work.
    """
    if cfg.is_identity:
        return images
    return apply_affine(images, sample_affine(rng, images.shape[0], cfg))
