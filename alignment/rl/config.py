"""The learner's configuration and its optimizer.

``LearnerConfig.algorithm`` names a registered ``Algorithm`` (``alignment.rl.algorithms``);
fields left at ``None`` take that algorithm's defaults (``clip_range``, ``overlong_window``).
"""

from __future__ import annotations

import dataclasses

import optax

from alignment.rl.algorithms import Algorithm, get_algorithm
from alignment.rl.utility import Utility
from alignment.training import optimizers
from alignment.training.optimizers import SCHEDULES

KL_PLACEMENTS = ("reward", "loss")
NON_FINITE_POLICIES = ("stop", "skip")



@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    """Everything a learner run optimises and how.

    Attributes:
      algorithm: a registered algorithm's name (``alignment.rl.algorithms``): "ppo", "rloo",
        "grpo", "dr_grpo", "dapo", "gspo" or "reinforce_pp".
      prompts_per_step, num_samples: a step samples ``num_samples`` (G) responses for each of
        ``prompts_per_step`` prompts.
      max_prompt_length: the prompts' padded length (one compiled shape; longer prompts are an
        error at construction).
      max_new_tokens, temperature, top_k, top_p: the sampler's settings.
      utility: the transform and aggregation of the rewards (``Utility``).
      no_eos_penalty: subtracted from the utility of responses that emit no EOS within
        ``max_new_tokens`` (``None``: keep them as they are); they are counted either way.
      kl_coef: beta, the KL weight (the initial one when ``kl_target`` is set).
      kl_in: "reward" (k1 per token, subtracted from the reward) or "loss" (k3 as a loss term).
      kl_target, kl_horizon: adapt beta towards this sequence KL (``None``: fixed beta).
      entropy_coef: weight of the entropy bonus.
      clip_epsilon, clip_epsilon_high: the ratio's clip range ``[1 - eps, 1 + eps_high]``
        (``None``: the algorithm's, ``Algorithm.clip``).
      overlong_buffer, overlong_penalty: DAPO's soft overlong punishment, from 0 at
        ``max_new_tokens - overlong_buffer`` tokens down to ``-overlong_penalty`` at
        ``max_new_tokens``, added to the utility (``overlong_buffer=None``: the algorithm's
        fraction of ``max_new_tokens``; 0: off).
      gamma, gae_lambda, value_coef, value_clip, whiten_advantages: the discount (PPO's and
        REINFORCE++'s), PPO's GAE lambda, value loss weight, value clipping (``None``: off) and
        advantage whitening.
      epochs, minibatches: passes over each rollout and optimizer steps per pass.
      microbatches: gradient accumulation inside each optimizer step.
      learning_rate, warmup_steps, schedule, weight_decay, max_grad_norm: AdamW after global
        norm clipping, linear warm-up then a constant, cosine or linear schedule over
        ``num_steps`` (learner steps; the optimizer steps ``epochs * minibatches`` per step).
      num_steps, seed, log_every, checkpoint_every: the run (``checkpoint_every=0``: only at the end).
      non_finite, max_skips_in_a_row: what a step with a non-finite reward, utility, loss or
        gradient does (its update is skipped either way, so the parameters stay finite): "stop"
        the run with an error naming the step and the source, or "skip" the batch, count it
        (``update_skipped`` in the metrics) and go on, stopping after ``max_skips_in_a_row``
        such steps in a row.
      grad_spike_factor: a step whose gradient norm exceeds this many times the median of the
        previous ``alignment.training.metrics.SPIKE_WINDOW`` steps' is logged on stdout and as ``grad_spike`` (``None``: off).
    """

    algorithm: str = "rloo"
    prompts_per_step: int = 8
    num_samples: int = 4
    max_prompt_length: int = 64
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    utility: Utility = Utility()
    no_eos_penalty: float | None = None
    kl_coef: float = 0.05
    kl_in: str = "reward"
    kl_target: float | None = None
    kl_horizon: float = 10000.0
    entropy_coef: float = 0.0
    clip_epsilon: float | None = None
    clip_epsilon_high: float | None = None
    overlong_buffer: int | None = None
    overlong_penalty: float = 1.0
    gamma: float = 1.0
    gae_lambda: float = 0.95
    value_coef: float = 0.5
    value_clip: float | None = 0.2
    whiten_advantages: bool = True
    epochs: int = 1
    minibatches: int = 1
    microbatches: int = 1
    learning_rate: float = 1e-5
    warmup_steps: int = 0
    schedule: str = "constant"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    num_steps: int = 100
    seed: int = 0
    log_every: int = 1
    checkpoint_every: int = 0
    non_finite: str = "stop"
    max_skips_in_a_row: int = 3
    grad_spike_factor: float | None = 10.0

    def __post_init__(self):
        algorithm = get_algorithm(self.algorithm)
        for name, valid in (("kl_in", KL_PLACEMENTS), ("schedule", SCHEDULES), ("non_finite", NON_FINITE_POLICIES)):
            if getattr(self, name) not in valid:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; valid: {', '.join(valid)}")
        if self.num_samples < algorithm.min_samples:
            raise ValueError(f"{self.algorithm} needs num_samples >= {algorithm.min_samples} responses per prompt, got {self.num_samples}")
        low, high = self.clip_range
        if not (0 < low < 1 and high > 0):
            raise ValueError(f"the clip range needs 0 < clip_epsilon < 1 and clip_epsilon_high > 0, got {low} and {high}")
        if not 0 <= self.overlong_window < self.max_new_tokens:
            raise ValueError(f"need 0 <= overlong_buffer < max_new_tokens={self.max_new_tokens}, got {self.overlong_window}")
        rows = self.prompts_per_step * self.num_samples
        if rows % (self.minibatches * self.microbatches):
            raise ValueError(
                f"prompts_per_step * num_samples = {rows} responses must split into minibatches={self.minibatches} "
                f"x microbatches={self.microbatches} equal parts"
            )
        if self.kl_target is not None and not self.kl_target > 0:
            raise ValueError(f"kl_target must be > 0 (or None for a fixed coefficient), got {self.kl_target}")
        if self.max_skips_in_a_row < 1:
            raise ValueError(f"max_skips_in_a_row must be >= 1, got {self.max_skips_in_a_row}")
        if not 0 <= self.warmup_steps <= self.num_steps:
            raise ValueError(f"need 0 <= warmup_steps <= num_steps, got {self.warmup_steps} and {self.num_steps}")

    @property
    def batch_size(self) -> int:
        """Responses per step, ``prompts_per_step * num_samples``."""
        return self.prompts_per_step * self.num_samples

    @property
    def algorithm_spec(self) -> Algorithm:
        """The registered ``Algorithm`` named by ``algorithm``."""
        return get_algorithm(self.algorithm)

    @property
    def clip_range(self) -> tuple[float, float]:
        """``(epsilon, epsilon_high)``: the configured values, else the algorithm's."""
        low, high = self.algorithm_spec.clip
        return (low if self.clip_epsilon is None else self.clip_epsilon,
                high if self.clip_epsilon_high is None else self.clip_epsilon_high)

    @property
    def overlong_window(self) -> int:
        """DAPO's overlong buffer in tokens: the configured one, else the algorithm's fraction of
        ``max_new_tokens``."""
        if self.overlong_buffer is not None:
            return self.overlong_buffer
        return int(round(self.algorithm_spec.overlong_buffer * self.max_new_tokens))


def make_optimizer(config: LearnerConfig) -> optax.GradientTransformation:
    """AdamW after global-norm clipping on the configured schedule over the run's optimizer steps
    (``alignment.training.optimizers``, the reward-model trainer's too); non-finite updates are
    skipped."""
    per_step = config.epochs * config.minibatches
    rate = optimizers.schedule(config.schedule, config.learning_rate, max(config.num_steps * per_step, 1), config.warmup_steps * per_step)
    inner = optimizers.adamw(rate, weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm)
    return optax.apply_if_finite(inner, max_consecutive_errors=2**31 - 1)


