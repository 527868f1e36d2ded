"""Signature verification (SigComp2011 Dutch): the crop-to-ink / keep-aspect preprocessing on synthetic
images, its dict round trips (old dicts without the new keys still load), the config's writer split,
init_from, and the committed checkpoint on real test-writer pairs read in place from the zip."""
import csv
import io
import json
import pathlib
import zipfile

import numpy as np
import pytest
from PIL import Image

from siamjax.data.preprocess import Preprocessing, preprocess_batch, preprocess_image

REPO = pathlib.Path(__file__).resolve().parents[1]
CHECKPOINT = REPO / "pretrained" / "signatures"
ZIP_NAME = "signatures_sigcomp2011_dutch/sign_data_test.zip"
OLD_KEYS = {"size", "channels", "invert", "mean", "std"}  # a Preprocessing dict before crop / aspect existed


def _page(h=300, w=500, paper=255):
    return np.full((h, w, 3), paper, np.uint8)


# ------------------------------------------------------------------------------ preprocessing
def test_dark_stroke_in_a_corner_ends_up_centred_and_filling_the_frame():
    img = _page()
    img[250:280, 20:80] = 0  # a 30 x 60 dark stroke near the bottom-left corner of a light page
    spec = Preprocessing(size=32, crop_to_ink=True, crop_margin=0.0, keep_aspect=True)
    out = preprocess_image(img, spec)[..., 0]
    assert out.shape == (32, 32)
    # 60 x 30 -> 32 x 16, centred vertically: rows 8..23 are ink (dark ink became high), the rest padding.
    assert (out[8:24] == 255).all() and (out[:8] == 0).all() and (out[24:] == 0).all()
    # Without keep_aspect the crop is stretched over the whole frame.
    stretched = preprocess_image(img, Preprocessing(size=32, crop_to_ink=True, crop_margin=0.0))[..., 0]
    assert (stretched == 255).all()
    # Today's pipeline (no crop): the stroke stays a small blob in the corner.
    plain = preprocess_image(img, Preprocessing(size=32))[..., 0]
    assert plain[:16].max() == 0 and plain[16:, :8].max() > 100 and plain[:, 16:].max() == 0
    # The default margin (0.02 of the box's longer side: 2 px here) leaves a thin dark border.
    framed = preprocess_image(img, Preprocessing(size=32, crop_to_ink=True, keep_aspect=True))[..., 0]
    assert framed[16, 0] < 128 and framed[16, 16] == 255 and framed[16, 31] < 128


def test_keep_aspect_pads_the_shorter_side_centred():
    tall = np.full((100, 50), 200, np.uint8)  # light-on-dark (mean > 0.5 would flip): keep polarity
    out = preprocess_image(tall, Preprocessing(size=20, invert=False, keep_aspect=True))[..., 0]
    assert (out[:, 5:15] == 200).all() and (out[:, :5] == 0).all() and (out[:, 15:] == 0).all()
    wide = np.full((3, 300), 255, np.uint8)  # extreme aspect: the short side keeps at least one pixel
    out = preprocess_image(wide, Preprocessing(size=16, invert=False, keep_aspect=True))[..., 0]
    assert (out[7] == 255).all() and out.sum() == 16 * 255  # row (16 - 1) // 2
    # A square image is unaffected by keep_aspect.
    sq = np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)
    np.testing.assert_allclose(preprocess_image(sq, Preprocessing(size=20, keep_aspect=True)).astype(int),
                               preprocess_image(sq, Preprocessing(size=20)).astype(int), atol=1)


def test_image_without_ink_stays_whole():
    rng = np.random.default_rng(1)
    paper = rng.integers(180, 256, (60, 90), dtype=np.uint8)  # light paper, no value dark enough to be ink
    for keep in (False, True):
        spec = Preprocessing(size=24, crop_to_ink=True, keep_aspect=keep)
        ref = Preprocessing(size=24, keep_aspect=keep)
        np.testing.assert_allclose(preprocess_image(paper, spec).astype(int), preprocess_image(paper, ref).astype(int),
                                   atol=1)
    blank = np.full((50, 70, 3), 255, np.uint8)
    assert (preprocess_image(blank, Preprocessing(size=16, crop_to_ink=True, keep_aspect=True)) == 0).all()


