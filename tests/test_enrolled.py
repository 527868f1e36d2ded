"""Enrolled (writer-dependent) verification: trials, scoring through a Gallery, metrics, the
``siamjax-eval enrolled`` command (synthetic data, fake embeddings, a tiny random checkpoint) and one
run of the shipped signature model on the real test writers."""
import io
import json
import pathlib
import random
import zipfile

import numpy as np
import pytest
from PIL import Image

from siamjax.cli import enrolled as enrolled_cli
from siamjax.cli import eval as eval_cli
from siamjax.eval import enrolled as E
from siamjax.eval import verification as V
from tests.test_gallery import write_checkpoint

REPO = pathlib.Path(__file__).resolve().parents[1]


def _cos(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T


def _layout(writers=("a", "b"), n_gen=4, n_forg=3):
    paths = []
    for w in writers:
        paths += [f"{w}/{k:02d}_{w}.png" for k in range(1, n_gen + 1)]
        paths += [f"{w}_forg/{k:02d}_99{w}.PNG" for k in range(1, n_forg + 1)]
    return paths


# ------------------------------------------------------------------------------------ trials
def test_layout_and_trials_take_the_first_genuine_by_file_name():
    paths = _layout(("a", "b"), n_gen=12) + ["a/notes.txt", ".hidden/x.png", "a/deep/x.png", "top.png", "a/.x.png"]
    random.Random(0).shuffle(paths)
    samples = E.parse_layout(paths)
    assert len(samples) == 2 * (12 + 3)
    assert {s.writer for s in samples} == {"a", "b"}
    assert all(s.is_forgery == ("_forg/" in s.path) for s in samples)
    trials = E.build_trials(samples, 5)
    assert [t.writer for t in trials] == ["a", "b"]
    a = trials[0]
    # "10_a.png" sorts after "09_a.png": the first five are 01..05, in order
    assert a.references == tuple(f"a/{k:02d}_a.png" for k in range(1, 6))
    assert a.genuine == tuple(f"a/{k:02d}_a.png" for k in range(6, 13))
    assert a.forgeries == tuple(f"a_forg/{k:02d}_99a.PNG" for k in range(1, 4))
    assert [t.writer for t in E.build_trials(samples, 1, ["b"])] == ["b"]


def test_trial_errors_name_the_writer():
    samples = E.parse_layout(_layout(("a", "b"), n_gen=3) + ["c/01_c.png", "c/02_c.png"])
    with pytest.raises(ValueError, match=r"writer 'a' has 3 genuine signature\(s\); enrolling 3 .* needs 4"):
        E.build_trials(samples, 3)
    with pytest.raises(ValueError, match=r"writer 'c' has no skilled forgeries \(expected a folder c_forg/\)"):
        E.build_trials(samples, 1)
    with pytest.raises(ValueError, match="writer 'zz' has no samples"):
        E.build_trials(samples, 1, ["zz"])
    with pytest.raises(ValueError, match="integer >= 1"):
        E.build_trials(samples, 0)
    assert E.select_writers(samples, ["[ab]"]) == ["a", "b"]
    assert E.select_writers(samples, None) == ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"writer pattern 'q\*' matches none of the 3 writers in here: a, b, c"):
        E.select_writers(samples, ["q*"], "here")
    with pytest.raises(ValueError, match="no images found"):
        E.select_writers(E.parse_layout(["readme.txt"]), None)


# ------------------------------------------------------------------------------------ scoring
def _fake_embeddings(samples, seed=0, dim=8):
    """Per writer a random direction; genuine = direction + small noise, forgery = direction + larger noise."""
    rng = np.random.default_rng(seed)
    base = {w: rng.normal(size=dim) for w in sorted({s.writer for s in samples})}
    return {s.path: (base[s.writer] + rng.normal(0, 0.9 if s.is_forgery else 0.3, dim)).astype(np.float32)
            for s in samples}


