"""Reader for task folders in the layout of Lake et al.'s published one-shot runs.

  RUNS/run01/training/class01.png ... class20.png   one support image per class
  RUNS/run01/test/item01.png ... item20.png         the queries
  RUNS/run01/class_labels.txt                       one line per query: "<test file> <training file>"

Paths in class_labels.txt may carry the run folder as a prefix (``run01/test/item01.png``); only the
last two components (``test/item01.png``) are used. Lines may separate the two paths by spaces or a comma.
"""
from __future__ import annotations

import dataclasses
import pathlib
import re

import numpy as np
from PIL import Image


@dataclasses.dataclass(frozen=True)
class LakeRun:
    name: str
    support: list[np.ndarray]  # the training images, one per class (raw, as PIL gives them)
    support_files: list[str]  # "training/classNN.png"
    queries: list[np.ndarray]  # the test images
    answers: np.ndarray  # int64 [Q]: index into ``support`` of each query's correct class


def _tail(path: str) -> str:
    return "/".join(pathlib.PurePosixPath(path.replace("\\", "/")).parts[-2:])


def _read(path: pathlib.Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im)
    except Exception as e:  # PIL raises many types
        raise ValueError(f"cannot decode image {path}: {e}") from e


def read_run(run_dir: str | pathlib.Path) -> LakeRun:
    """One run folder -> :class:`LakeRun` (ValueError naming the problem for a malformed folder)."""
    run_dir = pathlib.Path(run_dir)
    labels = run_dir / "class_labels.txt"
    if not labels.is_file():
        raise ValueError(f"{run_dir} is not a one-shot run folder: {labels.name} is missing")
    support_paths = sorted((run_dir / "training").glob("*.png"))
    if not support_paths:
        raise ValueError(f"{run_dir}/training holds no .png images")
    support_files = [_tail(str(p)) for p in support_paths]
    queries, answers = [], []
    for lineno, line in enumerate(labels.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = [p for p in re.split(r"[,\s]+", line.strip()) if p]
        if len(parts) != 2:
            raise ValueError(f"{labels}:{lineno}: expected '<test file> <training file>', got {line!r}")
        test_file, train_file = (_tail(p) for p in parts)
        if train_file not in support_files:
            raise ValueError(f"{labels}:{lineno}: {train_file} is not among the training images")
        queries.append(_read(run_dir / test_file))
        answers.append(support_files.index(train_file))
    if not queries:
        raise ValueError(f"{labels} lists no test items")
    return LakeRun(run_dir.name, [_read(p) for p in support_paths], support_files, queries,
                   np.asarray(answers, np.int64))


def read_runs(root: str | pathlib.Path) -> list[LakeRun]:
    """Every ``run*`` folder under ``root`` (or ``root`` itself when it is one run), sorted by name."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"one-shot runs folder {root} does not exist")
    if (root / "class_labels.txt").is_file():
        return [read_run(root)]
    runs = sorted(p for p in root.iterdir() if p.is_dir() and (p / "class_labels.txt").is_file())
    if not runs:
        raise ValueError(f"no run folders (with class_labels.txt) under {root}")
    return [read_run(p) for p in runs]
