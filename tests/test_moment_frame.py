"""crop_frame="moments" (siamjax.data.preprocess): a square on the ink's centre of mass, of half-side
crop_radius x the ink's RMS radius, computed by hand on synthetic images; its checks, dict round trip,
config keys and how an ensemble treats a member that frames this way."""
import dataclasses
import json

import numpy as np
import pytest

from siamjax.data.preprocess import Preprocessing, preprocess_batch, preprocess_image

MOMENTS = dict(invert=False, crop_to_ink=True, crop_frame="moments")


def _square(h=40, w=40, top=10, left=20, side=10, value=255):
    img = np.zeros((h, w), np.uint8)
    img[top:top + side, left:left + side] = value
    return img


def test_frame_of_a_square_of_ink_by_hand():
    # A 10 x 10 square at rows 10..19, cols 20..29: centre (15, 25) in pixel-centre coordinates, variance
    # (10^2 - 1) / 12 = 8.25 per axis, RMS radius sqrt(16.5) = 4.06, half-side 2 x 4.06 = 8.12, so a
    # 16 x 16 frame from row 7, col 17: the square sits at rows and cols 3..12 of it.
    out = preprocess_image(_square(), Preprocessing(size=16, crop_radius=2.0, **MOMENTS))
    expected = np.zeros((16, 16, 1), np.uint8)
    expected[3:13, 3:13] = 255
    np.testing.assert_array_equal(out, expected)
    # crop_radius scales the frame: 3 x 4.06 -> a 24 x 24 frame from row 3, col 13 (the square at 7..16).
    out = preprocess_image(_square(), Preprocessing(size=24, crop_radius=3.0, **MOMENTS))
    expected = np.zeros((24, 24, 1), np.uint8)
    expected[7:17, 7:17] = 255
    np.testing.assert_array_equal(out, expected)


def test_frame_past_the_border_is_background_and_no_ink_keeps_the_whole_image():
    # The same square in the top-left corner: the frame starts at row -3, col -3; what lies outside the
    # image is 0, not the image's edge repeated.
    out = preprocess_image(_square(top=0, left=0), Preprocessing(size=16, **MOMENTS))
    expected = np.zeros((16, 16, 1), np.uint8)
    expected[3:13, 3:13] = 255
    np.testing.assert_array_equal(out, expected)
    blank = np.zeros((40, 40), np.uint8)
    blank[5, 5] = 100  # below ink_threshold: no ink
    np.testing.assert_array_equal(preprocess_image(blank, Preprocessing(size=40, **MOMENTS)),
                                  preprocess_image(blank, Preprocessing(size=40, invert=False)))


def test_a_stray_dot_moves_the_moments_frame_far_less_than_the_box():
    # A 20 x 20 square and one far dot: the box grows to take in the dot and the square shrinks in it;
    # the moments frame shrinks it far less.
    clean = _square(h=105, w=105, top=20, left=20, side=20)
    dotted = clean.copy()
    dotted[95:97, 95:97] = 255

    def ink_side(img, spec):  # the square's width in the output: the widest row of ink
        return (preprocess_image(img, spec)[..., 0] > 127).sum(axis=1).max()

    box = Preprocessing(size=64, invert=False, crop_to_ink=True, keep_aspect=True, crop_margin=0.1)
    moments = Preprocessing(size=64, **MOMENTS)
    assert ink_side(dotted, box) < 0.3 * ink_side(clean, box)
    assert ink_side(dotted, moments) > 0.6 * ink_side(clean, moments)  # 38 -> 26 px; the box: 54 -> 13


def test_dark_ink_on_light_paper_and_batches_match_one_by_one():
    rng = np.random.default_rng(3)
    spec = Preprocessing(size=20, crop_to_ink=True, crop_frame="moments")  # invert="auto"
    np.testing.assert_array_equal(preprocess_image(255 - _square(), spec),
                                  preprocess_image(_square(), dataclasses.replace(spec, invert=False)))
    stack = (rng.random((4, 50, 60)) > 0.97).astype(np.uint8) * 255
    np.testing.assert_array_equal(preprocess_batch(stack, spec), np.stack([preprocess_image(x, spec) for x in stack]))


def test_checks_and_dict_round_trip():
    for bad in ({"crop_frame": "moment"}, {"crop_frame": None}, {"crop_radius": 0.0}, {"crop_radius": -1.0},
                {"crop_radius": float("inf")}, {"crop_radius": True}, {"crop_radius": "2"}):
        with pytest.raises(ValueError, match="crop_frame|crop_radius"):
            Preprocessing(**bad)
    # At their defaults the new fields stay out of the dict (stored checkpoints and cache keys unchanged).
    assert "crop_frame" not in Preprocessing(size=28, crop_to_ink=True).to_dict()
    spec = Preprocessing(size=64, crop_to_ink=True, crop_frame="moments", crop_radius=2.5)
    d = json.loads(json.dumps(spec.to_dict()))
    assert d["crop_frame"] == "moments" and d["crop_radius"] == 2.5
    assert Preprocessing.from_dict(d) == spec
    assert spec.uncropped() == Preprocessing(size=64)


def test_config_keys_reach_the_preprocessing():
    from siamjax.configs import omniglot
    from siamjax.train.schema import check_keys_and_types
    from siamjax.train import preprocessing_from_config

    c = omniglot.get_config("moments64")
    check_keys_and_types(c)
    spec = preprocessing_from_config(c)
    assert (spec.size, spec.crop_to_ink, spec.crop_frame, spec.crop_radius) == (64, True, "moments", 2.0)
    c.data.crop_frame = "centre"
    with pytest.raises(ValueError, match="crop_frame must be one of"):
        preprocessing_from_config(c)
    # An older (flat) config without the crop keys gets Preprocessing's defaults through upgrade_config; a
    # value of the wrong type is named, not turned into True.
    from siamjax.config_layout import upgrade_config

    older = upgrade_config({"image_size": 32, "invert": "auto"})
    assert preprocessing_from_config(older) == Preprocessing(size=32)
    older = upgrade_config({"image_size": 32, "invert": "auto", "crop_to_ink": "yes"})
    with pytest.raises(ValueError, match="crop_to_ink must be True or False"):
        preprocessing_from_config(older)


def test_ensemble_counts_another_frame_as_another_crop():
    from siamjax.infer.ensemble import _crop_settings

    box = Preprocessing(size=64, crop_to_ink=True)
    assert _crop_settings(box) != _crop_settings(dataclasses.replace(box, crop_frame="moments"))
    moments = dataclasses.replace(box, crop_frame="moments")
    # The margin does not change a moments frame and the radius does not change a box.
    assert _crop_settings(moments) == _crop_settings(dataclasses.replace(moments, crop_margin=0.3))
    assert _crop_settings(box) == _crop_settings(dataclasses.replace(box, crop_radius=3.0))
    assert _crop_settings(moments) != _crop_settings(dataclasses.replace(moments, crop_radius=3.0))
