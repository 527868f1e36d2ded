"""Several processes (hosts) through ``jax.distributed``: start-up with bounded waits, and helpers.

:func:`initialize` must run before any other JAX call (``train.py`` calls it first). It starts
``jax.distributed`` either from explicit settings (``--coordinator_address HOST:PORT --num_processes N
--process_id I``, the same address on every process; process 0 runs the coordinator on that port) or,
with none given, from a scheduler's environment as ``jax.distributed.initialize()`` detects it:

* Slurm (``srun``): ``SLURM_JOB_ID``, ``SLURM_STEP_NODELIST``, ``SLURM_NTASKS``, ``SLURM_PROCID``,
  ``SLURM_LOCALID`` (on GPUs JAX then gives each task the one device ``SLURM_LOCALID``);
* Open MPI (``mpirun``): ``OMPI_MCA_orte_hnp_uri``, ``OMPI_COMM_WORLD_SIZE``, ``OMPI_COMM_WORLD_RANK``,
  ``OMPI_COMM_WORLD_LOCAL_RANK``;
* Cloud TPU VMs: ``TPU_WORKER_ID`` / ``TPU_WORKER_HOSTNAMES`` (or the GCE metadata server);
* any of these accepts ``JAX_COORDINATOR_ADDRESS`` (or ``JAX_COORDINATOR_PORT``) to override the address
  (outside a scheduler, ``JAX_COORDINATOR_ADDRESS`` still needs ``--num_processes`` and ``--process_id``);
* Kubernetes (``KUBERNETES_SERVICE_HOST``, needs the ``kubernetes`` package) is used only with
  ``--distributed=on``.

``auto`` (the default) starts the distributed runtime only when explicit settings are given,
``JAX_COORDINATOR_ADDRESS`` is set, or Slurm / Open MPI report more than one task, or a multi-worker
Cloud TPU slice is detected; otherwise training stays single-process.

Failures are bounded: a coordinator that cannot be reached, or processes that do not all join within
``init_timeout`` seconds, end the process with one :class:`DistributedError` line naming the address;
once running, a process that dies (or stops sending heartbeats) makes JAX's coordination service end
every other process within about ``heartbeat_timeout`` seconds (JAX's own fatal log line "Terminating
process because the JAX distributed service detected fatal errors ... another task died", exit status
134) instead of leaving them blocked in a collective.

On CPU the cross-process collectives use gloo over TCP (``jax_cpu_collectives_implementation``).
"""
from __future__ import annotations

import dataclasses
import os
import socket
import sys
import threading
import time

import jax

DEFAULT_INIT_TIMEOUT = 120  # s: every process must have joined by then
DEFAULT_HEARTBEAT_TIMEOUT = 30  # s: a silent process is declared dead after this
DEFAULT_SHUTDOWN_TIMEOUT = 60  # s: at exit, how long a process waits for the others to finish
MODES = ("auto", "on", "off")


class DistributedError(RuntimeError):
    """Start-up of several processes failed; the message says why and what to check."""


@dataclasses.dataclass(frozen=True)
class Settings:
    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    mode: str = "auto"  # auto | on | off
    init_timeout: float = DEFAULT_INIT_TIMEOUT
    heartbeat_timeout: int = DEFAULT_HEARTBEAT_TIMEOUT
    shutdown_timeout: int = DEFAULT_SHUTDOWN_TIMEOUT


def _int_env(name: str) -> int | None:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return None


def scheduler_environment() -> str | None:
    """The multi-process launcher JAX can read settings from, when it reports several processes."""
    slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
    if all(k in os.environ for k in slurm) and (_int_env("SLURM_NTASKS") or 1) > 1:
        return "slurm"
    if "OMPI_MCA_orte_hnp_uri" in os.environ and (_int_env("OMPI_COMM_WORLD_SIZE") or 1) > 1:
        return "ompi"
    workers = os.environ.get("TPU_WORKER_HOSTNAMES") or os.environ.get("TPU_PROCESS_ADDRESSES") or ""
    if "TPU_WORKER_ID" in os.environ and len([w for w in workers.split(",") if w]) > 1:
        return "cloud_tpu"
    return None


def wanted(s: Settings) -> bool:
    """Whether ``s`` asks for several processes."""
    if s.mode not in MODES:
        raise DistributedError(f"--distributed={s.mode!r}; choose one of {MODES}")
    if s.mode == "off":
        if s.coordinator_address or (s.num_processes or 1) > 1:
            raise DistributedError("--distributed=off contradicts --coordinator_address / --num_processes")
        return False
    if s.mode == "on":
        return True
    explicit = s.coordinator_address is not None or s.num_processes is not None or s.process_id is not None
    return explicit or "JAX_COORDINATOR_ADDRESS" in os.environ or scheduler_environment() is not None


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DistributedError(f"--coordinator_address={address!r} is not HOST:PORT (e.g. 10.0.0.1:1234)")
    return host, int(port)


