"""Tests for siamjax.data: preprocessing, LabeledImages, the Omniglot loader and samplers."""

from __future__ import annotations

import io
import json
import pathlib
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image

from siamjax.data import (
    BalancedPairSampler,
    LabeledImages,
    PairIndex,
    PKSampler,
    Preprocessing,
    alphabet_names,
    default_cache_dir,
    load_omniglot,
    preprocess_batch,
    preprocess_image,
    to_float,
)
from siamjax.data import omniglot as omniglot_mod

FIRST3 = ["Alphabet_of_the_Magi", "Anglo-Saxon_Futhorc", "Arcadian"]  # 20 + 29 + 26 characters


@pytest.fixture(scope="session")
def omni3(omniglot_dir) -> LabeledImages:
    """The first three background alphabets at 105x105, no cache (1,500 images)."""
    return load_omniglot(omniglot_dir, "background", alphabets=3, cache_dir=False)


def _png_bytes(arr: np.ndarray) -> bytes:
    """PNG file bytes of an array (bool -> PIL mode "1", like Omniglot)."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------------------
# preprocess


RNG = np.random.default_rng(0)
INPUTS = {
    "bool": RNG.random((50, 60)) > 0.8,
    "uint8": RNG.integers(0, 256, (105, 105), dtype=np.uint8),
    "uint8_hw1": RNG.integers(0, 256, (30, 40, 1), dtype=np.uint8),
    "la": RNG.integers(0, 256, (20, 20, 2), dtype=np.uint8),
    "rgb": RNG.integers(0, 256, (64, 80, 3), dtype=np.uint8),
    "rgba": RNG.integers(0, 256, (64, 64, 4), dtype=np.uint8),
    "uint16": RNG.integers(0, 65536, (33, 33), dtype=np.uint16),
    "float32": RNG.random((105, 105)).astype(np.float32),
    "float64": RNG.random((7, 200)),
    "float16": RNG.random((28, 28)).astype(np.float16),
    "tiny": np.ones((1, 1), dtype=bool),
}


@pytest.mark.parametrize("name", sorted(INPUTS))
@pytest.mark.parametrize("size,channels", [(28, 1), (105, 3), (32, 1)])
def test_preprocess_image_dtypes_and_shapes(name, size, channels):
    out = preprocess_image(INPUTS[name], Preprocessing(size=size, channels=channels))
    assert out.dtype == np.uint8
    assert out.shape == (size, size, channels)
    if channels == 3 and INPUTS[name].ndim == 2:
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 0] == out[..., 2]).all()


def test_preprocess_values_and_polarity():
    x = RNG.integers(0, 256, (105, 105), dtype=np.uint8)
    same = Preprocessing(size=105, invert=False)
    np.testing.assert_array_equal(preprocess_image(x, same)[..., 0], x)
    np.testing.assert_array_equal(preprocess_image(x, Preprocessing(invert=True))[..., 0], 255 - x)
    # "auto": light paper (mean > 0.5) is inverted, dark paper is kept.
    paper = np.full((40, 40), 250, np.uint8)
    paper[10:30, 18:22] = 5
    out = preprocess_image(paper, Preprocessing(size=40))[..., 0]
    assert out[0, 0] == 5 and out[20, 20] == 250
    np.testing.assert_array_equal(preprocess_image(255 - paper, Preprocessing(size=40))[..., 0], 255 - paper)
    # bool: True (white) background -> 0, False ink -> 255.
    b = np.ones((20, 20), bool)
    b[5:15, 9] = False
    ob = preprocess_image(b, Preprocessing(size=20))[..., 0]
    assert set(np.unique(ob)) == {0, 255} and ob[10, 9] == 255 and ob[0, 0] == 0
    # Full range of uint16 and float maps to 0..255; alpha composites over white.
    u16 = np.array([[0, 65535], [65535, 65535]], np.uint16)
    np.testing.assert_array_equal(preprocess_image(u16, Preprocessing(size=2, invert=False))[..., 0], [[0, 255], [255, 255]])
    fl = np.array([[0.0, 1.0]], np.float32)
    np.testing.assert_array_equal(preprocess_image(fl, Preprocessing(size=1, invert=False)).ravel(), [128])
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black -> white paper -> 0 after "auto"
    rgba[1, 1] = [0, 0, 0, 255]  # one opaque black ink pixel
    o = preprocess_image(rgba, Preprocessing(size=4))[..., 0]
    assert o[1, 1] == 255 and o.sum() == 255
    # RGB -> grey uses the PIL "L" weights.
    for colour, weight in zip(np.eye(3, dtype=np.uint8) * 255, (0.299, 0.587, 0.114)):
        solid = np.broadcast_to(colour, (3, 3, 3))
        grey = preprocess_image(solid, Preprocessing(size=3, invert=False))
        assert (grey == round(255 * weight)).all()


def test_integer_fast_path_matches_float_path():
    x = RNG.integers(0, 256, (6, 105, 105), dtype=np.uint8)
    x[:3] = 255 - x[:3] // 4  # light images: "auto" inverts these
    for invert in (True, False, "auto"):
        spec = Preprocessing(size=105, invert=invert)
        np.testing.assert_array_equal(preprocess_batch(x, spec), preprocess_batch(x.astype(np.float32) / 255, spec))
    b = RNG.random((4, 105, 105)) > 0.3
    spec = Preprocessing(size=105)
    np.testing.assert_array_equal(preprocess_batch(b, spec), preprocess_batch(b.astype(np.float64), spec))


def test_resize_matches_pil_bilinear():
    x = RNG.random((105, 105)).astype(np.float32)
    for size in (28, 32, 150):
        ref = np.asarray(Image.fromarray(x, "F").resize((size, size), Image.Resampling.BILINEAR))
        ref = np.rint(np.clip(ref * 255, 0, 255)).astype(np.uint8)
        out = preprocess_image(x, Preprocessing(size=size, invert=False))[..., 0]
        assert np.abs(out.astype(int) - ref).max() <= 1
        assert (out == ref).mean() > 0.99


@pytest.mark.parametrize(
    "image,match",
    [
        (np.zeros((0, 5), np.uint8), "empty"),
        (np.zeros((5, 0, 3), np.uint8), "empty"),
        (np.zeros(5, np.uint8), "shape"),
        (np.zeros((2, 5, 5, 1), np.uint8), "shape"),
        (np.zeros((5, 5), np.int32), "dtype"),
        (np.zeros((5, 5), np.complex64), "dtype"),
        (np.zeros((5, 5, 5), np.uint8), "channel"),
        (np.full((5, 5), 2.0), r"\[0, 1\]"),
        (np.full((5, 5), np.nan), "NaN"),
    ],
)
def test_preprocess_image_errors(image, match):
    with pytest.raises(ValueError, match=match):
        preprocess_image(image, Preprocessing())


def test_preprocess_batch_stacked_and_ragged():
    spec = Preprocessing(size=28)
    stack = RNG.random((5, 50, 50)) > 0.9
    stack[2] = ~stack[2]  # mixed polarity inside one stacked batch
    out = preprocess_batch(stack, spec)
    assert out.shape == (5, 28, 28, 1) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.stack([preprocess_image(s, spec) for s in stack]))
    assert (out.reshape(5, -1).mean(axis=1) < 128).all()  # ink high, background low in every image
    rgb = RNG.integers(0, 256, (3, 20, 30, 3), dtype=np.uint8)
    assert preprocess_batch(rgb, Preprocessing(size=16, channels=3)).shape == (3, 16, 16, 3)
    ragged = [INPUTS["bool"], INPUTS["rgb"], INPUTS["uint16"], INPUTS["float64"]]
    out = preprocess_batch(ragged, spec)
    assert out.shape == (4, 28, 28, 1)
    np.testing.assert_array_equal(out[1], preprocess_image(INPUTS["rgb"], spec))
    assert preprocess_batch([], spec).shape == (0, 28, 28, 1)
    assert preprocess_batch(np.zeros((0, 9, 9), np.uint8), spec).shape == (0, 28, 28, 1)
    with pytest.raises(ValueError, match="image 1"):
        preprocess_batch([INPUTS["bool"], np.zeros((3, 3), np.int64)], spec)
    with pytest.raises(ValueError, match="stacked"):
        preprocess_batch(np.zeros((2, 2, 2, 2, 2), np.uint8), spec)


def test_preprocessing_dict_round_trip_and_validation():
    for spec in (Preprocessing(), Preprocessing(size=28, channels=3, invert=True, mean=0.1, std=0.3), Preprocessing(invert=False)):
        d = json.loads(json.dumps(spec.to_dict()))
        assert Preprocessing.from_dict(d) == spec
    assert Preprocessing.from_dict({"size": 28}) == Preprocessing(size=28)
    with pytest.raises(ValueError, match="unknown"):
        Preprocessing.from_dict({"size": 28, "colour": 1})
    for bad in ({"size": 0}, {"channels": 2}, {"invert": "yes"}, {"std": 0.0}, {"mean": float("nan")}):
        with pytest.raises(ValueError):
            Preprocessing(**bad)


def test_to_float_jit():
    import jax

    spec = Preprocessing(mean=0.2, std=0.5)
    x = RNG.integers(0, 256, (2, 4, 4, 1), dtype=np.uint8)
    y = jax.jit(lambda a: to_float(a, spec))(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(np.asarray(y), (x / 255.0 - 0.2) / 0.5, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(to_float(x, Preprocessing())), x / 255.0, atol=1e-7)


def test_real_png_polarity(omniglot_dir):
    with zipfile.ZipFile(omniglot_dir / "images_background.zip") as zf:
        data = zf.read("images_background/Latin/character07/0689_03.png")
    raw = np.asarray(Image.open(io.BytesIO(data)))
    assert raw.dtype == np.bool_ and raw.shape == (105, 105)
    out = preprocess_image(raw, Preprocessing())[..., 0]
    assert (out[raw] == 0).all() and (out[~raw] == 255).all()  # paper -> 0, ink -> 255
    assert out.mean() < 0.2 * 255
    small = preprocess_image(raw, Preprocessing(size=28))[..., 0]
    assert small.mean() < 0.2 * 255 and small.max() > 200 and np.median(small) == 0


# ----------------------------------------------------------------------------------------
# LabeledImages


def _toy() -> LabeledImages:
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    return LabeledImages(
        images=np.arange(8, dtype=np.uint8).reshape(8, 1, 1, 1),
        labels=labels,
        groups=np.array([0, 0, 0, 0, 1, 1, 2, 2]),
        instances=np.array([0, 1] * 4),
        class_names=["A/c1", "A/c2", "B/c1", "C/c1"],
        group_names=["A", "B", "C"],
    )


def test_labeled_images_subset_and_select_groups():
    d = _toy()
    assert len(d) == 8 and d.num_classes == 4 and d.num_groups == 3
    assert d.labels.dtype == np.int32 and d.groups.dtype == np.int32
    s = d.subset(np.array([6, 7, 2]))
    np.testing.assert_array_equal(s.labels, [1, 1, 0])
    np.testing.assert_array_equal(s.groups, [1, 1, 0])
    assert s.class_names == ["A/c2", "C/c1"] and s.group_names == ["A", "C"]
    np.testing.assert_array_equal(s.images.ravel(), [6, 7, 2])
    m = d.subset(d.labels != 1)
    assert m.class_names == ["A/c1", "B/c1", "C/c1"] and set(m.labels.tolist()) == {0, 1, 2}
    assert len(d.subset(slice(0, 4))) == 4
    b = d.select_groups(["B", "C"])
    assert b.group_names == ["B", "C"] and b.class_names == ["B/c1", "C/c1"] and len(b) == 4
    a = d.select_groups("B", exclude=True)
    assert a.group_names == ["A", "C"] and len(a) == 6
    for sub in (s, m, b, a):  # names stay consistent with labels
        for lab, grp in zip(sub.labels, sub.groups):
            assert sub.class_names[lab].split("/")[0] == sub.group_names[grp]
    with pytest.raises(ValueError, match="did you mean 'B'"):
        d.select_groups(["b"])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        LabeledImages(d.images, np.array([0, 1, 2, 4] * 2), d.groups, d.instances, d.class_names, d.group_names)
    with pytest.raises(ValueError, match="uint8"):
        LabeledImages(d.images.astype(np.float32), d.labels, d.groups, d.instances, d.class_names, d.group_names)


# ----------------------------------------------------------------------------------------
# Omniglot loader


def test_alphabet_names_without_decoding(omniglot_dir, monkeypatch):
    monkeypatch.setattr(omniglot_mod, "_decode_png", lambda *a: pytest.fail("decoded an image"))
    bg = alphabet_names(omniglot_dir, "background")
    ev = alphabet_names(omniglot_dir, "evaluation")
    assert len(bg) == 30 and len(ev) == 20 and not set(bg) & set(ev)
    assert bg == sorted(bg) and bg[:3] == FIRST3 and "Latin" in bg and "Tengwar" in ev
    assert alphabet_names(omniglot_dir / "images_evaluation.zip", "evaluation") == ev


def test_load_omniglot_three_alphabets(omni3):
    d = omni3
    assert d.group_names == FIRST3
    assert d.num_classes == 20 + 29 + 26 and len(d) == 20 * d.num_classes
    assert d.images.shape == (len(d), 105, 105, 1) and d.images.dtype == np.uint8
    for arr in (d.labels, d.groups, d.instances):
        assert arr.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(d.labels), np.full(d.num_classes, 20))  # 20 drawers each
    np.testing.assert_array_equal(d.labels, np.repeat(np.arange(d.num_classes), 20))  # dense, sorted
    np.testing.assert_array_equal(d.instances, np.tile(np.arange(20), d.num_classes))  # drawers 0..19
    np.testing.assert_array_equal(np.bincount(d.groups), [400, 580, 520])
    assert d.class_names[0] == "Alphabet_of_the_Magi/character01"
    assert d.class_names[19] == "Alphabet_of_the_Magi/character20"
    assert d.class_names[20] == "Anglo-Saxon_Futhorc/character01"
    for lab, grp in zip(d.labels[::97], d.groups[::97]):
        assert d.class_names[lab].split("/")[0] == d.group_names[grp]
    # Ink is high: mostly-zero images, each with some ink.
    per_image = d.images.reshape(len(d), -1)
    assert (np.median(per_image, axis=1) == 0).all() and (per_image.max(axis=1) == 255).all()
    assert per_image.mean() < 0.2 * 255


def test_load_omniglot_filter_and_spec(omniglot_dir):
    d = load_omniglot(omniglot_dir, alphabets=["Latin", "Greek"], spec=Preprocessing(size=28, channels=3), cache_dir=False)
    assert d.group_names == ["Greek", "Latin"]  # sorted regardless of the order asked
    assert d.num_classes == 24 + 26 and len(d) == 20 * 50
    assert d.images.shape == (1000, 28, 28, 3)
    assert d.class_names[24] == "Latin/character01"
    ev = load_omniglot(omniglot_dir / "images_evaluation.zip", "evaluation", Preprocessing(size=28), alphabets=1, cache_dir=False)
    assert ev.group_names == ["Angelic"] and len(ev) == 20 * ev.num_classes and ev.images.shape[1:] == (28, 28, 1)


def test_load_omniglot_errors(omniglot_dir, tmp_path):
    with pytest.raises(ValueError, match="did you mean 'Latin'"):
        load_omniglot(omniglot_dir, alphabets=["Latn"], cache_dir=False)
    with pytest.raises(ValueError, match="Japanese_\\(hiragana\\)"):
        load_omniglot(omniglot_dir, alphabets=["japanese_hiragana"], cache_dir=False)
    with pytest.raises(ValueError, match="30 alphabets"):
        load_omniglot(omniglot_dir, alphabets=31, cache_dir=False)
    with pytest.raises(FileNotFoundError, match="images_background.zip"):
        load_omniglot(tmp_path / "missing", cache_dir=False)
    with pytest.raises(FileNotFoundError, match="images_evaluation"):
        load_omniglot(tmp_path, "evaluation", cache_dir=False)
    with pytest.raises(ValueError, match="split"):
        load_omniglot(omniglot_dir, "train", cache_dir=False)
    with pytest.raises(ValueError, match="evaluation split"):
        load_omniglot(omniglot_dir / "images_evaluation.zip", "background", cache_dir=False)


def _make_zip(path: pathlib.Path, extra: dict[str, bytes] | None = None) -> dict[str, np.ndarray]:
    """A tiny Omniglot-like zip: 2 alphabets x 2 characters x 3 drawers of 12x12 mode "1" PNGs."""
    rng = np.random.default_rng(1)
    images = {}
    with zipfile.ZipFile(path, "w") as zf:
        for alpha in ("Beta", "Alpha"):
            for c in (2, 1):
                for drawer in (3, 1, 2):
                    arr = rng.random((12, 12)) > 0.2
                    name = f"images_background/{alpha}/character{c:02d}/00{c}{len(alpha)}_{drawer:02d}.png"
                    zf.writestr(name, _png_bytes(arr))
                    images[name] = arr
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return images


def test_zip_layout_order_and_unsafe_members(tmp_path, monkeypatch):
    zpath = tmp_path / "data" / "images_background.zip"
    zpath.parent.mkdir()
    evil = {"../evil.png": b"x", "images_background/../../evil2.png": b"x", "/tmp/evil3.png": b"x"}
    images = _make_zip(zpath, evil)
    opened = []
    real_open = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        opened.append(getattr(name, "filename", name))
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    with pytest.warns(UserWarning, match="skipping 3 zip member"):
        d = load_omniglot(zpath.parent, spec=Preprocessing(size=12), cache_dir=False)
    assert not set(evil) & set(opened)
    assert not (tmp_path / "evil.png").exists() and not (tmp_path.parent / "evil2.png").exists()
    assert d.group_names == ["Alpha", "Beta"] and d.class_names[:2] == ["Alpha/character01", "Alpha/character02"]
    np.testing.assert_array_equal(d.instances, np.tile([0, 1, 2], 4))
    np.testing.assert_array_equal(d.labels, np.repeat(np.arange(4), 3))
    first = images["images_background/Alpha/character01/0015_01.png"]
    np.testing.assert_array_equal(d.images[0, ..., 0], np.where(first, 0, 255))

    # The same tree extracted to a folder loads identically (path = folder or parent).
    root = tmp_path / "extracted"
    for name, arr in images.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_png_bytes(arr))
    for path in (root, root / "images_background"):
        e = load_omniglot(path, spec=Preprocessing(size=12), cache_dir=False)
        np.testing.assert_array_equal(e.images, d.images)
        assert e.class_names == d.class_names and (e.instances == d.instances).all()


def test_corrupt_png_names_member(tmp_path):
    zpath = tmp_path / "images_background.zip"
    _make_zip(zpath, {"images_background/Alpha/character03/0099_01.png": b"not a png"})
    with pytest.raises(ValueError, match="Alpha/character03/0099_01.png"):
        load_omniglot(zpath, cache_dir=False)


def test_cache_round_trip_and_corruption(omniglot_dir, tmp_path, monkeypatch):
    spec = Preprocessing(size=28)
    kwargs = dict(spec=spec, alphabets=["Latin", "Braille"], cache_dir=tmp_path)
    a = load_omniglot(omniglot_dir, **kwargs)
    files = sorted(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temp file left behind
    monkeypatch.setattr(omniglot_mod, "_decode_all", lambda *a, **k: pytest.fail("cache miss"))
    b = load_omniglot(omniglot_dir, **kwargs)
    monkeypatch.undo()
    for f in ("images", "labels", "groups", "instances"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
        assert getattr(a, f).dtype == getattr(b, f).dtype
    assert a.class_names == b.class_names and a.group_names == b.group_names
    # A different spec gets its own file.
    load_omniglot(omniglot_dir, spec=Preprocessing(size=20), alphabets=["Braille"], cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2
    # A corrupt file is ignored (with a warning) and rebuilt.
    files[0].write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="ignoring unreadable"):
        c = load_omniglot(omniglot_dir, **kwargs)
    np.testing.assert_array_equal(c.images, a.images)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_omniglot(omniglot_dir, **kwargs)
    monkeypatch.setenv("SIAMJAX_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"


# ----------------------------------------------------------------------------------------
# Samplers


def _uneven() -> tuple[np.ndarray, np.ndarray]:
    """Group 0: 2 classes; group 1: 50 classes; 5 images per class."""
    labels = np.repeat(np.arange(52), 5)
    groups = np.repeat(np.r_[np.zeros(2, int), np.ones(50, int)], 5)
    return labels, groups


def test_balanced_pairs_on_real_labels(omni3):
    labels, groups = omni3.labels, omni3.groups
    s = BalancedPairSampler(labels, groups, batch_size=512, seed=3)
    for step in (0, 1, 1234):
        p = s(step)
        assert isinstance(p, PairIndex) and len(p) == 512
        assert p.left.dtype == np.int64 and p.right.dtype == np.int64 and p.same.dtype == np.float32
        assert p.same.sum() == 256 and set(np.unique(p.same)) == {0.0, 1.0}
        pos, neg = p.same == 1, p.same == 0
        assert (labels[p.left[pos]] == labels[p.right[pos]]).all() and (p.left[pos] != p.right[pos]).all()
        assert (labels[p.left[neg]] != labels[p.right[neg]]).all()
        assert 0 < pos[:256].sum() < 256  # shuffled, not positives first
    # Pure function of (seed, step): a fresh sampler, any call order.
    t = BalancedPairSampler(labels, groups, batch_size=512, seed=3)
    t(99)
    for f in ("left", "right", "same"):
        np.testing.assert_array_equal(getattr(s(7), f), getattr(t(7), f))
    assert not np.array_equal(s(7).left, s(8).left)
    assert not np.array_equal(s(7).left, BalancedPairSampler(labels, groups, 512, seed=4)(7).left)


def test_balanced_group_evenness_and_same_group_fraction():
    labels, groups = _uneven()
    for q in (0.0, 0.5, 0.9):
        s = BalancedPairSampler(labels, groups, batch_size=256, seed=0, same_group_negatives=q)
        pos_g, neg_same, neg_first = [], [], []
        for step in range(60):
            p = s(step)
            pos, neg = p.same == 1, p.same == 0
            pos_g.append(groups[p.left[pos]])
            neg_same.append(groups[p.left[neg]] == groups[p.right[neg]])
            neg_first.append(groups[np.r_[p.left[neg], p.right[neg]]])
        assert abs(np.concatenate(pos_g).mean() - 0.5) < 0.03  # groups drawn evenly, not by size
        # The 2-class group always has a partner class in its own group, so same-group ~ q.
        assert abs(np.concatenate(neg_same).mean() - q) < 0.03
    # Real Omniglot-like sizes: every group roughly equally often over many batches.
    rng = np.random.default_rng(0)
    sizes = rng.integers(14, 56, 30)
    glabels = np.repeat(np.arange(sizes.sum()), 20)
    ggroups = np.repeat(np.repeat(np.arange(30), sizes), 20)
    s = BalancedPairSampler(glabels, ggroups, batch_size=512, seed=1)
    counts = np.bincount(np.concatenate([ggroups[s(i).left[s(i).same == 1]] for i in range(40)]), minlength=30)
    assert counts.min() > 0.75 * counts.mean() and counts.max() < 1.25 * counts.mean()


def test_balanced_errors_and_single_image_classes():
    labels, groups = _uneven()
    with pytest.raises(ValueError, match="even"):
        BalancedPairSampler(labels, groups, batch_size=7, seed=0)
    with pytest.raises(ValueError, match="no class has 2"):
        BalancedPairSampler(np.arange(10), np.zeros(10, int), batch_size=8, seed=0)
    with pytest.raises(ValueError, match="at least 2 classes"):
        BalancedPairSampler(np.zeros(10, int), np.zeros(10, int), batch_size=8, seed=0)
    with pytest.raises(ValueError, match="more than one group"):
        BalancedPairSampler(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), batch_size=2, seed=0)
    with pytest.raises(ValueError, match="same_group_negatives"):
        BalancedPairSampler(labels, groups, batch_size=8, seed=0, same_group_negatives=1.5)
    # Classes 3 and 4 have one image each: excluded from positives, still in negatives.
    lab = np.array([0, 0, 0, 1, 1, 2, 2, 3, 4])
    with pytest.warns(UserWarning, match="2 of 5 classes have a single image"):
        s = BalancedPairSampler(lab, None, batch_size=64, seed=0)
    seen_neg = set()
    for step in range(30):
        p = s(step)
        pos = p.same == 1
        assert not np.isin(lab[p.left[pos]], [3, 4]).any()
        assert (p.left[pos] != p.right[pos]).all()
        seen_neg |= set(lab[np.r_[p.left[~pos], p.right[~pos]]].tolist())
    assert seen_neg == {0, 1, 2, 3, 4}
    with pytest.raises(ValueError, match="step"):
        s(-1)


def test_pk_sampler(omni3):
    labels, groups = omni3.labels, omni3.groups
    s = PKSampler(labels, groups, p=16, k=4, seed=0)
    for step in range(20):
        idx = s(step)
        assert idx.dtype == np.int64 and idx.shape == (64,)
        blocks = labels[idx].reshape(16, 4)
        assert (blocks == blocks[:, :1]).all()  # k consecutive of one class
        assert len(set(blocks[:, 0].tolist())) == 16  # p distinct classes
        assert all(len(set(row)) == 4 for row in idx.reshape(16, 4).tolist())  # k distinct images
    np.testing.assert_array_equal(s(5), PKSampler(labels, groups, p=16, k=4, seed=0)(5))
    assert not np.array_equal(s(5), s(6))
    assert not np.array_equal(s(5), PKSampler(labels, groups, p=16, k=4, seed=1)(5))
    # Per-class fallback (large classes) keeps the same guarantees.
    t = PKSampler(labels, groups, p=16, k=4, seed=0)
    t._MAX_DENSE = 0
    idx = t(3).reshape(16, 4)
    assert (labels[idx] == labels[idx[:, :1]]).all() and all(len(set(r)) == 4 for r in idx.tolist())


def test_pk_sampler_groups_short_classes_and_errors():
    labels, groups = _uneven()
    s = PKSampler(labels, groups, p=4, k=2, seed=0)
    from_small = np.mean(np.concatenate([groups[s(i)[::2]] == 0 for i in range(400)]))
    assert 0.35 < from_small < 0.46  # groups picked uniformly (expected 0.406), not by size (0.04)
    # Classes smaller than k repeat their images but keep >= 2 distinct; singletons are excluded.
    lab = np.array([0, 0, 1, 1, 1, 1, 1, 2])
    with pytest.warns(UserWarning) as rec:
        t = PKSampler(lab, None, p=2, k=4, seed=0)
    text = " ".join(str(w.message) for w in rec)
    assert "single image" in text and "fewer than k=4" in text
    for step in range(10):
        idx = t(step).reshape(2, 4)
        assert set(lab[idx[:, 0]].tolist()) == {0, 1}
        assert all(len(set(r)) >= 2 for r in idx.tolist())
        row0 = idx[lab[idx[:, 0]] == 0][0]
        assert sorted(row0.tolist()) == [0, 0, 1, 1]  # cyclic: each image twice
    with pytest.raises(ValueError, match="p=3 usable classes"), pytest.warns(UserWarning):
        PKSampler(lab, None, p=3, k=4, seed=0)
    with pytest.raises(ValueError, match="positive"):
        PKSampler(lab, None, p=0, k=4, seed=0)
    assert PKSampler(np.arange(5), None, p=5, k=1, seed=0)(0).shape == (5,)  # k=1: singletons usable


def test_rank_within_class_counts_earlier_rows_of_the_same_label():
    from siamjax.data.dataset import rank_within_class

    labels = np.array([3, 1, 3, 3, 0, 1, 7])
    np.testing.assert_array_equal(rank_within_class(labels), [0, 0, 1, 2, 0, 1, 0])
    assert rank_within_class(np.zeros(0, int)).shape == (0,)
