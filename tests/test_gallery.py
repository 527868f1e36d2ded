"""Gallery (enrol / verify / identify / calibrate / save-load) and the eval.py verification subcommands,
on a tiny random twin saved as a checkpoint and synthetic PNGs."""
import csv
import io
import json
import pathlib
import subprocess
import sys
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import siamjax
from siamjax import checkpoint as ckpt_lib
from siamjax.eval import verification as V
from siamjax.cli import verify as verify_cli
from siamjax.data.preprocess import Preprocessing
from siamjax.eval.gallery import Gallery, UnknownIdentity, model_fingerprint

REPO = pathlib.Path(__file__).resolve().parents[1]


def write_checkpoint(workdir, seed=0, size=28, invert=False, model_kwargs=None, encoder="conv4", **spec_kwargs):
    """A randomly initialised conv4 (width 8: 8-d embeddings; ``model_kwargs`` adds to it; another
    ``encoder`` takes only ``model_kwargs``) + cosine head saved like train() saves one; ``spec_kwargs``:
    more Preprocessing fields (e.g. crop_to_ink)."""
    spec = Preprocessing(size=size, channels=1, invert=invert, **spec_kwargs)
    defaults = {"width": 8} if encoder == "conv4" else {}
    model = {"model": encoder, "model_kwargs": {**defaults, **(model_kwargs or {})}, "head": "cosine"}
    twin = siamjax.make_twin(model["model"], model["head"], model["model_kwargs"])
    variables = twin.init(jax.random.key(seed), (size, size, 1))
    io_ = ckpt_lib.CheckpointIO(workdir)
    io_.save(1, variables, {"step": jnp.int32(1)}, {"config": {}, "preprocessing": spec.to_dict(), "model": model,
                                                      "step": 1}, metrics={"val_accuracy": 0.5})
    io_.wait()
    io_.close()
    return pathlib.Path(workdir)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def model(ckpt):
    return siamjax.load(ckpt)


