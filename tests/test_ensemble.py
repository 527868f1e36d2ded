"""Ensembles (siamjax/ensemble.py): an ensemble folder loads with siamjax.load and scores every pair by
the mean of its members' similarities; bad manifests and mismatched members are refused clearly."""
import json
import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

import siamjax
from siamjax.cli import ensemble as ensemble_cli
from siamjax.infer import build_ensemble, ensemble
from siamjax.eval import episodes as evaluate
import siamjax.train as train_lib
from siamjax.data.preprocess import Preprocessing, preprocess_batch
from siamjax.eval.gallery import model_fingerprint
from tests.test_gallery import write_checkpoint

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    return [write_checkpoint(tmp_path_factory.mktemp(f"m{seed}"), seed=seed) for seed in (0, 1)]


@pytest.fixture(scope="module")
def folder(members, tmp_path_factory):
    return build_ensemble.write_ensemble(tmp_path_factory.mktemp("ens") / "two", members, names=["seed0", "seed1"])


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def test_similarity_is_the_mean_of_the_members(members, folder):
    ens = siamjax.load(folder)
    singles = [siamjax.load(m) for m in members]
    assert isinstance(ens, ensemble.Ensemble) and len(ens.members) == 2
    a, b = images(6, 0), images(5, 1)
    ea, eb = ens.embed(a), ens.embed(b)
    assert ea.shape == (6, 16)  # two 8-d members side by side
    np.testing.assert_allclose(ea[:, :8], singles[0].embed(a), rtol=1e-6)
    want = np.mean([m.pairwise(m.embed(a), m.embed(b)) for m in singles], axis=0)
    np.testing.assert_allclose(ens.pairwise(ea, eb), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ens.pairwise_jax(jnp.asarray(ea), jnp.asarray(eb))), want, rtol=1e-5, atol=1e-6)
    pairs = np.mean([m.score(a[:5], b) for m in singles], axis=0)
    np.testing.assert_allclose(ens.score(a[:5], b), pairs, rtol=1e-5, atol=1e-6)
    # the members differ, so the mean is not either member's similarity
    assert not np.allclose(want, singles[0].pairwise(singles[0].embed(a), singles[0].embed(b)), atol=1e-3)
    assert model_fingerprint(ens) != model_fingerprint(ensemble.Ensemble(singles[::-1]))
    assert ens.meta["ensemble"] == 2 and ens.meta["step"] == [1, 1] and ens.preprocessing.size == 28


def test_one_member_ensemble_equals_the_member_and_episodes_run(members, tmp_path):
    ens = siamjax.load(build_ensemble.write_ensemble(tmp_path / "one", members[:1]))
    single = siamjax.load(members[0])
    x = images(12, 2)
    np.testing.assert_allclose(ens.pairwise(ens.embed(x), ens.embed(x)), single.pairwise(single.embed(x), single.embed(x)),
                               rtol=1e-6)
    labels = np.repeat(np.arange(4), 3)
    eps = evaluate.make_episodes(labels, np.zeros(12, np.int64), np.tile(np.arange(3), 4), ways=4, shots=1,
                                 episodes=3, protocol="across")
    got = evaluate.one_shot_accuracy(ens.pairwise_jax, jnp.asarray(ens.embed(x)), eps)
    want = evaluate.one_shot_accuracy(single.pairwise_jax, jnp.asarray(single.embed(x)), eps)
    assert got == want


def test_tta_and_reinitialised_reach_every_member(folder):
    ens = siamjax.load(folder, tta_shift=2)
    assert ens.tta_shift == 2 and all(m.tta_shift == 2 for m in ens.members)
    fresh = ens.reinitialised(5)
    x = images(3, 3)
    assert not np.allclose(fresh.embed(x), ens.embed(x))


def test_cli_builds_a_folder_and_refuses_to_overwrite(members, tmp_path, capsys):
    out = tmp_path / "cli"
    assert ensemble_cli.main([str(out), str(members[0]), str(members[1])]) == 0
    manifest = json.loads((out / ensemble.MANIFEST).read_text())
    assert manifest["members"] == ["member0", "member1"] and manifest["sources"][0]["step"] == "1"
    assert len(siamjax.load(out).members) == 2
    assert ensemble_cli.main([str(out), str(members[0])]) == 2
    assert "exists" in capsys.readouterr().err
    assert ensemble_cli.main([str(tmp_path / "esc"), str(members[0]), "--names", "../escaped"]) == 2
    assert "plain folder name" in capsys.readouterr().err
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "esc").exists()


