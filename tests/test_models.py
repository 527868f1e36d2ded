"""Encoders, heads and the twin: shapes, dtypes, Koch's exact architecture, one shared parameter tree."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siamjax.nn.heads import HEADS, make_head
from siamjax.nn.encoders import make_encoder
from siamjax.nn.twin import make_twin


def _count(tree):
    return sum(x.size for x in jax.tree_util.tree_leaves(tree))


def test_koch_is_exactly_the_paper_network():
    enc = make_encoder("koch")
    x = jnp.zeros((2, 105, 105, 1))
    v = jax.jit(enc.init)(jax.random.key(0), x)
    shapes = [(k, p["kernel"].shape) for k, p in sorted(v["params"].items())]
    assert shapes == [("Conv_0", (10, 10, 1, 64)), ("Conv_1", (7, 7, 64, 128)), ("Conv_2", (4, 4, 128, 128)),
                      ("Conv_3", (4, 4, 128, 256)), ("Dense_0", (6 * 6 * 256, 4096))]
    out = jax.jit(enc.apply)(v, x)
    assert out.shape == (2, 4096) and out.dtype == jnp.float32
    assert bool(((out > 0) & (out < 1)).all())  # sigmoid features
    # 38,951,745 weights + biases without the head: the number Koch's architecture implies
    assert _count(v["params"]) == (10 * 10 * 64 + 64) + (7 * 7 * 64 * 128 + 128) + (4 * 4 * 128 * 128 + 128) \
        + (4 * 4 * 128 * 256 + 256) + (9216 * 4096 + 4096)


@pytest.mark.parametrize("name,size,dim", [("conv4", 28, 64), ("conv4", 105, 6 * 6 * 64), ("resnet", 28, 128)])
def test_encoder_shapes(name, size, dim):
    enc = make_encoder(name)
    x = jax.random.uniform(jax.random.key(1), (3, size, size, 1))
    v = jax.jit(enc.init)(jax.random.key(0), x)
    out = jax.jit(enc.apply)(v, x)
    assert out.shape == (3, dim) and out.dtype == jnp.float32
    assert "batch_stats" in v  # both use BatchNorm
    out_train, upd = jax.jit(lambda v, x: enc.apply(v, x, train=True, mutable=["batch_stats"]))(v, x)
    assert out_train.shape == (3, dim)
    assert not np.allclose(jax.tree_util.tree_leaves(upd)[0], jax.tree_util.tree_leaves(v["batch_stats"])[0])


def test_conv4_block_widths():
    """``widths`` sets each block's channels (a JSON list works as well as a tuple); bad ones are refused."""
    x = jnp.zeros((2, 32, 32, 1))
    enc = make_encoder("conv4", widths=[4, 8, 16, 16])
    v = jax.jit(enc.init)(jax.random.key(0), x)
    kernels = [p["kernel"].shape for _, p in sorted(v["params"].items()) if "kernel" in p]
    assert kernels == [(3, 3, 1, 4), (3, 3, 4, 8), (3, 3, 8, 16), (3, 3, 16, 16)]
    assert jax.jit(enc.apply)(v, x).shape == (2, 2 * 2 * 16)
    assert make_encoder("conv4", width=8, blocks=3).block_widths() == (8, 8, 8)
    for bad in ([], [8, 0], [8, 2.5]):
        with pytest.raises(ValueError, match="widths=.*one positive integer channel count per block"):
            make_encoder("conv4", widths=bad).init(jax.random.key(0), x)


def test_unknown_names_are_clear():
    with pytest.raises(ValueError, match="unknown model 'vgg'.*conv4"):
        make_encoder("vgg")
    with pytest.raises(ValueError, match="unknown head 'l3'.*cosine"):
        make_head("l3")


