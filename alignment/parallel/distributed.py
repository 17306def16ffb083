"""Several processes, one global mesh: start-up, the primary process, and host transfers.

Each process (one per host; or several on one machine, see ``launch/multihost.py``) calls
``initialize()`` before any other JAX call. It runs ``jax.distributed.initialize`` when asked
explicitly or when the environment names a coordinator, and is a no-op in a single process:

* ``ALIGNMENT_COORDINATOR``: ``host:port`` of process 0 (e.g. ``127.0.0.1:12345``);
* ``ALIGNMENT_NUM_PROCESSES``: the number of processes N;
* ``ALIGNMENT_PROCESS_ID``: this process's index, 0 .. N-1;
* ``ALIGNMENT_COORDINATOR_TIMEOUT``: seconds a process waits for the coordinator (default 300);
  a process that cannot reach it in that time fails with a ``ConnectionError`` naming the
  address (JAX itself would abort the process without naming it);
* ``ALIGNMENT_AUTO_DISTRIBUTED=1`` (or ``initialize(auto=True)``): call
  ``jax.distributed.initialize()`` without arguments, which finds the three values itself on
  Cloud TPU pods (and under SLURM, Open MPI, ...).

Afterwards ``jax.devices()`` lists the devices of every process, so ``make_mesh`` spans them
all; on CPU the processes talk over gloo (JAX's default CPU collectives). Every process runs
the same program on the same host data (prompts, seeds), so the helpers below treat host data
as the same everywhere:

* ``from_host(x, sharding)``: a global array of host data ``x``, each process filling only its
  own shards (no cross-process traffic);
* ``to_host(tree)``: the full value of each array on every process. An array sharded over
  devices of several processes is gathered (``process_allgather``, a collective that every
  process must call); any other array is a plain ``jax.device_get``.

On one process both are exactly ``jax.device_put`` and ``jax.device_get``.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Sharding

COORDINATOR_ENV = "ALIGNMENT_COORDINATOR"
NUM_PROCESSES_ENV = "ALIGNMENT_NUM_PROCESSES"
PROCESS_ID_ENV = "ALIGNMENT_PROCESS_ID"
AUTO_ENV = "ALIGNMENT_AUTO_DISTRIBUTED"
TIMEOUT_ENV = "ALIGNMENT_COORDINATOR_TIMEOUT"
DEFAULT_TIMEOUT_S = 300


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    auto: bool | None = None,
    timeout_s: float | None = None,
) -> bool:
    """Joins the processes of a multi-process run; returns whether JAX is now distributed.

    Each argument left ``None`` is read from its environment variable (module docstring). With
    a coordinator, ``num_processes`` and ``process_id`` are required; with ``auto`` (argument or
    ``ALIGNMENT_AUTO_DISTRIBUTED=1``) JAX detects all three (Cloud TPU pods); with neither,
    nothing happens (one process). Must run before any other JAX call. ``timeout_s`` (else
    ``$ALIGNMENT_COORDINATOR_TIMEOUT``, else 300): how long a process other than 0 waits for the
    coordinator to accept connections (``wait_for_coordinator``) and JAX for every process to join.
    """
    if jax.distributed.is_initialized():
        return True
    coordinator_address = coordinator_address or os.environ.get(COORDINATOR_ENV) or None
    if auto is None:
        auto = os.environ.get(AUTO_ENV, "").lower() in ("1", "true", "yes")
    if coordinator_address is None:
        if auto:
            jax.distributed.initialize()
        return auto
    num_processes = _int_setting(num_processes, "num_processes", NUM_PROCESSES_ENV)
    process_id = _int_setting(process_id, "process_id", PROCESS_ID_ENV)
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be in 0 .. {num_processes - 1} (num_processes={num_processes}); got {process_id}")
    timeout_s = float(timeout_s if timeout_s is not None else os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    if process_id > 0:  # process 0 starts the coordination service; the others must reach it
        wait_for_coordinator(coordinator_address, timeout_s)
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id,
                               initialization_timeout=max(1, int(timeout_s)))
    return True


def wait_for_coordinator(address: str, timeout_s: float) -> None:
    """Returns once ``host:port`` accepts a TCP connection; a ``ConnectionError`` naming the
    address after ``timeout_s`` seconds of refused or timed-out attempts."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"the coordinator address must be host:port, got {address!r}")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=max(0.1, min(1.0, timeout_s))):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                raise ConnectionError(
                    f"could not reach the coordinator at {address} within {timeout_s:g} s ({error}); start process 0 "
                    f"first, or check {COORDINATOR_ENV} and that the address is reachable from this host"
                ) from error
            time.sleep(0.25)


def _int_setting(value: int | None, name: str, env: str) -> int:
    """``value``, else the integer in ``$env``; an error naming both when neither is set."""
    if value is not None:
        return int(value)
    text = os.environ.get(env)
    if text is None:
        raise ValueError(f"a coordinator address is set, so {name} is needed: pass {name}=... or set ${env}")
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"${env} must be an integer; got {text!r}") from None


def is_primary() -> bool:
    """Whether this is process 0, the one that logs and writes shared files (not checkpoints:
    every process saves its own shards)."""
    return jax.process_index() == 0


def from_host(x: Any, sharding: Sharding) -> jax.Array:
    """``x`` (host data, the same on every process) as a global array laid out as ``sharding``."""
    x = np.asarray(x)
    if sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def to_host(tree: Any) -> Any:
    """The numpy value of every array in ``tree``, complete on every process (module docstring)."""

    def gather(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
            return multihost_utils.process_allgather(x, tiled=True)
        return x

    return jax.device_get(jax.tree.map(gather, tree))
