"""An earlier block's pooled features beside the embedding, stored with a checkpoint: ``block_pooling.json``.

A conv4 encoder's embedding is its last block's map, flattened. With this file in a step folder,
:func:`siamjax.load` appends to it one earlier block's output (BatchNorm -> ReLU -> 2 x 2 max-pool, as
the network computes it), pooled over positions (``max`` or ``mean``: [N, C_k]):

    embedding = [unit(last block, whitened if the folder has whitening.npz), sqrt(weight) * unit(pooled)]

so the cosine of two embeddings is (cos(last) + weight * cos(pooled)) / (1 + weight). Nothing is trained;
round 20 of experiments/omniglot/history.md chose block -2 (the second-to-last), ``max``, weight 2 on
validation alphabets (experiments/omniglot/layers_probe.py). ``python -m siamjax.cli.block_pooling CHECKPOINT`` writes the
file into a step folder (into each member's, for an ensemble, skipping members trained with
``model_kwargs.pooled_block``, which hold one already, and members it does not serve: another encoder
than conv4, another head than cosine); ``--remove`` deletes it.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

from siamjax.infer.whitening import unit_rows
from siamjax.nn.encoders import is_earlier_block, is_positive_weight

FILENAME = "block_pooling.json"
POOLS = ("max", "mean")
ENCODERS = ("conv4",)  # one BatchNorm per block, in block order
HEADS = ("cosine",)  # the weighting above is a cosine's


class NotServed(ValueError):
    """A model that cannot take a pooled block at all (another encoder or head, or one that holds a
    pooled block already), whatever the settings; ``reason`` says why in a few words. In an ensemble the
    CLI skips such a member with that reason; anywhere else it is an error like any ValueError."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class BlockPooling:
    """block: which conv block (Python index: -2 = second to last; never the last, -1);
    pool: ``max`` or ``mean`` over positions; weight: > 0, its cosine's weight against the last block's."""

    block: int = -2
    pool: str = "max"
    weight: float = 2.0

    def __post_init__(self):
        if not is_earlier_block(self.block):
            raise ValueError(f"block_pooling block must be an integer block index other than -1 (the last "
                             f"block is the embedding already), got {self.block!r}")
        if self.pool not in POOLS:
            raise ValueError(f"block_pooling pool must be one of {POOLS}, got {self.pool!r}")
        if not is_positive_weight(self.weight):
            raise ValueError(f"block_pooling weight must be a number > 0, got {self.weight!r}")

    def check_model(self, model_name: str, head: str, num_blocks: int, where: str = "") -> None:
        """ValueError unless a ``model_name`` encoder with ``num_blocks`` blocks and ``head`` can use it
        (:class:`NotServed` for an encoder or head it does not serve)."""
        unserved = f"a {model_name} encoder with a {head} head, which block pooling does not serve"
        if model_name not in ENCODERS:
            raise NotServed(f"{where}block pooling needs a {' or '.join(ENCODERS)} encoder, this model is "
                            f"{model_name!r}: it cannot take a {FILENAME} (delete any in its folder)", unserved)
        if head not in HEADS:
            raise NotServed(f"{where}block pooling needs a cosine head, this model compares with {head!r}: "
                            f"it cannot take a {FILENAME} (delete any in its folder)", unserved)
        if not is_earlier_block(self.block, num_blocks):
            raise ValueError(f"{where}block_pooling block {self.block} is not an earlier block of this "
                             f"{num_blocks}-block encoder (0 .. {num_blocks - 2}, or -{num_blocks} .. -2)")

    def pool_map(self, x):
        """A block's output [N, h, w, C] (numpy or jax) -> [N, C]."""
        return x.max(axis=(1, 2)) if self.pool == "max" else x.mean(axis=(1, 2))

    def combine(self, last: np.ndarray, pooled: np.ndarray) -> np.ndarray:
        """[N, D] (last block, whitened or not) and [N, C] -> float32 [N, D + C], see the module docstring."""

        return np.concatenate([unit_rows(last), np.sqrt(self.weight) * unit_rows(pooled)], axis=1).astype(np.float32)

    def save(self, path: str | pathlib.Path) -> None:
        pathlib.Path(path).write_text(json.dumps(dataclasses.asdict(self)) + "\n")


def read(path: str | pathlib.Path) -> BlockPooling:
    """The settings in a ``block_pooling.json``; ValueError (naming the file) for anything else."""
    try:
        spec = json.loads(pathlib.Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable block pooling file ({e}); rewrite it with "
                         "python -m siamjax.cli.block_pooling or delete it") from e
    if not isinstance(spec, dict) or set(spec) - {f.name for f in dataclasses.fields(BlockPooling)}:
        raise ValueError(f"{path}: expected {{\"block\": int, \"pool\": \"max\" | \"mean\", \"weight\": number}}, "
                         f"got {spec!r}")
    try:
        return BlockPooling(**spec)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
