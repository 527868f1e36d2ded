"""Exact retrieval metrics of an embedding (as pytorch-metric-learning's ``AccuracyCalculator``),
computed in blocks with JAX so that 100,000+ embeddings fit in memory.

    from siamjax.eval.retrieval import retrieval_metrics
    m = retrieval_metrics(emb, labels)                      # leave-one-out: every query against all others
    m = retrieval_metrics(q, q_labels, ref, ref_labels, metric="euclidean", ks=(1, 5))
    m["precision_at_1"], m["r_precision"], m["mean_average_precision_at_r"], m["recall_at_5"]

Definitions (Musgrave, Belongie & Lim, "A Metric Learning Reality Check", ECCV 2020; the same as
``pytorch_metric_learning.utils.accuracy_calculator.AccuracyCalculator`` with its defaults,
``avg_of_avgs=False``). For a query q with label y, rank the references by similarity (most similar
first), leaving q itself out when the query set is the reference set. Let R be the number of
references with label y (q itself not counted) and rel(i) = 1 when the i-th ranked reference has
label y:

* ``precision_at_1`` = rel(1);
* ``r_precision`` = (1/R) * sum_{i<=R} rel(i);
* ``mean_average_precision_at_r`` (MAP@R) = (1/R) * sum_{i<=R} rel(i) * P(i), where
  P(i) = (1/i) * sum_{j<=i} rel(j) is the precision at rank i;
* ``recall_at_k`` = 1 when any of the k first ranked references has label y (the "Recall@K" of
  the deep metric learning literature, e.g. Oh Song et al. 2016; not a PML metric); k larger than
  the number of references means all of them.

Each metric is the mean over queries. Queries whose label has no reference (R = 0: a class with a
single image in the leave-one-out setting, or a label absent from the reference set) are left out of
every mean, as PML leaves out its "lone" queries; ``num_queries`` counts the queries that were kept.

Similarity: ``"cosine"`` ranks by the cosine of the angle (embeddings L2-normalised, a zero vector
has similarity 0 to everything); ``"euclidean"`` ranks by the raw (un-normalised) Euclidean distance,
smallest first, computed as 2 q.r - |r|^2, which orders the references exactly as -|q - r|^2 does.
Products use float32 at full precision (``Precision.HIGHEST``, so no TF32 on GPUs).

Ties: references with equal similarity are ranked by increasing reference index (``lax.top_k`` puts
the lower index first and the running top-K keeps earlier chunks first), i.e. the order of a stable
sort. PML ranks with faiss, whose order among exact ties is not specified, so the two can differ only
when a tie straddles a relevant and an irrelevant reference.

Computation: the queries are processed in blocks of ``block``; for each block the similarities to the
references are computed one chunk of ``chunk`` references at a time (a ``lax.scan`` under ``jit``),
and a running top-K is merged with each chunk by ``lax.top_k``, where K = max(largest R, largest k)
(at most the number of references). Memory is O(block x (chunk + K)) besides the embeddings, so the
full N x N similarity matrix is never formed. All of it runs on JAX's default device.
"""
from __future__ import annotations

import functools
import warnings
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["retrieval_metrics"]

_METRICS = ("cosine", "euclidean")


