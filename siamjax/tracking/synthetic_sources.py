"""What the synthetic tracking sequences are made of (:mod:`siamjax.tracking.synthetic`): pools of real
images (:class:`Sources`, :func:`load_sources`) and how one image becomes a coloured sprite.

Pools (uint8, one image per row; "ink" kinds hold masks with ink = 255 on 0, "patch" kinds grey photos
or ink masks drawn as textured tiles):

=============  =====================================  ===============================  ==========================
kind           read from (``data_root/...``)          ``split="train"``                ``split="test"``
=============  =====================================  ===============================  ==========================
character      omniglot/images_*.zip (105 px)         images_background                images_evaluation
face           att_faces/att_faces.zip (92x112)       s1..s30                          s31..s40
digit          mnist_test/ (28 px)                    index % 5 != 0                   index % 5 == 0
signature      signatures_sigcomp2011_dutch/          writers 049..062 (genuine        writers 063..069
               sign_data_test.zip (ink crop, 160 px)  and forged)
=============  =====================================  ===============================  ==========================

Omniglot keeps 4 of the 20 drawers of every character (all characters, a fifth of the memory);
signatures are decoded on demand (a few ms each, then kept), everything else at load.
"""
from __future__ import annotations

import colorsys
import dataclasses
import functools
import pathlib
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image, ImageFilter

from siamjax.data.preprocess import Preprocessing

__all__ = ["Sources", "load_sources", "KINDS", "INK_KINDS", "object_sprite", "occluder_sprite", "with_shadow",
           "hull_points", "pil_rgba", "random_colour", "colour_field", "premultiply"]

KINDS = ("character", "face", "digit", "signature")
INK_KINDS = frozenset({"character", "signature"})  # drawn as coloured strokes; the others as tiles
_FIELDS = {"character": "characters", "face": "faces", "digit": "digits", "signature": "signatures"}
_SIG_WRITERS = {"train": range(49, 63), "test": range(63, 70)}
_FACE_IDS = {"train": range(1, 31), "test": range(31, 41)}


@dataclasses.dataclass(frozen=True, eq=False)
class Sources:
    """Image pools, one per kind; any may be None or empty, but not all. Build it directly from arrays
    (uint8 ``[N, H, W]`` or ``[N, H, W, 1]``; any array-like whose ``[indices]`` gives such rows, e.g. a
    :class:`~siamjax.data.lazy.LazyImages`) or with :func:`load_sources`.

    ``characters``, ``signatures``, ``digits``: ink masks (ink high, 0 background); ``faces``: grey photos.
    ``ids``: kind -> one name per image (default ``"<kind>/<i>"``), so that splits can be compared.
    """

    characters: Any = None
    faces: Any = None
    digits: Any = None
    signatures: Any = None
    ids: Mapping[str, Sequence[str]] | None = None

    def __post_init__(self):
        ids = dict(self.ids or {})
        for kind, field in _FIELDS.items():
            pool = getattr(self, field)
            if pool is None:
                continue
            if isinstance(pool, (np.ndarray, list, tuple)):
                pool = np.asarray(pool)
                if pool.ndim == 4 and pool.shape[-1] == 1:
                    pool = pool[..., 0]
                if pool.ndim != 3 or pool.dtype != np.uint8:
                    raise ValueError(f"Sources.{field}: expected uint8 [N, H, W], got {pool.dtype} {pool.shape}")
                pool = np.ascontiguousarray(pool)
                pool.setflags(write=False)
            if len(pool) == 0:
                pool = None
            object.__setattr__(self, field, pool)
            if pool is None:
                ids.pop(kind, None)
                continue
            names = tuple(ids.get(kind) or (f"{kind}/{i}" for i in range(len(pool))))
            if len(names) != len(pool):
                raise ValueError(f"Sources.ids[{kind!r}] has {len(names)} names for {len(pool)} images")
            ids[kind] = names
        if not ids:
            raise ValueError("Sources: every pool is empty; give at least one of characters, faces, digits, signatures")
        object.__setattr__(self, "ids", ids)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds with a non-empty pool, in :data:`KINDS` order."""
        return tuple(k for k in KINDS if getattr(self, _FIELDS[k]) is not None)

    def count(self, kind: str) -> int:
        pool = getattr(self, _FIELDS[kind])
        return 0 if pool is None else len(pool)

    def image(self, kind: str, i: int) -> np.ndarray:
        """uint8 [H, W] image ``i`` of pool ``kind``."""
        pool = getattr(self, _FIELDS[kind])
        img = pool[i] if isinstance(pool, np.ndarray) else np.asarray(pool[np.array([i])])[0]
        return img[..., 0] if img.ndim == 3 else img

    def source_id(self, kind: str, i: int) -> str:
        return self.ids[kind][i]

    def all_ids(self) -> set[str]:
        return {name for names in self.ids.values() for name in names}


def load_sources(data_root, split: str = "train") -> Sources:
    """The pools of ``split`` ("train" or "test", disjoint: see the module docstring) from the shared data
    folder ``data_root`` (holding omniglot/, att_faces/, mnist_test/, signatures_sigcomp2011_dutch/).
    Missing folders are skipped with a warning; none at all raises FileNotFoundError. Cached per
    (resolved path, split) in memory."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return _load_sources(str(pathlib.Path(data_root).expanduser().resolve()), split)


