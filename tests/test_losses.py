"""Tests of siamjax.losses: pml oracle values (float64), behaviour, degenerate batches, jit, grads."""
from __future__ import annotations

import functools
import itertools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siamjax import losses as L

# Test programs are tiny and compile time dominates on CPU: compile them with LLVM optimisation off
# (halves the test time; per-function option, no global state touched).
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

# Module-level jitted entry points: one compile per (shape, dtype, static option) shared by all tests
# (eager op-by-op dispatch is far slower on CPU). Margins / temperatures are traced, not static.
pairwise_distances = jit(L.pairwise_distances, static_argnames=("squared",))
l2_normalize = jit(L.l2_normalize, static_argnames=("axis",))
contrastive_loss = jit(L.contrastive_loss, static_argnames=("squared",))
batch_contrastive_loss = jit(L.batch_contrastive_loss, static_argnames=("normalize", "reduction"))
triplet_loss = jit(L.triplet_loss, static_argnames=("mining", "normalize", "reduction"))
bce_loss = jit(L.bce_loss)
ntxent_loss = jit(L.ntxent_loss)

# --------------------------------------------------------------------------- helpers


def _finite_tree(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(tree))


def _pk_labels(p: int, k: int) -> np.ndarray:
    return np.repeat(np.arange(p), k).astype(np.int32)


def _loss_fns():
    """(name, f(embeddings, labels) -> (loss, metrics)) for every embedding-batch loss."""
    return [
        ("batch_contrastive", functools.partial(L.batch_contrastive_loss, reduction="avg_nonzero")),
        ("batch_contrastive_mean", functools.partial(L.batch_contrastive_loss, reduction="mean")),
        ("triplet_all", functools.partial(L.triplet_loss, mining="all")),
        ("triplet_all_mean", functools.partial(L.triplet_loss, mining="all", reduction="mean")),
        ("triplet_hard", functools.partial(L.triplet_loss, mining="hard")),
        ("triplet_semihard", functools.partial(L.triplet_loss, mining="semihard")),
        ("triplet_all_raw", functools.partial(L.triplet_loss, normalize=False)),
        ("ntxent", lambda e, _labels: L.ntxent_loss(e)),
    ]


LOSS_FNS = _loss_fns()
LOSS_IDS = [name for name, _ in LOSS_FNS]
BATCH = (8, 5)  # every call of ALL_VALUE_AND_GRAD uses embeddings [8, 5] f32, labels [8] int32 (one compile)


@jit
def ALL_VALUE_AND_GRAD(x, labels):
    """{name: ((loss, metrics), d loss / d x)} for every batch loss, compiled as ONE program."""
    return {name: jax.value_and_grad(fn, has_aux=True)(x, labels) for name, fn in LOSS_FNS}


def _labels(kind: str) -> jax.Array:
    values = {"pk": _pk_labels(4, 2), "distinct": np.arange(8), "equal": np.zeros(8)}[kind]
    return jnp.asarray(values, dtype=jnp.int32)

# --------------------------------------------------------------------------- oracle (pml, float64)


@pytest.fixture(scope="module")
def reference(testdata_root):
    return json.loads((testdata_root / "pml_reference.json").read_text())


ORACLE = {  # pml case name -> our call on (embeddings [24, 6], labels [24], ntxent_embeddings [16, 6])
    "contrastive_avg_nonzero": lambda e, l, ne: L.batch_contrastive_loss(
        e, l, pos_margin=0.0, neg_margin=1.0, normalize=True, reduction="avg_nonzero"),
    "contrastive_mean": lambda e, l, ne: L.batch_contrastive_loss(
        e, l, pos_margin=0.0, neg_margin=1.0, normalize=True, reduction="mean"),
    "triplet_batch_all_avg_nonzero": lambda e, l, ne: L.triplet_loss(
        e, l, margin=0.2, mining="all", normalize=True, reduction="avg_nonzero"),
    "triplet_batch_all_mean": lambda e, l, ne: L.triplet_loss(
        e, l, margin=0.2, mining="all", normalize=True, reduction="mean"),
    "triplet_batch_hard": lambda e, l, ne: L.triplet_loss(
        e, l, margin=0.2, mining="hard", normalize=True, reduction="avg_nonzero"),
    "triplet_semihard": lambda e, l, ne: L.triplet_loss(
        e, l, margin=0.2, mining="semihard", normalize=True, reduction="avg_nonzero"),
    "ntxent_t0.1": lambda e, l, ne: L.ntxent_loss(ne, temperature=0.1),
}


