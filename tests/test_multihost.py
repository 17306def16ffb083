"""Several processes, one mesh: launch/multihost.py and the RL learner across two processes.

tests/multihost_job.py runs two RLOO steps of a tiny policy on a data=2 mesh, once as two
processes of one CPU device each (over 127.0.0.1, through the launcher) and once as one process
with two devices; the parameters and the logged metrics must agree, and each process restores
the two-process checkpoint (the job asserts that itself).
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from alignment.parallel import distributed

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = [sys.executable, str(ROOT / "launch" / "multihost.py")]
JOB = [sys.executable, str(ROOT / "tests" / "multihost_job.py")]
ENV_NAMES = (distributed.COORDINATOR_ENV, distributed.NUM_PROCESSES_ENV, distributed.PROCESS_ID_ENV, distributed.AUTO_ENV)


def _clean_env(**extra) -> dict[str, str]:
    """This environment without any distributed settings (the launcher sets its own)."""
    return {**{k: v for k, v in os.environ.items() if k not in ENV_NAMES}, **extra}


def _start(command, env) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen, name: str, timeout: float = 240) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"{name} exited with {process.returncode}:\n{output[-6000:]}"
    return output


def _loopback_unavailable() -> str | None:
    """Why processes cannot reach each other over 127.0.0.1 here (``None`` when they can)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
    except OSError as error:
        return f"cannot bind a TCP port on 127.0.0.1 ({error}); JAX's coordinator and gloo collectives need it"
    return None


def test_two_processes_train_like_one_process_with_two_devices(tmp_path):
    reason = _loopback_unavailable()
    if reason:
        pytest.skip(f"multi-process CPU JAX is impossible here: {reason}")
    two = _start([*LAUNCHER, "--num_processes", "2", "--timeout", "200", "--", *JOB, str(tmp_path / "two")], _clean_env())
    one = _start([*JOB, str(tmp_path / "one")], _clean_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    two_output, _ = _finish(two, "the two-process run"), _finish(one, "the one-process run")
    assert "[process 0] process 0 of 2: done, restored step 2" in two_output
    assert "[process 1] process 1 of 2: done, restored step 2" in two_output

    a, b = np.load(tmp_path / "two" / "result.npz"), np.load(tmp_path / "one" / "result.npz")
    assert (int(a["processes"]), int(a["devices"]), int(b["processes"]), int(b["devices"])) == (2, 2, 1, 2)
    assert int(a["restored_step"]) == int(b["restored_step"]) == 2
    assert sorted(a.files) == sorted(b.files)
    params = [k for k in a.files if k.startswith("param/")]
    metrics = [k for k in a.files if k.startswith("metric/") and not k.startswith(("metric/time/", "metric/tokens_per_second"))]
    assert len(params) > 5 and "metric/loss" in metrics and "metric/reward/model" in metrics
    for key in params + metrics:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)
    # Only process 0 writes the metrics: one line per step.
    assert len((tmp_path / "two" / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_launcher_stops_everyone_when_one_process_fails():
    crash_one = "import os, sys, time; sys.exit(3) if os.environ['ALIGNMENT_PROCESS_ID'] == '1' else time.sleep(60)"
    start = time.monotonic()
    result = subprocess.run([*LAUNCHER, "--num_processes", "2", "--", sys.executable, "-c", crash_one],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3 and time.monotonic() - start < 30, result.stderr
    assert "process 1 exited with 3; stopping the others" in result.stderr


def test_launcher_sets_the_environment_and_times_out():
    show = "import os; print(os.environ['ALIGNMENT_PROCESS_ID'], os.environ['ALIGNMENT_COORDINATOR'], os.environ['XLA_FLAGS'])"
    result = subprocess.run([*LAUNCHER, "--num_processes", "2", "--port", "23456", "--devices_per_process", "3", "--",
                             sys.executable, "-c", show], capture_output=True, text=True, timeout=60,
                            env=_clean_env(XLA_FLAGS="--xla_force_host_platform_device_count=8 --xla_dump_to=/tmp/x"))
    assert result.returncode == 0, result.stderr
    for i in range(2):
        assert f"[process {i}] {i} 127.0.0.1:23456 --xla_dump_to=/tmp/x --xla_force_host_platform_device_count=3" in result.stdout
    slow = subprocess.run([*LAUNCHER, "--num_processes", "2", "--timeout", "1", "--", sys.executable, "-c", "import time; time.sleep(60)"],
                          capture_output=True, text=True, timeout=60)
    assert slow.returncode == 124 and "timed out after 1 s" in slow.stderr


def test_initialize_is_a_no_op_alone_and_names_missing_settings(monkeypatch):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    assert distributed.initialize() is False and distributed.is_primary()
    monkeypatch.setenv(distributed.COORDINATOR_ENV, "127.0.0.1:1")
    with pytest.raises(ValueError, match=r"num_processes is needed: pass num_processes=\.\.\. or set \$ALIGNMENT_NUM_PROCESSES"):
        distributed.initialize()
    with pytest.raises(ValueError, match=r"process_id must be in 0 \.\. 1"):
        distributed.initialize(num_processes=2, process_id=2)


def test_a_process_that_cannot_reach_its_coordinator_fails_in_bounded_time_naming_the_address(monkeypatch):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # a free port: nothing listens there
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(ConnectionError, match=rf"could not reach the coordinator at {address} within 1.5 s .*start process 0 first"):
        distributed.initialize(address, num_processes=2, process_id=1, timeout_s=1.5)
    assert not jax.distributed.is_initialized()  # it failed before JAX would have aborted the process
    with pytest.raises(ValueError, match="must be host:port"):
        distributed.wait_for_coordinator("localhost", 1.0)
