"""Inference: a trained :class:`Model` or :class:`Ensemble` behind one interface (:class:`Embedder`: ``preprocess``, ``embed``,
``embed_preprocessed``, ``score``, ``score_embeddings``, ``pairwise``, ``members``), its post-embedding
transforms (shift TTA, whitening, block pooling) and :func:`load`."""
from siamjax.infer.base import Embedder
from siamjax.infer.ensemble import Ensemble
from siamjax.infer.load import load
from siamjax.infer.model import Model

__all__ = ["Embedder", "Ensemble", "Model", "load"]
