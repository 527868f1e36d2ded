"""Load a trained twin and use it on raw images: ``m = siamjax.load(DIR); m.embed(images); m.score(a, b)``."""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from siamjax.config_layout import upgrade_config
from siamjax.infer import block_pooling as pooling_lib
from siamjax.infer import whitening as whitening_lib
from siamjax.data.preprocess import Preprocessing, preprocess_batch, to_float
from siamjax.infer.shift import moves, shift_image
from siamjax.nn.encoders import BLOCKS
from siamjax.nn.twin import Siamese, Twin

# An array [N, H, W] / [N, H, W, C], or a list of arrays, file paths and PIL images (siamjax.data.image_input).
Images = np.ndarray | Sequence[object]


@dataclasses.dataclass
class Model:
    """A loaded twin with its preprocessing. Images: one array [N, H, W] / [N, H, W, C], or a list whose
    items are file paths (``str`` / ``pathlib.Path``, also ``data.zip/inner/img.png``), PIL images or arrays
    of any sizes, mixed. Paths and PIL images are decoded exactly as the data loaders decode files (palette,
    CMYK, 16-bit, alpha: :func:`siamjax.data.image_input.to_arrays`); arrays are taken as pixel values, so
    ``np.asarray(PIL.Image.open(path))`` of a palette image (its indices read as grey) or a CMYK one (read
    as RGBA) embeds wrongly: pass such images as paths or PIL images."""

    twin: Twin
    variables: dict
    preprocessing: Preprocessing
    meta: dict
    path: pathlib.Path | None = None
    chunk: int = 512
    # Test-time augmentation: > 0 averages each embedding over the image and its copies moved by this many
    # pixels left, right, up and down (L2-normalised first for cosine / correlation heads); 0 = off.
    tta_shift: int = 0
    # Within-class whitening fitted on the training images (siamjax.infer.whitening), applied after the shifts.
    whitening: whitening_lib.Whitening | None = None
    # An earlier block's pooled features appended to the embedding (siamjax.infer.block_pooling), after whitening.
    block_pooling: pooling_lib.BlockPooling | None = None

    def __post_init__(self):
        if self.tta_shift < 0:
            raise ValueError(f"tta_shift must be >= 0 pixels, got {self.tta_shift}")
        if self.block_pooling is None:
            self._embed = jax.jit(lambda v, x: (self.twin.embed(v, to_float(x, self.preprocessing)),))
        else:
            self.check_block_pooling(self.block_pooling)
            self._embed = jax.jit(self._embed_with_block)
        self._compare = jax.jit(lambda v, a, b: self.twin.compare(v, a, b).similarity)
        self._pairwise = jax.jit(self.twin.pairwise)

    @property
    def config(self) -> ml_collections.ConfigDict:
        """The training config, complete and nested (:func:`siamjax.config_layout.upgrade_config`: checkpoints
        written before the groups existed store it flat); a fresh copy on every call."""
        stored = self.meta.get("config") or {}
        if stored.get("task", "twin") != "twin":  # another trainer's (flat) config
            return ml_collections.ConfigDict(stored)
        return upgrade_config(stored)

    def reinitialised(self, seed: int = 0) -> "Model":
        """The same architecture and preprocessing with freshly initialised weights (an untrained baseline)."""
        p = self.preprocessing
        variables = self.twin.init(jax.random.key(seed), (p.size, p.size, p.channels))
        return dataclasses.replace(self, variables=variables, whitening=None, block_pooling=None)

    def check_block_pooling(self, spec: pooling_lib.BlockPooling) -> None:
        """ValueError unless this model's encoder and head can take ``spec`` (see siamjax.infer.block_pooling);
        :class:`siamjax.infer.block_pooling.NotServed` when no settings could fit it."""
        encoder = self.twin.module.encoder
        blocks = len(encoder.block_widths()) if hasattr(encoder, "block_widths") else 0
        where = f"{self.path}: " if self.path else ""
        spec.check_model(self.meta["model"]["model"], self.meta["model"]["head"], blocks, where=where)
        if self.trained_pooled_block is not None:
            raise pooling_lib.NotServed(
                f"{where}this encoder was trained with model_kwargs.pooled_block={self.trained_pooled_block}: "
                f"its embedding already holds a pooled block; delete {pooling_lib.FILENAME}",
                "trained with model_kwargs.pooled_block, its embedding holds one already")

    @property
    def trained_pooled_block(self) -> int | None:
        """The block whose maximum the encoder itself appends to its embedding (conv4
        ``model_kwargs.pooled_block``), or None."""
        return getattr(self.twin.module.encoder, "pooled_block", None)

    def encode_blocks(self, variables: dict, x: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
        """Traceable; conv4 only. uint8 [N, S, S, C] -> (embedding [N, D], each conv block's output as the
        network computes it, BatchNorm -> ReLU -> 2 x 2 max-pool: float32 [N, h_k, w_k, C_k], first first),
        the blocks as the encoder sows them (:data:`siamjax.nn.encoders.BLOCKS`)."""
        e, state = self.twin.module.apply(variables, to_float(x, self.preprocessing), train=False,
                                          method=Siamese.embed, mutable=["intermediates"])
        return e, [b.astype(jnp.float32) for b in state["intermediates"]["encoder"][BLOCKS]]

    def _embed_with_block(self, variables: dict, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """uint8 [N, S, S, C] -> (embedding [N, D], the chosen block's pooled output [N, C_k])."""
        e, blocks = self.encode_blocks(variables, x)  # the blocks not used are dropped when compiled
        return e, self.block_pooling.pool_map(blocks[self.block_pooling.block])

    def preprocess(self, images: Images) -> np.ndarray:
        """Raw images (paths, PIL images or arrays of pixel values; see the class doc) -> uint8
        [N, size, size, C] exactly as the model was trained on."""
        return preprocess_batch(images, self.preprocessing)

    def embed(self, images: Images) -> np.ndarray:
        """Raw images -> float32 embeddings [N, D]."""
        return self.embed_preprocessed(self.preprocess(images))

    def embed_preprocessed(self, x: np.ndarray) -> np.ndarray:
        """Already preprocessed uint8 [N, size, size, C] (see :meth:`preprocess`) -> [N, D]."""
        self.preprocessing.check_batch(x)
        if not len(x):
            return np.zeros((0, self.embed_dim), np.float32)
        views = [x] + ([shift_image(x, dy, dx) for dy, dx in moves(self.tta_shift)] if self.tta_shift else [])
        per_view = [self._embed_parts(v) for v in views]
        parts = []
        for k in range(len(per_view[0])):  # the embedding, then any pooled block: each averaged over views
            embs = [p[k] for p in per_view]
            if len(embs) > 1 and self.meta["model"]["head"] in ("cosine", "correlation"):
                embs = [whitening_lib.unit_rows(e) for e in embs]
            parts.append(embs[0] if len(embs) == 1 else np.mean(embs, axis=0).astype(np.float32))
        e = parts[0]
        if not len(e):
            return e
        e = self.whitening.apply(e) if self.whitening is not None else e
        return self.block_pooling.combine(e, parts[1]) if self.block_pooling is not None else e

    def _embed_views(self, x: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, C] -> the encoder's embedding [N, D], no shifts, whitening or pooled block."""
        return self._embed_parts(x)[0]

    def _embed_parts(self, x: np.ndarray) -> list[np.ndarray]:
        """uint8 [N, S, S, C] -> [embedding [N, D]] or, with block pooling, [embedding, pooled [N, C_k]]."""
        out = []
        for i in range(0, len(x), self.chunk):
            block = x[i:i + self.chunk]
            n = len(block)
            size = 1 << max(n - 1, 0).bit_length()  # pad to a power of two: few compilations
            if size > n:
                block = np.concatenate([block, np.zeros((size - n, *block.shape[1:]), block.dtype)])
            out.append([np.asarray(a)[:n] for a in self._embed(self.variables, block)])
        if not out:
            return [np.zeros((0, 0), np.float32)]
        return [np.concatenate([o[k] for o in out]) for k in range(len(out[0]))]

    @property
    def embed_dim(self) -> int:
        """D of :meth:`embed`'s [N, D] (the pooled block's channels included)."""
        p = self.preprocessing
        shapes = jax.eval_shape(self._embed, self.variables,
                                jax.ShapeDtypeStruct((1, p.size, p.size, p.channels), jnp.uint8))
        return sum(int(s.shape[-1]) for s in shapes)

    def score(self, a: Images, b: Images) -> np.ndarray:
        """Similarity of aligned pairs (a[i], b[i]): float32 [N], larger = more alike."""
        ea, eb = self.embed(a), self.embed(b)
        if len(ea) != len(eb):
            raise ValueError(f"score needs as many images in a as in b, got {len(ea)} and {len(eb)}")
        return np.array(self._compare(self.variables, ea, eb))

    def score_embeddings(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Similarity of aligned embedding pairs a, b [N, D] -> [N]."""
        return np.asarray(self._compare(self.variables, jnp.asarray(a), jnp.asarray(b)))

    def pairwise_jax(self, a: jax.Array, b: jax.Array) -> jax.Array:
        """Traceable all-pairs similarity (usable under jit / vmap): [N, D], [M, D] -> [N, M]."""
        return self.twin.pairwise(self.variables, a, b)

    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Similarity of all embedding pairs: a [N, D], b [M, D] -> [N, M] (a writable NumPy array)."""
        return np.array(self._pairwise(self.variables, jnp.asarray(a), jnp.asarray(b)))

    @property
    def members(self) -> list["Model"]:
        """The networks behind this model: ``[self]`` (an :class:`~siamjax.infer.ensemble.Ensemble` has several)."""
        return [self]
