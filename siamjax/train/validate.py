"""Validation during training: N-way one-shot accuracy of the current weights on fixed episodes."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from siamjax.data.dataset import LabeledImages
from siamjax.data.preprocess import Preprocessing, to_float
from siamjax.eval.episodes import make_episodes, one_shot_accuracy
from siamjax.nn.twin import Twin
from siamjax.train.config import validation_protocol


def make_embedder(twin: Twin, spec: Preprocessing, chunk: int = 512):
    """``(variables, uint8 images [N,H,W,C]) -> np.ndarray [N, D]``, jitted on fixed-size chunks."""
    fn = jax.jit(lambda v, x: twin.embed(v, to_float(x, spec)))

    def embed_all(variables, images: np.ndarray) -> np.ndarray:
        n = len(images)
        size = min(chunk, n)
        out = []
        for i in range(0, n, size):
            block = images[i:i + size]
            pad = size - len(block)
            if pad:
                block = np.concatenate([block, np.zeros((pad, *block.shape[1:]), block.dtype)])
            out.append(np.asarray(fn(variables, block))[:size - pad])
        return np.concatenate(out)

    return embed_all


def make_validator(twin: Twin, cfg, spec: Preprocessing, val: LabeledImages):
    """``variables -> {"val_accuracy", "val_ci95"}`` on fixed within-alphabet one-shot episodes."""
    episodes = make_episodes(val.labels, val.groups, val.instances, ways=cfg.eval.val_ways, shots=1,
                             episodes=cfg.eval.val_episodes, seed=cfg.seed + 1, **validation_protocol(cfg))
    embed_all = make_embedder(twin, spec)
    pairwise = jax.jit(twin.pairwise)

    def validate(variables) -> dict:
        emb = jnp.asarray(embed_all(variables, val.images))
        r = one_shot_accuracy(functools.partial(pairwise, variables), emb, episodes)
        return {"val_accuracy": r["accuracy"], "val_ci95": r["ci95"]}

    return validate
