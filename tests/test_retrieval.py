"""siamjax.eval.retrieval against a brute-force NumPy reference (loops over queries, a stable sort of the
full float64 distance matrix) and against pytorch-metric-learning's AccuracyCalculator values in
../shared/testdata/pml_reference.json."""
import json
import time
import zlib

import numpy as np
import pytest

from siamjax.eval.retrieval import retrieval_metrics


def brute_force(q, ql, r=None, rl=None, metric="cosine", ks=(1, 5, 10), exclude_self=None, check_gaps=True):
    """Per-query metrics by the textbook definitions; NaN for queries without a same-label reference."""
    same_source = r is None
    exclude_self = same_source if exclude_self is None else exclude_self
    if same_source:
        r, rl = q, ql
    q, r = np.asarray(q, np.float64), np.asarray(r, np.float64)
    if metric == "cosine":
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        rn = r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12)
        dist = -(qn @ rn.T)
    else:
        dist = ((q[:, None, :] - r[None, :, :]) ** 2).sum(-1)
    if check_gaps:  # float inputs: float32 rounding must not swap two neighbours of different labels
        order = np.argsort(dist, axis=1, kind="stable")
        srt = np.take_along_axis(dist, order, 1)
        gaps = np.diff(srt, axis=1) / (np.abs(srt[:, 1:]) + 1.0)
        lab = np.asarray(rl)[order]
        assert gaps[lab[:, 1:] != lab[:, :-1]].min() > 1e-6, "near tie in the test data: pick another seed"
    out = {name: np.full(len(q), np.nan) for name in
           ["precision_at_1", "r_precision", "mean_average_precision_at_r"] + [f"recall_at_{k}" for k in ks]}
    for i in range(len(q)):
        order = np.argsort(dist[i], kind="stable")
        if exclude_self:
            order = order[order != i]
        rel = (np.asarray(rl)[order] == ql[i]).astype(np.float64)
        big_r = int(rel.sum())
        if big_r == 0:
            continue
        out["precision_at_1"][i] = rel[0]
        out["r_precision"][i] = rel[:big_r].sum() / big_r
        out["mean_average_precision_at_r"][i] = sum(rel[j] * rel[:j + 1].sum() / (j + 1) for j in range(big_r)) / big_r
        for k in ks:
            out[f"recall_at_{k}"][i] = float(rel[:k].any())
    return out


def _labels(kind, n, rng):
    if kind == "uniform":  # 8 classes of about equal size
        return rng.integers(0, 8, n)
    if kind == "skewed":  # one big class, small ones, singletons (left out in leave-one-out)
        big = n // 2 - 8
        return np.concatenate([np.zeros(big, int), np.repeat(np.arange(1, 9), 3), np.arange(100, 100 + n - big - 24)])
    if kind == "strings":  # labels need not be integers
        return np.array(["cat", "dog", "emu"])[rng.integers(0, 3, n)]
    raise ValueError(kind)


def _check(got, want, atol=1e-6):
    kept = ~np.isnan(want["precision_at_1"])
    assert got["num_queries"] == kept.sum()
    for name, per in want.items():
        assert got[name] == pytest.approx(per[kept].mean(), abs=atol), name
        np.testing.assert_allclose(got["per_query"][name], per, atol=atol, err_msg=name)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("kind", ["uniform", "skewed", "strings"])
def test_matches_brute_force_leave_one_out(metric, kind):
    rng = np.random.default_rng(zlib.crc32(f"{metric}/{kind}".encode()))
    n = 64
    labels = rng.permutation(_labels(kind, n, rng))
    emb = rng.standard_normal((n, 5)).astype(np.float32) * rng.uniform(0.5, 3.0, (n, 1)).astype(np.float32)
    # block / chunk smaller than N: several query blocks (the last one padded), several chunks merged
    got = retrieval_metrics(emb, labels, metric=metric, ks=(1, 3, 10), block=32, chunk=24, return_per_query=True)
    _check(got, brute_force(emb, labels, metric=metric, ks=(1, 3, 10)))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_matches_brute_force_separate_reference_set(metric):
    rng = np.random.default_rng(7)
    ref_labels = rng.integers(0, 6, 70)
    query_labels = rng.integers(0, 8, 40)  # labels 6 and 7 have no reference: left out
    ref = rng.standard_normal((70, 6)).astype(np.float32)
    query = rng.standard_normal((40, 6)).astype(np.float32)
    got = retrieval_metrics(query, query_labels, ref, ref_labels, metric=metric, ks=(1, 5, 100), block=16,
                            chunk=20, return_per_query=True)
    want = brute_force(query, query_labels, ref, ref_labels, metric=metric, ks=(1, 5, 100))
    _check(got, want)
    assert got["num_queries"] == np.isin(query_labels, ref_labels).sum() < 40
    assert np.isnan(got["per_query"]["r_precision"][~np.isin(query_labels, ref_labels)]).all()
    # recall@100 with 70 references: all of them, so 1 for every query that has a match
    assert got["recall_at_100"] == 1.0


