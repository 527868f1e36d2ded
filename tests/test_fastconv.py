"""siamjax.nn.fastconv: the fast CPU convolution / max-pool gradients equal XLA's reference ones.

Values and gradients (w.r.t. input, kernel, bias) of the fast path are compared with ``jax.grad`` of
the reference (``lax.conv_general_dilated`` / ``nn.max_pool``) under ``jit``; the whole Conv4 and
Koch twin gradients are compared with the same models built with ``fast_cpu=False``.
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from siamjax.nn import fastconv
from siamjax.losses import contrastive_loss
from siamjax.nn.encoders import make_encoder
from siamjax.nn.twin import make_twin

DN = ("NHWC", "HWIO", "NHWC")
# The comparisons are of mathematics, not of code generation: compile without LLVM's optimisations
# (several times faster to compile; the file stays within its time budget).
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the fast path is the CPU backend's")


def _normal(seed, shape, scale=1.0):
    """Test inputs from NumPy (no per-op compilations as with eager jax.random)."""
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32) * scale)


def _close(a, b, rtol=2e-5):
    """Equal to float tolerance: max |a - b| <= rtol * max |b|."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    err, scale = float(np.max(np.abs(a - b), initial=0.0)), float(np.max(np.abs(b), initial=0.0))
    assert np.isfinite(err) and err <= rtol * scale + 1e-30, \
        f"max |a - b| = {err:.3g} > {rtol:g} * max |b| = {scale:.3g}"


def _ref_conv(x, w, b, padding):
    return lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=DN) + b


def _loss_and_grads(conv):
    def loss(x, w, b):
        y = conv(x, w, b)
        return jnp.sum(jnp.sin(y) * y)  # a non-trivial cotangent
    return jax.value_and_grad(loss, argnums=(0, 1, 2))


# ------------------------------------------------------------------------------------ convolution
@pytest.mark.parametrize("hw,k,cin,cout", [((8, 8), 3, 3, 5), ((9, 7), 3, 2, 4), ((11, 10), 4, 1, 6),
                                           ((12, 13), 7, 3, 2), ((6, 5), 1, 4, 3)])
def test_conv2d_matches_lax_values_and_gradients(hw, k, cin, cout):
    """SAME and VALID, odd and even sizes and kernels, every weight-gradient scheme, under jit."""
    x = _normal(0, (3, *hw, cin))
    w = _normal(1, (k, k, cin, cout), 1.0 / k)
    b = _normal(2, (cout,))
    paddings, schemes = ("SAME", "VALID"), ("auto", "im2col", "rows")

    @jit
    def fast(x, w, b):  # one compilation for all cases
        return {(p, s, f): (fastconv.conv2d(x, w, p, b, scheme=s, forward=f), _loss_and_grads(
                    lambda x, w, b: fastconv.conv2d(x, w, p, b, scheme=s, forward=f))(x, w, b))
                for p in paddings for s in schemes for f in ("lax", "matmul")}

    @jit
    def ref(x, w, b):
        return {p: (_ref_conv(x, w, b, p), _loss_and_grads(lambda x, w, b: _ref_conv(x, w, b, p))(x, w, b))
                for p in paddings}

    got, want = fast(x, w, b), ref(x, w, b)
    for (p, _, f), (y, (val, g)) in got.items():
        y_ref, (ref_val, ref_g) = want[p]
        if f == "lax":
            np.testing.assert_array_equal(y, y_ref)  # the forward is XLA's own convolution
            np.testing.assert_array_equal(g[0], ref_g[0])  # and so is the input gradient
        else:
            _close(y, y_ref)  # matrix products: equal to float rounding
            _close(g[0], ref_g[0])
        _close(val, ref_val)
        _close(g[1], ref_g[1])
        _close(g[2], ref_g[2])


def test_conv2d_explicit_padding_no_bias_and_leading_axes():
    x = _normal(0, (2, 3, 9, 8, 4))  # two leading batch axes
    w = _normal(1, (3, 2, 4, 5))
    pads = ((2, 0), (1, 3))

    def ref(x, w):
        y = lax.conv_general_dilated(x.reshape(-1, 9, 8, 4), w, (1, 1), pads, dimension_numbers=DN)
        return y.reshape(2, 3, *y.shape[1:])

    g_ref = jit(jax.grad(lambda x, w: jnp.sum(ref(x, w) ** 2), argnums=(0, 1)))(x, w)
    g = jit(jax.grad(lambda x, w: jnp.sum(fastconv.conv2d(x, w, pads) ** 2), argnums=(0, 1)))(x, w)
    assert fastconv.conv2d(x, w, pads).shape == ref(x, w).shape
    _close(g[0], g_ref[0])
    _close(g[1], g_ref[1])


