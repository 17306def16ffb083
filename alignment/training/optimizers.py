"""The one optimizer of every trainer (reward models, SFT's users, the RL learner): AdamW after
global-norm clipping, on a learning-rate schedule with a linear warm-up from 0.

    schedule(kind, lr, total, warmup):  lr * t / warmup for t < warmup, then
        constant:  lr
        cosine:    lr * (1 + cos(pi * (t - warmup) / (total - warmup))) / 2
        linear:    lr * (1 - (t - warmup) / (total - warmup))

``OptimizerConfig`` is these settings as one value, the same in ``LearnerConfig.optimizer`` and
``RewardTrainConfig.optimizer``.
"""

from __future__ import annotations

import dataclasses

import optax

from alignment import nested

SCHEDULES = ("constant", "cosine", "linear")


def schedule(kind: str, learning_rate: float, total_steps: int, warmup_steps: int = 0) -> optax.Schedule:
    """The learning rate at each optimizer step (module docstring); ``total_steps`` counts the warm-up."""
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; valid: {', '.join(SCHEDULES)}")
    decay_steps = max(total_steps - warmup_steps, 1)
    decay = {
        "constant": lambda: optax.constant_schedule(learning_rate),
        "cosine": lambda: optax.cosine_decay_schedule(learning_rate, decay_steps),
        "linear": lambda: optax.linear_schedule(learning_rate, 0.0, decay_steps),
    }[kind]()
    if not warmup_steps:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, learning_rate, warmup_steps), decay], [warmup_steps])


def adamw(learning_rate: optax.ScalarOrSchedule, *, weight_decay: float, max_grad_norm: float) -> optax.GradientTransformation:
    """AdamW after clipping the gradients' global norm to ``max_grad_norm``."""
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adamw(learning_rate, weight_decay=weight_decay))


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """AdamW after global-norm clipping on a schedule (module docstring).

    Attributes:
      learning_rate: the peak rate.
      warmup_steps: linear warm-up from 0, in the trainer's steps.
      schedule: "constant", "cosine" or "linear" after the warm-up, to the end of the run.
      weight_decay, max_grad_norm: AdamW's decoupled weight decay and the clipping norm.
    """

    learning_rate: float = 1e-5
    warmup_steps: int = 0
    schedule: str = "constant"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0

    def __post_init__(self):
        nested.check_fields(self, non_negative=("learning_rate", "warmup_steps", "weight_decay"))
        if not self.max_grad_norm > 0:
            raise ValueError(f"OptimizerConfig.max_grad_norm must be > 0, got {self.max_grad_norm}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")

    def make(self, num_steps: int, updates_per_step: int = 1) -> optax.GradientTransformation:
        """The optimizer of a run of ``num_steps`` trainer steps, each ``updates_per_step``
        optimizer updates (the warm-up and the schedule count updates)."""
        warmup = self.warmup_steps * updates_per_step
        rate = schedule(self.schedule, self.learning_rate, max(num_steps * updates_per_step, warmup + 1), warmup)
        return adamw(rate, weight_decay=self.weight_decay, max_grad_norm=self.max_grad_norm)
