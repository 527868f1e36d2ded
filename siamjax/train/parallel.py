"""Data parallelism: run one per-device train step under ``jax.pmap`` or ``jax.jit`` + ``jax.shard_map``.

The per-device step (:func:`siamjax.train.make_train_step` with ``axis_name=AXIS``) averages
gradients and metrics with ``lax.pmean`` over :data:`AXIS`; parameters and optimizer state are
replicated; the global batch is split evenly over the devices (rows ``[i*b, (i+1)*b)`` to device i).

With several processes (:mod:`siamjax.train.distributed`) the devices are global, listed process by
process: each process builds only its rows ``[p*B/P, (p+1)*B/P)`` and places them on its own
devices; ``axis_index`` and the collectives span every process.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
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
        procs = jax.process_count()
        where = f" ({procs} processes x {num_devices // procs} devices)" if procs > 1 else ""
        raise ValueError(f"{what}={global_batch} does not divide over {num_devices} devices{where}; use a multiple "
                         f"of {num_devices} (e.g. {lo or num_devices} or {lo + num_devices}), or fewer devices "
                         f"(config.parallel.num_devices; SiamFC: config.num_devices)")
    return global_batch // num_devices


def select_devices(num_devices: int = 0) -> list:
    """The first ``num_devices`` local devices (0 = all) of every process, process by process.

    With one process these are local devices. With several (``jax.distributed``), ``num_devices``
    counts per process and the list is the same on every process: process p's devices hold the
    global batch rows ``[p*B/P, (p+1)*B/P)`` (see :func:`process_rows`).
    """
    local = jax.local_devices()
    if num_devices < 0 or num_devices > len(local):
        raise ValueError(f"config.parallel.num_devices={num_devices}, but this host has {len(local)} local devices "
                         f"({local[0].platform}); use 0 for all")
    n = num_devices or len(local)
    if jax.process_count() == 1:
        return local[:n]
    out = []
    for p in range(jax.process_count()):
        theirs = jax.local_devices(process_index=p)
        if len(theirs) < n or (not num_devices and len(theirs) != n):
            raise ValueError(f"process {p} has {len(theirs)} devices and process {jax.process_index()} has "
                             f"{len(local)}: with config.parallel.num_devices={num_devices} every process must use as many; "
                             "set config.parallel.num_devices to a count every process has")
        out.extend(theirs[:n])
    return out


def process_rows(global_batch: int, num_devices: int) -> slice:
    """The rows of the global batch this process feeds to its devices: ``[p*B/P, (p+1)*B/P)``."""
    check_batch_divides(global_batch, num_devices)
    procs = jax.process_count()
    per = global_batch // procs
    p = jax.process_index()
    return slice(p * per, (p + 1) * per)


@dataclasses.dataclass
class Runner:
    """Places state and batches on the devices and runs the step there.

    ``devices`` are the global devices (all processes', process by process); each process places its
    share of the batch on its own devices and collectives span all of them.
    """

    mode: str
    devices: Sequence[Any]
    step: Callable  # (placed state, placed batch) -> (placed state, metrics)
    mesh: Mesh

    @property
    def num_devices(self) -> int:
        """Global device count (all processes)."""
        return len(self.devices)

    @property
    def local_devices(self) -> list:
        return [d for d in self.devices if d.process_index == jax.process_index()]

    def put_state(self, state):
        """Replicate a host / single-device state onto every device."""
        if self.mode == "pmap":
            return _stack_over(state, self.local_devices)
        return self.replicated(jax.tree_util.tree_map(jnp.asarray, state))

    def put_batch(self, batch: dict):
        """Split this process's rows of the global batch (NumPy, leading axis B/P) over its devices."""
        if self.mode == "pmap":  # [n, B/P/n, ...], row i on local device i: copied here (in the prefetch
            # thread), so the host-to-device copy is not part of the step
            local = self.local_devices
            n = len(local)
            on_devices = NamedSharding(Mesh(np.asarray(local), (AXIS,)), P(AXIS))
            return jax.tree_util.tree_map(
                lambda x: jax.device_put(x.reshape(n, x.shape[0] // n, *x.shape[1:]), on_devices), batch)
        sharding = NamedSharding(self.mesh, P(AXIS))
        return jax.tree_util.tree_map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)

    def get_state(self, state):
        """A copy of the replicated state on this process's first device (validation, checkpoints):
        new buffers, which the next (donating) step leaves alone."""
        first = jax.tree_util.tree_map(lambda x: x.addressable_data(0), state)  # views, no copies
        return (_first_row if self.mode == "pmap" else _copy)(first)

    def get_metrics(self, metrics):
        """Metrics are identical on every device after ``pmean``: one copy (on this process's first
        device; under pmap with a leading axis of 1), for ``jax.device_get``."""
        return jax.tree_util.tree_map(lambda x: x.addressable_data(0), metrics)

    # Checkpoints: global arrays, fully replicated over all devices of all processes, so that Orbax
    # (called by every process) writes each array once and restores onto any device count.
    def replicated(self, tree):
        """Global fully replicated jax.Arrays from one local copy (arrays / scalars) of the tree."""
        sharding = NamedSharding(self.mesh, P())

        def one(x):
            if not isinstance(x, (jax.Array, np.ndarray, np.generic)):
                return x
            shards = [jax.device_put(x, d) for d in self.local_devices]
            return jax.make_array_from_single_device_arrays(np.shape(x), sharding, shards)

        return jax.tree_util.tree_map(one, tree)

    def replicated_abstract(self, tree):
        """Orbax restore template: shape / dtype of each array, replicated over all devices."""
        sharding = NamedSharding(self.mesh, P())

        def one(x):
            if not isinstance(x, (jax.Array, np.ndarray, np.generic)):
                return x
            return jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding)

        return jax.tree_util.tree_map(one, tree)

    @staticmethod
    def local_copy(tree):
        """This process's copy (first local device) of a tree of replicated global arrays."""
        return jax.tree_util.tree_map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, tree)


def _stack_over(tree, devices: Sequence[Any]):
    """Each array leaf [...] -> [len(devices), ...], row i on devices[i] (pmap's layout).

    Stacked on the host and placed once: unlike ``flax.jax_utils.replicate``, whose ``jnp.stack`` of a
    device array compiles a small XLA program per leaf shape (about 5 s for a conv-4 state on 8 CPU
    devices), this compiles nothing. PRNG key leaves go through their raw key data. The sharding is
    the one pmap gives its outputs (mesh axis :data:`AXIS`), so the step's second call reuses the
    first call's executable rather than compiling the step again for a new input sharding.
    """
    sharding = NamedSharding(Mesh(np.array(devices), (AXIS,)), P(AXIS))

    def one(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(one(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        host = np.asarray(x)
        return jax.device_put(np.broadcast_to(host, (len(devices), *host.shape)), sharding)

    return jax.tree_util.tree_map(one, tree)


# One dispatch for a whole tree rather than one eager op per leaf.
_first_row = jax.jit(lambda tree: jax.tree_util.tree_map(lambda x: x[0], tree))
_copy = jax.jit(lambda tree: jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True), tree))


def make_runner(per_device_step: Callable, mode: str = "pmap", devices: Sequence[Any] | None = None) -> Runner:
    """Wrap ``per_device_step(state, batch) -> (state, metrics)`` (which uses ``AXIS`` collectives).

    ``devices``: the global devices from :func:`select_devices` (default: all, process by process).
    """
    devices = list(devices or select_devices(0))
    if mode not in MODES:
        raise ValueError(f"config.parallel.mode={mode!r}; choose one of {MODES}")
    mesh = Mesh(np.asarray(devices), (AXIS,))
    if mode == "pmap":
        # The global device list makes pmap's axis index global: process p's local device j is
        # index p*L + j, collectives span every process.
        step = jax.pmap(per_device_step, axis_name=AXIS, devices=devices, donate_argnums=0)
        return Runner(mode, devices, step, mesh)
    # check_vma=False: BatchNorm averages over ("twin", AXIS), a vmap axis mixed with the mesh axis,
    # which the varying-axes type check rejects; the pmean makes every output replicated anyway.
    sharded = jax.shard_map(per_device_step, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=(P(), P()),
                            check_vma=False)
    return Runner(mode, devices, jax.jit(sharded, donate_argnums=0), mesh)
