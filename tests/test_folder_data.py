"""siamjax.data.folder: class-per-subfolder images (folder or zip), lazy and eager, bad input, splits.

Every dataset is synthetic, written with PIL into tmp_path; nothing is downloaded or copied.
"""
from __future__ import annotations

import builtins
import hashlib
import io
import os
import pathlib
import struct
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from siamjax.data import folder as folder_mod
from siamjax.data import folder_reader
from siamjax.data.dataset import LabeledImages
from siamjax.data.decode import is_unsafe_member
from siamjax.data.folder import load_image_folder, parse_lazy, split_dataset
from siamjax.data.lazy import LazyImages
from siamjax.data.preprocess import Preprocessing, preprocess_image

SPEC = Preprocessing(size=12, channels=1, invert=False)
SAVE = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".pgm": "PPM", ".ppm": "PPM", ".bmp": "BMP",
        ".tif": "TIFF", ".tiff": "TIFF"}


# ----------------------------------------------------------------------------------------------- helpers
def _image(seed: int, size=(20, 16), rgb=False) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    arr = rng.integers(0, 256, (h, w, 3) if rgb else (h, w), dtype=np.uint8)
    return Image.fromarray(arr, "RGB" if rgb else "L")


def _encode(im: Image.Image, ext: str) -> bytes:
    buf = io.BytesIO()
    if ext in (".pgm",) and im.mode != "L":
        im = im.convert("L")
    if ext == ".ppm" and im.mode != "RGB":
        im = im.convert("RGB")
    im.save(buf, SAVE[ext.lower()], **({"quality": 95} if SAVE[ext.lower()] == "JPEG" else {}))
    return buf.getvalue()


def _write(path: pathlib.Path, data: bytes) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


EXTS = [".png", ".jpg", ".PGM", ".bmp", ".tif", ".Png", ".ppm", ".jpeg"]


def _make_tree(root: pathlib.Path, classes: dict[str, int], seed: int = 0) -> dict[str, bytes]:
    """root/<class>/img<i>.<ext> with mixed formats, sizes, grey/RGB. Returns relpath -> bytes."""
    files = {}
    k = seed
    for cls, n in classes.items():
        for i in range(n):
            ext = EXTS[k % len(EXTS)]
            im = _image(k, size=(14 + 3 * (k % 5), 12 + 2 * (k % 3)), rgb=bool(k % 2))
            rel = f"{cls}/img{i + 1}{ext}"
            files[rel] = _encode(im, ext)
            _write(root / rel, files[rel])
            k += 1
    return files


def _zip(path: pathlib.Path, files: dict[str, bytes], prefix: str = "") -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for rel, data in files.items():
            zf.writestr(prefix + rel, data)
    return path


def _expected(data: bytes, spec=SPEC) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return preprocess_image(np.asarray(im.convert("RGB") if im.mode == "P" else im), spec)


def _snapshot(root: pathlib.Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for f in filenames:
            p = pathlib.Path(dirpath) / f
            if p.is_symlink():
                out[str(p)] = ("link", os.readlink(p))
            elif not p.is_file():
                out[str(p)] = ("special",)
            else:
                st = p.stat()
                out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_size)
    return out


@pytest.fixture
def opened(monkeypatch):
    """Paths opened through os.open / builtins.open and zip members opened, during the test."""
    log = {"paths": [], "members": []}
    real_os_open, real_open, real_zopen = os.open, builtins.open, zipfile.ZipFile.open

    def os_open(path, *a, **k):
        log["paths"].append(os.path.realpath(os.fsdecode(path)))
        return real_os_open(path, *a, **k)

    def b_open(file, *a, **k):
        if isinstance(file, (str, bytes, os.PathLike)):
            log["paths"].append(os.path.realpath(os.fsdecode(file)))
        return real_open(file, *a, **k)

    def z_open(self, name, *a, **k):
        if (a[0] if a else k.get("mode", "r")) == "r":  # reads only (not the test writing its zips)
            log["members"].append(getattr(name, "filename", name))
        return real_zopen(self, name, *a, **k)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", b_open)
    monkeypatch.setattr(zipfile.ZipFile, "open", z_open)
    return log