def _cos(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def _images(seed, n_ids=3, per_id=3, size=32, noise=12):
    """{identity: [uint8 images]}: a random blob pattern per identity plus a little noise per image."""
    rng = np.random.default_rng(seed)
    out = {}
    for k in range(n_ids):
        base = (rng.random((size, size)) > 0.6).astype(np.float64) * 200 + 20
        out[f"id{k}"] = [np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
                         for _ in range(per_id)]
    return out


def _png(img) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------------------------ Gallery API
def test_scoring_rules_identify_verify_and_unknown_identity():
    rng = np.random.default_rng(0)
    alice, bob = rng.normal(size=(3, 8)).astype(np.float32), rng.normal(size=(2, 8)).astype(np.float32)
    g = Gallery(pairwise=_cos)
    assert g.enrol("alice", alice[:2]) == 2 and g.enrol("alice", alice[2]) == 3  # updates append
    g.enrol("bob", bob)
    probe = alice[1] + 0.01 * rng.normal(size=8).astype(np.float32)
    sims = _cos(probe[None], alice)[0]
    assert g.score(probe, ["alice"])[0] == pytest.approx(sims.max())  # rule "max" (default)
    assert [n for n, _ in g.identify(probe, k=2)] == ["alice", "bob"]
    assert g.identify(probe, k=1)[0][1] == pytest.approx(sims.max())
    with pytest.raises(ValueError, match="no decision threshold"):
        g.verify(probe, "alice")
    g.threshold = 0.9
    assert g.verify(probe, "alice") == (pytest.approx(sims.max()), True)
    assert g.verify(probe, "bob")[1] == bool(_cos(probe[None], bob).max() >= 0.9)
    with pytest.raises(UnknownIdentity, match="'alicia' is not enrolled.*closest enrolled: 'alice'"):
        g.verify(probe, "alicia")
    with pytest.raises(KeyError):
        g.embeddings("carol")
    g.rule = "mean"
    assert g.score(probe, ["alice"])[0] == pytest.approx(sims.mean())
    g.rule = "template"
    assert g.score(probe, ["alice"])[0] == pytest.approx(_cos(probe[None], alice.mean(0)[None])[0, 0])
    with pytest.raises(ValueError, match="dimension 4"):
        g.enrol("carol", np.ones((1, 4)))


def test_calibration_hits_the_requested_far():
    rng = np.random.default_rng(1)
    g = Gallery(pairwise=_cos)
    gen, imp = rng.normal(0.8, 0.05, 20_000), rng.normal(0.2, 0.12, 100_000)
    thr = g.calibrate(gen, imp, 1e-3)
    assert g.threshold == thr and g.far == 1e-3 and "achieved FAR" in g.threshold_source
    assert 1e-3 - 1e-5 <= (imp >= thr).mean() <= 1e-3
    fresh = rng.normal(0.2, 0.12, 100_000)
    assert abs((fresh >= thr).mean() - 1e-3) < 4.5e-4  # ~3.5 sigma of the two samples' error


def test_save_load_round_trip_and_other_checkpoint_refused(model, tmp_path):
    rng = np.random.default_rng(2)
    g = Gallery(model, threshold=0.7, far=1e-3, threshold_source="test")
    g.enrol("a", rng.normal(size=(3, 8)))
    g.enrol("b", images=_images(0, n_ids=1)["id0"])  # raw images through the model
    g.save(tmp_path / "g.npz")
    with np.load(tmp_path / "g.npz", allow_pickle=False) as z:  # no pickled objects
        assert set(z.files) == {"embeddings", "owner", "templates", "meta"}
        np.testing.assert_array_equal(z["templates"][1], g.template("b"))
    h = Gallery.load(tmp_path / "g.npz", model)
    assert h.identities == ["a", "b"] and h.meta() == g.meta()
    for n in ("a", "b"):
        np.testing.assert_array_equal(h.embeddings(n), g.embeddings(n))
    assert h.meta()["fingerprint"] == model_fingerprint(model) == model_fingerprint(siamjax.load(model.path))
    probe = _images(0, n_ids=1)["id0"][1]
    assert h.identify(probe, k=1) == [("b", pytest.approx(1.0, abs=1e-5))]  # an enrolled image itself
    assert h.verify(probe, "b")[1] and h.verify(model.embed([probe])[0], "b")[1]

    other = siamjax.load(write_checkpoint(tmp_path / "other", seed=1))
    with pytest.raises(ValueError, match="not comparable"):
        Gallery.load(tmp_path / "g.npz", other)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable siamjax gallery"):
        Gallery.load(tmp_path / "junk.npz")


# ------------------------------------------------------------------------------------ command line
@pytest.fixture(scope="module")
def pair_zip(tmp_path_factory):
    """pairs.zip: data/pairs.csv (header, label 0 = genuine like SigComp's list) + data/imgs/<id>/<n>.png."""
    d = tmp_path_factory.mktemp("pairs")
    ims = _images(3, n_ids=4)
    rows = [("img1", "img2", "target")]
    with zipfile.ZipFile(d / "pairs.zip", "w") as z:
        for ident, lst in ims.items():
            for n, im in enumerate(lst):
                z.writestr(f"data/imgs/{ident}/{n}.png", _png(im))
        ids = list(ims)
        for a, ident in enumerate(ids):
            rows += [(f"{ident}/0.png", f"{ident}/1.png", 0), (f"{ident}/0.png", f"{ident}/2.png", 0),
                     (f"{ident}/1.png", f"{ids[(a + 1) % 4]}/1.png", 1), (f"{ident}/2.png", f"{ids[(a + 2) % 4]}/0.png", 1)]
        buf = io.StringIO()
        csv.writer(buf).writerows(rows)
        z.writestr("data/pairs.csv", buf.getvalue())
    return d / "pairs.zip", ims, rows[1:]


def test_pairs_from_a_csv_inside_a_zip(ckpt, model, pair_zip, tmp_path, capsys):
    zpath, ims, rows = pair_zip
    out = tmp_path / "out"
    status = verify_cli.main(["pairs", "--checkpoint", str(ckpt), "--pairs", f"{zpath}/data/pairs.csv",
                              "--root", f"{zpath}/data/imgs", "--same_label", "0", "--pair_filter", "^id[012]/",
                              "--threshold", "0.9", "--out_dir", str(out)])
    text = capsys.readouterr().out
    assert status == 0, text
    kept = [r for r in rows if r[0].startswith(("id0/", "id1/", "id2/"))]
    img = lambda p: ims[p.split("/")[0]][int(p.split("/")[1][0])]  # noqa: E731
    want_scores = model.score([img(r[0]) for r in kept], [img(r[1]) for r in kept])
    want = V.verification_report(want_scores, [r[2] == 0 for r in kept], 0.9)
    got = json.loads((out / "report.json").read_text())
    assert got["n_pairs"] == len(kept) == 12 and got["n_genuine"] == 6 and got["n_images"] == 11
    for key in ("auc", "eer", "eer_threshold", "far", "frr", "accuracy"):
        assert got[key] == pytest.approx(want[key], abs=1e-5), key
    assert f"AUC {want['auc']:.4f}" in text and "TAR @ FAR 1%: n/a" in text
    for name in ("roc.png", "det.png", "scores_hist.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert len((out / "scores.csv").read_text().splitlines()) == 13

    # a corrupt image is named, with its row; a path that needs the inner folder gets a hint
    bad = tmp_path / "bad"
    (bad / "x").mkdir(parents=True)
    (bad / "x" / "ok.png").write_bytes(_png(ims["id0"][0]))
    (bad / "x" / "broken.png").write_bytes(_png(ims["id0"][1])[:60])
    (bad / "p.csv").write_text("x/ok.png,x/ok.png,1\nx/ok.png,x/broken.png,0\n")
    assert verify_cli.main(["pairs", "--checkpoint", str(ckpt), "--pairs", str(bad / "p.csv"),
                            "--root", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "line 2" in err and "\n" not in err.strip()
    assert verify_cli.main(["pairs", "--checkpoint", str(ckpt), "--pairs", f"{zpath}/data/pairs.csv",
                            "--root", str(zpath)]) == 1
    assert f"pass --root {zpath}/data/imgs" in capsys.readouterr().err


def test_enrol_identify_verify_commands(ckpt, model, tmp_path, capsys):
    ims = _images(4, n_ids=3)
    paths = {}
    for ident, lst in ims.items():
        for n, im in enumerate(lst):
            p = tmp_path / f"{ident}_{n}.png"
            p.write_bytes(_png(im))
            paths[ident, n] = str(p)
    g = str(tmp_path / "g.npz")
    base = ["--checkpoint", str(ckpt)]
    # no threshold anywhere yet: a clear error
    assert verify_cli.main(["verify", *base, paths["id0", 0], paths["id0", 1]]) == 1
    assert "--threshold" in capsys.readouterr().err
    for ident in ims:
        assert verify_cli.main(["enrol", *base, "--gallery", g, "--identity", ident,
                                paths[ident, 0], paths[ident, 1]]) == 0
    assert "3 identities" in capsys.readouterr().out
    assert verify_cli.main(["identify", *base, "--gallery", g, paths["id1", 0], "--k", "2"]) == 0
    out = capsys.readouterr().out
    assert "  1. id1  1" in out  # an enrolled image: top-1, score 1
    # a calibration.json next to the checkpoint supplies the threshold
    (ckpt / "calibration.json").write_text(json.dumps({"threshold": 0.5, "far": 1e-3, "source": "test"}))
    try:
        assert verify_cli.main(["verify", *base, paths["id0", 0], paths["id0", 0]]) == 0
        out = capsys.readouterr().out
        assert "SAME (accept)" in out and "calibration.json" in out
    finally:
        (ckpt / "calibration.json").unlink()
    assert verify_cli.main(["verify", *base, "--gallery", g, "--identity", "id2", paths["id2", 2],
                            "--threshold", "1.01"]) == 0
    assert "DIFFERENT (reject)" in capsys.readouterr().out
    assert verify_cli.main(["verify", *base, "--gallery", g, "--identity", "id7", paths["id2", 2],
                            "--threshold", "0.5"]) == 1
    assert "closest enrolled" in capsys.readouterr().err
    h = Gallery.load(g, model)
    assert h.identities == ["id0", "id1", "id2"] and all(len(h.embeddings(i)) == 2 for i in h.identities)


def test_eval_py_dispatches_pairs_on_image_folder_classes(ckpt, tmp_path):
    ims = _images(5, n_ids=3)
    with zipfile.ZipFile(tmp_path / "classes.zip", "w") as z:
        for k, lst in enumerate(ims.values()):
            for n, im in enumerate(lst):
                z.writestr(f"set/c{k + 1}/{n}.png", _png(im))
    proc = subprocess.run([sys.executable, "eval.py", "pairs", "--checkpoint", str(ckpt), "--data_dir",
                           str(tmp_path / "classes.zip"), "--classes", "c[12]", "c3", "--out_dir", str(tmp_path / "o")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((tmp_path / "o" / "report.json").read_text())
    assert (r["n_pairs"], r["n_genuine"], r["classes"]) == (36, 9, ["c1", "c2", "c3"])
    assert "EER" in proc.stdout


def test_calibrate_writes_the_thresholds_that_verify_then_uses(ckpt, model, pair_zip, tmp_path, capsys):
    zpath, ims, rows = pair_zip
    step = tmp_path / "ckpt"
    import shutil
    shutil.copytree(siamjax.load(ckpt).path, step)  # a step folder of our own to write beside
    args = ["calibrate", "--checkpoint", str(step), "--pairs", f"{zpath}/data/pairs.csv",
            "--root", f"{zpath}/data/imgs", "--same_label", "0"]
    assert verify_cli.main(args) == 0
    cal = json.loads((step / "calibration.json").read_text())
    img = lambda p: ims[p.split("/")[0]][int(p.split("/")[1][0])]  # noqa: E731
    scores = model.score([img(r[0]) for r in rows], [img(r[1]) for r in rows])
    genuine = np.array([r[2] == 0 for r in rows])
    eer, eer_threshold = V.eer(scores, genuine)
    assert cal["threshold"] == pytest.approx(eer_threshold, abs=1e-5) == cal["thresholds"]["eer"]
    assert cal["eer"] == pytest.approx(eer, abs=1e-6) and (cal["n_genuine"], cal["n_impostor"]) == (8, 8)
    assert set(cal["thresholds"]) == {"eer", "far=1e-2", "far=1e-3"} and not cal["resolvable"]["far=1e-2"]
    capsys.readouterr()
    # nothing is overwritten without --overwrite; --far picks the FAR threshold
    assert verify_cli.main(args + ["--far", "0.2"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert verify_cli.main(args + ["--far", "0.2", "--overwrite"]) == 0
    cal = json.loads((step / "calibration.json").read_text())
    assert cal["threshold"] == pytest.approx(V.threshold_at_far(scores, genuine, 0.2, warn=False), abs=1e-5)
    assert cal["far"] <= 0.2
    # verify reads it from the checkpoint folder
    p0, p1 = tmp_path / "a.png", tmp_path / "b.png"
    p0.write_bytes(_png(ims["id0"][0]))
    p1.write_bytes(_png(ims["id0"][1]))
    capsys.readouterr()
    assert verify_cli.main(["verify", "--checkpoint", str(step), str(p0), str(p1)]) == 0
    assert f"threshold {cal['threshold']:.4g}" in capsys.readouterr().out


def test_enrol_a_whole_folder_in_one_call(ckpt, model, tmp_path, capsys):
    ims = _images(3, n_ids=3)
    folder = tmp_path / "people"
    for ident, lst in ims.items():
        (folder / ident).mkdir(parents=True)
        for n, im in enumerate(lst):
            (folder / ident / f"{n}.png").write_bytes(_png(im))
    g = tmp_path / "g.npz"
    assert verify_cli.main(["enrol", "--checkpoint", str(ckpt), "--gallery", str(g), "--folder", str(folder)]) == 0
    assert "9 image(s) of 3 identities" in capsys.readouterr().out
    gallery = Gallery.load(g, model)
    assert gallery.identities == sorted(ims) and all(len(gallery.embeddings(i)) == 3 for i in ims)
    np.testing.assert_allclose(gallery.embeddings("id1"), model.embed(ims["id1"]), atol=1e-5)
    assert verify_cli.main(["enrol", "--checkpoint", str(ckpt), "--gallery", str(g), "--folder", str(folder),
                            "--identity", "x"]) == 1
    assert "--identity NAME with its images, or --folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ per-identity normalisation
def _dot(a, b):
    return np.asarray(a, np.float64) @ np.asarray(b, np.float64).T


def test_refs_normalisation_by_hand():
    # with a dot-product head the similarities are easy to write down: alice's references e1, e2, e3 have
    # pairwise similarities e1.e2 = 0.5, e1.e3 = 0.25, e2.e3 = 0 -> mean 0.25, std sqrt(1/24)
    alice = np.array([[1.0, 1.0, 0.0], [0.0, 0.5, 0.0], [0.25, 0.0, 1.0]])
    bob = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.5]])
    g = Gallery(pairwise=_dot, normalise="refs")
    g.enrol("alice", alice)
    g.enrol("bob", bob)  # bob: one pair, similarity 1 -> std 0, floored at min_std = 0.01
    assert g.identity_stats("alice") == (pytest.approx(0.25), pytest.approx(np.sqrt(1 / 24)))
    assert g.identity_stats("bob") == (pytest.approx(1.0), pytest.approx(0.0))
    probe = np.array([2.0, 0.0, 1.0])  # raw max: alice max(2, 0, 1.5) = 2; bob max(0, 0.5) = 0.5
    np.testing.assert_allclose(g.score(probe), [(2 - 0.25) / np.sqrt(1 / 24), (0.5 - 1.0) / 0.01])
    g.rule = "mean"  # the rule decides the raw score; the refs statistics are the references' own
    np.testing.assert_allclose(g.score(probe, ["alice"]), [(3.5 / 3 - 0.25) / np.sqrt(1 / 24)])
    g.min_std = 0.5
    np.testing.assert_allclose(g.score(probe, ["bob"]), [(0.25 - 1.0) / 0.5])
    raw = Gallery(pairwise=_dot)  # default: no normalisation
    raw.enrol("alice", alice)
    np.testing.assert_allclose(raw.score(probe), [2.0])
    g.enrol("carol", alice[:1])
    with pytest.raises(ValueError, match="'refs' needs at least 2 enrolled embeddings.*'carol' has 1"):
        g.score(probe, ["carol"])
    with pytest.raises(ValueError, match="normalise must be one of"):
        Gallery(pairwise=_dot, normalise="zscore")


def test_znorm_uses_the_other_identities_as_cohort_and_follows_enrolment():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    g = Gallery(pairwise=_dot, normalise="znorm")  # rule max
    g.enrol("a", a)
    g.enrol("b", [[2.0, 1.0]])
    with pytest.raises(ValueError, match="'znorm' needs at least 2 enrolled embeddings of other identities"):
        g.score(np.array([1.0, 1.0]), ["a"])
    g.enrol("c", [[0.0, 3.0]])
    # cohort of a = b's and c's embeddings; their max scores against a: max(2, 1) = 2 and max(0, 3) = 3
    assert g.identity_stats("a") == (pytest.approx(2.5), pytest.approx(0.5))
    np.testing.assert_allclose(g.score(np.array([4.0, 1.0]), ["a"]), [(4 - 2.5) / 0.5])
    g.enrol("c", [[1.0, 1.0]])  # c's new embedding joins a's cohort: max score 1 -> scores 2, 3, 1
    assert g.identity_stats("a") == (pytest.approx(2.0), pytest.approx(np.std([2, 3, 1])))
    g.remove("c")  # only b's one embedding left as a's cohort
    with pytest.raises(ValueError, match="the gallery has 1"):
        g.identity_stats("a")


def test_refs_normalisation_puts_writers_on_one_scale():
    """Two identities whose raw scores live on different scales: one global threshold fails on the raw
    scores and works after normalising each by its references' spread."""
    rng = np.random.default_rng(0)
    sims = {"tight": (0.95, 0.01), "loose": (0.6, 0.05)}  # references' mutual similarity: mean, spread

    def fake_pairwise(a, b):  # embeddings carry (identity id, kind, noise); scores drawn per kind
        out = np.empty((len(a), len(b)))
        for i, x in enumerate(a):
            for j, y in enumerate(b):
                mu, sd = sims["tight" if y[0] == 0 else "loose"]
                out[i, j] = mu + sd * (x[2] + y[2]) / 2 - (3 * sd if x[1] == 1 else 0.0)
        return out

    g_raw, g_norm = Gallery(pairwise=fake_pairwise), Gallery(pairwise=fake_pairwise, normalise="refs")
    for g in (g_raw, g_norm):
        for ident in (0, 1):
            g.enrol(f"w{ident}", np.c_[np.full(5, ident), np.zeros(5), rng.normal(size=5)])
    labels, raw, norm = [], [], []
    for ident in (0, 1):
        for kind in (0, 1):  # 0 genuine, 1 forgery (3 spreads lower)
            probes = np.c_[np.full(40, ident), np.full(40, kind), rng.normal(size=40)]
            raw += g_raw.score_many(probes, [f"w{ident}"])[:, 0].tolist()
            norm += g_norm.score_many(probes, [f"w{ident}"])[:, 0].tolist()
            labels += [kind == 0] * 40
    assert V.eer(raw, labels)[0] > 0.2
    assert V.eer(norm, labels)[0] < 0.1


def test_normalisation_survives_save_and_load(tmp_path):
    g = Gallery(pairwise=_cos, normalise="refs", min_std=0.05)
    g.enrol("a", np.eye(3)[:2])
    g.save(tmp_path / "g.npz")
    h = Gallery.load(tmp_path / "g.npz", pairwise=_cos)
    assert (h.normalise, h.min_std) == ("refs", 0.05)
    np.testing.assert_allclose(h.score(np.ones(3)), g.score(np.ones(3)))
    meta = json.loads(str(np.load(tmp_path / "g.npz")["meta"]))
    del meta["normalise"], meta["min_std"]  # a gallery written before normalisation existed
    arrays = dict(np.load(tmp_path / "g.npz"))
    arrays["meta"] = np.asarray(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **arrays)
    assert Gallery.load(tmp_path / "old.npz", pairwise=_cos).normalise == "none"
