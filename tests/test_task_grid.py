"""The one-shot task picture: one cell triple per question, colours by right / wrong."""
import numpy as np
import pytest
from PIL import Image

from siamjax.eval.episodes import Episodes
from siamjax.eval.task_grid import plot_task_grid


def _episodes():
    support = np.arange(6).reshape(2, 3, 1)  # 2 episodes, 3 ways, 1 shot: images 0..5
    query = np.array([[6, 7, 8], [9, 10, 11]])
    answer = np.array([[0, 1, 2], [2, 0, 1]])
    return Episodes(support, query, answer)


def test_grid_marks_right_and_wrong_answers(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (12, 8, 8, 1), dtype=np.uint8)
    eps = _episodes()
    pred = eps.answer.copy()
    pred[1, 0] = 1  # one wrong answer
    path = plot_task_grid(images, eps, pred, tmp_path / "g.png", max_episodes=2, columns=3)
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    red = ((rgb[..., 0] > 180) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)).sum()
    green = ((rgb[..., 1] > 120) & (rgb[..., 0] < 80) & (rgb[..., 2] < 100)).sum()
    assert red > 0 and green > 3 * red  # five right frames, one wrong one
    plot_task_grid(images, eps, eps.answer, tmp_path / "all_right.png", max_episodes=1)
    rgb = np.asarray(Image.open(tmp_path / "all_right.png").convert("RGB")).astype(int)
    assert ((rgb[..., 0] > 180) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)).sum() == 0


def test_grid_rejects_mismatched_predictions(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        plot_task_grid(np.zeros((12, 8, 8, 1), np.uint8), _episodes(), np.zeros((1, 3)), tmp_path / "g.png")


def test_grey_images_keep_their_polarity_unless_inverted(tmp_path):
    images = np.zeros((12, 8, 8, 1), np.uint8)  # all low values: dark photos, or blank inverted paper
    eps = _episodes()
    dark = {}
    for ink_high in (True, False):
        path = plot_task_grid(images, eps, eps.answer, tmp_path / f"{ink_high}.png", max_episodes=1,
                              columns=3, ink_high=ink_high)
        rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
        dark[ink_high] = (rgb.sum(-1) < 60).sum()  # black pixels: text, and the images when drawn as they are
    assert dark[False] > 3 * dark[True], dark