@functools.lru_cache(maxsize=4)
def _load_sources(root_str: str, split: str) -> Sources:
    from siamjax.data.folder import load_image_folder
    from siamjax.data.mnist import load_mnist
    from siamjax.data.omniglot import load_omniglot

    root = pathlib.Path(root_str)
    pools: dict[str, Any] = {}
    ids: dict[str, list[str]] = {}
    missing = []

    omni_split = "background" if split == "train" else "evaluation"
    omni = root / "omniglot"
    if (omni / f"images_{omni_split}.zip").is_file() or (omni / f"images_{omni_split}").is_dir():
        d = load_omniglot(omni, omni_split, Preprocessing(size=105, channels=1, invert="auto"))
        keep = np.flatnonzero(d.instances % 5 == 0)  # drawers 1, 6, 11, 16 of every character
        pools["characters"] = d.images[keep, :, :, 0]
        ids["character"] = [f"omniglot/{omni_split}/{d.class_names[d.labels[i]]}/{d.instances[i]}" for i in keep]
    else:
        missing.append(str(omni / f"images_{omni_split}.zip"))

    faces = root / "att_faces" / "att_faces.zip"
    if not faces.is_file() and (root / "att_faces" / "att_faces").is_dir():
        faces = root / "att_faces" / "att_faces"
    if faces.exists():
        d = load_image_folder(faces, Preprocessing(size=112, channels=1, invert=False, keep_aspect=True), lazy=False)
        wanted = {f"s{i}" for i in _FACE_IDS[split]}
        keep = np.flatnonzero([d.class_names[c] in wanted for c in d.labels])
        imgs = d.images[keep, :, :, 0]
        cols = np.flatnonzero(imgs.max(axis=(0, 1)) > 0)  # drop keep_aspect's side padding
        rows = np.flatnonzero(imgs.max(axis=(0, 2)) > 0)
        pools["faces"] = imgs[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        ids["face"] = [f"att_faces/{d.class_names[d.labels[i]]}/{d.instances[i]}" for i in keep]
    else:
        missing.append(str(faces))

    mnist = root / "mnist_test"
    if mnist.is_dir():
        d = load_mnist(mnist, Preprocessing(size=28, channels=1, invert=True))
        idx = np.arange(len(d))
        keep = idx[(idx % 5 == 0) if split == "test" else (idx % 5 != 0)]
        pools["digits"] = d.images[keep, :, :, 0]
        ids["digit"] = [f"mnist_test/{i}" for i in keep]
    else:
        missing.append(str(mnist))

    sig = root / "signatures_sigcomp2011_dutch" / "sign_data_test.zip"
    if sig.is_file():
        spec = Preprocessing(size=160, channels=1, invert=True, crop_to_ink=True, ink_threshold=0.25, keep_aspect=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the pair list csv beside the writer folders
            d = load_image_folder(sig, spec, lazy=True)
        writers = {f"{w:03d}" for w in _SIG_WRITERS[split]}
        keep = np.flatnonzero([d.class_names[c][:3] in writers for c in d.labels])
        pools["signatures"] = d.subset(keep).images
        ids["signature"] = [f"signatures/{d.class_names[d.labels[i]]}/{d.instances[i]}" for i in keep]
    else:
        missing.append(str(sig))

    if not pools:
        raise FileNotFoundError(f"no image data found under {root}: expected at least one of {', '.join(missing)} "
                                f"(set --data / SIAMJAX_DATA to the folder holding omniglot/, att_faces/, ...)")
    if missing:
        warnings.warn(f"synthetic tracking sources: not found, skipped: {', '.join(missing)}", stacklevel=3)
    return Sources(**pools, ids=ids)


# ----------------------------------------------------------------------------------------
# Appearance


def random_colour(rng: np.random.Generator, sat=(0.35, 1.0), val=(0.25, 1.0)) -> np.ndarray:
    """float32 [3] RGB in [0, 1] with a uniform hue and saturation / value drawn from the ranges."""
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val)), np.float32)


