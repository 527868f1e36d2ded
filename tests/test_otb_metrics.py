"""OTB one-pass evaluation (siamjax.tracking.otb_metrics, .boxes) against values computed by hand, and
the tracking plots (siamjax.tracking.plots)."""
import math

import numpy as np
import pytest
from PIL import Image

from siamjax.tracking import boxes as B
from siamjax.tracking import otb_metrics as M
from siamjax.tracking import plots as P

# One 4-frame sequence, ground truth always the 10x10 box at the origin (centre (5, 5)):
GT = np.tile([0.0, 0.0, 10.0, 10.0], (4, 1))
PRED = np.array([
    [0, 0, 10, 10],  # same box: IoU 1, centre error 0
    [5, 0, 10, 10],  # shifted 5 px right: overlap 5x10 = 50, union 100 + 100 - 50 = 150 -> IoU 1/3; error 5
    [100, 100, 10, 10],  # far away: IoU 0; centre (105, 105): error sqrt(100^2 + 100^2) = 141.42
    [0, 0, 6, 10],  # inside, 6 wide: overlap 60, union 100 -> IoU 0.6; centre (3, 5): error 2
], np.float64)
# Success (IoU > t, strictly) over the 21 thresholds t = 0, 0.05, ..., 1 with IoUs [1, 1/3, 0, 0.6]:
#   t = 0 .. 0.30  (7 thresholds): 1, 1/3, 0.6 pass -> 3/4
#   t = 0.35 .. 0.55 (5):          1, 0.6         -> 2/4
#   t = 0.60 .. 0.95 (8):          1 (0.6 > 0.6 is false) -> 1/4
#   t = 1.0 (1):                   none (1 > 1 is false) -> 0
#   AUC = (7 * 3/4 + 5 * 2/4 + 8 * 1/4 + 0) / 21 = (39/4) / 21 = 13/28
SUCCESS = np.array([3 / 4] * 7 + [2 / 4] * 5 + [1 / 4] * 8 + [0])
AUC = 13 / 28
# Precision (error <= t px), errors [0, 5, 141.42, 2]: t = 0, 1 -> 1/4; t = 2 .. 4 -> 2/4; t = 5 .. 50 -> 3/4
PRECISION = np.array([1 / 4] * 2 + [2 / 4] * 3 + [3 / 4] * 46)


def test_boxes_helpers_by_hand():
    np.testing.assert_array_equal(B.to_corners([2, 3, 10, 20]), [2, 3, 12, 23])
    np.testing.assert_array_equal(B.centers([[2, 3, 10, 20]]), [[7, 13]])
    a = [0, 0, 10, 10]
    cases = [
        ([5, 0, 10, 10], 50 / 150),  # overlap 5x10 = 50, union 150
        ([5, 5, 10, 10], 25 / 175),  # overlap 5x5 = 25, union 200 - 25 = 175
        ([0, 0, 6, 10], 60 / 100),  # contained
        ([2, 2, 4, 4], 16 / 100),  # contained
        ([10, 0, 10, 10], 0.0),  # touching edges only
        ([30, 30, 5, 5], 0.0),  # apart
        ([3, 3, 0, 0], 0.0),  # zero area
    ]
    got = B.iou(np.tile(a, (len(cases), 1)), [c[0] for c in cases])
    np.testing.assert_allclose(got, [c[1] for c in cases], rtol=1e-12)
    assert B.iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0  # zero union
    assert B.iou(a, [5, 0, 10, 10]) == B.iou([5, 0, 10, 10], a)  # symmetric
    assert np.isnan(B.iou(a, [np.nan] * 4)) and np.isnan(B.iou([1, np.nan, 1, 1], a))
    # centre errors: (5,5) vs (10,5) -> 5; (5,5) vs (5+3, 5+4) with a same-size box -> sqrt(9 + 16) = 5
    np.testing.assert_allclose(B.center_error([a, a], [[5, 0, 10, 10], [3, 4, 10, 10]]), [5, 5])
    assert np.isnan(B.center_error(a, [np.nan] * 4))
    np.testing.assert_allclose(B.iou(PRED, GT), [1, 1 / 3, 0, 0.6])
    np.testing.assert_allclose(B.center_error(PRED, GT), [0, 5, math.sqrt(2) * 100, 2])


