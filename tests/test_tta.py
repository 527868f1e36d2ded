"""Test-time shifts: the moved copies and the averaged embedding."""
import jax
import numpy as np
import pytest

from siamjax.infer.model import Model
from siamjax.infer.shift import shift_image
from siamjax.data.preprocess import Preprocessing
from siamjax.nn.twin import make_twin


def test_shift_image_moves_content_and_fills_with_the_corner():
    x = np.full((1, 5, 5, 1), 7, np.uint8)
    x[0, 2, 2] = 200
    down = shift_image(x, 1, 0)
    assert down[0, 3, 2, 0] == 200 and down[0, 2, 2, 0] == 7 and (down[0, 0] == 7).all()
    left = shift_image(x, 0, -2)
    assert left[0, 2, 0, 0] == 200 and (left[0, :, -2:] == 7).all()
    x[0, 4, 4] = 255  # content at the border leaves the frame instead of wrapping round
    assert shift_image(x, 1, 1)[0, 0, 0, 0] == 7


def test_tta_embedding_is_the_mean_of_the_normalised_views():
    twin = make_twin("conv4", "cosine", {"width": 8})
    variables = twin.init(jax.random.key(0), (16, 16, 1))
    spec = Preprocessing(size=16, channels=1, invert=False)
    x = np.random.default_rng(0).integers(0, 255, (3, 16, 16, 1), dtype=np.uint8)
    plain = Model(twin, variables, spec, meta={"model": {"head": "cosine"}})
    tta = Model(twin, variables, spec, meta={"model": {"head": "cosine"}}, tta_shift=2)
    views = [x] + [shift_image(x, dy, dx) for dy, dx in [(-2, 0), (2, 0), (0, -2), (0, 2)]]
    embs = [plain.embed_preprocessed(v) for v in views]
    want = np.mean([e / np.linalg.norm(e, axis=1, keepdims=True) for e in embs], axis=0)
    np.testing.assert_allclose(tta.embed_preprocessed(x), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="tta_shift"):
        Model(twin, variables, spec, meta={"model": {"head": "cosine"}}, tta_shift=-1).embed_preprocessed(x)
