"""Preemption: SIGTERM (what a preempted TPU VM or a scheduler sends before it kills) asks the
running trainer to stop at its next step boundary, save a checkpoint and raise ``Preempted``;
rerunning the same command resumes from that checkpoint.

``install()`` sets the handler (from the main thread; the launcher does it first thing, so a
signal during any stage is kept), ``requested()`` says whether a stop was asked for, on any
process of a multi-process job (every process must stop at the same step, so the flag is
gathered from all of them).
"""

from __future__ import annotations

import signal
import threading

import jax
import numpy as np

_REQUESTED = threading.Event()


class Preempted(Exception):
    """Raised by a trainer that stopped on SIGTERM after saving its checkpoint at ``step``."""

    def __init__(self, step: int, saved: bool):
        self.step, self.saved = step, saved
        super().__init__(f"stopped on SIGTERM after step {step}; " + (
            "a checkpoint was saved there: rerun the same command to resume" if saved else "nothing was saved (no workdir)"))


def install() -> None:
    """Routes SIGTERM to ``requested()`` (a no-op outside the main thread, where Python cannot)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: _REQUESTED.set())


def requested() -> bool:
    """Whether SIGTERM reached this process, or any process of the job."""
    flag = _REQUESTED.is_set()
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        flag = bool(np.any(multihost_utils.process_allgather(np.int32(flag))))
    return flag


def clear() -> None:
    """Forgets a request (after the job has stopped for it, e.g. in a test)."""
    _REQUESTED.clear()