@functools.partial(jax.jit, static_argnames=("k", "metric", "exclude_self", "ks"))
def _block_metrics(q, q_index, q_label, r_count, ref, ref_sq, ref_label, n_ref, *, k, metric, exclude_self, ks):
    """Per-query metrics of one query block.

    q [b, D]; q_index [b] (the query's index among the references, -1 for padding); q_label [b]
    (dense reference label id, -1 when absent); r_count [b] (R; 0 = left out); ref [C, c, D] chunks,
    ref_sq [C, c]; ref_label [C * c]; n_ref: number of real references (the rest is padding).
    """
    b = q.shape[0]
    num_chunks, chunk, _ = ref.shape

    def merge(carry, xs):
        vals, idx = carry
        r, r_sq, start = xs
        s = jnp.dot(q, r.T, precision=jax.lax.Precision.HIGHEST)  # [b, c]
        if metric == "euclidean":
            s = 2.0 * s - r_sq[None, :]
        col = start + jnp.arange(chunk, dtype=jnp.int32)
        invalid = jnp.broadcast_to(col[None, :] >= n_ref, s.shape)
        if exclude_self:
            invalid = invalid | (col[None, :] == q_index[:, None])
        s = jnp.where(invalid, -jnp.inf, s)
        # Earlier references first: on equal values top_k keeps the lower (earlier) index.
        all_vals = jnp.concatenate([vals, s], axis=1)
        all_idx = jnp.concatenate([idx, jnp.broadcast_to(col[None, :], (b, chunk))], axis=1)
        vals, pos = jax.lax.top_k(all_vals, k)
        return (vals, jnp.take_along_axis(all_idx, pos, axis=1)), None

    init = (jnp.full((b, k), -jnp.inf, jnp.float32), jnp.full((b, k), -1, jnp.int32))
    starts = jnp.arange(num_chunks, dtype=jnp.int32) * chunk
    (_, idx), _ = jax.lax.scan(merge, init, (ref, ref_sq, starts))

    same = ref_label[jnp.maximum(idx, 0)] == q_label[:, None]  # [b, K]
    rank = jnp.arange(k, dtype=jnp.int32)
    hits = same & (rank[None, :] < r_count[:, None])  # relevant within the first R
    cum = jnp.cumsum(hits.astype(jnp.int32), axis=1)
    r = jnp.maximum(r_count, 1).astype(jnp.float32)
    out = {
        "precision_at_1": same[:, 0].astype(jnp.float32),
        "r_precision": hits.sum(axis=1).astype(jnp.float32) / r,
        "mean_average_precision_at_r": jnp.where(hits, cum.astype(jnp.float32) / (rank + 1.0), 0.0).sum(axis=1) / r,
    }
    for kk in ks:
        out[f"recall_at_{kk}"] = same[:, :min(kk, k)].any(axis=1).astype(jnp.float32)
    return out