@pytest.mark.parametrize("scheme", ["im2col", "rows"])
def test_weight_grad_chunked_equals_unchunked(scheme):
    x = _normal(0, (12, 10, 9, 3))
    dy = _normal(1, (12, 10, 9, 4))
    pads = ((1, 1), (1, 1))
    whole, db_whole = fastconv.conv_weight_grad(x, dy, (3, 3, 3, 4), pads, scheme=scheme, chunk_bytes=1 << 40,
                                                with_bias=True)
    parts, db_parts = jit(lambda x, dy: fastconv.conv_weight_grad(
        x, dy, (3, 3, 3, 4), pads, scheme=scheme, chunk_bytes=1, with_bias=True))(x, dy)  # one image a step
    ref = jax.vjp(lambda w: lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=DN),
                  jnp.zeros((3, 3, 3, 4)))[1](dy)[0]
    _close(whole, ref)
    _close(parts, ref)
    _close(db_whole, dy.sum((0, 1, 2)))
    _close(db_parts, dy.sum((0, 1, 2)))


def test_conv2d_under_vmap_shared_kernel():
    """The twin vmaps the encoder over its two branches with one (unbatched) kernel."""
    x = _normal(0, (2, 4, 8, 8, 3))
    w = _normal(1, (3, 3, 3, 5))
    b = _normal(2, (5,))

    def grads(conv):
        f = lambda x, w, b: jnp.sum(jnp.tanh(jax.vmap(lambda v: conv(v, w, b))(x)))  # noqa: E731
        return jit(jax.grad(f, argnums=(0, 1, 2)))(x, w, b)

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
@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (3, 7, 9, 3), (2, 2, 5, 3, 2)])
def test_max_pool_matches_nn_max_pool_exactly(shape):
    x = np.round(np.maximum(np.asarray(_normal(len(shape), shape)), 0) * 2) / 2  # many ties: first max wins
    x[..., 0, 0, 0] = -np.inf
    x = jnp.asarray(x)

    def ref(x):
        return nn.max_pool(x, window_shape=(2, 2), strides=(2, 2), padding="VALID")

    y_ref, vjp_ref = jit(lambda x: jax.vjp(ref, x))(x)
    y, vjp = jit(lambda x: jax.vjp(fastconv.max_pool_2x2, x))(x)
    np.testing.assert_array_equal(y, y_ref)
    g = _normal(7, y.shape)
    np.testing.assert_array_equal(vjp(g)[0], vjp_ref(g)[0])
    # under jit, as part of a bigger function (finite inputs: NaN windows are not specified)
    x = jnp.asarray(np.where(np.isinf(np.asarray(x)), 0.0, np.asarray(x)))
    f = lambda x: jnp.sum(jnp.sin(fastconv.max_pool_2x2(jnp.round(jnp.cos(x) * 4))))  # noqa: E731
    r = lambda x: jnp.sum(jnp.sin(ref(jnp.round(jnp.cos(x) * 4))))  # noqa: E731
    np.testing.assert_array_equal(jit(jax.grad(f))(x), jit(jax.grad(r))(x))


# --------------------------------------------------------------------------------- Linen / models
@pytest.mark.parametrize("kwargs", [dict(padding="SAME"), dict(padding="VALID"), dict(padding=((1, 0), (2, 1))),
                                    dict(strides=2), dict(use_bias=False), dict(kernel_size=(1, 1))])
def test_conv_module_is_drop_in(kwargs):
    kwargs = {"features": 4, "kernel_size": (3, 3), **kwargs}
    x = _normal(0, (3, 9, 9, 5))
    ref, new = nn.Conv(**kwargs), fastconv.Conv(**kwargs)
    v, v_new = jit(lambda k, x: (ref.init(k, x), new.init(k, x)))(jax.random.key(1), x)
    assert jax.tree_util.tree_structure(v) == jax.tree_util.tree_structure(v_new)
    for a, b in zip(jax.tree_util.tree_leaves(v), jax.tree_util.tree_leaves(v_new)):
        np.testing.assert_array_equal(a, b)
    y_new, y_ref = jit(lambda v, x: (new.apply(v, x), ref.apply(v, x)))(v, x)
    np.testing.assert_array_equal(y_new, y_ref)
    grads = jit(lambda v, x: [jax.grad(lambda v, x: jnp.sum(jnp.sin(m.apply(v, x))), argnums=(0, 1))(v, x)
                              for m in (new, ref)])(v, x)
    for a, b in zip(jax.tree_util.tree_leaves(grads[0]), jax.tree_util.tree_leaves(grads[1])):
        _close(a, b)


