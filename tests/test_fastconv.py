"""siamjax.fastconv: the fast CPU convolution / max-pool gradients equal XLA's reference ones.

Values and gradients (w.r.t. input, kernel, bias) of the fast path are compared with ``jax.grad`` of
the reference (``lax.conv_general_dilated`` / ``nn.max_pool``) under ``jit``; the whole Conv4 and
Koch twin gradients are compared with the same models built with ``fast_cpu=False``.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from siamjax import fastconv
from siamjax.losses import contrastive_loss
from siamjax.models import make_encoder
from siamjax.siamese import make_twin

DN = ("NHWC", "HWIO", "NHWC")

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the fast path is the CPU backend's")


def _close(a, b, rtol=2e-5):
    """Equal to float tolerance: |a - b| <= rtol * max|b| (+ a tiny absolute floor) elementwise."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    scale = max(np.abs(b).max(), 1e-30)
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale + 1e-30)


def _ref_conv(x, w, b, padding):
    return lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=DN) + b


def _loss_and_grads(conv):
    def loss(x, w, b):
        y = conv(x, w, b)
        return jnp.sum(jnp.sin(y) * y)  # a non-trivial cotangent
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))


# ------------------------------------------------------------------------------------ convolution
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("hw,k,cin,cout", [((8, 8), 3, 3, 5), ((9, 7), 3, 2, 4), ((11, 10), 4, 1, 6),
                                           ((12, 13), 7, 3, 2), ((6, 5), 1, 4, 3), ((10, 10), 5, 1, 8)])
def test_conv2d_matches_lax_values_and_gradients(padding, hw, k, cin, cout):
    kx, kw_, kb = jax.random.split(jax.random.key(hash((padding, hw, k)) % 2**31), 3)
    x = jax.random.normal(kx, (3, *hw, cin))
    w = jax.random.normal(kw_, (k, k, cin, cout)) / k
    b = jax.random.normal(kb, (cout,))
    ref_val, ref_g = _loss_and_grads(lambda x, w, b: _ref_conv(x, w, b, padding))(x, w, b)
    y_ref = _ref_conv(x, w, b, padding)
    for scheme in ("auto", "im2col", "rows"):
        y = jax.jit(lambda x, w, b: fastconv.conv2d(x, w, padding, b, scheme=scheme))(x, w, b)
        np.testing.assert_array_equal(y, y_ref)  # the forward is XLA's own convolution
        val, g = _loss_and_grads(lambda x, w, b: fastconv.conv2d(x, w, padding, b, scheme=scheme))(x, w, b)
        _close(val, ref_val)
        np.testing.assert_array_equal(g[0], ref_g[0])  # input gradient: XLA's own
        _close(g[1], ref_g[1])
        _close(g[2], ref_g[2])


def test_conv2d_explicit_padding_no_bias_and_leading_axes():
    x = jax.random.normal(jax.random.key(0), (2, 3, 9, 8, 4))  # two leading batch axes
    w = jax.random.normal(jax.random.key(1), (3, 2, 4, 5))
    pads = ((2, 0), (1, 3))

    def ref(x, w):
        y = lax.conv_general_dilated(x.reshape(-1, 9, 8, 4), w, (1, 1), pads, dimension_numbers=DN)
        return y.reshape(2, 3, *y.shape[1:])

    g_ref = jax.jit(jax.grad(lambda x, w: jnp.sum(ref(x, w) ** 2), argnums=(0, 1)))(x, w)
    g = jax.jit(jax.grad(lambda x, w: jnp.sum(fastconv.conv2d(x, w, pads) ** 2), argnums=(0, 1)))(x, w)
    assert fastconv.conv2d(x, w, pads).shape == ref(x, w).shape
    _close(g[0], g_ref[0])
    _close(g[1], g_ref[1])


