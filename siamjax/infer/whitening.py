"""Within-class whitening of a trained model's embeddings, fitted on its own training images.

The drawer-to-drawer (or photo-to-photo) variation of one class is what a one-shot comparison must
ignore. Given unit-length embeddings x [N, D] of the training images and their classes, the
within-class covariance Sw [D, D] (spread of each image around its class mean) is estimated and every
embedding is mapped to

    z = (Sw + shrinkage * mean_eigenvalue(Sw) * I)^(-1/2) (x - mu)          (mu: the mean training embedding)

so that directions in which images of one class vary count for less in the cosine that compares
them. ``rank`` keeps the map exact on Sw's ``rank`` largest eigen-directions and uniform elsewhere
(identity plus rank k: D x k numbers instead of D x D). Only cosine / correlation heads take it: they
compare directions, which the map changes; the other heads measure distances in the space they were
trained in.

A model's map lives beside its weights as ``whitening.npz`` in its step folder (an ensemble: in each
member's); :func:`siamjax.load` applies it unless ``whitening=False``. Fit one with

    python -m siamjax.cli.whitening CHECKPOINT [--data_dir DIR] [--shrinkage 3] [--rank 128]

which embeds the model's training split as its stored config defines it (without turned or mirrored
copies) and writes the file.
"""
from __future__ import annotations

import dataclasses
import pathlib
import zipfile

import numpy as np

FILENAME = "whitening.npz"
HEADS = ("cosine", "correlation")


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row of x [N, D] scaled to unit L2 length (an all-zero row stays zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclasses.dataclass(frozen=True)
class Whitening:
    """z = rest * (x - mean) + V diag(scales - rest) V^T (x - mean), x the unit-length embedding.

    mean [D], basis V [D, k] (orthonormal columns), scales [k], rest: a float."""

    mean: np.ndarray
    basis: np.ndarray
    scales: np.ndarray
    rest: float
    shrinkage: float = 0.0

    def __post_init__(self):
        d, k = self.basis.shape if self.basis.ndim == 2 else (-1, -1)
        if self.mean.shape != (d,) or self.scales.shape != (k,) or not np.isfinite(self.rest):
            raise ValueError(f"inconsistent whitening: mean {self.mean.shape}, basis {self.basis.shape}, "
                             f"scales {self.scales.shape}, rest {self.rest}")

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def apply(self, e: np.ndarray) -> np.ndarray:
        """Embeddings [N, D] (any length; L2-normalised first) -> whitened float32 [N, D]."""
        e = np.asarray(e, np.float32)
        if e.ndim != 2 or e.shape[1] != self.dim:
            raise ValueError(f"whitening expects embeddings [N, {self.dim}], got {e.shape}")
        x = unit_rows(e) - self.mean.astype(np.float32)
        basis = self.basis.astype(np.float32)
        return (self.rest * x + ((x @ basis) * (self.scales - self.rest).astype(np.float32)) @ basis.T).astype(np.float32)

    def save(self, path: str | pathlib.Path) -> None:
        """Write to ``path`` (an ``.npz``); the basis as float16, the rest as float32."""
        np.savez(path, mean=self.mean.astype(np.float32), basis=self.basis.astype(np.float16),
                 scales=self.scales.astype(np.float32), rest=np.float32(self.rest),
                 shrinkage=np.float32(self.shrinkage))


def read(path: str | pathlib.Path) -> Whitening:
    """A map saved by :meth:`Whitening.save`; a clear error for a truncated or foreign file."""
    try:
        with np.load(path) as f:
            return Whitening(mean=f["mean"].astype(np.float32), basis=f["basis"].astype(np.float32),
                             scales=f["scales"].astype(np.float32), rest=float(f["rest"]),
                             shrinkage=float(f["shrinkage"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable whitening file ({e}); refit it with python -m "
                         "siamjax.infer.whitening or delete it") from e


def within_class_residuals(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, int]:
    """x [N, D], labels [N] -> (each row minus its class's mean [N, D] in x's dtype, N - C): the
    within-class covariance is r^T r / (N - C)."""
    uniq, inv = np.unique(np.asarray(labels), return_inverse=True)
    if len(x) != len(inv) or len(x) <= len(uniq):
        raise ValueError(f"need more images than classes (and one label per image): {len(x)} images, "
                         f"{len(inv)} labels, {len(uniq)} classes")
    means = np.zeros((len(uniq), x.shape[1]), x.dtype)
    np.add.at(means, inv, x)
    means /= np.bincount(inv)[:, None]
    return x - means[inv], len(x) - len(uniq)


def within_class_covariance(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """x [N, D], labels [N] -> float64 [D, D]: covariance of x around its class means (N - C dof)."""
    r, dof = within_class_residuals(np.asarray(x, np.float64), labels)
    return r.T @ r / dof


def _check_shrinkage(shrinkage: float) -> None:
    if not shrinkage > 0:  # NaN fails too
        raise ValueError(f"shrinkage must be > 0 (in units of the mean eigenvalue), got {shrinkage}")


def from_spectrum(top_values: np.ndarray, top_vectors: np.ndarray, rest_value: float, mean_value: float,
                  mean: np.ndarray, shrinkage: float = 3.0) -> Whitening:
    """The map from Sw's k largest eigenvalues [k] and their eigenvectors [D, k], the mean of its other
    D - k eigenvalues (``rest_value``; unused when k = D) and of all D (``mean_value``), around ``mean`` [D]."""
    _check_shrinkage(shrinkage)
    floor = shrinkage * mean_value
    scales = 1.0 / np.sqrt(np.asarray(top_values) + floor)
    rest = 1.0 / np.sqrt(rest_value + floor) if top_vectors.shape[1] < top_vectors.shape[0] else 0.0
    return Whitening(mean=np.asarray(mean, np.float32), basis=np.asarray(top_vectors, np.float32),
                     scales=scales.astype(np.float32), rest=float(rest), shrinkage=float(shrinkage))


def from_covariance(sw: np.ndarray, mean: np.ndarray, shrinkage: float = 3.0, rank: int | None = 128) -> Whitening:
    """The map for a within-class covariance sw [D, D] around ``mean`` [D] (see :func:`fit`)."""
    _check_shrinkage(shrinkage)  # before the eigendecomposition
    w, v = np.linalg.eigh(np.asarray(sw, np.float64))  # ascending
    w = np.maximum(w, 0.0)
    d = len(w)
    k = d if rank is None else max(0, min(int(rank), d))
    rest_value = float(np.mean(w[:d - k])) if k < d else 0.0
    return from_spectrum(w[d - k:], v[:, d - k:], rest_value, float(np.mean(w)), mean, shrinkage)


def fit(embeddings: np.ndarray, labels: np.ndarray, shrinkage: float = 3.0, rank: int | None = 128) -> Whitening:
    """Fit the map on training embeddings [N, D] (L2-normalised here) with class labels [N].

    shrinkage: added to Sw's eigenvalues in units of their mean (larger = closer to no whitening).
    rank: eigen-directions treated exactly (None or >= D: all)."""
    x = unit_rows(np.asarray(embeddings, np.float64))
    return from_covariance(within_class_covariance(x, labels), x.mean(0), shrinkage, rank)
