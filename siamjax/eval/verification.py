"""Verification metrics for pair scores (pure NumPy): ROC, AUC, EER, TAR at a FAR, DET, calibration.

Conventions used throughout:

* ``scores``: float [N], one similarity per pair, **larger = more alike** (what
  :meth:`siamjax.Model.score_embeddings` returns). Distances must be negated first.
* ``labels``: [N] of 0/1 or bool, **1 = genuine** (same identity / class), 0 = impostor.
* A pair is **accepted** when ``score >= threshold``.
* Rates are fractions in [0, 1] (not percent):
  FAR (false accept rate) = accepted impostor pairs / impostor pairs;
  TAR (true accept rate)  = accepted genuine pairs / genuine pairs;
  FRR (false reject rate) = 1 - TAR.

The operating points of a score set are the thresholds at the distinct scores (plus ``+inf``, where
nothing is accepted), so tied scores move together: the curves are exact, with no sampling of
thresholds. Between operating points, curves are linear interpolations (this is what the AUC's
trapezoids and the EER's crossing use; it is the ROC convex-combination / "ties count half" view).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = [
    "all_pairs",
    "accuracy_at",
    "det_curve",
    "eer",
    "roc_auc",
    "roc_curve",
    "split_scores",
    "tar_at_far",
    "threshold_at_far",
    "verification_report",
]

REPORT_FARS = (1e-2, 1e-3)


def _check(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """(scores float64 [N], labels bool [N]), validated; both classes must be present."""
    s = np.asarray(scores, np.float64).reshape(-1)
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != s.shape[0]:
        raise ValueError(f"scores and labels must be 1-D of the same length, got shapes "
                         f"{np.shape(scores)} and {np.shape(labels)}")
    if y.dtype != bool:
        if y.size and not np.isin(y, (0, 1)).all():
            raise ValueError(f"labels must be 0/1 (1 = genuine, same identity) or bool; got values "
                             f"{np.unique(y)[:10].tolist()}")
        y = y.astype(bool)
    if not np.isfinite(s).all():
        bad = np.flatnonzero(~np.isfinite(s))
        raise ValueError(f"{bad.size} score(s) are not finite (NaN or inf), first at index {int(bad[0])}")
    n_gen = int(y.sum())
    if n_gen == 0 or n_gen == y.size:
        raise ValueError(f"need both genuine (label 1) and impostor (label 0) pairs; got {n_gen} genuine and "
                         f"{y.size - n_gen} impostor")
    return s, y


def split_scores(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """(genuine scores, impostor scores), float64, in input order."""
    s, y = _check(scores, labels)
    return s[y], s[~y]


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ROC of the rule "accept when score >= threshold".

    Args:
        scores: float [N], larger = more alike.
        labels: [N], 1 = genuine, 0 = impostor.

    Returns:
        (far, tar, thresholds), float64 [U + 1] where U is the number of distinct scores:
        ``thresholds`` = ``[+inf, distinct scores in decreasing order]``; ``far[k]`` / ``tar[k]`` are
        the fractions of impostor / genuine pairs with score >= ``thresholds[k]``. Both start at 0
        (threshold +inf) and end at 1 (the lowest score), non-decreasing.
    """
    s, y = _check(scores, labels)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]  # last index of each run of tied scores
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    far = np.r_[0.0, fp / (~y).sum()]
    tar = np.r_[0.0, tp / y.sum()]
    return far, tar, np.r_[np.inf, s[last]]