@pytest.mark.parametrize("scheme", ["im2col", "rows"])
def test_weight_grad_chunked_equals_unchunked(scheme):
    x = jax.random.normal(jax.random.key(0), (12, 10, 9, 3))
    dy = jax.random.normal(jax.random.key(1), (12, 10, 9, 4))
    pads = ((1, 1), (1, 1))
    whole, db_whole = fastconv.conv_weight_grad(x, dy, (3, 3, 3, 4), pads, scheme=scheme, chunk_bytes=1 << 40,
                                                with_bias=True)
    parts, db_parts = jax.jit(lambda x, dy: fastconv.conv_weight_grad(
        x, dy, (3, 3, 3, 4), pads, scheme=scheme, chunk_bytes=1, with_bias=True))(x, dy)  # one image a step
    ref = jax.vjp(lambda w: lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=DN),
                  jnp.zeros((3, 3, 3, 4)))[1](dy)[0]
    _close(whole, ref)
    _close(parts, ref)
    _close(db_whole, dy.sum((0, 1, 2)))
    _close(db_parts, dy.sum((0, 1, 2)))


def test_conv2d_under_vmap_shared_kernel():
    """The twin vmaps the encoder over its two branches with one (unbatched) kernel."""
    x = jax.random.normal(jax.random.key(0), (2, 4, 8, 8, 3))
    w = jax.random.normal(jax.random.key(1), (3, 3, 3, 5))
    b = jax.random.normal(jax.random.key(2), (5,))

    def grads(conv):
        f = lambda x, w, b: jnp.sum(jnp.tanh(jax.vmap(lambda v: conv(v, w, b))(x)))  # noqa: E731
        return jax.jit(jax.grad(f, argnums=(0, 1, 2)))(x, w, b)

    for a, r in zip(grads(lambda v, w, b: fastconv.conv2d(v, w, "SAME", b)),
                    grads(lambda v, w, b: _ref_conv(v, w, b, "SAME"))):
        _close(a, r)


def test_non_cpu_backends_and_fast_false_keep_xla(monkeypatch):
    x = jnp.ones((1, 5, 5, 2))
    w = jnp.ones((3, 3, 2, 2))

    def has_custom_vjp(fn):
        return "custom_vjp_call" in str(jax.make_jaxpr(fn)(x, w))

    assert has_custom_vjp(lambda x, w: fastconv.conv2d(x, w))
    assert has_custom_vjp(lambda x, w: fastconv.max_pool_2x2(x))
    assert not has_custom_vjp(lambda x, w: fastconv.conv2d(x, w, fast=False))
    assert not has_custom_vjp(lambda x, w: fastconv.max_pool_2x2(x, fast=False))
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert not has_custom_vjp(lambda x, w: fastconv.conv2d(x, w))
    assert not has_custom_vjp(lambda x, w: fastconv.max_pool_2x2(x))
    # forward-mode differentiation needs the plain path
    out, tangent = jax.jvp(lambda w: fastconv.conv2d(x, w, fast=False), (w,), (w,))
    np.testing.assert_array_equal(out, tangent)


# ------------------------------------------------------------------------------------ max pooling
@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (2, 7, 9, 3), (1, 3, 2, 5), (2, 2, 4, 3, 2), (3, 11, 11, 4)])
def test_max_pool_matches_nn_max_pool_exactly(shape):
    x = jax.random.normal(jax.random.key(len(shape)), shape)
    x = jnp.round(jax.nn.relu(x) * 2) / 2  # many ties (zeros, equal halves): the first maximum wins
    x = x.at[..., 0, 0, 0].set(-jnp.inf)

    def ref(x):
        return nn.max_pool(x, window_shape=(2, 2), strides=(2, 2), padding="VALID")

    y_ref, vjp_ref = jax.vjp(ref, x)
    y, vjp = jax.jit(lambda x: jax.vjp(fastconv.max_pool_2x2, x))(x)
    np.testing.assert_array_equal(y, y_ref)
    g = jax.random.normal(jax.random.key(7), y.shape)
    np.testing.assert_array_equal(vjp(g)[0], vjp_ref(g)[0])
    # under jit, as part of a bigger function (finite inputs: NaN windows are not specified)
    x = jnp.where(jnp.isinf(x), 0.0, x)
    f = lambda x: jnp.sum(jnp.sin(fastconv.max_pool_2x2(jnp.round(jnp.cos(x) * 4))))  # noqa: E731
    r = lambda x: jnp.sum(jnp.sin(ref(jnp.round(jnp.cos(x) * 4))))  # noqa: E731
    np.testing.assert_array_equal(jax.jit(jax.grad(f))(x), jax.jit(jax.grad(r))(x))


