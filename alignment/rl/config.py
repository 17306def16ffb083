"""The learner's configuration, nested by concern, and its optimizer.

    LearnerConfig
      algorithm, prompts_per_step, num_samples, utility     what is optimised, on what batch
      rollout    RolloutConfig    lengths and sampling (shared with the reference stage and judge)
      shaping    RewardShaping    no-EOS and DAPO's overlong penalties on the utility
      kl         KLConfig         beta, where the KL enters, its adaptive target
      loss       LossConfig       the clip range, the entropy bonus, the discount
      critic     CriticConfig     PPO's value model and GAE (``None``: the defaults, for an
                                  algorithm with a critic; an error for one without)
      optimizer  OptimizerConfig  AdamW and its schedule (the reward-model trainer's too)
      lora       LoRAConfig       low-rank adapters instead of full fine-tuning (``None``: full)
      epochs, minibatches, microbatches                     the update's passes and splits
      num_steps, seed, log_every, checkpoint_every          the run
      faults     FaultPolicy      non-finite steps and gradient spikes

``LearnerConfig.algorithm`` names a registered ``Algorithm`` (``alignment.rl.algorithms``);
fields left at ``None`` take that algorithm's defaults (``clip_range``, ``overlong_window``).
A run of an experiment changes fields by dotted path (``alignment.nested.replace``, e.g.
``{"kl.coef": 0.2}``).
"""

from __future__ import annotations

import dataclasses

import optax

from alignment import nested
from alignment.models.lora import LoRAConfig
from alignment.rl.algorithms import Algorithm, get_algorithm
from alignment.rl.rollout import RolloutConfig
from alignment.rl.utility import Utility
from alignment.training.optimizers import OptimizerConfig

KL_PLACEMENTS = ("reward", "loss")
NON_FINITE_POLICIES = ("stop", "skip")


@dataclasses.dataclass(frozen=True)
class RewardShaping:
    """Penalties added to the utility of a response.

    Attributes:
      no_eos_penalty: subtracted from responses that emit no EOS within ``max_new_tokens``
        (``None``: keep them as they are); they are counted either way.
      overlong_buffer, overlong_penalty: DAPO's soft overlong punishment, from 0 at
        ``max_new_tokens - overlong_buffer`` tokens down to ``-overlong_penalty`` at
        ``max_new_tokens`` (``overlong_buffer=None``: the algorithm's fraction of
        ``max_new_tokens``; 0: off).
    """

    no_eos_penalty: float | None = None
    overlong_buffer: int | None = None
    overlong_penalty: float = 1.0

    def __post_init__(self):
        nested.check_fields(self, non_negative=("overlong_buffer",))


@dataclasses.dataclass(frozen=True)
class KLConfig:
    """The KL penalty to the base policy.

    Attributes:
      coef: beta, the KL weight (the initial one when ``target`` is set).
      placement: "reward" (k1 per token, subtracted from the reward) or "loss" (k3 as a loss term).
      target, horizon: adapt beta towards this sequence KL (``None``: fixed beta).
    """

    coef: float = 0.05
    placement: str = "reward"
    target: float | None = None
    horizon: float = 10000.0

    def __post_init__(self):
        nested.check_fields(self, non_negative=("coef",))
        if self.placement not in KL_PLACEMENTS:
            raise ValueError(f"unknown kl.placement {self.placement!r}; valid: {', '.join(KL_PLACEMENTS)}")
        if self.target is not None and not self.target > 0:
            raise ValueError(f"kl.target must be > 0 (or None for a fixed coefficient), got {self.target}")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """The policy loss.

    Attributes:
      clip_epsilon, clip_epsilon_high: the ratio's clip range ``[1 - eps, 1 + eps_high]``
        (``None``: the algorithm's, ``Algorithm.clip``).
      entropy_coef: weight of the entropy bonus.
      gamma: the discount of the token rewards (PPO's and REINFORCE++'s returns).
    """

    clip_epsilon: float | None = None
    clip_epsilon_high: float | None = None
    entropy_coef: float = 0.0
    gamma: float = 1.0

    def __post_init__(self):
        nested.check_fields(self, non_negative=("entropy_coef",))


@dataclasses.dataclass(frozen=True)
class CriticConfig:
    """The value model of an algorithm with a critic (PPO).

    Attributes:
      gae_lambda: GAE's lambda (1: Monte-Carlo returns).
      value_coef: the value loss's weight.
      value_clip: the value clipping range (``None``: off).
      whiten_advantages: whiten the GAE advantages over the batch's tokens.
    """

    gae_lambda: float = 0.95
    value_coef: float = 0.5
    value_clip: float | None = 0.2
    whiten_advantages: bool = True

    def __post_init__(self):
        nested.check_fields(self)


