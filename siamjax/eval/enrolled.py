"""Enrolled (writer-dependent) verification: each writer's first genuine samples enrolled in a
:class:`~siamjax.eval.gallery.Gallery`, the writer's other genuine samples and its skilled forgeries
verified against that identity.

Protocol (:func:`build_trials`), for every writer W and a number of references N:

* the genuine samples of W, sorted by file name (the last path component, plain string order), are
  split into the first N (**references**, enrolled as identity W) and the rest (**genuine probes**);
* every skilled forgery of W is a **forgery probe** (impostor trial);
* each probe is scored against identity W only (1:1 with the claimed identity), by the gallery's
  rule and per-identity normalisation. All the writers of one run are enrolled in one gallery (the
  ``znorm`` normalisation uses the other writers' references as its cohort).

A writer with fewer than N + 1 genuine samples, or without forgeries, is an error naming it.

Folder layout (:func:`parse_layout`, the SigComp2011 / Kaggle ``sign_data`` one): ``<W>/<file>`` is a
genuine sample of writer W, ``<W>_forg/<file>`` a skilled forgery of W (suffix ``forgery_suffix``).
Files that are not images (:func:`siamjax.data.decode.is_image_name`), hidden files and files deeper
than one folder are ignored.

Metrics (:func:`summarise`) come from :mod:`siamjax.eval.verification`: the pooled report over all
writers' trials (one global threshold), each writer's EER, and FAR / FRR at a given threshold, pooled
and per writer. Scores: larger = more alike; labels 1 = genuine trial.
"""
from __future__ import annotations

import dataclasses
import fnmatch
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from siamjax.data.decode import is_image_name
from siamjax.data.zipfolder import hidden
from siamjax.eval import verification as V
from siamjax.eval.gallery import Gallery

__all__ = ["Sample", "Trials", "WriterScores", "build_trials", "parse_layout", "score_trials",
           "select_writers", "summarise"]

FORGERY_SUFFIX = "_forg"


@dataclasses.dataclass(frozen=True)
class Sample:
    writer: str
    path: str  # relative path (or any key the embedder understands)
    is_forgery: bool


@dataclasses.dataclass(frozen=True)
class Trials:
    """One writer's trials for N references: paths of the references, genuine and forgery probes."""
    writer: str
    references: tuple[str, ...]
    genuine: tuple[str, ...]
    forgeries: tuple[str, ...]


@dataclasses.dataclass
class WriterScores:
    """One writer's probe scores: genuine probes first, then forgery probes (labels 1 then 0)."""
    writer: str
    scores: np.ndarray  # float64 [P]
    labels: np.ndarray  # bool [P], True = genuine probe
    probes: list[str]  # the probes' paths, aligned with scores
    n_references: int


def _file_name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def parse_layout(paths: Iterable[str], forgery_suffix: str = FORGERY_SUFFIX) -> list[Sample]:
    """Relative paths ``<W>/<file>`` (genuine) and ``<W><forgery_suffix>/<file>`` (forgery) -> samples.

    Non-image names, hidden names and paths that are not exactly ``folder/file`` are skipped."""
    out = []
    for p in paths:
        parts = [x for x in p.replace("\\", "/").split("/") if x not in ("", ".")]
        if len(parts) != 2 or any(hidden(x) for x in parts) or not is_image_name(parts[1]):
            continue
        folder = parts[0]
        forged = bool(forgery_suffix) and folder.endswith(forgery_suffix) and len(folder) > len(forgery_suffix)
        writer = folder[: -len(forgery_suffix)] if forged else folder
        out.append(Sample(writer, "/".join(parts), forged))
    return out


def select_writers(samples: Sequence[Sample], patterns: Sequence[str] | None, where: str = "") -> list[str]:
    """Writer names (sorted) matching any fnmatch pattern (all writers when ``patterns`` is empty/None).
    A pattern that matches no writer is a ValueError listing the writers."""
    writers = sorted({s.writer for s in samples})
    if not writers:
        raise ValueError(f"no images found{' in ' + where if where else ''} (expected <writer>/<image> and "
                         f"<writer>{FORGERY_SUFFIX}/<image>)")
    if not patterns:
        return writers
    chosen: set[str] = set()
    for pat in patterns:
        hit = [w for w in writers if fnmatch.fnmatchcase(w, pat)]
        if not hit:
            raise ValueError(f"writer pattern {pat!r} matches none of the {len(writers)} writers"
                             f"{' in ' + where if where else ''}: {', '.join(writers[:40])}")
        chosen.update(hit)
    return sorted(chosen)


