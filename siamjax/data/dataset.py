"""In-memory labelled image sets (host-side NumPy)."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Iterable, Sequence

import numpy as np

from siamjax.data.lazy import LazyImages

__all__ = ["LabeledImages", "rank_within_class", "with_rotated_classes"]


def rank_within_class(labels: np.ndarray) -> np.ndarray:
    """int32 [N]: for each row, how many earlier rows share its label (0, 1, 2, ... within each class,
    in row order): the ``instances`` of data without Omniglot's drawer numbers."""
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_labels)) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, len(labels)]))
    ranks = np.empty(len(labels), np.int32)
    ranks[order] = np.arange(len(labels)) - first
    return ranks


def unknown_name_error(kind: str, name: str, available: Sequence[str], where: str = "") -> ValueError:
    """ValueError for an unknown ``name``, listing close matches (difflib, case-insensitive)."""
    lower = {a.lower(): a for a in available}
    close = difflib.get_close_matches(name.lower(), list(lower), n=5, cutoff=0.6)
    where = f" {where}" if where else ""
    if close:
        hint = "did you mean " + ", ".join(repr(lower[c]) for c in close) + "?"
    else:
        shown = ", ".join(repr(a) for a in list(available)[:60])
        more = f", ... ({len(available)} in all)" if len(available) > 60 else ""
        hint = f"available: {shown}{more}"
    return ValueError(f"unknown {kind} {name!r}{where}; {hint}")


def _int_array(x: object, name: str, n: int | None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"LabeledImages.{name} must be 1-D, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"LabeledImages.{name} must hold integers, got dtype {arr.dtype}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"LabeledImages.{name} has length {arr.shape[0]}, expected {n} (one per image)")
    return arr.astype(np.int32, copy=False)


@dataclasses.dataclass(eq=False)
class LabeledImages:
    """Images with class, group and instance ids.

    Attributes:
        images: uint8 [N, H, W, C]: a NumPy array, or a :class:`~siamjax.data.lazy.LazyImages`
            that decodes rows on demand (``images[idx]`` returns NumPy either way).
        labels: int32 [N], dense class index in 0..num_classes-1.
        groups: int32 [N], group index (Omniglot alphabet) in 0..num_groups-1.
        instances: int32 [N], instance id within its class (Omniglot drawer 0..19).
        class_names: [num_classes] names, e.g. "Latin/character07".
        group_names: [num_groups] names, e.g. "Latin".
    """

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    instances: np.ndarray
    class_names: list[str]
    group_names: list[str]

    def __post_init__(self) -> None:
        if not isinstance(self.images, LazyImages):
            self.images = np.asarray(self.images)
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(
                f"LabeledImages.images must be uint8 [N, H, W, C], got {self.images.dtype} {self.images.shape}"
            )
        n = self.images.shape[0]
        self.labels = _int_array(self.labels, "labels", n)
        self.groups = _int_array(self.groups, "groups", n)
        self.instances = _int_array(self.instances, "instances", n)
        self.class_names = [str(s) for s in self.class_names]
        self.group_names = [str(s) for s in self.group_names]
        for name, ids, names in (("labels", self.labels, self.class_names), ("groups", self.groups, self.group_names)):
            if ids.size and (ids.min() < 0 or ids.max() >= len(names)):
                raise ValueError(
                    f"LabeledImages.{name} must lie in [0, {len(names)}), got [{ids.min()}, {ids.max()}]"
                )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return (
            f"LabeledImages(images=uint8{list(self.images.shape)}, num_classes={self.num_classes}, "
            f"num_groups={self.num_groups})"
        )

    @property
    def num_classes(self) -> int:
        """Number of classes C (= len(class_names))."""
        return len(self.class_names)

    @property
    def num_groups(self) -> int:
        """Number of groups G (= len(group_names))."""
        return len(self.group_names)

    def subset(self, mask_or_indices: np.ndarray | Sequence[int] | slice) -> "LabeledImages":
        """Images picked by a bool mask [N], int indices [M] (order kept) or a slice.

        Labels and groups are re-densified to 0..C'-1 / 0..G'-1, keeping the original
        relative order of classes and groups; names follow.
        """
        n = len(self)
        if isinstance(mask_or_indices, slice):
            idx = np.arange(n)[mask_or_indices]
        else:
            sel = np.asarray(mask_or_indices)
            if sel.dtype == np.bool_:
                if sel.shape != (n,):
                    raise ValueError(f"subset: bool mask must have shape ({n},), got {sel.shape}")
                idx = np.flatnonzero(sel)
            elif sel.size == 0:
                idx = np.zeros(0, dtype=np.int64)
            elif sel.ndim == 1 and sel.dtype.kind in "iu":
                idx = sel.astype(np.int64)
                if idx.min() < -n or idx.max() >= n:
                    raise IndexError(f"subset: indices out of range for {n} images")
                idx = np.where(idx < 0, idx + n, idx)
            else:
                raise ValueError(
                    f"subset: expected a bool mask [N], 1-D int indices or a slice, got {sel.dtype} {sel.shape}"
                )
        labels = self.labels[idx]
        groups = self.groups[idx]
        kept_classes, new_labels = np.unique(labels, return_inverse=True)
        kept_groups, new_groups = np.unique(groups, return_inverse=True)
        return LabeledImages(
            images=self.images.view(idx) if isinstance(self.images, LazyImages) else self.images[idx],
            labels=new_labels.reshape(-1).astype(np.int32),
            groups=new_groups.reshape(-1).astype(np.int32),
            instances=self.instances[idx],
            class_names=[self.class_names[c] for c in kept_classes],
            group_names=[self.group_names[g] for g in kept_groups],
        )

    def select_groups(self, names: str | Iterable[str], exclude: bool = False) -> "LabeledImages":
        """Images whose group is in ``names`` (or not in it, with ``exclude=True``).

        Raises:
            ValueError: a name is not in ``group_names`` (close matches are listed).
        """
        if isinstance(names, str):
            names = [names]
        wanted = []
        for name in names:
            if name not in self.group_names:
                raise unknown_name_error("group", name, self.group_names)
            wanted.append(self.group_names.index(name))
        mask = np.isin(self.groups, np.asarray(wanted, dtype=np.int32))
        return self.subset(~mask if exclude else mask)