def colour_field(rng: np.random.Generator, h: int, w: int, c0: np.ndarray, jitter: float = 0.25,
                 noise: float = 0.04) -> np.ndarray:
    """float32 [h, w, 3] in [0, 1]: ``c0`` shading linearly into a nearby colour, plus grain."""
    c1 = np.clip(c0 + rng.normal(0.0, jitter, 3), 0.0, 1.0).astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    xs, ys = np.linspace(0, 1, w, dtype=np.float32), np.linspace(0, 1, h, dtype=np.float32)
    ramp = np.cos(a) * xs[None, :] + np.sin(a) * ys[:, None]
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    field = c0 + (c1 - c0) * ramp[..., None]
    if noise > 0:
        field = field + rng.normal(0.0, noise, (h, w, 1)).astype(np.float32)
    return np.clip(field, 0.0, 1.0)


def premultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """float rgb [h, w, 3] and alpha [h, w] in [0, 1] -> uint8 [h, w, 4] premultiplied RGBa."""
    a = alpha[..., None].astype(np.float32)
    return np.rint(np.concatenate([rgb * a, a], axis=-1) * 255.0).clip(0, 255).astype(np.uint8)


def pil_rgba(rgba: np.ndarray) -> Image.Image:
    """uint8 [h, w, 4] premultiplied -> PIL image in mode "RGBa" (so resampling treats alpha right)."""
    return Image.frombytes("RGBa", (rgba.shape[1], rgba.shape[0]), np.ascontiguousarray(rgba).tobytes())


def _resize(rgba: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(pil_rgba(rgba).resize((max(1, w), max(1, h)), Image.BILINEAR)).copy()


def hull_points(alpha: np.ndarray, threshold: int = 64) -> np.ndarray:
    """float32 [P, 2] (x, y) pixel corners enclosing every pixel with ``alpha > threshold``: the two outer
    corners of each row's leftmost and rightmost such pixel (a superset of the convex hull's vertices, so
    the extent of their affine image is the tight box of the transformed mask). No such pixel: the
    image's corners."""
    h, w = alpha.shape
    m = alpha > threshold
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float32)
    left = m[rows].argmax(axis=1)
    right = w - m[rows, ::-1].argmax(axis=1)
    xs = np.concatenate([left, left, right, right])
    ys = np.concatenate([rows, rows + 1, rows, rows + 1])
    return np.stack([xs, ys], axis=1).astype(np.float32)


def _ink(img: np.ndarray) -> np.ndarray:
    """uint8 ink image -> float32 mask in [0, 1], faint scans stretched so that their strokes reach 1."""
    f = img.astype(np.float32)
    strokes = f[f > 32]
    hi = max(float(np.percentile(strokes, 90)), 64.0) if strokes.size else 255.0
    return np.clip((f - 32.0) / (hi - 32.0), 0.0, 1.0)


