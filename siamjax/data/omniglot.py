"""Omniglot (Lake et al. 2015) loader: zip or extracted folder -> :class:`LabeledImages`.

Layout (official and the repacked zips in ``shared/data/omniglot``)::

    images_background/<Alphabet>/characterNN/XXXX_YY.png     (YY = drawer 01..20)

Images are 105x105 PNGs in PIL mode "1" (True = white paper, False = black ink); with the
default ``Preprocessing(invert="auto")`` ink becomes high values (255) on a 0 background.

Decoding all 19,280 background PNGs takes a few seconds, so results are cached on disk
(``cache_dir``; default ``$SIAMJAX_CACHE`` or ``~/.cache/siamjax``) as ``.npz`` files keyed by
the source file's path, size and mtime, the split, the preprocessing and the alphabets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import tempfile
import warnings
import zipfile
from typing import Sequence

import numpy as np

from siamjax.data.dataset import LabeledImages, unknown_name_error
from siamjax.data.decode import BadImage, decode_image
from siamjax.data.decode import is_unsafe_member as _is_unsafe_member
from siamjax.data.preprocess import Preprocessing, preprocess_batch, preprocess_image

__all__ = ["load_omniglot", "alphabet_names", "SPLITS", "default_cache_dir"]

SPLITS = ("background", "evaluation")
# Bump when the cached content for the same inputs would change (decoding or preprocessing).
_CACHE_VERSION = 1
# Images decoded before one vectorised preprocess_batch call.
_DECODE_CHUNK = 512
_DRAWER_RE = re.compile(r"_(\d+)\.png$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class _Source:
    kind: str  # "zip" or "dir"
    path: pathlib.Path  # the zip file, or the folder holding <Alphabet>/<character>/*.png

    def __str__(self) -> str:
        return str(self.path)


@dataclasses.dataclass(frozen=True)
class _Item:
    alphabet: str
    character: str
    filename: str
    ref: str  # zip member name, or path relative to the source folder


def default_cache_dir() -> pathlib.Path:
    """``$SIAMJAX_CACHE`` if set and non-empty, else ``~/.cache/siamjax``."""
    env = os.environ.get("SIAMJAX_CACHE")
    return pathlib.Path(env).expanduser() if env else pathlib.Path.home() / ".cache" / "siamjax"


# ----------------------------------------------------------------------------------------
# Locating and listing


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown Omniglot split {split!r}; expected one of {SPLITS}")


def _split_of_name(name: str) -> str | None:
    """'background' / 'evaluation' when ``name`` is images_<split>[.zip], else None."""
    for s in SPLITS:
        if name in (f"images_{s}", f"images_{s}.zip"):
            return s
    return None


def _mismatch(path: pathlib.Path, found: str, split: str) -> ValueError:
    return ValueError(f"{path} holds the Omniglot {found} split but split={split!r} was requested")


def _resolve_source(path: str | os.PathLike, split: str) -> _Source:
    _check_split(split)
    p = pathlib.Path(path).expanduser()
    stem = f"images_{split}"
    expected = (
        f"expected a folder holding {stem}.zip (or the extracted folder {stem}/), "
        f"or that zip file or folder itself"
    )
    if not p.exists():
        raise FileNotFoundError(f"Omniglot path {p} does not exist; {expected}")
    found = _split_of_name(p.name)
    if found is not None and found != split:
        raise _mismatch(p, found, split)
    if p.is_file():
        if not zipfile.is_zipfile(p):
            raise ValueError(f"{p} is not a zip file; {expected}")
        return _Source("zip", p)
    if found == split:
        return _Source("dir", p)
    if (p / f"{stem}.zip").is_file():
        return _Source("zip", p / f"{stem}.zip")
    if (p / stem).is_dir():
        return _Source("dir", p / stem)
    if next(p.glob("*/*/*.png"), None) is not None:  # an extracted folder under another name
        return _Source("dir", p)
    raise FileNotFoundError(
        f"Omniglot {split} split not found in {p}: expected {p / (stem + '.zip')} "
        f"or the extracted folder {p / stem}/"
    )


def _natural_key(s: str) -> list:
    return [int(t) if t.isdecimal() else t for t in re.split(r"(\d+)", s)]


def _list_zip(zf: zipfile.ZipFile, zip_path: pathlib.Path, split: str) -> list[_Item]:
    infos = zf.infolist()
    unsafe: list[str] = []
    entries: list[tuple[list[str], str]] = []
    for info in infos:
        name = info.filename
        if _is_unsafe_member(name):
            unsafe.append(name)
            continue
        if info.is_dir():
            continue
        parts = name.split("/")
        if any(part.startswith(".") or part == "__MACOSX" for part in parts):
            continue
        if parts[-1].lower().endswith(".png"):
            entries.append((parts, name))
    if unsafe:
        shown = ", ".join(repr(u) for u in unsafe[:5]) + (" ..." if len(unsafe) > 5 else "")
        warnings.warn(
            f"skipping {len(unsafe)} zip member(s) of {zip_path} with an absolute path or '..': {shown}",
            stacklevel=4,
        )
    top = f"images_{split}"
    tops = {parts[0] for parts, _ in entries if len(parts) == 4}
    if any(parts[0] == top for parts, _ in entries):
        entries = [(parts[1:], name) for parts, name in entries if parts[0] == top]
    elif len(tops) == 1 and all(len(parts) == 4 for parts, _ in entries):
        (only,) = tops
        found = _split_of_name(only)
        if found is not None and found != split:
            raise _mismatch(zip_path, found, split)
        entries = [(parts[1:], name) for parts, name in entries]
    return [_Item(parts[0], parts[1], parts[2], name) for parts, name in entries if len(parts) == 3]


def _list_dir(root: pathlib.Path) -> list[_Item]:
    items = []
    for alpha in os.scandir(root):
        if not alpha.is_dir() or alpha.name.startswith("."):
            continue
        for char in os.scandir(alpha.path):
            if not char.is_dir() or char.name.startswith("."):
                continue
            for f in os.scandir(char.path):
                if f.name.lower().endswith(".png") and not f.name.startswith(".") and f.is_file():
                    items.append(_Item(alpha.name, char.name, f.name, f"{alpha.name}/{char.name}/{f.name}"))
    return items


def _list_items(src: _Source, split: str, zf: zipfile.ZipFile | None = None) -> dict[str, dict[str, list[_Item]]]:
    """alphabet -> character -> items, every level sorted (alphabets plainly, the rest naturally)."""
    if src.kind == "zip":
        if zf is None:
            with zipfile.ZipFile(src.path) as own:
                items = _list_zip(own, src.path, split)
        else:
            items = _list_zip(zf, src.path, split)
    else:
        items = _list_dir(src.path)
    tree: dict[str, dict[str, list[_Item]]] = {}
    for it in items:
        tree.setdefault(it.alphabet, {}).setdefault(it.character, []).append(it)
    if not tree:
        raise ValueError(f"no PNG files in the layout <Alphabet>/<character>/<file>.png found in {src}")
    return {
        a: {c: sorted(tree[a][c], key=lambda it: _natural_key(it.filename)) for c in sorted(tree[a], key=_natural_key)}
        for a in sorted(tree)
    }


def alphabet_names(path: str | os.PathLike, split: str = "background") -> list[str]:
    """Sorted alphabet names of one split, read from the listing only (no image decoding)."""
    return list(_list_items(_resolve_source(path, split), split))


def _select_alphabets(available: list[str], alphabets: Sequence[str] | int | None, split: str) -> list[str]:
    if alphabets is None:
        return available
    if isinstance(alphabets, (int, np.integer)) and not isinstance(alphabets, bool):
        n = int(alphabets)
        if not 1 <= n <= len(available):
            raise ValueError(f"alphabets={n} but the {split} split has {len(available)} alphabets (need 1..{len(available)})")
        return available[:n]
    if isinstance(alphabets, str):
        alphabets = [alphabets]
    names = list(alphabets)
    if not names:
        raise ValueError("alphabets is empty; pass None to load all alphabets")
    for name in names:
        if name not in available:
            raise unknown_name_error("alphabet", str(name), available, f"in the Omniglot {split} split")
    wanted = set(names)
    return [a for a in available if a in wanted]


# ----------------------------------------------------------------------------------------
# Decoding


def _decode_png(data: bytes, ref: str) -> np.ndarray:
    """PNG bytes -> array (siamjax.data.decode: PNG only, decompression-bomb guard)."""
    try:
        return decode_image(data, ref, formats=("PNG",))
    except BadImage as e:
        raise ValueError(f"failed to decode PNG {ref!r}: {e.reason}") from None


def _decode_all(src: _Source, items: list[_Item], spec: Preprocessing, zf: zipfile.ZipFile | None) -> np.ndarray:
    """uint8 [len(items), size, size, channels]; sequential (PIL decoding holds the GIL,
    threads measured no faster)."""
    out = np.empty((len(items), spec.size, spec.size, spec.channels), dtype=np.uint8)
    for start in range(0, len(items), _DECODE_CHUNK):
        chunk = items[start:start + _DECODE_CHUNK]
        arrays = []
        for it in chunk:
            data = zf.read(it.ref) if zf is not None else (src.path / it.ref).read_bytes()
            arrays.append(_decode_png(data, it.ref))
        first = arrays[0]
        if all(a.shape == first.shape and a.dtype == first.dtype for a in arrays):
            try:
                out[start:start + len(chunk)] = preprocess_batch(np.stack(arrays), spec)
                continue
            except ValueError:
                pass  # redo image by image below to name the offending file
        for i, (it, arr) in enumerate(zip(chunk, arrays)):
            try:
                out[start + i] = preprocess_image(arr, spec)
            except ValueError as e:
                raise ValueError(f"cannot preprocess {it.ref!r} in {src}: {e}") from e
    return out


# ----------------------------------------------------------------------------------------
# Cache


def _request_key(alphabets: Sequence[str] | int | None) -> object:
    """JSON-able form of the ``alphabets`` argument (as asked, before resolving names)."""
    if alphabets is None:
        return "all"
    if isinstance(alphabets, (int, np.integer)) and not isinstance(alphabets, bool):
        return int(alphabets)
    if isinstance(alphabets, str):
        return [alphabets]
    return sorted({str(a) for a in alphabets})


def _cache_key(src: _Source, split: str, spec: Preprocessing, request: object, items: list[_Item] | None) -> str:
    """sha256 hex over the source's identity (zip: path, size, mtime; folder: every
    selected file's path, size and mtime), split, spec and the alphabets requested."""
    resolved = src.path.resolve()
    if src.kind == "zip":
        st = resolved.stat()
        fingerprint: object = [st.st_size, st.st_mtime_ns]
    else:
        assert items is not None
        h = hashlib.sha256()
        for it in items:
            st = (resolved / it.ref).stat()
            h.update(f"{it.ref}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        fingerprint = h.hexdigest()
    blob = json.dumps(
        {
            "version": _CACHE_VERSION,
            "kind": src.kind,
            "path": str(resolved),
            "fingerprint": fingerprint,
            "split": split,
            "spec": spec.to_dict(),
            "alphabets": request,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _read_cache(path: pathlib.Path, key: str, spec: Preprocessing) -> LabeledImages | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                raise ValueError("key mismatch")
            data = LabeledImages(
                images=z["images"],
                labels=z["labels"],
                groups=z["groups"],
                instances=z["instances"],
                class_names=z["class_names"].tolist(),
                group_names=z["group_names"].tolist(),
            )
        if data.images.shape[1:] != (spec.size, spec.size, spec.channels):
            raise ValueError(f"cached images have shape {data.images.shape}")
        return data
    except Exception as e:  # truncated / corrupt / foreign file: ignore and rebuild
        warnings.warn(f"ignoring unreadable Omniglot cache file {path} ({type(e).__name__}: {e}); rebuilding", stacklevel=3)
        return None


def _write_cache(path: pathlib.Path, key: str, data: LabeledImages) -> None:
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        arrays = {
            "key": np.array(key),
            "images": data.images,
            "labels": data.labels,
            "groups": data.groups,
            "instances": data.instances,
            "class_names": np.array(data.class_names, dtype=str),
            "group_names": np.array(data.group_names, dtype=str),
        }
        with os.fdopen(fd, "wb") as f:
            # np.savez_compressed, but at deflate level 1: ~3x faster to write and as fast
            # to read (19,280 x 105 x 105: 6.8 MB instead of 213 MB uncompressed).
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                for name, arr in arrays.items():
                    with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                        np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        warnings.warn(f"could not write Omniglot cache file {path}: {e}", stacklevel=3)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


# ----------------------------------------------------------------------------------------
# Public loader


def load_omniglot(
    path: str | os.PathLike,
    split: str = "background",
    spec: Preprocessing = Preprocessing(),
    alphabets: Sequence[str] | int | None = None,
    cache_dir: str | os.PathLike | None | bool = None,
) -> LabeledImages:
    """Load one Omniglot split as uint8 [N, size, size, channels] with labels.

    Args:
        path: folder holding ``images_<split>.zip`` (preferred) or the extracted
            ``images_<split>/``; or directly that zip file or extracted folder.
        split: "background" (30 alphabets, 964 characters) or "evaluation" (20 / 659).
        spec: preprocessing applied to every image (see :func:`preprocess_image`).
        alphabets: names of the alphabets to load (others are not decoded), an int n =
            the first n alphabets in sorted order, or None = all.
        cache_dir: folder for the decoded-array cache; None = :func:`default_cache_dir`,
            False = no cache.

    Returns:
        LabeledImages sorted by (alphabet, character, drawer): labels = character index,
        groups = alphabet index, instances = drawer - 1 (0..19), class_names like
        "Latin/character07", group_names like "Latin".

    Raises:
        FileNotFoundError: the path or the split's zip / folder does not exist.
        ValueError: unknown split or alphabet (close matches listed), a PNG that fails
            to decode (the member is named), a split mismatch between path and ``split``.
    """
    src = _resolve_source(path, split)
    cache_path = key = None
    if cache_dir is not False:
        cdir = default_cache_dir() if cache_dir is None or cache_dir is True else pathlib.Path(cache_dir).expanduser()
        if src.kind == "zip":  # keyed on the zip's stat: a hit needs no listing at all
            key = _cache_key(src, split, spec, _request_key(alphabets), None)
            cache_path = cdir / f"omniglot_{split}_{key[:24]}.npz"
            cached = _read_cache(cache_path, key, spec)
            if cached is not None:
                return cached

    with contextlib.ExitStack() as stack:
        zf = stack.enter_context(zipfile.ZipFile(src.path)) if src.kind == "zip" else None
        tree = _list_items(src, split, zf)
        selected = _select_alphabets(list(tree), alphabets, split)
        items: list[_Item] = []
        labels: list[int] = []
        groups: list[int] = []
        instances: list[int] = []
        class_names: list[str] = []
        for g, alpha in enumerate(selected):
            for char, char_items in tree[alpha].items():
                c = len(class_names)
                class_names.append(f"{alpha}/{char}")
                for rank, it in enumerate(char_items):
                    m = _DRAWER_RE.search(it.filename)
                    items.append(it)
                    labels.append(c)
                    groups.append(g)
                    instances.append(int(m.group(1)) - 1 if m else rank)

        if cache_dir is not False and src.kind == "dir":
            key = _cache_key(src, split, spec, _request_key(alphabets), items)
            cache_path = cdir / f"omniglot_{split}_{key[:24]}.npz"
            cached = _read_cache(cache_path, key, spec)
            if cached is not None:
                return cached

        images = _decode_all(src, items, spec, zf)

    data = LabeledImages(
        images=images,
        labels=np.asarray(labels, dtype=np.int32),
        groups=np.asarray(groups, dtype=np.int32),
        instances=np.asarray(instances, dtype=np.int32),
        class_names=class_names,
        group_names=list(selected),
    )
    if cache_path is not None and key is not None:
        _write_cache(cache_path, key, data)
    return data
