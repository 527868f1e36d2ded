"""Data parallelism: run one per-device train step under ``jax.pmap`` or ``jax.jit`` + ``jax.shard_map``.

The per-device step (:func:`siamjax.train_lib.make_train_step` with ``axis_name=AXIS``) averages
gradients and metrics with ``lax.pmean`` over :data:`AXIS`; parameters and optimizer state are
replicated; the global batch is split evenly over the devices (rows ``[i*b, (i+1)*b)`` to device i).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import flax.jax_utils
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "batch"
MODES = ("pmap", "shard_map")


def check_batch_divides(global_batch: int, num_devices: int, what: str = "config.batch_size") -> int:
    """Per-device batch size; a ValueError naming the fix when it does not divide."""
    if num_devices < 1:
        raise ValueError(f"need at least one device, got {num_devices}")
    if global_batch % num_devices:
        lo = global_batch - global_batch % num_devices
        raise ValueError(f"{what}={global_batch} does not divide over {num_devices} devices; use a multiple of "
                         f"{num_devices} (e.g. {lo or num_devices} or {lo + num_devices}), or fewer devices "
                         f"(config.num_devices)")
    return global_batch // num_devices


def select_devices(num_devices: int = 0) -> list:
    """The first ``num_devices`` local devices (0 = all)."""
    local = jax.local_devices()
    if num_devices < 0 or num_devices > len(local):
        raise ValueError(f"config.num_devices={num_devices}, but this host has {len(local)} local devices "
                         f"({local[0].platform}); use 0 for all")
    return local[:num_devices or len(local)]


@dataclasses.dataclass
class Runner:
    """Places state and batches on the devices and runs the step there."""

    mode: str
    devices: Sequence[Any]
    step: Callable  # (placed state, placed batch) -> (placed state, metrics)
    mesh: Mesh | None = None

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    def put_state(self, state):
        """Replicate a host / single-device state onto every device."""
        if self.mode == "pmap":
            return flax.jax_utils.replicate(state, self.devices)
        return jax.device_put(state, NamedSharding(self.mesh, P()))

    def put_batch(self, batch: dict):
        """Split the global batch (NumPy, leading axis B) over the devices."""
        n = self.num_devices
        if self.mode == "pmap":
            return jax.tree_util.tree_map(lambda x: x.reshape(n, x.shape[0] // n, *x.shape[1:]), batch)
        return jax.device_put(batch, NamedSharding(self.mesh, P(AXIS)))

    def get_state(self, state):
        """One copy of the replicated state, on the first device (for validation and checkpoints)."""
        if self.mode == "pmap":
            return jax.tree_util.tree_map(lambda x: x[0], state)
        return jax.device_put(state, self.devices[0])

    def get_metrics(self, metrics):
        """Metrics are identical on every device after ``pmean``: one copy."""
        if self.mode == "pmap":
            return jax.tree_util.tree_map(lambda x: x[0], metrics)
        return metrics


def make_runner(per_device_step: Callable, mode: str = "pmap", devices: Sequence[Any] | None = None) -> Runner:
    """Wrap ``per_device_step(state, batch) -> (state, metrics)`` (which uses ``AXIS`` collectives)."""
    devices = list(devices or jax.local_devices())
    if mode == "pmap":
        step = jax.pmap(per_device_step, axis_name=AXIS, devices=devices, donate_argnums=0)
        return Runner(mode, devices, step)
    if mode == "shard_map":
        mesh = Mesh(np.asarray(devices), (AXIS,))
        # check_vma=False: BatchNorm averages over ("twin", AXIS), a vmap axis mixed with the mesh axis,
        # which the varying-axes type check rejects; the pmean makes every output replicated anyway.
        sharded = jax.shard_map(per_device_step, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=(P(), P()),
                                check_vma=False)
        return Runner(mode, devices, jax.jit(sharded, donate_argnums=0), mesh)
    raise ValueError(f"config.parallel={mode!r}; choose one of {MODES}")