def _crop(mask: np.ndarray, margin: int, threshold: float = 0.25) -> tuple[slice, slice]:
    rows = np.flatnonzero((mask > threshold).any(axis=1))
    cols = np.flatnonzero((mask > threshold).any(axis=0))
    if rows.size == 0:
        return slice(None), slice(None)
    h, w = mask.shape
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, h)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, w)))


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation by a (2 radius + 1)^2 square, separable: O(radius) array maxima."""
    if radius <= 0:
        return mask
    out = mask.copy()
    for axis in (0, 1):
        src = out.copy()
        n = src.shape[axis]
        for d in range(1, min(radius, n - 1) + 1):
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(d, None), slice(None, n - d)
            np.maximum(out[tuple(lo)], src[tuple(hi)], out=out[tuple(lo)])
            np.maximum(out[tuple(hi)], src[tuple(lo)], out=out[tuple(hi)])
    return out


def _pad(mask: np.ndarray, p: int) -> np.ndarray:
    return np.pad(mask, p) if p > 0 else mask


def _ellipse_alpha(h: int, w: int, power: float = 2.0) -> np.ndarray:
    """Soft-edged superellipse filling h x w (power 2: an ellipse; 4-6: a rectangle with rounded corners)."""
    y = np.abs((np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1)
    x = np.abs((np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1)
    r = (y[:, None] ** power + x[None, :] ** power) ** (1.0 / power)
    edge = 2.0 / max(min(h, w), 1)  # about one pixel of feathering
    return np.clip((1.0 - r) / edge, 0.0, 1.0)


def object_sprite(rng: np.random.Generator, sources: Sources, kind: str, i: int, size: float,
                  colour_rng: np.random.Generator | None = None, stroke_px: float | None = None) -> np.ndarray:
    """Image ``i`` of pool ``kind`` as a premultiplied RGBa sprite, uint8 [h, w, 4], resized so that the
    tight box of its opaque part has ``sqrt(w * h) ~= size`` pixels (its longer side at most ``2 size``).

    Ink kinds become coloured strokes (shaded, sometimes outlined) on transparency, thickened so that a
    stroke is ``stroke_px`` (default 1.8..4) pixels wide once resized; faces become duotone-tinted photo
    tiles (rectangular, framed or oval); digits become coloured tiles with the digit in a contrasting
    ink. Colours come from ``colour_rng`` (default ``rng``): two sprites given equally seeded colour
    generators share their palette."""
    crng = rng if colour_rng is None else colour_rng
    img = sources.image(kind, i)
    if kind in INK_KINDS:
        mask = _ink(img)
        rs, cs = _crop(mask, 0)
        mask = mask[rs, cs]
        f = size / max(np.sqrt(mask.shape[0] * mask.shape[1]), 1.0)  # display px per native px
        stroke = rng.uniform(1.8, 4.0) if stroke_px is None else stroke_px
        native = 2.5 if kind == "character" else 1.5  # stroke width of the source images, native px
        radius = int(np.clip(np.ceil((stroke / f - native) / 2), 0, 8))
        outline = int(np.ceil(1.2 / f)) if rng.random() < 0.45 else 0
        mask = _dilate(_pad(mask, radius + outline + 2), radius)
        ink = random_colour(crng, sat=(0.5, 1.0), val=(0.35, 1.0))
        ink_rgb = colour_field(crng, *mask.shape, ink, jitter=0.3, noise=0.02)
        if outline:
            ring = _dilate(mask, outline)
            lum = float(ink_rgb.mean())
            edge = np.float32(0.08 if lum > 0.45 else 0.92) + crng.normal(0, 0.05, 3).astype(np.float32)
            rgb = ink_rgb * mask[..., None] + np.clip(edge, 0, 1) * (1 - mask[..., None])
            alpha = ring
        else:
            rgb, alpha = ink_rgb, mask
        rgba = premultiply(rgb, alpha)
    elif kind == "face":
        g = img.astype(np.float32) / 255.0
        g = np.clip((g - g.min()) / max(float(np.ptp(g)), 1e-6), 0, 1)
        dark = random_colour(crng, sat=(0.2, 0.9), val=(0.0, 0.35))
        light = random_colour(crng, sat=(0.0, 0.5), val=(0.7, 1.0))
        rgb = dark + (light - dark) * g[..., None] ** crng.uniform(0.7, 1.3)
        h, w = g.shape
        style = rng.random()
        if style < 0.35:  # oval cut-out
            alpha = _ellipse_alpha(h, w)
        else:
            alpha = np.ones((h, w), np.float32)
            if style < 0.7:  # framed photo
                b = max(2, int(round(0.06 * min(h, w))))
                frame = random_colour(crng, sat=(0.0, 1.0), val=(0.1, 1.0))
                rgb = np.pad(rgb, ((b, b), (b, b), (0, 0)))
                rgb[:b], rgb[-b:], rgb[:, :b], rgb[:, -b:] = frame, frame, frame, frame
                alpha = np.ones(rgb.shape[:2], np.float32)
        rgba = premultiply(rgb, alpha)
    elif kind == "digit":
        m = _ink(img)
        up = np.asarray(Image.fromarray(np.rint(m * 255).astype(np.uint8)).resize(
            (2 * m.shape[1], 2 * m.shape[0]), Image.BILINEAR), np.float32) / 255.0
        rs, cs = _crop(up, int(rng.integers(3, 9)))
        up = up[rs, cs]
        paper = random_colour(crng, sat=(0.1, 0.9), val=(0.2, 1.0))
        ink = random_colour(crng, sat=(0.3, 1.0), val=(0.0, 0.4) if paper.max() > 0.6 else (0.75, 1.0))
        h, w = up.shape
        rgb = colour_field(crng, h, w, paper, jitter=0.2, noise=0.05)
        rgb = rgb + (ink - rgb) * up[..., None]
        if rng.random() < 0.5:
            b = 2
            rgb[:b], rgb[-b:], rgb[:, :b], rgb[:, -b:] = ink, ink, ink, ink
        rgba = premultiply(rgb, np.ones((h, w), np.float32))
    else:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    pts = hull_points(rgba[..., 3])
    extent = pts.max(axis=0) - pts.min(axis=0)
    f = min(size / max(float(np.sqrt(extent[0] * extent[1])), 1.0), 2.0 * size / max(float(extent.max()), 1.0))
    return _resize(rgba, int(round(rgba.shape[1] * f)), int(round(rgba.shape[0] * f)))


def occluder_sprite(rng: np.random.Generator, w: int, h: int, texture: np.ndarray | None = None) -> np.ndarray:
    """An opaque foreground thing of ``w`` x ``h`` px (premultiplied RGBa): a shaded rectangle, rounded
    slab or ellipse, plain or with ``texture`` (a uint8 [H, W] pool image) stretched over it, tinted."""
    base = random_colour(rng, sat=(0.0, 0.8), val=(0.1, 0.9))
    rgb = colour_field(rng, h, w, base, jitter=0.2, noise=0.03)
    if texture is not None:
        tex = np.asarray(Image.fromarray(texture).resize((w, h), Image.BILINEAR), np.float32) / 255.0
        other = random_colour(rng, sat=(0.0, 0.8), val=(0.0, 1.0))
        rgb = rgb + (other - rgb) * (0.6 * tex[..., None])
    shape = rng.random()
    if shape < 0.3:
        alpha = _ellipse_alpha(h, w)
    elif shape < 0.5:
        alpha = _ellipse_alpha(h, w, power=5.0)  # a slab with rounded corners
    else:
        alpha = np.ones((h, w), np.float32)
    return premultiply(rgb, alpha)


def with_shadow(rgba: np.ndarray, dx: float, dy: float, blur: float, opacity: float) -> tuple[np.ndarray, int]:
    """``rgba`` over its own soft drop shadow (its alpha, blurred, moved by ``dx``, ``dy`` px, darkening by
    ``opacity``), on a canvas padded by ``pad`` px on every side so that the object keeps its centre:
    (uint8 [h + 2 pad, w + 2 pad, 4] premultiplied, pad)."""
    h, w = rgba.shape[:2]
    pad = int(np.ceil(max(abs(dx), abs(dy)) + 2 * blur)) + 1
    alpha = np.zeros((h + 2 * pad, w + 2 * pad), np.uint8)
    ox, oy = pad + int(round(dx)), pad + int(round(dy))
    alpha[oy:oy + h, ox:ox + w] = rgba[..., 3]
    shadow = np.asarray(Image.fromarray(alpha).filter(ImageFilter.GaussianBlur(blur)), np.float32) * opacity
    out = np.zeros((h + 2 * pad, w + 2 * pad, 4), np.float32)
    out[..., 3] = shadow
    obj = out[pad:pad + h, pad:pad + w]
    obj *= 1.0 - rgba[..., 3:4].astype(np.float32) / 255.0
    obj += rgba
    return np.rint(out).clip(0, 255).astype(np.uint8), pad
