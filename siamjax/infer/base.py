"""What every loaded model offers, one network (:class:`~siamjax.infer.model.Model`) or several
(:class:`~siamjax.infer.ensemble.Ensemble`): callers use this interface, never the concrete class.

Images are raw (a stack [N, H, W(, C)] or a list of arrays of any sizes); embeddings float32 [N, D];
similarities float32, larger = more alike.
"""
from __future__ import annotations

import pathlib
from typing import Protocol, runtime_checkable

import jax
import numpy as np

from siamjax.data.preprocess_spec import Preprocessing


@runtime_checkable
class Embedder(Protocol):
    path: pathlib.Path | None

    @property
    def preprocessing(self) -> Preprocessing: ...  # what embed_preprocessed expects
    @property
    def meta(self) -> dict: ...  # model, preprocessing, config and step of the checkpoint
    @property
    def members(self) -> list: ...  # the networks behind it: [self] for one Model
    @property
    def embed_dim(self) -> int: ...  # D

    def preprocess(self, images) -> np.ndarray: ...  # raw images -> uint8 [N, S, S, C]
    def embed(self, images) -> np.ndarray: ...  # raw images -> [N, D]
    def embed_preprocessed(self, x: np.ndarray) -> np.ndarray: ...  # uint8 [N, S, S, C] -> [N, D]
    def score(self, a, b) -> np.ndarray: ...  # aligned raw image pairs -> [N]
    def score_embeddings(self, a: np.ndarray, b: np.ndarray) -> np.ndarray: ...  # [N, D] x 2 -> [N]
    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray: ...  # [N, D], [M, D] -> [N, M]
    def pairwise_jax(self, a: jax.Array, b: jax.Array) -> jax.Array: ...  # the same, traceable
    def reinitialised(self, seed: int = 0) -> "Embedder": ...  # same architecture, fresh weights
