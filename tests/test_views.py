"""Tests for siamjax.data.views: random views of unlabeled images (SimSiam / SimCLR)."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from siamjax.data.views import ViewConfig, make_views, two_views

# Two image shapes only, so the file compiles few programs (each config is a static argument:
# one compile per (config, shape)); it shares 2 CPU cores with the rest of the suite.
GREY = (6, 16, 16, 1)
RGB = (4, 12, 12, 3)
NONE = ViewConfig.none()


def _off(**kw) -> ViewConfig:
    """Every component off except those given."""
    return dataclasses.replace(NONE, **kw)


def _rand(seed: int, shape) -> jax.Array:
    """Uniform [0, 1) test images (NumPy: no compile per shape)."""
    return jnp.asarray(np.random.default_rng(seed).random(shape, np.float32))


def _blobs(shape=GREY, sigma: float = 2.0) -> jax.Array:
    """Identical centred Gaussian blobs (ink high, background ~0), ``shape`` [N, S, S, C]."""
    n, s, _, c = shape
    y, x = np.mgrid[:s, :s]
    g = np.exp(-((x - (s - 1) / 2) ** 2 + (y - (s - 1) / 2) ** 2) / (2 * sigma**2))
    return jnp.asarray(np.broadcast_to(g[None, :, :, None], shape), jnp.float32)


# ------------------------------------------------------------------------ basics, randomness


def test_shape_dtype_determinism_and_randomness():
    x = _rand(0, GREY)
    cfg = ViewConfig.handwriting()
    a = make_views(jax.random.key(1), x, cfg)
    assert a.shape == x.shape and a.dtype == jnp.float32
    np.testing.assert_array_equal(a, make_views(jax.random.key(1), x, cfg))  # deterministic
    b = make_views(jax.random.key(2), x, cfg)
    assert np.all(np.abs(np.asarray(a - b)).reshape(6, -1).max(1) > 1e-3)  # every image differs
    # Images in one batch get different randomness (identical inputs -> different views).
    same = make_views(jax.random.key(1), jnp.broadcast_to(x[:1], x.shape), cfg)
    assert np.abs(np.asarray(same[0] - same[1])).max() > 1e-3


def test_two_views_are_make_views_of_folded_keys():
    x = _rand(0, GREY)
    cfg = ViewConfig.handwriting()
    key = jax.random.key(7)
    v = two_views(key, x, cfg)
    assert v.shape == (2,) + GREY and v.dtype == jnp.float32
    assert np.all(np.abs(np.asarray(v[0] - v[1])).reshape(6, -1).max(1) > 1e-3)
    for i in (0, 1):
        np.testing.assert_allclose(v[i], make_views(jax.random.fold_in(key, i), x, cfg), atol=1e-5)
    np.testing.assert_array_equal(two_views(key, x, NONE), jnp.stack([x, x]))


def test_row_offset_split_invariance_traced_under_jit_and_vmap():
    """The view of global row r depends on r only: shards with traced offsets match the full batch."""
    x = _rand(3, GREY)
    cfg = ViewConfig.handwriting()  # every component on (elastic, stroke, noise, ...)
    key = jax.random.key(11)
    full = np.asarray(make_views(key, x, cfg))
    # As inside pmap / shard_map: under jit, a vmapped shard axis, traced offsets = shard * size.
    shards = jax.jit(jax.vmap(lambda xs, off: make_views(key, xs, cfg, off)))
    out = shards(x.reshape(2, 3, 16, 16, 1), jnp.array([0, 3], jnp.int32))  # 2 shards of 3 rows
    np.testing.assert_allclose(np.asarray(out).reshape(GREY), full, atol=1e-5)


# ------------------------------------------------------------------------ identity and crop


def test_identity_config_returns_input_exactly():
    assert NONE.is_identity and not ViewConfig.handwriting().is_identity
    assert not ViewConfig.photos().is_identity
    for shape in (GREY, RGB):
        x = _rand(1, shape)
        np.testing.assert_array_equal(make_views(jax.random.key(0), x, NONE), x)


def test_full_crop_is_identity():
    cfg = _off(crop_scale_min=1.0, crop_scale_max=1.0, crop_ratio_min=1.0, crop_ratio_max=1.0)
    assert cfg.is_identity
    # Through the full sampling + warping path: a ratio range a hair wider than 1..1.
    cfg = dataclasses.replace(cfg, crop_ratio_max=1.0 + 1e-6)
    assert not cfg.is_identity
    x = _rand(2, GREY)
    np.testing.assert_allclose(make_views(jax.random.key(3), x, cfg), x, atol=1e-5)


def test_small_crop_enlarges_centred_blob():
    x = _blobs()
    cfg = _off(crop_scale_min=0.25, crop_scale_max=0.25, crop_ratio_min=1.0, crop_ratio_max=1.0)
    y = make_views(jax.random.key(4), x, cfg)
    ink_in = np.sum(np.asarray(x) > 0.5, axis=(1, 2, 3))
    ink_out = np.sum(np.asarray(y) > 0.5, axis=(1, 2, 3))
    assert np.all(ink_out > 1.5 * ink_in), (ink_in, ink_out)


# ------------------------------------------------------------------------ elastic, stroke


def _grid(shape=GREY) -> jax.Array:
    """Stroke-like test images: a 1-px grid of lines every 3 px, ink 1 on 0, margin 2 px."""
    g = np.zeros(shape[1:3], np.float32)
    g[2:-2:3, 2:-2] = 1.0
    g[2:-2, 2:-2:3] = 1.0
    return jnp.asarray(np.broadcast_to(g[None, :, :, None], shape))


def test_elastic_moves_pixels_and_keeps_ink():
    x = _grid()
    y = make_views(jax.random.key(8), x, _off(elastic_prob=1.0, elastic_alpha=1.0, elastic_sigma=3.0))
    ink_in, ink_out = np.sum(np.asarray(x), axis=(1, 2, 3)), np.sum(np.asarray(y), axis=(1, 2, 3))
    np.testing.assert_allclose(ink_out, ink_in, rtol=0.2)
    assert np.all(np.abs(np.asarray(y - x)).reshape(6, -1).max(1) > 0.3)  # every image deformed


def test_stroke_jitter_dilates_or_erodes():
    x = _rand(9, GREY)
    cfg = _off(stroke_prob=1.0)
    kinds = []
    for seed in range(4):  # 24 images
        y = np.asarray(make_views(jax.random.key(seed), x, cfg))
        for yi, xi in zip(y, np.asarray(x)):
            dilated, eroded = np.all(yi >= xi), np.all(yi <= xi)
            assert dilated != eroded  # exactly one of the two (random images: never unchanged)
            assert yi.sum() > xi.sum() if dilated else yi.sum() < xi.sum()
            kinds.append(dilated)
    assert 0 < sum(kinds) < len(kinds)  # both kinds occur


# ------------------------------------------------------------------------ photometric, flip


def test_brightness_and_saturation():
    cfg = _off(brightness=0.3, saturation=0.5)
    # Grey: saturation ignored, so each image is shifted by one constant in [-b, b].
    x = _rand(10, GREY)
    d = np.asarray(make_views(jax.random.key(12), x, cfg) - x).reshape(6, -1)
    np.testing.assert_allclose(d, np.broadcast_to(d[:, :1], d.shape), atol=1e-6)
    shift = d.mean(1)
    assert np.all(np.abs(shift) <= 0.3 + 1e-6) and np.ptp(shift) > 1e-3
    # Colour: saturation changes the image beyond a constant shift, but keeps its grey (luma)
    # image, which brightness shifts by one constant.
    x = np.asarray(_rand(10, RGB))
    y = np.asarray(make_views(jax.random.key(12), jnp.asarray(x), cfg))
    d = (y - x).reshape(4, -1)
    assert np.all(np.abs(d - d.mean(1, keepdims=True)).max(1) > 1e-3)
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    dl = (y @ luma - x @ luma).reshape(4, -1)
    np.testing.assert_allclose(dl, np.broadcast_to(dl[:, :1], dl.shape), atol=1e-5)


def test_contrast_keeps_mean_and_noise_adds_noise():
    x = _rand(13, GREY)
    y = np.asarray(make_views(jax.random.key(14), x, _off(contrast=0.5, noise_std=0.1)))
    d = y - np.asarray(x)
    assert 0.05 < d.std() < 0.2
    np.testing.assert_allclose(y.mean((1, 2, 3)), np.asarray(x).mean((1, 2, 3)), atol=0.03)


def test_flip_and_elastic_alpha_zero():
    x = _rand(15, GREY)
    flipped = make_views(jax.random.key(0), x, _off(flip_prob=1.0))
    np.testing.assert_allclose(flipped, x[:, :, ::-1], atol=1e-6)
    # Elastic with alpha = 0 (NONE's) is no elastic: the same warp as without it.
    zero_alpha = make_views(jax.random.key(0), x, _off(flip_prob=1.0, elastic_prob=1.0))
    np.testing.assert_array_equal(zero_alpha, flipped)


def test_photos_preset_on_colour():
    x = _rand(16, RGB)
    y = make_views(jax.random.key(17), x, ViewConfig.photos())
    assert y.shape == RGB and y.dtype == jnp.float32 and np.all(np.isfinite(np.asarray(y)))
    assert np.all(np.abs(np.asarray(y) - np.asarray(x)).reshape(4, -1).max(1) > 1e-2)


# ------------------------------------------------------------------------ config


def test_presets_and_hashable():
    hw, ph = ViewConfig.handwriting(), ViewConfig.photos()
    assert hw == ViewConfig() and hash(hw) == hash(ViewConfig())
    assert hw.flip_prob == 0.0 and hw.elastic_prob > 0 and hw.stroke_prob > 0
    assert ph.flip_prob == 0.5 and ph.crop_scale_min == 0.3 and ph.elastic_prob == 0 and ph.stroke_prob == 0
    assert ph.brightness == ph.contrast == ph.saturation == 0.4
    assert len({hw, ph, NONE}) == 3


def test_from_dict():
    assert ViewConfig.from_dict(None) == ViewConfig()
    assert ViewConfig.from_dict({"flip_prob": 0.5}).flip_prob == 0.5
    cd = ml_collections.ConfigDict({"rotation_deg": 5, "crop_scale_min": 0.5})
    cfg = ViewConfig.from_dict(cd)
    assert cfg.rotation_deg == 5.0 and isinstance(cfg.rotation_deg, float) and cfg.crop_scale_min == 0.5
    with pytest.raises(ValueError, match=r"unknown ViewConfig keys \['bogus'\].*known keys.*crop_scale_min"):
        ViewConfig.from_dict({"bogus": 1, "flip_prob": 0.5})


@pytest.mark.parametrize("bad", [
    {"crop_scale_min": 0.0}, {"crop_scale_min": 0.9, "crop_scale_max": 0.8}, {"crop_scale_max": 1.5},
    {"crop_ratio_min": 0.0}, {"crop_ratio_min": 2.0, "crop_ratio_max": 1.0},
    {"elastic_prob": 1.5}, {"stroke_prob": -0.1}, {"flip_prob": 2.0},
    {"rotation_deg": -1.0}, {"shear": -0.1}, {"translate_px": -1.0}, {"elastic_alpha": -1.0},
    {"elastic_sigma": 0.0}, {"brightness": -0.1}, {"contrast": 1.5}, {"saturation": -0.2},
    {"noise_std": -0.01}, {"fill": float("nan")}, {"rotation_deg": "ten"}, {"flip_prob": None},
])
def test_bad_values_rejected(bad):
    with pytest.raises(ValueError):
        ViewConfig.from_dict(bad)
