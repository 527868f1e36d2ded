"""Reading single files and images by path, where a path may run through a zip archive.

``data.zip/inner/folder`` names the folder ``inner/folder`` inside ``data.zip`` and
``data.zip/lists/pairs.csv`` a member (:class:`Location`). :class:`Root` reads files by relative path
from a folder, a zip or a folder inside a zip, never outside it (absolute paths, ``..`` components,
symbolic links in a zip, paths that resolve outside a plain folder and files over
:func:`~siamjax.data.decode.max_file_bytes` are refused), through the same sources and bounded reads
as the image-folder loader (:mod:`siamjax.data.zipfolder`). :func:`read_bytes` reads one file,
:func:`decode_checked` decodes with the checks of :mod:`siamjax.data.decode`, :func:`read_image` does
both. Members are read from the archive directly (nothing is extracted); every error names the path.
"""
from __future__ import annotations

import os
import pathlib
import zipfile

import numpy as np

from siamjax.data.decode import (DEFAULT_MAX_PIXELS, BadImage, bomb_warnings_as_errors, decode_image,
                                 is_unsafe_member, max_file_bytes)
from siamjax.data.zipfolder import Entry, FolderSource, ZipSource, inside, is_zip_symlink, read_entry

__all__ = ["Location", "Root", "decode_checked", "norm_path", "read_bytes", "read_image"]


class Location:
    """A folder or a file on disk, or one inside a zip archive (``archive.zip/inner/path``).

    ``path``: the folder, file or zip on disk; ``zip``: the archive (None for plain paths); ``inner``:
    the member or folder inside it, '/'-separated ("" for the whole archive)."""

    def __init__(self, path):
        self.text = os.fspath(path)
        p = pathlib.Path(self.text).expanduser()
        self.zip: pathlib.Path | None = None
        self.inner = ""
        if p.exists() and not (p.is_file() and zipfile.is_zipfile(p)):
            self.path = p  # plain folder or file
            return
        if p.is_file():  # a zip: its whole content
            self.path, self.zip = p, p
            return
        for anc in p.parents:
            if anc.is_file():
                if not zipfile.is_zipfile(anc):
                    raise ValueError(f"{self.text}: {anc} is a file but not a zip archive, so {p.relative_to(anc)} "
                                     f"cannot be inside it")
                self.path, self.zip, self.inner = anc, anc, p.relative_to(anc).as_posix()
                if is_unsafe_member(self.inner):
                    raise ValueError(f"{self.text}: member path with '..' refused")
                return
            if anc.exists():
                break
        raise FileNotFoundError(f"{self.text} does not exist (neither a file or folder, nor a path inside a .zip "
                                f"such as data.zip/inner/folder)")


def norm_path(rel: str) -> str:
    """A relative path as written in a list: stripped, '/'-separated, without leading ``./``."""
    rel = rel.strip().replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    return rel


class Root:
    """Reads files by relative path from a folder, a zip, or a folder inside a zip; never outside it."""

    def __init__(self, path):
        self.loc = Location(path)
        self.max_bytes = max_file_bytes(DEFAULT_MAX_PIXELS)
        if self.loc.zip is None:
            if not self.loc.path.is_dir():
                raise ValueError(f"--root {self.loc.text} is a file, not a folder or a zip")
            self.src = FolderSource(self.loc.path)
            self.real = self.src.real
            self.members = None
        else:
            self.src = ZipSource(self.loc.zip)
            infos = self.src.infos()
            self.members = {i.filename: i for i in infos if not is_unsafe_member(i.filename) and not i.is_dir()}
            self.prefix = self.loc.inner.strip("/") + "/" if self.loc.inner.strip("/") else ""
            if self.prefix and not any(n.startswith(self.prefix) for n in self.members):
                raise FileNotFoundError(f"{self.loc.text}: the zip {self.loc.zip} has no folder {self.prefix!r}")

    def __str__(self) -> str:
        return self.loc.text

    def _hint(self, rel: str) -> str:
        if self.members is None:
            return ""
        hits = [n for n in self.members if n.endswith("/" + rel)]
        if hits:
            inner = hits[0][: -len(rel)].rstrip("/")
            return f" (the zip has {hits[0]!r}: pass --root {self.loc.zip}/{inner})"
        return ""

    def _entry(self, rel: str) -> Entry:
        if self.members is not None:
            info = self.members.get(self.prefix + rel)
            if info is None:
                raise FileNotFoundError(f"image {rel!r} not found in {self}{self._hint(rel)}")
            if is_zip_symlink(info):
                raise ValueError(f"image {rel!r} in {self} is a symbolic link: not followed")
            return Entry(tuple(rel.split("/")), info, info.file_size)
        full = os.path.realpath(os.path.join(self.real, rel))
        if not inside(full, self.real):
            raise ValueError(f"image {rel!r} resolves outside {self} ({full}): refused")
        if not os.path.isfile(full):
            raise FileNotFoundError(f"image {rel!r} not found in {self} (looked for {full})")
        return Entry(tuple(rel.split("/")), full, os.path.getsize(full))

    def read(self, rel: str) -> bytes:
        """The bytes of the file ``rel`` (relative to the root); FileNotFoundError / ValueError naming it."""
        rel = norm_path(rel)
        if not rel or is_unsafe_member(rel):
            raise ValueError(f"image path {rel!r} is absolute or has a '..' component; paths must stay inside {self}")
        entry = self._entry(rel)
        ref = f"{self}/{rel}"
        try:
            return read_entry(self.src, entry, self.max_bytes, ref)
        except BadImage as e:  # too large to decode safely, or unreadable
            raise ValueError(f"cannot use image {ref!r}: {e.reason}") from None


def read_bytes(path) -> tuple[bytes, str]:
    """(content, display name) of a file on disk or inside a zip (``a.zip/inner/file``)."""
    loc = Location(path)
    if loc.zip is None:
        if not loc.path.is_file():
            raise ValueError(f"{loc.text} is a folder, not a file")
        return loc.path.read_bytes(), loc.text
    if not loc.inner:
        raise ValueError(f"{loc.text} is a zip archive; name a member inside it, e.g. {loc.text}/folder/file")
    try:
        with zipfile.ZipFile(loc.zip) as zf:
            return zf.read(loc.inner), loc.text
    except KeyError:
        raise FileNotFoundError(f"{loc.text}: no member {loc.inner!r} in {loc.zip}") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"cannot read the zip archive {loc.zip} ({e})") from None


def decode_checked(data: bytes, ref: str, what: str = "") -> np.ndarray:
    """Decoded image array (:func:`~siamjax.data.decode.decode_image`, decompression-bomb warnings as
    errors); ValueError ``cannot use image REF WHAT: reason`` otherwise."""
    try:
        with bomb_warnings_as_errors():
            return decode_image(data, ref)
    except BadImage as e:
        raise ValueError(f"cannot use image {ref!r}{what}: {e.reason}") from None


def read_image(path) -> np.ndarray:
    """The decoded image at ``path`` (a file, or a zip member ``a.zip/inner/img.png``)."""
    data, ref = read_bytes(path)
    return decode_checked(data, ref)