# --------------------------------------------------------------------------------- Linen / models
@pytest.mark.parametrize("kwargs", [dict(padding="SAME"), dict(padding="VALID"), dict(padding=((1, 0), (2, 1))),
                                    dict(strides=2), dict(use_bias=False), dict(kernel_size=(1, 1))])
def test_conv_module_is_drop_in(kwargs):
    kwargs = {"features": 4, "kernel_size": (3, 3), **kwargs}
    x = jax.random.normal(jax.random.key(0), (3, 9, 9, 5))
    ref, new = nn.Conv(**kwargs), fastconv.Conv(**kwargs)
    v = ref.init(jax.random.key(1), x)
    v_new = new.init(jax.random.key(1), x)
    assert jax.tree_util.tree_structure(v) == jax.tree_util.tree_structure(v_new)
    for a, b in zip(jax.tree_util.tree_leaves(v), jax.tree_util.tree_leaves(v_new)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(new.apply(v, x), ref.apply(v, x))
    grads = [jax.jit(jax.grad(lambda v, x: jnp.sum(jnp.sin(m.apply(v, x))), argnums=(0, 1)))(v, x) for m in (new, ref)]
    for a, b in zip(jax.tree_util.tree_leaves(grads[0]), jax.tree_util.tree_leaves(grads[1])):
        _close(a, b)


@pytest.mark.parametrize("name,size", [("conv4", 28), ("koch", 105), ("resnet", 28)])
def test_models_keep_their_parameter_tree(name, size):
    x = jnp.zeros((2, size, size, 1))
    shapes = [jax.eval_shape(lambda: make_encoder(name, fast_cpu=f).init(jax.random.key(0), x)) for f in (True, False)]
    assert jax.tree_util.tree_map(jnp.shape, shapes[0]) == jax.tree_util.tree_map(jnp.shape, shapes[1])


def _twin_grads(model, size, pairs, fast, head="euclidean"):
    twin = make_twin(model, head, {"fast_cpu": fast})
    variables = twin.init(jax.random.key(0), (size, size, 1))
    k1, k2 = jax.random.split(jax.random.key(1))
    views = jnp.stack([jax.random.uniform(k1, (pairs, size, size, 1)), jax.random.uniform(k2, (pairs, size, size, 1))])
    same = (jnp.arange(pairs) % 2).astype(jnp.float32)

    def loss_fn(params):  # what train_lib's contrastive step differentiates
        v = {**variables, "params": params}
        emb, _ = twin.embed_views(v, views)
        return contrastive_loss(twin.distance(v, emb[0], emb[1]), same, margin=1.0)[0]

    return jax.jit(jax.value_and_grad(loss_fn))(variables["params"])


@pytest.mark.parametrize("model,size,pairs", [("conv4", 28, 8), ("koch", 105, 2)])
def test_twin_train_gradient_equals_reference(model, size, pairs):
    loss_fast, g_fast = _twin_grads(model, size, pairs, fast=True)
    loss_ref, g_ref = _twin_grads(model, size, pairs, fast=False)
    _close(loss_fast, loss_ref, rtol=1e-6)
    assert jax.tree_util.tree_structure(g_fast) == jax.tree_util.tree_structure(g_ref)
    flat_fast = jax.tree_util.tree_leaves_with_path(g_fast)
    for (path, a), b in zip(flat_fast, jax.tree_util.tree_leaves(g_ref)):
        assert np.abs(np.asarray(b)).max() > 0 or "head" in jax.tree_util.keystr(path), path
        _close(a, b, rtol=1e-4)
