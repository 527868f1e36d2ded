"""Tests for siamjax.data.augment: Koch et al. (2015) affine distortions."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.ndimage import map_coordinates

from siamjax.data.augment import (
    AffineConfig,
    affine_matrix,
    apply_affine,
    random_affine,
    sample_affine,
    sample_affine_params,
)

STRONG = AffineConfig(prob=1.0)  # Koch magnitudes, every component always applied


# Few distinct shapes, so the suite compiles few programs (it shares 2 CPU cores).
SQ = (4, 9, 9, 2)  # square, odd
RECT = (4, 8, 11, 2)  # non-square
N_BLOB = 8


def _rand_images(seed: int, shape: tuple[int, ...]) -> jax.Array:
    return jax.random.uniform(jax.random.key(seed), shape, jnp.float32)


def _matrix(n: int = 4, **kw) -> jax.Array:
    """[n, 2, 3] copies of one forward map; unspecified components take identity values."""
    p = dict(rotation_deg=0.0, shear_x=0.0, shear_y=0.0, scale_x=1.0, scale_y=1.0, tx=0.0, ty=0.0)
    p.update(kw)
    return affine_matrix(**{k: jnp.full((n,), v, jnp.float32) for k, v in p.items()})


def _blobs(n: int = N_BLOB, size: int = 21, sigma: float = 3.0) -> jax.Array:
    """[n, size, size, 1] identical Gaussian blobs at the centre (ink high, background ~0)."""
    y, x = np.mgrid[:size, :size]
    c = (size - 1) / 2
    g = np.exp(-((x - c) ** 2 + (y - c) ** 2) / (2 * sigma**2))
    return jnp.asarray(np.broadcast_to(g[None, :, :, None], (n, size, size, 1)), jnp.float32)


# ---------------------------------------------------------------- identity


def test_none_config_is_identity():
    x = _rand_images(0, SQ)
    cfg = AffineConfig.none()
    assert cfg.rotation_deg == 0 and cfg.shear == 0 and cfg.translate_px == 0
    assert cfg.scale_min == cfg.scale_max == 1.0
    np.testing.assert_allclose(random_affine(jax.random.key(1), x, cfg), x, atol=1e-5)
    # And through the full sampling + warping path, not only the shortcut.
    mats = sample_affine(jax.random.key(2), 4, cfg)
    np.testing.assert_array_equal(mats, np.broadcast_to(np.eye(2, 3, dtype=np.float32), (4, 2, 3)))
    np.testing.assert_allclose(apply_affine(x, mats), x, atol=1e-5)


def test_prob_zero_is_identity():
    x = _rand_images(0, RECT)
    cfg = dataclasses.replace(STRONG, prob=0.0)
    np.testing.assert_allclose(apply_affine(x, sample_affine(jax.random.key(3), 4, cfg)), x, atol=1e-5)
    np.testing.assert_allclose(random_affine(jax.random.key(3), x, cfg), x, atol=1e-5)


def test_affine_matrix_identity_and_broadcasting():
    np.testing.assert_array_equal(affine_matrix(0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0), np.eye(2, 3))
    m = affine_matrix(jnp.zeros((3, 1)), 0.0, 0.0, jnp.ones((4,)), 1.0, 0.0, 0.0)
    assert m.shape == (3, 4, 2, 3) and m.dtype == jnp.float32
    np.testing.assert_array_equal(m, np.broadcast_to(np.eye(2, 3), (3, 4, 2, 3)))


def test_affine_matrix_composition():
    """A = T * R * Shear * Scale with R = [[c, s], [-s, c]] (counter-clockwise on screen)."""
    th, hx, hy, sx, sy, tx, ty = 23.0, 0.2, -0.1, 1.1, 0.9, 1.5, -0.5
    c, s = np.cos(np.deg2rad(th)), np.sin(np.deg2rad(th))
    lin = np.array([[c, s], [-s, c]]) @ np.array([[1, hx], [hy, 1]]) @ np.diag([sx, sy])
    want = np.concatenate([lin, [[tx], [ty]]], axis=1)
    np.testing.assert_allclose(affine_matrix(th, hx, hy, sx, sy, tx, ty), want, atol=1e-6)


# ---------------------------------------------------------------- geometry


@pytest.mark.parametrize("deg,k", [(90.0, 1), (-90.0, -1), (180.0, 2)])
def test_rotation_matches_rot90(deg, k):
    """Positive angles turn content counter-clockwise as displayed, like np.rot90."""
    x = _rand_images(4, SQ)
    out = apply_affine(x, _matrix(rotation_deg=deg))
    np.testing.assert_allclose(out, np.rot90(np.asarray(x), k=k, axes=(1, 2)), atol=1e-5)


def test_rotation_180_non_square():
    x = _rand_images(5, RECT)
    out = apply_affine(x, _matrix(rotation_deg=180.0))
    np.testing.assert_allclose(out, np.asarray(x)[:, ::-1, ::-1], atol=1e-5)


def test_integer_translation_shifts_with_fill():
    x = np.asarray(_rand_images(6, RECT))
    out = apply_affine(jnp.asarray(x), _matrix(tx=2.0, ty=-1.0))  # 2 px right, 1 px up
    want = np.zeros_like(x)
    want[:, :-1, 2:] = x[:, 1:, :-2]
    np.testing.assert_allclose(out, want, atol=1e-6)
    filled = np.asarray(apply_affine(jnp.asarray(x), _matrix(tx=2.0, ty=-1.0), fill=0.25))
    np.testing.assert_allclose(filled[:, :-1, 2:], x[:, 1:, :-2], atol=1e-6)
    np.testing.assert_allclose(filled[:, -1], 0.25)
    np.testing.assert_allclose(filled[:, :, :2], 0.25)


def test_half_pixel_translation_is_bilinear():
    x = np.asarray(_rand_images(7, RECT))
    out = np.asarray(apply_affine(jnp.asarray(x), _matrix(tx=0.5)))
    np.testing.assert_allclose(out[:, :, 1:], 0.5 * (x[:, :, 1:] + x[:, :, :-1]), atol=1e-6)
    np.testing.assert_allclose(out[:, :, 0], 0.5 * x[:, :, 0], atol=1e-6)  # half from the zero fill


@pytest.mark.parametrize("fill", [0.0, 0.7])
def test_matches_map_coordinates_reference(fill):
    """Random strong maps agree with jax.scipy.ndimage.map_coordinates(order=1, constant)."""
    n, h, w, c = RECT
    x = _rand_images(8, RECT)
    mats = sample_affine(jax.random.key(9), n, STRONG)
    out = apply_affine(x, mats, fill=fill)
    m = np.asarray(mats, np.float64)
    yo, xo = np.mgrid[:h, :w].astype(np.float64)
    p = np.stack([xo - (w - 1) / 2, yo - (h - 1) / 2])  # [2, h, w] output points (x, y)
    inv = np.linalg.inv(m[:, :, :2])  # [n, 2, 2]
    q = np.einsum("nij,njhw->nihw", inv, p[None] - m[:, :, 2, None, None])  # input points
    coords = jnp.asarray(np.stack([q[:, 1] + (h - 1) / 2, q[:, 0] + (w - 1) / 2], axis=1), jnp.float32)

    def one_channel(img, yx):
        return map_coordinates(img, [yx[0], yx[1]], order=1, mode="constant", cval=fill)

    per_image = jax.vmap(one_channel, in_axes=(-1, None), out_axes=-1)
    ref = jax.jit(jax.vmap(per_image))(x, coords)
    np.testing.assert_allclose(out, ref, atol=1e-4)


def test_ink_mass_follows_determinant():
    """Ink mass scales by det(M) (= 1 for rotation/translation) while the ink stays inside."""
    x = _blobs()
    mass = float(x[0].sum())
    small = AffineConfig(
        rotation_deg=5.0, shear=0.05, scale_min=0.95, scale_max=1.05, translate_px=1.0, prob=1.0
    )
    out = random_affine(jax.random.key(10), x, small)
    ratio = np.asarray(out.sum(axis=(1, 2, 3))) / mass
    assert np.all(np.abs(ratio - 1.0) < 0.15), ratio
    mats = np.asarray(sample_affine(jax.random.key(11), N_BLOB, STRONG))
    out = apply_affine(x, jnp.asarray(mats))
    ratio = np.asarray(out.sum(axis=(1, 2, 3))) / mass
    np.testing.assert_allclose(ratio, np.linalg.det(mats[:, :, :2]), rtol=0.02)


# ---------------------------------------------------------------- randomness


def test_determinism_and_independence():
    x = _blobs()  # identical images
    a = random_affine(jax.random.key(0), x, STRONG)
    b = random_affine(jax.random.key(0), x, STRONG)
    c = random_affine(jax.random.key(1), x, STRONG)
    np.testing.assert_array_equal(a, b)
    assert float(jnp.abs(a - c).max()) > 1e-2
    a = np.asarray(a)
    for i in range(N_BLOB):
        for j in range(i + 1, N_BLOB):
            assert np.abs(a[i] - a[j]).max() > 1e-2, (i, j)


def test_sampled_parameters_respect_ranges():
    n = 4000
    EPS = 1e-5  # float32 rounding at the range ends
    p = {k: np.asarray(v) for k, v in sample_affine_params(jax.random.key(12), n, STRONG).items()}
    assert set(p) == {"rotation_deg", "shear_x", "shear_y", "scale_x", "scale_y", "tx", "ty"}
    assert all(v.shape == (n,) and v.dtype == np.float32 for v in p.values())
    assert np.abs(p["rotation_deg"]).max() <= 10.0 + EPS and np.abs(p["rotation_deg"]).max() > 9.0
    for k in ("shear_x", "shear_y"):
        assert np.abs(p[k]).max() <= 0.3 + EPS and np.abs(p[k]).max() > 0.27
    for k in ("scale_x", "scale_y"):
        assert p[k].min() >= 0.8 - EPS and p[k].max() <= 1.2 + EPS
        assert p[k].min() < 0.82 and p[k].max() > 1.18
    for k in ("tx", "ty"):
        assert np.abs(p[k]).max() <= 2.0 + EPS and np.abs(p[k]).max() > 1.9
    # Uniform: means near the centre of each range.
    assert abs(p["rotation_deg"].mean()) < 0.5 and abs(p["scale_x"].mean() - 1.0) < 0.02


def test_each_component_applied_with_prob_half():
    n = 4000
    cfg = dataclasses.replace(STRONG, prob=0.5)
    p = {k: np.asarray(v) for k, v in sample_affine_params(jax.random.key(13), n, cfg).items()}
    on = {
        "rotation": p["rotation_deg"] != 0,
        "shear": p["shear_x"] != 0,
        "scale": p["scale_x"] != 1,
        "translation": p["tx"] != 0,
    }
    # x and y of one component share a coin.
    np.testing.assert_array_equal(on["shear"], p["shear_y"] != 0)
    np.testing.assert_array_equal(on["scale"], p["scale_y"] != 1)
    np.testing.assert_array_equal(on["translation"], p["ty"] != 0)
    rates = {k: v.mean() for k, v in on.items()}
    assert all(0.45 < r < 0.55 for r in rates.values()), rates
    # Components are independent of one another (joint rate ~ 1/4).
    assert 0.2 < (on["rotation"] & on["scale"]).mean() < 0.3
    # The matrices are exactly affine_matrix of those parameters.
    np.testing.assert_array_equal(sample_affine(jax.random.key(13), n, cfg), affine_matrix(**p))


# ---------------------------------------------------------------- transforms


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_jit_shape_and_dtype(dtype):
    x = _rand_images(14, SQ).astype(dtype)
    out = jax.jit(random_affine, static_argnums=2)(jax.random.key(1), x, STRONG)  # cfg static
    assert out.shape == x.shape and out.dtype == x.dtype
    g = jax.jit(lambda k, x: random_affine(k, x, STRONG))  # cfg closed over
    same = g(jax.random.key(1), x)
    np.testing.assert_array_equal(np.asarray(same, np.float32), np.asarray(out, np.float32))
    assert float(jnp.abs(out.astype(jnp.float32) - x.astype(jnp.float32)).max()) > 1e-2


def test_vmap_over_pair_axis():
    """A leading pair axis [2, N, H, W, C] can be vmapped with independent keys."""
    x = jnp.stack([_rand_images(15, SQ)] * 2)
    keys = jax.random.split(jax.random.key(16), 2)
    out = jax.jit(jax.vmap(lambda k, im: random_affine(k, im, STRONG)))(keys, x)
    assert out.shape == x.shape
    np.testing.assert_allclose(out[0], random_affine(keys[0], x[0], STRONG), atol=1e-5)
    assert float(jnp.abs(out[0] - out[1]).max()) > 1e-2


# ---------------------------------------------------------------- config


def test_config_from_dict():
    assert AffineConfig.from_dict({}) == AffineConfig()
    cfg = AffineConfig.from_dict({"rotation_deg": 5, "prob": 1})
    assert cfg.rotation_deg == 5.0 and cfg.prob == 1.0 and cfg.shear == 0.3
    hash(cfg)  # usable as a static jit argument
    with pytest.raises(ValueError, match="rotaton_deg"):
        AffineConfig.from_dict({"rotaton_deg": 5})
    with pytest.raises(ValueError):
        AffineConfig(scale_min=1.3, scale_max=1.2)
    with pytest.raises(ValueError):
        AffineConfig(prob=1.5)


def test_config_from_configdict():
    ml_collections = pytest.importorskip("ml_collections")
    cd = ml_collections.ConfigDict({"shear": 0.1, "translate_px": 3.0})
    assert AffineConfig.from_dict(cd) == AffineConfig(shear=0.1, translate_px=3.0)
    with pytest.raises(ValueError, match="bogus"):
        AffineConfig.from_dict(ml_collections.ConfigDict({"bogus": 1}))


def test_flip_prob_mirrors_left_right_and_leaves_the_other_draws_alone():
    import numpy as np

    from siamjax.data.augment import AffineConfig, random_affine, sample_affine_params

    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.random((6, 9, 12, 1)), jnp.float32)
    mirror_only = AffineConfig(rotation_deg=0, shear=0, scale_min=1, scale_max=1, translate_px=0, prob=0,
                               flip_prob=1.0)
    assert not mirror_only.is_identity
    out = np.asarray(random_affine(jax.random.PRNGKey(3), images, mirror_only))
    np.testing.assert_allclose(out, np.asarray(images)[:, :, ::-1], atol=1e-5)
    # flip_prob 0 draws exactly what it drew before the option existed; 0.5 negates scale_x on some images only
    key = jax.random.PRNGKey(7)
    base = sample_affine_params(key, 64, AffineConfig())
    half = sample_affine_params(key, 64, AffineConfig(flip_prob=0.5))
    for name in base:
        if name != "scale_x":
            np.testing.assert_array_equal(np.asarray(base[name]), np.asarray(half[name]))
    np.testing.assert_array_equal(np.abs(np.asarray(half["scale_x"])), np.asarray(base["scale_x"]))
    flipped = np.asarray(half["scale_x"]) < 0
    assert 10 < flipped.sum() < 54
    with pytest.raises(ValueError, match="flip_prob"):
        AffineConfig(flip_prob=1.5)