def test_success_and_precision_by_hand():
    curve = M.success_curve(PRED, GT)
    np.testing.assert_allclose(curve, SUCCESS)
    assert curve[10] == 2 / 4  # success at 0.5: IoUs 1 and 0.6
    assert M.success_auc(PRED, GT) == pytest.approx(AUC)
    np.testing.assert_allclose(M.precision_curve(PRED, GT), PRECISION)
    assert M.precision_at(PRED, GT, 20) == 3 / 4
    assert M.precision_at(PRED, GT, 4.9) == 2 / 4
    r = M.evaluate_sequence(PRED, GT)
    assert r["success_auc"] == pytest.approx(AUC) and r["precision_20"] == 3 / 4 and r["frames"] == 4
    assert r["success_curve"].shape == (21,) and r["precision_curve"].shape == (51,)


def test_nan_ground_truth_excluded_nan_prediction_failure():
    # a 5th frame without ground truth: left out, whatever the prediction
    r = M.evaluate_sequence(np.r_[PRED, [[0, 0, 10, 10]]], np.r_[GT, [[np.nan] * 4]])
    assert r["frames"] == 4 and r["success_auc"] == pytest.approx(AUC) and r["precision_20"] == 3 / 4
    # no prediction in frame 0: IoU 0 and infinite error. IoUs [0, 1/3, 0, 0.6]:
    #   t = 0 .. 0.30 (7): 2/4; t = 0.35 .. 0.55 (5): 1/4; t = 0.60 .. 1 (9): 0 -> AUC = (14/4 + 5/4) / 21 = 19/84
    #   errors [inf, 5, 141.42, 2]: at 20 px 2/4
    pred = PRED.copy()
    pred[0] = np.nan
    r = M.evaluate_sequence(pred, GT)
    assert r["frames"] == 4
    np.testing.assert_allclose(r["success_curve"], [2 / 4] * 7 + [1 / 4] * 5 + [0] * 9)
    assert r["success_auc"] == pytest.approx(19 / 84) and r["precision_20"] == 2 / 4
    assert r["precision_curve"][50] == 2 / 4
    with pytest.raises(ValueError, match="no frame with a ground-truth box"):
        M.evaluate_sequence(PRED, np.full_like(GT, np.nan))
    with pytest.raises(ValueError, match="same length"):
        M.evaluate_sequence(PRED[:3], GT)


def test_mean_over_sequences_differs_from_pooled():
    # A: the 4 frames above (AUC 13/28, P@20 3/4). B: 1 frame, perfect: IoU 1 passes t = 0 .. 0.95 (20 of
    # 21 thresholds) -> AUC 20/21; error 0 -> P@20 1.
    one = np.array([[2.0, 3.0, 4.0, 5.0]])
    r = M.evaluate_sequences([("A", PRED, GT), ("B", one, one)])
    assert r["n_sequences"] == 2 and r["frames"] == 5
    assert r["sequences"]["B"]["success_auc"] == pytest.approx(20 / 21)
    # mean over sequences: (13/28 + 20/21) / 2 = (39/84 + 80/84) / 2 = 119/168 = 17/24
    assert r["success_auc"] == pytest.approx(17 / 24)
    assert r["precision_20"] == pytest.approx((3 / 4 + 1) / 2)  # 7/8
    # pooled, IoUs [1, 1/3, 0, 0.6, 1]: t = 0 .. 0.30 (7): 4/5; 0.35 .. 0.55 (5): 3/5; 0.60 .. 0.95 (8): 2/5; 1: 0
    #   AUC = (7 * 4 + 5 * 3 + 8 * 2) / 5 / 21 = 59/105; errors [0, 5, 141, 2, 0] -> P@20 4/5
    assert r["pooled"]["success_auc"] == pytest.approx(59 / 105)
    assert r["pooled"]["precision_20"] == pytest.approx(4 / 5)
    assert r["pooled"]["frames"] == 5
    np.testing.assert_allclose(r["success_curve"], (SUCCESS + M.success_curve(one, one)) / 2)
    with pytest.raises(ValueError, match="given twice"):
        M.evaluate_sequences([("A", PRED, GT), ("A", PRED, GT)])
    with pytest.raises(ValueError, match="sequence 'Z'"):
        M.evaluate_sequences([("Z", PRED, np.full_like(GT, np.nan))])


def test_read_write_boxes(tmp_path):
    pred = np.array([[1.234, 2, 3, 4], [np.nan] * 4])
    path = M.write_boxes(tmp_path / "results" / "Seq.txt", pred)
    assert path.read_text() == "1.23,2.00,3.00,4.00\nnan,nan,nan,nan\n"
    back = M.read_boxes(path)
    np.testing.assert_allclose(back[0], [1.23, 2, 3, 4], rtol=1e-6)
    assert np.isnan(back[1]).all()
    (tmp_path / "bad.txt").write_text("1\t2\t3\t4\n1 2 3\n")
    with pytest.raises(ValueError, match=r"bad.txt:2:.*'1 2 3'"):
        M.read_boxes(tmp_path / "bad.txt")


