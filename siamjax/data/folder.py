"""Your own images: a class-per-subfolder image folder (or a zip of one) -> :class:`LabeledImages`.

Layouts (``ROOT`` is the folder, or the inside of the zip)::

    ROOT/<class>/<image>              one level: classes "cat", "dog", ...; one group named after ROOT
    ROOT/<group>/<class>/<image>      two levels (like Omniglot's alphabet/character): classes
                                      "group/class", groups "group"

How the layout is found, from the listing only (nothing is decoded to decide):

1. Wrapping folders are looked through: while every image file lies under one and the same top-level
   folder, at least two levels below it, that folder becomes ROOT (so a zip holding ``data/<class>/...``
   or ``data/<group>/<class>/...`` reads like the folder ``data``; the one-level group is then named
   after that folder).
2. Image files are counted by depth below ROOT: two levels deep (``<class>/<image>``) or three
   (``<group>/<class>/<image>``). Whichever depth holds more images is the layout (ties: one level);
   image files at any other depth (loose in ROOT, or in deeper subfolders) are ignored with a warning.
3. Classes are the folders at the class level (even empty ones, which are reported and excluded);
   groups, classes and files are in natural order ("img2" before "img10"; ties by plain string order).

Labels are dense class ids in that order; ``instances`` is an image's rank within its class.

Images: ``.png``, ``.jpg``/``.jpeg``/``.jpe``/``.jfif``, ``.pgm``/``.ppm``/``.pbm``/``.pnm``,
``.bmp``/``.dib``, ``.tif``/``.tiff`` (case-insensitive), grey or colour, any size; each goes through
:func:`~siamjax.data.preprocess.preprocess_image` to uint8 ``[size, size, channels]``. A file's
content must be one of those formats (any of them: a PNG named ``.jpg`` is read); files with other
extensions inside the class (or group) folders are ignored and counted in one warning; such files
directly in ROOT (a README, a labels.csv) and hidden files and folders (``.name``), ``__MACOSX``,
``Thumbs.db`` and ``desktop.ini`` are skipped silently.

In memory or lazy: ``lazy=None`` decodes everything at open unless the dataset has more than
:data:`LAZY_AUTO_IMAGES` images or would take more than :data:`LAZY_AUTO_BYTES` decoded; then images
are a :class:`~siamjax.data.lazy.LazyImages` that decodes rows on demand (LRU cache of
``cache_items`` decoded images, a small decode thread pool; zip members are read through one
``ZipFile`` per thread). Eager and lazy loading give identical arrays.

Bad input (see :func:`load_image_folder`): every error names the path and what to do; skipped files
are counted in one warning per reason, naming the first few. Nothing outside ROOT is ever read: zip
members with an absolute path or a ``..`` component, symbolic links that leave ROOT, links to folders
and special files (FIFOs, devices) are skipped, counted and warned about. Files are only read, never
written, moved or deleted.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import math
import os
import pathlib
import re
import stat
import threading
import warnings
import weakref
import zipfile
from typing import Callable, Sequence

import numpy as np

from siamjax.data.dataset import LabeledImages, rank_within_class
from siamjax.data.decode import (
    BadImage,
    IMAGE_EXTENSIONS,
    bomb_warnings_as_errors,
    decode_image,
    is_image_name,
    is_unsafe_member,
    max_file_bytes,
    natural_key,
    read_header,
)
from siamjax.data.lazy import DEFAULT_CACHE_ITEMS, LazyImages
from siamjax.data.preprocess import Preprocessing, preprocess_image

__all__ = ["load_image_folder", "split_dataset", "parse_lazy", "LAZY_AUTO_IMAGES", "LAZY_AUTO_BYTES"]

# lazy=None reads lazily above either bound (images listed; bytes once preprocessed).
LAZY_AUTO_IMAGES = 20_000
LAZY_AUTO_BYTES = 256 << 20
# Names skipped silently wherever they occur (besides names starting with ".").
_JUNK = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini", "ehthumbs.db", "Icon\r"})
_SHOW = 5  # names listed in a message
_EXTS = " ".join(IMAGE_EXTENSIONS)
EXPECTED = (
    "expected one subfolder per class holding that class's images, ROOT/<class>/<image> "
    "(or two levels, ROOT/<group>/<class>/<image>), as a folder or a .zip of one; "
    f"image extensions: {_EXTS}"
)


# ----------------------------------------------------------------------------------------
# Options


def parse_lazy(value) -> bool | None:
    """``lazy`` setting -> None (auto) / True / False.

    Accepts None, bools, the config's strings ``"auto"`` / ``"yes"`` / ``"no"`` (also on/off,
    true/false, 1/0, case-insensitive) and the ints -1 (auto) / 0 / 1.
    """
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    if isinstance(value, (int, np.integer)) and int(value) in (-1, 0, 1):
        return None if int(value) == -1 else bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("auto", "", "-1", "none"):
            return None
        if v in ("yes", "on", "true", "1", "lazy"):
            return True
        if v in ("no", "off", "false", "0", "eager"):
            return False
    raise ValueError(f"lazy={value!r}; use 'auto' (lazy above {LAZY_AUTO_IMAGES:,} images), 'yes' or 'no'")


def _shown(items: Sequence[str], n: int = _SHOW) -> str:
    head = ", ".join(items[:n])
    return head + (f", ... ({len(items)} in all)" if len(items) > n else "")


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in _JUNK


# ----------------------------------------------------------------------------------------
# Sources: a folder or a zip, listed without decoding, read thread-safely


@dataclasses.dataclass(frozen=True)
class _Entry:
    parts: tuple[str, ...]  # path components below the source's top
    ref: object  # folder: absolute path to open; zip: zipfile.ZipInfo
    size: int  # bytes (zip: the declared uncompressed size)


@dataclasses.dataclass
class _Tree:
    files: list[_Entry]
    dirs: set[tuple[str, ...]]
    skipped: list[str]  # entries never read because they could lead outside ROOT, with the reason


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:
        return False


class _FolderSource:
    kind = "folder"

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.real = os.path.realpath(path)

    def list(self) -> _Tree:
        files: list[_Entry] = []
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
                if _hidden(e.name):
                    continue
                parts = prefix + (e.name,)
                rel = "/".join(parts)
                try:
                    if e.is_symlink():
                        target = os.path.realpath(e.path)
                        if not _inside(target, self.real):
                            skipped.append(f"{rel} (symbolic link to outside the folder)")
                        elif os.path.isdir(target):
                            skipped.append(f"{rel} (symbolic link to a folder: not followed)")
                        else:
                            st = os.stat(target)
                            if stat.S_ISREG(st.st_mode):
                                files.append(_Entry(parts, target, st.st_size))
                            else:
                                skipped.append(f"{rel} (link to something that is not a regular file)")
                    elif e.is_dir(follow_symlinks=False):
                        dirs.add(parts)
                        stack.append((parts, e.path))
                    elif e.is_file(follow_symlinks=False):
                        files.append(_Entry(parts, e.path, e.stat(follow_symlinks=False).st_size))
                    else:
                        skipped.append(f"{rel} (not a regular file)")
                except OSError as err:
                    skipped.append(f"{rel} ({err.strerror or err})")
        return _Tree(files, dirs, skipped)

    def display(self, entry: _Entry) -> str:
        return "/".join(entry.parts)

    def open_stream(self, entry: _Entry):
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


class _ZipSource:
    kind = "zip"

    def __init__(self, path: pathlib.Path):
        self.path = path
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

    def list(self) -> _Tree:
        try:
            infos = self._zf().infolist()
        except (zipfile.BadZipFile, OSError) as e:
            raise ValueError(f"cannot read the zip archive {self.path} ({e}); {EXPECTED}") from None
        by_name: dict[tuple[str, ...], _Entry] = {}
        dirs: set[tuple[str, ...]] = set()
        skipped: list[str] = []
        for info in infos:
            name = info.filename
            if is_unsafe_member(name):
                skipped.append(f"{name!r} (zip member with an absolute path or '..')")
                continue
            parts = tuple(p for p in re.split(r"[\\/]", name) if p not in ("", "."))
            if not parts or any(_hidden(p) for p in parts):
                continue
            if info.is_dir():
                for k in range(1, len(parts) + 1):
                    dirs.add(parts[:k])
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                skipped.append(f"{name!r} (symbolic link in the zip: not followed)")
                continue
            for k in range(1, len(parts)):
                dirs.add(parts[:k])
            by_name[parts] = _Entry(parts, info, info.file_size)  # a repeated name: the last one, as zipfile reads
        return _Tree(list(by_name.values()), dirs, skipped)

    def display(self, entry: _Entry) -> str:
        return entry.ref.filename

    def open_stream(self, entry: _Entry):
        return self._zf().open(entry.ref)

    def close(self) -> None:
        with self._lock:
            handles = list(self._handles)
            self._handles.clear()
        _close_all(handles)
        self._local = threading.local()


def _resolve(path) -> tuple[_FolderSource | _ZipSource, str]:
    """(source, default root name) for a folder or a zip file."""
    p = pathlib.Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"image folder {p} does not exist; {EXPECTED}")
    if p.is_dir():
        name = pathlib.Path(os.path.realpath(p)).name or str(p)
        return _FolderSource(p), name
    if not p.is_file():
        raise ValueError(f"{p} is neither a folder nor a zip file; {EXPECTED}")
    if not zipfile.is_zipfile(p):
        raise ValueError(f"{p} is a file but not a zip archive; pass the folder holding one subfolder per class, "
                         f"or a .zip of it ({EXPECTED})")
    name = p.name[:-4] if p.name.lower().endswith(".zip") else p.stem
    return _ZipSource(p), name


# ----------------------------------------------------------------------------------------
# Layout


@dataclasses.dataclass
class _Layout:
    levels: int  # 1: <class>/<image>; 2: <group>/<class>/<image>
    root_name: str  # the one-level group's name
    prefix: tuple[str, ...]  # wrapping folders looked through
    classes: dict[tuple[str, ...], list[_Entry]]  # class key (1 or 2 parts) -> image entries, all sorted
    ignored_images: list[str]  # image files outside the layout
    unknown: list[_Entry]  # files with other extensions


def _strip(tree: _Tree, top: str) -> _Tree:
    return _Tree(
        [dataclasses.replace(f, parts=f.parts[1:]) for f in tree.files if f.parts[0] == top and len(f.parts) > 1],
        {d[1:] for d in tree.dirs if d[0] == top and len(d) > 1},
        tree.skipped,
    )


def _layout(src, tree: _Tree, default_name: str) -> _Layout:
    where = src.path
    prefix: tuple[str, ...] = ()
    while True:
        images = [f for f in tree.files if is_image_name(f.parts[-1])]
        tops = {f.parts[0] for f in images}
        if len(tops) != 1 or any(len(f.parts) < 3 for f in images):
            break
        (top,) = tops
        tree = _strip(tree, top)
        prefix += (top,)
    images = [f for f in tree.files if is_image_name(f.parts[-1])]
    unknown = [f for f in tree.files if not is_image_name(f.parts[-1])]
    root_txt = f"{where}" + (f" (inside {'/'.join(prefix)}/)" if prefix else "")
    if not tree.files and not tree.dirs:
        extra = f" ({len(tree.skipped)} entries skipped: {_shown(tree.skipped)})" if tree.skipped else ""
        raise ValueError(f"{root_txt} is empty{extra}; {EXPECTED}")
    depth = collections.Counter(len(f.parts) for f in images)
    n2, n3 = depth[2], depth[3]
    if n2 == 0 and n3 == 0:
        if not images:
            others = collections.Counter(os.path.splitext(f.parts[-1])[1].lower() or "(none)" for f in unknown)
            found = (", ".join(f"{k}: {v}" for k, v in others.most_common(8))) if others else "no files"
            raise ValueError(f"no image files in {root_txt} (found {found}; "
                             f"{len(tree.dirs)} folder(s)); {EXPECTED}")
        if depth[1]:
            raise ValueError(f"{root_txt} holds {depth[1]} image(s) directly but no class subfolders with images; "
                             f"move each class's images into its own subfolder: {EXPECTED}")
        deepest = sorted("/".join(f.parts) for f in images)
        raise ValueError(f"the images in {root_txt} are nested too deep ({_shown(deepest, 3)}); "
                         f"{EXPECTED}: pass the folder that holds the class folders")
    levels = 2 if n3 > n2 else 1
    keep = levels + 1
    ignored = sorted(("/".join(prefix + f.parts) for f in images if len(f.parts) != keep), key=natural_key)
    classes: dict[tuple[str, ...], list[_Entry]] = {d: [] for d in tree.dirs if len(d) == levels}
    for f in images:
        if len(f.parts) == keep:
            classes.setdefault(f.parts[:levels], []).append(f)
    ordered = sorted(classes, key=lambda k: tuple(natural_key(p) for p in k))
    root_name = prefix[-1] if prefix else default_name
    return _Layout(
        levels, root_name, prefix,
        {k: sorted(classes[k], key=lambda f: natural_key(f.parts[-1])) for k in ordered},
        ignored, unknown,
    )


# ----------------------------------------------------------------------------------------
# Reading one image


class _Reader:
    """Checks and decodes one entry; thread-safe."""

    def __init__(self, src, spec: Preprocessing, max_pixels: int):
        self.src = src
        self.spec = spec
        self.max_pixels = int(max_pixels)
        self.limit = max_file_bytes(max_pixels)

    def _open(self, entry: _Entry, ref: str):
        if entry.size > self.limit:
            raise BadImage(ref, "too_large", f"file of {entry.size:,} bytes exceeds {self.limit:,} bytes "
                                             f"(8 x max_pixels; decompression-bomb guard); not decoded")
        try:
            return self.src.open_stream(entry)
        except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError) as e:  # RuntimeError: encrypted
            raise BadImage(ref, "corrupt", f"cannot read ({type(e).__name__}: {e})") from None

    def header(self, entry: _Entry) -> None:
        ref = self.src.display(entry)
        f = self._open(entry, ref)
        try:
            with f:
                read_header(f, ref, max_pixels=self.max_pixels)
        except BadImage:
            raise
        except Exception as e:  # noqa: BLE001 - zip CRC / read errors while PIL reads the header
            raise BadImage(ref, "corrupt", f"cannot read ({type(e).__name__}: {e})") from None

    def image(self, entry: _Entry) -> np.ndarray:
        ref = self.src.display(entry)
        f = self._open(entry, ref)
        try:
            with f:
                data = f.read(self.limit + 1)
        except Exception as e:  # noqa: BLE001 - OSError, zipfile.BadZipFile (bad CRC), zlib.error
            raise BadImage(ref, "corrupt", f"cannot read ({type(e).__name__}: {e})") from None
        if len(data) > self.limit:
            raise BadImage(ref, "too_large", f"file larger than {self.limit:,} bytes; not decoded")
        arr = decode_image(data, ref, max_pixels=self.max_pixels)
        try:
            return preprocess_image(arr, self.spec)
        except ValueError as e:
            raise BadImage(ref, "corrupt", f"cannot preprocess ({e})") from None


def _map(fn: Callable[[int], object], n: int, threads: int) -> list:
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


def _report_bad(where: str, bad: list[BadImage], total: int, max_bad_fraction: float, stage: str) -> None:
    if not bad:
        return
    frac = len(bad) / total
    listed = [f"{b.ref!r} ({b.reason})" for b in bad]
    if frac > max_bad_fraction:
        raise ValueError(
            f"{len(bad)} of {total} image files in {where} ({frac:.1%}) cannot be used ({stage}), more than "
            f"max_bad_fraction={max_bad_fraction:g} allows: {_shown(listed)}. Fix or remove these files, or set "
            f"max_bad_fraction (config.max_bad_fraction) to at least {math.ceil(frac * 1000) / 1000:g} to skip them")
    for kind in ("corrupt", "too_large", "format"):
        these = [f"{b.ref!r} ({b.reason})" for b in bad if b.kind == kind]
        if these:
            warnings.warn(
                f"skipped {len(these)} {_KIND_TEXT[kind]} in {where}: {_shown(these)} "
                f"[{len(bad)} of {total} files unusable ({frac:.2%}), within max_bad_fraction={max_bad_fraction:g}]",
                stacklevel=3)


# ----------------------------------------------------------------------------------------
# Lazy loading


class _LazyLoader:
    """``item -> uint8 [size, size, channels]`` for LazyImages.

    A file that passed the header check at open but fails to decode later is warned about once
    (naming it) and replaced, deterministically, by the next image of the same class (in file order,
    wrapping around) that decodes; once the files found unusable (at open and since) exceed
    ``max_bad_fraction`` of the dataset, reading raises ValueError naming them.
    """

    def __init__(self, reader: _Reader, entries: list[_Entry], labels: np.ndarray, class_names: list[str],
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
            _report_bad(self.where, bad, self.total, self.max_bad_fraction, "found while reading lazily")
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
                         f"{_shown([repr(self.failed[j].ref) for j in rows if j in self.failed])}; fix or remove them")


# ----------------------------------------------------------------------------------------
# Public API


def load_image_folder(path, spec: Preprocessing, *, lazy: bool | None = None, cache_items: int = DEFAULT_CACHE_ITEMS,
                      max_bad_fraction: float = 0.01, max_pixels: int = 50_000_000,
                      min_images_per_class: int = 2) -> LabeledImages:
    """Read ``ROOT/<class>/<image>`` or ``ROOT/<group>/<class>/<image>`` (a folder or a zip; layout
    rules in the module docstring) into a :class:`LabeledImages` of uint8 ``[size, size, channels]``.

    Args:
        path: the folder, or a ``.zip`` of it.
        spec: :class:`Preprocessing` applied to every image (size, channels, polarity).
        lazy: None = automatic (lazy above :data:`LAZY_AUTO_IMAGES` images or :data:`LAZY_AUTO_BYTES`
            decoded), True = decode on demand (:class:`LazyImages`), False = decode all now. Also
            accepts "auto" / "yes" / "no" (:func:`parse_lazy`).
        cache_items: lazy only: decoded images kept in the LRU cache.
        max_bad_fraction: the largest share of the image files (allowed extension) that may be
            unusable (corrupt, too large, wrong format) and skipped; above it, ValueError.
        max_pixels: images whose header declares more pixels are never decoded (skipped, counted
            as unusable); files over 8 bytes per allowed pixel likewise.
        min_images_per_class: classes with fewer usable images are excluded with a warning
            (2: every class can form a positive pair).

    Returns:
        labels: dense class ids in natural order; class_names "class" (one level) or "group/class";
        groups: one group named after ROOT (one level) or the group folders; instances: rank of the
        image within its class (file order).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a folder or zip, an empty / image-less / class-less layout (the expected
            layout is stated), unusable files above ``max_bad_fraction`` (count, share and the
            first few named), fewer than 2 usable classes. Lazy loading raises ValueError from
            indexing when decoding failures found later exceed ``max_bad_fraction``.

    Warns (UserWarning, one per reason, first few names): skipped entries that could lead outside
    ROOT (zip names with an absolute path or '..', links leaving ROOT, links to folders, special
    files: never read), files with other extensions, image files outside the layout, unusable files
    within ``max_bad_fraction``, empty class folders, classes below ``min_images_per_class``.
    """
    if not isinstance(spec, Preprocessing):
        raise TypeError(f"spec must be a Preprocessing, got {type(spec).__name__}")
    lazy = parse_lazy(lazy)
    if not 0.0 <= float(max_bad_fraction) <= 1.0:
        raise ValueError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction!r}")
    if int(max_pixels) < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels!r}")
    if int(min_images_per_class) < 1:
        raise ValueError(f"min_images_per_class must be >= 1, got {min_images_per_class!r}")
    if int(cache_items) < 0:
        raise ValueError(f"cache_items must be >= 0, got {cache_items!r}")
    max_bad_fraction = float(max_bad_fraction)
    min_images = int(min_images_per_class)

    src, default_name = _resolve(path)
    try:
        tree = src.list()
        where = str(src.path)
        if tree.skipped:
            warnings.warn(f"skipped {len(tree.skipped)} entr{'y' if len(tree.skipped) == 1 else 'ies'} of {where} "
                          f"(never read, so that nothing outside it is read): {_shown(tree.skipped)}", stacklevel=2)
        lay = _layout(src, tree, default_name)
        unknown = [f for f in lay.unknown if len(f.parts) > 1]  # README, labels.csv ... beside the classes: silent
        if unknown:
            exts = collections.Counter(os.path.splitext(f.parts[-1])[1].lower() or "(no extension)" for f in unknown)
            names = sorted(("/".join(lay.prefix + f.parts) for f in unknown), key=natural_key)
            warnings.warn(
                f"ignored {len(unknown)} file(s) in {where} that are not images of a supported type "
                f"({', '.join(f'{k}: {v}' for k, v in exts.most_common(8))}; supported: {_EXTS}): {_shown(names)}",
                stacklevel=2)
        if lay.ignored_images:
            layout_txt = "<group>/<class>/<image>" if lay.levels == 2 else "<class>/<image>"
            warnings.warn(f"ignored {len(lay.ignored_images)} image file(s) of {where} outside its {layout_txt} "
                          f"layout (loose in a folder above the classes, or nested deeper): "
                          f"{_shown(lay.ignored_images)}", stacklevel=2)

        keys = list(lay.classes)
        entries = [e for k in keys for e in lay.classes[k]]
        key_of = [k for k in keys for _ in lay.classes[k]]
        total = len(entries)
        if lazy is None:
            lazy = total > LAZY_AUTO_IMAGES or total * spec.size * spec.size * spec.channels > LAZY_AUTO_BYTES
        reader = _Reader(src, spec, max_pixels)
        threads = max(1, min(4, os.cpu_count() or 1))
        with bomb_warnings_as_errors():  # set here, seen by the worker threads started inside
            if lazy:
                results = _map(lambda i: reader.header(entries[i]), total, threads)
            else:
                results = _map(lambda i: reader.image(entries[i]), total, threads)
        bad = [r for r in results if isinstance(r, BadImage)]
        _report_bad(where, bad, total, max_bad_fraction, "found at open")
        good = [i for i, r in enumerate(results) if not isinstance(r, BadImage)]

        def name_of(k: tuple[str, ...]) -> str:
            return "/".join(k)

        count = collections.Counter(key_of[i] for i in good)
        empty = [name_of(k) for k in keys if not lay.classes[k]]
        if empty:
            warnings.warn(f"excluded {len(empty)} empty class folder(s) of {where} (no image files): {_shown(empty)}",
                          stacklevel=2)
        small = [k for k in keys if lay.classes[k] and count[k] < min_images]
        if small:
            listed = [f"{name_of(k)} ({count[k]} usable of {len(lay.classes[k])})" for k in small]
            warnings.warn(
                f"excluded {len(small)} class(es) of {where} with fewer than {min_images} usable image(s) "
                f"(no positive pair possible): {_shown(listed)}; add images to them, or lower min_images_per_class",
                stacklevel=2)
        kept = [k for k in keys if count[k] >= min_images]
        if len(kept) < 2:
            have = f" ({', '.join(name_of(k) for k in kept)})" if kept else ""
            raise ValueError(
                f"{where} has {len(kept)} usable class(es){have} with >= {min_images} images each; need at least 2. "
                f"Found {len(keys)} class folder(s), {len(good)} usable image(s); {EXPECTED}")
        kept_set = set(kept)
        rows = [i for i in good if key_of[i] in kept_set]
        class_index = {k: c for c, k in enumerate(kept)}
        if lay.levels == 2:
            group_names = sorted({k[0] for k in kept}, key=natural_key)
        else:
            group_names = [lay.root_name]
        group_index = {g: i for i, g in enumerate(group_names)}
        labels = np.asarray([class_index[key_of[i]] for i in rows], np.int32)
        groups = np.asarray([group_index[key_of[i][0]] if lay.levels == 2 else 0 for i in rows], np.int32)
        instances = rank_within_class(labels)
        class_names = [name_of(k) for k in kept]
        if lazy:
            loader = _LazyLoader(reader, [entries[i] for i in rows], labels, class_names, where, bad, total,
                                 max_bad_fraction)
            images = LazyImages(loader, len(rows), (spec.size, spec.size, spec.channels),
                                cache_items=int(cache_items), threads=threads)
        else:
            images = np.stack([results[i] for i in rows]) if rows else None
            src.close()
        return LabeledImages(images=images, labels=labels, groups=groups, instances=instances,
                             class_names=class_names, group_names=group_names)
    except BaseException:
        src.close()
        raise


def split_dataset(data: LabeledImages, by: str = "class", fraction: float = 0.2,
                  seed: int = 0) -> tuple[LabeledImages, LabeledImages]:
    """(rest, held_out): a deterministic split (in ``seed``) for validation or testing.

    Args:
        by: "class": ``round(fraction * num_classes)`` whole classes are held out (disjoint classes:
            the one-shot setting, new classes at test time). "image": every class with >= 4 images
            is in both parts, ``round(fraction * n)`` of its images held out, clipped so each side
            keeps >= 2; classes with fewer than 4 images stay whole in ``rest`` (warned).
        fraction: share held out, in (0, 1).

    Both parts keep the order of ``data``; lazy images stay lazy (views sharing one cache); labels
    and groups are re-densified. ``instances`` are kept with by="class" (whole classes: Omniglot's
    drawers stay drawers) and re-ranked 0.. within each class of each part with by="image".

    Raises:
        ValueError: unknown ``by``, ``fraction`` outside (0, 1), a part left with fewer than 2 classes.
    """
    if by not in ("class", "image"):
        raise ValueError(f"split_dataset: by={by!r}; use 'class' (held-out classes) or 'image' (held-out images)")
    if not (isinstance(fraction, (int, float, np.integer, np.floating)) and 0.0 < float(fraction) < 1.0):
        raise ValueError(f"split_dataset: fraction must be in (0, 1), got {fraction!r}")
    fraction = float(fraction)
    rng = np.random.default_rng(seed)
    labels = np.asarray(data.labels)
    present = np.unique(labels)
    held = np.zeros(len(labels), bool)
    if by == "class":
        n_held = int(round(fraction * len(present)))
        if n_held < 2 or len(present) - n_held < 2:
            raise ValueError(
                f"split_dataset(by='class', fraction={fraction:g}) of {len(present)} classes holds out {n_held} and "
                f"keeps {len(present) - n_held}; each part needs >= 2 classes: change fraction "
                f"(config.val_fraction) or use more classes")
        chosen = rng.permutation(present)[:n_held]
        held = np.isin(labels, chosen)
    else:
        too_small = []
        for c in present:
            idx = np.flatnonzero(labels == c)
            n = len(idx)
            if n < 4:
                too_small.append(f"{data.class_names[c]} ({n})")
                continue
            k = min(max(int(round(fraction * n)), 2), n - 2)
            held[rng.permutation(idx)[:k]] = True
        if too_small:
            warnings.warn(f"split_dataset(by='image'): {len(too_small)} class(es) with fewer than 4 images kept whole "
                          f"in the training part (each part needs >= 2 images of a class): {_shown(too_small)}",
                          stacklevel=2)
        n_held = len(np.unique(labels[held]))
        if n_held < 2:
            raise ValueError(f"split_dataset(by='image') holds out images of {n_held} class(es); need >= 2 classes "
                             f"with >= 4 images each")
    rest, held_out = data.subset(~held), data.subset(held)
    if by == "image":  # each part's images of a class get instances 0.. again (episodes pair them by rank)
        rest, held_out = _rerank(rest), _rerank(held_out)
    return rest, held_out


def _rerank(d: LabeledImages) -> LabeledImages:
    """The same images with ``instances`` = rank within class (in row order)."""
    d.instances = rank_within_class(d.labels)
    return d
