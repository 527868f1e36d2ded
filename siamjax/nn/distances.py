"""Distances shared by the heads and the losses: unit rows and all-pairs Euclidean distances."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
    """``x / max(||x||, eps)`` along ``axis`` (same shape as ``x``); finite gradient at ``x = 0``."""
    sq = jnp.sum(x * x, axis=axis, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))


def _safe_sqrt(sq: jax.Array) -> jax.Array:
    """sqrt of a non-negative array, 0 at 0 with a zero (not infinite) gradient there."""
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def pairwise_distances(a: jax.Array, b: jax.Array, squared: bool = False) -> jax.Array:
    """Euclidean distances of every row pair: a [N, D], b [M, D] -> [N, M].

    Uses ``|a|^2 + |b|^2 - 2 a.b`` clamped at 0 (one matmul, [N, M] memory); with ``squared=False`` the
    square root has a finite gradient at distance 0 (identical embeddings). In float32 the cancellation
    leaves the distance of two identical rows at up to ~1e-3 * |x| instead of 0 (as torch.cdist's mm
    path does); the batch losses never use i == j.
    """
    sq = (jnp.sum(a * a, axis=-1)[:, None] + jnp.sum(b * b, axis=-1)[None, :]
          - 2.0 * jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST))
    sq = jnp.maximum(sq, 0.0)
    return sq if squared else _safe_sqrt(sq)