def test_polarity_decides_what_is_ink():
    dark = np.zeros((80, 80), np.uint8)  # light stroke on a dark background: ink already high
    dark[5:15, 60:75] = 255
    out = preprocess_image(dark, Preprocessing(size=10, invert=False, crop_to_ink=True, crop_margin=0.0))
    assert (out == 255).all()
    # Forcing invert=True makes the background the "ink": the whole page is the box.
    out = preprocess_image(dark, Preprocessing(size=10, invert=True, crop_to_ink=True, crop_margin=0.0))
    assert out.min() < 255 and (out == 255).mean() > 0.5
    # "auto" flips light paper only: the dark-on-light page and its negative give the same crop.
    light = 255 - dark
    a = preprocess_image(light, Preprocessing(size=10, crop_to_ink=True, crop_margin=0.0))
    b = preprocess_image(dark, Preprocessing(size=10, crop_to_ink=True, crop_margin=0.0))
    np.testing.assert_array_equal(a, b)
    # ink_threshold: a faint stroke counts as ink only below its value.
    faint = np.zeros((40, 40), np.uint8)
    faint[30:38, 2:10] = 100
    box = Preprocessing(size=8, invert=False, crop_to_ink=True, crop_margin=0.0, ink_threshold=0.3)
    assert (preprocess_image(faint, box) == 100).all()
    whole = Preprocessing(size=8, invert=False, crop_to_ink=True, crop_margin=0.0, ink_threshold=0.5)
    assert (preprocess_image(faint, whole) < 100).any()


def test_batches_rgb_alpha_and_determinism():
    rng = np.random.default_rng(2)
    spec = Preprocessing(size=16, crop_to_ink=True, keep_aspect=True)
    ragged = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((30, 70), (90, 40), (16, 16))]
    ragged.append(rng.integers(0, 256, (50, 20), dtype=np.uint8) > 200)
    ragged.append(rng.random((25, 33, 4)).astype(np.float32))  # RGBA float, composited over white
    one_by_one = np.stack([preprocess_image(x, spec) for x in ragged])
    np.testing.assert_array_equal(preprocess_batch(ragged, spec), one_by_one)
    np.testing.assert_array_equal(preprocess_batch(ragged, spec), one_by_one)  # deterministic
    stacked = rng.integers(0, 256, (5, 40, 60, 3), dtype=np.uint8)
    np.testing.assert_array_equal(preprocess_batch(stacked, spec), np.stack([preprocess_image(x, spec) for x in stacked]))
    rgb = preprocess_batch(stacked, Preprocessing(size=16, channels=3, crop_to_ink=True, keep_aspect=True))
    assert rgb.shape == (5, 16, 16, 3) and rgb.dtype == np.uint8
    grey_in = preprocess_image(stacked[0, ..., 0], Preprocessing(size=16, channels=3, keep_aspect=True))
    assert (grey_in[..., 0] == grey_in[..., 2]).all()  # grey -> RGB by replication
    assert preprocess_batch([], spec).shape == (0, 16, 16, 1)
    with pytest.raises(ValueError, match="image 1"):
        preprocess_batch([ragged[0], np.zeros((0, 3), np.uint8)], spec)


def test_preprocessing_dict_round_trip_with_and_without_new_keys():
    # Defaults: the dict is exactly the one written before the options existed (checkpoints, cache keys).
    assert set(Preprocessing(size=28).to_dict()) == OLD_KEYS
    old = {"size": 28, "channels": 1, "invert": "auto", "mean": 0.0, "std": 1.0}
    spec = Preprocessing.from_dict(old)
    assert spec == Preprocessing(size=28) and not spec.crop_to_ink and not spec.keep_aspect
    new = Preprocessing(size=64, crop_to_ink=True, keep_aspect=True, ink_threshold=0.4, crop_margin=0.05)
    d = json.loads(json.dumps(new.to_dict()))
    assert set(d) == OLD_KEYS | {"crop_to_ink", "keep_aspect", "ink_threshold", "crop_margin"}
    assert Preprocessing.from_dict(d) == new
    only_crop = Preprocessing(size=64, crop_to_ink=True)
    assert Preprocessing.from_dict(json.loads(json.dumps(only_crop.to_dict()))) == only_crop
    assert Preprocessing.from_dict({"size": 64, "keep_aspect": True}) == Preprocessing(size=64, keep_aspect=True)
    for bad in ({"crop_to_ink": "yes"}, {"keep_aspect": 1}, {"ink_threshold": 1.0}, {"ink_threshold": -0.1},
                {"crop_margin": -0.01}, {"crop_margin": float("inf")}, {"ink_threshold": True}):
        with pytest.raises(ValueError):
            Preprocessing(**bad)


# ------------------------------------------------------------------------------ config and training
def test_signature_config_and_old_configs():
    from configs import folder as folder_config
    from configs import signatures as sig_config
    import siamjax.train as train_lib
    from siamjax.train.schema import check_keys_and_types

    c = sig_config.get_config()
    check_keys_and_types(c)
    assert set(folder_config.get_config().keys()) <= set(c.keys())  # every folder key kept
    spec = train_lib.preprocessing_from_config(c)
    assert spec.crop_to_ink and spec.keep_aspect and spec.channels == 1 and spec.invert == "auto"
    assert train_lib.preprocessing_from_config(folder_config.get_config()) == Preprocessing(size=28)


