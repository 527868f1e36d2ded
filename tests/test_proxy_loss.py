"""The class-proxy loss (CosFace over learned class vectors, ``config.loss.proxy_weight``): its value against a
NumPy loop, its gradients, and its place in training: the proxies are optimised and checkpointed with
the optimizer state, resume restores them, and they never enter the model that ``siamjax.load`` reads."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import siamjax
from siamjax import checkpoint as ckpt_lib
from siamjax.train import parallel
import siamjax.train as train_lib
from siamjax.losses import proxy_softmax_loss
from siamjax.train.metric_writer import read_metrics
from tests.test_train import small_config


def numpy_cosface(x, labels, w, scale, margin):
    total = 0.0
    for xi, yi in zip(x, labels):
        cos = np.array([xi @ wc / (np.linalg.norm(xi) * np.linalg.norm(wc)) for wc in w])
        logits = scale * (cos - margin * (np.arange(len(w)) == yi))
        m = logits.max()
        total += m + np.log(np.exp(logits - m).sum()) - logits[yi]
    return total / len(x)


@pytest.mark.parametrize("scale,margin", [(10.0, 0.1), (30.0, 0.35), (1.0, 0.0)])
def test_proxy_loss_matches_numpy_loop(scale, margin):
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(12, 6)), rng.normal(size=(7, 6))
    labels = rng.integers(0, 7, size=12)
    loss, m = proxy_softmax_loss(jnp.asarray(x, jnp.float32), jnp.asarray(labels), jnp.asarray(w, jnp.float32),
                                 scale=scale, margin=margin)
    np.testing.assert_allclose(float(loss), numpy_cosface(x, labels, w, scale, margin), rtol=1e-5)
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    assert float(m["proxy_accuracy"]) == pytest.approx(np.mean(cos.argmax(1) == labels))


def test_proxy_loss_rewards_aligned_proxies_and_has_finite_gradients():
    w = jnp.eye(4, 8)  # four orthogonal class vectors
    labels = jnp.array([0, 1, 2, 3])
    aligned, m = proxy_softmax_loss(3.0 * w, labels, w, scale=30.0, margin=0.1)
    wrong, _ = proxy_softmax_loss(3.0 * w, labels[::-1], w, scale=30.0, margin=0.1)
    assert float(aligned) < 1e-6 < 20.0 < float(wrong) and float(m["proxy_accuracy"]) == 1.0
    no_margin, _ = proxy_softmax_loss(3.0 * w, labels, w, scale=5.0, margin=0.0)
    with_margin, _ = proxy_softmax_loss(3.0 * w, labels, w, scale=5.0, margin=0.3)
    assert float(with_margin) > float(no_margin)
    g_x, g_w = jax.grad(lambda a, b: proxy_softmax_loss(a, labels[::-1], b)[0], argnums=(0, 1))(3.0 * w, w)
    assert np.all(np.isfinite(g_x)) and np.all(np.isfinite(g_w)) and float(jnp.abs(g_w).sum()) > 0


def test_training_with_proxies_checkpoints_them_outside_the_model(omniglot_dir, tmp_path):
    cfg = small_config(omniglot_dir, loss=dict(name="proto", proxy_weight=1.0, proxy_scale=16.0), optim=dict(train_steps=10, learning_rate=3e-3), eval=dict(eval_every=5), checkpoint_every=5)
    train_lib.train(cfg, tmp_path, progress=False)
    rows = [r for r in read_metrics(tmp_path) if "proxy_loss" in r]
    assert len(rows) == 10 and all(np.isfinite(r["proxy_loss"]) and 0 <= r["proxy_accuracy"] <= 1 for r in rows)
    assert rows[-1]["loss"] > rows[-1]["proxy_loss"]  # proto + 1.0 x proxy

    # The model siamjax.load reads has the plain encoder's variables; the proxies live with the optimizer.
    plain = small_config(omniglot_dir, loss=dict(name="proto"))
    spec = train_lib.preprocessing_from_config(plain)
    fresh_plain = train_lib.state_variables(train_lib.create_state(train_lib.twin_from_config(plain), plain, spec))
    model = siamjax.load(tmp_path)
    assert jax.tree.structure(model.variables) == jax.tree.structure(fresh_plain)

    # What resume restores: the trained proxies of step 10, not the fresh ones of a new state.
    twin = train_lib.twin_from_config(cfg)
    num_classes = train_lib.load_data(cfg)[0].num_classes
    fresh = train_lib.create_state(twin, cfg, spec, num_classes=num_classes)
    assert fresh.params["proxies"].shape == (num_classes, model.embed(np.zeros((1, 28, 28), np.uint8)).shape[1])
    assert "proxies" not in train_lib.state_variables(fresh)["params"] and "proxies" in train_lib.train_items(fresh)
    runner = parallel.make_runner(lambda s, b: (s, {}), "pmap", parallel.select_devices(1))
    restored, step, io = train_lib.restore_latest(ckpt_lib.CheckpointIO(tmp_path), cfg, fresh, tmp_path, runner)
    io.close()
    assert step == 10 and int(restored.step) == 10
    trained = np.asarray(restored.params["proxies"])
    assert trained.shape == fresh.params["proxies"].shape
    assert not np.allclose(trained, np.asarray(fresh.params["proxies"]))  # moved by 10 steps of training

    cfg.optim.train_steps = 12
    train_lib.train(cfg, tmp_path, progress=False)
    assert [r["step"] for r in read_metrics(tmp_path) if "proxy_loss" in r][10:] == [11, 12]


def test_proxy_settings_are_checked(omniglot_dir, tmp_path):
    with pytest.raises(ValueError, match="proxy_weight=-1.0 must be >= 0"):
        train_lib.train(small_config(omniglot_dir, loss=dict(name="proto", proxy_weight=-1.0)), tmp_path)
    with pytest.raises(ValueError, match="no class labels per image"):
        train_lib.train(small_config(omniglot_dir, loss=dict(name="contrastive", proxy_weight=1.0), model=dict(head="euclidean")), tmp_path)
    with pytest.raises(ValueError, match="proxy_scale must be > 0"):
        train_lib.train(small_config(omniglot_dir, loss=dict(name="proto", proxy_weight=1.0, proxy_scale=0.0)), tmp_path)
    with pytest.raises(ValueError, match="proxy_lr_multiplier=0.0 must be > 0"):
        train_lib.train(small_config(omniglot_dir, loss=dict(name="proto", proxy_weight=1.0), optim=dict(proxy_lr_multiplier=0.0)), tmp_path)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_proxy_lr_multiplier_scales_only_the_proxies_updates(optimizer):
    """make_optimizer: with proxy_lr_multiplier = m the proxies' update is m x what one optimizer for all
    parameters gives them; the encoder's is unchanged. Same gradients, a few steps."""
    base = ml_collections.ConfigDict(dict(name=optimizer, learning_rate=1e-2, weight_decay=0.1, warmup_steps=2,
                                          train_steps=10, proxy_lr_multiplier=1.0))  # a config's optim group
    scaled = ml_collections.ConfigDict({**base.to_dict(), "proxy_lr_multiplier": 4.0})
    rng = np.random.default_rng(0)
    params = {"Encoder_0": {"kernel": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)},
              "proxies": jnp.asarray(rng.normal(size=(5, 2)), jnp.float32)}
    grads = [jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params) for _ in range(3)]

    def updates(cfg):
        tx, _ = train_lib.make_optimizer(cfg)
        state, out = tx.init(params), []
        for g in grads:
            u, state = tx.update(g, state, params)
            out.append(u)
        return out

    one, scaled_updates = updates(base), updates(scaled)
    for u1, um in zip(one, scaled_updates):
        np.testing.assert_allclose(um["Encoder_0"]["kernel"], u1["Encoder_0"]["kernel"], rtol=1e-6)
        np.testing.assert_allclose(um["proxies"], 4.0 * u1["proxies"], rtol=1e-5, atol=1e-7)
    assert float(jnp.abs(one[-1]["proxies"]).min()) > 0  # step 0 of the warm-up moves nothing; later ones do
