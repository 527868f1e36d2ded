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

Here: :func:`load_image_folder` and :func:`parse_lazy` (and :func:`split_dataset`, from
:mod:`siamjax.data.split`). The pieces: listing and safe reading of folders and zips in
:mod:`siamjax.data.zipfolder`, the layout rules in :mod:`siamjax.data.folder_layout`, decoding, the
bad-file report and the lazy loader in :mod:`siamjax.data.folder_reader`.
"""

from __future__ import annotations

import collections
import os
import pathlib
import warnings
import zipfile

import numpy as np

from siamjax.data.dataset import LabeledImages, rank_within_class
from siamjax.data.decode import BadImage, bomb_warnings_as_errors, natural_key
from siamjax.data.folder_layout import EXPECTED, EXTS, find_layout, shown
from siamjax.data.folder_reader import LazyLoader, Reader, map_images, report_bad
from siamjax.data.lazy import DEFAULT_CACHE_ITEMS, LazyImages
from siamjax.data.preprocess import Preprocessing
from siamjax.data.split import split_dataset
from siamjax.data.zipfolder import FolderSource, ZipSource

__all__ = ["load_image_folder", "split_dataset", "parse_lazy", "LAZY_AUTO_IMAGES", "LAZY_AUTO_BYTES"]

# lazy=None reads lazily above either bound (images listed; bytes once preprocessed).
LAZY_AUTO_IMAGES = 20_000
LAZY_AUTO_BYTES = 256 << 20


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


def _resolve(path) -> tuple[FolderSource | ZipSource, str]:
    """(source, default root name) for a folder or a zip file."""
    p = pathlib.Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"image folder {p} does not exist; {EXPECTED}")
    if p.is_dir():
        name = pathlib.Path(os.path.realpath(p)).name or str(p)
        return FolderSource(p), name
    if not p.is_file():
        raise ValueError(f"{p} is neither a folder nor a zip file; {EXPECTED}")
    if not zipfile.is_zipfile(p):
        raise ValueError(f"{p} is a file but not a zip archive; pass the folder holding one subfolder per class, "
                         f"or a .zip of it ({EXPECTED})")
    name = p.name[:-4] if p.name.lower().endswith(".zip") else p.stem
    return ZipSource(p, hint=EXPECTED), name


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
                          f"(never read, so that nothing outside it is read): {shown(tree.skipped)}", stacklevel=2)
        lay = find_layout(src, tree, default_name)
        unknown = [f for f in lay.unknown if len(f.parts) > 1]  # README, labels.csv ... beside the classes: silent
        if unknown:
            exts = collections.Counter(os.path.splitext(f.parts[-1])[1].lower() or "(no extension)" for f in unknown)
            names = sorted(("/".join(lay.prefix + f.parts) for f in unknown), key=natural_key)
            warnings.warn(
                f"ignored {len(unknown)} file(s) in {where} that are not images of a supported type "
                f"({', '.join(f'{k}: {v}' for k, v in exts.most_common(8))}; supported: {EXTS}): {shown(names)}",
                stacklevel=2)
        if lay.ignored_images:
            layout_txt = "<group>/<class>/<image>" if lay.levels == 2 else "<class>/<image>"
            warnings.warn(f"ignored {len(lay.ignored_images)} image file(s) of {where} outside its {layout_txt} "
                          f"layout (loose in a folder above the classes, or nested deeper): "
                          f"{shown(lay.ignored_images)}", stacklevel=2)

        keys = list(lay.classes)
        entries = [e for k in keys for e in lay.classes[k]]
        key_of = [k for k in keys for _ in lay.classes[k]]
        total = len(entries)
        if lazy is None:
            lazy = total > LAZY_AUTO_IMAGES or total * spec.size * spec.size * spec.channels > LAZY_AUTO_BYTES
        reader = Reader(src, spec, max_pixels)
        threads = max(1, min(4, os.cpu_count() or 1))
        with bomb_warnings_as_errors():  # set here, seen by the worker threads started inside
            if lazy:
                results = map_images(lambda i: reader.header(entries[i]), total, threads)
            else:
                results = map_images(lambda i: reader.image(entries[i]), total, threads)
        bad = [r for r in results if isinstance(r, BadImage)]
        report_bad(where, bad, total, max_bad_fraction, "found at open")
        good = [i for i, r in enumerate(results) if not isinstance(r, BadImage)]

        def name_of(k: tuple[str, ...]) -> str:
            return "/".join(k)

        count = collections.Counter(key_of[i] for i in good)
        empty = [name_of(k) for k in keys if not lay.classes[k]]
        if empty:
            warnings.warn(f"excluded {len(empty)} empty class folder(s) of {where} (no image files): {shown(empty)}",
                          stacklevel=2)
        small = [k for k in keys if lay.classes[k] and count[k] < min_images]
        if small:
            listed = [f"{name_of(k)} ({count[k]} usable of {len(lay.classes[k])})" for k in small]
            warnings.warn(
                f"excluded {len(small)} class(es) of {where} with fewer than {min_images} usable image(s) "
                f"(no positive pair possible): {shown(listed)}; add images to them, or lower min_images_per_class",
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
            loader = LazyLoader(reader, [entries[i] for i in rows], labels, class_names, where, bad, total,
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