def _load(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean dataset loads without any warning
        return load_image_folder(path, SPEC, **kw)


# ----------------------------------------------------------------------------------------------- layouts
def test_one_level_folder_formats_sizes_and_order(tmp_path):
    root = tmp_path / "animals"
    files = _make_tree(root, {"c10": 3, "c2": 2, "c1": 4})
    _write(root / "README", b"about these images")  # non-images beside the class folders: ignored silently
    _write(root / "labels.csv", b"a,b")
    _write(root / ".hidden" / "x.png", b"junk")
    _write(root / "c1" / ".DS_Store", b"junk")
    d = _load(root, lazy=False)
    assert isinstance(d, LabeledImages) and isinstance(d.images, np.ndarray)
    assert d.images.shape == (9, 12, 12, 1) and d.images.dtype == np.uint8
    assert d.class_names == ["c1", "c2", "c10"]  # natural order
    assert d.group_names == ["animals"] and (d.groups == 0).all()
    np.testing.assert_array_equal(d.labels, [0, 0, 0, 0, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(d.instances, [0, 1, 2, 3, 0, 1, 0, 1, 2])
    order = [f"c1/img{i}" for i in (1, 2, 3, 4)] + ["c2/img1", "c2/img2"] + [f"c10/img{i}" for i in (1, 2, 3)]
    rels = {rel.rsplit(".", 1)[0]: rel for rel in files}
    for row, stem in enumerate(order):
        np.testing.assert_array_equal(d.images[row], _expected(files[rels[stem]]), err_msg=stem)
    # RGB output, auto polarity: still every image through preprocess_image.
    spec3 = Preprocessing(size=9, channels=3, invert="auto")
    d3 = load_image_folder(root, spec3, lazy=False)
    assert d3.images.shape == (9, 9, 9, 3)
    np.testing.assert_array_equal(d3.images[8], _expected(files[rels["c10/img3"]], spec3))


def test_pixel_modes(tmp_path):
    """16-bit, alpha, palette, 1-bit and CMYK files: each row equals preprocess_image of PIL's pixels."""
    from siamjax.data.decode import pil_to_array

    rng = np.random.default_rng(0)
    g16 = Image.fromarray(rng.integers(0, 65536, (9, 11), dtype=np.uint16))
    rgba = Image.fromarray(rng.integers(0, 256, (10, 8, 4), dtype=np.uint8), "RGBA")
    pal = _image(1, rgb=True).convert("P")
    bw = _image(2).convert("1")
    cmyk = _image(3, rgb=True).convert("CMYK")
    files = {"a/g16.png": (g16, "PNG"), "a/rgba.png": (rgba, "PNG"), "a/pal.png": (pal, "PNG"),
             "b/bw.bmp": (bw, "BMP"), "b/cmyk.jpg": (cmyk, "JPEG"), "b/g16.tif": (g16, "TIFF")}
    for rel, (im, fmt) in files.items():
        buf = io.BytesIO()
        im.save(buf, fmt)
        _write(tmp_path / "m" / rel, buf.getvalue())
    spec = Preprocessing(size=7, channels=3, invert="auto")
    d = load_image_folder(tmp_path / "m", spec)
    order = ["a/g16.png", "a/pal.png", "a/rgba.png", "b/bw.bmp", "b/cmyk.jpg", "b/g16.tif"]
    for row, rel in enumerate(order):
        with Image.open(tmp_path / "m" / rel) as im:
            im.load()
            np.testing.assert_array_equal(d.images[row], preprocess_image(pil_to_array(im), spec), err_msg=rel)


def test_two_level_layout_and_natural_sort(tmp_path):
    root = tmp_path / "scripts"
    files = {}
    for g, chars in (("Latin", ("char10", "char2")), ("Greek", ("alpha", "beta", "gamma"))):
        for c in chars:
            for i in range(2):
                files[f"{g}/{c}/{i}.png"] = _encode(_image(len(files)), ".png")
    for rel, data in files.items():
        _write(root / rel, data)
    d = _load(root)
    assert d.group_names == ["Greek", "Latin"]
    assert d.class_names == ["Greek/alpha", "Greek/beta", "Greek/gamma", "Latin/char2", "Latin/char10"]
    np.testing.assert_array_equal(d.groups, [0] * 6 + [1] * 4)
    np.testing.assert_array_equal(d.images[6], _expected(files["Latin/char2/0.png"]))
    # The same tree zipped, with and without a wrapping folder: identical.
    for prefix in ("", "scripts/", "outer/scripts/"):
        z = _load(_zip(tmp_path / f"z{len(prefix)}.zip", files, prefix))
        assert z.class_names == d.class_names and z.group_names == d.group_names
        np.testing.assert_array_equal(z.images, d.images)


def test_zip_equals_folder_one_level(tmp_path):
    files = _make_tree(tmp_path / "faces", {"anna": 3, "bob": 2, "carl": 2})
    d = _load(tmp_path / "faces")
    for prefix, name in (("", "faces_flat"), ("faces/", "faces")):
        zp = _zip(tmp_path / "zips" / f"{name}.zip", files, prefix)
        z = _load(zp)
        assert z.class_names == ["anna", "bob", "carl"] and z.group_names == ["faces" if prefix else name]
        np.testing.assert_array_equal(z.images, d.images)
        np.testing.assert_array_equal(z.labels, d.labels)
        np.testing.assert_array_equal(z.instances, d.instances)


# ----------------------------------------------------------------------------------------------- lazy
def test_lazy_equals_eager_cache_bounded_no_decode_at_open(tmp_path, monkeypatch):
    files = _make_tree(tmp_path / "d", {f"k{i}": 3 for i in range(5)})
    zp = _zip(tmp_path / "d.zip", files)
    eager = _load(tmp_path / "d", lazy=False)
    for path in (tmp_path / "d", zp):
        real = folder_reader.decode_image
        monkeypatch.setattr(folder_reader, "decode_image", lambda *a, **k: pytest.fail("decoded at open"))
        lazy = _load(path, lazy=True, cache_items=4)
        monkeypatch.setattr(folder_reader, "decode_image", real)
        assert isinstance(lazy.images, LazyImages) and lazy.images.decoded == 0
        assert lazy.class_names == eager.class_names
        np.testing.assert_array_equal(lazy.labels, eager.labels)
        np.testing.assert_array_equal(lazy.images[:], eager.images)  # every row, on the thread pool
        assert lazy.images.decoded == 15
        assert len(lazy.images._store.cache) <= 4  # LRU bound
        before = lazy.images.decoded
        np.testing.assert_array_equal(lazy.images[[14, 13]], eager.images[[14, 13]])  # most recent: cached
        assert lazy.images.decoded == before
        np.testing.assert_array_equal(lazy.images[0], eager.images[0])  # evicted long ago: decoded again
        assert lazy.images.decoded == before + 1
        # Splits of a lazy set are lazy views.
        tr, va = split_dataset(lazy, "class", 0.4, seed=1)
        assert isinstance(tr.images, LazyImages) and isinstance(va.images, LazyImages)
        etr, eva = split_dataset(eager, "class", 0.4, seed=1)
        np.testing.assert_array_equal(va.images[:], eva.images)


def test_auto_lazy_threshold_and_parse_lazy(tmp_path, monkeypatch):
    _make_tree(tmp_path / "d", {"a": 2, "b": 2})
    assert isinstance(_load(tmp_path / "d").images, np.ndarray)
    monkeypatch.setattr(folder_mod, "LAZY_AUTO_IMAGES", 3)
    assert isinstance(_load(tmp_path / "d").images, LazyImages)
    monkeypatch.setattr(folder_mod, "LAZY_AUTO_IMAGES", 100)
    monkeypatch.setattr(folder_mod, "LAZY_AUTO_BYTES", 4 * 12 * 12 - 1)
    assert isinstance(_load(tmp_path / "d", lazy="auto").images, LazyImages)
    assert isinstance(_load(tmp_path / "d", lazy="no").images, np.ndarray)
    assert [parse_lazy(v) for v in (None, "auto", -1, "yes", 1, True, "no", 0, False, "OFF")] == \
        [None, None, None, True, True, True, False, False, False, False]
    with pytest.raises(ValueError, match="'auto'"):
        parse_lazy("maybe")


# ----------------------------------------------------------------------------------------------- bad input
def test_missing_empty_and_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.*does not exist.*one subfolder per class"):
        load_image_folder(tmp_path / "nope", SPEC)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".DS_Store").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"empty.* is empty; expected one subfolder per class"):
        load_image_folder(tmp_path / "empty", SPEC)
    loose = tmp_path / "loose"
    for i in range(3):
        _write(loose / f"{i}.png", _encode(_image(i), ".png"))
    with pytest.raises(ValueError, match=r"holds 3 image\(s\) directly but no class subfolders"):
        load_image_folder(loose, SPEC)
    txt = tmp_path / "txt"
    _write(txt / "a" / "notes.txt", b"hello")
    _write(txt / "b" / "x.gif", b"GIF89a....")
    with pytest.raises(ValueError, match=r"no image files in .*txt \(found ") as ei:
        load_image_folder(txt, SPEC)
    assert ".txt: 1" in str(ei.value) and ".gif: 1" in str(ei.value)
    deep = tmp_path / "deep"
    for i, rel in enumerate(("a/b/c/d/0.png", "e/f/g/h/1.png")):
        _write(deep / rel, _encode(_image(i), ".png"))
    with pytest.raises(ValueError, match="nested too deep"):
        load_image_folder(deep, SPEC)
    notzip = _write(tmp_path / "data.zip", b"not a zip at all")
    with pytest.raises(ValueError, match="not a zip archive"):
        load_image_folder(notzip, SPEC)
    single = _write(tmp_path / "single.png", _encode(_image(0), ".png"))
    with pytest.raises(ValueError, match="not a zip archive"):
        load_image_folder(single, SPEC)
    with pytest.raises(ValueError, match=r"empty\.zip is empty"):
        load_image_folder(_zip(tmp_path / "empty.zip", {}), SPEC)
    one = tmp_path / "one"
    _make_tree(one, {"only": 3})
    with pytest.raises(ValueError, match=r"1 usable class\(es\) \(only\).*need at least 2"):
        load_image_folder(one, SPEC)
    with pytest.raises(ValueError, match="max_bad_fraction"):
        load_image_folder(one, SPEC, max_bad_fraction=2)
    with pytest.raises(TypeError, match="Preprocessing"):
        load_image_folder(one, None)


def test_unsafe_zip_members_never_read(tmp_path, opened):
    files = _make_tree(tmp_path / "src", {"a": 2, "b": 2})
    png = _encode(_image(9), ".png")
    evil = ["../evil.png", "/abs/evil.png", "a/../../evil2.png", "C:/evil3.png", "..\\evil4.png"]
    zp = tmp_path / "x" / "data.zip"
    zp.parent.mkdir()
    with zipfile.ZipFile(zp, "w") as zf:
        for rel, data in files.items():
            zf.writestr(rel, data)
        for name in evil:
            info = zipfile.ZipInfo("placeholder")
            info.filename = name  # ZipInfo normalises some names; force the raw ones
            zf.writestr(info, png)
    names = [i.filename for i in zipfile.ZipFile(zp).infolist()]
    assert sum(is_unsafe_member(n) for n in names) == len(evil)
    snap = _snapshot(tmp_path)
    with pytest.warns(UserWarning, match=r"skipped 5 entries of .*data\.zip \(never read"):
        d = load_image_folder(zp, SPEC)
    assert d.class_names == ["a", "b"] and len(d) == 4
    assert not set(evil) & set(opened["members"])
    assert set(opened["members"]) == set(files)
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "x" / "evil.png").exists()
    assert _snapshot(tmp_path) == snap


