"""config.model.compute_dtype=bfloat16: bfloat16 activations and convolutions, float32 everything that persists.

The jitted train step keeps parameters, optimizer state and BatchNorm statistics float32, its loss is
within a few percent of the float32 step's from the same state and batch, and its convolutions and
encoder matrix products really run on bfloat16 operands. fastconv's custom gradients with bfloat16
activations and float32 kernels stay close to the float32 reference and come back float32.
"""
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from configs import omniglot as omniglot_config
from siamjax.nn import fastconv
import siamjax.train as train_lib

# Compile without LLVM's optimisations: these tests compare mathematics, and compile several times faster.
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0,
                                                   "xla_llvm_disable_expensive_passes": True})
DN = ("NHWC", "HWIO", "NHWC")


def _config(loss, compute_dtype):
    c = omniglot_config.get_config()
    c.loss.name = loss
    c.model.head = "euclidean" if loss == "contrastive" else "cosine"
    c.loss.margin = 1.0 if loss == "contrastive" else 0.2
    c.loss.mining, c.loss.triplet_reduction = "all", "mean"  # no discrete selection a rounding could flip
    c.data.batch_size, c.data.images_per_class = 8, 2
    c.data.image_size = 28
    c.model.name = "conv4"
    c.augment.enabled = False  # float32 input distortions, before the encoder: not what is tested here
    c.model.compute_dtype = compute_dtype
    return c


def _batch(loss, n=8, size=28):
    rng = np.random.default_rng(0)
    if loss == "triplet":
        return {"images": rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8),
                "labels": np.repeat(np.arange(n // 2), 2).astype(np.int32)}
    return {"left": rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8),
            "right": rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8),
            "same": (np.arange(n) % 2 == 0).astype(np.float32)}


def _equations(jaxpr):
    """Every equation of a jaxpr and of the jaxprs nested in its equations' parameters."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    for eqn in jaxpr.eqns:
        yield eqn
        for p in eqn.params.values():
            for sub in p if isinstance(p, (tuple, list)) else (p,):
                if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
                    yield from _equations(sub)


def _operand_dtypes(jaxpr, primitive):
    return [tuple(str(v.aval.dtype) for v in e.invars[:2]) for e in _equations(jaxpr) if e.primitive.name == primitive]


def _state(twin, cfg, spec, seed=0):
    """A TrainState like create_state's, its weights drawn by NumPy (no initialiser compilation):
    kernels ~ N(0, 1/fan_in), BatchNorm scales 1, biases 0, running variances 1."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(lambda k: twin.init(k, (spec.size, spec.size, spec.channels)), jax.random.key(0))

    def leaf(path, s):
        name = jax.tree_util.keystr(path[-1:])
        if len(s.shape) >= 2:
            return jnp.asarray(rng.standard_normal(s.shape) / np.sqrt(np.prod(s.shape[:-1])), s.dtype)
        return jnp.full(s.shape, 1.0 if "scale" in name or "var" in name else 0.0, s.dtype)

    v = jax.tree_util.tree_map_with_path(leaf, shapes)
    tx, _ = train_lib.make_optimizer(cfg.optim)
    return train_lib.TrainState.create(apply_fn=None, params=v["params"], tx=tx, batch_stats=v.get("batch_stats"))


