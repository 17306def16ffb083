"""A learner run's result as a typed value, and the training log it summarises.

``RunResult`` is what ``Pipeline.align`` returns and ``<run>/result.json`` holds; ``as_dict()``
is its entry in the results of ``alignment.evaluation`` (``results["runs"]``), and
``from_dict`` reads one back, naming the file and the fields when any is missing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from alignment.files import DamagedFileError
from alignment.rl.config import LearnerConfig


@dataclasses.dataclass
class RunResult:
    """One learner run, as judged.

    Attributes:
      name, label: the run's name and its curve (``RunSpec``).
      transform, aggregator, normalize: its utility (``Utility``).
      algorithm, kl_coef, seed: its learner's.
      optimised: the properties in its utility.
      reference: ``{"method": ..., "quantile": ...}``, its r_ref estimator.
      reward_model: "bt" or "gpm"; gpm_opponents: whom a GPM scored against (``None`` for BT).
      training: the mean of each logged metric over the run's steps (``training_summary``).
      checkpoints: the judged checkpoints' records (``alignment.evaluation.evaluate_policy``),
        each with its ``samples`` arrays when attached.
    """

    name: str
    label: str
    transform: str
    aggregator: str
    normalize: str
    algorithm: str
    kl_coef: float
    seed: int
    optimised: list[str]
    reference: dict[str, Any]
    reward_model: str
    gpm_opponents: str | None
    training: dict[str, float]
    checkpoints: list[dict]

    @classmethod
    def of(cls, run, config: LearnerConfig, optimised, training: dict[str, float], checkpoints: list[dict]) -> RunResult:
        """The result of ``run`` (a ``RunSpec``) trained with ``config``."""
        u = config.utility
        return cls(name=run.name, label=run.label, transform=u.transform, aggregator=u.aggregator, normalize=u.normalize,
                   algorithm=config.algorithm, kl_coef=config.kl.coef, seed=config.seed, optimised=list(optimised),
                   reference={"method": run.reference_method, "quantile": run.quantile}, reward_model=run.reward_model,
                   gpm_opponents=run.gpm_opponents if run.reward_model == "gpm" else None, training=training,
                   checkpoints=checkpoints)

    def as_dict(self) -> dict[str, Any]:
        """The ``results["runs"]`` entry (``gpm_opponents`` only for a GPM run)."""
        out = dataclasses.asdict(self)
        if self.gpm_opponents is None:
            del out["gpm_opponents"]
        return out

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], path: Path | str) -> RunResult:
        """A result read back from ``path``; ``DamagedFileError`` naming the missing fields."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in record and n != "gpm_opponents"]
        if missing:
            raise DamagedFileError(f"{path} lacks the fields {missing} of a run result")
        return cls(**{n: record.get(n) for n in names})


def read_history(path: Path) -> list[dict]:
    """The learner's logged steps (``metrics.jsonl``), one record per step in step order.

    A run resumed from a checkpoint before its last logged step logs those steps again; the
    later record of a step (the resumed run's, which the final policy followed) is kept. A last
    line cut off by a kill mid-write is left out, and said so; any other unparsable line is a
    ``DamagedFileError`` naming it."""
    if not path.is_file():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    by_step: dict[int, dict] = {}
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number < len(lines):
                raise DamagedFileError(f"{path}:{number} is damaged ({error})") from error
            print(f"[experiment] {path}:{number}: an incomplete last line (a write cut off) is left out", flush=True)
            continue
        by_step[record["step"]] = record
    return [by_step[step] for step in sorted(by_step)]


def training_summary(history: list[dict]) -> dict[str, float]:
    """Mean over the run's steps of the per-step metrics (the gradient-shape ones included)."""
    keys = sorted({k for record in history for k, v in record.items() if k != "step" and isinstance(v, (int, float))})
    return {k: float(np.nanmean([r[k] for r in history if isinstance(r.get(k), (int, float))])) for k in keys}
