"""Distillation targets: a teacher's view of every training image, stored once, read by the trainer.

A targets file (``.npz``, made by ``python -m siamjax.cli.distill_targets``) holds

  targets      float16 [N0, T]: one row per training image before the symmetry classes (rotations /
               mirrors), in the order :func:`siamjax.data.sources.load_data` reads them; the dot product of
               two rows is the teacher's similarity of the two images (:func:`teacher_rows`)
  class_names  [C0] str: the training classes the rows belong to (checked against the run's data)
  labels       int32 [N0]: each row's class index
  teacher      str: where the teacher was loaded from (for the record)

The teacher embeds only the upright images (its cost is one pass over N0 images, not 8 x N0). A training
image turned or mirrored by ``data.rotate_classes`` / ``mirror_classes`` (row ``s * N0 + i`` of the run's
data, symmetry ``s``) takes row ``i``'s target, and the loss compares only images of the same symmetry:
the teacher's similarity of two upright characters stands for that of the same two characters turned
alike (:func:`siamjax.losses.relational_distillation_loss`, ``groups`` = the symmetry).
"""
from __future__ import annotations

import pathlib
from typing import Callable

import numpy as np

from siamjax.data.dataset import LabeledImages
from siamjax.infer.whitening import unit_rows

__all__ = ["teacher_rows", "write_targets", "read_targets", "target_lookup"]


def teacher_rows(model, x: np.ndarray, chunk: int = 512, progress: Callable | None = None) -> np.ndarray:
    """Targets of preprocessed images: ``model`` (a cosine- or correlation-head :class:`siamjax.Model` or an
    :class:`~siamjax.infer.ensemble.Ensemble` of them), uint8 [N, S, S, C] at ``model.preprocessing``'s
    size -> float32 [N, T] whose dot products are ``model.pairwise`` (each member's unit embedding / sqrt(M)
    side by side; correlation heads centred first). ``progress(n)`` is called after each chunk of n images."""
    members = model.members
    heads = {m.meta["model"]["head"] for m in members}
    if not heads <= {"cosine", "correlation"}:
        raise ValueError(f"distillation targets need a cosine or correlation teacher; {model.path} compares "
                         f"with {sorted(heads)}")
    out = []
    for i in range(0, len(x), chunk):
        e = model.embed_preprocessed(x[i:i + chunk])
        blocks = model.member_blocks(e) if len(members) > 1 else [e]
        parts = []
        for m, b in zip(members, blocks):
            b = np.asarray(b, np.float64)
            if m.meta["model"]["head"] == "correlation":
                b = b - b.mean(-1, keepdims=True)
            parts.append(unit_rows(b))
        out.append((np.concatenate(parts, axis=1) / np.sqrt(len(members))).astype(np.float32))
        if progress is not None:
            progress(len(blocks[0]))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def write_targets(path: str | pathlib.Path, targets: np.ndarray, data: LabeledImages, teacher: str) -> None:
    """Store ``targets`` [N0, T] of the upright training images ``data`` (N0 rows) as float16."""
    if len(targets) != len(data):
        raise ValueError(f"{len(targets)} target rows for {len(data)} training images")
    if not np.isfinite(targets).all():
        raise ValueError("the teacher's targets hold NaN or infinite values; it is not fit to teach")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial.npz")
    np.savez(tmp, targets=targets.astype(np.float16), class_names=np.asarray(data.class_names, dtype=str),
             labels=data.labels.astype(np.int32), teacher=np.asarray(str(teacher)))
    tmp.replace(path)


def read_targets(path: str | pathlib.Path, train: LabeledImages) -> np.ndarray:
    """The targets [N0, T] (float16) of ``path``, after checking that they belong to ``train`` (a run's
    training data, symmetry classes included: N0, 2 N0, 4 N0 or 8 N0 rows whose first N0 are the upright
    images in the file's order); ValueError naming what differs otherwise."""
    try:
        with np.load(path, allow_pickle=False) as f:
            targets, names, labels = f["targets"], [str(n) for n in f["class_names"]], f["labels"]
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"config.loss.distill_targets={str(path)!r} is no targets file ({type(e).__name__}: {e}); "
                         "make it with python -m siamjax.cli.distill_targets") from e
    n0 = len(targets)
    fix = "remake it with python -m siamjax.cli.distill_targets and this run's config"
    if targets.ndim != 2 or n0 == 0 or len(labels) != n0:
        raise ValueError(f"{path}: targets of shape {targets.shape} with {len(labels)} labels; {fix}")
    if len(train) % n0 or len(train) // n0 not in (1, 2, 4, 8):
        raise ValueError(f"{path} holds {n0} images; this run trains on {len(train)} (not 1, 2, 4 or 8 x {n0}): {fix}")
    if list(train.class_names[:len(names)]) != names or not np.array_equal(train.labels[:n0], labels):
        raise ValueError(f"{path} was made for other training classes or another image order "
                         f"({len(names)} classes there, {train.num_classes} here): {fix}")
    if not np.isfinite(targets).all():
        raise ValueError(f"{path}: the targets hold NaN or infinite values; {fix}")
    return targets


def target_lookup(targets: np.ndarray) -> Callable[[np.ndarray], dict]:
    """Image indices of a run's training data [B] -> ``{"teacher": float16 [B, T], "symmetry": int32 [B]}``
    (row ``s * N0 + i``: row i's target and symmetry s)."""
    n0 = len(targets)

    def lookup(idx: np.ndarray) -> dict:
        idx = np.asarray(idx)
        return {"teacher": targets[idx % n0], "symmetry": (idx // n0).astype(np.int32)}

    return lookup