@pytest.fixture(scope="module")
def ours_float64(reference):
    """{case: (loss, metrics)} of every ORACLE call, in float64, jitted as one program (x64 locally)."""
    with jax.enable_x64(True):
        e = jnp.asarray(reference["embeddings"], dtype=jnp.float64)
        labels = jnp.asarray(reference["labels"])
        ne = jnp.asarray(reference["ntxent_embeddings"], dtype=jnp.float64)
        assert e.shape == (24, 6) and ne.shape == (16, 6)
        out = jit(lambda e, l, ne: {name: fn(e, l, ne) for name, fn in ORACLE.items()})(e, labels, ne)
        return jax.device_get(out)


@pytest.mark.parametrize("name", sorted(ORACLE))
def test_matches_pytorch_metric_learning(reference, ours_float64, name):
    cases = {c["name"]: c["value"] for c in reference["cases"]}
    assert name in cases, f"oracle case {name} missing from pml_reference.json"
    loss, metrics = ours_float64[name]
    assert loss.dtype == np.float64
    np.testing.assert_allclose(float(loss), cases[name], rtol=0, atol=1e-6)
    assert _finite_tree(metrics)


def test_ntxent_reference_layout(reference):
    """The oracle's NT-Xent labels are our layout: row i and row i + N are one image."""
    labels = np.asarray(reference["ntxent_labels"])
    n = labels.shape[0] // 2
    np.testing.assert_array_equal(labels[:n], labels[n:])
    assert len(set(labels[:n].tolist())) == n


# --------------------------------------------------------------------------- independent NumPy oracle


def _np_dist(x: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))


def _np_triplet_all(x, labels, margin, reduction):
    d = _np_dist(x)
    terms = []
    n = len(labels)
    for a, p, q in itertools.product(range(n), repeat=3):
        if a != p and labels[a] == labels[p] and labels[q] != labels[a]:
            terms.append(max(d[a, p] - d[a, q] + margin, 0.0))
    terms = np.array(terms)
    if reduction == "mean":
        return terms.mean()
    nz = terms[terms > 0]
    return nz.mean() if len(nz) else 0.0


def _np_triplet_hard(x, labels, margin):
    d = _np_dist(x)
    terms = []
    n = len(labels)
    for a in range(n):
        pos = [d[a, p] for p in range(n) if p != a and labels[p] == labels[a]]
        neg = [d[a, q] for q in range(n) if labels[q] != labels[a]]
        if pos and neg:
            terms.append(max(max(pos) - min(neg) + margin, 0.0))
    nz = [t for t in terms if t > 0]
    return (float(np.mean(nz)) if nz else 0.0), len(terms)


def test_triplet_all_and_hard_match_numpy_loops():
    rng = np.random.default_rng(0)
    # uneven classes, one singleton (an anchor without positives)
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4])
    x = rng.normal(size=(labels.size, 5))

    def ours(x, labels):
        return {
            "all_avg_nonzero": L.triplet_loss(x, labels, margin=0.5, mining="all", reduction="avg_nonzero"),
            "all_mean": L.triplet_loss(x, labels, margin=0.5, mining="all", reduction="mean"),
            "hard": L.triplet_loss(x, labels, margin=0.5, mining="hard"),
        }

    with jax.enable_x64(True):
        got = jax.device_get(jit(ours)(jnp.asarray(x), jnp.asarray(labels)))
    for reduction in ("avg_nonzero", "mean"):
        np.testing.assert_allclose(got[f"all_{reduction}"][0], _np_triplet_all(x, labels, 0.5, reduction), atol=1e-10)
    want, count = _np_triplet_hard(x, labels, 0.5)
    np.testing.assert_allclose(got["hard"][0], want, atol=1e-10)
    assert int(got["hard"][1]["num_triplets"]) == count == labels.size - 1