def _check_embeddings(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array [N, D], got shape {x.shape}")
    if x.dtype.kind not in "fiub":
        raise ValueError(f"{name} must hold numbers, got dtype {x.dtype}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _check_labels(y, n: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with one label per embedding ({n}), got shape {y.shape}")
    return y


def retrieval_metrics(query_emb, query_labels, ref_emb=None, ref_labels=None, *, metric: str = "cosine",
                      ks: Sequence[int] = (1, 5, 10), block: int = 4096, chunk: int | None = None,
                      exclude_self: bool | None = None, return_per_query: bool = False) -> dict:
    """Precision@1, R-precision, MAP@R and Recall@k of ``query_emb`` against ``ref_emb``.

    Args:
        query_emb: [Nq, D] embeddings (any float or int dtype; computed in float32).
        query_labels: [Nq] labels (integers or any values ``np.unique`` can sort).
        ref_emb, ref_labels: [Nr, D] and [Nr]; both None (default) = the queries themselves.
        metric: ``"cosine"`` (rank by cosine similarity) or ``"euclidean"`` (by raw distance).
        ks: the k of ``recall_at_k`` (positive ints).
        block: queries per block; chunk: references per chunk (default max(block, K)). Memory is
            about 16 * block * (chunk + K) bytes besides the embeddings.
        exclude_self: leave query i out of its own neighbours; default True when ``ref_emb`` is None,
            else False. With a separate reference set, True means query i *is* reference i (the queries
            are the first Nq references, with the same labels), as PML's ``ref_includes_query``.
        return_per_query: also return ``per_query``: {metric: float32 [Nq]}, NaN for left-out queries.

    Returns:
        {"precision_at_1", "r_precision", "mean_average_precision_at_r", "recall_at_<k>" for each k:
        float means over the ``num_queries`` queries that have at least one reference of their label,
        "num_queries": int, "k": the K of the running top-K}. When no query has such a reference the
        metrics are 0.0 (as PML returns) and a warning is issued.

    See the module docstring for the exact definitions and the tie order.
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    ks = tuple(int(k) for k in ([ks] if isinstance(ks, (int, np.integer)) else ks))
    if any(k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks}")
    ks = tuple(sorted(set(ks)))
    if isinstance(block, bool) or int(block) < 1 or (chunk is not None and int(chunk) < 1):
        raise ValueError(f"block and chunk must be positive, got block={block}, chunk={chunk}")
    q = _check_embeddings(query_emb, "query_emb")
    q_lab = _check_labels(query_labels, len(q), "query_labels")
    if (ref_emb is None) != (ref_labels is None):
        raise ValueError("give both ref_emb and ref_labels, or neither (the queries are then the references)")
    same_source = ref_emb is None
    if exclude_self is None:
        exclude_self = same_source
    if same_source:
        r, r_lab = q, q_lab
    else:
        r = _check_embeddings(ref_emb, "ref_emb")
        r_lab = _check_labels(ref_labels, len(r), "ref_labels")
        if r.shape[1] != q.shape[1]:
            raise ValueError(f"query_emb has dimension {q.shape[1]} but ref_emb has {r.shape[1]}")
        if exclude_self:
            if len(q) > len(r) or not np.array_equal(q_lab, r_lab[:len(q)]):
                raise ValueError("exclude_self with a separate reference set needs query i to be reference i: "
                                 "as many or more references than queries, and the same labels in front")
    nq, nr = len(q), len(r)

    # Dense label ids of the references; queries whose label has no reference get -1.
    ref_values, ref_ids = np.unique(r_lab, return_inverse=True)
    ref_ids = ref_ids.reshape(-1).astype(np.int32)
    counts = np.bincount(ref_ids, minlength=len(ref_values))
    pos = np.clip(np.searchsorted(ref_values, q_lab), 0, len(ref_values) - 1)
    known = ref_values[pos] == q_lab
    q_ids = np.where(known, pos, -1).astype(np.int32)
    r_count = np.where(known, counts[pos] - int(exclude_self), 0).astype(np.int32)

    per_query_keys = ["precision_at_1", "r_precision", "mean_average_precision_at_r"] + [f"recall_at_{k}" for k in ks]
    available = nr - int(exclude_self)
    kept = r_count > 0
    if not kept.any() or available < 1:
        warnings.warn("no query has a reference with its label: retrieval metrics are 0", stacklevel=2)
        out = {key: 0.0 for key in per_query_keys}
        out.update(num_queries=0, k=0)
        if return_per_query:
            out["per_query"] = {key: np.full(nq, np.nan, np.float32) for key in per_query_keys}
        return out
    k = int(min(max([int(r_count.max()), *ks]), available))

    block = int(min(block, nq))
    chunk = int(min(chunk or max(block, k), nr))
    if metric == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        r = q if same_source else r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12)
    num_chunks = -(-nr // chunk)
    pad = num_chunks * chunk - nr
    r_pad = np.concatenate([r, np.zeros((pad, r.shape[1]), np.float32)]) if pad else r
    ref_sq = (r_pad.astype(np.float64) ** 2).sum(1).astype(np.float32) if metric == "euclidean" \
        else np.zeros(len(r_pad), np.float32)
    ref_dev = jnp.asarray(r_pad.reshape(num_chunks, chunk, -1))
    ref_sq_dev = jnp.asarray(ref_sq.reshape(num_chunks, chunk))
    ref_lab_dev = jnp.asarray(np.concatenate([ref_ids, np.full(pad, -2, np.int32)]))
    q_index = np.arange(nq, dtype=np.int32) if exclude_self else np.full(nq, -1, np.int32)

    pieces = []
    for s in range(0, nq, block):
        e = min(s + block, nq)
        n = e - s
        sl = [q[s:e], q_index[s:e], q_ids[s:e], r_count[s:e]]
        if n < block:  # pad the last block: one compiled program for all blocks
            fill = (0.0, -1, -1, 0)
            sl = [np.concatenate([a, np.full((block - n, *a.shape[1:]), f, a.dtype)]) for a, f in zip(sl, fill)]
        res = _block_metrics(*(jnp.asarray(a) for a in sl), ref_dev, ref_sq_dev, ref_lab_dev, jnp.int32(nr),
                             k=k, metric=metric, exclude_self=bool(exclude_self), ks=ks)
        pieces.append((n, res))  # dispatched asynchronously; gathered below
    per_query = {key: np.concatenate([np.asarray(res[key])[:n] for n, res in pieces]) for key in per_query_keys}

    out = {key: float(per_query[key][kept].astype(np.float64).mean()) for key in per_query_keys}
    out.update(num_queries=int(kept.sum()), k=k)
    if return_per_query:
        out["per_query"] = {key: np.where(kept, v, np.nan).astype(np.float32) for key, v in per_query.items()}
    return out