def with_rotated_classes(data: LabeledImages) -> LabeledImages:
    """``data`` and its images turned by 90, 180 and 270 degrees, each turn a new class in a new group
    (4x the images, classes and groups): the standard way to multiply Omniglot's training characters
    (a character turned a quarter is not the same character). Rows of turn t come after those of
    turn t-1; names get a "/rot90"-style suffix. In memory only (not for lazily read images).
    """
    if isinstance(data.images, LazyImages):
        raise ValueError("rotated classes need images in memory; set config.data.lazy=False or turn rotations off")
    if data.images.shape[1] != data.images.shape[2]:
        raise ValueError(f"rotated classes need square images, got {data.images.shape[1:3]}")
    turns = range(4)
    suffix = ["", "/rot90", "/rot180", "/rot270"]
    return LabeledImages(
        images=np.concatenate([np.rot90(data.images, t, axes=(1, 2)) for t in turns]),
        labels=np.concatenate([data.labels + t * data.num_classes for t in turns]),
        groups=np.concatenate([data.groups + t * data.num_groups for t in turns]),
        instances=np.tile(data.instances, 4),
        class_names=[n + suffix[t] for t in turns for n in data.class_names],
        group_names=[n + suffix[t] for t in turns for n in data.group_names],
    )


def with_mirrored_classes(data: LabeledImages) -> LabeledImages:
    """``data`` and its images mirrored left-right, each mirror image a new class in a new group (2x the
    images, classes and groups; after :func:`with_rotated_classes`, the 8 symmetries of the square).
    Mirrored rows come after the originals; names get a "/mirror" suffix. In memory only."""
    if isinstance(data.images, LazyImages):
        raise ValueError("mirrored classes need images in memory; set config.data.lazy=False or turn mirroring off")
    return LabeledImages(
        images=np.concatenate([data.images, data.images[:, :, ::-1]]),
        labels=np.concatenate([data.labels, data.labels + data.num_classes]),
        groups=np.concatenate([data.groups, data.groups + data.num_groups]),
        instances=np.tile(data.instances, 2),
        class_names=list(data.class_names) + [n + "/mirror" for n in data.class_names],
        group_names=list(data.group_names) + [n + "/mirror" for n in data.group_names],
    )
