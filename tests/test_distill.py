"""Distillation from a teacher (``config.loss.distill_weight``): the relational loss against a NumPy loop, the
targets' dot products against the teacher's own similarities, the checks that a targets file belongs to
the run, and a short run that trains with it."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import siamjax
import siamjax.train as train_lib
from siamjax.cli import distill_targets as cli
from siamjax.infer.ensemble import Ensemble
from siamjax.losses import relational_distillation_loss
from siamjax.train.config import check_config
from siamjax.train.distill import read_targets, target_lookup, teacher_rows
from siamjax.train.metric_writer import read_metrics
from tests.test_train import small_config


def numpy_relational_kl(s, t, groups, temp, t_temp):
    s = s / np.linalg.norm(s, axis=1, keepdims=True)
    total, rows = 0.0, 0
    for i in range(len(s)):
        js = [j for j in range(len(s)) if j != i and groups[j] == groups[i]]
        if not js:
            continue
        a = np.array([s[i] @ s[j] for j in js]) / temp
        b = np.array([t[i] @ t[j] for j in js]) / t_temp
        q = np.exp(a - a.max()) / np.exp(a - a.max()).sum()
        p = np.exp(b - b.max()) / np.exp(b - b.max()).sum()
        total += np.sum(p * (np.log(p) - np.log(q)))
        rows += 1
    return total / rows


@pytest.mark.parametrize("temp,t_temp", [(0.1, 0.1), (0.1, 0.05), (0.5, 1.0)])
def test_relational_loss_matches_numpy_loop(temp, t_temp):
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(10, 6)), rng.normal(size=(10, 9))
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    groups = np.array([0, 0, 0, 1, 1, 2, 0, 1, 3, 0])  # group 2 and 3: one image each, left out
    loss, m = relational_distillation_loss(jnp.asarray(s, jnp.float32), jnp.asarray(t, jnp.float32),
                                           jnp.asarray(groups), temperature=temp, teacher_temperature=t_temp)
    np.testing.assert_allclose(float(loss), numpy_relational_kl(s, t, groups, temp, t_temp), rtol=1e-5)
    assert 0.0 <= float(m["distill_agreement"]) <= 1.0


def test_relational_loss_is_zero_for_a_copy_of_the_teacher_and_has_finite_gradients():
    rng = np.random.default_rng(1)
    t = rng.normal(size=(8, 5))
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    groups = jnp.array([0, 0, 0, 0, 1, 1, 1, 2])
    same, m = relational_distillation_loss(jnp.asarray(3.0 * t, jnp.float32), jnp.asarray(t, jnp.float32), groups)
    assert abs(float(same)) < 1e-6 and float(m["distill_agreement"]) == 1.0
    other = jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)
    loss_fn = lambda x: relational_distillation_loss(x, jnp.asarray(t, jnp.float32), groups)[0]  # noqa: E731
    assert float(loss_fn(other)) > 0.01
    g = jax.grad(loss_fn)(other)
    assert np.all(np.isfinite(g)) and float(jnp.abs(g[7]).sum()) == 0.0  # image 7 has no partner
    alone, _ = relational_distillation_loss(other, jnp.asarray(t, jnp.float32), jnp.arange(8))
    assert float(alone) == 0.0  # no pair anywhere: 0, not NaN


def test_target_lookup_maps_symmetry_copies_to_their_upright_row():
    targets = np.arange(6, dtype=np.float16).reshape(3, 2)
    out = target_lookup(targets)(np.array([0, 4, 8, 23]))
    np.testing.assert_array_equal(out["teacher"], targets[[0, 1, 2, 2]])
    np.testing.assert_array_equal(out["symmetry"], [0, 1, 2, 7])


@pytest.fixture(scope="module")
def teacher_dir(omniglot_dir, tmp_path_factory):
    """A conv-4 trained for 6 steps: the teacher of these tests."""
    workdir = tmp_path_factory.mktemp("teacher")
    cfg = small_config(omniglot_dir, loss=dict(name="proto"), optim=dict(train_steps=6), eval=dict(eval_every=6),
                       checkpoint_every=6)
    train_lib.train(cfg, workdir, progress=False)
    return workdir


def test_targets_dot_products_are_the_teachers_similarities(teacher_dir, omniglot_dir):
    x = np.random.default_rng(2).integers(0, 256, size=(7, 28, 28, 1), dtype=np.uint8)
    one = siamjax.load(teacher_dir)
    pair = Ensemble([one, one.reinitialised(3)])
    for model in (one, pair):
        rows = teacher_rows(model, x, chunk=3)
        e = model.embed_preprocessed(x)
        np.testing.assert_allclose(rows @ rows.T, model.pairwise(e, e), atol=2e-5)


def test_a_run_trains_towards_its_targets_and_refuses_foreign_ones(teacher_dir, omniglot_dir, tmp_path):
    student = small_config(omniglot_dir, loss=dict(name="proto"), optim=dict(train_steps=4), eval=dict(eval_every=4),
                           checkpoint_every=4)
    student.data.rotate_classes = True  # 4 x the images: every turned copy reads its upright row
    targets = tmp_path / "targets.npz"
    assert cli.main([str(tmp_path / "nothing"), str(targets), "--config", "omniglot", "--noprogress"]) == 2
    assert not targets.exists()
    n = cli.make_targets(str(teacher_dir), student, str(targets), progress=False)
    train, _, _ = train_lib.load_data(student)
    assert len(train) == 4 * n and read_targets(targets, train).shape[0] == n
    student.loss.distill_weight = 1.0
    student.loss.distill_targets = str(targets)
    check_config(student)
    train_lib.train(student, tmp_path / "run", progress=False)
    rows = [r for r in read_metrics(tmp_path / "run") if "distill_loss" in r]
    assert len(rows) == 4 and all(np.isfinite(r["distill_loss"]) and r["distill_loss"] >= 0 for r in rows)
    assert all(r["loss"] > r["distill_loss"] for r in rows)  # proto + 1.0 x distillation

    other = small_config(omniglot_dir, loss=dict(name="proto"))
    other.data.alphabets = other.data.alphabets[1:]  # other training classes
    other_train, _, _ = train_lib.load_data(other)
    with pytest.raises(ValueError, match="other training classes|training images|trains on"):
        read_targets(targets, other_train)


def test_distillation_settings_that_cannot_work_are_refused(omniglot_dir, tmp_path):
    def cfg(**loss):
        c = small_config(omniglot_dir, loss=dict(name="proto", distill_weight=1.0, **loss))
        return c

    with pytest.raises(ValueError, match="distill_targets=FILE"):
        check_config(cfg())
    with pytest.raises(ValueError, match="no such file"):
        check_config(cfg(distill_targets=str(tmp_path / "missing.npz")))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="must be > 0"):
        check_config(cfg(distill_targets=str(junk), distill_teacher_temperature=0.0))
    bad = small_config(omniglot_dir, loss=dict(name="contrastive", distill_weight=1.0, distill_targets=str(junk)),
                       model=dict(head="euclidean"))
    with pytest.raises(ValueError, match="P x K"):
        check_config(bad)
    with pytest.raises(ValueError, match="no targets file"):
        read_targets(junk, train_lib.load_data(small_config(omniglot_dir))[0])


def test_export_stores_the_served_step_at_half_size(teacher_dir, tmp_path, capsys):
    from siamjax.cli import export

    out = tmp_path / "served"
    assert export.main([str(teacher_dir), str(out), "--weights_dtype", "float16"]) == 0
    a, b = siamjax.load(teacher_dir), siamjax.load(out)
    def size(folder):
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

    assert size(out / "variables") < 0.7 * size(a.path / "variables")  # float16 weights
    x = np.random.default_rng(4).integers(0, 256, size=(3, 28, 28, 1), dtype=np.uint8)
    ea, eb = a.embed_preprocessed(x), b.embed_preprocessed(x)
    assert np.abs(ea - eb).max() <= 1e-2 * np.abs(ea).max()
    assert export.main([str(teacher_dir), str(out)]) == 2 and "exists" in capsys.readouterr().err