def det_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detection error trade-off: (far, frr, thresholds), the ROC's operating points with
    ``frr = 1 - tar`` (float64 [U + 1], thresholds decreasing from +inf; see :func:`roc_curve`)."""
    far, tar, thr = roc_curve(scores, labels)
    return far, 1.0 - tar, thr


def roc_auc(scores, labels) -> float:
    """Area under the ROC (trapezoids between operating points).

    Equals the Mann-Whitney statistic: the probability that a random genuine pair scores higher than
    a random impostor pair, ties counting one half. 1 = perfect separation, 0.5 = chance."""
    far, tar, _ = roc_curve(scores, labels)
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2.0))


def eer(scores, labels) -> tuple[float, float]:
    """Equal error rate and its threshold.

    FAR and FRR are linearly interpolated between consecutive operating points (thresholds at the
    distinct scores, see :func:`roc_curve`); the EER is the rate where the interpolated curves cross,
    ``FAR = FRR``. The threshold is interpolated the same way between the two operating points'
    thresholds (when the crossing lies between "accept nothing" and the highest score, the highest
    score is returned). Where the curves meet at an operating point (e.g. perfectly separated scores:
    EER 0), that point's threshold is returned.

    Returns:
        (eer in [0, 1], threshold): accept when ``score >= threshold``.
    """
    far, tar, thr = roc_curve(scores, labels)
    d = far - (1.0 - tar)  # FAR - FRR: -1 at +inf, +1 at the lowest score, non-decreasing
    k = int(np.argmax(d >= 0))  # first operating point with FAR >= FRR (k >= 1 since d[0] = -1)
    d0, d1 = d[k - 1], d[k]
    a = 1.0 if d1 == d0 else -d0 / (d1 - d0)  # fraction of the way from point k-1 to point k
    rate = far[k - 1] + a * (far[k] - far[k - 1])
    if a >= 1.0 or not np.isfinite(thr[k - 1]):
        t = thr[k]
    else:
        t = thr[k - 1] + a * (thr[k] - thr[k - 1])
    return float(rate), float(t)


def _check_far(far: float) -> float:
    far = float(far)
    if not 0.0 < far < 1.0:
        raise ValueError(f"target FAR must be in (0, 1), got {far!r} (a fraction: 1e-3 is 0.1%)")
    return far


def resolvable(far: float, n_impostors: int) -> bool:
    """A FAR of ``far`` can be told from 0 only with at least 1 / far impostor pairs."""
    return far * n_impostors >= 1.0 - 1e-9


def threshold_at_far(scores, labels, far: float, warn: bool = True) -> float:
    """Calibration: the lowest threshold whose FAR on these pairs is <= ``far`` (maximises TAR).

    The threshold is one of the observed scores (accept when ``score >= threshold``), so tied scores
    are never split. With fewer than ``1 / far`` impostor pairs the requested FAR cannot be resolved
    (the smallest non-zero FAR is ``1 / n_impostors``): the threshold for FAR = 0 is returned (just
    above the highest impostor score: ``np.nextafter(max impostor, +inf)`` when no genuine score lies
    above it) and, with ``warn``, a warning says so.
    """
    far = _check_far(far)
    f, _, thr = roc_curve(scores, labels)
    n_imp = int(np.sum(~_check(scores, labels)[1]))
    if not resolvable(far, n_imp) and warn:
        warnings.warn(f"FAR {far:g} cannot be resolved with {n_imp} impostor pairs (need >= {math.ceil(1 / far)}); "
                      f"using the threshold for FAR = 0 on these pairs", stacklevel=2)
    k = int(np.flatnonzero(f <= far)[-1])
    if k == 0:  # even the highest score accepts too many impostors: just above the top score
        return float(np.nextafter(thr[1], np.inf))
    return float(thr[k])


def tar_at_far(scores, labels, far: float) -> float:
    """TAR at the lowest threshold whose FAR <= ``far`` (conservative: no interpolation).

    Returns NaN when there are fewer than ``1 / far`` impostor pairs (e.g. TAR@FAR=1e-3 with fewer
    than 1,000 impostors), since such a FAR cannot be measured on them; :func:`verification_report`
    records the counts so that the reason is visible.
    """
    far = _check_far(far)
    f, tar, _ = roc_curve(scores, labels)
    n_imp = int(np.sum(~_check(scores, labels)[1]))
    if not resolvable(far, n_imp):
        return float("nan")
    return float(tar[np.flatnonzero(f <= far)[-1]])


def accuracy_at(scores, labels, threshold: float) -> float:
    """Fraction of pairs decided correctly by "genuine when score >= threshold"."""
    s, y = _check(scores, labels)
    return float(np.mean((s >= threshold) == y))


def rates_at(scores, labels, threshold: float) -> dict:
    """FAR, FRR, TAR and accuracy (fractions) at ``threshold``."""
    s, y = _check(scores, labels)
    acc = s >= threshold
    tar = float(acc[y].mean())
    return {"threshold": float(threshold), "far": float(acc[~y].mean()), "frr": 1.0 - tar, "tar": tar,
            "accuracy": float(np.mean(acc == y))}


def far_key(far: float) -> str:
    return f"{far:.0e}".replace("e-0", "e-")  # 1e-2, 1e-3


def verification_report(scores, labels, threshold: float | None = None,
                        fars: tuple[float, ...] = REPORT_FARS) -> dict:
    """All the numbers for one score set, JSON-serialisable (rates are fractions; NaN -> None).

    Keys: ``n_pairs``, ``n_genuine``, ``n_impostor``, ``auc``, ``eer``, ``eer_threshold``,
    ``accuracy_at_eer_threshold``, for each FAR f in ``fars`` (default 1e-2 and 1e-3):
    ``tar@far=1e-2`` (None when fewer than 1/f impostor pairs, see :func:`tar_at_far`) and
    ``threshold@far=1e-2`` (:func:`threshold_at_far`; FAR = 0's threshold when unresolvable);
    ``genuine_mean``, ``impostor_mean``; and with ``threshold``: ``threshold``, ``far``, ``frr``,
    ``tar``, ``accuracy`` at it.
    """
    s, y = _check(scores, labels)
    e, e_thr = eer(s, y)
    out = {"n_pairs": int(s.size), "n_genuine": int(y.sum()), "n_impostor": int((~y).sum()),
           "auc": roc_auc(s, y), "eer": e, "eer_threshold": e_thr,
           "accuracy_at_eer_threshold": accuracy_at(s, y, e_thr)}
    for f in fars:
        t = tar_at_far(s, y, f)
        out[f"tar@far={far_key(f)}"] = None if math.isnan(t) else t
        out[f"threshold@far={far_key(f)}"] = threshold_at_far(s, y, f, warn=False)
    out["genuine_mean"] = float(s[y].mean())
    out["impostor_mean"] = float(s[~y].mean())
    if threshold is not None:
        out.update(rates_at(s, y, threshold))
    return out


def format_report(r: dict) -> str:
    """Human-readable lines for a :func:`verification_report` dict (rates in percent)."""
    lines = [f"pairs: {r['n_pairs']} ({r['n_genuine']} genuine, {r['n_impostor']} impostor)",
             f"AUC {r['auc']:.4f}   EER {100 * r['eer']:.2f}% at threshold {r['eer_threshold']:.6g} "
             f"(accuracy there {100 * r['accuracy_at_eer_threshold']:.2f}%)"]
    for key in [k for k in r if k.startswith("tar@far=")]:
        f = float(key.split("=")[1])
        v = r[key]
        thr = r.get(f"threshold@far={key.split('=')[1]}")
        if v is None:
            lines.append(f"TAR @ FAR {100 * f:g}%: n/a (needs >= {math.ceil(1 / f)} impostor pairs, "
                         f"have {r['n_impostor']})")
        else:
            lines.append(f"TAR @ FAR {100 * f:g}%: {100 * v:.2f}% (threshold {thr:.6g})")
    if "threshold" in r:
        lines.append(f"at threshold {r['threshold']:.6g}: FAR {100 * r['far']:.2f}%  FRR {100 * r['frr']:.2f}%  "
                     f"accuracy {100 * r['accuracy']:.2f}%")
    return "\n".join(lines)


def all_pairs(labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every unordered pair of distinct items: (i, j, same), i < j, int64 / int64 / bool [n (n-1) / 2].

    ``same[p]`` is ``labels[i[p]] == labels[j[p]]`` (genuine pair). Memory grows as n^2 (n = 10,000
    items is 50 M pairs, 0.9 GB): subsample first for large sets.
    """
    labels = np.asarray(labels).reshape(-1)
    i, j = np.triu_indices(labels.size, k=1)
    return i.astype(np.int64), j.astype(np.int64), labels[i] == labels[j]


def per_identity(scores, labels, ids1, ids2, threshold: float | None = None) -> list[dict]:
    """Where a verifier fails: the error rates of each identity's own pairs.

    scores [P], labels [P] bool (True = genuine), ids1 / ids2 [P]: the identity of each pair's two images
    (strings). A genuine pair counts for its identity; an impostor pair for both of its identities (once
    when the two ids are equal, e.g. a writer's genuine signature against a forgery of that writer).
    Returns one dict per identity, sorted by id: ``identity``, ``n_genuine``, ``n_impostor``, ``eer`` (over
    that identity's pairs; None without both kinds), and with ``threshold``: ``frr`` (its genuine pairs
    rejected) and ``far`` (its impostor pairs accepted), None where it has no such pairs.
    """
    s, y = _check(scores, labels)
    ids1, ids2 = np.asarray(ids1).astype(str), np.asarray(ids2).astype(str)
    if ids1.shape != s.shape or ids2.shape != s.shape:
        raise ValueError(f"per_identity: ids1 {ids1.shape} and ids2 {ids2.shape} must match scores {s.shape}")
    rows = []
    for ident in sorted(set(ids1.tolist()) | set(ids2.tolist())):
        mine = (ids1 == ident) | (ids2 == ident)
        g, imp = mine & y, mine & ~y
        row = {"identity": ident, "n_genuine": int(g.sum()), "n_impostor": int(imp.sum()),
               "eer": eer(s[mine], y[mine])[0] if g.any() and imp.any() else None}
        if threshold is not None:
            row["frr"] = float(np.mean(s[g] < threshold)) if g.any() else None
            row["far"] = float(np.mean(s[imp] >= threshold)) if imp.any() else None
        rows.append(row)
    return rows


def format_per_identity(rows: list[dict]) -> str:
    """A markdown table of :func:`per_identity` rows (rates in percent, '-' where undefined)."""
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    with_rates = bool(rows) and "frr" in rows[0]
    head = "| identity | genuine | impostor | EER |" + (" FRR at threshold | FAR at threshold |" if with_rates else "")
    lines = [head, "| --- | --- | --- | --- |" + (" --- | --- |" if with_rates else "")]
    for r in rows:
        lines.append(f"| {r['identity']} | {r['n_genuine']} | {r['n_impostor']} | {pct(r['eer'])} |"
                     + (f" {pct(r['frr'])} | {pct(r['far'])} |" if with_rates else ""))
    return "\n".join(lines)
