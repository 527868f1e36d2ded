"""What preprocessing does to an image: the :class:`Preprocessing` spec (output size, channels,
polarity, normalisation, ink crop, aspect) with its checks and its dict form (:data:`OPTIONAL_FIELDS`).

The pipeline that applies it is :mod:`siamjax.data.preprocess` (which re-exports these names).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

__all__ = ["CROP_FRAMES", "OPTIONAL_FIELDS", "Preprocessing"]

# What crop_to_ink crops to (Preprocessing.crop_frame).
CROP_FRAMES = ("box", "moments")


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
