"""Pair lists: CSV rows ``img1,img2,label`` -> which images to compare; each image embedded once; pairs scored.

:func:`parse_pairs` reads the list (header row, blank lines, label values, a regex filter on img1);
:func:`embed_paths` decodes and embeds each distinct image of a :class:`~siamjax.data.paths.Root`
once, naming the first CSV line of a bad image; :func:`score_pairs` scores index pairs of those
embeddings with the model's head (larger = more alike).
"""
from __future__ import annotations

import csv
import io
import re

import numpy as np

from siamjax.data.paths import Root, decode_checked, norm_path

__all__ = ["embed_paths", "parse_pairs", "score_pairs"]


def _parse_label(text: str) -> int | None:
    t = text.strip().lower()
    if t in ("1", "1.0", "true", "yes"):
        return 1
    if t in ("0", "0.0", "false", "no"):
        return 0
    return None


def parse_pairs(text: str, where: str, same_label: int = 1,
                pair_filter: str | None = None) -> tuple[list[str], list[str], np.ndarray, list[int]]:
    """CSV text -> (img1 paths, img2 paths, genuine bool [P], CSV line numbers), filtered.

    Rows ``img1,img2,label``; a first row whose label is not 0/1 is a header; blank lines skipped."""
    if same_label not in (0, 1):
        raise ValueError(f"--same_label must be 0 or 1, got {same_label}")
    rx = None
    if pair_filter:
        try:
            rx = re.compile(pair_filter)
        except re.error as e:
            raise ValueError(f"--pair_filter {pair_filter!r} is not a valid regular expression ({e})") from None
    a, b, y, lines = [], [], [], []
    first = True
    n_rows, example = 0, ""
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < 3:
            raise ValueError(f"{where} line {lineno}: expected img1,img2,label, got {row!r}")
        lab = _parse_label(row[2])
        if lab is None:
            if first:  # header
                first = False
                continue
            raise ValueError(f"{where} line {lineno}: label {row[2]!r} is not 0 or 1")
        first = False
        n_rows += 1
        p1, p2 = norm_path(row[0]), norm_path(row[1])
        example = example or p1
        if rx is not None and not rx.search(p1):
            continue
        a.append(p1)
        b.append(p2)
        y.append(lab == same_label)
        lines.append(lineno)
    if n_rows == 0:
        raise ValueError(f"{where} has no pair rows (expected lines img1,img2,label)")
    if not a:
        raise ValueError(f"--pair_filter {pair_filter!r} keeps none of the {n_rows} rows of {where} "
                         f"(it is matched with re.search against the img1 path, e.g. {example!r})")
    return a, b, np.asarray(y, bool), lines


def embed_paths(model, root: Root, paths: list[str], first_line: dict[str, int] | None = None,
                where: str = "") -> np.ndarray:
    """Decode + preprocess each path once (named in any error, with its first line of the pair list
    ``where`` when ``first_line`` is given), then embed: float32 [len(paths), D]."""
    x = np.zeros((len(paths), model.preprocessing.size, model.preprocessing.size, model.preprocessing.channels),
                 np.uint8)
    for k, rel in enumerate(paths):
        what = f" (line {first_line[rel]} of {where})" if first_line is not None else ""
        try:
            data = root.read(rel)
        except (OSError, ValueError) as e:
            raise type(e)(f"{e}{what}") from None
        arr = decode_checked(data, f"{root}/{rel}", what)
        try:
            x[k] = model.preprocess([arr])[0]
        except ValueError as e:
            raise ValueError(f"cannot use image {root}/{rel!r}{what}: {e}") from None
    return model.embed_preprocessed(x)


def score_pairs(model, emb: np.ndarray, i: np.ndarray, j: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Head similarity of embedding pairs (emb[i[p]], emb[j[p]]) -> float64 [P]."""
    out = [np.asarray(model.score_embeddings(emb[i[s:s + chunk]], emb[j[s:s + chunk]]), np.float64)
           for s in range(0, len(i), chunk)]
    return np.concatenate(out) if out else np.zeros(0)
