"""Training metrics to a JSON-lines file and TensorBoard event files, side by side.

For example::

    import tempfile
    from alignment.training.metrics import MetricsWriter

    workdir = tempfile.mkdtemp()
    writer = MetricsWriter(workdir)
    writer.write(10, {"loss": 0.69, "accuracy": 0.5}, prefix="train")
    writer.close()
    print(open(f"{workdir}/metrics.jsonl").read())    # {"step": 10, "train/loss": 0.69, "train/accuracy": 0.5}

Each line of ``metrics.jsonl`` is ``{"step": s, "train/loss": ..., ...}``; the same scalars go
to TensorBoard under ``workdir/tensorboard``. Only process 0 writes on multi-host runs. A writer
that reopens a log whose last line was cut off (a kill or a full disk mid-write) first removes
that partial line, so that the lines it appends stay whole.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tensorboardX import SummaryWriter

from alignment.files import writing
from alignment.parallel import is_primary


def drop_partial_last_line(path: Path) -> None:
    """Truncates ``path`` after its last newline (a line without one was cut off mid-write)."""
    if not path.is_file():
        return
    with path.open("rb+") as log:
        data = log.read()
        if data and not data.endswith(b"\n"):
            log.truncate(data.rfind(b"\n") + 1)
            print(f"[metrics] {path}: removed an incomplete last line (a write cut off) before appending", flush=True)


class MetricsWriter:
    def __init__(self, workdir: str | Path):
        self.workdir = Path(workdir)
        self.enabled = is_primary()
        self._jsonl = None
        self._tensorboard = None
        if self.enabled:
            with writing(self.workdir, "the metrics log"):
                self.workdir.mkdir(parents=True, exist_ok=True)
                drop_partial_last_line(self.workdir / "metrics.jsonl")
                self._jsonl = (self.workdir / "metrics.jsonl").open("a")
                self._tensorboard = SummaryWriter(str(self.workdir / "tensorboard"))

    def write(self, step: int, metrics: Mapping[str, float], prefix: str = "") -> dict[str, float]:
        """Logs scalar metrics (device arrays are fetched); returns them as python floats."""
        scalars = {f"{prefix}/{k}" if prefix else k: float(np.asarray(v)) for k, v in metrics.items()}
        if self.enabled:
            record = {"step": int(step), **{k: (v if math.isfinite(v) else str(v)) for k, v in scalars.items()}}
            with writing(self.workdir / "metrics.jsonl", f"the metrics of step {step}"):
                self._jsonl.write(json.dumps(record) + "\n")
                self._jsonl.flush()
            for name, value in scalars.items():
                self._tensorboard.add_scalar(name, value, int(step))
        return scalars

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tensorboard.close()

    def __enter__(self) -> "MetricsWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


SPIKE_WINDOW = 20  # steps whose median gradient norm a new one is compared with


def gradient_spike(previous: Sequence[float], grad_norm: float, factor: float) -> float | None:
    """``grad_norm / median(previous[-SPIKE_WINDOW:])`` when that exceeds ``factor`` (a spike),
    else ``None``; fewer than 5 previous finite norms are no baseline."""
    recent = [g for g in previous[-SPIKE_WINDOW:] if np.isfinite(g)]
    if len(recent) < 5 or not np.isfinite(grad_norm):
        return None
    ratio = grad_norm / max(float(np.median(recent)), 1e-12)
    return ratio if ratio > factor else None
