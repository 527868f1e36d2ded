"""Within-class whitening (siamjax/whitening.py): the map is (Sw + shrinkage * mean eigenvalue)^(-1/2)
around the training mean, its low-rank form is exact on the kept directions, it helps where classes
vary along a nuisance direction, it round-trips through its file, siamjax.load applies it (members of
an ensemble too) and the CLI fits it on a model's training split."""
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import siamjax
from siamjax import checkpoint as ckpt_lib
from siamjax.infer import block_pooling
from siamjax.cli import ensemble as ensemble_cli
from siamjax.infer import build_ensemble, ensemble
from siamjax.cli import whitening as whitening_cli
from siamjax.infer import whitening
from siamjax.nn.twin import make_twin
from siamjax.train import preprocessing_from_config
from tests.test_gallery import write_checkpoint


def nuisance_data(seed=0, classes=40, per_class=10, dim=16, spread=3.0):
    """Class centres on the unit sphere plus noise that is large along 3 fixed directions and small elsewhere."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(classes), per_class)
    noise = rng.normal(scale=0.05, size=(len(labels), dim))
    noise[:, :3] += rng.normal(scale=spread * 0.1, size=(len(labels), 3))
    return centres[labels] + noise, labels


def nearest_centre_accuracy(test_x, test_y, transform):
    """1-shot accuracy: each test image against one other image per class (all cosine)."""
    x = transform(test_x)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    support = np.array([np.flatnonzero(test_y == c)[0] for c in np.unique(test_y)])
    queries = np.setdiff1d(np.arange(len(test_y)), support)
    pred = np.unique(test_y)[(x[queries] @ x[support].T).argmax(1)]
    return float((pred == test_y[queries]).mean())


def test_full_rank_map_is_the_shrunk_inverse_square_root():
    x, y = nuisance_data()
    w = whitening.fit(x, y, shrinkage=0.5, rank=None)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    sw = whitening.within_class_covariance(u, y)
    vals, vecs = np.linalg.eigh(sw + 0.5 * np.trace(sw) / len(sw) * np.eye(len(sw)))
    want = (u - u.mean(0)) @ (vecs / np.sqrt(vals)) @ vecs.T
    np.testing.assert_allclose(w.apply(x), want, rtol=1e-4, atol=1e-4)
    # the within-class covariance of the whitened training data is (nearly) isotropic where it was not
    before = np.linalg.eigvalsh(sw)
    after = np.linalg.eigvalsh(whitening.within_class_covariance(whitening.fit(x, y, 0.01, None).apply(x), y))
    assert before.max() / before.min() > 20 and after.max() / after.min() < 1.5


def test_low_rank_map_is_exact_on_the_kept_directions_and_uniform_elsewhere():
    x, y = nuisance_data(1)
    full, low = whitening.fit(x, y, 3.0, rank=None), whitening.fit(x, y, 3.0, rank=4)
    assert low.basis.shape == (16, 4) and full.basis.shape == (16, 16) and full.rest == 0.0
    u = x / np.linalg.norm(x, axis=1, keepdims=True) - low.mean
    top = low.basis  # the 4 largest eigen-directions: both maps scale them alike
    np.testing.assert_allclose(low.apply(x) @ top, full.apply(x) @ top, rtol=1e-4, atol=1e-5)
    rest = u - (u @ top) @ top.T  # what is left is scaled by one number
    np.testing.assert_allclose(low.apply(x) - (low.apply(x) @ top) @ top.T, low.rest * rest, rtol=1e-4, atol=1e-5)


def test_whitening_helps_when_classes_vary_along_a_nuisance_direction():
    x, y = nuisance_data(2, spread=5.0)
    tx, ty = nuisance_data(3, spread=5.0)  # new classes, the same nuisance directions
    w = whitening.fit(x, y, 0.1, rank=None)
    plain = nearest_centre_accuracy(tx, ty, lambda e: e)
    white = nearest_centre_accuracy(tx, ty, w.apply)
    assert plain < 0.75 and white > 0.95, (plain, white)


def test_file_round_trip_and_clear_errors(tmp_path):
    x, y = nuisance_data()
    w = whitening.fit(x, y, 3.0, rank=8)
    w.save(tmp_path / "w.npz")
    back = whitening.read(tmp_path / "w.npz")
    np.testing.assert_allclose(back.apply(x), w.apply(x), rtol=1e-3, atol=1e-3)  # basis stored as float16
    assert back.shrinkage == 3.0 and back.basis.shape == (16, 8)
    raw = (tmp_path / "w.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="not a readable whitening file"):
        whitening.read(tmp_path / "cut.npz")
    with pytest.raises(ValueError, match=r"expects embeddings \[N, 16\]"):
        w.apply(np.ones((2, 8)))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="shrinkage must be > 0"):
            whitening.fit(x, y, bad)
    # A model's fit refuses before it reads or embeds anything (the folder does not even exist).
    with pytest.raises(ValueError, match="shrinkage must be > 0"):
        whitening_cli.fit_model(tmp_path / "no_such_model", shrinkage=0.0)
    with pytest.raises(ValueError, match="more images than classes"):
        whitening.fit(x[:5], np.arange(5))


def test_load_applies_the_file_to_a_model_and_to_ensemble_members(tmp_path):
    ckpt = write_checkpoint(tmp_path / "m")
    plain = siamjax.load(ckpt)
    imgs = np.random.default_rng(0).integers(0, 256, (30, 28, 28), dtype=np.uint8)
    w = whitening.fit(plain.embed(imgs), np.repeat(np.arange(10), 3), 1.0, rank=4)
    w.save(plain.path / whitening.FILENAME)
    model = siamjax.load(ckpt)
    np.testing.assert_allclose(model.embed(imgs[:5]), whitening.read(plain.path / whitening.FILENAME).apply(plain.embed(imgs[:5])),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(siamjax.load(ckpt, whitening=False).embed(imgs[:5]), plain.embed(imgs[:5]))
    assert model.reinitialised().whitening is None
    ens = siamjax.load(build_ensemble.write_ensemble(tmp_path / "ens", [ckpt, write_checkpoint(tmp_path / "m2", seed=1)]))
    assert ens.members[0].whitening is not None and ens.members[1].whitening is None
    np.testing.assert_allclose(ens.embed(imgs[:5])[:, :8], model.embed(imgs[:5]), rtol=1e-5, atol=1e-6)


def test_cli_fits_on_the_training_split_of_the_stored_config(tmp_path, omniglot_dir):
    from configs import omniglot

    cfg = omniglot.get_config()
    cfg.data.alphabets = ("Latin", "Greek")
    cfg.data.val_alphabets = ("Greek",)
    cfg.data.image_size = 28
    cfg.data.dir = "/nonexistent"  # the CLI's --data_dir overrides it
    spec = preprocessing_from_config(cfg)
    model = {"model": "conv4", "model_kwargs": {"width": 8}, "head": "cosine"}
    variables = make_twin(model["model"], model["head"], model["model_kwargs"]).init(jax.random.key(0), (28, 28, 1))
    io_ = ckpt_lib.CheckpointIO(tmp_path / "run")
    io_.save(1, variables, {"step": jnp.int32(1)}, {"config": cfg.to_dict(), "preprocessing": spec.to_dict(),
                                                      "model": model, "step": 1}, metrics={"val_accuracy": 0.5})
    io_.wait()
    io_.close()
    step = ckpt_lib.resolve_checkpoint(tmp_path / "run")
    block_pooling.BlockPooling().save(step / block_pooling.FILENAME)  # the map is of the last block alone
    assert whitening_cli.main([str(tmp_path / "run"), "--data_dir", str(omniglot_dir), "--rank", "4"]) == 0
    w = whitening.read(step / whitening.FILENAME)
    assert w.dim == 8 and w.basis.shape == (8, 4) and w.shrinkage == 3.0
    # fitted on Latin alone (26 characters x 20 drawers), not on the held-out Greek
    from siamjax.data import load_omniglot

    latin = load_omniglot(omniglot_dir, "background", spec, alphabets=["Latin"])
    want = whitening.fit(siamjax.load(step, whitening=False, block_pooling=False).embed_preprocessed(latin.images),
                         latin.labels, 3.0, 4)
    np.testing.assert_allclose(w.mean, want.mean, rtol=1e-4, atol=1e-5)
    assert siamjax.load(tmp_path / "run").whitening is not None and siamjax.load(tmp_path / "run").embed_dim == 8 + 8
    assert whitening_cli.main([str(tmp_path / "missing")]) == 2
    # a head that compares distances is refused
    model["head"] = "euclidean"
    io2 = ckpt_lib.CheckpointIO(tmp_path / "euc")
    v2 = make_twin("conv4", "euclidean", {"width": 8}).init(jax.random.key(0), (28, 28, 1))
    io2.save(1, v2, {"step": jnp.int32(1)}, {"config": cfg.to_dict(), "preprocessing": spec.to_dict(), "model": model,
                                             "step": 1}, metrics={"val_accuracy": 0.5})
    io2.wait()
    io2.close()
    assert whitening_cli.main([str(tmp_path / "euc"), "--data_dir", str(omniglot_dir)]) == 2
