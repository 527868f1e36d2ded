"""The SiamFC tracker (siamjax.tracking.tracker), ``python -m siamjax.cli.track`` and ``eval.py track``.

No trained network is needed: the tracking tests use honest test doubles with SiamFC's geometry
(stride 8, 63 px exemplar, 127 px search, 9x9 response), and the command-line tests a tiny untrained
SiamFC checkpoint saved here.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from siamjax.tracking import tracker as T
from siamjax.tracking.crops import context_size, crop_resize

REPO = pathlib.Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ test doubles
def _pool8(crops) -> np.ndarray:
    """float [N, S, S, C] -> [N, S // 8, S // 8, C]: means of 8x8 blocks (the stride-8 'encoder')."""
    x = np.asarray(crops, np.float64)
    n, s, _, c = x.shape
    k = s // 8
    return x[:, :k * 8, :k * 8].reshape(n, k, 8, k, 8, c).mean((2, 4))


class NCCNet:
    """SiamFC's interface and geometry; features = 8x8-pooled pixels, response = normalised
    cross-correlation of the mean-subtracted exemplar features with each search window (in [-1, 1]).
    63 px -> 7x7 features, 127 px -> 15x15, response 9x9: cell 4 looks at the search crop's centre."""

    exemplar_size, search_size, stride, context = 63, 127, 8, 0.5

    def embed(self, crops):
        return _pool8(crops)

    def respond(self, z_feat, crops):
        z = np.asarray(z_feat)[0]
        z = z - z.mean()
        z = z / (np.linalg.norm(z) + 1e-9)
        x = _pool8(crops)  # [S, 15, 15, C]
        h = z.shape[0]
        win = np.lib.stride_tricks.sliding_window_view(x, (h, h), axis=(1, 2))  # [S, r, r, C, h, h]
        win = win - win.mean(axis=(3, 4, 5), keepdims=True)
        num = np.einsum("srtcij,ijc->srt", win, z)
        return (num / (np.sqrt((win ** 2).sum(axis=(3, 4, 5))) + 1e-9)).astype(np.float32)


class PeakNet:
    """Ignores the images: every response is a Gaussian bump (sigma 0.7 cells) at ``cells[s]``
    (x, y offsets from the centre cell, one per scale) of height ``heights[s]``."""

    exemplar_size, search_size, stride, context = 63, 127, 8, 0.5

    def __init__(self, cells, heights):
        self.cells, self.heights = cells, heights

    def embed(self, crops):
        return np.zeros((1, 4, 4, 1), np.float32)

    def respond(self, z_feat, crops):
        s = crops.shape[0]
        c = np.arange(9) - 4.0
        maps = [h * np.exp(-((c[None, :] - dx) ** 2 + (c[:, None] - dy) ** 2) / (2 * 0.7 ** 2))
                for (dx, dy), h in zip(self.cells[:s], self.heights[:s])]
        return np.stack(maps).astype(np.float32)


def _texture(rng, n=8):
    return rng.integers(140, 256, (n, n, 3)).astype(np.float64)


def _paint(frame, tex, x0, y0, side):
    """Nearest-neighbour texture filling the integer box (x0, y0, side, side) of ``frame``."""
    idx = (np.arange(side) * tex.shape[0] // side)
    frame[y0:y0 + side, x0:x0 + side] = tex[idx][:, idx]


# ------------------------------------------------------------------------------ small pieces
def test_settings_defaults_and_from_dict():
    s = T.TrackerSettings()
    assert (s.scales, s.scale_step, s.scale_penalty, s.scale_lr, s.window_influence, s.response_up) == \
        (3, 1.0375, 0.9745, 0.59, 0.176, 16)
    assert T.TrackerSettings.from_dict({"scales": 5, "window_influence": 0.3}) == \
        dataclasses.replace(s, scales=5, window_influence=0.3)
    assert T.TrackerSettings.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="unknown tracker settings"):
        T.TrackerSettings.from_dict({"scale_stepp": 1.1})
    with pytest.raises(ValueError, match="odd"):
        T.TrackerSettings(scales=2)
    np.testing.assert_allclose(T.scale_factors(3, 1.0375), [1 / 1.0375, 1, 1.0375])


def test_search_crops_match_crop_resize():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    fill = np.array([10.0, 200.0, 30.0])
    sides = [20.0, 47.3, 150.0]  # the last reaches far outside the frame
    got = np.asarray(T.search_crops(frame, 70.4, 5.6, sides, 31, fill))
    want = np.stack([crop_resize(frame, 70.4, 5.6, s, 31, fill) for s in sides])
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_peak_to_displacement():
    # the centre of the 144-px upsampled map is 71.5: no move
    np.testing.assert_allclose(T.peak_to_displacement((71.5, 71.5), 144, 16, 8, 254, 127), [0, 0])
    # 16 upsampled px = 1 cell = 8 search-crop px = 8 * 254 / 127 = 16 frame px; (row, col) -> (dx, dy)
    np.testing.assert_allclose(T.peak_to_displacement((71.5 + 32, 71.5 - 16), 144, 16, 8, 254, 127), [-16, 32])
    np.testing.assert_allclose(T.peak_to_displacement((71.5, 71.5 + 8), 144, 16, 8, 127, 127), [4, 0])


def test_scale_penalty_and_smoothing():
    np.testing.assert_allclose(T.penalised_peaks(np.array([2.0, 1.0, 4.0]), 0.5), [1.0, 1.0, 2.0])
    # negative peaks are lowered too (divided), the unit scale (middle) never changes
    np.testing.assert_allclose(T.penalised_peaks(np.array([-1.0, -1.0, -2.0]), 0.5), [-2.0, -1.0, -4.0])
    np.testing.assert_allclose(T.penalised_peaks(np.array([3.0, 1.0, 1.0, 1.0, 3.0]), 0.9), [2.7, 0.9, 1, 0.9, 2.7])
    assert T.smoothed_scale(1.0, 1.0375, 0.59) == pytest.approx(0.41 + 0.59 * 1.0375)
    assert T.smoothed_scale(2.0, 1 / 1.0375, 0.59) == pytest.approx(2.0 * (0.41 + 0.59 / 1.0375))
    assert T.smoothed_scale(1.0, 1.0375, 0.0) == 1.0
    assert T.smoothed_scale(4.9, 1.5, 1.0, 0.2, 5.0) == 5.0  # clamped
    assert T.smoothed_scale(0.21, 0.5, 1.0, 0.2, 5.0) == 0.2


def test_window_prefers_the_centre_on_a_flat_response():
    w = T.hann_window(144)
    assert w.sum() == pytest.approx(1.0) and w.shape == (144, 144)
    flat = np.ones((3, 9, 9), np.float32)
    s, row, col = (int(v) for v in T.locate_peak(flat, w, 0.176, 0.9745, response_up=16))
    assert s == 1  # equal peaks: the penalty leaves the unit scale
    assert abs(row - 71.5) <= 0.5 and abs(col - 71.5) <= 0.5
    # without the window the argmax of a flat map is its first cell
    assert tuple(int(v) for v in T.locate_peak(flat, w, 0.0, 0.9745, response_up=16)[1:]) == (0, 0)


# ------------------------------------------------------------------------------ geometry through the tracker
@pytest.mark.parametrize("side", [31.5, 50.0])  # s_x / search_size = 1 and 1.587
def test_peak_moves_the_box_by_stride_times_crop_scale(side):
    frame = np.zeros((200, 300, 3), np.uint8)
    box = np.array([120.0, 70.0, side, side])
    net = PeakNet(cells=[(2, -1)], heights=[1.0])
    tr = T.SiamFCTracker(net, T.TrackerSettings(scales=1, window_influence=0.0))
    tr.init(frame, box)
    crop_scale = tr.search_side / net.search_size
    assert crop_scale == pytest.approx(context_size(side, side) * 127 / 63 / 127)
    new = tr.update(frame)
    tol = 0.5 / 16 * 8 * crop_scale + 1e-4  # half an upsampled cell
    np.testing.assert_allclose(new[:2] - box[:2], [2 * 8 * crop_scale, -1 * 8 * crop_scale], atol=tol)
    np.testing.assert_allclose(new[2:], box[2:], rtol=1e-6)  # one scale: size kept


def test_best_scale_sets_displacement_and_smoothed_size():
    frame = np.zeros((200, 300, 3), np.uint8)
    box = np.array([120.0, 70.0, 40.0, 30.0])
    st = T.TrackerSettings(window_influence=0.0)
    # the larger scale (1.0375) peaks 2% above the unit one: less than the penalty (2.55%) -> unit scale
    tr = T.SiamFCTracker(PeakNet([(0, 0), (0, 0), (1, 0)], [0.5, 1.0, 1.02]), st)
    tr.init(frame, box)
    tol = 0.5 / 16 * 8 * tr.search_side / 127 + 1e-4  # half an upsampled cell
    np.testing.assert_allclose(tr.update(frame), box, atol=tol)
    # 3% above: it wins; the move uses its crop side and the size moves 59% of the way to 1.0375
    tr = T.SiamFCTracker(PeakNet([(0, 0), (0, 0), (1, 0)], [0.5, 1.0, 1.03]), st)
    tr.init(frame, box)
    s_x = tr.search_side
    new = tr.update(frame)
    k = 0.41 + 0.59 * 1.0375
    centre = box[:2] + box[2:] / 2 + [8 * s_x * 1.0375 / 127, 0]  # one cell right at that scale's crop side
    np.testing.assert_allclose(new[2:], box[2:] * k, rtol=1e-5)
    np.testing.assert_allclose(new[:2] + new[2:] / 2, centre, atol=0.5 / 16 * 8 * s_x * 1.0375 / 127 + 1e-3)
    assert tr.exemplar_side == pytest.approx(context_size(40, 30) * k)


@pytest.mark.parametrize("crop_scale", [1.0, 2.0])
def test_target_shifted_one_stride_in_the_search_crop(crop_scale):
    """A textured square on a flat background moved by 8 search-crop px (8 * crop_scale frame px)."""
    rng = np.random.default_rng(1)
    tex = _texture(rng)
    side = 31.5 * crop_scale  # context_size = 2 * side = 63 * crop_scale: s_x = 127 * crop_scale
    n = int(side)
    frames = []
    for shift in (0, int(8 * crop_scale)):
        f = np.full((320, 320, 3), 90.0)
        _paint(f, tex, 130 + shift, 140, n)
        frames.append(f.astype(np.uint8))
    box = np.array([130.0 + (n - side) / 2, 140.0 + (n - side) / 2, side, side])
    tr = T.SiamFCTracker(NCCNet(), T.TrackerSettings(scales=1, window_influence=0.0))
    tr.init(frames[0], box)
    assert tr.search_side == pytest.approx(127 * crop_scale)
    new = tr.update(frames[1])
    np.testing.assert_allclose(new[:2] - box[:2], [8 * crop_scale, 0], atol=0.25 * crop_scale + 0.1)


def test_follows_a_moving_scaling_square_on_noise():
    from siamjax.tracking import otb_metrics as M

    rng = np.random.default_rng(0)
    tex = _texture(rng)
    frames, gt = [], []
    for t in range(30):
        side = int(round(40 * 1.01 ** t))
        cx, cy = 110 + 3 * t, 90 + 1.5 * t
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        f = 100 + rng.normal(0, 25, (240, 320, 3))
        _paint(f, tex, x0, y0, side)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
        gt.append([x0, y0, side, side])
    gt = np.array(gt, np.float32)
    boxes, spf = T.SiamFCTracker(NCCNet()).track(iter(frames), gt[0])
    assert boxes.shape == (30, 4) and boxes.dtype == np.float32
    np.testing.assert_array_equal(boxes[0], gt[0])
    ious, _ = M.frame_scores(boxes, gt)
    assert ious.mean() > 0.7, ious
    assert boxes[-1, 2] > boxes[0, 2]  # the size followed the growth
    assert spf > 0


def test_update_before_init_and_bad_boxes():
    tr = T.SiamFCTracker(NCCNet())
    with pytest.raises(RuntimeError, match="init"):
        tr.update(np.zeros((50, 50, 3), np.uint8))
    with pytest.raises(ValueError, match="w, h > 0"):
        tr.init(np.zeros((50, 50, 3), np.uint8), (1, 2, 0, 5))
    with pytest.raises(ValueError, match="no frames"):
        tr.track([], (1, 2, 3, 4))


# ------------------------------------------------------------------------------ command lines
def _save_siamfc(path: pathlib.Path, kind: str = "siamfc") -> pathlib.Path:
    """A tiny untrained SiamFC checkpoint saved the way training saves (CheckpointIO)."""
    from siamjax.checkpoint import CheckpointIO
    from siamjax.tracking.net import Geometry, build

    widths = (4, 8, 8, 8)
    net = build(widths=widths)
    io = CheckpointIO(path)
    meta = {"kind": kind, "geometry": dataclasses.asdict(Geometry()), "model": {"widths": list(widths)}, "step": 1}
    io.save(1, net.variables, {"step": np.int32(1)}, meta)
    io.wait()
    io.close()
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny checkpoint, two 6-frame OTB sequences of a square drifting right and a GOT-10k test-split
    sequence (first box only)."""
    from siamjax.tracking.sequences import write_otb

    root = tmp_path_factory.mktemp("tracking")
    ckpt = _save_siamfc(root / "ckpt")
    rng = np.random.default_rng(0)
    tex = _texture(rng)
    for k, name in enumerate(("alpha", "beta")):
        frames, boxes = [], []
        for t in range(6):
            f = 100 + rng.normal(0, 20, (96, 128, 3))
            x0 = 30 + 2 * t + 5 * k
            _paint(f, tex, x0, 30, 24)
            frames.append(np.clip(f, 0, 255).astype(np.uint8))
            boxes.append([x0, 30, 24, 24])
        write_otb(root / "seqs" / name, frames, boxes)
    # GOT-10k test-split layout: only the first box, nothing to score against
    from PIL import Image

    got = root / "seqs" / "gamma"
    got.mkdir()
    for t in range(3):
        Image.fromarray(np.full((96, 128, 3), 90, np.uint8)).save(got / f"{t + 1:08d}.jpg")
    (got / "groundtruth.txt").write_text("10,10,20,20\n")
    return root, ckpt


def test_track_cli_writes_one_line_per_frame(workspace, capsys):
    from siamjax.cli.track import main

    root, ckpt = workspace
    seq, out = root / "seqs" / "alpha", root / "alpha.txt"
    assert main(["--checkpoint", str(ckpt), "--sequence", str(seq), "--out", str(out), "--noprogress"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 6
    assert lines[0] == "30.00,30.00,24.00,24.00"  # the first ground-truth box
    assert all(len([float(v) for v in line.split(",")]) == 4 for line in lines)
    printed = capsys.readouterr().out
    assert "frames/s" in printed and "success AUC" in printed

    # frames without ground truth, with --init
    bare = root / "bare"
    bare.mkdir()
    for p in sorted((seq / "img").iterdir()):
        (bare / p.name).write_bytes(p.read_bytes())
    out2 = root / "bare.txt"
    assert main(["--checkpoint", str(ckpt), "--sequence", str(bare), "--out", str(out2), "--init", "31,30,24,24",
                 "--no_progress"]) == 0
    assert out2.read_text().splitlines()[0] == "31.00,30.00,24.00,24.00"
    assert "success AUC" not in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--init", "1,2,3"], "--init must be x,y,w,h"),
    (["--init", "500,2,3,4"], "outside"),
    (["--sequence", "/nonexistent/seq"], "sequence folder not found"),
    (["--checkpoint", "TWIN"], "not a SiamFC checkpoint"),
])
def test_track_cli_user_errors_are_one_line(workspace, tmp_path, capsys, extra, message):
    from siamjax.cli.track import main

    root, ckpt = workspace
    if "TWIN" in extra:
        extra = ["--checkpoint", str(_save_siamfc(tmp_path / "twin", kind="twin"))]
    args = {"--checkpoint": str(ckpt), "--sequence": str(root / "seqs" / "alpha"), "--out": str(tmp_path / "o.txt")}
    argv = [a for k, v in args.items() if k not in extra for a in (k, v)] + extra + ["--no_progress"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "o.txt").exists()
    if extra[0] == "--init" and extra[1] == "1,2,3":
        with pytest.raises(ValueError):
            main(argv + ["--traceback"])


def test_eval_track_writes_results_plots_and_strip(workspace, capsys):
    from siamjax.cli.track_eval import main

    root, ckpt = workspace
    out = root / "eval"
    assert main(["track", "--checkpoint", str(ckpt), "--sequences", str(root / "seqs"), "--out_dir", str(out),
                 "--strip_frames", "4", "--compare_random", "--noprogress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["sequences"]) == {"alpha", "beta"} and res["skipped"] == ["gamma"]
    for r in [res, res["random"], *res["sequences"].values()]:
        assert 0 <= r["success_auc"] <= 1 and 0 <= r["precision_20"] <= 1 and r["fps"] > 0
    assert res["n_sequences"] == 2 and res["frames"] == 12
    assert res["settings"]["scale_step"] == 1.0375
    for name in ("alpha", "beta"):
        assert len((out / "boxes" / f"{name}.txt").read_text().splitlines()) == 6
        assert (out / "boxes_random" / f"{name}.txt").is_file()
    for png in ("success_plot.png", "precision_plot.png", "strip.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "overall (mean)" in table and "untrained" in table


def test_eval_py_dispatches_track():
    proc = subprocess.run([sys.executable, "eval.py", "track", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--sequences" in proc.stdout and "--compare_random" in proc.stdout
