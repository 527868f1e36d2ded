"""SiamFC training pairs: the target sits where the returned offset says, rows are functions of
(seed, step, row), and sequences without boxes give a clear error."""
import numpy as np
import pytest

from siamjax.tracking.pairs import PairSettings, make_batch_fn, make_pair


class SquareSequences:
    """Two sequences of 20 frames: a white square (side 20 + t px) moving right 2 px a frame."""

    def __init__(self, boxes_nan=False):
        self.nan = boxes_nan

    def __len__(self):
        return 2

    def length(self, i):
        return 20

    def box(self, i, t):
        if self.nan:
            return np.full(4, np.nan)
        side = 20 + t
        return np.array([40 + 2 * t + 10 * i, 50, side, side])

    def frame(self, i, t):
        f = np.zeros((160, 200, 3), np.uint8)
        x, y, w, h = self.box(i, t)
        f[int(y):int(y + h), int(x):int(x + w)] = 255  # integer boxes: drawn exactly
        return f


def centroid(img):
    m = img[..., 0].astype(np.float64)
    m = m * (m > 128)
    ys, xs = np.indices(m.shape)
    return np.array([(xs * m).sum() / m.sum(), (ys * m).sum() / m.sum()])


def test_target_is_centred_in_the_exemplar_and_at_the_offset_in_the_search_crop():
    s = PairSettings(exemplar_size=63, search_size=127, max_gap=5, scale_jitter=0.1, shift_px=24)
    src = SquareSequences()
    for seed in range(6):
        z, x, offset = make_pair(src, np.random.default_rng(seed), s)
        assert z.shape == (63, 63, 3) and x.shape == (127, 127, 3) and z.dtype == x.dtype == np.uint8
        np.testing.assert_allclose(centroid(z), [31, 31], atol=0.75)
        assert np.all(np.abs(offset) <= 24)
        np.testing.assert_allclose(centroid(x), 63 + offset, atol=0.75)
        # the square fills about half the context side in both crops (scale jitter at most 10%)
        side_z = (z[31, :, 0] > 128).sum()
        side_x = (x[int(63 + offset[1]), :, 0] > 128).sum()
        assert 0.85 < side_x / side_z < 1.15 and 28 <= side_z <= 34


def test_batches_are_functions_of_seed_step_and_row():
    src = SquareSequences()
    s = PairSettings(max_gap=5)
    full = make_batch_fn(src, s, 6, seed=1)
    again = make_batch_fn(src, s, 6, seed=1)(3)
    b = full(3)
    assert b["exemplar"].shape == (6, 63, 63, 3) and b["offset"].shape == (6, 2)
    for k in b:
        np.testing.assert_array_equal(b[k], again[k])
    part = make_batch_fn(src, s, 6, seed=1, rows=slice(3, 6))(3)  # another process's rows
    for k in b:
        np.testing.assert_array_equal(part[k], b[k][3:])
    assert not np.array_equal(full(4)["search"], b["search"])


def test_unannotated_sequences_and_bad_settings_fail_clearly():
    with pytest.raises(ValueError, match="no frame pair with a visible target"):
        make_pair(SquareSequences(boxes_nan=True), np.random.default_rng(0), PairSettings())
    with pytest.raises(ValueError, match="exemplar_size < search_size"):
        PairSettings(exemplar_size=127, search_size=63)


def test_sequence_window_moves_through_the_pool():
    from siamjax.tracking.pairs import sequence_window

    assert sequence_window(0, 100, 0, 50) == (0, 100)  # no window: the whole pool
    assert sequence_window(49, 100, 16, 50) == (0, 16)
    assert sequence_window(50, 100, 16, 50) == (16, 16)
    assert sequence_window(350, 100, 16, 50) == (12, 16)  # 7 * 16 = 112 -> wraps to 12
    assert sequence_window(5, 10, 16, 50) == (0, 10)  # a window larger than the pool: all of it


class CountingSequences(SquareSequences):
    """Ten sequences; remembers which ones were asked for."""

    def __init__(self):
        super().__init__()
        self.asked = set()

    def __len__(self):
        return 10

    def box(self, i, t):
        self.asked.add(i)
        return super().box(i % 2, t)


def test_windowed_batches_draw_only_from_their_window():
    src = CountingSequences()
    make_batch_fn(src, PairSettings(max_gap=5), 8, seed=0, window=3, window_steps=4)(5)  # window 2: 3, 4, 5
    assert src.asked == {3, 4, 5}
    src.asked.clear()
    make_batch_fn(src, PairSettings(max_gap=5), 8, seed=0, window=3, window_steps=4)(12)  # window 3: 9, 0, 1
    assert src.asked <= {9, 0, 1} and len(src.asked) >= 2