@pytest.mark.parametrize("name,size", [("conv4", 28), ("koch", 105), ("resnet", 28)])
def test_models_keep_their_parameter_tree(name, size):
    x = jnp.zeros((2, size, size, 1))
    shapes = [jax.eval_shape(lambda: make_encoder(name, fast_cpu=f).init(jax.random.key(0), x)) for f in (True, False)]
    assert jax.tree_util.tree_map(jnp.shape, shapes[0]) == jax.tree_util.tree_map(jnp.shape, shapes[1])


def _random_variables(shapes, seed=0):
    """Variables of the given shapes from NumPy (Koch's 38M weights: much faster than jax.random on CPU).

    Kernels ~ N(0, 1/fan_in), BatchNorm scales ~ 1 + N(0, 0.01), variances 1, everything else N(0, 0.01).
    """
    rng = np.random.default_rng(seed)

    def leaf(path, s):
        name = jax.tree_util.keystr(path[-1:])
        if len(s.shape) >= 2:
            v = rng.standard_normal(s.shape, dtype=np.float32) / np.float32(np.sqrt(np.prod(s.shape[:-1])))
        elif "var" in name:
            v = np.ones(s.shape)
        else:
            v = ("scale" in name) + 0.1 * rng.normal(size=s.shape)
        return jnp.asarray(v, s.dtype)

    return jax.tree_util.tree_map_with_path(leaf, shapes)


def _twin_grads(model, size, pairs, head="euclidean"):
    """(loss, gradient) of the contrastive twin step, fast_cpu True and False, from the same variables."""
    twins = [make_twin(model, head, {"fast_cpu": fast}) for fast in (True, False)]
    variables = _random_variables(jax.eval_shape(lambda k: twins[1].init(k, (size, size, 1)), jax.random.key(0)))
    views = jnp.asarray(np.random.default_rng(1).uniform(size=(2, pairs, size, size, 1)).astype(np.float32))
    same = jnp.asarray(np.arange(pairs) % 2, jnp.float32)

    def grads(twin, params):
        def loss_fn(params):  # what train_lib's contrastive step differentiates
            v = {**variables, "params": params}
            emb, _ = twin.embed_views(v, views)
            return contrastive_loss(twin.distance(v, emb[0], emb[1]), same, margin=1.0)[0]

        return jax.value_and_grad(loss_fn)(params)

    return jit(lambda p: [grads(t, p) for t in twins])(variables["params"])  # one compilation


@pytest.mark.parametrize("model,size,pairs,rtol", [("conv4", 28, 8, 1e-4), ("koch", 105, 2, 2e-3)])
def test_twin_train_gradient_equals_reference(model, size, pairs, rtol):
    """The whole twin's gradient (contrastive loss, shared BatchNorm statistics) equals XLA's.

    conv4's forward is XLA's own, so its gradient agrees to summation order (1e-4 of the largest
    element). Koch's 7x7 and 4x4 layers compute the forward by matrix products (equal to float
    rounding); a rounding-level difference can move a max-pool's choice between two (nearly) tied
    inputs, which moves a little gradient: measured 4e-4 of the largest element, 3e-6 with
    ``forward="lax"``.
    """
    (loss_fast, g_fast), (loss_ref, g_ref) = _twin_grads(model, size, pairs)
    # the loss (a small difference of distances near the margin) to float rounding of the encoder
    assert abs(float(loss_fast) - float(loss_ref)) <= 1e-5 * max(1.0, abs(float(loss_ref)))
    assert jax.tree_util.tree_structure(g_fast) == jax.tree_util.tree_structure(g_ref)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(g_fast), jax.tree_util.tree_leaves(g_ref)):
        assert np.abs(np.asarray(b)).max() > 0 or "head" in jax.tree_util.keystr(path), path
        _close(a, b, rtol=rtol)