@pytest.mark.parametrize("manifest, error, match", [
    ({"members": ["../outside"]}, ValueError, "outside the ensemble folder"),
    ({"members": ["/etc"]}, ValueError, "outside the ensemble folder"),
    ({"members": ["."]}, ValueError, "outside the ensemble folder"),
    ({"members": []}, ValueError, "at least one member"),
    ({"members": "seed0"}, ValueError, "at least one member"),
    ({"members": ["seed0", "absent"]}, FileNotFoundError, "'absent' is missing"),
])
def test_bad_manifests_are_refused(folder, tmp_path, manifest, error, match):
    bad = tmp_path / "bad"
    (bad / "seed0").mkdir(parents=True)
    (bad / "outside").mkdir()
    (bad / ensemble.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(error, match=match):
        siamjax.load(bad)


def test_corrupt_manifest_nested_ensemble_and_mismatched_members(members, folder, tmp_path):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / ensemble.MANIFEST).write_text('{"members": ["a"')
    with pytest.raises(ValueError, match="cannot read the ensemble manifest"):
        siamjax.load(corrupt)
    nested = tmp_path / "nested"
    nested.mkdir()
    shutil.copytree(folder, nested / "inner")
    (nested / ensemble.MANIFEST).write_text(json.dumps({"members": ["inner"]}))
    with pytest.raises(ValueError, match="itself an ensemble"):
        siamjax.load(nested)
    inverted = write_checkpoint(tmp_path / "inv", seed=2, invert=True)
    mixed = build_ensemble.write_ensemble(tmp_path / "mixed", [members[0], inverted])
    with pytest.raises(ValueError, match="preprocesses images differently.*differ in image size and ink cropping only"):
        siamjax.load(mixed)


def test_members_of_different_sizes_see_the_largest_size_resized(members, tmp_path):
    """A 28 px and a 32 px member: the ensemble preprocesses at 32 px; the 32 px member embeds exactly as
    alone, the 28 px one embeds that array resized to 28 px (a second antialiased resize)."""
    big = write_checkpoint(tmp_path / "m32", seed=2, size=32)
    ens = siamjax.load(build_ensemble.write_ensemble(tmp_path / "sizes", [members[0], big]))
    small_alone, big_alone = siamjax.load(members[0]), siamjax.load(big)
    raw = images(7, 3)
    assert ens.preprocessing.size == 32 and ens.preprocess(raw).shape == (7, 32, 32, 1)
    e = ens.embed(raw)
    assert e.shape == (7, 8 + 2 * 2 * 8)  # 28 px ends on a 1 x 1 map, 32 px on 2 x 2
    np.testing.assert_array_equal(e[:, 8:], big_alone.embed(raw))
    twice = preprocess_batch(big_alone.preprocess(raw), small_alone.preprocessing)
    assert twice.shape == (7, 28, 28, 1) and not np.array_equal(twice, small_alone.preprocess(raw))
    np.testing.assert_array_equal(e[:, :8], small_alone.embed_preprocessed(twice))
    with pytest.raises(ValueError, match="expected uint8 \\[N, 32, 32, 1\\]"):
        ens.embed_preprocessed(small_alone.preprocess(raw))  # arrays at a smaller member's size are refused


