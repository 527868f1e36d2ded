"""Training metrics to ``WORKDIR/metrics.jsonl`` (one JSON object per line) and TensorBoard events."""
from __future__ import annotations

import json
import math
import pathlib

from tensorboardX import SummaryWriter


class MetricWriter:
    """Appends ``{"step": s, name: value, ...}`` lines and TensorBoard scalars under ``WORKDIR/tb``."""

    def __init__(self, workdir: str | pathlib.Path, enabled: bool = True):
        self.enabled = enabled
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        self._tb = SummaryWriter(str(pathlib.Path(workdir) / "tb")) if enabled else None

    def write(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in metrics.items()}
        record = {"step": int(step), **{k: (v if math.isfinite(v) else str(v)) for k, v in clean.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        for k, v in clean.items():
            self._tb.add_scalar(k, v, int(step))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(workdir: str | pathlib.Path) -> list[dict]:
    """All records of ``WORKDIR/metrics.jsonl`` in order."""
    path = pathlib.Path(workdir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
