"""An earlier block's pooled features beside the embedding, stored with a checkpoint: ``block_pooling.json``.

A conv4 encoder's embedding is its last block's map, flattened. With this file in a step folder,
:func:`siamjax.load` appends to it one earlier block's output (BatchNorm -> ReLU -> 2 x 2 max-pool, as
the network computes it), pooled over positions (``max`` or ``mean``: [N, C_k]):

    embedding = [unit(last block, whitened if the folder has whitening.npz), sqrt(weight) * unit(pooled)]

so the cosine of two embeddings is (cos(last) + weight * cos(pooled)) / (1 + weight). Nothing is trained;
round 20 of docs/omniglot_history.md chose block -2 (the second-to-last), ``max``, weight 2 on
validation alphabets (bench/layers_probe.py). ``python -m siamjax.block_pooling CHECKPOINT`` writes the
file into a step folder (into each member's, for an ensemble, skipping members trained with
``model_kwargs.pooled_block``, which hold one already, and members it does not serve: another encoder
than conv4, another head than cosine); ``--remove`` deletes it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
from typing import Sequence

import numpy as np

FILENAME = "block_pooling.json"
POOLS = ("max", "mean")
ENCODERS = ("conv4",)  # one BatchNorm per block, in block order
HEADS = ("cosine",)  # the weighting above is a cosine's


def is_earlier_block(block, num_blocks: int | None = None) -> bool:
    """Whether ``block`` is an integer block index other than the last (-1), and, given ``num_blocks``,
    one of that encoder's blocks before its last (0 .. n - 2, or -n .. -2)."""
    if not isinstance(block, int) or isinstance(block, bool) or block == -1:
        return False
    return num_blocks is None or -num_blocks <= block < num_blocks - 1


def is_positive_weight(weight) -> bool:
    """Whether ``weight`` is a number (not a bool) > 0."""
    return isinstance(weight, (int, float)) and not isinstance(weight, bool) and weight > 0


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
        from siamjax.whitening import unit_rows

        return np.concatenate([unit_rows(last), np.sqrt(self.weight) * unit_rows(pooled)], axis=1).astype(np.float32)

    def save(self, path: str | pathlib.Path) -> None:
        pathlib.Path(path).write_text(json.dumps(dataclasses.asdict(self)) + "\n")


def read(path: str | pathlib.Path) -> BlockPooling:
    """The settings in a ``block_pooling.json``; ValueError (naming the file) for anything else."""
    try:
        spec = json.loads(pathlib.Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable block pooling file ({e}); rewrite it with "
                         "python -m siamjax.block_pooling or delete it") from e
    if not isinstance(spec, dict) or set(spec) - {f.name for f in dataclasses.fields(BlockPooling)}:
        raise ValueError(f"{path}: expected {{\"block\": int, \"pool\": \"max\" | \"mean\", \"weight\": number}}, "
                         f"got {spec!r}")
    try:
        return BlockPooling(**spec)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def main(argv: Sequence[str] | None = None) -> int:
    from siamjax.api import load
    from siamjax.ensemble import step_folders

    parser = argparse.ArgumentParser(prog="python -m siamjax.block_pooling", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a workdir, step folder or ensemble folder")
    parser.add_argument("--block", type=int, default=-2, help="block index (default -2, the second to last)")
    parser.add_argument("--pool", choices=POOLS, default="max")
    parser.add_argument("--weight", type=float, default=2.0, help="its cosine's weight (default 2)")
    parser.add_argument("--remove", action="store_true", help=f"delete {FILENAME} instead")
    args = parser.parse_args(argv)
    try:
        steps = step_folders(args.checkpoint)
        if args.remove:
            for step in steps:
                (step / FILENAME).unlink(missing_ok=True)
                print(f"removed {step / FILENAME}")
            return 0
        spec = BlockPooling(args.block, args.pool, args.weight)
        skipped = {}  # ensemble member -> why it gets no file (NotServed.reason)
        for step in steps:  # check every member before writing any file
            try:
                load(step, whitening=False, block_pooling=False).check_block_pooling(spec)
            except NotServed as e:
                if len(steps) == 1:
                    raise
                skipped[step] = e.reason
        if len(skipped) == len(steps):
            raise ValueError(f"no member of {args.checkpoint} can take a pooled block: "
                             + "; ".join(f"{s.parent.name}/{s.name}: {r}" for s, r in skipped.items()))
        for step, reason in skipped.items():
            print(f"skipped {step}: {reason}")
        for step in (s for s in steps if s not in skipped):
            spec.save(step / FILENAME)
            print(f"wrote {step / FILENAME} ({spec})")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