@pytest.mark.parametrize("loss", ["contrastive", "triplet"])
def test_bfloat16_step_keeps_float32_state_and_matches_float32_loss(loss):
    cfgs = {d: _config(loss, d) for d in ("float32", "bfloat16")}
    for c in cfgs.values():
        train_lib.check_config(c)
    spec = train_lib.preprocessing_from_config(cfgs["float32"])
    twins = {d: train_lib.twin_from_config(c) for d, c in cfgs.items()}
    steps = {d: train_lib.make_train_step(twins[d], c, spec) for d, c in cfgs.items()}
    state = _state(twins["bfloat16"], cfgs["bfloat16"], spec)  # one tree for every compute dtype
    assert jax.tree_util.tree_structure(jax.eval_shape(lambda k: twins["float32"].init(k, (28, 28, 1)),
                                                       jax.random.key(0))) == \
        jax.tree_util.tree_structure(train_lib.state_variables(state))
    batch = _batch(loss)

    traced = jit(lambda s, b: {d: step(s, b) for d, step in steps.items()}).trace(state, batch)  # one compilation
    # Every convolution of the bfloat16 step (forward, input and weight gradients) has bfloat16
    # operands, every one of the float32 step float32 operands: the traced program holds both steps,
    # with the same number of convolutions each.
    convs = _operand_dtypes(traced.jaxpr, "conv_general_dilated")
    assert convs and sorted(set(convs)) == [("bfloat16", "bfloat16"), ("float32", "float32")], set(convs)
    assert convs.count(("bfloat16", "bfloat16")) == convs.count(("float32", "float32"))
    if jax.default_backend() == "cpu":  # fastconv's weight gradients: bfloat16 matrix products
        assert ("bfloat16", "bfloat16") in _operand_dtypes(traced.jaxpr, "dot_general")
    # the encoder's embeddings reach the head and the loss as float32; BatchNorm statistics are float32
    x = jnp.zeros((2, 4, 28, 28, 1), jnp.float32)
    emb, stats = jax.eval_shape(lambda v: twins["bfloat16"].embed_views(v, x), train_lib.state_variables(state))
    assert emb.dtype == jnp.float32
    assert {s.dtype for s in jax.tree_util.tree_leaves(stats)} == {jnp.dtype(jnp.float32)}

    new = traced.lower().compile()(state, batch)
    (s32, m32), (s16, m16) = new["float32"], new["bfloat16"]
    kept = [(jax.tree_util.keystr(p), x.dtype) for p, x in jax.tree_util.tree_leaves_with_path(
        (s16.params, s16.opt_state, s16.batch_stats)) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert kept and all(d == jnp.float32 for _, d in kept), kept
    assert jax.tree_util.tree_structure(s16) == jax.tree_util.tree_structure(s32)
    l32, l16 = float(m32["loss"]), float(m16["loss"])
    assert np.isfinite(l16) and abs(l16 - l32) <= 0.03 * abs(l32), (l16, l32)
    # The gradient (Adam's first moment after one step; the warm-up's first learning rate is 0) points
    # where the float32 one does. bfloat16 rounding (8 bits) through four conv-BatchNorm blocks on a
    # batch of 8 noise images moves each leaf by ~20%: measured cosine 0.98-0.99 for fastconv and for
    # XLA's own bfloat16 convolutions alike.
    g32, g16 = (np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(s.opt_state[0].mu)]) for s in (s32, s16))
    assert np.linalg.norm(g32) > 0
    assert np.dot(g32, g16) / (np.linalg.norm(g32) * np.linalg.norm(g16)) > 0.95
    assert abs(np.linalg.norm(g16) / np.linalg.norm(g32) - 1) < 0.1


