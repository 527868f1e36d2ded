"""Reading the images of a listed folder or zip: one entry -> checked, preprocessed uint8
``[size, size, channels]``; the report of unusable files against ``max_bad_fraction``; and the
per-item loader behind a lazy image folder (:class:`~siamjax.data.lazy.LazyImages`).
"""

from __future__ import annotations

import concurrent.futures
import math
import threading
import warnings
from typing import Callable

import numpy as np

from siamjax.data.decode import BadImage, decode_image, max_file_bytes, read_header
from siamjax.data.folder_layout import shown
from siamjax.data.preprocess import Preprocessing, preprocess_image
from siamjax.data.zipfolder import Entry, open_entry, read_entry

__all__ = ["LazyLoader", "Reader", "map_images", "report_bad"]


class Reader:
    """Checks and decodes one entry; thread-safe."""

    def __init__(self, src, spec: Preprocessing, max_pixels: int):
        self.src = src
        self.spec = spec
        self.max_pixels = int(max_pixels)
        self.limit = max_file_bytes(max_pixels)

    def header(self, entry: Entry) -> None:
        """Check ``entry``'s size and image header without decoding (BadImage otherwise)."""
        ref = self.src.display(entry)
        f = open_entry(self.src, entry, self.limit, ref)
        try:
            with f:
                read_header(f, ref, max_pixels=self.max_pixels)
        except BadImage:
            raise
        except Exception as e:  # noqa: BLE001 - zip CRC / read errors while PIL reads the header
            raise BadImage(ref, "corrupt", f"cannot read ({type(e).__name__}: {e})") from None

    def image(self, entry: Entry) -> np.ndarray:
        """``entry`` decoded and preprocessed: uint8 [size, size, channels] (BadImage otherwise)."""
        ref = self.src.display(entry)
        data = read_entry(self.src, entry, self.limit, ref)
        arr = decode_image(data, ref, max_pixels=self.max_pixels)
        try:
            return preprocess_image(arr, self.spec)
        except ValueError as e:
            raise BadImage(ref, "corrupt", f"cannot preprocess ({e})") from None


def map_images(fn: Callable[[int], object], n: int, threads: int) -> list:
    """[fn(i) or the BadImage it raised, for i < n], on ``threads`` threads."""

    def safe(i: int):
        try:
            return fn(i)
        except BadImage as e:
            return e

    if threads <= 1 or n < 64:
        return [safe(i) for i in range(n)]
    with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="siamjax-folder") as pool:
        return list(pool.map(safe, range(n), chunksize=32))


_KIND_TEXT = {
    "corrupt": "corrupt, truncated or unreadable image file(s)",
    "too_large": "image file(s) too large to decode safely (decompression-bomb guard: never decoded; "
                 "raise max_pixels if they are genuine)",
    "format": "file(s) whose content is not PNG, JPEG, PGM/PPM, BMP or TIFF despite the extension",
}


def report_bad(where: str, bad: list[BadImage], total: int, max_bad_fraction: float, stage: str) -> None:
    """ValueError naming the unusable files when more than ``max_bad_fraction`` of ``total``; else
    one warning per kind (attributed to the loader's caller)."""
    if not bad:
        return
    frac = len(bad) / total
    listed = [f"{b.ref!r} ({b.reason})" for b in bad]
    if frac > max_bad_fraction:
        raise ValueError(
            f"{len(bad)} of {total} image files in {where} ({frac:.1%}) cannot be used ({stage}), more than "
            f"max_bad_fraction={max_bad_fraction:g} allows: {shown(listed)}. Fix or remove these files, or set "
            f"max_bad_fraction (config.data.max_bad_fraction) to at least {math.ceil(frac * 1000) / 1000:g} to skip them")
    for kind in ("corrupt", "too_large", "format"):
        these = [f"{b.ref!r} ({b.reason})" for b in bad if b.kind == kind]
        if these:
            warnings.warn(
                f"skipped {len(these)} {_KIND_TEXT[kind]} in {where}: {shown(these)} "
                f"[{len(bad)} of {total} files unusable ({frac:.2%}), within max_bad_fraction={max_bad_fraction:g}]",
                stacklevel=3)


class LazyLoader:
    """``item -> uint8 [size, size, channels]`` for LazyImages.

    A file that passed the header check at open but fails to decode later is warned about once
    (naming it) and replaced, deterministically, by the next image of the same class (in file order,
    wrapping around) that decodes; once the files found unusable (at open and since) exceed
    ``max_bad_fraction`` of the dataset, reading raises ValueError naming them.
    """

    def __init__(self, reader: Reader, entries: list[Entry], labels: np.ndarray, class_names: list[str],
                 where: str, bad_at_open: list[BadImage], total: int, max_bad_fraction: float):
        self.reader = reader
        self.entries = entries
        self.labels = labels
        self.class_names = class_names
        self.where = where
        self.bad_at_open = list(bad_at_open)
        self.total = total
        self.max_bad_fraction = max_bad_fraction
        self.members = [np.flatnonzero(labels == c).tolist() for c in range(len(class_names))]
        self.failed: dict[int, BadImage] = {}
        self.lock = threading.Lock()

    def _record(self, i: int, e: BadImage) -> None:
        with self.lock:
            new = i not in self.failed
            self.failed[i] = e
            bad = self.bad_at_open + list(self.failed.values())
        if len(bad) / self.total > self.max_bad_fraction:
            report_bad(self.where, bad, self.total, self.max_bad_fraction, "found while reading lazily")
        if new:
            warnings.warn(
                f"{self.where}: {e.ref!r} passed the header check at open but fails to decode ({e.reason}); "
                f"using the next readable image of its class instead [{len(bad)} of {self.total} files unusable, "
                f"max_bad_fraction={self.max_bad_fraction:g}]", stacklevel=2)

    def __call__(self, i: int) -> np.ndarray:
        with self.lock:
            known_bad = i in self.failed
        if not known_bad:
            try:
                return self.reader.image(self.entries[i])
            except BadImage as e:
                self._record(i, e)
        c = int(self.labels[i])
        rows = self.members[c]
        k = rows.index(i)
        for j in rows[k + 1:] + rows[:k]:
            with self.lock:
                if j in self.failed:
                    continue
            try:
                return self.reader.image(self.entries[j])
            except BadImage as e:
                self._record(j, e)
        raise ValueError(f"no image of class {self.class_names[c]!r} in {self.where} can be decoded: "
                         f"{shown([repr(self.failed[j].ref) for j in rows if j in self.failed])}; fix or remove them")