# --------------------------------------------------------------------------- primitives


def test_pairwise_distances_match_brute_force():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(7, 3)).astype(np.float32)
    want = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
    d = pairwise_distances(jnp.asarray(a), jnp.asarray(b))
    assert d.shape == (5, 7) and d.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(d), want, atol=1e-5)
    sq = pairwise_distances(jnp.asarray(a), jnp.asarray(b), squared=True)
    np.testing.assert_allclose(np.asarray(sq), want ** 2, atol=1e-4)
    # self distances are >= 0 (clamped) and ~0 on the diagonal
    self_sq = pairwise_distances(jnp.asarray(a), jnp.asarray(a), squared=True)
    assert bool(jnp.all(self_sq >= 0))
    np.testing.assert_allclose(np.diag(np.asarray(pairwise_distances(jnp.asarray(a), jnp.asarray(a)))), 0, atol=3e-3)


def test_pairwise_distances_gradient_finite_at_zero():
    x = jnp.ones((3, 4))
    g = jit(jax.grad(lambda x: jnp.sum(L.pairwise_distances(x, x))))(x)
    assert _finite_tree(g)
    assert float(jnp.sum(pairwise_distances(x, x))) == 0.0


def test_l2_normalize():
    x = jnp.array([[3.0, 4.0], [0.0, 0.0]])
    y = l2_normalize(x)
    np.testing.assert_allclose(np.asarray(y), [[0.6, 0.8], [0.0, 0.0]], atol=1e-7)
    np.testing.assert_allclose(np.asarray(l2_normalize(x.T, axis=0)), np.asarray(y).T, atol=1e-7)
    assert _finite_tree(jit(jax.grad(lambda x: jnp.sum(L.l2_normalize(x) ** 2)))(x))


# --------------------------------------------------------------------------- contrastive_loss (pairs)


def test_contrastive_zero_and_positive():
    # positives at 0, negatives beyond the margin: nothing to learn
    d = jnp.array([0.0, 0.0, 1.5, 2.0])
    same = jnp.array([True, True, False, False])
    for squared in (True, False):
        loss, m = contrastive_loss(d, same, margin=1.0, squared=squared)
        assert float(loss) == 0.0 and float(m["active_fraction"]) == 0.0
    # a far positive and a near negative
    d = jnp.array([0.5, 0.25])
    same = jnp.array([1, 0])
    loss, m = contrastive_loss(d, same, margin=1.0, squared=True)
    np.testing.assert_allclose(float(loss), np.mean([0.5 * 0.5 ** 2, 0.5 * 0.75 ** 2]), rtol=1e-6)
    loss, m = contrastive_loss(d, same, margin=1.0, squared=False)
    np.testing.assert_allclose(float(loss), np.mean([0.5, 0.75]), rtol=1e-6)
    assert float(m["active_fraction"]) == 1.0
    np.testing.assert_allclose(float(m["positive_distance"]), 0.5)
    np.testing.assert_allclose(float(m["negative_distance"]), 0.25)
    # pos_margin: a positive inside it costs nothing
    loss, _ = contrastive_loss(jnp.array([0.3, 0.6]), jnp.array([1, 1]), pos_margin=0.4, squared=False)
    np.testing.assert_allclose(float(loss), 0.1, rtol=1e-5)