@pytest.mark.parametrize("head", sorted(HEADS))
def test_heads_symmetric_and_consistent(head):
    twin = make_twin("conv4", head)
    v = twin.init(jax.random.key(0), (28, 28, 1))
    a, b = jax.random.normal(jax.random.key(1), (2, 5, 64))
    ab, ba = twin.compare(v, a, b), twin.compare(v, b, a)
    assert ab.similarity.shape == (5,) and ab.logit.shape == (5,)
    np.testing.assert_allclose(ab.similarity, ba.similarity, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ab.logit, ba.logit, rtol=1e-5, atol=1e-5)
    # the all-pairs matrix agrees with the aligned scores on its diagonal
    m = twin.pairwise(v, a, b)
    assert m.shape == (5, 5)
    np.testing.assert_allclose(np.diag(m), ab.similarity, rtol=1e-5, atol=1e-5)
    if head != "koch":  # a vector is most similar to itself (Koch's learned weights may have any sign)
        self_sim = twin.compare(v, a, a).similarity
        assert bool((self_sim >= ab.similarity - 1e-6).all())
    # logits are monotone in the similarity (learned calibration with a positive scale)
    order = np.argsort(np.asarray(ab.similarity))
    assert np.all(np.diff(np.asarray(ab.logit)[order]) >= -1e-5)


def test_head_values():
    twin_e, twin_c, twin_r = (make_twin("conv4", h) for h in ("euclidean", "cosine", "correlation"))
    a = jnp.array([[3.0, 4.0, 0.0]])
    b = jnp.array([[0.0, 0.0, 0.0]])
    v = twin_e.init(jax.random.key(0), (28, 28, 1))
    assert float(twin_e.compare(v, a, b).similarity[0]) == pytest.approx(-5.0)
    assert float(twin_e.distance(v, a, b)[0]) == pytest.approx(5.0)
    c = jnp.array([[1.0, 0.0, 0.0]])
    d = jnp.array([[1.0, 1.0, 0.0]])
    v = twin_c.init(jax.random.key(0), (28, 28, 1))
    assert float(twin_c.compare(v, c, d).similarity[0]) == pytest.approx(1 / np.sqrt(2), rel=1e-5)
    assert float(twin_c.distance(v, c, d)[0]) == pytest.approx(np.sqrt(2 - np.sqrt(2)), rel=1e-5)
    x, y = np.array([1.0, 2.0, 4.0, 3.0]), np.array([2.0, 1.0, 5.0, 9.0])
    v = twin_r.init(jax.random.key(0), (28, 28, 1))
    r = float(twin_r.compare(v, x[None], y[None]).similarity[0])
    assert r == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-5)
    # correlation ignores an offset and a positive scale of either vector
    r2 = float(twin_r.compare(v, x[None], 3 * y[None] + 7).similarity[0])
    assert r2 == pytest.approx(r, rel=1e-5)


def test_koch_head_is_weighted_l1():
    twin = make_twin("koch", "koch")
    v = twin.init(jax.random.key(0), (105, 105, 1))
    alpha = v["params"]["head"]["alpha"]
    a, b = jax.random.uniform(jax.random.key(1), (2, 4, 4096))
    out = twin.compare(v, a, b)
    want = jnp.abs(a - b) @ alpha["kernel"][:, 0] + alpha["bias"][0]
    np.testing.assert_allclose(out.logit, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.similarity, jax.nn.sigmoid(want), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no distance"):
        twin.distance(v, a, b)


@pytest.mark.parametrize("model,size", [("conv4", 28), ("koch", 105)])
def test_twin_shares_one_parameter_tree(model, size):
    """Both branches read the same weights: swapping the images swaps nothing in the tree, and each
    branch equals embedding that image alone."""
    twin = make_twin(model, "cosine")
    v = twin.init(jax.random.key(0), (size, size, 1))
    assert set(v["params"]) == {"encoder", "head"}  # one encoder, not two
    x1, x2 = jax.random.uniform(jax.random.key(2), (2, 3, size, size, 1))
    # one compiled program per function (op-by-op dispatch of the twin is slow on CPU)
    pair_scores, embed = jax.jit(twin.pair_scores), jax.jit(twin.embed)
    out = pair_scores(v, x1, x2)
    e1, e2 = embed(v, x1), embed(v, x2)
    np.testing.assert_allclose(out.similarity, twin.compare(v, e1, e2).similarity, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.similarity, pair_scores(v, x2, x1).similarity, rtol=1e-5, atol=1e-5)
    # gradients of a pair score reach one shared encoder from both branches
    g = jax.jit(jax.grad(lambda p: twin.pair_scores({**v, "params": p}, x1, x2).similarity.sum()))(v["params"])
    assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(g))


