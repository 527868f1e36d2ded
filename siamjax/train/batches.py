"""Host batches of a training run: ``step -> dict of NumPy arrays``, a function of ``(seed, step)``."""
from __future__ import annotations

from typing import Callable

import numpy as np

from siamjax.data.dataset import LabeledImages
from siamjax.data.samplers import BalancedPairSampler, PKSampler, UnlabeledSampler
from siamjax.eval.episodes import make_episodes
from siamjax.train.config import PK_LOSSES, SSL_LOSSES, validation_protocol
from siamjax.train.distill import read_targets, target_lookup


def make_batch_fn(cfg, data: LabeledImages, rows: slice = slice(None)) -> Callable[[int], dict]:
    """step -> host batch (NumPy): triplet ``{images [P*K,H,W,C] uint8, labels [P*K] int32}`` (with
    distillation also ``teacher`` float16 [P*K, T] and ``symmetry`` int32 [P*K]: siamjax.train.distill),
    pairs ``{left, right [B,H,W,C] uint8, same [B] float32}``.

    ``rows``: the part of the global batch to build (with several processes, this process's rows
    ``[p*B/P, (p+1)*B/P)``, see :func:`siamjax.train.parallel.process_rows`). The global indices are a
    function of ``(seed, step)``, so every process agrees on them and reads only its own images.
    """
    d = cfg.data
    if cfg.loss.name in SSL_LOSSES:
        return make_unlabeled_batch_fn(data.images, d.batch_size, cfg.seed, rows)
    if cfg.loss.name in PK_LOSSES:
        k = int(d.images_per_class)
        sampler = PKSampler(data.labels, data.groups, p=d.batch_size // k, k=k, seed=cfg.seed,
                            groups_per_batch=int(d.groups_per_batch))

        teach = target_lookup(read_targets(cfg.loss.distill_targets, data)) if float(cfg.loss.distill_weight) > 0 else None

        def batch(step):
            idx = sampler(step)[rows]
            out = {"images": data.images[idx], "labels": data.labels[idx].astype(np.int32)}
            return {**out, **teach(idx)} if teach is not None else out
    else:
        sampler = BalancedPairSampler(data.labels, data.groups, batch_size=d.batch_size, seed=cfg.seed,
                                      same_group_negatives=d.same_alphabet_negatives)

        def batch(step):
            p = sampler(step)
            return {"left": data.images[p.left[rows]], "right": data.images[p.right[rows]],
                    "same": p.same[rows].astype(np.float32)}
    return batch


def make_unlabeled_batch_fn(images, batch_size: int, seed: int, rows: slice = slice(None)) -> Callable[[int], dict]:
    """step -> ``{images [B, H, W, C] uint8}``: uniform batches of unsupervised training. It is given the
    images only: labels, classes and groups never reach it."""
    sampler = UnlabeledSampler(len(images), batch_size, seed)

    def batch(step):
        return {"images": images[sampler(step)[rows]]}

    return batch


def make_batch_fn_checked(cfg, train: LabeledImages, val: LabeledImages, rows: slice = slice(None)):
    """:func:`make_batch_fn`, after checking that both splits can serve what the config asks of them
    (a ValueError naming the split, its size and the settings to change otherwise)."""
    try:
        make_episodes(val.labels, val.groups, val.instances, ways=cfg.eval.val_ways, shots=1, episodes=1,
                      seed=cfg.seed + 1, **validation_protocol(cfg))
    except ValueError as e:
        raise ValueError(f"the validation split ({val.num_classes} classes in {val.num_groups} group(s), "
                         f"{len(val)} images) cannot make {cfg.eval.val_ways}-way one-shot tasks: {e}; lower "
                         "config.eval.val_ways or give validation more classes") from e
    try:
        return make_batch_fn(cfg, train, rows)
    except ValueError as e:
        raise ValueError(f"the training split ({train.num_classes} classes, {len(train)} images) cannot make "
                         f"config.loss.name={cfg.loss.name!r} batches of config.data.batch_size={cfg.data.batch_size}: {e}; "
                         "lower config.data.batch_size (a triplet batch holds batch_size / images_per_class classes)") from e
