"""CosFace and ArcFace (siamjax.losses.cosface_loss / arcface_loss): pytorch-metric-learning 2.9.0's values and
gradients on fixed inputs (float64, tests/oracle/margin_reference.json, made by tests/oracle/make_margin_reference.py),
their behaviour (margin 0 is a plain normalised softmax, a larger margin a larger loss, ArcFace finite at angles 0
and pi), the proxy term kept bit-identical, and their place in training: ``loss.name=cosface|arcface`` alone over
learned class vectors and ``loss.proxy_loss=arcface`` beside a P x K loss, their config checks and old configs."""
from __future__ import annotations

import functools
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import siamjax
import siamjax.train as train_lib
from siamjax import losses as L
from siamjax.config_layout import default_config, upgrade_config
from siamjax.train.config import needs_class_vectors
from siamjax.train.metric_writer import read_metrics
from siamjax.train.step import make_train_step
from tests.test_train import small_config

ORACLE_PATH = pathlib.Path(__file__).resolve().parent / "oracle" / "margin_reference.json"

# Tiny programs: compile without LLVM's optimisations (per function, no global state).
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

MARGIN_FNS = {"cosface": L.cosface_loss, "arcface": L.arcface_loss}


def _our_margin(case) -> float:
    """The oracle case's margin in our unit: CosFace a cosine (the same), ArcFace radians (pml: degrees)."""
    return case["margin"] if case["loss"] == "cosface" else math.radians(case["margin"])


# --------------------------------------------------------------------------- oracle (pml 2.9.0, float64)


@pytest.fixture(scope="module")
def oracle(testdata_root):
    ref = json.loads(ORACLE_PATH.read_text())
    inputs = json.loads((testdata_root / "pml_reference.json").read_text())
    assert ref["pytorch_metric_learning"] == "2.9.0" and ref["dtype"] == "float64"
    return ref, inputs


@pytest.fixture(scope="module")
def ours_float64(oracle):
    """{case: (loss, metrics, d loss / d embeddings, d loss / d class vectors)} of every oracle case, in
    float64 (x64 switched on only inside this block), one jitted program."""
    ref, inputs = oracle
    cases = ref["cases"]

    def all_cases(e, labels, w):
        out = {}
        for c in cases:
            fn = functools.partial(MARGIN_FNS[c["loss"]], scale=c["scale"], margin=_our_margin(c))
            (loss, m), (ge, gw) = jax.value_and_grad(lambda a, b: fn(a, labels, b), argnums=(0, 1), has_aux=True)(e, w)
            out[c["name"]] = (loss, m, ge, gw)
        return out

    with jax.enable_x64(True):
        e = jnp.asarray(inputs["embeddings"], dtype=jnp.float64)
        labels = jnp.asarray(inputs["labels"])
        w = jnp.asarray(ref["class_vectors"], dtype=jnp.float64)
        assert e.shape == (24, 6) and w.shape == (8, 6)
        return jax.device_get(jit(all_cases)(e, labels, w))


def _case_names():
    return [c["name"] for c in json.loads(ORACLE_PATH.read_text())["cases"]]


@pytest.mark.parametrize("name", _case_names())
def test_matches_pytorch_metric_learning(oracle, ours_float64, name):
    case = {c["name"]: c for c in oracle[0]["cases"]}[name]
    loss, metrics, ge, gw = ours_float64[name]
    assert loss.dtype == np.float64
    np.testing.assert_allclose(float(loss), case["value"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ge, np.asarray(case["grad_embeddings"]), rtol=0, atol=1e-6)
    np.testing.assert_allclose(gw, np.asarray(case["grad_class_vectors"]), rtol=0, atol=1e-6)
    assert np.abs(gw).max() > 1e-3  # a gradient that could be wrong
    assert 0.0 <= float(metrics["accuracy"]) <= 1.0


def test_the_oracle_covers_both_arcface_branches_and_pmls_defaults(oracle):
    """Some stored ArcFace case has own-class angles past pi - m (the cos - m sin m branch), counted
    independently here; pml's defaults (CosFace 0.35 / 64, ArcFace 28.6 degrees / 64) are among the cases."""
    ref, inputs = oracle
    x, w = np.asarray(inputs["embeddings"]), np.asarray(ref["class_vectors"])
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    theta = np.arccos(np.clip(cos[np.arange(len(x)), inputs["labels"]], -1, 1))
    past = {c["name"]: int(np.sum(theta > math.pi - _our_margin(c))) for c in ref["cases"] if c["loss"] == "arcface"}
    assert past == {c["name"]: c["rows_past_pi_minus_m"] for c in ref["cases"] if c["loss"] == "arcface"}
    assert 0 < max(past.values()) < len(x)
    settings = {(c["loss"], c["margin"], c["scale"]) for c in ref["cases"]}
    assert {("cosface", 0.35, 64.0), ("arcface", 28.6, 64.0)} <= settings


# --------------------------------------------------------------------------- behaviour


def _inputs(n=12, c=7, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.normal(size=(n, d)), jnp.float32), jnp.asarray(rng.integers(0, c, size=n)),
            jnp.asarray(rng.normal(size=(c, d)), jnp.float32))