@dataclasses.dataclass(frozen=True)
class FaultPolicy:
    """What the learner does about numerical faults.

    Attributes:
      non_finite, max_skips_in_a_row: what a step with a non-finite reward, utility, loss or
        gradient does (its update is skipped either way, so the parameters stay finite): "stop"
        the run with an error naming the step and the source, or "skip" the batch, count it
        (``update_skipped`` in the metrics) and go on, stopping after ``max_skips_in_a_row``
        such steps in a row.
      grad_spike_factor: a step whose gradient norm exceeds this many times the median of the
        previous ``alignment.training.metrics.SPIKE_WINDOW`` steps' is logged on stdout and as
        ``grad_spike`` (``None``: off).
    """

    non_finite: str = "stop"
    max_skips_in_a_row: int = 3
    grad_spike_factor: float | None = 10.0

    def __post_init__(self):
        nested.check_fields(self, positive=("max_skips_in_a_row",))
        if self.grad_spike_factor is not None and not self.grad_spike_factor > 1:
            raise ValueError(f"faults.grad_spike_factor must be > 1 (or None: off), got {self.grad_spike_factor}")
        if self.non_finite not in NON_FINITE_POLICIES:
            raise ValueError(f"unknown faults.non_finite {self.non_finite!r}; valid: {', '.join(NON_FINITE_POLICIES)}")


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    """Everything a learner run optimises and how (the module docstring maps the groups).

    Attributes:
      algorithm: a registered algorithm's name (``alignment.rl.algorithms``): "ppo", "rloo",
        "grpo", "dr_grpo", "dapo", "gspo" or "reinforce_pp".
      prompts_per_step, num_samples: a step samples ``num_samples`` (G) responses for each of
        ``prompts_per_step`` prompts.
      rollout: the lengths and the sampling distribution (``RolloutConfig``).
      utility: the transform and aggregation of the rewards (``Utility``).
      shaping, kl, loss, critic, optimizer, faults: the groups of the module docstring.
      lora: train LoRA adapters on the policy (and on a critic's own backbone) instead of all
        its weights; the base policy pi_0 is then the policy with the adapters off (no copy of
        the weights), and the optimizer state and checkpoints hold only the adapters and heads.
      epochs, minibatches: passes over each rollout and optimizer steps per pass.
      microbatches: gradient accumulation inside each optimizer step.
      num_steps, seed, log_every, checkpoint_every: the run (``checkpoint_every=0``: only at the
        end); the optimizer's schedule runs over ``num_steps * epochs * minibatches`` updates
        and its warm-up counts learner steps.
    """

    algorithm: str = "rloo"
    prompts_per_step: int = 8
    num_samples: int = 4
    rollout: RolloutConfig = RolloutConfig()
    utility: Utility = Utility()
    shaping: RewardShaping = RewardShaping()
    kl: KLConfig = KLConfig()
    loss: LossConfig = LossConfig()
    critic: CriticConfig | None = None
    optimizer: OptimizerConfig = OptimizerConfig()
    lora: LoRAConfig | None = None
    epochs: int = 1
    minibatches: int = 1
    microbatches: int = 1
    num_steps: int = 100
    seed: int = 0
    log_every: int = 1
    checkpoint_every: int = 0
    faults: FaultPolicy = FaultPolicy()

    def __post_init__(self):
        nested.check_fields(self, positive=("prompts_per_step", "num_samples", "epochs", "minibatches", "microbatches", "log_every"),
                            non_negative=("num_steps", "checkpoint_every"))
        algorithm = get_algorithm(self.algorithm)
        if self.num_samples < algorithm.min_samples:
            raise ValueError(f"{self.algorithm} needs num_samples >= {algorithm.min_samples} responses per prompt, got {self.num_samples}")
        if self.critic is not None and not algorithm.critic:
            raise ValueError(f"{self.algorithm} has no critic, so critic={self.critic} would not be read; leave critic=None")
        low, high = self.clip_range
        if not (0 < low < 1 and high > 0):
            raise ValueError(f"the clip range needs 0 < loss.clip_epsilon < 1 and loss.clip_epsilon_high > 0, got {low} and {high}")
        if not 0 <= self.overlong_window < self.rollout.max_new_tokens:
            raise ValueError(f"need 0 <= shaping.overlong_buffer < rollout.max_new_tokens={self.rollout.max_new_tokens}, "
                             f"got {self.overlong_window}")
        rows = self.prompts_per_step * self.num_samples
        if rows % (self.minibatches * self.microbatches):
            raise ValueError(
                f"prompts_per_step * num_samples = {rows} responses must split into minibatches={self.minibatches} "
                f"x microbatches={self.microbatches} equal parts"
            )
        if not 0 <= self.optimizer.warmup_steps <= self.num_steps:
            raise ValueError(f"need 0 <= optimizer.warmup_steps <= num_steps, got {self.optimizer.warmup_steps} and {self.num_steps}")

    @property
    def batch_size(self) -> int:
        """Responses per step, ``prompts_per_step * num_samples``."""
        return self.prompts_per_step * self.num_samples

    @property
    def algorithm_spec(self) -> Algorithm:
        """The registered ``Algorithm`` named by ``algorithm``."""
        return get_algorithm(self.algorithm)

    @property
    def critic_options(self) -> CriticConfig:
        """``critic``, else the defaults (read only by an algorithm with a critic)."""
        return CriticConfig() if self.critic is None else self.critic

    @property
    def clip_range(self) -> tuple[float, float]:
        """``(epsilon, epsilon_high)``: the configured values, else the algorithm's."""
        low, high = self.algorithm_spec.clip
        return (low if self.loss.clip_epsilon is None else self.loss.clip_epsilon,
                high if self.loss.clip_epsilon_high is None else self.loss.clip_epsilon_high)

    @property
    def overlong_window(self) -> int:
        """DAPO's overlong buffer in tokens: the configured one, else the algorithm's fraction of
        ``max_new_tokens``."""
        if self.shaping.overlong_buffer is not None:
            return self.shaping.overlong_buffer
        return int(round(self.algorithm_spec.overlong_buffer * self.rollout.max_new_tokens))


def make_optimizer(config: LearnerConfig) -> optax.GradientTransformation:
    """``config.optimizer`` over the run's optimizer updates (``epochs * minibatches`` per learner
    step); non-finite updates are skipped."""
    inner = config.optimizer.make(config.num_steps, config.epochs * config.minibatches)
    return optax.apply_if_finite(inner, max_consecutive_errors=2**31 - 1)
