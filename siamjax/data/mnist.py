"""MNIST (LeCun et al.) in its original IDX files -> :class:`~siamjax.data.dataset.LabeledImages`.

Used for Koch et al.'s (2015) transfer test: a twin trained on Omniglot, not fine-tuned, is asked
10-way one-shot questions on MNIST digits (Koch et al. report 70.3%)::

    python eval.py --checkpoint DIR --data mnist --data_dir ../shared/data/mnist_test --tasks across:10:1 --episodes 400

Files (as published, gzip-compressed or not) in one folder::

    t10k-images-idx3-ubyte[.gz]   magic 0x00000803, then N, rows, cols (big-endian uint32), then N*rows*cols uint8
    t10k-labels-idx1-ubyte[.gz]   magic 0x00000801, then N, then N uint8 labels 0..9
    (train-images-idx3-ubyte[.gz] / train-labels-idx1-ubyte[.gz] for split="train")

Magic numbers, counts and sizes are checked, and a truncated, corrupt or mismatched file fails with
a ValueError naming the file and what is wrong.

Polarity: MNIST stores light digits (ink = 255) on a black background, the opposite of a scan or of
Omniglot's PNGs (dark ink on white paper). The loader first turns each digit into that paper
convention (``255 - x``) and then applies the checkpoint's :class:`Preprocessing`, so a digit reaches
the model exactly as an Omniglot character would: with ``invert=True`` (the Omniglot configs) or
``"auto"`` (the paper is light, mean > 0.5, so it is flipped) the ink is high (255) on a 0
background, as after Omniglot's preprocessing; with ``invert=False`` it is dark on light, as such a
model saw Omniglot.

The result has labels 0-9 (``class_names`` "0".."9"), one group ``"mnist"`` and ``instances`` = the
rank of an image within its class in file order (there are no drawers: build episodes with
``same_instance=False``).
"""
from __future__ import annotations

import gzip
import os
import pathlib
import zlib

import numpy as np

from siamjax.data.dataset import LabeledImages, rank_within_class
from siamjax.data.preprocess import Preprocessing, preprocess_batch

__all__ = ["load_mnist", "read_idx_images", "read_idx_labels", "SPLITS"]

SPLITS = {"test": "t10k", "t10k": "t10k", "train": "train"}
_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
_MAX_BYTES = 1 << 32  # refuse headers that promise more than 4 GiB


def _open(path: pathlib.Path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _read_exact(path: pathlib.Path, header_words: int, magic: int, what: str):
    """(header uint32 words after the magic, payload bytes) of an IDX file, every size checked."""
    try:
        with _open(path) as f:
            head = f.read(4 * header_words)
            if len(head) < 4 * header_words:
                raise ValueError(f"{path}: truncated {what} file: {len(head)} bytes, shorter than the "
                                 f"{4 * header_words}-byte IDX header")
            words = np.frombuffer(head, ">u4").astype(np.int64)
            if words[0] != magic:
                raise ValueError(f"{path}: not an IDX {what} file: magic number 0x{int(words[0]):08x}, "
                                 f"expected 0x{magic:08x}")
            size = int(np.prod(words[1:]))
            if size > _MAX_BYTES:
                raise ValueError(f"{path}: IDX header claims {size} bytes of {what}; the file is corrupt")
            payload = f.read(size)
            if len(payload) < size:
                raise ValueError(f"{path}: truncated {what} file: the header announces "
                                 f"{' x '.join(str(int(w)) for w in words[1:])} = {size} bytes, "
                                 f"the file holds {len(payload)}")
            if f.read(1):
                raise ValueError(f"{path}: {what} file is longer than its header announces ({size} bytes "
                                 "after the header); the file is corrupt or not the one expected")
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"{path}: unreadable gzip data ({e}); the file is truncated or corrupt, "
                         "download it again") from e
    return words[1:], payload


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """uint8 [N, rows, cols] from an IDX3 image file (gzip or not), as stored (MNIST: ink = 255)."""
    path = pathlib.Path(path)
    (n, rows, cols), payload = _read_exact(path, 4, _IMAGES_MAGIC, "image")
    return np.frombuffer(payload, np.uint8).reshape(int(n), int(rows), int(cols))


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """uint8 [N] from an IDX1 label file (gzip or not)."""
    path = pathlib.Path(path)
    (_n,), payload = _read_exact(path, 2, _LABELS_MAGIC, "label")
    return np.frombuffer(payload, np.uint8).copy()


def _paper(images: np.ndarray) -> np.ndarray:
    """MNIST bytes (ink = 255 on 0) -> dark ink on light paper, the convention of a scan or an Omniglot PNG."""
    return 255 - images


def _find(folder: pathlib.Path, stem: str) -> pathlib.Path:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder}: no {stem}.gz (or {stem}); expected the MNIST IDX files there")


def load_mnist(path: str | os.PathLike, spec: Preprocessing, split: str = "test") -> LabeledImages:
    """MNIST ``split`` ("test" = t10k, 10,000 digits; "train") from the folder ``path``.

    Images are preprocessed with ``spec`` after the polarity change described in the module
    docstring (ink ends up high with ``invert=True`` or ``"auto"``).

    Raises:
        FileNotFoundError: the folder or a file is missing.
        ValueError: unknown split; a truncated or corrupt file (bad gzip data, wrong magic number,
            fewer or more bytes than the header announces); image and label counts that differ;
            labels outside 0-9.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; choose test (t10k) or train")
    folder = pathlib.Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"MNIST folder {folder} not found (it should hold {SPLITS[split]}-images-idx3-ubyte.gz)")
    images_path = _find(folder, f"{SPLITS[split]}-images-idx3-ubyte")
    labels_path = _find(folder, f"{SPLITS[split]}-labels-idx1-ubyte")
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path)
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError(f"{images_path}: no images")
    if labels.max() > 9:
        raise ValueError(f"{labels_path}: labels must be digits 0-9, found {int(labels.max())}")
    labels = labels.astype(np.int32)
    instances = rank_within_class(labels)  # in file order
    return LabeledImages(
        images=preprocess_batch(_paper(images), spec),  # polarity: see the module docstring
        labels=labels,
        groups=np.zeros(len(labels), np.int32),
        instances=instances,
        class_names=[str(c) for c in range(10)],
        group_names=["mnist"],
    )