def _rel_err(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_fastconv_bfloat16_gradients_close_to_float32():
    """bfloat16 activations with float32 kernel and bias, lax and matrix-product forwards, fast (CPU)
    and plain paths, then a 2x2 max-pool: values and gradients within bfloat16 rounding of the float32
    reference, weight and bias gradients float32, the input gradient bfloat16."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4, 10, 10, 16)).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(4, 4, 16, 8)).astype(np.float32) / 16.0)
    b = jnp.asarray(rng.normal(size=(8,)).astype(np.float32))

    def loss(conv, x, w, b):
        y = fastconv.max_pool_2x2(conv(x, w, b)).astype(jnp.float32)
        return jnp.sum(jnp.sin(y) * y)

    ref = lambda x, w, b: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DN) + b  # noqa: E731
    variants = {(f, fast): lambda x, w, b, f=f, fast=fast: fastconv.conv2d(x, w, "SAME", b, forward=f, fast=fast)
                for f, fast in (("lax", True), ("matmul", True), ("lax", False))}

    @jit
    def run(x, w, b):
        want = jax.value_and_grad(functools.partial(loss, ref), argnums=(0, 1, 2))(x, w, b)
        got = {k: jax.value_and_grad(lambda x, w, b, c=c: loss(lambda x, w, b: c(x, w, b), x, w, b),
                                     argnums=(0, 1, 2))(x.astype(jnp.bfloat16), w, b)
               for k, c in variants.items()}
        return want, got

    (v_ref, g_ref), got = run(x, w, b)
    for key, (v, (dx, dw, db)) in got.items():
        assert (dx.dtype, dw.dtype, db.dtype) == (jnp.bfloat16, jnp.float32, jnp.float32), key
        assert abs(float(v) - float(v_ref)) <= 0.03 * abs(float(v_ref)), (key, v, v_ref)
        for name, a, r in (("dx", dx, g_ref[0]), ("dw", dw, g_ref[1]), ("db", db, g_ref[2])):
            assert _rel_err(a, r) < 0.05, (key, name, _rel_err(a, r))


def test_conv_module_bfloat16_keeps_float32_parameters_and_gradients():
    """fastconv.Conv(dtype=bfloat16): float32 parameters, bfloat16 output, float32 gradients."""
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype(np.float32))
    conv = fastconv.Conv(5, (3, 3), dtype=jnp.bfloat16)
    ref = fastconv.Conv(5, (3, 3), fast_cpu=False)

    @jit
    def run(x):
        v = conv.init(jax.random.key(0), x)
        grads = [jax.grad(lambda v, m=m: jnp.sum(jnp.tanh(m.apply(v, x).astype(jnp.float32))))(v) for m in (conv, ref)]
        return v, conv.apply(v, x), grads

    v, y, (g, g_ref) = run(x)
    assert y.dtype == jnp.bfloat16
    assert {a.dtype for a in jax.tree_util.tree_leaves((v, g))} == {jnp.dtype(jnp.float32)}
    for a, r in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_ref)):
        assert _rel_err(a, r) < 0.05


def test_compute_dtype_config_checks_and_resume():
    cfg = _config("contrastive", "float16")
    with pytest.raises(ValueError, match=r"compute_dtype='float16'.*'float32', 'bfloat16'"):
        train_lib.check_config(cfg)
    cfg.model.compute_dtype = "bfloat16"
    train_lib.check_config(cfg)
    cfg.model.kwargs.dtype = "bfloat16"
    with pytest.raises(ValueError, match="compute_dtype"):
        train_lib.check_config(cfg)
    # precision may change on resume, and a run saved before the key existed resumes under either value
    old = json.loads(_config("contrastive", "float32").to_json())  # as checkpoint meta stores it
    del old["model"]["compute_dtype"]
    for value in ("float32", "bfloat16"):
        train_lib.check_resume_compatible({"config": old}, _config("contrastive", value))
    assert omniglot_config.get_config().model.compute_dtype == "float32"


def test_load_a_bfloat16_trained_checkpoint(tmp_path):
    """siamjax.load rebuilds the float32 twin: the weights a bfloat16 run saves are float32."""
    import siamjax
    from siamjax import checkpoint as ckpt_lib

    cfg = _config("contrastive", "bfloat16")
    spec = train_lib.preprocessing_from_config(cfg)
    state = _state(train_lib.twin_from_config(cfg), cfg, spec)
    io = ckpt_lib.CheckpointIO(tmp_path)
    io.save(1, train_lib.state_variables(state), train_lib.train_items(state),
            {**train_lib.model_meta(cfg, spec), "step": 1}, metrics={"val_accuracy": 0.5})
    io.wait()
    io.close()
    model = siamjax.load(tmp_path)
    assert model.config.model.compute_dtype == "bfloat16"
    assert {a.dtype for a in jax.tree_util.tree_leaves(model.variables)} == {jnp.dtype(jnp.float32)}
    emb = model.embed(np.random.default_rng(0).random((2, 105, 105)) > 0.5)
    assert emb.shape == (2, 64) and emb.dtype == np.float32 and np.all(np.isfinite(emb))
