"""Decompression bombs inside zips (issue 49, item 7): an image member whose header declares more pixels
than ``max_pixels`` is refused from its header, before the member is inflated; the byte-size guard stays.

The bomb is a tiny PNG whose IHDR (and CRC) is patched to declare a huge size, followed by megabytes of
zeros: the zip holds a few KB, the member inflates to tens of MB. ``zipfile.ZipExtFile.read`` is
wrapped to count the bytes inflated, so each test checks that only the header was read."""
import io
import pathlib
import struct
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from siamjax.data import zipfolder as Z
from siamjax.data.decode import DEFAULT_MAX_PIXELS, BadImage, decode_image, max_file_bytes
from siamjax.data.folder import load_image_folder
from siamjax.data.paths import Root
from siamjax.data.preprocess import Preprocessing

PAD = 24 << 20  # zeros after the PNG: the member inflates to 24 MiB (well under the 400 MB byte guard)
LIMIT = max_file_bytes(DEFAULT_MAX_PIXELS)


def _png(w: int = 2, h: int = 2, declare: tuple[int, int] | None = None) -> bytes:
    """A real w x h grey PNG; with ``declare``, its IHDR says that size instead (CRC fixed)."""
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w), 128, np.uint8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"IHDR"
    if declare is not None:
        data[16:24] = struct.pack(">II", *declare)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.fixture
def inflated(monkeypatch):
    """Bytes returned by every ZipExtFile.read (member data inflated) while the test runs."""
    count = {"bytes": 0}
    read = zipfile.ZipExtFile.read

    def counting(self, n=-1):
        data = read(self, n)
        count["bytes"] += len(data)
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting)
    return count


def _zip(path, members: dict) -> pathlib.Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _entry(src, name):
    return next(e for e in src.list().files if "/".join(e.parts) == name)


@pytest.mark.parametrize("declare, message", [
    ((8000, 8000), "8000x8000 = 64,000,000 pixels exceeds max_pixels=50,000,000"),  # our guard
    ((40000, 40000), "too large to decode safely"),  # PIL's own DecompressionBombError, same kind
])
def test_bomb_member_refused_from_its_header(tmp_path, inflated, declare, message):
    path = _zip(tmp_path / "bomb.zip", {"cls/bomb.png": _png(declare=declare) + bytes(PAD)})
    assert path.stat().st_size < 100_000  # a few KB on disk
    src = Z.ZipSource(path)
    entry = _entry(src, "cls/bomb.png")
    assert entry.size > PAD
    tracemalloc.start()
    try:
        with pytest.raises(BadImage) as e:
            Z.read_entry(src, entry, LIMIT, "bomb.zip/cls/bomb.png")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert e.value.kind == "too_large" and message in str(e.value), str(e.value)
    assert str(e.value).startswith("bomb.zip/cls/bomb.png: ")
    assert inflated["bytes"] < 1 << 20, inflated  # the header only, not the 24 MiB member
    assert peak < 8 << 20, peak
    src.close()


def test_explicit_max_pixels_and_files_on_disk(tmp_path, inflated):
    """read_entry's max_pixels overrides limit // 8; a file in a folder gets the same check."""
    path = _zip(tmp_path / "z.zip", {"a.png": _png(declare=(3000, 1000)) + bytes(PAD)})
    src = Z.ZipSource(path)
    with pytest.raises(BadImage, match=r"3000x1000 = 3,000,000 pixels exceeds max_pixels=1,000,000") as e:
        Z.read_entry(src, _entry(src, "a.png"), LIMIT, "a.png", max_pixels=1_000_000)
    assert e.value.kind == "too_large" and inflated["bytes"] < 1 << 20
    src.close()

    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "big.png").write_bytes(_png(declare=(9000, 9000)) + bytes(2 << 20))
    fsrc = Z.FolderSource(folder)
    with pytest.raises(BadImage, match="9000x9000 = 81,000,000 pixels exceeds max_pixels=50,000,000"):
        Z.read_entry(fsrc, _entry(fsrc, "big.png"), LIMIT, "big.png")


def test_byte_size_guard_kept(tmp_path):
    path = _zip(tmp_path / "z.zip", {"a.png": _png() + bytes(PAD)})
    src = Z.ZipSource(path)
    with pytest.raises(BadImage, match=r"file of [\d,]+ bytes exceeds 1,048,576 bytes") as e:
        Z.read_entry(src, _entry(src, "a.png"), 1 << 20, "a.png")
    assert e.value.kind == "too_large"
    src.close()


def test_genuine_members_read_whole(tmp_path):
    """Big members that pass the header check (an image with trailing data, a file that is no image, one
    whose start looks like a PGM header) come back byte for byte: the stream is rewound after the check."""
    png = _png(5, 3) + bytes(3 << 20)
    csv = b"P1,P2,label\n" + b"a.png,b.png,1\n" * 200_000
    other = bytes(range(256)) * 8192
    path = _zip(tmp_path / "z.zip", {"img.png": png, "pairs.csv": csv, "blob.bin": other})
    src = Z.ZipSource(path)
    assert Z.read_entry(src, _entry(src, "img.png"), LIMIT, "img.png") == png
    assert decode_image(png, "img.png").shape == (3, 5)
    assert Z.read_entry(src, _entry(src, "pairs.csv"), LIMIT, "pairs.csv") == csv
    assert Z.read_entry(src, _entry(src, "blob.bin"), LIMIT, "blob.bin") == other
    src.close()


def _classes(n_per_class=3) -> dict:
    return {f"{c}/{i}.png": _png(6, 6) for c in ("a", "b") for i in range(n_per_class)}


@pytest.mark.parametrize("lazy", [False, True])
def test_image_folder_skips_the_bomb_without_inflating_it(tmp_path, inflated, lazy):
    members = _classes(10)
    members["a/bomb.png"] = _png(declare=(8000, 8000)) + bytes(PAD)
    path = _zip(tmp_path / "d.zip", members)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = load_image_folder(path, Preprocessing(size=6, channels=1, invert=False), lazy=lazy,
                              max_bad_fraction=0.1)
    assert len(d.labels) == 20
    text = " ".join(str(w.message) for w in caught)
    assert "a/bomb.png" in text and "exceeds max_pixels=50,000,000" in text, text
    assert inflated["bytes"] < 1 << 20, inflated


def test_path_reader_refuses_the_bomb(tmp_path, inflated):
    path = _zip(tmp_path / "p.zip", {"imgs/bomb.png": _png(declare=(8000, 8000)) + bytes(PAD)})
    with pytest.raises(ValueError, match=r"cannot use image .*bomb\.png.*exceeds max_pixels"):
        Root(path).read("imgs/bomb.png")
    assert inflated["bytes"] < 1 << 20, inflated