# --- plots ---------------------------------------------------------------------------------------


def _png_size(path):
    with Image.open(path) as im:
        return im.size


def test_success_and_precision_plots(tmp_path):
    other = PRED + [[1, 0, 0, 0]] * 4
    succ = {"ours": (M.SUCCESS_THRESHOLDS, SUCCESS), "other": (M.SUCCESS_THRESHOLDS, M.success_curve(other, GT))}
    prec = {"ours": (M.PRECISION_THRESHOLDS, PRECISION), "other": (M.PRECISION_THRESHOLDS, M.precision_curve(other, GT))}
    expected = (int(P.FIGSIZE[0] * P.DPI), int(P.FIGSIZE[1] * P.DPI))  # 600 x 500
    for fn, curves, name in ((P.plot_success, succ, "success.png"), (P.plot_precision, prec, "precision.png")):
        path = fn(curves, tmp_path / "plots" / name)
        assert path == tmp_path / "plots" / name
        assert path.stat().st_size > 1000 and _png_size(path) == expected


def test_plot_legends(tmp_path, monkeypatch):
    import matplotlib.figure

    seen = {}
    save = matplotlib.figure.Figure.savefig

    def spy(fig, path, **kw):
        ax = fig.axes[0]
        seen[str(path)] = ([t.get_text() for t in ax.get_legend().get_texts()], ax.get_xlabel(), ax.get_ylabel(),
                           ax.get_title())
        return save(fig, path, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    P.plot_success({"A": (M.SUCCESS_THRESHOLDS, SUCCESS), "B": (M.SUCCESS_THRESHOLDS, np.ones(21))}, tmp_path / "s.png")
    P.plot_precision({"A": (M.PRECISION_THRESHOLDS, PRECISION)}, tmp_path / "p.png")
    # legend best first; 13/28 = 0.464
    assert seen[str(tmp_path / "s.png")] == (["B [AUC 1.000]", "A [AUC 0.464]"], "Overlap threshold", "Success rate",
                                             "Success plots of OPE")
    assert seen[str(tmp_path / "p.png")] == (["A [0.750]"], "Location error threshold (px)", "Precision",
                                             "Precision plots of OPE")


def test_frame_strip_draws_boxes(tmp_path):
    h, w, pad = 30, 40, 2
    frames = [np.zeros((h, w, 3), np.uint8) for _ in range(3)]
    gt = np.array([[20, 14, 12, 10]] * 3, float)  # columns 20 .. 31, rows 14 .. 23
    pred = np.array([[4, 20, 6, 6], [np.nan] * 4, [4, 20, 6, 6]])  # columns 4 .. 9, rows 20 .. 25
    path = P.frame_strip(frames, gt, pred, tmp_path / "strip" / "s.png", columns=2, pad=pad)
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"))
    assert a.shape == (2 * h + pad, 2 * w + pad, 3)  # 3 tiles in 2 columns -> 2 rows
    green, red, black = [0, 255, 0], [255, 0, 0], [0, 0, 0]
    for r, c in ((0, 0), (0, 1), (1, 0)):
        oy, ox = r * (h + pad), c * (w + pad)
        tile = a[oy:oy + h, ox:ox + w]
        for y, x in ((18, 20), (18, 31), (14, 25), (23, 25)):  # left, right, top and bottom edge of the gt box
            assert tile[y, x].tolist() == green, (r, c, y, x)
        assert tile[18, 25].tolist() == black  # inside the box: untouched
        assert (tile[22, 4].tolist() == red) == ((r, c) != (0, 1))  # left edge of the prediction; none in tile 1 (NaN)
        corner = tile[:14, :14].astype(int)  # the frame index, in (anti-aliased) yellow, top left
        assert ((corner[..., 0] == corner[..., 1]) & (corner[..., 0] > 100) & (corner[..., 2] == 0)).any()
    assert a[h + pad:, w + pad:].tolist() == np.full((h, w, 3), 40).tolist()  # the empty 4th cell
    only_gt = P.frame_strip(frames[:1], gt[:1], None, tmp_path / "one.png")
    assert _png_size(only_gt) == (w, h)
    with pytest.raises(ValueError, match=r"gt_boxes must be \[3, 4\]"):
        P.frame_strip(frames, gt[:2], None, tmp_path / "x.png")
