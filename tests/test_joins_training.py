"""Tests at the joins of the training step, each shown to catch a deliberately broken step.

- A few dozen contrastive steps make genuine pairs of held-out alphabets score higher than impostor
  pairs (ROC AUC), and the same run with the pair labels flipped (``same`` -> ``1 - same``) does not.
- One step stores the BatchNorm statistics that a separate, plain (non-vmapped) mutable apply of the
  encoder on the same inputs gives, and a step that keeps the old statistics is caught.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import omniglot as omniglot_config
import siamjax.train as train_lib
import siamjax.train.step as step_lib
from siamjax.data.preprocess import to_float
from siamjax.eval.verification import roc_auc
from siamjax.nn.twin import Siamese

jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0,
                                                   "xla_llvm_disable_expensive_passes": True})


def _pair_config(omniglot_dir):
    c = omniglot_config.get_config()
    c.data.dir = str(omniglot_dir)
    c.data.alphabets = ("Alphabet_of_the_Magi", "Anglo-Saxon_Futhorc", "Armenian")
    c.data.val_alphabets = ("Armenian",)
    c.data.image_size = 16
    c.data.batch_size = 32
    c.loss.name = "contrastive"
    c.loss.margin = 1.0
    c.model.head = "cosine"
    c.loss.margin = 0.5
    c.model.name = "conv4"
    c.model.kwargs.width = 32
    c.augment.enabled = False
    c.optim.learning_rate = 3e-3
    c.optim.warmup_steps = 5
    c.optim.train_steps = 40
    return c


def _held_out_pairs(val, n=400, seed=0):
    """n genuine and n impostor pairs of the validation split (indices into its images)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(val.labels)
    by_class = {k: np.flatnonzero(labels == k) for k in np.unique(labels)}
    classes = [k for k, v in by_class.items() if len(v) >= 2]
    left, right, same = [], [], []
    for _ in range(n):
        a, b = rng.choice(by_class[rng.choice(classes)], 2, replace=False)
        left.append(a), right.append(b), same.append(1)
        ka, kb = rng.choice(classes, 2, replace=False)
        left.append(rng.choice(by_class[ka])), right.append(rng.choice(by_class[kb])), same.append(0)
    return np.array(left), np.array(right), np.array(same)


def _train_and_score(cfg, train, val, spec, steps):
    """``steps`` jitted steps (one compilation) from a fresh state -> held-out ROC AUC, genuine vs impostor."""
    twin = train_lib.twin_from_config(cfg)
    state = train_lib.create_state(twin, cfg, spec)
    step = jit(train_lib.make_train_step(twin, cfg, spec))
    batch_fn = train_lib.make_batch_fn(cfg, train)
    losses = []
    for i in range(steps):
        state, m = step(state, batch_fn(i))
        losses.append(float(m["loss"]))
    assert np.all(np.isfinite(losses))
    left, right, same = _held_out_pairs(val)
    x = np.asarray(to_float(val.images, spec))
    sim = jit(twin.pair_scores)(train_lib.state_variables(state), x[left], x[right]).similarity
    return roc_auc(np.asarray(sim), same), losses


def test_contrastive_training_separates_held_out_pairs_and_flipped_labels_do_not(omniglot_dir, monkeypatch):
    cfg = _pair_config(omniglot_dir)
    train_lib.check_config(cfg)
    train, val, spec = train_lib.load_data(cfg)
    untrained, _ = _train_and_score(cfg, train, val, spec, 0)
    steps = 40
    auc, losses = _train_and_score(cfg, train, val, spec, steps)
    # Measured: untrained 0.68, trained 0.75 (the random conv-4 already ranks by ink overlap).
    assert auc > untrained + 0.04 and auc > 0.7, (auc, untrained, losses)

    # The mutant: a pair loss that is handed the flipped labels. Its loss still falls (it learns the
    # opposite), so only the held-out check tells it apart (measured AUC 0.64, below the untrained model).
    good = step_lib.PAIR_LOSSES["contrastive"]
    monkeypatch.setitem(step_lib.PAIR_LOSSES, "contrastive", lambda emb, same, v, ctx: good(emb, 1.0 - same, v, ctx))
    bad_auc, bad_losses = _train_and_score(cfg, train, val, spec, steps)
    assert np.mean(bad_losses[-5:]) < 0.8 * np.mean(bad_losses[:5]), bad_losses  # the loss alone would not catch it
    with pytest.raises(AssertionError):
        assert bad_auc > untrained + 0.04 and bad_auc > 0.7, (bad_auc, untrained)
    assert bad_auc < untrained, (bad_auc, untrained)