def test_queries_inside_the_reference_set():
    """exclude_self with a separate reference set: query i is reference i (PML's ref_includes_query)."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, 60)
    emb = rng.standard_normal((60, 4)).astype(np.float32)
    full = retrieval_metrics(emb, labels, metric="euclidean", return_per_query=True)
    part = retrieval_metrics(emb[:25], labels[:25], emb, labels, metric="euclidean", exclude_self=True,
                             return_per_query=True, block=8)
    for name in ("precision_at_1", "r_precision", "mean_average_precision_at_r", "recall_at_5"):
        np.testing.assert_allclose(part["per_query"][name], full["per_query"][name][:25], atol=1e-6)
    with pytest.raises(ValueError, match="query i to be reference i"):
        retrieval_metrics(emb[:25], labels[:25] + 1, emb, labels, exclude_self=True)


def test_exact_ties_are_ranked_by_reference_index():
    """Small integer embeddings: distances are exact in float32 and many are equal; the order among
    equal distances is the stable order (lower reference index first), as the reference's."""
    rng = np.random.default_rng(11)
    emb = rng.integers(-2, 3, (120, 3)).astype(np.float32)  # 125 points possible: many duplicates
    labels = rng.integers(0, 4, 120)
    dist = ((emb[:, None] - emb[None]) ** 2).sum(-1)
    assert (np.diff(np.sort(dist, axis=1), axis=1) == 0).mean() > 0.5  # the test is about ties
    want = brute_force(emb, labels, metric="euclidean", ks=(1, 2, 7), check_gaps=False)
    results = []
    for block, chunk in ((4096, None), (32, 25)):  # one tile; 4 x 5 tiles, the last ones padded
        got = retrieval_metrics(emb, labels, metric="euclidean", ks=(1, 2, 7), block=block, chunk=chunk,
                                return_per_query=True)
        _check(got, want)
        results.append({k: v for k, v in got.items() if k != "per_query"})
    assert results[0] == results[1]


def test_pml_accuracy_calculator_values(testdata_root):
    ref = json.loads((testdata_root / "pml_reference.json").read_text())
    cases = {c["name"]: c for c in ref["cases"]}
    emb = np.asarray(ref["embeddings"], np.float32)
    labels = np.asarray(ref["labels"])
    got = retrieval_metrics(emb, labels, metric="euclidean")  # raw Euclidean k-NN, query left out
    for name in ("precision_at_1", "r_precision", "mean_average_precision_at_r"):
        case = cases[f"retrieval_{name}"]
        assert "query set = reference set" in case["definition"] and "Euclidean" in case["definition"]
        assert got[name] == pytest.approx(case["value"], abs=1e-6), name
    assert got["num_queries"] == 24


def test_bad_input_and_no_matches():
    emb = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="metric must be"):
        retrieval_metrics(emb, [0, 0, 1, 1], metric="dot")
    with pytest.raises(ValueError, match="one label per embedding"):
        retrieval_metrics(emb, [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(np.full((4, 3), np.nan), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="both ref_emb and ref_labels"):
        retrieval_metrics(emb, [0, 0, 1, 1], emb)
    with pytest.raises(ValueError, match="dimension"):
        retrieval_metrics(emb, [0, 0, 1, 1], np.zeros((4, 2)), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="positive"):
        retrieval_metrics(emb, [0, 0, 1, 1], ks=(0,))
    with pytest.warns(UserWarning, match="no query has a reference"):
        m = retrieval_metrics(emb, [0, 1, 2, 3])  # every class a singleton
    assert m["precision_at_1"] == 0.0 and m["num_queries"] == 0


def test_twelve_thousand_embeddings_in_small_blocks():
    """12,000 x 64 in blocks of 1,024 queries and chunks of 1,024 references (12 x 12 tiles, the last
    ones padded). Integer-valued embeddings make every distance exact in float32, so the per-query
    values of a sample of queries must equal the brute-force ones over all references, exactly.
    (bench/retrieval.py runs 100,000 x 64.)"""
    rng = np.random.default_rng(0)
    n, classes = 12_000, 120
    labels = rng.permutation(np.arange(n) % classes)
    emb = (rng.integers(-3, 4, (classes, 64))[labels] + rng.integers(-4, 5, (n, 64))).astype(np.float32)
    t0 = time.perf_counter()
    got = retrieval_metrics(emb, labels, metric="euclidean", block=1024, chunk=1024, return_per_query=True)
    seconds = time.perf_counter() - t0
    assert got["k"] == 99 and got["num_queries"] == n
    sample = rng.choice(n, 100, replace=False)
    e64 = emb.astype(np.float64)
    dist = (e64[sample] ** 2).sum(1)[:, None] + (e64 ** 2).sum(1)[None, :] - 2 * e64[sample] @ e64.T
    for row, i in zip(dist, sample):
        order = np.argsort(row, kind="stable")
        order = order[order != i]
        rel = (labels[order] == labels[i]).astype(np.float64)
        big_r = int(rel.sum())
        assert got["per_query"]["precision_at_1"][i] == rel[0]
        assert got["per_query"]["r_precision"][i] == pytest.approx(rel[:big_r].mean(), abs=1e-6)
        ap = sum(rel[j] * rel[:j + 1].sum() / (j + 1) for j in range(big_r)) / big_r
        assert got["per_query"]["mean_average_precision_at_r"][i] == pytest.approx(ap, abs=1e-6)
        assert got["per_query"]["recall_at_10"][i] == float(rel[:10].any())
    assert 0.05 < got["mean_average_precision_at_r"] < 0.95
    print(f"12,000 x 64 euclidean: {seconds:.1f} s")
