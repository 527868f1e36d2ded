"""Batch index samplers (host-side NumPy).

Every batch is a pure function of ``(seed, step)``: each call builds its own generator
``np.random.default_rng([seed, step])``, so batches do not depend on call order and a run
can resume at any step.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

__all__ = ["PairIndex", "BalancedPairSampler", "PKSampler", "UnlabeledSampler"]


@dataclasses.dataclass(frozen=True)
class PairIndex:
    """A batch of image pairs.

    Attributes:
        left: int64 [B], index of the first image.
        right: int64 [B], index of the second image.
        same: float32 [B], 1.0 when both images have the same class, else 0.0.
    """

    left: np.ndarray
    right: np.ndarray
    same: np.ndarray

    def __len__(self) -> int:
        return int(self.left.shape[0])


def _check_seed(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


class _ClassIndex:
    """Images grouped by class and classes grouped by group (all int64 arrays).

    ``order[starts[c] : starts[c] + counts[c]]`` are the image indices of dense class c;
    ``class_group[c]`` is its dense group.
    """

    def __init__(self, labels: np.ndarray, groups: np.ndarray | None) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0:
            raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
        if labels.dtype.kind not in "iu":
            raise ValueError(f"labels must hold integers, got dtype {labels.dtype}")
        if groups is None:
            groups = np.zeros(labels.shape, dtype=np.int64)
        groups = np.asarray(groups)
        if groups.shape != labels.shape:
            raise ValueError(f"groups has shape {groups.shape}, expected {labels.shape} like labels")
        if groups.dtype.kind not in "iu":
            raise ValueError(f"groups must hold integers, got dtype {groups.dtype}")
        self.class_values, inv = np.unique(labels, return_inverse=True)
        inv = inv.reshape(-1)
        self.group_values, ginv = np.unique(groups, return_inverse=True)
        ginv = ginv.reshape(-1)
        self.order = np.argsort(inv, kind="stable").astype(np.int64)
        self.counts = np.bincount(inv, minlength=self.class_values.size).astype(np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self.class_group = ginv[self.order[self.starts]].astype(np.int64)
        bad = np.flatnonzero(self.class_group[inv] != ginv)
        if bad.size:
            c = self.class_values[inv[bad[0]]]
            raise ValueError(f"class {c} has images in more than one group; every class must belong to one group")

    @property
    def num_classes(self) -> int:
        return int(self.class_values.size)

    def group_table(self, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CSR table of eligible classes by group: (ptr int64 [G'+1], classes int64 [M]).

        Only groups with at least one eligible class get a row; classes in row g are
        ``classes[ptr[g] : ptr[g + 1]]``.
        """
        cls = np.flatnonzero(eligible)
        cls = cls[np.argsort(self.class_group[cls], kind="stable")]
        _, per_group = np.unique(self.class_group[cls], return_counts=True)
        ptr = np.concatenate([[0], np.cumsum(per_group)]).astype(np.int64)
        return ptr, cls.astype(np.int64)


class BalancedPairSampler:
    """Half positive, half negative pairs with classes drawn evenly across groups (Koch et al.).

    For each pair a group is drawn uniformly, then a class in it uniformly. Positives take
    two different images of that class. Negatives take a second class from the same group
    with probability ``same_group_negatives`` (when that group has >= 2 classes), else from
    a uniformly drawn other group (if there is only one group, always the same group).

    Args:
        labels: int [N] class of each image (any integers).
        groups: int [N] group of each image (e.g. alphabet), or None for one group.
        batch_size: even number of pairs B per batch.
        seed: non-negative int.
        same_group_negatives: probability in [0, 1] of a same-group negative.

    Raises:
        ValueError: odd batch size, fewer than 2 classes, no class with >= 2 images.
    """

    def __init__(
        self,
        labels: np.ndarray,
        groups: np.ndarray | None,
        batch_size: int,
        seed: int,
        same_group_negatives: float = 0.5,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 2:
            raise ValueError(f"batch_size must be an even int >= 2, got {batch_size!r}")
        if batch_size % 2:
            raise ValueError(f"batch_size must be even (half positive, half negative pairs), got {batch_size}")
        if not 0.0 <= float(same_group_negatives) <= 1.0:
            raise ValueError(f"same_group_negatives must be in [0, 1], got {same_group_negatives!r}")
        self.batch_size = int(batch_size)
        self.seed = _check_seed(seed, "seed")
        self.same_group_negatives = float(same_group_negatives)
        self._ix = ix = _ClassIndex(labels, groups)
        if ix.num_classes < 2:
            raise ValueError(f"need at least 2 classes for negative pairs, got {ix.num_classes}")
        single = ix.counts < 2
        if single.all():
            raise ValueError("no class has 2 or more images, so no positive pair is possible")
        if single.any():
            warnings.warn(
                f"{int(single.sum())} of {ix.num_classes} classes have a single image and are excluded "
                f"from positive pairs (they still appear in negatives)",
                stacklevel=2,
            )
        self._pos_ptr, self._pos_cls = ix.group_table(~single)
        self._neg_ptr, self._neg_cls = ix.group_table(np.ones(ix.num_classes, dtype=bool))

    def _pick(self, rng: np.random.Generator, ptr: np.ndarray, cls: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Uniform class within each row g of a CSR table -> (class int64 [n], position in row)."""
        j = rng.integers(0, ptr[g + 1] - ptr[g])
        return cls[ptr[g] + j], j

    def _image(self, rng: np.random.Generator, c: np.ndarray) -> np.ndarray:
        ix = self._ix
        return ix.order[ix.starts[c] + rng.integers(0, ix.counts[c])]

    def __call__(self, step: int) -> PairIndex:
        """Pairs of batch ``step`` (non-negative int): a PairIndex of B pairs, shuffled."""
        rng = np.random.default_rng([self.seed, _check_seed(step, "step")])
        ix, h = self._ix, self.batch_size // 2

        # Positives: group -> class -> two distinct images.
        g = rng.integers(0, self._pos_ptr.size - 1, size=h)
        c, _ = self._pick(rng, self._pos_ptr, self._pos_cls, g)
        n = ix.counts[c]
        a = rng.integers(0, n)
        b = rng.integers(0, n - 1)
        b = b + (b >= a)
        pos_left = ix.order[ix.starts[c] + a]
        pos_right = ix.order[ix.starts[c] + b]

        # Negatives: group -> class, then a different class from the same or another group.
        ptr, cls = self._neg_ptr, self._neg_cls
        num_groups = ptr.size - 1
        g1 = rng.integers(0, num_groups, size=h)
        c1, j1 = self._pick(rng, ptr, cls, g1)
        size1 = ptr[g1 + 1] - ptr[g1]
        same_group = (rng.random(h) < self.same_group_negatives) & (size1 >= 2)
        if num_groups == 1:
            same_group[:] = True  # the only group holds all (>= 2) classes
        j2 = rng.integers(0, np.maximum(size1 - 1, 1))
        j2 = np.minimum(j2 + (j2 >= j1), size1 - 1)
        c2_same = cls[ptr[g1] + j2]
        if num_groups > 1:
            g2 = rng.integers(0, num_groups - 1, size=h)
            g2 = g2 + (g2 >= g1)
            c2_other, _ = self._pick(rng, ptr, cls, g2)
        else:
            c2_other = c2_same
        c2 = np.where(same_group, c2_same, c2_other)
        neg_left = self._image(rng, c1)
        neg_right = self._image(rng, c2)
        swap = rng.random(h) < 0.5
        neg_left, neg_right = np.where(swap, neg_right, neg_left), np.where(swap, neg_left, neg_right)

        left = np.concatenate([pos_left, neg_left])
        right = np.concatenate([pos_right, neg_right])
        same = np.concatenate([np.ones(h, np.float32), np.zeros(h, np.float32)])
        perm = rng.permutation(self.batch_size)
        return PairIndex(
            left=left[perm].astype(np.int64),
            right=right[perm].astype(np.int64),
            same=same[perm],
        )


class PKSampler:
    """P classes x K images per batch (for triplet / batch-hard losses).

    Classes are drawn without replacement, evenly across groups: pick a group uniformly
    among those with classes left, then one of its remaining classes uniformly. Each class
    contributes K distinct images when it has >= K; a class with 2 <= n < K images
    contributes all n images, repeated cyclically in random order up to K (sampling with
    replacement that still gives every image and >= 2 distinct ones); with K >= 2, classes
    with a single image are excluded with a warning.

    Args:
        labels: int [N] class of each image.
        groups: int [N] group of each image, or None for one group.
        p: classes per batch; k: images per class.
        seed: non-negative int.
        groups_per_batch: 0 (default) spreads the P classes over all groups as above; G > 0 draws
            them from G random groups (one more group joins whenever those run out of classes), so
            a batch holds near neighbours (Omniglot: characters of one alphabet), like a
            within-alphabet one-shot task.

    Raises:
        ValueError: p or k < 1, fewer than p usable classes.
    """

    # Above this many keys ([P, largest class]) images are drawn per class instead.
    _MAX_DENSE = 1 << 22

    def __init__(self, labels: np.ndarray, groups: np.ndarray | None, p: int, k: int, seed: int,
                 groups_per_batch: int = 0) -> None:
        if isinstance(groups_per_batch, bool) or not isinstance(groups_per_batch, (int, np.integer)) \
                or groups_per_batch < 0:
            raise ValueError(f"groups_per_batch must be a non-negative int, got {groups_per_batch!r}")
        self.groups_per_batch = int(groups_per_batch)
        for name, value in (("p", p), ("k", k)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.p, self.k = int(p), int(k)
        self.seed = _check_seed(seed, "seed")
        self._ix = ix = _ClassIndex(labels, groups)
        usable = ix.counts >= min(self.k, 2)
        if (~usable).any():
            warnings.warn(
                f"{int((~usable).sum())} of {ix.num_classes} classes have a single image and are excluded "
                f"(k={self.k} needs at least 2 images per class)",
                stacklevel=2,
            )
        short = usable & (ix.counts < self.k)
        if short.any():
            warnings.warn(
                f"{int(short.sum())} classes have fewer than k={self.k} images; their images repeat within a batch",
                stacklevel=2,
            )
        if usable.sum() < self.p:
            raise ValueError(f"need at least p={self.p} usable classes, got {int(usable.sum())}")
        self._ptr, self._cls = ix.group_table(usable)

    def _classes(self, rng: np.random.Generator) -> np.ndarray:
        """int64 [P] distinct dense classes (uniform group among non-exhausted, then class)."""
        ptr = self._ptr
        cls = self._cls.copy()
        left = (ptr[1:] - ptr[:-1]).tolist()
        alive = list(range(len(left)))
        waiting: list[int] = []
        if self.groups_per_batch and self.groups_per_batch < len(alive):
            order = rng.permutation(len(alive)).tolist()
            alive, waiting = order[:self.groups_per_batch], order[self.groups_per_batch:][::-1]
        u = rng.random((self.p, 2))
        chosen = np.empty(self.p, dtype=np.int64)
        for t in range(self.p):
            gi = min(int(u[t, 0] * len(alive)), len(alive) - 1)
            g = alive[gi]
            r = left[g]
            pos = int(ptr[g]) + min(int(u[t, 1] * r), r - 1)
            last = int(ptr[g]) + r - 1
            chosen[t] = cls[pos]
            cls[pos] = cls[last]
            left[g] = r - 1
            if r == 1:
                alive[gi] = alive[-1]
                alive.pop()
                if not alive and waiting:
                    alive.append(waiting.pop())
        return chosen

    def __call__(self, step: int) -> np.ndarray:
        """int64 [P*K] image indices of batch ``step``, class by class (K consecutive)."""
        rng = np.random.default_rng([self.seed, _check_seed(step, "step")])
        ix = self._ix
        chosen = self._classes(rng)
        counts = ix.counts[chosen]  # [P]
        cols = np.arange(self.k)[None, :] % counts[:, None]  # [P, K]
        width = int(counts.max())
        if self.p * width <= self._MAX_DENSE:
            keys = rng.random((self.p, width))
            keys[np.arange(width)[None, :] >= counts[:, None]] = 2.0
            perm = np.argsort(keys, axis=1)  # first counts[i] entries: a permutation of row i
            local = np.take_along_axis(perm, cols, axis=1)
        else:
            local = np.empty((self.p, self.k), dtype=np.int64)
            for i, n in enumerate(counts.tolist()):
                if n >= self.k:
                    local[i] = rng.choice(n, size=self.k, replace=False)
                else:
                    local[i] = rng.permutation(n)[cols[i]]
        return ix.order[ix.starts[chosen][:, None] + local].reshape(-1).astype(np.int64)


class UnlabeledSampler:
    """Uniform batches of image indices without labels (unsupervised training: SimSiam, SimCLR).

    Batch ``step`` holds ``batch_size`` distinct images when the dataset has that many (else
    every image, then repeats), drawn with ``np.random.default_rng([seed, step])``: a pure function
    of ``(seed, step)``. It is given the number of images only, never their labels.
    """

    def __init__(self, num_images: int, batch_size: int, seed: int) -> None:
        if isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer)) or num_images < 1:
            raise ValueError(f"num_images must be a positive int, got {num_images!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.num_images = int(num_images)
        self.batch_size = int(batch_size)
        self.seed = _check_seed(seed, "seed")

    def __call__(self, step: int) -> np.ndarray:
        """int64 [batch_size] image indices of batch ``step``."""
        rng = np.random.default_rng([self.seed, _check_seed(step, "step")])
        n, b = self.num_images, self.batch_size
        if b <= n:
            return rng.choice(n, size=b, replace=False).astype(np.int64)
        return np.concatenate([rng.permutation(n) for _ in range(-(-b // n))])[:b].astype(np.int64)
