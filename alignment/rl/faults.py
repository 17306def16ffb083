"""The learner's non-finite policy (``FaultPolicy``) applied to each step's flags, once they
are fetched from the devices."""

from __future__ import annotations

from alignment.parallel import is_primary, to_host
from alignment.rl.config import FaultPolicy

# Causes before effects: rewards, then the utility, the loss and the gradients.
_SOURCES = ("reward", "utility", "loss", "gradients")


class NonFiniteGuard:
    """Collects each step's device flags (``{source: bool}``) and, on ``check()``, raises
    ``FloatingPointError`` for the first step with a non-finite source ("stop"), or counts the
    skipped steps and raises at the ``max_skips_in_a_row``-th in a row ("skip")."""

    def __init__(self, policy: FaultPolicy):
        self.policy = policy
        self.skipped: set[int] = set()  # steps whose update a non-finite value skipped
        self._pending: list[tuple[int, dict]] = []  # (step, device flags) not yet fetched
        self._in_a_row = 0

    def add(self, step: int, flags: dict) -> None:
        self._pending.append((step, flags))

    def check(self) -> None:
        if not self._pending:
            return
        steps = [step for step, _ in self._pending]
        fetched = to_host([flags for _, flags in self._pending])
        self._pending = []
        for step, flags in zip(steps, fetched):
            bad = sorted((source for source, flag in flags.items() if bool(flag)), key=lambda s: _SOURCES.index(s.split()[0]))
            if not bad:
                self._in_a_row = 0
                continue
            message = f"step {step}: non-finite {', '.join(bad)}; that step's update was skipped, the parameters are finite"
            if self.policy.non_finite == "stop":
                raise FloatingPointError(message)
            self.skipped.add(step)
            self._in_a_row += 1
            if self._in_a_row >= self.policy.max_skips_in_a_row:
                raise FloatingPointError(f"{message}; {self._in_a_row} steps in a row were skipped "
                                         f"(faults.max_skips_in_a_row={self.policy.max_skips_in_a_row}): stopping")
            if is_primary():
                print(f"[learner] {message} (non_finite='skip': {self._in_a_row} in a row)", flush=True)
