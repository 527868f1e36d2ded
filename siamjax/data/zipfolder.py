"""A folder or a zip archive as a read-only tree of files: listed without decoding, read safely.

One implementation for every reader of untrusted folders and zips (the image-folder loader
:mod:`siamjax.data.folder`, the path reader :mod:`siamjax.data.paths`):

* :class:`FolderSource` / :class:`ZipSource` list their files as :class:`Entry` (path components,
  what to open, size in bytes) in a :class:`Tree`; entries that could lead outside the top (zip
  names with an absolute path or ``..``, symbolic links leaving the folder, links to folders,
  special files, symbolic links stored in a zip) are never read and are named in ``Tree.skipped``;
* :func:`open_entry` / :func:`read_entry` open or read one entry under a byte limit
  (:func:`~siamjax.data.decode.max_file_bytes`), raising :class:`~siamjax.data.decode.BadImage`
  ("too_large" or "corrupt") that names it; :func:`read_entry` refuses an entry over
  :data:`HEADER_CHECK_BYTES` whose image header declares more than ``max_pixels`` pixels before
  reading (for a zip member: inflating) the rest of it. Files are only read, never written.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import stat
import threading
import weakref
import zipfile

from siamjax.data.decode import BadImage, is_unsafe_member, refuse_declared_bomb

__all__ = ["HEADER_CHECK_BYTES", "Entry", "FolderSource", "Tree", "ZipSource", "hidden", "inside", "is_zip_symlink",
           "open_entry", "read_entry"]

# Entries larger than this have their image header checked against max_pixels before they are read
# whole: reading a smaller one costs less than the check would save (the decoder checks it next).
HEADER_CHECK_BYTES = 1 << 20

# Names skipped silently wherever they occur (besides names starting with ".").
JUNK = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini", "ehthumbs.db", "Icon\r"})


def hidden(name: str) -> bool:
    """True for hidden names (``.name``) and OS clutter (``__MACOSX``, ``Thumbs.db``, ...)."""
    return name.startswith(".") or name in JUNK


def inside(path: str, root: str) -> bool:
    """True when the (real) ``path`` is ``root`` or below it."""
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:
        return False


def is_zip_symlink(info: zipfile.ZipInfo) -> bool:
    """True for a zip member stored as a symbolic link (never followed)."""
    return stat.S_ISLNK(info.external_attr >> 16)


@dataclasses.dataclass(frozen=True)
class Entry:
    parts: tuple[str, ...]  # path components below the source's top
    ref: object  # folder: absolute path to open; zip: zipfile.ZipInfo
    size: int  # bytes (zip: the declared uncompressed size)


@dataclasses.dataclass
class Tree:
    files: list[Entry]
    dirs: set[tuple[str, ...]]
    skipped: list[str]  # entries never read because they could lead outside ROOT, with the reason


class FolderSource:
    kind = "folder"

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.real = os.path.realpath(path)

    def list(self) -> Tree:
        files: list[Entry] = []
        dirs: set[tuple[str, ...]] = set()
        skipped: list[str] = []
        stack: list[tuple[tuple[str, ...], str]] = [((), self.real)]
        while stack:
            prefix, folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    entries = list(it)
            except OSError as e:
                if not prefix:
                    raise
                skipped.append(f"{'/'.join(prefix)}/ (cannot list: {e.strerror or e})")
                continue
            for e in entries:
                if hidden(e.name):
                    continue
                parts = prefix + (e.name,)
                rel = "/".join(parts)
                try:
                    if e.is_symlink():
                        target = os.path.realpath(e.path)
                        if not inside(target, self.real):
                            skipped.append(f"{rel} (symbolic link to outside the folder)")
                        elif os.path.isdir(target):
                            skipped.append(f"{rel} (symbolic link to a folder: not followed)")
                        else:
                            st = os.stat(target)
                            if stat.S_ISREG(st.st_mode):
                                files.append(Entry(parts, target, st.st_size))
                            else:
                                skipped.append(f"{rel} (link to something that is not a regular file)")
                    elif e.is_dir(follow_symlinks=False):
                        dirs.add(parts)
                        stack.append((parts, e.path))
                    elif e.is_file(follow_symlinks=False):
                        files.append(Entry(parts, e.path, e.stat(follow_symlinks=False).st_size))
                    else:
                        skipped.append(f"{rel} (not a regular file)")
                except OSError as err:
                    skipped.append(f"{rel} ({err.strerror or err})")
        return Tree(files, dirs, skipped)

    def display(self, entry: Entry) -> str:
        return "/".join(entry.parts)

    def open_stream(self, entry: Entry):
        # O_NOFOLLOW: a file swapped for a link after listing is not followed; O_NONBLOCK: a file
        # swapped for a FIFO does not block (regular files ignore it).
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(entry.ref, flags)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError("not a regular file")
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        pass


def _close_all(handles: list) -> None:
    for zf in handles:
        try:
            zf.close()
        except Exception:  # noqa: BLE001
            pass


class ZipSource:
    """A zip archive read through one ``ZipFile`` per thread; ``hint`` ends the message of an
    unreadable archive (what the caller expected)."""

    kind = "zip"

    def __init__(self, path: pathlib.Path, hint: str = ""):
        self.path = path
        self.hint = hint
        self._local = threading.local()
        self._lock = threading.Lock()
        self._handles: list[zipfile.ZipFile] = []
        weakref.finalize(self, _close_all, self._handles)

    def _zf(self) -> zipfile.ZipFile:
        zf = getattr(self._local, "zf", None)
        if zf is None:  # one ZipFile per thread: no shared file position
            zf = zipfile.ZipFile(self.path)
            self._local.zf = zf
            with self._lock:
                self._handles.append(zf)
        return zf

    def infos(self) -> list[zipfile.ZipInfo]:
        """Every member, as stored; ValueError naming the archive when it cannot be read."""
        try:
            return self._zf().infolist()
        except (zipfile.BadZipFile, OSError) as e:
            raise ValueError(f"cannot read the zip archive {self.path} ({e})"
                             + (f"; {self.hint}" if self.hint else "")) from None

    def list(self) -> Tree:
        infos = self.infos()
        by_name: dict[tuple[str, ...], Entry] = {}
        dirs: set[tuple[str, ...]] = set()
        skipped: list[str] = []
        for info in infos:
            name = info.filename
            if is_unsafe_member(name):
                skipped.append(f"{name!r} (zip member with an absolute path or '..')")
                continue
            parts = tuple(p for p in re.split(r"[\\/]", name) if p not in ("", "."))
            if not parts or any(hidden(p) for p in parts):
                continue
            if info.is_dir():
                for k in range(1, len(parts) + 1):
                    dirs.add(parts[:k])
                continue
            if is_zip_symlink(info):
                skipped.append(f"{name!r} (symbolic link in the zip: not followed)")
                continue
            for k in range(1, len(parts)):
                dirs.add(parts[:k])
            by_name[parts] = Entry(parts, info, info.file_size)  # a repeated name: the last one, as zipfile reads
        return Tree(list(by_name.values()), dirs, skipped)

    def display(self, entry: Entry) -> str:
        return entry.ref.filename

    def open_stream(self, entry: Entry):
        return self._zf().open(entry.ref)

    def close(self) -> None:
        with self._lock:
            handles = list(self._handles)
            self._handles.clear()
        _close_all(handles)
        self._local = threading.local()


def open_entry(src: FolderSource | ZipSource, entry: Entry, limit: int, ref: str):
    """Binary stream of ``entry`` (the caller closes it); BadImage "too_large" when its size is over
    ``limit`` bytes, "corrupt" when it cannot be opened."""
    if entry.size > limit:
        raise BadImage(ref, "too_large", f"file of {entry.size:,} bytes exceeds {limit:,} bytes "
                                         f"(8 x max_pixels; decompression-bomb guard); not decoded")
    try:
        return src.open_stream(entry)
    except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError) as e:  # RuntimeError: encrypted
        raise BadImage(ref, "corrupt", f"cannot read ({type(e).__name__}: {e})") from None


def read_entry(src: FolderSource | ZipSource, entry: Entry, limit: int, ref: str, *,
               max_pixels: int | None = None) -> bytes:
    """The bytes of ``entry``, at most ``limit`` of them (:func:`open_entry`'s checks; BadImage
    "too_large" when more come than declared, "corrupt" on a read error or a bad zip CRC).

    An entry over :data:`HEADER_CHECK_BYTES` bytes that is an image whose header declares more than
    ``max_pixels`` pixels is refused (BadImage "too_large", the decoder's message) after reading its header
    only, so that a small zip cannot make it inflate hundreds of MB. ``max_pixels`` defaults to
    ``limit // 8``, the ``max_pixels`` that ``max_file_bytes(max_pixels) == limit`` stands for (exact
    from 8,388,608 pixels up; below, the 64 MiB floor of ``limit`` bounds the read and the decoder's own
    check refuses the image)."""
    max_pixels = limit // 8 if max_pixels is None else int(max_pixels)
    f = open_entry(src, entry, limit, ref)
    try:
        with f:
            if entry.size > HEADER_CHECK_BYTES and f.seekable():
                refuse_declared_bomb(f, ref, max_pixels=max_pixels)
            data = f.read(limit + 1)
    except BadImage:
        raise
    except Exception as e:  # noqa: BLE001 - OSError, zipfile.BadZipFile (bad CRC), zlib.error
        raise BadImage(ref, "corrupt", f"cannot read ({type(e).__name__}: {e})") from None
    if len(data) > limit:
        raise BadImage(ref, "too_large", f"file larger than {limit:,} bytes; not decoded")
    return data
