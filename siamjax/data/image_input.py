"""Images given to the Python API (``Model.embed`` / ``score`` / ``preprocess``, ``Ensemble``, ``Gallery``)
as file paths or PIL images, decoded exactly as the data loaders decode files.

:func:`to_arrays` turns each path (``str`` / ``os.PathLike``; a member of a zip as ``a.zip/inner/img.png``)
into the array :func:`siamjax.data.paths.read_image` returns (the loaders' checks and conversions:
allowed formats only, size limits, palette -> RGBA, CMYK -> RGB, 32-bit integer -> 16-bit, ...), and each
PIL image into the array :func:`siamjax.data.decode.pil_to_array` returns for it, the conversion the
loaders apply after opening a file. Arrays pass through unchanged and are taken as pixel values: a
palette image's ``np.asarray`` holds palette indices, which cannot be told from grey levels, and a CMYK
image's looks like RGBA, so pass such images as paths or PIL images.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
from PIL import Image

from siamjax.data.decode import pil_to_array
from siamjax.data.paths import read_image

__all__ = ["to_arrays"]


def _is_single(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike, Image.Image))


def _pil(im: Image.Image, i: int) -> np.ndarray:
    try:
        im.load()  # a lazily opened image (Image.open) is decoded here
        return pil_to_array(im)
    except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, zlib.error, ... on bad data
        name = getattr(im, "filename", "") or f"{im.mode} {im.size[0]}x{im.size[1]}"
        raise ValueError(f"image {i}: cannot use the PIL image ({name}): {type(e).__name__}: {e}") from None


def _one(x: Any, i: int) -> Any:
    if isinstance(x, Image.Image):
        return _pil(x, i)
    if isinstance(x, (str, os.PathLike)):
        return read_image(x)  # FileNotFoundError / ValueError naming the path
    return x


def to_arrays(images: Any) -> Any:
    """Images as the Python API takes them -> what :func:`~siamjax.data.preprocess.preprocess_batch` takes.

    Args:
        images: a NumPy array (a stack [N, H, W] / [N, H, W, C]: returned as given), or a sequence (list,
            tuple, any iterable) whose items are each an array of pixel values, a file path (``str`` or
            ``pathlib.Path``, possibly through a zip: ``a.zip/inner/img.png``) or a PIL image, mixed
            freely; a lone path or PIL image counts as a list of one.

    Returns:
        ``images`` itself for an array (or anything array-like that is not a PIL image); otherwise a list
        with each path decoded as :func:`siamjax.data.paths.read_image` decodes it and each PIL image
        converted by :func:`siamjax.data.decode.pil_to_array` (items already arrays kept as they are).

    Raises:
        FileNotFoundError: a path that does not exist. ValueError: a file that is not an allowed image,
            too large or corrupt, or a PIL image that fails to load (each naming the image).
    """
    if isinstance(images, np.ndarray):
        return images
    if _is_single(images):
        images = [images]
    elif hasattr(images, "__array__"):  # a jax array, ...
        return images
    return [_one(x, i) for i, x in enumerate(images)]
