"""Unsupervised Siamese training (SimSiam, SimCLR): batches without labels, the collapse monitor, the
k-NN evaluation, and training end to end on a slice of the real Omniglot zip."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import siamjax
from configs import omniglot_simclr, omniglot_simsiam
import siamjax.train as train_lib
from siamjax.train.collapse import CollapseMonitor
from siamjax.data.samplers import UnlabeledSampler
from siamjax.eval.episodes import knn_accuracy
from siamjax.train.metric_writer import read_metrics

ALPHABETS = ("Alphabet_of_the_Magi", "Anglo-Saxon_Futhorc", "Armenian")


def ssl_config(omniglot_dir, method="simsiam", **overrides):
    c = (omniglot_simsiam if method == "simsiam" else omniglot_simclr).get_config()
    c.data.dir = str(omniglot_dir)
    c.data.alphabets = ALPHABETS
    c.data.val_alphabets = ("Armenian",)
    c.eval.val_ways = 5
    c.eval.val_episodes = 5
    c.data.image_size = 16
    c.data.batch_size = 16
    c.model.projection.update(hidden=32, dim=16, predictor_hidden=8)
    c.optim.train_steps = 6
    c.optim.warmup_steps = 1
    c.log_every = 2
    c.eval.eval_every = 6
    c.checkpoint_every = 6
    c.update(overrides)
    return c


# ----------------------------------------------------------------------------------- pure parts
def test_unlabeled_sampler_is_a_function_of_seed_and_step():
    s = UnlabeledSampler(100, 32, seed=3)
    a, b = s(7), s(7)
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) == 32 and a.min() >= 0 and a.max() < 100
    assert not np.array_equal(s(7), s(8)) and not np.array_equal(s(7), UnlabeledSampler(100, 32, seed=4)(7))
    big = UnlabeledSampler(5, 12, seed=0)(0)  # more rows than images: every image, then repeats
    assert len(big) == 12 and set(big[:5].tolist()) == set(range(5))
    with pytest.raises(ValueError, match="num_images"):
        UnlabeledSampler(0, 4, 0)


def test_collapse_monitor_warns_on_collapse_and_not_on_spread_outputs():
    m = CollapseMonitor(dim=64, threshold=0.1, repeat=10)
    assert m.update(1, 1 / 8) is None and m.update(2, 0.5 / 8) is None  # ratios 1.0, 0.5
    first = m.update(3, 1e-4)
    assert first and "COLLAPSE at step 3" in first and "stop-gradient" in first
    assert m.update(4, 1e-4) is None  # not again within `repeat` steps...
    assert m.update(13, 1e-4) is not None  # ...but again after them
    assert m.update(14, float("nan")) is None and m.collapsed_steps == 4  # nan counts, warned lately
    with pytest.raises(ValueError, match="collapse_ratio"):
        CollapseMonitor(dim=8, threshold=1.5)


def test_knn_accuracy_matches_hand_counted_votes():
    # 1-D points, similarity = -|a - b|. Leave-one-out 1-NN: all right. 3-NN: only the point at 5 is
    # right (its 3 nearest are 1.1, 1.0 (class 1) and 0.1); the two class-0 points see two class-1 points
    # among their 3; points 1.0 and 1.1 see 0.1 and 0.0 (class 0) beside each other.
    e = np.array([[0.0], [0.1], [1.0], [1.1], [5.0]], np.float32)
    labels = np.array([0, 0, 1, 1, 1])
    pairwise = lambda a, b: -jnp.abs(a - b.T)  # noqa: E731
    r = knn_accuracy(pairwise, e, labels, ks=(1, 3), block=2)
    assert r[1]["accuracy"] == 1.0 and r[3]["accuracy"] == pytest.approx(0.2) and r[3]["questions"] == 5
    # A 2-2 tie goes to the class of the nearest neighbour: point 0's 4 neighbours are 0.1 (0), 1.0, 1.1 (1)...
    tie = knn_accuracy(pairwise, e[:4], labels[:4], ks=(2,))  # 2-NN: one vote each, the nearest wins
    assert tie[2]["accuracy"] == 1.0
    with pytest.raises(ValueError, match="k-NN needs"):
        knn_accuracy(pairwise, e, labels, ks=(5,))


def test_ssl_configs_are_checked_before_work(omniglot_dir, tmp_path):
    with pytest.raises(ValueError, match="rotate_classes"):
        train_lib.train(ssl_config(omniglot_dir, data=dict(rotate_classes=True)), tmp_path)
    with pytest.raises(ValueError, match="mirror_classes"):
        train_lib.train(ssl_config(omniglot_dir, data=dict(mirror_classes=True)), tmp_path)
    with pytest.raises(ValueError, match="head=cosine"):
        train_lib.train(ssl_config(omniglot_dir, model=dict(head="koch")), tmp_path)
    cfg = ssl_config(omniglot_dir)
    cfg.augment.views.crop_scale_mni = 0.3
    with pytest.raises(ValueError, match="crop_scale_mni"):
        train_lib.train(cfg, tmp_path)
    cfg = ssl_config(omniglot_dir)
    cfg.model.projection.layers = 1
    with pytest.raises(ValueError, match="layers"):
        train_lib.train(cfg, tmp_path)


# ------------------------------------------------------------------------------------ training
def test_simsiam_trains_logs_every_step_loads_and_never_reads_labels(omniglot_dir, tmp_path, monkeypatch):
    """A short SimSiam run logs the collapse diagnostic at every step and loads with siamjax.load; the
    same run with the training split's labels and groups scrambled ends with identical weights."""
    cfg = ssl_config(omniglot_dir)
    result = train_lib.train(cfg, tmp_path / "real", progress=False)
    records = read_metrics(tmp_path / "real")
    per_step = [r for r in records if "output_std" in r]
    assert [r["step"] for r in per_step] == list(range(1, 7))  # the collapse diagnostic at every step
    assert all(0 < r["output_std_ratio"] <= 1.5 for r in per_step)
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 3 and all(-1.0 <= v <= 1.0 for v in losses)
    assert result["collapsed_steps"] == 0 and 0.0 <= result["val_accuracy"] <= 1.0
    model = siamjax.load(tmp_path / "real")
    assert set(model.variables["params"]) == {"encoder", "head", "projector", "predictor"}
    assert model.meta["model"]["projection"]["method"] == "simsiam"
    emb = model.embed(np.zeros((3, 105, 105), np.uint8))
    assert emb.shape == (3, 64) and np.all(np.isfinite(emb))  # conv-4 at 16 px: 1 x 1 x 64
    fresh = model.reinitialised(seed=0)  # eval.py --random_init: same architecture, untrained weights
    jax.tree.map(np.testing.assert_array_equal, fresh.variables, model.twin.init(jax.random.key(0), (16, 16, 1)))
    noise = (np.random.default_rng(0).random((2, 105, 105)) * 255).astype(np.uint8)
    assert not np.allclose(fresh.embed(noise), model.embed(noise), atol=1e-3)

    real_load = train_lib.load_data

    def scrambled(c):
        train, val, spec = real_load(c)
        rng = np.random.default_rng(0)
        return dataclasses.replace(train, labels=rng.permutation(train.labels),
                                   groups=np.zeros_like(train.groups)), val, spec

    monkeypatch.setattr(train_lib, "load_data", scrambled)
    train_lib.train(cfg, tmp_path / "scrambled", progress=False)
    jax.tree.map(np.testing.assert_array_equal, model.variables, siamjax.load(tmp_path / "scrambled").variables)


def test_removing_simsiams_stop_gradient_collapses_and_warns(omniglot_dir, tmp_path, capsys):
    # Measured at these settings: with the stop-gradient std * sqrt(P) stays at 0.90-0.98 for 60 steps (loss
    # about -0.25); without it, it falls below 0.25 by step ~40 while the loss heads for -1.
    cfg = ssl_config(omniglot_dir, loss=dict(stop_gradient=False), optim=dict(name="adam", learning_rate=0.05, train_steps=60), eval=dict(eval_every=60), log_every=20, checkpoint_every=60)
    result = train_lib.train(cfg, tmp_path, progress=False)
    out = capsys.readouterr().out
    assert "WARNING: COLLAPSE at step" in out, out
    assert result["collapsed_steps"] > 0
    assert result["loss"] < -0.9  # towards the trivial solution: every prediction equals every target