def _writers_folder(root: pathlib.Path, writers=("w1", "w2", "w3", "w4"), per_class=4) -> pathlib.Path:
    rng = np.random.default_rng(3)
    for w in writers:
        for cls in (w, f"{w}_forg"):
            (root / cls).mkdir(parents=True)
            for i in range(per_class):
                img = np.full((40, 70), 255, np.uint8)
                y, x = rng.integers(0, 20), rng.integers(0, 40)
                img[y:y + 15, x:x + 25] = rng.integers(0, 80, (15, 25), dtype=np.uint8)
                Image.fromarray(img).save(root / cls / f"{i}.png")
    return root


def _tiny_config(data_dir):
    from configs import signatures as sig_config

    c = sig_config.get_config()
    c.data.dir = str(data_dir)
    c.data.holdout_classes = ("w4", "w4_forg")
    c.data.val_classes = ("w3*",)
    c.data.image_size = 16
    c.eval.val_ways = 2
    c.eval.val_episodes = 4
    c.data.batch_size = 16
    c.optim.train_steps = 1
    c.optim.warmup_steps = 1
    c.log_every = 1
    c.eval.eval_every = 1
    c.checkpoint_every = 1
    return c


def test_val_classes_keep_a_writer_on_one_side(tmp_path):
    import siamjax.train as train_lib

    c = _tiny_config(_writers_folder(tmp_path / "sig"))
    train, val, spec = train_lib.load_data(c)
    assert train.class_names == ["w1", "w1_forg", "w2", "w2_forg"]
    assert val.class_names == ["w3", "w3_forg"]
    assert spec.crop_to_ink and train.images.shape[1:] == (16, 16, 1)
    c.data.val_classes = ("nobody",)
    with pytest.raises(ValueError, match="val_classes"):
        train_lib.load_data(c)
    c.data.val_classes = ("w*",)
    with pytest.raises(ValueError, match="nothing is left"):
        train_lib.load_data(c)


def test_init_from_starts_from_a_checkpoint(tmp_path):
    """A fresh run with init_from starts from the checkpoint's params (step 0's learning rate is 0 under
    the warm-up, so after one step they are still equal); another model is refused."""
    import jax

    import siamjax
    import siamjax.train as train_lib

    c = _tiny_config(_writers_folder(tmp_path / "sig"))
    c.seed = 1
    train_lib.train(c, tmp_path / "a", progress=False)
    src = siamjax.load(tmp_path / "a")
    c.seed = 2
    c.init_from = str(tmp_path / "a")
    train_lib.train(c, tmp_path / "b", progress=False)
    got = siamjax.load(tmp_path / "b")
    for x, y in zip(jax.tree.leaves(src.variables["params"]), jax.tree.leaves(got.variables["params"])):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    c.model.head = "euclidean"
    with pytest.raises(ValueError, match="another model"):
        train_lib.train(c, tmp_path / "c", progress=False)


# ------------------------------------------------------------------------------ the committed model
def _pairs(zf: zipfile.ZipFile, writers: tuple[str, ...], per_kind: int):
    """(img1, img2, same) rows of test_data.csv for ``writers``: the first ``per_kind`` genuine-genuine and
    genuine-forgery rows of each (csv target 1 = forgery pair, so same = 1 - target)."""
    rows = list(csv.reader(io.TextIOWrapper(zf.open("sign_data/test_data.csv"), encoding="utf-8")))
    picked = []
    for w in writers:
        for target in ("0", "1"):
            picked += [r for r in rows if r[0].startswith(w + "/") and r[2] == target][:per_kind]
    return [(a, b, 1 - int(t)) for a, b, t in picked]


def test_committed_checkpoint_on_real_test_writer_pairs(data_root):
    import siamjax

    zpath = data_root / ZIP_NAME
    if not zpath.is_file():
        pytest.fail(f"signature data not found at {zpath}")
    model = siamjax.load(CHECKPOINT)
    assert model.preprocessing.crop_to_ink and model.preprocessing.keep_aspect
    calib = json.loads((CHECKPOINT / "calibration.json").read_text())
    assert np.isfinite(calib["threshold"]) and 0.0 <= calib["far"] <= 1.0
    with zipfile.ZipFile(zpath) as zf:
        pairs = _pairs(zf, ("063", "065", "067", "069"), per_kind=3)
        names = sorted({p for a, b, _ in pairs for p in (a, b)})
        images = {n: np.asarray(Image.open(io.BytesIO(zf.read("sign_data/Dataset/test/" + n)))) for n in names}
    emb = dict(zip(names, model.embed([images[n] for n in names])))
    scores = model.score_embeddings(np.stack([emb[a] for a, _, _ in pairs]), np.stack([emb[b] for _, b, _ in pairs]))
    same = np.array([s for _, _, s in pairs])
    assert same.sum() == 12 and (1 - same).sum() == 12
    assert scores[same == 1].mean() > scores[same == 0].mean()
