"""Tracking sequences on disk (siamjax.tracking.sequences): OTB and GOT-10k folders made in tmp_path
with tiny images, every separator, NaN / absent frames, the write_otb round trip and each error."""
import numpy as np
import pytest
from PIL import Image

from siamjax.tracking import sequences as S

H, W = 6, 8


def _images(folder, names, grey=False):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        a = np.full((H, W) if grey else (H, W, 3), 20 * i, np.uint8)
        Image.fromarray(a).save(folder / name)


def _otb(root, name="Seq", n=3, gt="0,0,4,4\n" * 3, gt_name="groundtruth_rect.txt", ext="jpg"):
    seq = root / name
    _images(seq / "img", [f"{i:04d}.{ext}" for i in range(1, n + 1)])
    if gt is not None:
        (seq / gt_name).write_text(gt)
    return seq


def _got(root, name="GOT-10k_Val_000001", n=3, gt="1,2,3,4\n" * 3, absence=None):
    seq = root / name
    _images(seq, [f"{i:08d}.jpg" for i in range(1, n + 1)])
    if gt is not None:
        (seq / "groundtruth.txt").write_text(gt)
    if absence is not None:
        (seq / "absence.label").write_text(absence)
    return seq


def _error(match_parts, fn, *args):
    with pytest.raises(S.SequenceError) as e:
        fn(*args)
    for part in match_parts:
        assert part in str(e.value), (part, str(e.value))
    return str(e.value)


@pytest.mark.parametrize("text", [
    "1,2,3,4\n5,6,7,8\n9,10,11,12\n",  # commas
    "1\t2\t3\t4\n5\t6\t7\t8\n9\t10\t11\t12\n",  # tabs
    "1 2 3 4\n5  6 7   8\n 9 10 11 12\n",  # spaces
    "1,2\t3 4\n5, 6,\t7 8\n9\t 10,11 ,12\n\n\n",  # mixed, blank trailing lines
])
def test_read_otb_separators(tmp_path, text):
    seq = S.read_otb(_otb(tmp_path, gt=text))
    assert seq.name == "Seq" and len(seq) == 3
    assert seq.boxes.dtype == np.float32 and seq.boxes.shape == (3, 4)
    np.testing.assert_array_equal(seq.boxes, np.arange(1, 13).reshape(3, 4))
    assert [p.rsplit("/", 1)[-1] for p in seq.frames] == ["0001.jpg", "0002.jpg", "0003.jpg"]


def test_read_otb_nan_lines_png_frames_and_natural_order(tmp_path):
    seq_dir = _otb(tmp_path, n=3, gt="1.5,2.25,3,4\nNaN,NaN,NaN,NaN\nnan\tnan\tnan\tnan\n", ext="png")
    # an unpadded 10.png must come after 9.png: numbers are compared by value
    _images(seq_dir / "img", ["10.png", "9.png"])
    (seq_dir / "groundtruth_rect.txt").write_text("1.5,2.25,3,4\nNaN,NaN,NaN,NaN\nnan\tnan\tnan\tnan\n"
                                                  "0,0,1,1\n0,0,2,2\n")
    seq = S.read_otb(seq_dir)
    assert [p.rsplit("/", 1)[-1] for p in seq.frames] == ["0001.png", "0002.png", "0003.png", "9.png", "10.png"]
    np.testing.assert_array_equal(seq.boxes[0], [1.5, 2.25, 3, 4])
    assert np.isnan(seq.boxes[1:3]).all()
    frame = S.load_frame(seq.frames[1])
    assert frame.dtype == np.uint8 and frame.shape == (H, W, 3)


def test_read_otb_two_target_file(tmp_path):
    seq = S.read_otb(_otb(tmp_path, gt="1,1,2,2\n" * 3, gt_name="groundtruth_rect.1.txt"))
    np.testing.assert_array_equal(seq.boxes, [[1, 1, 2, 2]] * 3)
    (tmp_path / "Seq" / "groundtruth_rect.txt").write_text("3,3,4,4\n" * 3)  # the plain file wins
    np.testing.assert_array_equal(S.read_otb(tmp_path / "Seq").boxes, [[3, 3, 4, 4]] * 3)


def test_read_got10k_absence_and_test_split(tmp_path):
    seq = S.read_got10k(_got(tmp_path, gt="1,2,3,4\n5,6,7,8\n9,10,11,12\n", absence="0\n1\n0\n"))
    assert seq.name == "GOT-10k_Val_000001" and len(seq) == 3
    np.testing.assert_array_equal(seq.boxes[[0, 2]], [[1, 2, 3, 4], [9, 10, 11, 12]])
    assert np.isnan(seq.boxes[1]).all()
    # test split: only the first frame's box
    test = S.read_got10k(_got(tmp_path, name="GOT-10k_Test_000001", n=4, gt="1,2,3,4\n"))
    np.testing.assert_array_equal(test.boxes[0], [1, 2, 3, 4])
    assert test.boxes.shape == (4, 4) and np.isnan(test.boxes[1:]).all()


def test_read_sequence_detects_layout_and_read_sequences(tmp_path):
    _otb(tmp_path, name="b_otb")
    _got(tmp_path, name="a_got")
    (tmp_path / "list.txt").write_text("a_got\nb_otb\n")
    (tmp_path / "notes").mkdir()  # a folder that is not a sequence
    seqs = S.read_sequences(tmp_path)
    assert [s.name for s in seqs] == ["a_got", "b_otb"]
    assert S.read_sequence(tmp_path / "a_got").frames[0].endswith("00000001.jpg")
    assert S.read_sequence(tmp_path / "b_otb").frames[0].endswith("img/0001.jpg")
    # the root may itself be one sequence
    assert [s.name for s in S.read_sequences(tmp_path / "b_otb")] == ["b_otb"]


