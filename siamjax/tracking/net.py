"""A trained SiamFC network ready for tracking: :func:`load_siamfc` and :class:`SiamFCNet`.

The tracker needs only :class:`SiamFCNet`'s two jitted calls and its geometry, so a test can hand it
any object with the same attributes.
"""
from __future__ import annotations

import dataclasses
import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from siamjax import checkpoint as ckpt_lib
from siamjax.tracking.model import STRIDE, SiamFC


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Crop sides in px (exemplar, search), the response stride in search-crop px, SiamFC's context."""

    exemplar_size: int = 63
    search_size: int = 127
    stride: int = STRIDE
    context: float = 0.5

    @classmethod
    def from_dict(cls, d: dict) -> "Geometry":
        return cls(**{f.name: type(f.default)(d[f.name]) for f in dataclasses.fields(cls) if f.name in d})


@dataclasses.dataclass
class SiamFCNet:
    """Trained SiamFC weights and geometry.

    ``embed(crops)``: float32 ``[N, E, E, 3]`` (0..255) exemplar crops -> features ``[N, h, w, C]``.
    ``respond(z_feat, crops)``: one exemplar's features ``[1, h, w, C]`` and search crops
    ``[S, X, X, 3]`` -> response logits ``[S, r, r]`` (NumPy float32)."""

    module: SiamFC
    variables: dict
    geometry: Geometry
    meta: dict = dataclasses.field(default_factory=dict)
    path: pathlib.Path | None = None

    @property
    def exemplar_size(self) -> int:
        return self.geometry.exemplar_size

    @property
    def search_size(self) -> int:
        return self.geometry.search_size

    @property
    def stride(self) -> int:
        return self.geometry.stride

    @property
    def context(self) -> float:
        return self.geometry.context

    @functools.cached_property
    def _embed(self):
        return jax.jit(lambda v, x: self.module.apply(v, x, method=SiamFC.embed))

    @functools.cached_property
    def _respond(self):
        def f(v, z, x):
            xf = self.module.apply(v, x, method=SiamFC.embed)
            return self.module.apply(v, jnp.broadcast_to(z, (xf.shape[0],) + z.shape[1:]), xf, method=SiamFC.respond)
        return jax.jit(f)

    def embed(self, crops) -> jax.Array:
        return self._embed(self.variables, jnp.asarray(crops, jnp.float32))

    def respond(self, z_feat, crops) -> np.ndarray:
        return np.asarray(self._respond(self.variables, z_feat, jnp.asarray(crops, jnp.float32)))


def build(widths=(24, 48, 96, 128), geometry: Geometry = Geometry(), seed: int = 0) -> SiamFCNet:
    """A freshly initialised network (tests, and the untrained baseline)."""
    module = SiamFC(widths=tuple(widths), fast_cpu=False)
    e, x = geometry.exemplar_size, geometry.search_size
    variables = module.init(jax.random.key(seed), jnp.zeros((1, e, e, 3)), jnp.zeros((1, x, x, 3)))
    return SiamFCNet(module, variables, geometry)


def load_siamfc(path: str | pathlib.Path) -> SiamFCNet:
    """Load a SiamFC checkpoint: a training workdir (its best step), a manager folder or a step folder."""
    step_dir = ckpt_lib.resolve_checkpoint(path)
    meta = ckpt_lib.read_meta(step_dir)
    if meta.get("kind") != "siamfc":
        raise ValueError(f"{step_dir} is not a SiamFC checkpoint (meta kind {meta.get('kind')!r}); "
                         "twin (embedding) checkpoints load with siamjax.load")
    geometry = Geometry.from_dict(meta["geometry"])
    module = SiamFC(widths=tuple(meta["model"]["widths"]), fast_cpu=False)
    e, x = geometry.exemplar_size, geometry.search_size
    shapes = jax.eval_shape(lambda k: module.init(k, jnp.zeros((1, e, e, 3)), jnp.zeros((1, x, x, 3))),
                            jax.random.key(0))
    variables = ckpt_lib.read_variables(step_dir, shapes)
    return SiamFCNet(module, variables, geometry, meta=meta, path=step_dir)
