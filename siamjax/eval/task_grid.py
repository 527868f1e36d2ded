"""A picture of one-shot tasks: each query beside the support image it was matched to, framed green
when the match is right and red when wrong (then the right support image follows, framed grey).

Used by ``eval.py --grid PATH``; the images are the preprocessed uint8 arrays the model saw.
"""
from __future__ import annotations

import pathlib

import numpy as np

from siamjax.eval.episodes import Episodes
from siamjax.eval.plots import pyplot, save_figure

__all__ = ["plot_task_grid", "show_image", "RIGHT", "WRONG", "TRUTH"]

RIGHT, WRONG, TRUTH = "#1a9850", "#d73027", "#888888"  # frame colours: right match, wrong match, the right one


def show_image(ax, image: np.ndarray, colour: str | None, title: str = "", ink_high: bool = True) -> None:
    """Draw one uint8 image [S, S, C] on a matplotlib axis without ticks, framed in ``colour`` (None: no
    frame); ``ink_high``: bright pixels are ink, drawn dark."""
    img = image[..., 0] if image.shape[-1] == 1 else image
    grey = "gray_r" if ink_high else "gray"
    ax.imshow(img, cmap=grey if image.shape[-1] == 1 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(colour is not None)
        if colour is not None:
            spine.set_color(colour)
            spine.set_linewidth(3)
    if title:
        ax.set_title(title, fontsize=7)


def plot_task_grid(images: np.ndarray, episodes: Episodes, predictions: np.ndarray, path,
                   max_episodes: int = 2, columns: int = 4, title: str = "", ink_high: bool = True) -> pathlib.Path:
    """Write a PNG of the first ``max_episodes`` episodes' questions.

    images: uint8 [N, H, W, C]; grey images (C = 1) are drawn with high values dark when ``ink_high``
    (after a preprocessing that inverted them, as Omniglot's: ink is the high value), else as they are;
    episodes: the tasks (support [E, W, K], query / answer [E, Q]); predictions: int [E, Q] chosen class
    per query. Each question takes three cells: query, chosen support (first shot), right support when
    wrong. ``columns`` questions per row. Returns the path.
    """
    predictions = np.asarray(predictions)
    if predictions.shape != episodes.answer.shape:
        raise ValueError(f"predictions have shape {predictions.shape}, episodes' answers {episodes.answer.shape}")
    if max_episodes < 1 or columns < 1:
        raise ValueError(f"max_episodes and columns must be >= 1, got {max_episodes}, {columns}")
    e = min(max_episodes, episodes.query.shape[0])
    questions = [(i, q) for i in range(e) for q in range(episodes.query.shape[1])]
    rows = -(-len(questions) // columns)
    plt = pyplot()
    fig, axes = plt.subplots(rows, 3 * columns, figsize=(3 * columns * 0.75, rows * 0.85), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    right = 0
    for n, (i, q) in enumerate(questions):
        r, c = divmod(n, columns)
        chosen, answer = int(predictions[i, q]), int(episodes.answer[i, q])
        ok = chosen == answer
        right += ok
        cells = axes[r, 3 * c: 3 * c + 3]
        for ax in cells[:2 if ok else 3]:
            ax.axis("on")
        show_image(cells[0], images[episodes.query[i, q]], None, f"task {i + 1} query" if q == 0 else "", ink_high)
        show_image(cells[1], images[episodes.support[i, chosen, 0]], RIGHT if ok else WRONG,
                   "chosen" if r == 0 else "", ink_high)
        if not ok:
            show_image(cells[2], images[episodes.support[i, answer, 0]], TRUTH, "right one", ink_high)
    head = title or f"{episodes.ways}-way one-shot"
    fig.suptitle(f"{head}: {right} of {len(questions)} right (green: right match, red: wrong, grey: right answer)",
                 fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
