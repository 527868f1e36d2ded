"""A biometric gallery: enrolled identities' embeddings, 1:1 verification and 1:N identification.

::

    import siamjax
    from siamjax.eval.gallery import Gallery

    model = siamjax.load("workdirs/faces")
    g = Gallery(model)
    g.enrol("alice", images=[img1, img2])            # raw images (any size) or embeddings=[k, D]
    g.calibrate(genuine_scores, impostor_scores, target_far=1e-3)
    score, accepted = g.verify(probe_image, "alice")  # 1:1
    g.identify(probe_image, k=5)                      # 1:N: [(identity, score)], best first
    g.save("gallery.npz")
    g = Gallery.load("gallery.npz", model)            # refused if made with another model

Scoring: a probe's score against an identity is the **maximum** similarity (the model's head,
:meth:`siamjax.Model.pairwise`) over that identity's enrolled embeddings (``rule="max"``, the
default: one good enrolment image suffices, robust to enrolments with varied poses). ``rule="mean"``
averages the similarities instead and ``rule="template"`` compares with the mean embedding (the
stored template). Thresholds must be calibrated with scores computed by the same rule
(:meth:`Gallery.score` gives them). A probe is accepted when ``score >= threshold``.

Per-identity score normalisation (``normalise=``, opt-in; default ``"none"``: the raw score above).
For identity I, with raw score ``s`` (by the rule), the normalised score is
``(s - m_I) / max(sd_I, min_std)``, where m_I and sd_I (population std, ddof 0) describe I's enrolled
embeddings (:meth:`Gallery.identity_stats`):

* ``"refs"``: m_I, sd_I = mean and std of the k (k - 1) / 2 head similarities between I's k enrolled
  embeddings (every pair once): how alike the identity's own references are. Needs k >= 2.
* ``"znorm"``: m_I, sd_I = mean and std of the rule scores of every *other* identity's enrolled
  embedding taken as a probe of I (a cohort z-norm: how I scores impostors). Needs at least 2
  embeddings of other identities.

``min_std`` (default 0.01) keeps a tiny spread (two references give a single similarity, sd 0) from
blowing the score up. Scores of one normalisation are on their own scale: calibrate with them.
Statistics are computed on first use and recomputed after :meth:`Gallery.enrol` / :meth:`Gallery.remove`
(``znorm``'s depend on every identity, so enrolling one changes the others').

File format (``save`` / ``load``): one ``.npz`` read with ``allow_pickle=False`` holding
``embeddings`` float32 [T, D] (all enrolled embeddings, identity by identity), ``owner`` int32 [T]
(identity index of each row), ``templates`` float32 [I, D] (per-identity mean embedding) and
``meta``, a JSON string: ``identities`` (names, in index order), ``checkpoint`` (path of the model's
step folder), ``fingerprint`` (:func:`model_fingerprint`), ``model`` (the checkpoint's model
description), ``threshold``, ``far``, ``threshold_source``, ``rule``, ``normalise``, ``min_std``, ``format``
(files without ``normalise`` load as ``"none"``). No pickle anywhere.
"""
from __future__ import annotations

import difflib
import hashlib
import io
import json
import os
import pathlib
import tempfile
from typing import Callable, Sequence

import numpy as np

from siamjax.data.image_input import to_arrays
from siamjax.eval import verification as V

__all__ = ["Gallery", "UnknownIdentity", "model_fingerprint"]

FORMAT = "siamjax-gallery-1"
RULES = ("max", "mean", "template")
NORMALISATIONS = ("none", "refs", "znorm")