def test_contrastive_no_positives_no_nan():
    loss, m = contrastive_loss(jnp.array([0.2, 3.0]), jnp.array([False, False]))
    assert float(m["positive_distance"]) == 0.0
    np.testing.assert_allclose(float(m["negative_distance"]), 1.6, rtol=1e-6)
    assert _finite_tree((loss, m))


def test_contrastive_grad_through_identical_embeddings():
    a = jnp.ones((4, 3))

    def f(a, b):
        d = jnp.diag(L.pairwise_distances(a, b))  # distance 0 everywhere
        return L.contrastive_loss(d, jnp.array([1, 0, 1, 0]), squared=False)[0]

    g = jit(jax.grad(f, argnums=(0, 1)))(a, a)
    assert _finite_tree(g)


# --------------------------------------------------------------------------- batch losses: degenerate batches


@pytest.mark.parametrize("kind", ["distinct", "equal"])
def test_degenerate_batches(kind):
    """No valid triplet (all labels distinct / all equal): triplet losses 0 with zero, finite grads."""
    x = jax.random.normal(jax.random.PRNGKey(0), BATCH)
    out = ALL_VALUE_AND_GRAD(x, _labels(kind))
    assert _finite_tree(out)  # every loss, metric and gradient, contrastive and NT-Xent included
    for name in LOSS_IDS:
        if name.startswith("triplet"):
            (loss, m), g = out[name]
            assert float(loss) == 0.0, name
            assert float(m["active_fraction"]) == 0.0 and float(m["num_triplets"]) == 0.0, name
            np.testing.assert_array_equal(np.asarray(g), 0.0)
    # contrastive: no positives (distinct) -> negatives only; no negatives (equal) -> positives only
    (_, m), _ = out["batch_contrastive"]
    assert float(m["positive_distance" if kind == "distinct" else "negative_distance"]) == 0.0


@pytest.mark.parametrize("kind", ["pk", "equal"])
@pytest.mark.parametrize("value", [1.0, 0.0], ids=["identical", "zero"])
def test_grads_finite_for_identical_and_zero_embeddings(kind, value):
    """Every distance 0 (the sqrt's worst case) and zero vectors (l2_normalize's): finite everything."""
    out = ALL_VALUE_AND_GRAD(jnp.full(BATCH, value, dtype=jnp.float32), _labels(kind))
    for name in LOSS_IDS:
        assert _finite_tree(out[name]), name
    if kind == "equal" and value == 1.0:  # one class, identical embeddings: nothing to learn
        (loss, m), g = out["batch_contrastive"]
        assert float(loss) == 0.0 and float(m["active_fraction"]) == 0.0


def test_triplet_hard_picks_hardest():
    # 1-D embeddings (normalize=False): class 0 at 0, 1, 3; class 1 at 2, 10
    x = jnp.array([[0.0], [1.0], [3.0], [2.0], [10.0]])
    labels = jnp.array([0, 0, 0, 1, 1])
    loss, m = triplet_loss(x, labels, margin=0.5, mining="hard", normalize=False, reduction="mean")
    # anchor 0: ap 3, an 2 -> 1.5; anchor 1: ap 2, an 1 -> 1.5; anchor 2: ap 3, an 1 -> 2.5
    # anchor 3 (pos 10 at 8, neg at 1) -> 7.5; anchor 4 (pos 8, neg 3 at 7) -> 1.5
    np.testing.assert_allclose(float(loss), np.mean([1.5, 1.5, 2.5, 7.5, 1.5]), rtol=1e-5)
    assert float(m["num_triplets"]) == 5.0 and float(m["active_fraction"]) == 1.0


