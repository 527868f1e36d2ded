"""Safe image decoding shared by the loaders: allowed formats only, bounded size, one error type.

Untrusted image files (a user's folder, a downloaded zip) pass through :func:`open_image` /
:func:`decode_image`, which

* let PIL identify only the allowed formats (:data:`PIL_FORMATS`: PNG, JPEG, PGM/PPM/PBM, BMP,
  TIFF), so a GIF, WebP, PDF or EPS file is refused whatever its extension says and no other
  PIL plugin ever parses it;
* refuse, before decoding, a file larger than :func:`max_file_bytes` or an image whose header
  declares more than ``max_pixels`` pixels (a decompression bomb), independently of PIL's global
  ``Image.MAX_IMAGE_PIXELS`` (never modified here); PIL's own ``DecompressionBombError`` is
  reported the same way;
* raise :class:`BadImage` (a ``ValueError``) naming the file and the reason for anything that
  fails: ``kind`` is ``"format"`` (not an allowed format), ``"too_large"`` or ``"corrupt"``
  (unreadable, truncated, undecodable, or pixel values preprocessing refuses).

Also here: :func:`is_unsafe_member` (zip names with an absolute path or ``..``),
:func:`natural_key` (``img2`` before ``img10``) and :func:`pil_to_array`.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from typing import IO

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "BadImage",
    "bomb_warnings_as_errors",
    "IMAGE_EXTENSIONS",
    "PIL_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "decode_image",
    "is_image_name",
    "is_unsafe_member",
    "max_file_bytes",
    "natural_key",
    "open_image",
    "pil_to_array",
    "read_header",
    "refuse_declared_bomb",
    "sniff_format",
]

# File extensions read as images (lower case) -> the format family, for messages.
IMAGE_EXTENSIONS = {
    ".png": "PNG",
    ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG",
    ".pgm": "PGM/PPM", ".ppm": "PGM/PPM", ".pbm": "PGM/PPM", ".pnm": "PGM/PPM",
    ".bmp": "BMP", ".dib": "BMP",
    ".tif": "TIFF", ".tiff": "TIFF",
}
# PIL format names a file's content may have (any of them, whatever its extension: a PNG saved as
# .jpg is read). PPM covers PBM/PGM/PPM; the JPEG plugin also opens cameras' multi-picture JPEGs (MPO).
PIL_FORMATS = ("PNG", "JPEG", "PPM", "BMP", "DIB", "TIFF")
DEFAULT_MAX_PIXELS = 50_000_000

# Magic numbers of common formats that are not allowed, for a precise message (never parsed).
_MAGIC = (
    (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"%PDF", "PDF"), (b"%!PS", "PostScript/EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"), (b"8BPS", "PSD"), (b"PK\x03\x04", "zip"), (b"\x00\x00\x01\x00", "ICO"),
    (b"qoif", "QOI"), (b"\xff\x0a", "JPEG XL"), (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"\xff\x4f\xff\x51", "JPEG 2000"),
)


class BadImage(ValueError):
    """An image file that cannot be used; ``kind`` is "format", "too_large" or "corrupt"."""

    def __init__(self, ref: str, kind: str, reason: str):
        super().__init__(f"{ref}: {reason}")
        self.ref = ref
        self.kind = kind
        self.reason = reason


def is_image_name(name: str) -> bool:
    """True when ``name``'s extension (case-insensitive) is in :data:`IMAGE_EXTENSIONS`."""
    dot = name.rfind(".")
    return dot >= 0 and name[dot:].lower() in IMAGE_EXTENSIONS


def is_unsafe_member(name: str) -> bool:
    """True for absolute names (/x, \\x, C:x) and names with a '..' component."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return True
    return ".." in re.split(r"[\\/]", name)


def natural_key(s: str) -> tuple:
    """Sort key ordering embedded numbers by value ("img2" < "img10"); ties broken by the string."""
    return tuple(int(t) if t.isdecimal() else t for t in re.split(r"(\d+)", s)), s


def max_file_bytes(max_pixels: int) -> int:
    """Largest file accepted for ``max_pixels``: 8 bytes per pixel (16-bit RGBA, uncompressed), >= 64 MiB."""
    return max(64 << 20, 8 * int(max_pixels))


# Magic numbers of the allowed formats: a file starting with one that PIL cannot open is corrupt.
_ALLOWED_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8", "JPEG"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"), (b"P1", "PBM"), (b"P2", "PGM"), (b"P3", "PPM"), (b"P4", "PBM"), (b"P5", "PGM"),
    (b"P6", "PPM"),
)


def sniff_allowed(head: bytes) -> str | None:
    """Name of the allowed format whose magic number ``head`` starts with, else None."""
    for magic, name in _ALLOWED_MAGIC:
        if head.startswith(magic):
            return name
    return None


def sniff_format(head: bytes) -> str | None:
    """Name of a known non-allowed format from a file's first bytes, else None (for messages)."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("latin-1").strip()
        return {"avif": "AVIF", "avis": "AVIF", "heic": "HEIC", "heix": "HEIC", "mif1": "HEIF"}.get(brand, "ISO media")
    if head[:1] == b"<":
        return "text/XML (e.g. SVG)"
    return None