def _numpy_normalised_softmax(x, labels, w, scale):
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    logits = scale * cos
    mx = logits.max(1, keepdims=True)
    lse = mx[:, 0] + np.log(np.exp(logits - mx).sum(1))
    return float(np.mean(lse - logits[np.arange(len(x)), np.asarray(labels)]))


@jit
def _margin_sweep(x, labels, w, margins):
    return {name: jax.vmap(lambda m, fn=fn: fn(x, labels, w, scale=8.0, margin=m)[0])(margins)
            for name, fn in MARGIN_FNS.items()}


def test_margin_zero_is_a_normalised_softmax_and_a_larger_margin_a_larger_loss():
    x, labels, w = _inputs()
    margins = jnp.asarray([0.0, 0.1, 0.3, 0.6, 1.0, 1.4], jnp.float32)  # radians for ArcFace: all < pi / 2
    got = jax.device_get(_margin_sweep(x, labels, w, margins))
    want = _numpy_normalised_softmax(x, labels, w, 8.0)
    for name, values in got.items():
        np.testing.assert_allclose(values[0], want, rtol=1e-5, err_msg=name)
        assert np.all(np.diff(values) > 0), (name, values)


def test_arcface_is_finite_at_angles_zero_and_pi_and_takes_the_decreasing_branch_there():
    w = jnp.eye(3, 4, dtype=jnp.float32)
    labels = jnp.array([0, 1, 2, 0])
    # Row 0 exactly on its class vector (theta = 0), row 1 exactly opposite (theta = pi), row 2 just short of
    # pi, row 3 a generic angle.
    x = jnp.stack([w[0], -w[1], -w[2] + jnp.asarray([1e-4, 0, 0, 0]), jnp.asarray([0.3, 0.5, -0.2, 0.1])])
    m, scale = 0.5, 4.0
    fn = jit(jax.value_and_grad(lambda a, b: L.arcface_loss(a, labels, b, scale=scale, margin=m)[0], argnums=(0, 1)))
    loss, (gx, gw) = fn(x, w)
    assert np.isfinite(float(loss)) and np.all(np.isfinite(gx)) and np.all(np.isfinite(gw))
    assert float(jnp.abs(gx).sum()) > 0
    # theta = pi lies past pi - m: its own-class logit is scale * (-1 - m sin m), the others scale * 0.
    row1, _ = L.arcface_loss(x[1:2], labels[1:2], w, scale=scale, margin=m)
    target = scale * (-1.0 - m * math.sin(m))
    want = math.log(math.exp(target) + 2.0) - target
    np.testing.assert_allclose(float(row1), want, atol=1e-6)
    # theta = 0: cos(0 + m).
    row0, _ = L.arcface_loss(x[0:1], labels[0:1], w, scale=scale, margin=m)
    target = scale * math.cos(m)
    np.testing.assert_allclose(float(row0), math.log(math.exp(target) + 2.0) - target, atol=1e-6)


def test_proxy_softmax_loss_is_cosface_bit_for_bit():
    """The proxy term (config.loss.proxy_weight) is cosface_loss with its metric renamed: same bits, same
    gradients, so the project's demo numbers do not move."""
    x, labels, w = _inputs(seed=3)
    for scale, margin in [(10.0, 0.1), (30.0, 0.2)]:
        def f(a, b, fn):
            return fn(a, labels, b, scale=scale, margin=margin)

        grad = functools.partial(jax.value_and_grad, argnums=(0, 1), has_aux=True)
        (lp, mp), gp = grad(functools.partial(f, fn=L.proxy_softmax_loss))(x, w)
        (lc, mc), gc = grad(functools.partial(f, fn=L.cosface_loss))(x, w)
        assert float(lp) == float(lc) and float(mp["proxy_accuracy"]) == float(mc["accuracy"])
        for a, b in zip(gp, gc):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# --------------------------------------------------------------------------- config


def test_old_configs_get_the_cosface_proxy_term_they_ran_with():
    flat = {"data": "omniglot", "data_dir": "x", "loss": "proto", "proxy_weight": 0.1}  # written before the groups
    nested = {"loss": {"name": "triplet", "proxy_weight": 0.5, "proxy_scale": 30.0}}  # written before proxy_loss
    for stored in (flat, nested):
        cfg = upgrade_config(stored)
        assert cfg.loss.proxy_loss == "cosface" and needs_class_vectors(cfg)
    assert default_config().loss.proxy_loss == "cosface" and not needs_class_vectors(default_config())


def _cfg(**loss):
    cfg = default_config()
    cfg.model.kwargs = {"width": 8}
    cfg.loss.update(loss)
    return cfg


