"""The twin: one encoder, one parameter tree, applied to both images of a pair, plus a head.

``variables`` below is the Flax variable dict ``{"params": ..., "batch_stats": ...}`` (no
``batch_stats`` for encoders without BatchNorm). Images are float32 [N, H, W, C], already normalised
(see :func:`siamjax.data.preprocess.to_float`). Every method is a pure function of its arguments and
can be used under ``jax.jit`` / ``jax.grad`` / ``jax.vmap``.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from siamjax.nn.heads import HeadOutput, make_head
from siamjax.nn.encoders import make_encoder
from siamjax.nn.projection import ProjectionSpec

TWIN_AXIS = "twin"  # the vmap axis over the two branches of a pair


class Siamese(nn.Module):
    """Encoder + head (+ the projector / predictor of unsupervised training, see
    :mod:`siamjax.nn.projection`) as one Linen module, so that one parameter tree holds them all."""

    encoder: nn.Module
    head: nn.Module
    projector: nn.Module | None = None
    predictor: nn.Module | None = None

    def embed(self, x, train: bool = False):
        # float32 embeddings whatever the encoder's compute dtype: head and losses run in float32
        return self.encoder(x, train=train).astype(jnp.float32)

    def project(self, x, train: bool = False):
        """images [N, H, W, C] -> (h [N, D] embedding, z [N, P] projection, p [N, P] prediction, or z
        itself without a predictor)."""
        h = self.embed(x, train)
        z = self.projector(h, train=train)
        p = self.predictor(z, train=train) if self.predictor is not None else z
        return h, z, p

    def compare(self, a, b):
        return self.head(a, b)

    def pairwise(self, a, b):
        return self.head.pairwise(a, b)

    def distance(self, a, b):
        return self.head.distance(a, b)

    def __call__(self, x1, x2, train: bool = False):
        if self.projector is not None:  # so that init creates the projector's and predictor's parameters
            self.project(x1, train)
        return self.compare(self.embed(x1, train), self.embed(x2, train))


@dataclasses.dataclass(frozen=True)
class Twin:
    """Pure functional front of a :class:`Siamese` module (hashable: usable as a static jit arg)."""

    module: Siamese

    def init(self, rng: jax.Array, image_shape: tuple[int, int, int]) -> dict:
        """Fresh variables for images of shape ``(H, W, C)`` (one compiled program, not op by op)."""
        x = jnp.zeros((2, *image_shape), jnp.float32)
        return dict(jax.jit(lambda key: self.module.init(key, x, x, train=False))(rng))

    def embed(self, variables: dict, images: jax.Array) -> jax.Array:
        """Inference embeddings: images [N, H, W, C] -> [N, D] (BatchNorm uses running statistics)."""
        return self.module.apply(variables, images, train=False, method=Siamese.embed)

    def embed_views(self, variables: dict, views: jax.Array, train: bool = True) -> tuple[jax.Array, Any]:
        """Training embeddings of V views of a batch, encoder vmapped over the views.

        views [V, N, H, W, C] -> (embeddings [V, N, D], new batch_stats or None). With ``train`` the
        BatchNorm statistics are shared over all V*N images (a collective over the ``twin`` axis).
        """
        return self._over_views(Siamese.embed, variables, views, train)

    def project_views(self, variables: dict, views: jax.Array, train: bool = True):
        """Unsupervised training forward of V views of a batch, vmapped over the views:
        views [V, N, H, W, C] -> ((h, z, p) each [V, N, .], new batch_stats or None), as
        :meth:`embed_views` (BatchNorm statistics shared over all V*N images). Needs a projector."""
        return self._over_views(Siamese.project, variables, views, train)

    def _over_views(self, method, variables: dict, views: jax.Array, train: bool):
        if views.ndim != 5:
            raise ValueError(f"views must be [V, N, H, W, C] (a view axis first, e.g. x[None] for one view), "
                             f"got shape {tuple(views.shape)}")
        def one(x):
            if not train:
                return self.module.apply(variables, x, train=False, method=method), {}
            return self.module.apply(variables, x, train=True, method=method, mutable=["batch_stats"])

        out, updates = jax.vmap(one, axis_name=TWIN_AXIS)(views)
        stats = updates.get("batch_stats") if updates else None
        if stats is not None:  # identical across views (statistics were averaged over the twin axis)
            stats = jax.tree_util.tree_map(lambda t: t[0], stats)
        return out, stats

    def pair_scores(self, variables: dict, x1: jax.Array, x2: jax.Array) -> HeadOutput:
        """Scores of aligned pairs: x1, x2 [N, H, W, C] -> HeadOutput(similarity [N], logit [N])."""
        emb, _ = self.embed_views(variables, jnp.stack([x1, x2]), train=False)
        return self.compare(variables, emb[0], emb[1])

    def compare(self, variables: dict, a: jax.Array, b: jax.Array) -> HeadOutput:
        """Head on aligned embeddings a, b [N, D] -> HeadOutput(similarity [N], logit [N])."""
        return self.module.apply(variables, a, b, method=Siamese.compare)

    def pairwise(self, variables: dict, a: jax.Array, b: jax.Array) -> jax.Array:
        """Similarity of every embedding pair: a [N, D], b [M, D] -> [N, M]."""
        return self.module.apply(variables, a, b, method=Siamese.pairwise)

    def distance(self, variables: dict, a: jax.Array, b: jax.Array) -> jax.Array:
        """Head distance of aligned embeddings (for contrastive losses): [N, D] x 2 -> [N]."""
        return self.module.apply(variables, a, b, method=Siamese.distance)


def make_twin(model: str = "conv4", head: str = "cosine", model_kwargs: dict | None = None,
              bn_axis_name: Any = TWIN_AXIS, projection: dict | None = None) -> Twin:
    """Build a :class:`Twin` from names; ``bn_axis_name`` is ``"twin"`` or ``("twin", device_axis)``.
    ``projection``: a :class:`siamjax.nn.projection.ProjectionSpec` dict for unsupervised training (adds
    its projector and predictor), or None."""
    encoder = make_encoder(model, bn_axis_name=bn_axis_name, **(model_kwargs or {}))
    if not projection:
        return Twin(Siamese(encoder=encoder, head=make_head(head)))
    spec = ProjectionSpec.from_dict(projection)
    return Twin(Siamese(encoder=encoder, head=make_head(head), projector=spec.projector(bn_axis_name),
                        predictor=spec.predictor(bn_axis_name)))