EXIF_ORIENTATION = 0x0112
EXIF_FORMATS = ("JPEG", "MPO", "TIFF", "WEBP")  # formats whose files carry an EXIF orientation in practice


def pil_to_array(im: Image.Image) -> np.ndarray:
    """A loaded PIL image -> array in a dtype / layout accepted by preprocess_image, turned upright as its
    EXIF orientation says (a phone photo stored sideways is read as it is shown)."""
    if im.format in EXIF_FORMATS and im.getexif().get(EXIF_ORIENTATION, 1) != 1:
        im = ImageOps.exif_transpose(im)
    if im.mode in ("1", "L", "LA", "RGB", "RGBA", "I;16", "I;16L", "I;16B", "F"):
        return np.asarray(im)
    if im.mode in ("P", "PA"):
        return np.asarray(im.convert("RGBA"))
    if im.mode == "I":
        arr = np.asarray(im)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ValueError("32-bit integer image with values outside 0..65535")
        return arr.astype(np.uint16)
    return np.asarray(im.convert("RGB"))


def open_image(data: bytes | IO[bytes], ref: str, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               formats: tuple[str, ...] = PIL_FORMATS) -> Image.Image:
    """PIL image with only its header read (format, size, mode), checked; the caller closes it.

    Raises:
        BadImage: "format" (content not one of ``formats``), "too_large" (more than
            ``max_pixels`` pixels, or PIL's decompression-bomb limit), "corrupt" (header unreadable).
    """
    fp = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        im = Image.open(fp, formats=list(formats))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImage(ref, "too_large", f"image too large to decode safely ({e})") from None
    except Image.UnidentifiedImageError:
        try:
            fp.seek(0)
            head = fp.read(16)
        except Exception:  # noqa: BLE001 - only for the message
            head = b""
        other = sniff_format(head)
        allowed = "PNG, JPEG, PGM/PPM, BMP or TIFF"
        own = sniff_allowed(head)
        if own is not None:
            raise BadImage(ref, "corrupt", f"corrupt {own} header (starts like {own}, but cannot be read)") from None
        if other is not None:
            raise BadImage(ref, "format", f"content is {other}, not {allowed}") from None
        if not head:
            raise BadImage(ref, "corrupt", "empty file") from None
        raise BadImage(ref, "format", f"content is not {allowed} (unrecognised or corrupt header)") from None
    except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, struct.error, ... on bad headers
        raise BadImage(ref, "corrupt", f"unreadable image header ({type(e).__name__}: {e})") from None
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise BadImage(ref, "too_large",
                       f"{w}x{h} = {w * h:,} pixels exceeds max_pixels={max_pixels:,} (decompression-bomb guard); "
                       f"not decoded")
    if w < 1 or h < 1:
        im.close()
        raise BadImage(ref, "corrupt", f"empty image ({w}x{h})")
    return im


def decode_image(data: bytes | IO[bytes], ref: str, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 formats: tuple[str, ...] = PIL_FORMATS) -> np.ndarray:
    """Checked header (:func:`open_image`), then full decode -> array for ``preprocess_image``.

    Raises:
        BadImage: as :func:`open_image`, or "corrupt" for a file that fails to decode (truncated
            data, bad compressed stream, ...).
    """
    im = open_image(data, ref, max_pixels=max_pixels, formats=formats)
    try:
        with im:
            im.load()
            return pil_to_array(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImage(ref, "too_large", f"image too large to decode safely ({e})") from None
    except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, zlib.error, ... on bad data
        raise BadImage(ref, "corrupt", f"failed to decode ({type(e).__name__}: {e})") from None


def read_header(data: bytes | IO[bytes], ref: str, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                formats: tuple[str, ...] = PIL_FORMATS) -> tuple[str, tuple[int, int], str]:
    """(format, (width, height), mode) from the header only (:func:`open_image`'s checks), no decoding."""
    with open_image(data, ref, max_pixels=max_pixels, formats=formats) as im:
        return im.format or "", im.size, im.mode


def refuse_declared_bomb(fp: IO[bytes], ref: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """BadImage "too_large" when the image header at the start of the seekable stream ``fp`` declares more
    than ``max_pixels`` pixels (or trips PIL's decompression-bomb limit), reading the header only; then
    ``fp`` is rewound to 0. Content that is not an allowed image, or whose header cannot be read, passes:
    it is left to the decoder (or to whatever reads it next) to judge."""
    try:
        read_header(fp, ref, max_pixels=max_pixels)
    except BadImage as e:
        if e.kind == "too_large":
            raise
    fp.seek(0)


@contextlib.contextmanager
def bomb_warnings_as_errors():
    """Turn PIL's DecompressionBombWarning into an exception (a :class:`BadImage` "too_large" from
    :func:`open_image`) inside the block. Warning filters are process-wide: enter it from the main
    thread around a whole loading pass (worker threads started inside see it too), not per image."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield
