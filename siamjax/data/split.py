"""Splitting a :class:`~siamjax.data.dataset.LabeledImages` into two parts (training / held out) by
whole classes or by images within classes, deterministically in a seed."""

from __future__ import annotations

import warnings

import numpy as np

from siamjax.data.dataset import LabeledImages, rank_within_class
from siamjax.data.folder_layout import shown

__all__ = ["split_dataset"]


def split_dataset(data: LabeledImages, by: str = "class", fraction: float = 0.2,
                  seed: int = 0) -> tuple[LabeledImages, LabeledImages]:
    """(rest, held_out): a deterministic split (in ``seed``) for validation or testing.

    Args:
        by: "class": ``round(fraction * num_classes)`` whole classes are held out (disjoint classes:
            the one-shot setting, new classes at test time). "image": every class with >= 4 images
            is in both parts, ``round(fraction * n)`` of its images held out, clipped so each side
            keeps >= 2; classes with fewer than 4 images stay whole in ``rest`` (warned).
        fraction: share held out, in (0, 1).

    Both parts keep the order of ``data``; lazy images stay lazy (views sharing one cache); labels
    and groups are re-densified. ``instances`` are kept with by="class" (whole classes: Omniglot's
    drawers stay drawers) and re-ranked 0.. within each class of each part with by="image".

    Raises:
        ValueError: unknown ``by``, ``fraction`` outside (0, 1), a part left with fewer than 2 classes.
    """
    if by not in ("class", "image"):
        raise ValueError(f"split_dataset: by={by!r}; use 'class' (held-out classes) or 'image' (held-out images)")
    if not (isinstance(fraction, (int, float, np.integer, np.floating)) and 0.0 < float(fraction) < 1.0):
        raise ValueError(f"split_dataset: fraction must be in (0, 1), got {fraction!r}")
    fraction = float(fraction)
    rng = np.random.default_rng(seed)
    labels = np.asarray(data.labels)
    present = np.unique(labels)
    held = np.zeros(len(labels), bool)
    if by == "class":
        n_held = int(round(fraction * len(present)))
        if n_held < 2 or len(present) - n_held < 2:
            raise ValueError(
                f"split_dataset(by='class', fraction={fraction:g}) of {len(present)} classes holds out {n_held} and "
                f"keeps {len(present) - n_held}; each part needs >= 2 classes: change fraction "
                f"(config.data.val_fraction) or use more classes")
        chosen = rng.permutation(present)[:n_held]
        held = np.isin(labels, chosen)
    else:
        too_small = []
        for c in present:
            idx = np.flatnonzero(labels == c)
            n = len(idx)
            if n < 4:
                too_small.append(f"{data.class_names[c]} ({n})")
                continue
            k = min(max(int(round(fraction * n)), 2), n - 2)
            held[rng.permutation(idx)[:k]] = True
        if too_small:
            warnings.warn(f"split_dataset(by='image'): {len(too_small)} class(es) with fewer than 4 images kept whole "
                          f"in the training part (each part needs >= 2 images of a class): {shown(too_small)}",
                          stacklevel=2)
        n_held = len(np.unique(labels[held]))
        if n_held < 2:
            raise ValueError(f"split_dataset(by='image') holds out images of {n_held} class(es); need >= 2 classes "
                             f"with >= 4 images each")
    rest, held_out = data.subset(~held), data.subset(held)
    if by == "image":  # each part's images of a class get instances 0.. again (episodes pair them by rank)
        rest, held_out = _rerank(rest), _rerank(held_out)
    return rest, held_out


def _rerank(d: LabeledImages) -> LabeledImages:
    """The same images with ``instances`` = rank within class (in row order)."""
    d.instances = rank_within_class(d.labels)
    return d