def test_symlinks_out_of_root_not_followed(tmp_path, opened):
    root = tmp_path / "root"
    _make_tree(root, {"a": 2, "b": 2})
    outside = tmp_path / "outside"
    secret = _write(outside / "secret.png", _encode(_image(5), ".png"))
    _write(outside / "cls" / "s1.png", _encode(_image(6), ".png"))
    _write(outside / "cls" / "s2.png", _encode(_image(7), ".png"))
    os.symlink(secret, root / "a" / "link.png")
    os.symlink(outside / "cls", root / "linked_class")
    os.symlink(root / "b" / "img1.PGM", root / "a" / "inside_link.png")  # inside the root: read (a PGM named .png)
    os.symlink(root / "a", root / "a_again")  # a folder link inside the root: not followed either
    os.mkfifo(root / "b" / "pipe.png")
    snap = _snapshot(tmp_path / "root" / "b") | _snapshot(outside)
    with pytest.warns(UserWarning) as rec:
        d = load_image_folder(root, SPEC)
    msgs = [str(w.message) for w in rec]
    assert any("skipped 4 entries" in m and "a/link.png (symbolic link to outside the folder)" in m
               and "linked_class (symbolic link to outside the folder)" in m
               and "a_again (symbolic link to a folder: not followed)" in m
               and "b/pipe.png (not a regular file)" in m for m in msgs), msgs
    assert d.class_names == ["a", "b"] and len(d) == 5  # a: img1, img2, inside_link; b: img1, img2
    base = os.path.realpath(tmp_path)
    read = [p for p in opened["paths"] if p.startswith(base)]
    assert read and all(p.startswith(os.path.realpath(root) + os.sep) for p in read), read
    assert _snapshot(tmp_path / "root" / "b") | _snapshot(outside) == snap


