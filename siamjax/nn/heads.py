"""Comparison heads: two embeddings -> a similarity (larger = more alike) and a logit.

Every head is a Flax module with
  ``__call__(a [B, D], b [B, D]) -> HeadOutput(similarity [B], logit [B])``  aligned pairs,
  ``pairwise(a [N, D], b [M, D]) -> similarity [N, M]``                      all pairs,
  ``distance(a [B, D], b [B, D]) -> [B]``                                     for contrastive losses.
All four heads are symmetric: ``f(a, b) == f(b, a)``.

The logit is a learned affine calibration of the similarity (``scale * (similarity - threshold)``)
for the distance heads, so binary cross-entropy can train any of them; Koch's head *is* a logit.
"""
from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from siamjax.nn.distances import l2_normalize, pairwise_distances


class HeadOutput(NamedTuple):
    similarity: jax.Array  # [B], larger = more alike
    logit: jax.Array  # [B], log-odds of "same"


def _safe_norm(x, axis=-1):
    """Euclidean norm with a finite gradient at 0."""
    sq = jnp.sum(x * x, axis=axis)
    safe = jnp.where(sq > 0, sq, 1.0)
    return jnp.where(sq > 0, jnp.sqrt(safe), 0.0)


def _chord(similarity):
    """Distance on the unit sphere from a cosine: sqrt(2 - 2 s), finite gradient at s = 1."""
    sq = jnp.maximum(2.0 - 2.0 * similarity, 0.0)
    safe = jnp.where(sq > 0, sq, 1.0)
    return jnp.where(sq > 0, jnp.sqrt(safe), 0.0)


class _Calibrated(nn.Module):
    """Shared logit calibration: logit = scale * (similarity - threshold)."""

    init_scale: float = 1.0
    init_threshold: float = 0.0

    def setup(self):
        self.scale = self.param("scale", nn.initializers.constant(self.init_scale), ())
        self.threshold = self.param("threshold", nn.initializers.constant(self.init_threshold), ())

    def calibrate(self, similarity):
        return self.scale * (similarity - self.threshold)


class Euclidean(_Calibrated):
    """similarity = -||a - b||_2 (raw embeddings)."""

    init_scale: float = 1.0
    init_threshold: float = -1.0

    def similarity(self, a, b):
        return -_safe_norm(a - b)

    def pairwise(self, a, b):
        return -pairwise_distances(a, b)

    def distance(self, a, b):
        return _safe_norm(a - b)

    def __call__(self, a, b):
        s = self.similarity(a, b)
        return HeadOutput(s, self.calibrate(s))


class Cosine(_Calibrated):
    """similarity = cos(a, b); distance = ||a/|a| - b/|b|||_2 = sqrt(2 - 2 cos)."""

    init_scale: float = 10.0
    init_threshold: float = 0.5

    def _prep(self, x):
        return l2_normalize(x)

    def similarity(self, a, b):
        return jnp.sum(self._prep(a) * self._prep(b), axis=-1)

    def pairwise(self, a, b):
        return self._prep(a) @ self._prep(b).T

    def distance(self, a, b):
        return _chord(self.similarity(a, b))

    def __call__(self, a, b):
        s = self.similarity(a, b)
        return HeadOutput(s, self.calibrate(s))


class Correlation(Cosine):
    """similarity = Pearson correlation of the two embedding vectors (cosine after centring)."""

    def _prep(self, x):
        return l2_normalize(x - jnp.mean(x, axis=-1, keepdims=True))


class WeightedL1(nn.Module):
    """Koch et al. (2015): logit = sum_k alpha_k |a_k - b_k| + bias, similarity = sigmoid(logit)."""

    chunk: int = 64  # rows of ``a`` per block in ``pairwise`` (bounds memory to chunk * M * D)

    def setup(self):
        self.alpha = nn.Dense(1)

    def __call__(self, a, b):
        logit = self.alpha(jnp.abs(a - b))[..., 0]
        return HeadOutput(jax.nn.sigmoid(logit), logit)

    def pairwise(self, a, b):
        blocks = [self.alpha(jnp.abs(a[i:i + self.chunk, None, :] - b[None]))[..., 0]
                  for i in range(0, a.shape[0], self.chunk)]
        return jax.nn.sigmoid(jnp.concatenate(blocks, axis=0))

    def distance(self, a, b):
        raise ValueError("the Koch (weighted L1) head has no distance; train it with loss='bce', "
                         "or pick head='euclidean'|'cosine'|'correlation' for contrastive/triplet losses")


HEADS = {"euclidean": Euclidean, "cosine": Cosine, "correlation": Correlation, "koch": WeightedL1}


def make_head(name: str) -> nn.Module:
    """Build a head by name: ``euclidean``, ``cosine``, ``correlation`` or ``koch`` (weighted L1)."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; choose one of {sorted(HEADS)}")
    return HEADS[name]()