@pytest.mark.parametrize("loss, message", [
    (dict(proxy_loss="sphereface"), r"config.loss.proxy_loss='sphereface'; choose one of \('cosface', 'arcface'\)"),
    (dict(name="arcface", proxy_scale=0.0), "proxy_scale must be > 0"),
    (dict(name="cosface", proxy_scale=float("inf")), "proxy_scale must be > 0"),
    (dict(name="arcface", proxy_margin=1.6), r"arcface's margin is an angle in radians in \[0, pi/2\)"),
    (dict(name="proto", proxy_weight=0.5, proxy_loss="arcface", proxy_margin=-0.1), "radians in"),
    (dict(name="arcface", proxy_margin=28.6), "radians in"),  # pml's degrees given by mistake
    (dict(name="cosface", proxy_margin=-0.2), r"cosface's margin is a cosine offset in \[0, 2\)"),
    (dict(name="arcface", proxy_weight=1.0), "proxy_weight=0"),
])
def test_margin_settings_are_refused_with_one_line(loss, message):
    with pytest.raises(ValueError, match=message) as e:
        train_lib.check_config(_cfg(**loss))
    assert "\n" not in str(e.value)


def test_margin_losses_need_class_vectors_and_not_two_images_per_class():
    assert needs_class_vectors(_cfg(name="arcface")) and needs_class_vectors(_cfg(name="cosface"))
    assert needs_class_vectors(_cfg(name="triplet", proxy_weight=0.1, proxy_loss="arcface"))
    assert not needs_class_vectors(_cfg(name="triplet"))
    cfg = _cfg(name="arcface", proxy_margin=0.5)
    cfg.data.images_per_class = 1  # a margin softmax needs no positive pair
    train_lib.check_config(cfg)
    cfg.data.images_per_class = 0
    with pytest.raises(ValueError, match="images_per_class=0: give K >= 1"):
        train_lib.check_config(cfg)
    train_lib.check_config(_cfg(name="triplet", proxy_loss="arcface"))  # proxy_loss unused while proxy_weight is 0


# --------------------------------------------------------------------------- training


def _fixed_batch_run(omniglot_dir, steps, **loss):
    """``steps`` training steps on one fixed P x K batch (8 training classes x 4 images, each step with fresh
    distortions): (first step's metrics, last step's metrics)."""
    cfg = small_config(omniglot_dir, loss=loss, optim=dict(train_steps=steps, warmup_steps=2, learning_rate=3e-3))
    cfg.model.kwargs = {"width": 32}
    train_lib.check_config(cfg)
    data = train_lib.load_data(cfg)[0]
    idx = np.concatenate([np.flatnonzero(data.labels == c)[:4] for c in range(8)])
    batch = {"images": data.images[idx], "labels": np.repeat(np.arange(8), 4).astype(np.int32)}
    spec = train_lib.preprocessing_from_config(cfg)
    twin = train_lib.twin_from_config(cfg)
    state = train_lib.create_state(twin, cfg, spec, num_classes=8)
    assert state.params["proxies"].shape[0] == 8
    step = jit(make_train_step(twin, cfg, spec))
    rows = []
    for _ in range(steps):
        state, m = step(state, batch)
        rows.append(jax.device_get(m))
    assert all(bool(r["finite"]) for r in rows)
    return rows[0], rows[-1]


def test_arcface_alone_learns_the_training_classes(omniglot_dir):
    first, last = _fixed_batch_run(omniglot_dir, 25, name="arcface", proxy_scale=16.0, proxy_margin=0.3)
    assert float(last["loss"]) < 0.5 * float(first["loss"]), (first["loss"], last["loss"])
    assert float(first["accuracy"]) < 0.5 < 0.9 <= float(last["accuracy"])


def test_arcface_proxy_term_learns_the_training_classes(omniglot_dir):
    first, last = _fixed_batch_run(omniglot_dir, 25, name="proto", proxy_weight=1.0, proxy_loss="arcface",
                                   proxy_scale=16.0, proxy_margin=0.3)
    assert float(last["proxy_loss"]) < 0.5 * float(first["proxy_loss"]), (first["proxy_loss"], last["proxy_loss"])
    assert float(first["proxy_accuracy"]) < 0.5 < 0.9 <= float(last["proxy_accuracy"])
    assert float(last["loss"]) > float(last["proxy_loss"])  # proto + 1.0 x the ArcFace term


def test_training_with_arcface_alone_keeps_its_class_vectors_out_of_the_model(omniglot_dir, tmp_path):
    cfg = small_config(omniglot_dir, loss=dict(name="arcface", proxy_scale=16.0, proxy_margin=0.3),
                       optim=dict(train_steps=6), eval=dict(eval_every=6), checkpoint_every=6)
    cfg.data.images_per_class = 1  # 32 classes of one image each: no positive pair needed
    train_lib.train(cfg, tmp_path, progress=False)
    rows = [r for r in read_metrics(tmp_path) if "loss" in r]
    assert len(rows) == 6 and all(np.isfinite(r["loss"]) and 0 <= r["accuracy"] <= 1 for r in rows)
    assert "proxy_loss" not in rows[-1]
    plain = small_config(omniglot_dir, loss=dict(name="triplet"))
    spec = train_lib.preprocessing_from_config(plain)
    fresh_plain = train_lib.state_variables(train_lib.create_state(train_lib.twin_from_config(plain), plain, spec))
    model = siamjax.load(tmp_path)
    assert jax.tree.structure(model.variables) == jax.tree.structure(fresh_plain)
    assert model.config.loss.name == "arcface" and model.config.loss.proxy_loss == "cosface"