def _wait_for_coordinator(address: str, process_id: int, num_processes: int, deadline: float, timeout: float) -> None:
    """Retry a TCP connection to the coordinator until it answers or ``deadline`` passes."""
    host, port = _split_address(address)
    error: Exception | None = None
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.2, min(2.0, deadline - time.monotonic()))):
                return
        except OSError as e:
            error = e
        if time.monotonic() >= deadline:
            raise DistributedError(
                f"process {process_id} of {num_processes} could not reach the coordinator at {address} within "
                f"{timeout:g} s ({error.strerror or error}). Start process 0 with the same --coordinator_address "
                f"on the host it names, and check the host, the port and any firewall between them")
        time.sleep(0.25)


def _check_port_free(address: str) -> None:
    """Process 0 binds the coordinator to every interface on the address's port: fail early if taken."""
    _, port = _split_address(address)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError as e:
            raise DistributedError(f"process 0 cannot start the coordinator at {address}: port {port} is in use on "
                                   f"this host ({e.strerror or e}); choose another port on every process") from None


def initialize(s: Settings) -> bool:
    """Start ``jax.distributed`` when ``s`` asks for it (before any other JAX call). Returns whether it did.

    Raises :class:`DistributedError` (one line, naming the coordinator address) for settings that
    cannot work or a coordinator that cannot be reached in ``s.init_timeout`` seconds; if the
    processes do not all join in that time, this process prints that line and exits with status 1.
    """
    if not wanted(s):
        return False
    if jax.distributed.is_initialized():
        return True
    deadline = time.monotonic() + s.init_timeout
    address, n, pid = s.coordinator_address, s.num_processes, s.process_id
    explicit = address is not None and n is not None and pid is not None
    if not explicit and (address is not None or n is not None or pid is not None) and scheduler_environment() is None:
        raise DistributedError("several processes need --coordinator_address=HOST:PORT, --num_processes=N and "
                               "--process_id=I (0..N-1) on every process (or a Slurm / Open MPI / Cloud TPU "
                               "environment to read them from); got "
                               f"coordinator_address={address}, num_processes={n}, process_id={pid}")
    if explicit:
        _split_address(address)
        if n < 1 or not 0 <= pid < n:
            raise DistributedError(f"--process_id={pid} must be in 0..{n - 1} for --num_processes={n}")
        if pid == 0:
            _check_port_free(address)
        else:
            _wait_for_coordinator(address, pid, n, deadline, s.init_timeout)
    where = address or os.environ.get("JAX_COORDINATOR_ADDRESS") or "the auto-detected coordinator"
    who = f"process {pid} of {n}" if explicit else "this process"
    if jax.config.jax_cpu_collectives_implementation is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")

    joined = threading.Event()

    def watchdog():  # the C++ side would abort with a stack trace a little later: say it plainly first
        if not joined.wait(max(deadline - time.monotonic(), 0.0)):
            print(f"DistributedError: {who} waited {s.init_timeout:g} s at {where} but not all processes joined "
                  f"(is every process started, with the same --coordinator_address and --num_processes, and "
                  f"distinct --process_id?); stopping", file=sys.stderr, flush=True)
            os._exit(1)

    threading.Thread(target=watchdog, daemon=True, name="siamjax-distributed-init").start()
    try:
        jax.distributed.initialize(
            address, n, pid,
            # Explicit settings are used as given (no scheduler may narrow the visible devices).
            cluster_detection_method="deactivate" if explicit else None,
            # JAX's own deadline a little later than the watchdog's, which explains the failure better.
            initialization_timeout=int(max(deadline - time.monotonic(), 1)) + 15,
            heartbeat_timeout_seconds=int(s.heartbeat_timeout), shutdown_timeout_seconds=int(s.shutdown_timeout))
        jax.devices()  # the processes exchange their devices here: part of joining
    except (ValueError, TypeError, RuntimeError) as e:
        raise DistributedError(f"{who} could not start jax.distributed with the coordinator at {where}: "
                               f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    finally:
        joined.set()
    return True


def process_index() -> int:
    return jax.process_index()


def process_count() -> int:
    return jax.process_count()


def is_primary() -> bool:
    """Process 0 writes metrics, prints and moves files; every process takes part in checkpoints."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process gets here (nothing to do with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def broadcast_floats_from_primary(values: dict) -> dict:
    """Process 0's ``{name: float}`` on every process, exactly (float64 bits sent as two uint32)."""
    if jax.process_count() == 1:
        return values
    import numpy as np
    from jax.experimental import multihost_utils

    bits = {k: np.asarray(float(v), np.float64).reshape(1).view(np.uint32) for k, v in values.items()}
    got = multihost_utils.broadcast_one_to_all(bits)
    return {k: float(np.asarray(got[k], np.uint32).view(np.float64)[0]) for k in values}


class PreemptionSync:
    """With several processes: SIGTERM to any one of them (JAX's preemption notifier) makes all stop
    at the same step. ``reached(step)`` must be called by every process after every step."""

    def __init__(self):
        self.enabled = jax.process_count() > 1

    def reached(self, step: int) -> bool:
        if not self.enabled:
            return False
        from jax.experimental import multihost_utils

        try:
            return bool(multihost_utils.reached_preemption_sync_point(step))
        except RuntimeError:  # the preemption service is switched off (jax_enable_preemption_service)
            self.enabled = False
            return False
