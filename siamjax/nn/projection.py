"""Projector and predictor MLPs of unsupervised Siamese training (SimSiam, SimCLR).

The encoder's embedding h [N, D] is what a trained model serves (``siamjax.load(...).embed``); during
training a projector maps it to z [N, P] and, for SimSiam, a predictor maps z to p [N, P]:

- SimSiam (Chen & He 2021): projector = ``layers`` x (Dense - BN - ReLU), the last without ReLU
  (BN on the output); predictor = Dense(bottleneck) - BN - ReLU - Dense(P), a bottleneck of P/4.
- SimCLR (Chen et al. 2020): projector = Dense - BN - ReLU - Dense(P) (no predictor).

Both are kept in the checkpoint (so a run resumes); the parameters live beside the encoder's in one
tree, ``params["projector"]`` / ``params["predictor"]``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import flax.linen as nn

from siamjax.settings import dataclass_from_mapping

METHODS = ("simsiam", "simclr")


class MLP(nn.Module):
    """x [N, D_in] -> [N, features[-1]]: Dense - BN - ReLU for every hidden width, then Dense (and BN when
    ``output_bn``, SimSiam's projector). Hidden Dense layers have no bias (BN removes it)."""

    features: Sequence[int]
    output_bn: bool = False
    bn_axis_name: Any = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9,  # noqa: E731
                                    axis_name=self.bn_axis_name)
        for width in self.features[:-1]:
            x = nn.relu(norm()(nn.Dense(width, use_bias=False)(x)))
        x = nn.Dense(self.features[-1], use_bias=not self.output_bn)(x)
        return norm()(x) if self.output_bn else x


@dataclasses.dataclass(frozen=True)
class ProjectionSpec:
    """Sizes of the projector / predictor of ``method`` (stored in a checkpoint's meta as a dict).

    hidden: projector hidden width; dim: projector output width P; layers: projector Dense layers
    (>= 2); predictor_hidden: SimSiam's bottleneck width (0 = P // 4).
    """

    method: str = "simsiam"
    hidden: int = 512
    dim: int = 256
    layers: int = 2
    predictor_hidden: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"projection method {self.method!r}; choose one of {METHODS}")
        for name in ("hidden", "dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"projection {name} must be >= 1, got {getattr(self, name)}")
        if int(self.layers) < 2:
            raise ValueError(f"projection layers must be >= 2, got {self.layers}")
        if int(self.predictor_hidden) < 0:
            raise ValueError(f"predictor_hidden must be >= 0, got {self.predictor_hidden}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ProjectionSpec":
        return dataclass_from_mapping(cls, d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def projector(self, bn_axis_name: Any = None) -> MLP:
        widths = (self.hidden,) * (self.layers - 1) + (self.dim,)
        return MLP(widths, output_bn=self.method == "simsiam", bn_axis_name=bn_axis_name)

    def predictor(self, bn_axis_name: Any = None) -> MLP | None:
        if self.method != "simsiam":
            return None
        return MLP((self.predictor_hidden or max(self.dim // 4, 1), self.dim), bn_axis_name=bn_axis_name)