@pytest.mark.parametrize("normalise", ["none", "refs", "znorm"])
def test_scores_are_the_gallery_rule_against_the_claimed_writer(normalise):
    samples = E.parse_layout(_layout(("a", "b", "c"), n_gen=6, n_forg=4))
    emb = _fake_embeddings(samples)
    trials = E.build_trials(samples, 3)
    per_writer, gallery = E.score_trials(trials, emb, pairwise=_cos, normalise=normalise)
    assert gallery.identities == ["a", "b", "c"] and gallery.normalise == normalise
    for t, w in zip(trials, per_writer):
        refs = np.stack([emb[p] for p in t.references])
        probes = np.stack([emb[p] for p in (*t.genuine, *t.forgeries)])
        raw = _cos(probes, refs).max(axis=1)  # rule "max", the claimed writer only
        if normalise == "refs":
            c = _cos(refs, refs)
            pair = np.array([c[0, 1], c[0, 2], c[1, 2]])
            want = (raw - pair.mean()) / max(pair.std(), 0.01)
        elif normalise == "znorm":
            cohort = np.stack([emb[p] for o in trials if o.writer != t.writer for p in o.references])
            imp = _cos(cohort, refs).max(axis=1)
            want = (raw - imp.mean()) / max(imp.std(), 0.01)
        else:
            want = raw
        np.testing.assert_allclose(w.scores, want, rtol=1e-6, atol=1e-9)
        assert w.labels.tolist() == [True] * 3 + [False] * 4 and w.n_references == 3
        assert w.probes == [*t.genuine, *t.forgeries]


def test_summary_reuses_the_verification_metrics():
    samples = E.parse_layout(_layout(("a", "b", "c"), n_gen=8, n_forg=5))
    emb = _fake_embeddings(samples, seed=3)
    per_writer, _ = E.score_trials(E.build_trials(samples, 2), emb, pairwise=_cos)
    s, y = E.pooled(per_writer)
    thr = float(np.median(s))
    out = E.summarise(per_writer, thr)
    assert out["pooled"] == V.verification_report(s, y, thr)
    for w, row in zip(per_writer, out["writers"]):
        assert (row["eer"], row["eer_threshold"]) == V.eer(w.scores, w.labels)
        assert row["far"] == pytest.approx(np.mean(w.scores[~w.labels] >= thr))
        assert row["frr"] == pytest.approx(np.mean(w.scores[w.labels] < thr))
        assert (row["n_genuine"], row["n_forgery"]) == (6, 5)
    assert out["mean_writer_eer"] == pytest.approx(np.mean([r["eer"] for r in out["writers"]]))
    assert "far" not in E.summarise(per_writer)["pooled"]


def test_missing_embedding_is_an_error():
    samples = E.parse_layout(_layout(("a",), n_gen=3))
    emb = _fake_embeddings(samples)
    del emb["a/03_a.png"]
    with pytest.raises(ValueError, match="1 path.*'a/03_a.png'"):
        E.score_trials(E.build_trials(samples, 1), emb, pairwise=_cos)


# ------------------------------------------------------------------------------------ the command
def _png(seed, size=40):
    rng = np.random.default_rng(seed)
    img = np.full((size, size + 20), 255, np.uint8)
    img[rng.random(img.shape) > 0.8] = 30
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def writers_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp("sig") / "sig.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for k, p in enumerate(_layout(("v1", "v2", "t1", "t2", "t3"), n_gen=4, n_forg=3)):
            zf.writestr("data/" + p, _png(k))
        zf.writestr("data/few/01_few.png", _png(100))  # 1 genuine, no forgeries
        zf.writestr("data/few/02_few.png", _png(101))
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt"))


