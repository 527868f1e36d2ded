"""Several trained twins served as one model: each pair's similarity is the mean of the members'.

An ensemble folder holds ``ensemble.json`` and the members' checkpoints::

    pretrained/omniglot/ensemble.json      {"members": ["seed2", "proxies_seed0", ...]}
    pretrained/omniglot/seed2/             a step folder (variables/, meta/) as train.py writes it
    pretrained/omniglot/proxies_seed0/

:func:`siamjax.load` reads such a folder as an :class:`Ensemble`, which offers what a
:class:`siamjax.Model` offers (embed, pairwise, score, ...). Its embedding of an image is the members'
embeddings side by side ([N, sum of D_i]); its similarity of two embeddings is the mean over members of
each member's similarity on its own block, so episodes, k-NN, galleries and verification work
unchanged. Members must share the comparison head (a mean of cosines and distances would mean nothing)
and the preprocessing except its size and ink cropping: the ensemble preprocesses images at its largest
member's size, and a member of a smaller size sees that array resized to its own (a second antialiased
resize of the already preprocessed image, so it differs slightly from that member loaded alone). When
members crop to the ink differently (``crop_to_ink``, ``keep_aspect``, ``ink_threshold``,
``crop_margin``, ``crop_frame``, ``crop_radius``), the ensemble preprocesses uncropped at twice the
largest member's size and each member crops and resizes that array its own way (again slightly unlike the
member alone, which crops the original image). ``python -m siamjax.cli.ensemble OUT CHECKPOINT...`` builds a folder;
``--weights_dtype float16`` stores the members' weights at half the size (they load as float32 and the
model computes in float32; embeddings move by about 0.1% of their scale).
"""
from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from siamjax.data.preprocess import preprocess_batch
from siamjax.infer.manifest import MANIFEST, is_ensemble, member_dirs, read_manifest, step_folders  # noqa: F401


