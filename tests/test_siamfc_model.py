"""SiamFC's pieces against values computed here by hand or by brute force: crops, the fully
convolutional encoder's geometry, the cross-correlation, the label map and the balanced loss."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siamjax.tracking.crops import context_size, crop_resize
from siamjax.tracking.model import (SiamFC, SiamFCEncoder, balanced_logistic_loss, cross_correlate, label_map,
                                    response_size)


def test_context_size_is_siamfcs_formula():
    # w=40, h=20: p = 0.5 * 60 = 30, sqrt(70 * 50) = sqrt(3500)
    assert context_size(40, 20, 0.5) == pytest.approx(np.sqrt(3500))
    assert context_size(10, 10, 0.0) == pytest.approx(10)


def test_crop_at_native_scale_copies_pixels_and_fills_outside_with_the_mean():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (40, 50, 3)).astype(np.uint8)
    # side 9 = out 9 centred on pixel 20's centre (x = 20.5): output pixel k is frame pixel 16 + k
    np.testing.assert_allclose(crop_resize(frame, 20.5, 10.5, 9, 9), frame[6:15, 16:25], atol=1e-4)
    far = crop_resize(frame, -100, -100, 9, 9)  # wholly outside: the frame's mean colour
    np.testing.assert_allclose(far, np.broadcast_to(frame.reshape(-1, 3).mean(0), far.shape), rtol=1e-5)
    half = crop_resize(frame, 0.5, 0.5, 9, 9, fill=np.array([7.0, 7.0, 7.0]))  # top-left quarter outside
    assert np.all(half[:4, :4] == 7.0) and np.allclose(half[4:, 4:], frame[:5, :5])
    with pytest.raises(ValueError, match="positive"):
        crop_resize(frame, 1, 1, 0, 9)


def test_downscaled_crop_averages_neighbours_bilinearly():
    frame = np.zeros((8, 8, 1), np.float32)
    frame[:, 4:] = 100.0  # left half 0, right half 100
    c = crop_resize(frame, 4, 4, 8, 2)  # the whole frame: pixel centres 2 and 6 -> indices 1.5 and 5.5
    np.testing.assert_allclose(c[..., 0], [[0, 100], [0, 100]], atol=1e-4)


@pytest.mark.parametrize("e,x,r", [(63, 127, 9), (127, 255, 17), (47, 111, 9)])
def test_encoder_is_fully_convolutional_with_stride_8(e, x, r):
    enc = SiamFCEncoder(widths=(4, 4, 4, 4), fast_cpu=False)
    v = enc.init(jax.random.key(0), jnp.zeros((1, x, x, 3)))
    fz = enc.apply(v, jnp.zeros((1, e, e, 3)))
    fx = enc.apply(v, jnp.zeros((1, x, x, 3)))
    assert fx.shape[1] - fz.shape[1] + 1 == r == response_size(e, x)
    # translation equivariance: moving the input by 8 px moves the features by exactly one cell
    img = jax.random.uniform(jax.random.key(1), (1, x + 8, x + 8, 3)) * 255
    a = enc.apply(v, img[:, :x, :x])
    b = enc.apply(v, img[:, 8:, 8:])
    np.testing.assert_allclose(a[:, 1:, 1:], b[:, :-1, :-1], atol=1e-4)


def test_cross_correlation_equals_brute_force_sums():
    z = jax.random.normal(jax.random.key(1), (3, 4, 4, 5))
    x = jax.random.normal(jax.random.key(2), (3, 12, 12, 5))
    out = np.asarray(cross_correlate(z, x))
    zn, xn = np.asarray(z), np.asarray(x)
    brute = np.array([[[np.sum(xn[n, i:i + 4, j:j + 4] * zn[n]) for j in range(9)] for i in range(9)]
                      for n in range(3)])
    np.testing.assert_allclose(out, brute, atol=1e-4)


def test_exemplar_features_are_the_search_features_of_its_window():
    """An exemplar cut from the search image at 8 * (row, col) has exactly the search features of the
    response cell (row, col): the response map's cells line up with search-crop positions."""
    model = SiamFC(widths=(8, 8, 8, 16), fast_cpu=False)
    x = jax.random.uniform(jax.random.key(3), (1, 127, 127, 3)) * 255
    v = model.init(jax.random.key(0), x[:, :63, :63], x)
    xf = model.apply(v, x, method=SiamFC.embed)
    for r, c in [(0, 0), (4, 4), (2, 7)]:
        zf = model.apply(v, x[:, 8 * r:8 * r + 63, 8 * c:8 * c + 63], method=SiamFC.embed)
        np.testing.assert_allclose(zf, xf[:, r:r + 4, c:c + 4], atol=1e-4)


def test_label_map_marks_cells_within_the_radius():
    lab = np.asarray(label_map(5, jnp.array([[0.0, 0.0], [2.0, -1.0]]), radius=1.0))
    expected0 = np.zeros((5, 5))
    expected0[2, 2] = expected0[1, 2] = expected0[3, 2] = expected0[2, 1] = expected0[2, 3] = 1
    np.testing.assert_array_equal(lab[0], expected0)
    # target at x=+2, y=-1 cells: centre cell (row 1, col 4) and its neighbours inside the map
    expected1 = np.zeros((5, 5))
    expected1[1, 4] = expected1[0, 4] = expected1[2, 4] = expected1[1, 3] = 1
    np.testing.assert_array_equal(lab[1], expected1)


def test_balanced_logistic_loss_by_hand():
    labels = jnp.array([[[1.0, 0.0], [0.0, 0.0]]])  # one positive, three negatives
    logits = jnp.array([[[2.0, -1.0], [0.0, 3.0]]])
    sp = lambda t: np.log1p(np.exp(t))
    # positive weighs 1/2; each negative 1/6: softplus(-2)/2 + (softplus(-1) + softplus(0) + softplus(3))/6
    want = sp(-2.0) / 2 + (sp(-1.0) + sp(0.0) + sp(3.0)) / 6
    assert float(balanced_logistic_loss(logits, labels)) == pytest.approx(want, rel=1e-6)
