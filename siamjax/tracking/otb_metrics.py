"""OTB one-pass evaluation (OPE): success and precision plots and their summary numbers.

Definitions of the OTB benchmark (Wu et al., CVPR 2013 / TPAMI 2015) as implemented in the got10k
toolkit (``ExperimentOTB``):

* **success curve**: share of frames whose IoU with the ground truth is **strictly greater** than
  each overlap threshold, thresholds ``0, 0.05, ..., 1`` (21 points); **success AUC** = the mean of
  those 21 values.
* **precision curve**: share of frames whose centre error is **at most** each threshold,
  ``0, 1, ..., 50`` px; **precision** (``precision_20``) = the curve at 20 px.

Inputs are boxes ``[T, 4]`` ``x, y, w, h`` px, one per frame, prediction and ground truth of the same
length. Frames whose ground truth has a NaN or is ``0,0,0,0`` (absent / unlabelled; OTB marks unlabelled
frames with zeros) are **left out** of every number; a prediction with a NaN (no output for that frame) counts as a **failure**: IoU 0, centre error
infinite. The first frame counts like the others: a tracker reports its initial box there.

Over several sequences, OTB papers report the **mean over sequences** of the per-sequence curves
(each sequence weighs the same, whatever its length): that is the headline of
:func:`evaluate_sequences`; the numbers over all frames pooled are reported beside it.
"""
from __future__ import annotations

import pathlib

import numpy as np

from siamjax.tracking import boxes as B
from siamjax.tracking import sequences as S

__all__ = [
    "PRECISION_THRESHOLDS",
    "SUCCESS_THRESHOLDS",
    "evaluate_sequence",
    "evaluate_sequences",
    "frame_scores",
    "precision_at",
    "precision_curve",
    "read_boxes",
    "success_auc",
    "success_curve",
    "write_boxes",
]

SUCCESS_THRESHOLDS = np.linspace(0, 1, 21)  # overlap (IoU) thresholds
PRECISION_THRESHOLDS = np.arange(0, 51)  # centre-error thresholds, px


def frame_scores(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    """(IoU float64 [F], centre error float64 [F] px) over the F frames whose ground truth is labelled
    (not NaN, not ``0,0,0,0``).

    ``pred``, ``gt``: [T, 4] ``x, y, w, h`` px. A NaN prediction gives IoU 0 and centre error inf."""
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    if pred.ndim != 2 or pred.shape[1] != 4 or pred.shape != gt.shape:
        raise ValueError(f"pred and gt must both be [T, 4] boxes of the same length (one per frame), got shapes "
                         f"{pred.shape} and {gt.shape}")
    keep = ~np.isnan(gt).any(axis=1) & ~(gt == 0).all(axis=1)
    if not keep.any():
        raise ValueError(f"no frame with a ground-truth box among {len(gt)} (all NaN or 0,0,0,0)")
    p, g = pred[keep], gt[keep]
    ious = np.nan_to_num(B.iou(p, g), nan=0.0)
    errors = B.center_error(p, g)
    errors[np.isnan(errors)] = np.inf
    return ious, errors


def _success(ious: np.ndarray, thresholds) -> np.ndarray:
    return np.mean(ious[:, None] > np.asarray(thresholds, np.float64)[None, :], axis=0)


def _precision(errors: np.ndarray, thresholds) -> np.ndarray:
    return np.mean(errors[:, None] <= np.asarray(thresholds, np.float64)[None, :], axis=0)


def success_curve(pred, gt, thresholds=SUCCESS_THRESHOLDS) -> np.ndarray:
    """Share of labelled frames with IoU > each threshold -> float64 [len(thresholds)], in [0, 1]."""
    return _success(frame_scores(pred, gt)[0], thresholds)


def success_auc(pred, gt, thresholds=SUCCESS_THRESHOLDS) -> float:
    """Area under the success curve = its mean over the (21) thresholds, in [0, 1]."""
    return float(np.mean(success_curve(pred, gt, thresholds)))


def precision_curve(pred, gt, thresholds=PRECISION_THRESHOLDS) -> np.ndarray:
    """Share of labelled frames with centre error <= each threshold (px) -> float64 [len(thresholds)]."""
    return _precision(frame_scores(pred, gt)[1], thresholds)


def precision_at(pred, gt, threshold: float = 20) -> float:
    """Share of labelled frames with centre error <= ``threshold`` px (OTB's precision at 20 px)."""
    return float(_precision(frame_scores(pred, gt)[1], [threshold])[0])


def _summary(ious: np.ndarray, errors: np.ndarray) -> dict:
    succ = _success(ious, SUCCESS_THRESHOLDS)
    prec = _precision(errors, PRECISION_THRESHOLDS)
    return {"success_auc": float(succ.mean()), "precision_20": float(prec[20]),
            "success_curve": succ, "precision_curve": prec, "frames": int(ious.size)}


def evaluate_sequence(pred, gt) -> dict:
    """OPE numbers of one sequence.

    Returns ``{"success_auc": float, "precision_20": float, "success_curve": float64 [21] (at
    SUCCESS_THRESHOLDS), "precision_curve": float64 [51] (at PRECISION_THRESHOLDS, px), "frames": int}``,
    ``frames`` = the number of labelled frames evaluated."""
    return _summary(*frame_scores(pred, gt))


def evaluate_sequences(results) -> dict:
    """OPE numbers over several sequences.

    Args:
        results: iterable of ``(name, pred [T, 4], gt [T, 4])``.

    Returns:
        ``{"success_auc", "precision_20", "success_curve", "precision_curve"}``: the **mean over
        sequences** of the per-sequence curves (OTB's headline numbers; each sequence weighs the same),
        plus ``"frames"`` (labelled frames in all), ``"n_sequences"``, ``"pooled"`` (the same keys as
        :func:`evaluate_sequence`, over all frames pooled: long sequences weigh more) and
        ``"sequences"`` ``{name: evaluate_sequence(...)}`` in input order.
    """
    per, all_ious, all_errors = {}, [], []
    for name, pred, gt in results:
        if name in per:
            raise ValueError(f"sequence {name!r} given twice")
        try:
            ious, errors = frame_scores(pred, gt)
        except ValueError as e:
            raise ValueError(f"sequence {name!r}: {e}") from None
        per[name] = _summary(ious, errors)
        all_ious.append(ious)
        all_errors.append(errors)
    if not per:
        raise ValueError("no sequences to evaluate")
    succ = np.mean([r["success_curve"] for r in per.values()], axis=0)
    prec = np.mean([r["precision_curve"] for r in per.values()], axis=0)
    return {"success_auc": float(succ.mean()), "precision_20": float(prec[20]),
            "success_curve": succ, "precision_curve": prec,
            "frames": int(sum(r["frames"] for r in per.values())), "n_sequences": len(per),
            "pooled": _summary(np.concatenate(all_ious), np.concatenate(all_errors)),
            "sequences": per}


def read_boxes(path) -> np.ndarray:
    """A tracker's output file (one ``x,y,w,h`` line per frame; commas, tabs or spaces; ``nan`` for no
    box) -> float32 [T, 4] px. Same parser and errors as the ground truth
    (:func:`siamjax.tracking.sequences.parse_boxes`)."""
    return S.parse_boxes(path)


def write_boxes(path, boxes) -> pathlib.Path:
    """Write [T, 4] ``x, y, w, h`` boxes, one comma-separated line per frame (2 decimals, ``nan`` for a
    missing box); parent folders are created. Returns the path written."""
    boxes = np.asarray(boxes, np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [T, 4] (x, y, w, h), got shape {boxes.shape}")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(S.format_boxes(boxes))
    return path