def test_triplet_semihard_selection():
    # anchor 0 at 0, positive at 1; negatives at 0.5 (hard), 1.1 (semi-hard), 2 (easy), margin 0.2
    x = jnp.array([[0.0], [1.0], [0.5], [1.1], [2.0]])
    labels = jnp.array([0, 0, 1, 2, 3])
    loss, m = triplet_loss(x, labels, margin=0.2, mining="semihard", normalize=False, reduction="mean")
    # anchor 0: (0,1,3) d_ap 1, d_an 1.1; anchor 1: (1,0,?) d_ap 1, negatives at 0.5, 0.1, 1.0 -> none
    assert float(m["num_triplets"]) == 1.0
    np.testing.assert_allclose(float(loss), 0.1, rtol=1e-5)
    np.testing.assert_allclose(float(m["positive_distance"]), 1.0, rtol=1e-6)
    np.testing.assert_allclose(float(m["negative_distance"]), 1.1, rtol=1e-6)


def test_invalid_options_raise():
    x, labels = jnp.ones((4, 2)), jnp.arange(4)
    with pytest.raises(ValueError):
        L.triplet_loss(x, labels, mining="easy")
    with pytest.raises(ValueError):
        L.triplet_loss(x, labels, reduction="sum")
    with pytest.raises(ValueError):
        L.batch_contrastive_loss(x, labels, reduction="sum")
    with pytest.raises(ValueError):
        L.ntxent_loss(jnp.ones((5, 2)))


# --------------------------------------------------------------------------- bce, ntxent


def test_bce():
    loss, m = bce_loss(jnp.zeros(4), jnp.array([1, 0, 1, 0]))
    np.testing.assert_allclose(float(loss), math.log(2.0), rtol=1e-6)
    loss, m = bce_loss(jnp.array([20.0, -20.0, 3.0, 1.0]), jnp.array([True, False, False, True]))
    want = np.mean([np.log1p(np.exp(-20.0)), np.log1p(np.exp(-20.0)), np.log1p(np.exp(3.0)), np.log1p(np.exp(-1.0))])
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    np.testing.assert_allclose(float(m["accuracy"]), 0.75)
    g = jit(jax.grad(lambda z: L.bce_loss(z, jnp.array([1, 0]))[0]))(jnp.array([1e4, 1e4]))
    assert _finite_tree(g)


