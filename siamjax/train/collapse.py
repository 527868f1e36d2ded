"""Collapse warning for unsupervised Siamese training (SimSiam, SimCLR).

SimSiam's diagnostic (Chen & He 2021, Fig. 2): the per-channel standard deviation of the
L2-normalised projector outputs z [N, P], averaged over channels (:func:`siamjax.losses.output_std`).
Outputs spread over the sphere give about 1/sqrt(P); a collapsed network (one output for every
image) gives 0. The monitor reads it as ``ratio = std * sqrt(P)`` (about 1 healthy, 0 collapsed).
"""
from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass
class CollapseMonitor:
    """Feed it ``(step, output_std)`` for every step; it returns a warning when the outputs collapse.

    threshold: the ratio std * sqrt(P) below which the outputs count as collapsed (0 disables).
    A warning is returned on the first collapsed step and then again every ``repeat`` steps while it
    lasts; ``collapsed_steps`` counts all collapsed steps seen.
    """

    dim: int
    threshold: float = 0.25
    repeat: int = 100
    collapsed_steps: int = 0
    _last_warned: int | None = None

    def __post_init__(self):
        if self.dim < 1:
            raise ValueError(f"output dimension must be >= 1, got {self.dim}")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"collapse threshold (config.loss.collapse_ratio) must lie in [0, 1), got {self.threshold}")

    def ratio(self, std: float) -> float:
        return float(std) * math.sqrt(self.dim)

    def update(self, step: int, std: float) -> str | None:
        """The warning text for ``step`` if its outputs are collapsed (and not warned of lately), else None."""
        r = self.ratio(std)
        if not (r < self.threshold) and math.isfinite(r):
            return None
        self.collapsed_steps += 1
        if self._last_warned is not None and step - self._last_warned < self.repeat:
            return None
        self._last_warned = step
        return (f"COLLAPSE at step {step}: the projector outputs have collapsed (std of the normalised outputs "
                f"{float(std):.2e} = {r:.3f} / sqrt({self.dim}); healthy is about 1 / sqrt({self.dim}), collapsed 0; "
                f"warning below {self.threshold} / sqrt({self.dim})). Every image gets nearly the same embedding, so "
                "the model will not separate anything: keep SimSiam's stop-gradient and predictor, lower "
                "config.optim.learning_rate, or for SimCLR raise config.data.batch_size / config.loss.ssl_temperature.")