def test_train_mode_shares_batch_statistics_across_branches():
    twin = make_twin("conv4", "cosine")
    v = twin.init(jax.random.key(0), (28, 28, 1))
    x = jax.random.uniform(jax.random.key(3), (2, 6, 28, 28, 1))
    emb, stats = twin.embed_views(v, x, train=True)
    assert emb.shape == (2, 6, 64)
    # the statistics equal those of one batch holding all 12 images
    plain = make_twin("conv4", "cosine", bn_axis_name=None)  # no collective: one batch of 12
    _, upd = plain.module.apply(v, x.reshape(12, 28, 28, 1), train=True, method="embed", mutable=["batch_stats"])
    for got, want in zip(jax.tree_util.tree_leaves(stats), jax.tree_util.tree_leaves(upd["batch_stats"])):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_conv4_pooled_block_is_the_test_time_block_pooling_trained_in():
    """``pooled_block`` adds no weights and gives exactly [unit(flattened last map), sqrt(w) unit(max of
    block k over positions)]: what siamjax.infer.block_pooling appends at test time to the same network."""
    from siamjax.infer.block_pooling import BlockPooling

    x = jax.random.uniform(jax.random.key(1), (5, 32, 32, 1))
    plain = make_encoder("conv4", widths=[4, 8, 16])
    pooled = make_encoder("conv4", widths=[4, 8, 16], pooled_block=-2, pooled_weight=2.0)
    v = jax.jit(plain.init)(jax.random.key(0), x)
    assert jax.tree.structure(jax.jit(pooled.init)(jax.random.key(0), x)) == jax.tree.structure(v)
    last = np.asarray(plain.apply(v, x))  # [5, 4 * 4 * 16]
    two = make_encoder("conv4", widths=[4, 8])  # the first two blocks, with the same weights
    keep = {f"{k}_{i}" for k in ("Conv", "BatchNorm") for i in range(2)}
    v2 = {col: {k: p for k, p in tree.items() if k in keep} for col, tree in v.items()}
    block = np.asarray(two.apply(v2, x)).reshape(5, 8, 8, 8).max(axis=(1, 2))  # block 1 = -2, pooled
    want = BlockPooling(-2, "max", 2.0).combine(last, block)
    got = np.asarray(jax.jit(pooled.apply)(v, x))
    assert got.shape == (5, 256 + 8) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the same block by its positive index, and training mode (batch statistics) runs through it
    same = make_encoder("conv4", widths=[4, 8, 16], pooled_block=1, pooled_weight=2.0)
    np.testing.assert_allclose(np.asarray(same.apply(v, x)), got, rtol=1e-6, atol=1e-7)  # float rounding of two compiled programs
    out, _ = pooled.apply(v, x, train=True, mutable=["batch_stats"])
    assert out.shape == (5, 264) and np.isfinite(np.asarray(out)).all()


@pytest.mark.parametrize("kwargs,match", [
    ({"pooled_block": -1}, "pooled_block=-1: give an earlier block of this 3-block encoder"),
    ({"pooled_block": 2}, "pooled_block=2: give an earlier block"),
    ({"pooled_block": -4}, "pooled_block=-4"),
    ({"pooled_block": True}, "pooled_block=True"),
    ({"pooled_block": -2, "pooled_weight": 0.0}, "pooled_weight=0.0: give a number > 0"),
    ({"pooled_block": -2, "embed_dim": 8}, "cannot be combined with embed_dim"),
])
def test_conv4_pooled_block_refuses_what_it_cannot_do(kwargs, match):
    enc = make_encoder("conv4", widths=[4, 8, 16], **kwargs)
    with pytest.raises(ValueError, match=match):
        enc.init(jax.random.key(0), jnp.zeros((1, 32, 32, 1)))