@dataclasses.dataclass
class Ensemble:
    """Member models (:class:`siamjax.Model`) that share preprocessing and head; see the module doc."""

    members: list
    path: pathlib.Path | None = None

    def __post_init__(self):
        if not self.members:
            raise ValueError("an ensemble needs at least one member")
        first = self.members[0]
        for i, m in enumerate(self.members[1:], 1):
            if m.preprocessing.uncropped(first.preprocessing.size) != first.preprocessing.uncropped():
                raise ValueError(f"ensemble member {i} preprocesses images differently from member 0 "
                                 f"({m.meta['preprocessing']} vs {first.meta['preprocessing']}); members may "
                                 "differ in image size and ink cropping only")
            if m.meta["model"]["head"] != first.meta["model"]["head"]:
                raise ValueError(f"ensemble member {i} compares with head {m.meta['model']['head']!r}, member 0 "
                                 f"with {first.meta['model']['head']!r}; members must share the head")
        largest = max((m.preprocessing for m in self.members), key=lambda p: p.size)  # the first largest
        self._mixed_crops = len({_crop_settings(m.preprocessing) for m in self.members}) > 1
        # Mixed crops: an uncropped array at twice the largest size, which each member crops its own way.
        self._spec = largest.uncropped(2 * largest.size) if self._mixed_crops else largest
        self._dims = [m.embed_dim for m in self.members]
        self._pairwise = jax.jit(self.pairwise_jax)

    # ---- what siamjax.Model offers
    @property
    def preprocessing(self):
        """What :meth:`embed_preprocessed` expects: the largest member's preprocessing or, when members
        crop to the ink differently, that without cropping at twice its size."""
        return self._spec

    @property
    def tta_shift(self) -> int:
        return self.members[0].tta_shift

    @property
    def meta(self) -> dict:
        """Member 0's meta (model, preprocessing, config) with ``step`` listing every member's step and
        ``ensemble`` the number of members."""
        metas = [m.meta for m in self.members]
        return {**metas[0], "step": [mt.get("step") for mt in metas], "ensemble": len(metas)}

    @property
    def variables(self) -> dict:
        """Every member's variables, under ``member<i>`` (what identifies the ensemble's weights)."""
        return {f"member{i}": m.variables for i, m in enumerate(self.members)}

    @property
    def config(self) -> ml_collections.ConfigDict:
        return self.members[0].config

    @property
    def embed_dim(self) -> int:
        """D of :meth:`embed`'s [N, D]: the members' widths added up."""
        return sum(self._dims)

    def reinitialised(self, seed: int = 0) -> "Ensemble":
        """The same members with fresh weights (member i from ``seed + i``): an untrained baseline."""
        return dataclasses.replace(self, members=[m.reinitialised(seed + i) for i, m in enumerate(self.members)])

    def preprocess(self, images) -> np.ndarray:
        """Raw images as :class:`siamjax.Model` takes them (paths and PIL images decoded as the data loaders
        decode files, arrays taken as pixel values) -> uint8 [N, S, S, C] for :meth:`embed_preprocessed`."""
        return preprocess_batch(images, self._spec)

    def embed(self, images) -> np.ndarray:
        """Raw images -> float32 [N, sum of the members' D]."""
        return self.embed_preprocessed(self.preprocess(images))

    def embed_preprocessed(self, x: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, C] at :attr:`preprocessing`'s size S -> float32 [N, sum of the members' D]; a
        member that preprocesses otherwise (smaller, or cropped differently) embeds ``x`` resized (and
        cropped) to its own (once per distinct preprocessing)."""
        self._spec.check_batch(x, " (the largest member's size)" if not self._mixed_crops else
                               " (uncropped, twice the largest member's size)")
        views = {}
        for m in self.members:
            if m.preprocessing not in views:
                views[m.preprocessing] = self._view(x, m.preprocessing)
        return np.concatenate([m.embed_preprocessed(views[m.preprocessing]) for m in self.members], axis=1)

    def _view(self, x: np.ndarray, spec) -> np.ndarray:
        """The ensemble's array ``x`` as a member preprocessing with ``spec`` sees it."""
        if spec == self._spec:
            return x
        if self._mixed_crops:  # polarity was applied; each member crops the uncropped array its own way
            return preprocess_batch(x, dataclasses.replace(spec, invert=False))
        # polarity, crop and aspect were applied at the largest size
        return preprocess_batch(x, dataclasses.replace(spec.uncropped(), invert=False))

    def member_blocks(self, e):
        """Split embeddings [N, sum D_i] into the members' [N, D_i] blocks, in member order (each member's
        own embedding); ValueError for another width."""
        dims = self._dims
        if e.shape[-1] != sum(dims):
            raise ValueError(f"expected ensemble embeddings of width {sum(dims)} (members: {dims}), "
                             f"got shape {tuple(e.shape)}")
        return jnp.split(e, np.cumsum(dims)[:-1].tolist(), axis=-1)

    def pairwise_jax(self, a: jax.Array, b: jax.Array) -> jax.Array:
        """Traceable mean of the members' all-pairs similarities: [N, sum D], [M, sum D] -> [N, M]."""
        sims = [m.pairwise_jax(x, y) for m, x, y in zip(self.members, self.member_blocks(a), self.member_blocks(b))]
        return sum(sims) / len(sims)

    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Mean of the members' all-pairs similarities: [N, sum D], [M, sum D] -> [N, M] (writable)."""
        return np.array(self._pairwise(jnp.asarray(a), jnp.asarray(b)))

    def score_embeddings(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Mean of the members' similarities of aligned pairs: [N, sum D], [N, sum D] -> [N]."""
        blocks = zip(self.members, self.member_blocks(jnp.asarray(a)), self.member_blocks(jnp.asarray(b)))
        return np.mean([m.score_embeddings(x, y) for m, x, y in blocks], axis=0).astype(np.float32)

    def score(self, a, b) -> np.ndarray:
        """Similarity of aligned pairs (a[i], b[i]) of raw images: float32 [N]."""
        ea, eb = self.embed(a), self.embed(b)
        if len(ea) != len(eb):
            raise ValueError(f"score needs as many images in a as in b, got {len(ea)} and {len(eb)}")
        return self.score_embeddings(ea, eb)


def _crop_settings(spec) -> tuple:
    """What of a Preprocessing decides how an image is cropped and fitted (threshold, frame, margin and
    radius only count when it crops, the margin only for a box and the radius only for a moments frame)."""
    crops = spec.crop_to_ink
    frame = spec.crop_frame if crops else None
    return (crops, spec.keep_aspect, spec.ink_threshold if crops else None, frame,
            spec.crop_margin if frame == "box" else None, spec.crop_radius if frame == "moments" else None)
