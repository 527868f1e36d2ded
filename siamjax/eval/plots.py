"""Verification plots as PNG files: ROC, DET and genuine-vs-impostor score histograms.

matplotlib is imported lazily, with the non-interactive Agg backend (no display needed), only when a
plot is drawn. Inputs follow :mod:`siamjax.eval.verification`: scores larger = more alike, labels 1 = genuine.

* ROC: TAR (y, linear) against FAR (x, **logarithmic**, from 1e-4 or 1 / n_impostors up to 1), the
  usual biometric view in which TAR@FAR=1e-3 can be read off.
* DET: FRR (y) against FAR (x) on **normal-deviate (probit) axes**, ticks labelled in percent
  (0.01% ... 60%, or up to 97% when the EER is above 25%); rates of 0 or 1 (and rates below 0.01%)
  are clipped to half a pair (0.5 / n, kept between 0.01% and 0.1%) from the edge so that they stay
  on the plot. On these axes Gaussian genuine and impostor score distributions give a straight line.
* Histograms: densities of the genuine and impostor scores on shared bins, with the threshold(s) drawn.
"""
from __future__ import annotations

import pathlib
from statistics import NormalDist

import numpy as np

from siamjax.eval import verification as V

__all__ = ["plot_roc", "plot_det", "plot_score_histograms", "write_verification_plots", "pyplot", "save_figure"]

_DET_TICKS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95)


def pyplot():
    """``matplotlib.pyplot`` with the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int = 110, tight: bool = True) -> pathlib.Path:
    """Write ``fig`` as a PNG at ``path`` (parent folders made) and close it. ``tight=False`` keeps the
    figure's size x dpi pixels exactly (after ``tight_layout``)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    else:
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def plot_roc(scores, labels, path, title: str = "ROC", eer_point: bool = True) -> pathlib.Path:
    """ROC with a log FAR axis -> PNG at ``path``; the EER point and AUC are marked in the legend."""
    plt = pyplot()
    far, tar, _ = V.roc_curve(scores, labels)
    n_imp = int(np.sum(~np.asarray(labels).astype(bool)))
    lo = min(1e-4, 0.5 / max(n_imp, 1))
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    x = np.maximum(far, lo)  # FAR = 0 drawn at the left edge
    ax.plot(x, tar, label=f"AUC {V.roc_auc(scores, labels):.4f}")
    if eer_point:
        e, _ = V.eer(scores, labels)
        ax.plot([max(e, lo)], [1 - e], "o", label=f"EER {100 * e:.2f}%")
    for f in V.REPORT_FARS:
        ax.axvline(f, color="0.8", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlim(lo, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate (FAR, log scale)")
    ax.set_ylabel("true accept rate (TAR)")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower right")
    return save_figure(fig, path)


def _probit(p: np.ndarray) -> np.ndarray:
    inv = NormalDist().inv_cdf
    return np.array([inv(float(v)) for v in np.ravel(p)]).reshape(np.shape(p))


def plot_det(scores, labels, path, title: str = "DET") -> pathlib.Path:
    """DET curve on normal-deviate axes (FAR x, FRR y, ticks in percent) -> PNG at ``path``."""
    plt = pyplot()
    far, frr, _ = V.det_curve(scores, labels)
    y = np.asarray(labels).astype(bool)
    eps = max(min(0.5 / min(int(y.sum()), int((~y).sum())), 1e-3), 1e-4)
    fx, fy = _probit(np.clip(far, eps, 1 - eps)), _probit(np.clip(frr, eps, 1 - eps))
    e, _ = V.eer(scores, labels)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fx, fy, label="DET")
    pe = float(_probit(np.clip([e], eps, 1 - eps))[0])
    ax.plot([pe], [pe], "o", label=f"EER {100 * e:.2f}%")
    lim = _probit(np.array([eps, 0.97]))
    ax.plot(lim, lim, color="0.8", lw=0.8, ls="--")  # FAR = FRR
    ticks = [t for t in _DET_TICKS if eps <= t <= 1 - eps]
    tick_pos = _probit(np.array(ticks))
    labels_txt = [f"{100 * t:g}" for t in ticks]
    ax.set_xticks(tick_pos, labels_txt)
    ax.set_yticks(tick_pos, labels_txt)
    top = 0.6 if e < 0.25 else 0.97  # weak models: show the whole curve
    lo, hi = float(_probit(np.array([eps]))[0]), float(_probit(np.array([top]))[0])
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("false accept rate (FAR, %, normal-deviate scale)")
    ax.set_ylabel("false reject rate (FRR, %, normal-deviate scale)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left")
    return save_figure(fig, path)


def plot_score_histograms(scores, labels, path, thresholds: dict | None = None, bins: int = 50,
                          title: str = "scores: genuine vs impostor") -> pathlib.Path:
    """Genuine and impostor score densities on shared bins -> PNG at ``path``.

    ``thresholds``: optional ``{name: value}`` drawn as vertical lines (e.g. the EER threshold)."""
    plt = pyplot()
    gen, imp = V.split_scores(scores, labels)
    edges = np.histogram_bin_edges(np.r_[gen, imp], bins=bins)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(imp, bins=edges, density=True, alpha=0.55, label=f"impostor ({imp.size})", color="tab:red")
    ax.hist(gen, bins=edges, density=True, alpha=0.55, label=f"genuine ({gen.size})", color="tab:green")
    for (name, value), style in zip((thresholds or {}).items(), ("-", "--", ":", "-.")):
        ax.axvline(value, color="k", ls=style, lw=1, label=f"{name} {value:.4g}")
    ax.set_xlabel("similarity score (larger = more alike)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)


def write_verification_plots(scores, labels, out_dir, threshold: float | None = None,
                             title: str = "") -> dict[str, pathlib.Path]:
    """OUT/roc.png, OUT/det.png and OUT/scores_hist.png; returns {"roc": path, "det": path, "hist": path}."""
    out = pathlib.Path(out_dir)
    _, e_thr = V.eer(scores, labels)
    marks = {"EER threshold": e_thr}
    if threshold is not None:
        marks["threshold"] = float(threshold)
    prefix = f"{title}: " if title else ""
    return {"roc": plot_roc(scores, labels, out / "roc.png", title=prefix + "ROC"),
            "det": plot_det(scores, labels, out / "det.png", title=prefix + "DET"),
            "hist": plot_score_histograms(scores, labels, out / "scores_hist.png", marks,
                                          title=prefix + "genuine vs impostor scores")}
