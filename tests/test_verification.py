"""Verification metrics against hand-computed values and brute force (no sklearn), and the plots."""
import math
import warnings

import numpy as np
import pytest

from siamjax.eval import verification as V


def _mann_whitney(gen, imp):
    """P(genuine > impostor) + 0.5 P(equal), by brute force over all genuine x impostor pairs."""
    return float(np.mean([(g > i) + 0.5 * (g == i) for g in gen for i in imp]))


def _labels(gen, imp):
    return np.r_[gen, imp], np.r_[np.ones(len(gen), int), np.zeros(len(imp), int)]


def test_roc_curve_by_hand_with_ties():
    s, y = _labels([0.9, 0.5, 0.5], [0.5, 0.1])
    far, tar, thr = V.roc_curve(s, y)
    np.testing.assert_array_equal(thr, [np.inf, 0.9, 0.5, 0.1])
    np.testing.assert_allclose(far, [0, 0, 0.5, 1])  # the tie at 0.5 moves two genuine and one impostor pair together
    np.testing.assert_allclose(tar, [0, 1 / 3, 1, 1])
    far2, frr, thr2 = V.det_curve(s, y)
    np.testing.assert_allclose(frr, 1 - tar)
    # AUC with the tie counted half: (3 genuine x 2 impostor) comparisons: 0.9>both, 0.5=0.5 (half), 0.5>0.1
    assert V.roc_auc(s, y) == pytest.approx(_mann_whitney([0.9, 0.5, 0.5], [0.5, 0.1])) == pytest.approx(5 / 6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_is_the_mann_whitney_statistic(seed):
    rng = np.random.default_rng(seed)
    gen = np.round(rng.normal(1.0, 1.0, 37), 1)  # rounded: many ties, also across classes
    imp = np.round(rng.normal(0.0, 1.0, 53), 1)
    s, y = _labels(gen, imp)
    assert V.roc_auc(s, y) == pytest.approx(_mann_whitney(gen, imp), abs=1e-12)
    assert V.roc_auc(s, y.astype(bool)) == V.roc_auc(s, y)  # bool labels too


def test_eer_exact_cases():
    # at threshold 0.6: 1 of 4 genuine rejected, 1 of 4 impostors accepted: the curves meet at a point
    assert V.eer(*_labels([0.2, 0.6, 0.7, 0.9], [0.1, 0.3, 0.4, 0.8])) == pytest.approx((0.25, 0.6))
    assert V.eer(*_labels([2.0, 3.0], [0.0, 1.0])) == (0.0, 2.0)  # separated: EER 0 at the lowest genuine score
    assert V.eer(*_labels([0.0, 1.0], [2.0, 3.0]))[0] == 1.0  # inverted scores
    # crossing between operating points: FAR goes 0 -> 2/3 while FRR stays 1/2 between thresholds 3 and 2;
    # FAR = FRR = 1/2 three quarters of the way, so the threshold is 3 + 0.75 (2 - 3) = 2.25
    e, t = V.eer(*_labels([3.0, 1.0], [2.0, 2.0, 0.0]))
    assert e == pytest.approx(0.5) and t == pytest.approx(2.25)


def test_eer_matches_a_brute_force_threshold_sweep():
    rng = np.random.default_rng(3)
    gen, imp = rng.normal(2.0, 1.0, 2000), rng.normal(0.0, 1.0, 3000)
    s, y = _labels(gen, imp)
    e, t = V.eer(s, y)
    ts = np.sort(s)
    far = np.array([(imp >= x).mean() for x in ts])
    frr = np.array([(gen < x).mean() for x in ts])
    k = np.argmin(np.abs(far - frr))
    assert abs(e - (far[k] + frr[k]) / 2) < 1e-3
    assert abs((imp >= t).mean() - (gen < t).mean()) < 2e-3  # at the returned threshold FAR ~ FRR
    assert e == pytest.approx(0.1587, abs=0.015)  # Gaussians 2 sigma apart: EER = Phi(-1)


def test_tar_at_far_and_calibration_by_hand():
    imp = np.arange(100) / 100.0  # 0.00 ... 0.99
    gen = np.array([0.985, 0.975, 0.5, 0.995])
    s, y = _labels(gen, imp)
    # FAR <= 1%: one impostor (0.99) may be accepted; the lowest such threshold is 0.985 (0.98 would be 2%)
    assert V.threshold_at_far(s, y, 1e-2) == 0.985
    assert V.tar_at_far(s, y, 1e-2) == 0.5  # 0.995 and 0.985 accepted
    assert V.tar_at_far(s, y, 0.05) == 0.75  # threshold 0.95: also 0.975
    # 100 impostors cannot resolve a FAR of 1e-3: TAR is NaN, the threshold is FAR = 0's, with a warning
    assert math.isnan(V.tar_at_far(s, y, 1e-3))
    with pytest.warns(UserWarning, match="cannot be resolved with 100 impostor"):
        t = V.threshold_at_far(s, y, 1e-3)
    assert t == 0.995 and (imp >= t).sum() == 0
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        V.tar_at_far(s, y, 1.0)


def test_calibration_hits_the_requested_far_on_fresh_scores():
    rng = np.random.default_rng(4)
    for far in (1e-2, 1e-3):
        gen, imp = rng.normal(3.0, 1.0, 5000), rng.normal(0.0, 1.0, 200_000)
        s, y = _labels(gen, imp)
        t = V.threshold_at_far(s, y, far)
        on_cal = (imp >= t).mean()
        assert far - 1 / imp.size <= on_cal <= far  # as close as the impostor count allows, never above
        fresh = rng.normal(0.0, 1.0, 200_000)
        sd = math.sqrt(far * (1 - far) / fresh.size)
        assert abs((fresh >= t).mean() - far) < 4 * sd + far * 0.05


def test_report_accuracy_and_validation():
    s, y = _labels([0.2, 0.6, 0.7, 0.9], [0.1, 0.3, 0.4, 0.8])
    assert V.accuracy_at(s, y, 0.6) == 0.75
    r = V.verification_report(s, y, threshold=0.65)
    assert (r["n_pairs"], r["n_genuine"], r["n_impostor"]) == (8, 4, 4)
    assert r["eer"] == pytest.approx(0.25) and r["eer_threshold"] == pytest.approx(0.6)
    assert r["auc"] == pytest.approx(_mann_whitney([0.2, 0.6, 0.7, 0.9], [0.1, 0.3, 0.4, 0.8]))
    assert r["tar@far=1e-2"] is None and r["tar@far=1e-3"] is None  # 4 impostors resolve neither
    assert (r["far"], r["frr"], r["accuracy"]) == (0.25, 0.5, 0.625)
    assert "TAR @ FAR 1%: n/a (needs >= 100 impostor pairs, have 4)" in V.format_report(r)
    with pytest.raises(ValueError, match="both genuine"):
        V.roc_curve([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="0/1"):
        V.eer([0.1, 0.2], [1, 2])
    with pytest.raises(ValueError, match="not finite"):
        V.roc_auc([0.1, np.nan], [1, 0])


def test_all_pairs_brute_force():
    labels = np.array([3, 1, 3, 2, 1, 3])
    i, j, same = V.all_pairs(labels)
    want = [(a, b, labels[a] == labels[b]) for a in range(6) for b in range(a + 1, 6)]
    assert list(zip(i.tolist(), j.tolist(), same.tolist())) == want
    assert same.sum() == 3 + 1 and len(i) == 15


def test_plots_write_pngs(tmp_path):
    from siamjax.eval.plots import write_verification_plots

    rng = np.random.default_rng(5)
    s, y = _labels(rng.normal(1.5, 1, 300), rng.normal(0, 1, 2000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no matplotlib warnings (log axis with FAR = 0, probit of 0 / 1 ...)
        files = write_verification_plots(s, y, tmp_path / "plots", threshold=1.0, title="test")
    assert set(files) == {"roc", "det", "hist"}
    for p in files.values():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_per_identity_counts_genuine_pairs_once_and_impostor_pairs_for_both_identities():
    import re

    from siamjax.cli.verify import IDENTITY_REGEX, identity_of
    from siamjax.eval.verification import format_per_identity, per_identity

    scores = [0.9, 0.4, 0.8, 0.3, 0.7, 0.6]
    labels = [True, True, True, False, False, False]
    ids1 = ["a", "a", "b", "a", "a", "b"]
    ids2 = ["a", "a", "b", "b", "c", "b"]  # the last: an impostor pair within b (a forgery of b)
    rows = {r["identity"]: r for r in per_identity(scores, labels, ids1, ids2, threshold=0.5)}
    assert sorted(rows) == ["a", "b", "c"]
    a, b, c = rows["a"], rows["b"], rows["c"]
    assert (a["n_genuine"], a["n_impostor"], b["n_genuine"], b["n_impostor"]) == (2, 2, 1, 2)
    assert (c["n_genuine"], c["n_impostor"], c["eer"], c["frr"]) == (0, 1, None, None)
    assert a["frr"] == 0.5 and a["far"] == 0.5  # 0.4 rejected of (0.9, 0.4); 0.7 accepted of (0.3, 0.7)
    assert b["frr"] == 0.0 and b["far"] == 0.5 and c["far"] == 1.0
    assert b["eer"] == 0.0  # 0.8 above both impostors 0.3 and 0.6
    assert "| a | 2 | 2 |" in format_per_identity(list(rows.values()))
    pattern = re.compile(IDENTITY_REGEX)
    assert [identity_of(n, pattern) for n in ("s31#4", "063/09_063.png", "063_forg/02_0113063.PNG", "plain")] == [
        "s31", "063", "063", "plain"]
    with pytest.raises(ValueError, match="does not match"):
        identity_of("x.png", re.compile(r"^(\d+)/"))