def drawings(n, seed=0, size=105):
    """A bright (255) framed box with a bar across, on black, of at most half the canvas's side:
    uint8 [n, size, size]."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, size, size), np.uint8)
    for img in out:
        h, w = rng.integers(size // 5, size // 2, 2)
        y, x = rng.integers(0, size - h), rng.integers(0, size - w)
        img[y:y + h, x:x + w] = 255  # a 4 px frame around the box, a bar across it
        img[y + 4:y + h - 4, x + 4:x + w - 4] = 0
        img[y + h // 2 - 2:y + h // 2 + 2, x:x + w] = 255
    return out


def test_members_that_crop_differently_each_crop_the_ensembles_uncropped_array(members, tmp_path):
    """A member that crops to the ink beside one that does not: the ensemble preprocesses uncropped at
    twice the largest size, and each member crops (or not) and resizes that array its own way."""
    crop = dict(crop_to_ink=True, keep_aspect=True, crop_margin=0.1)
    cropped = write_checkpoint(tmp_path / "crop", seed=3, **crop)
    plain_alone, cropped_alone = siamjax.load(members[0]), siamjax.load(cropped)
    ens = siamjax.load(build_ensemble.write_ensemble(tmp_path / "mixed", [members[0], cropped]))
    assert ens.preprocessing == Preprocessing(size=56, channels=1, invert=False)
    raw = drawings(6, 1)
    x = ens.preprocess(raw)
    assert x.shape == (6, 56, 56, 1)
    e = ens.embed(raw)
    plain_view = preprocess_batch(x, plain_alone.preprocessing)
    cropped_view = preprocess_batch(x, cropped_alone.preprocessing)
    np.testing.assert_array_equal(e[:, :8], plain_alone.embed_preprocessed(plain_view))
    np.testing.assert_array_equal(e[:, 8:], cropped_alone.embed_preprocessed(cropped_view))
    # the cropped member sees about what it sees alone (cropped from the original), not the plain view
    alone = cropped_alone.preprocess(raw).astype(float)
    assert np.abs(cropped_view - alone).mean() < 0.5 * np.abs(plain_view - alone).mean()
    # members that all crop alike: the ensemble crops once, at the largest size
    same = siamjax.load(build_ensemble.write_ensemble(tmp_path / "same", [cropped, write_checkpoint(
        tmp_path / "crop32", seed=4, size=32, **crop)]))
    assert same.preprocessing == Preprocessing(size=32, channels=1, invert=False, **crop)


def test_init_from_an_ensemble_names_the_fix(folder):
    cfg = ml_collections.ConfigDict({"init_from": str(folder)})
    with pytest.raises(ValueError, match="is an ensemble of 2 models; start from one of its member folders"):
        train_lib.init_from_checkpoint(None, cfg, None)


def test_eval_cli_scores_an_ensemble_folder(folder, omniglot_dir, tmp_path):
    """eval.py --checkpoint ENSEMBLE gives the accuracy computed here with the mean of the members'
    similarities, and says it is an ensemble."""
    from siamjax.data.omniglot import load_omniglot

    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "eval.py", "--checkpoint", str(folder), "--data_dir", str(omniglot_dir),
                           "--split", "background", "--alphabets", "Armenian", "--tasks", "within:5:1",
                           "--episodes", "10", "--seed", "2", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "step=[1, 1], ensemble of 2: mean similarity" in proc.stdout
    ens = siamjax.load(folder)
    data = load_omniglot(omniglot_dir, "background", ens.preprocessing, alphabets=["Armenian"])
    eps = evaluate.make_episodes(data.labels, data.groups, data.instances, 5, 1, 10, "within", seed=2)
    want = evaluate.one_shot_accuracy(ens.pairwise_jax, jnp.asarray(ens.embed_preprocessed(data.images)), eps)
    assert json.loads(out.read_text())["tasks"][0]["accuracy"] == pytest.approx(want["accuracy"])


def test_float16_weights_halve_the_folder_and_load_as_float32(members, folder, tmp_path, capsys):
    out = tmp_path / "half"
    assert ensemble_cli.main([str(out), *map(str, members), "--names", "seed0,seed1", "--weights_dtype", "float16"]) == 0
    manifest = json.loads((out / ensemble.MANIFEST).read_text())
    assert [s["weights_dtype"] for s in manifest["sources"]] == ["float16", "float16"]

    def stored(member):  # the arrays as Orbax stored them: {dtype}, bytes (its data files' sizes vary with how
        with ocp.StandardCheckpointer() as reader:  # writes were batched, so a tiny model's files are no measure)
            meta = reader.metadata((member / "variables").resolve())
        leaves = jax.tree_util.tree_leaves(getattr(meta, "item_metadata", meta))
        return {str(x.dtype) for x in leaves}, sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in leaves)

    (full_dtypes, full), (half_dtypes, half) = stored(folder / "seed0"), stored(out / "seed0")
    assert full_dtypes == {"float32"} and half_dtypes == {"float16"} and 2 * half == full, (half, full)
    ens, ref = siamjax.load(out), siamjax.load(folder)
    leaves = [x for m in ens.members for x in jax.tree_util.tree_leaves(m.variables)]
    assert {str(x.dtype) for x in leaves} == {"float32"}
    x = images(6, 4)
    got, want = ens.embed(x), ref.embed(x)
    assert not np.array_equal(got, want)  # rounded, not copied
    np.testing.assert_allclose(got, want, atol=2e-2 * np.abs(want).max())
    assert ens.meta["step"] == ref.meta["step"]
    with pytest.raises(SystemExit):
        ensemble_cli.main([str(tmp_path / "b"), str(members[0]), "--weights_dtype", "int8"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(ValueError, match="weights_dtype must be one of"):
        build_ensemble.write_ensemble(tmp_path / "c", members[:1], weights_dtype="int8")
    assert not (tmp_path / "c").exists()
    # growing the float16 ensemble copies its members' files unchanged and stores only the new one
    grown = build_ensemble.write_ensemble(tmp_path / "grown", [out / "seed0", members[1]], names=["seed0", "new"],
                                    weights_dtype="float16")
    files = sorted(p.relative_to(out / "seed0") for p in (out / "seed0").rglob("*") if p.is_file())
    assert files and all((grown / "seed0" / f).read_bytes() == (out / "seed0" / f).read_bytes() for f in files)
    assert stored(grown / "new") == stored(out / "seed1")
    sources = json.loads((grown / ensemble.MANIFEST).read_text())["sources"]
    assert sources[0] == {**manifest["sources"][0], "via": str(out / "seed0")}
    assert sources[1] == {"checkpoint": str(members[1]), "step": "1", "weights_dtype": "float16"}


def test_rebuilding_from_an_ensemble_keeps_each_members_recorded_source(members, folder, tmp_path):
    """A member copied out of an ensemble folder keeps that folder's record of its training run and step
    (with "via" naming the folder it was copied from); a plain checkpoint records itself."""
    out = build_ensemble.write_ensemble(tmp_path / "grown", [folder / "seed1", members[0]], names=["seed1", "new"])
    sources = json.loads((out / ensemble.MANIFEST).read_text())["sources"]
    recorded = json.loads((folder / ensemble.MANIFEST).read_text())["sources"][1]
    assert recorded["checkpoint"] == str(members[1]) and recorded["step"] == "1"
    assert sources[0] == {**recorded, "via": str(folder / "seed1")}
    assert sources[1] == {"checkpoint": str(members[0]), "step": "1"}
    (folder / "extra").mkdir()  # a step folder inside an ensemble folder that the manifest does not list
    try:
        alone = build_ensemble._source(folder / "extra", folder / "extra")
    finally:
        (folder / "extra").rmdir()
    assert alone == {"checkpoint": str(folder / "extra"), "step": "extra"}


@pytest.mark.parametrize("weights_dtype", ["float32", "float16"])
def test_a_resumable_step_is_copied_without_its_optimizer_state(members, tmp_path, weights_dtype):
    """A step under WORKDIR/checkpoints/ also holds ``train`` (the optimizer state, for resuming); a model
    does not use it, so an ensemble member built from such a step leaves it out and loads the same."""
    step = members[0] / "checkpoints" / "1"
    assert (step / "train").is_dir()
    out = build_ensemble.write_ensemble(tmp_path / "ens", [step], names=["latest"], weights_dtype=weights_dtype)
    assert not (out / "latest" / "train").exists()
    assert {p.name for p in (out / "latest").iterdir()} == {p.name for p in step.iterdir()} - {"train"}
    x = images(4, 5)
    got, want = siamjax.load(out).embed(x), siamjax.load(step).embed(x)
    if weights_dtype == "float32":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, atol=2e-2 * np.abs(want).max())