class UnknownIdentity(KeyError, ValueError):
    """An identity that is not enrolled (a KeyError, and a ValueError so that the CLIs report it in
    one line); the message lists the closest enrolled names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown identity"


def model_fingerprint(model) -> str:
    """Hex digest (20 characters) identifying a model's embedding space: SHA-256 over its model
    description and preprocessing (from the checkpoint's meta) and every weight (path, dtype, shape,
    bytes). Two loads of the same checkpoint, or copies of it, give the same fingerprint; another
    checkpoint (another step, other training) gives another one."""
    import jax

    h = hashlib.sha256()
    meta = getattr(model, "meta", {}) or {}
    h.update(json.dumps({"model": meta.get("model"), "preprocessing": meta.get("preprocessing")},
                        sort_keys=True, default=str).encode())
    leaves = jax.tree_util.tree_flatten_with_path(getattr(model, "variables", {}))[0]
    for path, leaf in sorted(leaves, key=lambda kv: jax.tree_util.keystr(kv[0])):
        arr = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{arr.dtype.str}|{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:20]


def _close_names(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=5, cutoff=0.5)
    if close:
        return "closest enrolled: " + ", ".join(repr(c) for c in close)
    shown = ", ".join(repr(n) for n in list(names)[:20])
    more = f", ... ({len(names)} in all)" if len(names) > 20 else ""
    return f"enrolled: {shown}{more}" if names else "the gallery is empty"


class Gallery:
    """Enrolled identities with all their embeddings and a mean template each.

    Args:
        model: a :class:`siamjax.Model` (or anything with ``pairwise(a [N, D], b [M, D]) -> [N, M]``
            and, to take images, ``embed(images) -> [N, D]``): scores probes with its head and
            stamps the gallery with its checkpoint and :func:`model_fingerprint`.
        pairwise: instead of a model, a similarity function ``(a [N, D], b [M, D]) -> [N, M]``
            (embeddings only; no fingerprint).
        rule: "max" (default), "mean" or "template": see the module docstring.
        normalise: "none" (default), "refs" or "znorm": per-identity score normalisation (module docstring).
        min_std: the smallest spread a normalisation divides by.
        threshold, far: the decision threshold (accept when score >= threshold) and the FAR it was
            calibrated for, if known.
    """

    def __init__(self, model=None, *, pairwise: Callable | None = None, rule: str = "max",
                 threshold: float | None = None, far: float | None = None, threshold_source: str = "",
                 normalise: str = "none", min_std: float = 0.01):
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
        if normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
        if not float(min_std) > 0:
            raise ValueError(f"min_std must be > 0, got {min_std!r}")
        self.model = model
        self._pairwise = pairwise
        self.rule = rule
        self.normalise = normalise
        self.min_std = float(min_std)
        self._stats: dict[tuple, tuple[float, float]] = {}  # (normalise, rule, identity) -> (mean, std)
        self.threshold = None if threshold is None else float(threshold)
        self.far = None if far is None else float(far)
        self.threshold_source = threshold_source
        self._emb: dict[str, np.ndarray] = {}  # identity -> float32 [k, D], insertion order kept
        self.checkpoint = str(getattr(model, "path", "") or "") if model is not None else ""
        self.fingerprint = model_fingerprint(model) if model is not None and hasattr(model, "variables") else ""
        self.model_info = dict((getattr(model, "meta", {}) or {}).get("model", {}) or {}) if model is not None else {}

    # ------------------------------------------------------------------ contents
    @property
    def identities(self) -> list[str]:
        """Enrolled identity names, in enrolment order."""
        return list(self._emb)

    def __len__(self) -> int:
        return len(self._emb)

    def __contains__(self, identity: str) -> bool:
        return identity in self._emb

    @property
    def dim(self) -> int | None:
        return next(iter(self._emb.values())).shape[1] if self._emb else None

    def embeddings(self, identity: str) -> np.ndarray:
        """float32 [k, D]: every embedding enrolled for ``identity``."""
        return self._emb[self._check_identity(identity)]

    def template(self, identity: str) -> np.ndarray:
        """float32 [D]: the mean of ``identity``'s enrolled embeddings."""
        return self.embeddings(identity).mean(axis=0)

    def _check_identity(self, identity: str) -> str:
        if identity not in self._emb:
            raise UnknownIdentity(f"identity {identity!r} is not enrolled in this gallery "
                                  f"({len(self._emb)} identities); {_close_names(identity, self.identities)}")
        return identity

    # ------------------------------------------------------------------ enrolment
    def _embed_images(self, images) -> np.ndarray:
        if self.model is None or not hasattr(self.model, "embed"):
            raise ValueError("enrolling or matching images needs a model: Gallery(model) or Gallery.load(path, model)")
        if isinstance(images, np.ndarray) and images.ndim == 2:
            images = [images]  # one grey image
        return np.asarray(self.model.embed(images), np.float32)

    def enrol(self, identity: str, embeddings=None, *, images=None) -> int:
        """Add embeddings (float [k, D] or [D]) or raw images (a list of file paths, PIL images or arrays of
        any size, or a stack, embedded with the model: see :class:`siamjax.Model`) to ``identity``, creating
        it if new. Returns its number of embeddings."""
        if not isinstance(identity, str) or not identity.strip():
            raise ValueError(f"identity must be a non-empty string, got {identity!r}")
        if (embeddings is None) == (images is None):
            raise ValueError("enrol needs exactly one of embeddings=... or images=...")
        emb = self._embed_images(images) if images is not None else np.asarray(embeddings, np.float32)
        if emb.ndim == 1:
            emb = emb[None]
        if emb.ndim != 2 or emb.shape[0] == 0:
            raise ValueError(f"embeddings must be [k, D] with k >= 1, got shape {emb.shape}")
        if not np.isfinite(emb).all():
            raise ValueError(f"embeddings for {identity!r} are not all finite")
        if self.dim is not None and emb.shape[1] != self.dim:
            raise ValueError(f"embeddings for {identity!r} have dimension {emb.shape[1]}; this gallery's are {self.dim}")
        old = self._emb.get(identity)
        self._emb[identity] = emb.copy() if old is None else np.concatenate([old, emb])
        self._stats.clear()
        return len(self._emb[identity])

    enroll = enrol

    def remove(self, identity: str) -> None:
        del self._emb[self._check_identity(identity)]
        self._stats.clear()

    # ------------------------------------------------------------------ scoring
    def _similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self._pairwise is not None:
            return np.asarray(self._pairwise(a, b), np.float64)
        if self.model is None:
            raise ValueError("scoring needs a model or a pairwise function: Gallery(model), Gallery(pairwise=fn) "
                             "or Gallery.load(path, model)")
        return np.asarray(self.model.pairwise(a, b), np.float64)

    def _probe(self, probe) -> np.ndarray:
        """A probe: a 1-D embedding [D], or an image (a file path, a PIL image, or a 2-D grey or 3-D
        [H, W, C] array of pixel values)."""
        arr = probe if isinstance(probe, np.ndarray) else np.asarray(to_arrays([probe])[0])
        if arr.ndim == 1:
            emb = arr.astype(np.float32)[None]
        elif arr.ndim in (2, 3):
            emb = self._embed_images([arr])
        else:
            raise ValueError(f"a probe is one embedding [D] or one image [H, W] / [H, W, C]; got shape {arr.shape}")
        if self.dim is not None and emb.shape[1] != self.dim:
            raise ValueError(f"probe embedding has dimension {emb.shape[1]}; this gallery's are {self.dim}")
        return emb

    def _raw_scores(self, q: np.ndarray, names: list[str]) -> np.ndarray:
        """float64 [P, len(names)]: rule scores (no normalisation) of probe embeddings q [P, D]."""
        if self.rule == "template":
            return self._similarity(q, np.stack([self.template(n) for n in names]))
        emb = np.concatenate([self._emb[n] for n in names])
        sims = self._similarity(q, emb)
        bounds = np.cumsum([0] + [len(self._emb[n]) for n in names])
        agg = np.max if self.rule == "max" else np.mean
        return np.stack([agg(sims[:, a:b], axis=1) for a, b in zip(bounds[:-1], bounds[1:])], axis=1)

    def identity_stats(self, identity: str, normalise: str | None = None) -> tuple[float, float]:
        """(m_I, sd_I) of ``identity`` for a normalisation (default: the gallery's): ``"refs"``, the mean and
        std of the similarities between its enrolled embeddings (each pair once); ``"znorm"``, of the rule
        scores of the other identities' embeddings against it. ``"none"``: (0, 1)."""
        normalise = self.normalise if normalise is None else normalise
        if normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
        if normalise == "none":
            return 0.0, 1.0
        key = (normalise, self.rule, self._check_identity(identity))
        if key not in self._stats:
            own = self._emb[identity]
            if normalise == "refs":
                if len(own) < 2:
                    raise ValueError(f"normalise='refs' needs at least 2 enrolled embeddings per identity; "
                                     f"{identity!r} has {len(own)} (use normalise='znorm' or 'none')")
                i, j = np.triu_indices(len(own), k=1)
                vals = self._similarity(own, own)[i, j]
            else:
                others = [self._emb[n] for n in self._emb if n != identity]
                cohort = np.concatenate(others) if others else np.zeros((0, own.shape[1]), np.float32)
                if len(cohort) < 2:
                    raise ValueError(f"normalise='znorm' needs at least 2 enrolled embeddings of other identities "
                                     f"than {identity!r}; the gallery has {len(cohort)}")
                vals = self._raw_scores(cohort, [identity])[:, 0]
            self._stats[key] = (float(np.mean(vals)), float(np.std(vals)))
        return self._stats[key]

    def score_many(self, probes, identities: Sequence[str] | None = None) -> np.ndarray:
        """float64 [P, len(identities)]: scores of probe embeddings [P, D] (or one [D]) against each identity
        (all, in enrolment order, by default), by the gallery's ``rule`` and ``normalise``."""
        names = self.identities if identities is None else [self._check_identity(n) for n in identities]
        if not names:
            raise ValueError("the gallery is empty: enrol identities first")
        q = np.asarray(probes, np.float32)
        q = q[None] if q.ndim == 1 else q
        if q.ndim != 2 or (self.dim is not None and q.shape[1] != self.dim):
            raise ValueError(f"probe embeddings must be [P, {self.dim}], got shape {q.shape}")
        out = self._raw_scores(q, names)
        if self.normalise != "none":
            stats = np.asarray([self.identity_stats(n) for n in names])
            out = (out - stats[:, 0]) / np.maximum(stats[:, 1], self.min_std)
        return out

    def score(self, probe, identities: Sequence[str] | None = None) -> np.ndarray:
        """float64 [len(identities)]: the probe's score against each identity (all, in enrolment order,
        by default) by the gallery's ``rule`` and ``normalise``."""
        names = self.identities if identities is None else [self._check_identity(n) for n in identities]
        if not names:
            raise ValueError("the gallery is empty: enrol identities first")
        return self.score_many(self._probe(probe), names)[0]

    def verify(self, probe, identity: str) -> tuple[float, bool]:
        """1:1: (score, accepted) of ``probe`` (image or embedding [D]) against ``identity``;
        accepted = score >= threshold. Raises ValueError when no threshold is set (:meth:`calibrate`)."""
        s = float(self.score(probe, [identity])[0])
        if self.threshold is None:
            raise ValueError("this gallery has no decision threshold: call calibrate(...) or set .threshold "
                             "(command line: --threshold)")
        return s, s >= self.threshold

    def identify(self, probe, k: int = 5) -> list[tuple[str, float]]:
        """1:N: the ``k`` best-scoring identities as [(identity, score)], best first (ties: enrolment order).
        Compare the first score with :attr:`threshold` to decide whether the probe is enrolled at all."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        s = self.score(probe)
        order = np.argsort(-s, kind="stable")[:k]
        names = self.identities
        return [(names[i], float(s[i])) for i in order]

    # ------------------------------------------------------------------ calibration
    def calibrate(self, genuine_scores, impostor_scores, target_far: float) -> float:
        """Set :attr:`threshold` to the lowest threshold whose FAR on ``impostor_scores`` is <= ``target_far``
        (:func:`siamjax.eval.verification.threshold_at_far`; warns when fewer than 1/target_far impostor
        scores make the FAR unresolvable). Scores must come from this gallery's rule (:meth:`score`).
        Returns the threshold."""
        gen = np.asarray(genuine_scores, np.float64).ravel()
        imp = np.asarray(impostor_scores, np.float64).ravel()
        thr = V.threshold_at_far(np.r_[gen, imp], np.r_[np.ones(gen.size, bool), np.zeros(imp.size, bool)],
                                 target_far)
        self.threshold, self.far = thr, float(target_far)
        self.threshold_source = (f"calibrate: FAR <= {target_far:g} on {imp.size} impostor / {gen.size} genuine "
                                 f"scores (achieved FAR {float(np.mean(imp >= thr)):.4g}, "
                                 f"TAR {float(np.mean(gen >= thr)):.4g})")
        return thr

    # ------------------------------------------------------------------ files
    def meta(self) -> dict:
        return {"format": FORMAT, "identities": self.identities, "checkpoint": self.checkpoint,
                "fingerprint": self.fingerprint, "model": self.model_info, "rule": self.rule,
                "normalise": self.normalise, "min_std": self.min_std,
                "threshold": self.threshold, "far": self.far, "threshold_source": self.threshold_source}

    def save(self, path) -> pathlib.Path:
        """Write the gallery to ``path`` (a .npz; written to a temporary file, then renamed)."""
        path = pathlib.Path(path)
        names = self.identities
        d = self.dim or 0
        arrays = {
            "embeddings": np.concatenate([self._emb[n] for n in names]) if names else np.zeros((0, d), np.float32),
            "owner": np.repeat(np.arange(len(names), dtype=np.int32), [len(self._emb[n]) for n in names]),
            "templates": np.stack([self.template(n) for n in names]) if names else np.zeros((0, d), np.float32),
            "meta": np.asarray(json.dumps(self.meta())),
        }
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buf.getvalue())
            os.replace(tmp, path)
        except BaseException:
            pathlib.Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path, model=None, *, pairwise: Callable | None = None) -> "Gallery":
        """Read a gallery written by :meth:`save`. With ``model``, its :func:`model_fingerprint` must
        equal the gallery's (embeddings of different models are not comparable): otherwise ValueError
        naming both checkpoints. Without a model, the gallery can be inspected, or scored with ``pairwise``."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"gallery {path} does not exist (create it with enrol)")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                emb = np.asarray(z["embeddings"], np.float32)
                owner = np.asarray(z["owner"], np.int64)
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"{path} is not a readable siamjax gallery ({type(e).__name__}: {e})") from None
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a siamjax gallery (format {meta.get('format')!r}, expected {FORMAT!r})")
        g = cls(None, pairwise=pairwise, rule=meta.get("rule", "max"), threshold=meta.get("threshold"),
                far=meta.get("far"), threshold_source=meta.get("threshold_source", ""),
                normalise=meta.get("normalise", "none"), min_std=meta.get("min_std", 0.01))
        g.checkpoint, g.fingerprint, g.model_info = meta.get("checkpoint", ""), meta.get("fingerprint", ""), \
            meta.get("model", {})
        for i, name in enumerate(meta["identities"]):
            g._emb[name] = emb[owner == i]
        if model is not None:
            g.attach(model, source=str(path))
        return g

    def attach(self, model, source: str = "this gallery") -> "Gallery":
        """Use ``model`` for scoring and embedding; refused (ValueError) when its fingerprint differs
        from the one the gallery was enrolled with."""
        fp = model_fingerprint(model)
        if self.fingerprint and fp != self.fingerprint:
            raise ValueError(
                f"{source} was enrolled with checkpoint {self.checkpoint or '(unknown)'} (fingerprint "
                f"{self.fingerprint}), but the model loaded from {getattr(model, 'path', None)} has fingerprint {fp}: "
                f"embeddings of different models are not comparable. Use --checkpoint {self.checkpoint} "
                f"or enrol the identities again into a new gallery")
        self.model = model
        self._stats.clear()
        if not self.fingerprint:
            self.fingerprint, self.checkpoint = fp, str(getattr(model, "path", "") or "")
            self.model_info = dict((getattr(model, "meta", {}) or {}).get("model", {}) or {})
        return self