def build_trials(samples: Sequence[Sample], n_refs: int, writers: Sequence[str] | None = None) -> list[Trials]:
    """Each writer's references (first ``n_refs`` genuine by file name), genuine and forgery probes.

    ``writers``: the writers to use (default: all, sorted). ValueError for a writer with fewer than
    ``n_refs + 1`` genuine samples or without forgeries, or an unknown writer."""
    if int(n_refs) != n_refs or n_refs < 1:
        raise ValueError(f"the number of references must be an integer >= 1, got {n_refs!r}")
    gen: dict[str, list[str]] = {}
    forg: dict[str, list[str]] = {}
    for s in samples:
        (forg if s.is_forgery else gen).setdefault(s.writer, []).append(s.path)
        (gen if s.is_forgery else forg).setdefault(s.writer, [])
    names = sorted(gen) if writers is None else list(writers)
    if not names:
        raise ValueError("no writers to evaluate")
    out = []
    for w in names:
        if w not in gen:
            raise ValueError(f"writer {w!r} has no samples")
        g = sorted(gen[w], key=lambda p: (_file_name(p), p))
        f = sorted(forg[w], key=lambda p: (_file_name(p), p))
        if len(g) < n_refs + 1:
            raise ValueError(f"writer {w!r} has {len(g)} genuine signature(s); enrolling {n_refs} and verifying at "
                             f"least one more needs {n_refs + 1}")
        if not f:
            raise ValueError(f"writer {w!r} has no skilled forgeries (expected a folder {w}{FORGERY_SUFFIX}/)")
        out.append(Trials(w, tuple(g[:n_refs]), tuple(g[n_refs:]), tuple(f)))
    return out


def score_trials(trials: Sequence[Trials], embeddings: Mapping[str, np.ndarray], *,
                 model=None, pairwise: Callable | None = None, rule: str = "max", normalise: str = "none",
                 min_std: float = 0.01) -> tuple[list[WriterScores], Gallery]:
    """Enrol every writer's references in one :class:`Gallery` (``model`` or ``pairwise``, ``rule``,
    ``normalise``, ``min_std`` as there), then score each writer's probes against that writer.

    ``embeddings``: path -> embedding [D] for every reference and probe. Returns the per-writer
    scores (in ``trials`` order) and the gallery."""
    gallery = Gallery(model, pairwise=pairwise, rule=rule, normalise=normalise, min_std=min_std)
    missing = [p for t in trials for p in (*t.references, *t.genuine, *t.forgeries) if p not in embeddings]
    if missing:
        raise ValueError(f"{len(missing)} path(s) have no embedding, e.g. {missing[0]!r}")
    for t in trials:
        gallery.enrol(t.writer, embeddings=np.stack([embeddings[p] for p in t.references]))
    out = []
    for t in trials:
        probes = [*t.genuine, *t.forgeries]
        s = gallery.score_many(np.stack([embeddings[p] for p in probes]), [t.writer])[:, 0]
        labels = np.r_[np.ones(len(t.genuine), bool), np.zeros(len(t.forgeries), bool)]
        out.append(WriterScores(t.writer, s.astype(np.float64), labels, probes, len(t.references)))
    return out, gallery


def pooled(per_writer: Sequence[WriterScores]) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) of all writers' trials, concatenated in order."""
    return (np.concatenate([w.scores for w in per_writer]), np.concatenate([w.labels for w in per_writer]))


def summarise(per_writer: Sequence[WriterScores], threshold: float | None = None) -> dict:
    """JSON-ready numbers: ``pooled`` (:func:`siamjax.eval.verification.verification_report` over all
    trials, with FAR / FRR at ``threshold`` when given) and ``writers``, one row per writer: counts,
    ``eer``, ``eer_threshold``, ``auc``, genuine / forgery mean scores, and ``far`` / ``frr`` at
    ``threshold``. ``mean_writer_eer`` is the unweighted mean of the writers' EERs."""
    s, y = pooled(per_writer)
    out: dict = {"pooled": V.verification_report(s, y, threshold), "writers": []}
    for w in per_writer:
        e, t = V.eer(w.scores, w.labels)
        row = {"writer": w.writer, "n_references": w.n_references, "n_genuine": int(w.labels.sum()),
               "n_forgery": int((~w.labels).sum()), "eer": e, "eer_threshold": t,
               "auc": V.roc_auc(w.scores, w.labels),
               "genuine_mean": float(w.scores[w.labels].mean()), "forgery_mean": float(w.scores[~w.labels].mean())}
        if threshold is not None:
            r = V.rates_at(w.scores, w.labels, threshold)
            row.update(far=r["far"], frr=r["frr"])
        out["writers"].append(row)
    out["mean_writer_eer"] = float(np.mean([r["eer"] for r in out["writers"]]))
    return out
