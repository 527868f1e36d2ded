"""Guards on tracking input (issue 49, item 5): a sequence whose frames change size is refused, one line
through both command lines, naming the sequence, the frame file and both sizes; a ``0,0,0,0``
ground-truth line is an unlabelled frame, left out of success and precision."""
import dataclasses
import pathlib

import numpy as np
import pytest
from PIL import Image

from siamjax.tracking import otb_metrics as M
from siamjax.tracking import sequences as S


def _otb(root: pathlib.Path, name: str, sizes, gt: str | None = None) -> pathlib.Path:
    """OTB folder ``root/name`` with one flat JPEG frame per (w, h) in ``sizes``."""
    seq = root / name
    (seq / "img").mkdir(parents=True)
    for i, (w, h) in enumerate(sizes, start=1):
        Image.fromarray(np.full((h, w, 3), 60 + 10 * i, np.uint8)).save(seq / "img" / f"{i:04d}.jpg")
    (seq / "groundtruth_rect.txt").write_text(gt if gt is not None else "10,10,20,20\n" * len(sizes))
    return seq


def _check(message: str, name: str = "Mixed") -> None:
    assert "\n" not in message, message
    for part in (repr(name), "0004.jpg", "100x80", "128x96"):
        assert part in message, (part, message)


def test_frames_of_another_size_are_refused(tmp_path):
    seq = S.read_otb(_otb(tmp_path, "Mixed", [(128, 96)] * 3 + [(100, 80)] + [(128, 96)]))
    with pytest.raises(S.SequenceError) as e:
        S.check_frame_sizes(seq)
    _check(str(e.value))
    frames = S.iter_frames(seq)
    assert [next(frames).shape for _ in range(3)] == [(96, 128, 3)] * 3  # lazy: the good ones come first
    with pytest.raises(S.SequenceError) as e:
        next(frames)
    _check(str(e.value))
    first = S.load_frame(seq.frames[0])
    assert next(S.iter_frames(seq, first=first)) is first


def test_frames_of_one_size_pass(tmp_path):
    seq = S.read_otb(_otb(tmp_path, "Same", [(64, 48)] * 4))
    assert S.check_frame_sizes(seq) == (64, 48)
    assert [f.shape for f in S.iter_frames(seq)] == [(48, 64, 3)] * 4


def _save_siamfc(path: pathlib.Path) -> pathlib.Path:
    """A tiny untrained SiamFC checkpoint (as in tests/test_tracker.py)."""
    from siamjax.checkpoint import CheckpointIO
    from siamjax.tracking.net import Geometry, build

    widths = (4, 8, 8, 8)
    net = build(widths=widths)
    io = CheckpointIO(path)
    meta = {"kind": "siamfc", "geometry": dataclasses.asdict(Geometry()), "model": {"widths": list(widths)}, "step": 1}
    io.save(1, net.variables, {"step": np.int32(1)}, meta)
    io.wait()
    io.close()
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return _save_siamfc(tmp_path_factory.mktemp("ckpt") / "ckpt")


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: SequenceError: "), err
    return err


def test_track_cli_refuses_mixed_sizes(tmp_path, ckpt, capsys):
    from siamjax.cli.track import main

    seq = _otb(tmp_path, "Mixed", [(128, 96)] * 3 + [(100, 80)] + [(128, 96)])
    out = tmp_path / "boxes.txt"
    assert main(["--checkpoint", str(ckpt), "--sequence", str(seq), "--out", str(out), "--no_progress"]) == 1
    _check(_one_line_error(capsys))
    assert not out.exists()


def test_eval_track_refuses_mixed_sizes_before_tracking(tmp_path, ckpt, capsys):
    from siamjax.cli.track_eval import main

    root = tmp_path / "seqs"
    _otb(root, "Good", [(128, 96)] * 4)
    _otb(root, "Mixed", [(128, 96)] * 3 + [(100, 80)])
    out = tmp_path / "eval"
    assert main(["track", "--checkpoint", str(ckpt), "--sequences", str(root), "--out_dir", str(out),
                 "--no_progress"]) == 1
    _check(_one_line_error(capsys))
    assert not (out / "boxes").exists()  # refused before any sequence was tracked


def test_zero_box_is_unlabelled_in_ground_truth(tmp_path):
    seq = S.read_otb(_otb(tmp_path, "Z", [(64, 48)] * 4, gt="1,2,20,20\n0,0,0,0\n0,0,20,20\n3,4,20,20\n"))
    assert np.isnan(seq.boxes[1]).all()
    np.testing.assert_array_equal(seq.boxes[2], [0, 0, 20, 20])  # a box at the corner stays a box
    got = tmp_path / "G"
    got.mkdir()
    for i in range(1, 4):
        Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(got / f"{i:08d}.jpg")
    (got / "groundtruth.txt").write_text("1,2,20,20\n0,0,0,0\n0.0 0.0 0.0 0.0\n")
    assert np.isnan(S.read_got10k(got).boxes[1:]).all()


def test_zero_box_left_out_of_success_and_precision():
    gt = np.array([[10, 10, 20, 20], [0, 0, 0, 0], [30, 30, 20, 20]], np.float32)
    pred = np.array([[10, 10, 20, 20], [200, 200, 20, 20], [30, 30, 20, 20]], np.float32)
    r = M.evaluate_sequence(pred, gt)
    assert r["frames"] == 2 and r["precision_20"] == 1.0 and r["success_auc"] == pytest.approx(20 / 21)
    as_nan = gt.copy()
    as_nan[1] = np.nan
    np.testing.assert_array_equal(M.precision_curve(pred, gt), M.precision_curve(pred, as_nan))
    np.testing.assert_array_equal(M.success_curve(pred, gt), M.success_curve(pred, as_nan))
    ious, errors = M.frame_scores(pred, gt)
    assert ious.shape == errors.shape == (2,)
    with pytest.raises(ValueError, match="0,0,0,0"):
        M.frame_scores(pred[:1], np.zeros((1, 4)))
    # a zero prediction is still a prediction (a failure here), not left out
    assert M.evaluate_sequence(np.zeros((3, 4)), np.array([[10, 10, 20, 20]] * 3, np.float32))["frames"] == 3
