"""Sweeps for ``--config sweep:...``: functions returning one override dict per run.

    --config "sweep:values('runs[0].kl_coef', [0.05, 0.2])"   # two experiments, one directory each
    --config "sweep:values('learner.num_steps', [20, 40])"
    --config "sweep:values('learner.optimizer.learning_rate', [1e-4, 3e-4])"

A base learner field that a run sets itself (``kl.coef``, ``utility``, ``algorithm`` in every
named experiment) is the run's to sweep: the launcher refuses ``learner.kl.coef`` there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def values(path: str, choices: Sequence[Any]) -> list[dict[str, Any]]:
    """One run per value of the config field at ``path`` (a ``set:``-style path, e.g. ``runs[0].kl_coef`` or ``learner.num_steps``)."""
    if not choices:
        raise ValueError(f"sweep over {path!r} needs at least one value")
    return [{path: value} for value in choices]