def test_command_writes_the_report_tables_and_plots(ckpt, writers_zip, tmp_path, capsys):
    out = tmp_path / "out"
    rc = eval_cli.main(["enrolled", "--checkpoint", str(ckpt), "--data_dir", f"{writers_zip}/data",
                        "--classes", "t*", "--val_classes", "v1", "v2", "--refs", "2,1",
                        "--normalise", "none,refs", "--out_dir", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "N=1 normalise=refs: skipped (normalise='refs' needs at least 2" in text
    report = json.loads((out / "report.json").read_text())
    assert report["writers"] == ["t1", "t2", "t3"] and report["val_writers"] == ["v1", "v2"]
    done = [(r["refs"], r["normalise"]) for r in report["results"] if "test" in r]
    assert done == [(2, "none"), (2, "refs"), (1, "none")]
    for r in report["results"]:
        if "test" in r:
            # the threshold is the validation writers' pooled EER threshold, applied to the test writers
            assert r["threshold"] == r["validation"]["pooled"]["eer_threshold"]
            assert r["test"]["pooled"]["threshold"] == r["threshold"]
            assert r["test"]["pooled"]["n_genuine"] == 3 * (4 - r["refs"]) and r["test"]["pooled"]["n_impostor"] == 9
    assert sum(bool(r.get("recommended")) for r in report["results"] if r["refs"] == 2) == 1
    rows = (out / "writers.csv").read_text().splitlines()
    assert rows[0].startswith("refs,normalise,writer") and len(rows) == 1 + 3 * 3
    md = (out / "writers.md").read_text()
    assert "| t1 (2, 3 / 3) |" in md and "test FAR / FRR at the validation threshold" in md
    for sub in ("refs2_none", "refs2_refs", "refs1_none"):
        for name in ("roc.png", "det.png", "scores_hist.png"):
            assert (out / sub / name).stat().st_size > 1000


@pytest.mark.parametrize("argv, message", [
    (["--classes", "t*", "few", "--val_classes", "v1", "v2", "--refs", "1"],
     "writer 'few' has no skilled forgeries"),
    (["--classes", "t*", "--val_classes", "v1", "--refs", "4"],
     "writer 't1' has 4 genuine signature(s); enrolling 4 and verifying at least one more needs 5"),
    (["--classes", "nobody"], "writer pattern 'nobody' matches none of the 6 writers"),
    (["--classes", "t1", "t2", "--val_classes", "t2"], "writers t2 are both test and validation writers"),
])
def test_command_errors_are_one_line(ckpt, writers_zip, capsys, argv, message):
    rc = enrolled_cli.main(["--checkpoint", str(ckpt), "--data_dir", f"{writers_zip}/data", *argv])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and err.count("\n") == 1, err


def test_command_on_an_empty_folder(ckpt, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc = enrolled_cli.main(["--checkpoint", str(ckpt), "--data_dir", str(tmp_path / "empty"), "--classes", "x"])
    assert rc == 1 and "no images found" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ the shipped model
def test_shipped_signature_model_on_the_real_test_writers(data_root):
    """The figures of docs/verification.md ("Enrolled signature verification"), N = 5."""
    import siamjax
    from siamjax.data.paths import Root

    zpath = data_root / "signatures_sigcomp2011_dutch" / "sign_data_test.zip"
    if not zpath.is_file():
        pytest.fail(f"signature data not found at {zpath}")
    model = siamjax.load(REPO / "pretrained" / "signatures")
    root = Root(f"{zpath}/sign_data/Dataset/test")
    samples = E.parse_layout(enrolled_cli.list_paths(root))
    writers = E.select_writers(samples, ["06[3-9]"])
    trials = E.build_trials(samples, 5, writers)
    emb = enrolled_cli.embed_files(model, root, sorted({p for t in trials for p in (*t.references, *t.genuine,
                                                                                       *t.forgeries)}))
    assert len(emb) == 156
    raw, _ = E.score_trials(trials, emb, pairwise=model.pairwise)
    norm, _ = E.score_trials(trials, emb, pairwise=model.pairwise, normalise="refs")
    s_raw, y = E.pooled(raw)
    assert (int(y.sum()), int((~y).sum())) == (49, 72)
    assert V.eer(s_raw, y)[0] == pytest.approx(0.143, abs=0.015)  # documented: 14.3%
    assert V.eer(*E.pooled(norm))[0] == pytest.approx(0.163, abs=0.015)  # documented: 16.3%
    for a, b in zip(raw, norm):  # a per-writer affine map with a positive scale: each writer's EER is unchanged
        assert V.eer(a.scores, a.labels)[0] == pytest.approx(V.eer(b.scores, b.labels)[0], abs=1e-12)


def test_command_without_test_patterns_takes_the_writers_that_do_not_validate(ckpt, tmp_path, capsys):
    folder = tmp_path / "w"
    for k, p in enumerate(_layout(("v1", "t1", "t2"), n_gen=3, n_forg=2)):
        (folder / p).parent.mkdir(parents=True, exist_ok=True)
        (folder / p).write_bytes(_png(k))
    rc = enrolled_cli.main(["--checkpoint", str(ckpt), "--data_dir", str(folder), "--val_classes", "v1",
                            "--refs", "2", "--normalise", "none", "--out_dir", str(tmp_path / "out")])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["writers"] == ["t1", "t2"] and report["val_writers"] == ["v1"]
