"""Runs one command as N JAX processes on this machine, as if on N hosts (over 127.0.0.1).

    python launch/multihost.py --num_processes 2 -- python tests/multihost_job.py OUT_DIR

Each child gets ``ALIGNMENT_COORDINATOR=127.0.0.1:PORT`` (a free port unless ``--port``),
``ALIGNMENT_NUM_PROCESSES``, ``ALIGNMENT_PROCESS_ID`` (read by
``alignment.parallel.initialize``) and ``--xla_force_host_platform_device_count`` in
``XLA_FLAGS`` (``--devices_per_process`` CPU devices each). Every output line is prefixed with
``[process i]``. The launcher exits 0 when every child did; as soon as one fails (or
``--timeout`` seconds pass) it stops the others and exits with that child's code (124 on a
timeout).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import threading
import time

TIMEOUT_EXIT = 124
DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(process_id: int, num_processes: int, port: int, devices_per_process: int) -> dict[str, str]:
    """This environment plus the coordinator variables and the per-process CPU device count."""
    env = dict(os.environ)
    flags = re.sub(rf"{DEVICE_COUNT_FLAG}=\S*", "", env.get("XLA_FLAGS", "")).split()
    env["XLA_FLAGS"] = " ".join([*flags, f"{DEVICE_COUNT_FLAG}={devices_per_process}"])
    env.update(
        ALIGNMENT_COORDINATOR=f"127.0.0.1:{port}",
        ALIGNMENT_NUM_PROCESSES=str(num_processes),
        ALIGNMENT_PROCESS_ID=str(process_id),
    )
    return env


def _relay(process_id: int, stream) -> None:
    """Copies ``stream`` to stdout line by line, each line prefixed with ``[process i]``."""
    for line in stream:
        sys.stdout.write(f"[process {process_id}] {line}")
        sys.stdout.flush()


def launch(command: list[str], num_processes: int, port: int | None = None, devices_per_process: int = 1,
           timeout: float = 3600.0) -> int:
    """Runs ``command`` in ``num_processes`` children; returns 0, the first failure's code, or 124."""
    port = free_port() if port is None else port
    children, relays = [], []
    try:
        for i in range(num_processes):
            child = subprocess.Popen(command, env=child_env(i, num_processes, port, devices_per_process),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            children.append(child)
            relays.append(threading.Thread(target=_relay, args=(i, child.stdout), daemon=True))
            relays[-1].start()
        deadline = time.monotonic() + timeout
        while True:
            codes = [child.poll() for child in children]
            failed = [(i, code) for i, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                print(f"[launcher] process {failed[0][0]} exited with {failed[0][1]}; stopping the others", file=sys.stderr)
                return failed[0][1]
            if all(code == 0 for code in codes):
                return 0
            if time.monotonic() > deadline:
                print(f"[launcher] timed out after {timeout:g} s; stopping every process", file=sys.stderr)
                return TIMEOUT_EXIT
            time.sleep(0.1)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait()
        for relay in relays:
            relay.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], usage="%(prog)s [options] -- command ...")
    parser.add_argument("--num_processes", type=int, default=2)
    parser.add_argument("--port", type=int, default=None, help="the coordinator's port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--devices_per_process", type=int, default=1, help="simulated CPU devices per process")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds before every process is stopped")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command: put it after --, e.g. -- python script.py")
    if args.num_processes < 1 or args.devices_per_process < 1:
        parser.error(f"--num_processes and --devices_per_process must be >= 1; got {args.num_processes} and {args.devices_per_process}")
    return launch(command, args.num_processes, args.port, args.devices_per_process, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