def test_ntxent_behaviour():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(6, 8)).astype(np.float32)
    views = jnp.asarray(np.concatenate([base, 2.0 * base]))  # positives have cosine 1
    loss, m = ntxent_loss(views, temperature=0.5)
    np.testing.assert_allclose(float(m["positive_similarity"]), 1.0, atol=1e-5)
    assert float(m["accuracy"]) == 1.0
    # direct formula
    x = np.asarray(views) / np.linalg.norm(np.asarray(views), axis=1, keepdims=True)
    s = x @ x.T / 0.5
    n2 = s.shape[0]
    want = np.mean([np.log(np.sum(np.exp(np.delete(s[i], i)))) - s[i, (i + n2 // 2) % n2] for i in range(n2)])
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    # lower temperature sharpens a correct model's confidence
    assert float(ntxent_loss(views, temperature=0.1)[0]) < float(loss)
    # two rows: the positive is the only candidate
    assert abs(float(ntxent_loss(jnp.ones((2, 3)))[0])) < 1e-6


# --------------------------------------------------------------------------- jit, shapes, dtypes


def test_jit_matches_eager():
    """Jitted == eager for the pair losses; a batch loss jitted alone == inside ALL_VALUE_AND_GRAD.

    (Every other test already runs the public functions under jit: the module-level jits above.)
    """
    x = jax.random.normal(jax.random.PRNGKey(3), BATCH)
    labels = _labels("pk")
    d, same = jnp.abs(x[:, 0]), labels % 2 == 0
    pairs = [
        (L.contrastive_loss, contrastive_loss, (d, same), {}),
        (L.contrastive_loss, contrastive_loss, (d, same), {"squared": False, "pos_margin": 0.1}),
        (L.bce_loss, bce_loss, (x[:, 1], same), {}),
    ]
    for eager_fn, jit_fn, args, kwargs in pairs:
        (eager_loss, eager_m), (jit_loss, jit_m) = eager_fn(*args, **kwargs), jit_fn(*args, **kwargs)
        np.testing.assert_allclose(float(jit_loss), float(eager_loss), rtol=1e-5, atol=1e-6)
        assert set(jit_m) == set(eager_m)
        for k in eager_m:
            np.testing.assert_allclose(float(jit_m[k]), float(eager_m[k]), rtol=1e-5, atol=1e-6)
    # a batch loss jitted alone with static mining and a traced margin == inside the combined program
    traced_margin = float(triplet_loss(x, labels, margin=jnp.float32(0.2), mining="hard")[0])
    combined = float(ALL_VALUE_AND_GRAD(x, labels)["triplet_hard"][0][0])
    np.testing.assert_allclose(traced_margin, combined, rtol=1e-5)


EXPECTED_METRICS = {
    "batch": {"positive_distance", "negative_distance", "active_fraction"},
    "triplet": {"active_fraction", "num_triplets", "positive_distance", "negative_distance"},
    "ntxent": {"positive_similarity", "accuracy"},
}


def test_output_shapes_and_dtypes():
    x = jax.random.normal(jax.random.PRNGKey(4), BATCH)
    out = ALL_VALUE_AND_GRAD(x, _labels("pk"))
    for name in LOSS_IDS:
        (loss, metrics), g = out[name]
        assert loss.shape == () and loss.dtype == jnp.float32, name
        assert set(metrics) == EXPECTED_METRICS[name.split("_")[0]], name
        for v in metrics.values():
            assert v.shape == () and v.dtype == jnp.float32, name
        assert g.shape == BATCH and g.dtype == jnp.float32
        assert float(loss) > 0.0, name  # random P x K batch: something to learn


def test_pair_losses_shapes_and_dtypes():
    loss, m = contrastive_loss(jnp.array([0.1, 2.0]), jnp.array([1, 0]))
    assert loss.shape == () and loss.dtype == jnp.float32
    assert set(m) == {"positive_distance", "negative_distance", "active_fraction"}
    assert all(v.shape == () and v.dtype == jnp.float32 for v in m.values())
    loss, m = bce_loss(jnp.array([0.1, -2.0]), jnp.array([1, 0]))
    assert loss.shape == () and loss.dtype == jnp.float32 and set(m) == {"accuracy"}


def test_simsiam_loss_is_symmetric_negative_cosine_with_stop_gradient():
    from siamjax.losses import simsiam_loss

    rng = np.random.default_rng(0)
    p1, p2, z1, z2 = (jnp.asarray(rng.normal(size=(6, 4)).astype(np.float32)) for _ in range(4))
    unit = lambda a: np.asarray(a) / np.linalg.norm(np.asarray(a), axis=1, keepdims=True)  # noqa: E731
    want = -0.5 * (np.mean(np.sum(unit(p1) * unit(z2), 1)) + np.mean(np.sum(unit(p2) * unit(z1), 1)))
    loss, m = simsiam_loss(p1, p2, z1, z2)
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    assert float(simsiam_loss(z2, z1, z1, z2)[0]) == pytest.approx(-1.0, abs=1e-6)  # predictions on target
    g = jax.grad(lambda z: simsiam_loss(p1, p2, z, z2)[0])(z1)
    assert not np.asarray(g).any()  # no gradient reaches a target through the stop-gradient
    assert float(m["output_std"]) > 0


def test_output_std_separates_spread_from_collapsed_outputs():
    from siamjax.losses import output_std

    d = 64
    spread = jax.random.normal(jax.random.key(0), (4096, d))
    assert float(output_std(spread)) == pytest.approx(1 / np.sqrt(d), rel=0.05)
    collapsed = jnp.tile(spread[:1], (4096, 1)) + 1e-6 * spread
    assert float(output_std(collapsed)) < 1e-5