def _truncated_png(seed: int) -> bytes:
    data = _encode(_image(seed, size=(40, 40)), ".png")
    return data[: len(data) * 2 // 3]


def _png_header(w: int, h: int) -> bytes:
    """A PNG whose header declares w x h pixels (valid CRCs), with almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 8)) + chunk(b"IEND", b"")


def _bad_dataset(root: pathlib.Path) -> None:
    _make_tree(root, {"a": 10, "b": 10, "c": 10})
    _write(root / "a" / "trunc.png", _truncated_png(1))
    _write(root / "b" / "garbage.jpg", b"this is not an image at all")
    _write(root / "b" / "empty.png", b"")
    _write(root / "c" / "bad_header.png", b"\x89PNG\r\n\x1a\nnot really")
    gif = io.BytesIO()
    _image(3).save(gif, "GIF")
    _write(root / "c" / "really_a_gif.png", gif.getvalue())
    _write(root / "c" / "bomb.png", _png_header(20_000, 20_000))  # over PIL's hard limit
    _write(root / "c" / "bomb2.png", _png_header(10_000, 10_000))  # over PIL's warning limit
    _write(root / "a" / "notes.txt", b"hello")
    _write(root / "a" / "anim.gif", gif.getvalue())
    _write(root / "b" / "photo.webp", b"RIFF\0\0\0\0WEBPVP8 ")


def test_bad_files_counted_warned_and_threshold(tmp_path, opened):
    root = tmp_path / "bad"
    _bad_dataset(root)
    snap = _snapshot(tmp_path)
    with pytest.raises(ValueError) as ei, pytest.warns(UserWarning, match="ignored 3 file"):
        load_image_folder(root, SPEC)  # 7 of 37 image files are bad: over the default 1%
    msg = str(ei.value)
    assert "7 of 37 image files" in msg and "18.9%" in msg and "max_bad_fraction=0.01" in msg
    assert "at least 0.19" in msg and "'a/trunc.png'" in msg
    with pytest.warns(UserWarning) as rec:
        d = load_image_folder(root, SPEC, lazy=False, max_bad_fraction=0.2)
    msgs = "\n".join(str(w.message) for w in rec)
    assert "ignored 3 file(s)" in msgs and ".txt: 1" in msgs and ".gif: 1" in msgs and ".webp: 1" in msgs
    assert "skipped 3 corrupt, truncated or unreadable image file(s)" in msgs
    assert "'a/trunc.png' (failed to decode" in msgs and "'b/empty.png' (empty file)" in msgs
    assert "'c/bad_header.png' (unreadable image header" in msgs
    assert "skipped 2 image file(s) too large to decode safely" in msgs
    assert "'c/bomb.png'" in msgs and "'c/bomb2.png'" in msgs
    assert "'c/really_a_gif.png' (content is GIF" in msgs and "'b/garbage.jpg' (content is not" in msgs
    assert "7 of 37 files unusable (18.92%), within max_bad_fraction=0.2" in msgs
    assert len(d) == 30 and d.class_names == ["a", "b", "c"]
    np.testing.assert_array_equal(np.bincount(d.labels), [10, 10, 10])  # only the good files
    # max_pixels below a normal image: counted as too large, with the setting named.
    with pytest.raises(ValueError, match=r"'a/img1.png' \(14x12 = 168 pixels exceeds max_pixels=100 "), \
            pytest.warns(UserWarning, match="ignored 3 file"):
        load_image_folder(root, SPEC, max_pixels=100)
    base = os.path.realpath(tmp_path)
    read = [p for p in opened["paths"] if p.startswith(base)]
    assert read and all(p.startswith(os.path.realpath(root) + os.sep) for p in read)
    assert _snapshot(tmp_path) == snap  # nothing modified, moved or deleted


def test_lazy_header_check_and_decode_failure_later(tmp_path):
    root = tmp_path / "d"
    for c in "ab":
        for i in range(4):
            _write(root / c / f"{i}.png", _encode(_image(10 * (c == "b") + i), ".png"))
    _write(root / "a" / "2.png", _truncated_png(7))  # header fine, data truncated
    _write(root / "b" / "zz.png", _png_header(20_000, 20_000))
    # Eager finds the truncated file at open; lazy only the bomb (header), the truncated one later.
    with pytest.warns(UserWarning) as rec:
        eager = load_image_folder(root, SPEC, lazy=False, max_bad_fraction=0.5)
    assert ["a/2.png" in str(w.message) for w in rec] == [True, False]  # corrupt, then too large (b/zz.png)
    with pytest.warns(UserWarning, match=r"too large.*b/zz.png"):
        lazy = load_image_folder(root, SPEC, lazy=True, max_bad_fraction=0.5)
    assert len(eager) == 7 and len(lazy) == 8
    with pytest.warns(UserWarning, match=r"'a/2.png' passed the header check at open but fails to decode"):
        rows = lazy.images[:]
    # Deterministic substitute: the next image of the same class (a/3.png).
    np.testing.assert_array_equal(rows[2], rows[3])
    np.testing.assert_array_equal(rows[3], eager.images[2])
    np.testing.assert_array_equal(np.delete(rows, 2, axis=0), eager.images)
    # Over max_bad_fraction, lazy reading raises and names the file.
    with pytest.warns(UserWarning, match="too large"):
        strict = load_image_folder(root, SPEC, lazy=True, max_bad_fraction=0.15)
    strict.images[:2]
    with pytest.raises(ValueError, match=r"2 of 9 image files .*found while reading lazily.*'a/2.png'"):
        strict.images[2]


def test_small_and_empty_classes_excluded(tmp_path):
    root = tmp_path / "d"
    _make_tree(root, {"a": 3, "b": 2, "one": 1, "c": 2})
    (root / "empty").mkdir()
    _write(root / "onlytext" / "readme.txt", b"x")
    with pytest.warns(UserWarning) as rec:
        d = load_image_folder(root, SPEC)
    msgs = "\n".join(str(w.message) for w in rec)
    assert "excluded 2 empty class folder(s)" in msgs and "empty, onlytext" in msgs
    assert "excluded 1 class(es)" in msgs and "one (1 usable of 1)" in msgs and "min_images_per_class" in msgs
    assert d.class_names == ["a", "b", "c"]
    with pytest.warns(UserWarning) as rec:
        d1 = load_image_folder(root, SPEC, min_images_per_class=1)
    assert ["empty class" in str(w.message) for w in rec] == [False, True]  # unknown files, empty folders
    assert d1.class_names == ["a", "b", "c", "one"]
    # Too few usable classes after exclusion: error.
    root2 = tmp_path / "d2"
    _make_tree(root2, {"a": 2, "b": 1})
    with pytest.warns(UserWarning, match="b \\(1 usable of 1\\)"), \
            pytest.raises(ValueError, match=r"1 usable class\(es\) \(a\) with >= 2 images each; need at least 2"):
        load_image_folder(root2, SPEC)


def test_stray_images_outside_layout(tmp_path):
    root = tmp_path / "d"
    _make_tree(root, {"g1/a": 2, "g1/b": 2, "g2/c": 2})
    _write(root / "g1" / "stray.png", _encode(_image(3), ".png"))
    _write(root / "top.png", _encode(_image(4), ".png"))
    with pytest.warns(UserWarning, match=r"ignored 2 image file\(s\) .*<group>/<class>/<image>.*g1/stray.png, top.png"):
        d = load_image_folder(root, SPEC)
    assert d.class_names == ["g1/a", "g1/b", "g2/c"] and d.group_names == ["g1", "g2"]


# ----------------------------------------------------------------------------------------------- split
def _synthetic(counts, groups=None) -> LabeledImages:
    labels = np.repeat(np.arange(len(counts)), counts)
    n = len(labels)
    g = np.zeros(len(counts), int) if groups is None else np.asarray(groups)
    return LabeledImages(
        images=np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1).repeat(2, 1),
        labels=labels, groups=g[labels],
        instances=np.concatenate([np.arange(c) for c in counts]),
        class_names=[f"c{i}" for i in range(len(counts))], group_names=[f"g{i}" for i in range(g.max() + 1)])


def test_split_by_class():
    d = _synthetic([3] * 10, groups=[0] * 5 + [1] * 5)
    tr, va = split_dataset(d, "class", 0.3, seed=0)
    assert va.num_classes == 3 and tr.num_classes == 7
    assert not set(tr.class_names) & set(va.class_names)
    assert sorted(tr.class_names + va.class_names) == sorted(d.class_names)
    assert len(tr) + len(va) == len(d)
    tr2, va2 = split_dataset(d, "class", 0.3, seed=0)
    assert va2.class_names == va.class_names  # deterministic
    assert any(split_dataset(d, "class", 0.3, seed=s)[1].class_names != va.class_names for s in range(1, 6))
    np.testing.assert_array_equal(va.instances, np.tile([0, 1, 2], 3))  # whole classes: kept
    for frac in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\)"):
            split_dataset(d, "class", frac)
    with pytest.raises(ValueError, match="each part needs >= 2 classes"):
        split_dataset(d, "class", 0.1)  # 1 class held out
    with pytest.raises(ValueError, match="each part needs >= 2 classes"):
        split_dataset(d, "class", 0.9)
    with pytest.raises(ValueError, match="by='group'"):
        split_dataset(d, "group")


def test_split_by_image():
    d = _synthetic([10, 6, 4, 3, 1, 8])
    with pytest.warns(UserWarning, match=r"2 class\(es\) with fewer than 4 images kept whole.*c3 \(3\), c4 \(1\)"):
        tr, va = split_dataset(d, "image", 0.2, seed=3)
    assert len(tr) + len(va) == len(d)
    assert tr.class_names == d.class_names and va.class_names == ["c0", "c1", "c2", "c5"]
    held = {name: int(np.sum(va.labels == i)) for i, name in enumerate(va.class_names)}
    assert held == {"c0": 2, "c1": 2, "c2": 2, "c5": 2}  # round(0.2 n), at least 2, leaving >= 2
    kept = {name: int(np.sum(tr.labels == i)) for i, name in enumerate(tr.class_names)}
    assert kept == {"c0": 8, "c1": 4, "c2": 2, "c3": 3, "c4": 1, "c5": 6}
    # Disjoint images; instances re-ranked within each part.
    assert not set(tr.images[:, 0, 0, 0].tolist()) & set(va.images[:, 0, 0, 0].tolist())
    for part in (tr, va):
        for c in range(part.num_classes):
            np.testing.assert_array_equal(part.instances[part.labels == c], np.arange(np.sum(part.labels == c)))
    with pytest.warns(UserWarning):
        again = split_dataset(d, "image", 0.2, seed=3)[1]
    np.testing.assert_array_equal(again.images, va.images)
    with pytest.raises(ValueError, match="need >= 2 classes with >= 4 images"), pytest.warns(UserWarning):
        split_dataset(_synthetic([5, 3, 2]), "image", 0.5)