def _bn_config():
    c = omniglot_config.get_config()
    c.data.image_size = 16
    c.data.batch_size = 8
    c.loss.name = "contrastive"
    c.model.head = "euclidean"
    c.model.name = "conv4"
    c.model.kwargs.width = 8
    c.augment.enabled = False  # the step's inputs are then just to_float of the batch
    return c


def _expected_stats(cfg, spec, variables, batch):
    """(statistics a plain mutable apply of the encoder stores, the inputs of every BatchNorm) on the
    step's 2N inputs, BatchNorm over the whole concatenated batch (no vmap, no axis name: the twin axis's
    pmean of two equal halves gives the same mean and E[x^2])."""
    plain = train_lib.twin_from_config(cfg, bn_axis_name=None)
    x = jnp.concatenate([to_float(batch["left"], spec), to_float(batch["right"], spec)])
    _, upd = plain.module.apply(variables, x, train=True, method=Siamese.embed,
                                mutable=["batch_stats", "intermediates"],
                                capture_intermediates=lambda mdl, _: type(mdl).__name__ == "Conv")
    convs = {k: v["__call__"][0] for k, v in upd["intermediates"]["encoder"].items() if k.startswith("Conv_")}
    return upd["batch_stats"], convs


def _hand_blend(old, convs, momentum=0.9):
    """new = momentum * old + (1 - momentum) * the batch mean / (biased) variance of BatchNorm_i's input Conv_i."""
    out = {}
    for name, stats in old["encoder"].items():
        y = np.asarray(convs["Conv_" + name.split("_")[-1]], np.float64)
        batch = {"mean": y.mean((0, 1, 2)), "var": y.var((0, 1, 2))}
        out[name] = {k: momentum * np.asarray(stats[k]) + (1 - momentum) * batch[k] for k in ("mean", "var")}
    return {"encoder": out}


def _close(a, b):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-4, atol=1e-5), a, b)


def test_step_stores_the_momentum_blended_batch_norm_statistics(monkeypatch):
    cfg = _bn_config()
    train_lib.check_config(cfg)
    spec = train_lib.preprocessing_from_config(cfg)
    twin = train_lib.twin_from_config(cfg)
    state = train_lib.create_state(twin, cfg, spec)
    rng = np.random.default_rng(0)
    n, s = 8, spec.size
    batch = {"left": rng.integers(0, 256, (n, s, s, 1), dtype=np.uint8),
             "right": rng.integers(0, 256, (n, s, s, 1), dtype=np.uint8),
             "same": (np.arange(n) % 2).astype(np.float32)}
    old = state.batch_stats
    assert old is not None and jax.tree_util.tree_leaves(old)
    want, convs = jit(lambda v, b: _expected_stats(cfg, spec, v, b))(train_lib.state_variables(state), batch)
    assert set(want["encoder"]) == set(old["encoder"]) == {f"BatchNorm_{i}" for i in range(4)}
    _close(want, _hand_blend(old, convs))  # the plain apply's statistics are the momentum-0.9 blend, by hand

    def check(new):
        changed = [not np.allclose(a, b) for a, b in zip(jax.tree_util.tree_leaves(old), jax.tree_util.tree_leaves(new))]
        assert all(changed), changed
        _close(new, want)

    new_state, _ = jit(train_lib.make_train_step(twin, cfg, spec))(state, batch)
    check(new_state.batch_stats)

    # The mutant: a step that computes everything but keeps the old statistics.
    real = step_lib.gradient_step

    def keeps_old_stats(state, loss_fn, schedule, axis_name=None):
        new, metrics = real(state, loss_fn, schedule, axis_name)
        return new.replace(batch_stats=state.batch_stats), metrics

    monkeypatch.setattr(step_lib, "gradient_step", keeps_old_stats)
    stale, _ = jit(train_lib.make_train_step(twin, cfg, spec))(state, batch)
    with pytest.raises(AssertionError):
        check(stale.batch_stats)
