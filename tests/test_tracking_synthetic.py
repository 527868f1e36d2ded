"""Synthetic tracking sequences (siamjax.tracking.synthetic): determinism, frame-by-frame rendering equal to
whole generation, box geometry (inside the frame, smooth, tight around the pasted target), occluders that
cover at most half the target, look-alike distractors, the OTB writer and CLI; first on a tiny pool of
drawn images made here, then on the real shared images (disjoint train / test material)."""
import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageDraw

from siamjax.tracking import synthetic as syn
from siamjax.tracking.synthetic_sources import Sources, load_sources

SMALL = (120, 160)  # frame size of the fast tests
T = 24


def _pool(rng, n, h, w, draw):
    out = []
    for _ in range(n):
        img = Image.new("L", (w, h), 0)
        draw(ImageDraw.Draw(img), rng, w, h)
        out.append(np.asarray(img))
    return np.stack(out)


def _strokes(d, rng, w, h):
    pts = [tuple(int(v) for v in rng.integers([w // 6, h // 6], [5 * w // 6, 5 * h // 6])) for _ in range(4)]
    d.line(pts, fill=255, width=3)


def _face(d, rng, w, h):
    d.rectangle([0, 0, w, h], fill=int(rng.integers(20, 80)))
    d.ellipse([w // 6, h // 8, 5 * w // 6, 7 * h // 8], fill=int(rng.integers(120, 220)))
    d.rectangle([w // 3, h // 3, w // 2, h // 2], fill=30)


def _digit(d, rng, w, h):
    if rng.random() < 0.5:
        d.ellipse([8, 5, 20, 23], outline=255, width=3)  # a zero
    else:
        d.line([(14, 4), (14, 24)], fill=255, width=3)  # a one


@pytest.fixture(scope="module")
def fake() -> Sources:
    rng = np.random.default_rng(0)
    return Sources(characters=_pool(rng, 6, 48, 48, _strokes), faces=_pool(rng, 5, 56, 46, _face),
                   digits=_pool(rng, 6, 28, 28, _digit), signatures=_pool(rng, 3, 40, 96, _strokes)[..., None])


def _diff(a, b, t):
    """Largest channel difference per pixel between frame t of two specs, int [H, W]."""
    return np.abs(syn.render(a, t).astype(int) - syn.render(b, t).astype(int)).max(-1)


def _overlap(centers, wh, boxes):
    """Share of each frame's box covered by a w x h rectangle centred at ``centers`` [T, 2]."""
    (w, h), b = wh, boxes.astype(np.float64)
    ix = np.minimum(centers[:, 0] + w / 2, b[:, 0] + b[:, 2]) - np.maximum(centers[:, 0] - w / 2, b[:, 0])
    iy = np.minimum(centers[:, 1] + h / 2, b[:, 1] + b[:, 3]) - np.maximum(centers[:, 1] - h / 2, b[:, 1])
    return np.clip(ix, 0, None) * np.clip(iy, 0, None) / (b[:, 2] * b[:, 3])


def _inside_fraction(boxes, hw):
    H, W = hw
    b = boxes.astype(np.float64)
    ix = np.clip(np.minimum(b[:, 0] + b[:, 2], W) - np.maximum(b[:, 0], 0), 0, None)
    iy = np.clip(np.minimum(b[:, 1] + b[:, 3], H) - np.maximum(b[:, 1], 0), 0, None)
    return ix * iy / (b[:, 2] * b[:, 3])


# ------------------------------------------------------------------------------ sources
def test_sources_from_arrays(fake):
    assert fake.kinds == ("character", "face", "digit", "signature")
    assert fake.count("signature") == 3 and fake.image("signature", 2).shape == (40, 96)  # [N, H, W, 1] accepted
    assert fake.source_id("face", 4) == "face/4"
    only = Sources(digits=np.zeros((2, 28, 28), np.uint8), faces=np.zeros((0, 5, 5), np.uint8))
    assert only.kinds == ("digit",)
    with pytest.raises(ValueError, match="every pool is empty"):
        Sources(faces=np.zeros((0, 5, 5), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        Sources(faces=np.zeros((2, 5, 5), np.float32))
    with pytest.raises(ValueError, match="names for"):
        Sources(faces=np.zeros((2, 5, 5), np.uint8), ids={"face": ["a"]})


def test_load_sources_without_any_data_says_what_it_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="omniglot"):
        load_sources(tmp_path, "train")
    with pytest.raises(ValueError, match="split"):
        load_sources(tmp_path, "val")


# ------------------------------------------------------------------------------ determinism
def test_same_seed_and_index_give_the_same_pixels_other_indices_do_not(fake):
    a = syn.make_spec(fake, 7, 3, T, SMALL)
    b = syn.make_spec(fake, 7, 3, T, SMALL)
    c = syn.make_spec(fake, 7, 4, T, SMALL)
    d = syn.make_spec(fake, 8, 3, T, SMALL)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    for t in (0, 9, T - 1):
        np.testing.assert_array_equal(syn.render(a, t), syn.render(b, t))
        assert not np.array_equal(syn.render(a, t), syn.render(c, t))
        assert not np.array_equal(syn.render(a, t), syn.render(d, t))
    assert not np.allclose(a.boxes, c.boxes)


def test_render_of_one_frame_alone_equals_that_frame_of_generate(fake):
    frames, boxes = syn.generate(fake, 2, 5, T, SMALL)
    assert frames.shape == (T, *SMALL, 3) and frames.dtype == np.uint8
    assert boxes.shape == (T, 4) and boxes.dtype == np.float32
    for t in (T - 1, 13, 0):  # each from a fresh spec, later frames first
        spec = syn.make_spec(fake, 2, 5, T, SMALL)
        np.testing.assert_array_equal(syn.render(spec, t), frames[t])
    np.testing.assert_array_equal(spec.boxes, boxes)
    with pytest.raises(IndexError):
        syn.render(spec, T)


# ------------------------------------------------------------------------------ geometry
def test_boxes_stay_in_the_frame_and_move_and_scale_smoothly(fake):
    hw = (240, 320)
    starts, lo, hi = [], [], []
    for i in range(12):
        spec = syn.make_spec(fake, 11, i, 60, hw)
        b = spec.boxes.astype(np.float64)
        assert np.isfinite(b).all() and (b[:, 2:] > 0).all()
        assert _inside_fraction(b, hw).min() >= 0.7
        centre = b[:, :2] + b[:, 2:] / 2
        assert np.abs(np.diff(centre, axis=0)).max() <= 10.0  # speed <= 8 px / frame, plus rotation wobble
        size = np.sqrt(b[:, 2] * b[:, 3])
        assert np.abs(np.diff(np.log(size))).max() <= 0.05
        starts.append(size[0])
        lo.append(size.min() / size[0])
        hi.append(size.max() / size[0])
        assert 2 <= len(spec.distractors) <= 5
        assert any(d.kind == spec.target_kind for d in spec.distractors)  # a look-alike
    assert 20 <= min(starts) and max(starts) <= 70
    assert min(lo) >= 0.45 and max(hi) <= 1.8
    assert max(hi) > 1.15 or min(lo) < 0.85  # the scale does change


def _margin(spec, t):
    """How far legitimately drawn target pixels reach beyond its box: drop shadow, motion blur, resampling."""
    m = 1.5
    if spec.shadow is not None:
        dx, dy, blur, _ = spec.shadow
        m += max(abs(dx), abs(dy)) + 2 * blur
    c = spec.target.centers
    lo, hi = max(t - 1, 0), min(t + 1, len(c) - 1)
    speed = float(np.hypot(*(c[hi] - c[lo]))) / max(hi - lo, 1)
    return m + speed * syn.EXPOSURE / 2


def test_the_box_holds_the_target_and_fits_it_tightly(fake):
    tight = 0
    for i in range(10):
        spec = syn.make_spec(fake, 4, i, T, SMALL)
        for t in (0, T // 2):
            diff = _diff(spec, dataclasses.replace(spec, target=None), t)
            assert diff.sum() > 0  # the target is drawn
            x, y, w, h = spec.boxes[t]
            m = _margin(spec, t)
            yy, xx = np.mgrid[:SMALL[0], :SMALL[1]] + 0.5
            near = (xx > x - m) & (xx < x + w + m) & (yy > y - m) & (yy < y + h + m)
            assert diff[near].sum() >= 0.97 * diff.sum()
            # Without occluders (they hide part of it) and shadows, the changed pixels span the box.
            if spec.shadow is None:
                bare = dataclasses.replace(spec, occluders=())
                ys, xs = np.nonzero(_diff(bare, dataclasses.replace(bare, target=None), t) > 25)
                box = np.clip([x, y, x + w, y + h], 0, [SMALL[1], SMALL[0]] * 2)
                ext = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                assert np.abs(ext - box).max() <= m + 1.5, (i, t, ext, box)
                tight += 1
    assert tight >= 3


def test_occluders_cover_at_most_half_of_the_target():
    rng = np.random.default_rng(1)
    pool = Sources(faces=_pool(rng, 6, 56, 46, _face))
    covers = []
    for i in range(24):
        spec = syn.make_spec(pool, 3, i, 40, SMALL)
        if spec.shadow is not None:  # the sprite's size would include the shadow's padding
            continue
        for o in spec.occluders:
            assert o.kind == "occluder"
            cover = _overlap(o.centers, o.rgba.shape[1::-1], spec.boxes)
            assert cover.max() <= 0.5 + 1e-3
            assert (cover > 0).sum() <= min(syn.MAX_OCCLUDED_FRAMES, 20)  # passes by in a few frames
            covers.append(cover.max())
            t = int(cover.argmax())  # there it really hides part of the target
            d = _diff(dataclasses.replace(spec, occluders=(o,)), dataclasses.replace(spec, occluders=()), t)
            x, y, w, h = (int(v) for v in spec.boxes[t])
            assert d[max(y, 0):y + h, max(x, 0):x + w].any()
    assert len(covers) >= 3 and max(covers) > 0.15


# ------------------------------------------------------------------------------ writing
def test_cli_writes_the_otb_layout_and_a_preview(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(syn, "load_sources", lambda root, split: fake)
    out, png = tmp_path / "seqs", tmp_path / "preview.png"
    assert syn.main(["--data", str(tmp_path), "--split", "test", "--num", "2", "--frames", "7", "--seed", "3",
                     "--size", "96", "128", "--out", str(out), "--preview", str(png), "--preview_rows", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["synth_0000", "synth_0001"]
    for i in range(2):
        seq = out / f"synth_{i:04d}"
        assert sorted(p.name for p in (seq / "img").iterdir()) == [f"{t:04d}.jpg" for t in range(1, 8)]
        with Image.open(seq / "img" / "0004.jpg") as im:
            assert im.size == (128, 96) and im.mode == "RGB"
        lines = (seq / "groundtruth_rect.txt").read_text().splitlines()
        assert len(lines) == 7
        assert all(len(v.split(".")[1]) == 2 for v in lines[0].split(","))
        boxes = np.array([[float(v) for v in line.split(",")] for line in lines])
        spec = syn.make_spec(fake, 3, i, 7, (96, 128))
        np.testing.assert_allclose(boxes, spec.boxes, atol=0.006)
        jpg = np.asarray(Image.open(seq / "img" / "0001.jpg"), np.float32)
        assert np.abs(jpg - syn.render(spec, 0)).mean() < 10  # JPEG quality 95 (of grainy frames)
    with Image.open(png) as im:
        assert im.size == (6 * 128 + 5 * 2, 2 * 96 + 2)  # frame_strip: 2 px between tiles
    with pytest.raises(SystemExit):
        syn.main(["--data", str(tmp_path)])  # neither --out nor --preview


# ------------------------------------------------------------------------------ the real images
@pytest.fixture(scope="module")
def real(data_root):
    return load_sources(data_root, "train"), load_sources(data_root, "test")


def test_real_pools_train_and_test_are_disjoint(real, data_root):
    train, test = real
    assert train.kinds == test.kinds == ("character", "face", "digit", "signature")
    assert load_sources(data_root, "test") is test  # cached
    assert train.all_ids().isdisjoint(test.all_ids())
    assert train.count("face") == 300 and test.count("face") == 100
    assert train.count("digit") == 8000 and test.count("digit") == 2000
    assert {i.split("/")[1] for i in test.ids["face"]} == {f"s{k}" for k in range(31, 41)}
    assert {i.split("/")[1][:3] for i in test.ids["signature"]} == {f"{k:03d}" for k in range(63, 70)}
    assert {i.split("/")[1] for i in train.ids["character"]} == {"background"}
    hashes = [{hash(train.image("face", k).tobytes()) for k in range(train.count("face"))},
              {hash(test.image("face", k).tobytes()) for k in range(test.count("face"))}]
    assert hashes[0].isdisjoint(hashes[1])
    test_ids = test.all_ids()
    for i in range(3):  # a held-out sequence shows held-out images only
        spec = syn.make_spec(test, 0, i, 10)
        assert set(spec.source_ids) <= test_ids and len(spec.source_ids) > 10


def test_missing_folders_are_skipped_with_a_warning(data_root, tmp_path):
    (tmp_path / "mnist_test").symlink_to(data_root / "mnist_test", target_is_directory=True)
    with pytest.warns(UserWarning, match="not found, skipped"):
        only = load_sources(tmp_path, "train")
    assert only.kinds == ("digit",)
    spec = syn.make_spec(only, 0, 0, 5, SMALL)
    assert spec.target_kind == "digit" and syn.render(spec, 4).shape == (*SMALL, 3)


def test_real_sequence_is_cluttered_and_reproducible(real):
    _, test = real
    frames, boxes = syn.generate(test, 1, 0, 60)
    assert frames.shape == (60, 240, 320, 3)
    spec = syn.make_spec(test, 1, 0, 60)
    np.testing.assert_array_equal(syn.render(spec, 57), frames[57])
    assert frames[0].std() > 20  # not a plain backdrop
    assert _inside_fraction(boxes, (240, 320)).min() >= 0.7
    diff = _diff(spec, dataclasses.replace(spec, target=None), 30)
    x, y, w, h = boxes[30]
    m = _margin(spec, 30)
    near = diff[max(int(y - m), 0):int(y + h + m) + 1, max(int(x - m), 0):int(x + w + m) + 1]
    assert near.sum() >= 0.97 * diff.sum() > 0