def test_write_otb_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    frames = [np.full((16, 24, 3), rng.integers(0, 256, 3), np.uint8) for _ in range(3)]  # flat colours: JPEG-safe
    boxes = np.array([[1.234, 2.5, 10, 8], [np.nan] * 4, [3, 4, 5.006, 6]])
    seq = S.write_otb(tmp_path / "out" / "Written", iter(frames), boxes)
    assert seq.name == "Written" and len(seq) == 3
    assert (tmp_path / "out" / "Written" / "img" / "0003.jpg").is_file()
    np.testing.assert_allclose(seq.boxes, np.round(boxes, 2), atol=1e-5)  # 2 decimals; NaN row kept
    assert (tmp_path / "out" / "Written" / "groundtruth_rect.txt").read_text().splitlines()[0] == "1.23,2.50,10.00,8.00"
    for path, frame in zip(seq.frames, frames):
        back = S.load_frame(path)
        assert back.shape == frame.shape and np.abs(back.astype(int) - frame).max() <= 3
    _error(["already holds frames"], S.write_otb, tmp_path / "out" / "Written", frames, boxes)
    _error(["2 frames but 3 boxes"], S.write_otb, tmp_path / "short", frames[:2], boxes)


def test_load_frame_grey_to_rgb(tmp_path):
    _images(tmp_path, ["g.png"], grey=True)
    a = S.load_frame(tmp_path / "g.png")
    assert a.shape == (H, W, 3) and a.dtype == np.uint8
    _error(["frame not found", "nope.jpg"], S.load_frame, tmp_path / "nope.jpg")


# --- errors: each names the file (and line) ---------------------------------------------------------


def test_error_missing_folder_and_no_frames(tmp_path):
    _error(["sequence folder not found", "missing"], S.read_otb, tmp_path / "missing")
    _error(["sequence folder not found"], S.read_sequence, tmp_path / "missing")
    (tmp_path / "Empty" / "img").mkdir(parents=True)
    (tmp_path / "Empty" / "groundtruth_rect.txt").write_text("")
    _error(["no frames", str(tmp_path / "Empty" / "img")], S.read_otb, tmp_path / "Empty")
    (tmp_path / "NoImg").mkdir()
    _error(["no img/ folder", "NoImg"], S.read_otb, tmp_path / "NoImg")
    (tmp_path / "GotEmpty").mkdir()
    (tmp_path / "GotEmpty" / "groundtruth.txt").write_text("1,2,3,4\n")
    _error(["no frames", "GotEmpty"], S.read_got10k, tmp_path / "GotEmpty")


def test_error_missing_ground_truth(tmp_path):
    _error(["missing ground truth", "groundtruth_rect.txt"], S.read_otb, _otb(tmp_path, gt=None))
    _error(["missing ground truth", "groundtruth.txt"], S.read_got10k, _got(tmp_path, gt=None))
    (tmp_path / "plain").mkdir()
    _error(["not a sequence folder", "plain"], S.read_sequence, tmp_path / "plain")
    _error(["no sequence folders under", "plain"], S.read_sequences, tmp_path / "plain")


@pytest.mark.parametrize("line", ["1,2,3", "1,2,3,4,5", "1,2,a,4", ""])
def test_error_line_without_4_numbers(tmp_path, line):
    seq = _otb(tmp_path, gt=f"0,0,4,4\n{line}\n0,0,4,4\n")
    _error(["groundtruth_rect.txt:2:", "expected 4 numbers", repr(line)], S.read_otb, seq)


def test_error_negative_size_and_inf(tmp_path):
    seq = _otb(tmp_path, gt="0,0,4,4\n0,0,4,4\n1,1,-3,4\n")
    _error(["groundtruth_rect.txt:3:", "negative width or height", "'1,1,-3,4'"], S.read_otb, seq)
    (seq / "groundtruth_rect.txt").write_text("0,0,4,4\n0,0,inf,4\n0,0,4,4\n")
    _error(["groundtruth_rect.txt:2:", "infinite"], S.read_otb, seq)


def test_error_box_count(tmp_path):
    msg = _error(["groundtruth_rect.txt", "2 boxes for 3 frames", "fewer boxes than frames"],
                 S.read_otb, _otb(tmp_path, name="Few", gt="0,0,4,4\n" * 2))
    assert "img" in msg
    _error(["4 boxes for 3 frames", "more boxes than frames"], S.read_otb, _otb(tmp_path, name="Many", gt="0,0,4,4\n" * 4))
    _error(["groundtruth.txt", "2 boxes for 3 frames"], S.read_got10k, _got(tmp_path, name="G", gt="0,0,4,4\n" * 2))


def test_error_absence_label(tmp_path):
    _error(["absence.label", "2 lines for 3 frames"], S.read_got10k, _got(tmp_path, name="A", absence="0\n1\n"))
    _error(["absence.label:2:", "expected 0 or 1", "'x'"], S.read_got10k, _got(tmp_path, name="B", absence="0\nx\n0\n"))


def test_parse_boxes_missing_file(tmp_path):
    _error(["box file not found", "none.txt"], S.parse_boxes, tmp_path / "none.txt")
