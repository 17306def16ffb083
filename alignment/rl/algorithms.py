"""Policy-gradient algorithms as registered values: the learner reads an entry's properties,
never its name.

An ``Algorithm`` is what differs between PPO, RLOO, GRPO and their successors:

* ``estimate``: the rollout's advantages (and value targets), a pure function of
  ``AdvantageInputs`` and the learner's config;
* ``critic``: whether it trains a value model;
* ``ratio``: the importance ratio per token, ``pi(y_t) / pi_old(y_t)``, or per sequence (GSPO);
* ``aggregation``: how per-token losses become the minibatch loss (``loss_weights``);
* ``filter_groups``: whether groups whose samples all have the same utility are dropped from
  the loss (DAPO's dynamic sampling, without refilling the batch: shapes stay fixed, and the
  dropped fraction is logged as ``filtered_groups``);
* default hyperparameters (the clip range, DAPO's overlong buffer) that a ``LearnerConfig``
  field left at ``None`` takes.

The entries, with u the utility, s = u - beta * KL_seq when the KL is in the reward, and G
the samples of one prompt:

    ppo           GAE on token rewards u [t = last] - beta k1_t, value model, whitened
    rloo          A_i = s_i - mean_{j != i} s_j                                 (token mean)
    grpo          A_i = (s_i - mean_G s) / (std_G s + eps)                      (token mean)
    dr_grpo       A_i = s_i - mean_G s; loss sum / (rows * max_new_tokens)
    dapo          grpo's A; clip (1 - eps, 1 + eps_high); groups of equal u dropped; a soft
                  overlong penalty on u; token mean
    gspo          grpo's A; ratio exp(mean_t log pi / pi_old) per sequence, clipped at 3e-4 /
                  4e-4; sequence mean
    reinforce_pp  token rewards (u - mean_G u) [t = last] - beta k1_t, summed to go, whitened
                  over the batch; no critic

Dr. GRPO: Liu et al., "Understanding R1-Zero-Like Training: A Critical Perspective" (arXiv
2503.20783). DAPO: Yu et al., "DAPO: An Open-Source LLM Reinforcement Learning System at Scale"
(arXiv 2503.14476). GSPO: Zheng et al., "Group Sequence Policy Optimization" (arXiv 2507.18071).
REINFORCE++ with a baseline: Hu et al., "REINFORCE++: An Efficient RLHF Algorithm with
Robustness to Both Prompt and Reward Models" (arXiv 2501.03262).

A new algorithm is an ``Algorithm(...)`` passed to ``register``: its estimator and loss pieces
are pure functions, tested on their own; nothing in the learner changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp

from alignment.rewards.registry import Registry
from alignment.rl import advantages as adv

if TYPE_CHECKING:
    from alignment.rl.config import LearnerConfig

RATIOS = ("token", "sequence")
AGGREGATIONS = ("token_mean", "sequence_mean", "constant")


class AdvantageInputs(NamedTuple):
    """One rollout as the estimators see it: ``[B]`` utilities (after any shaping), ``[B, N]``
    per-token k1 KLs (0 on padding), values V(s_t) (0 without a critic) and the response mask
    (float), and the KL weight beta."""

    utility: jax.Array
    kl_tokens: jax.Array
    values: jax.Array
    mask: jax.Array
    kl_coef: jax.Array


Estimator = Callable[[AdvantageInputs, "LearnerConfig"], tuple[jax.Array, jax.Array]]


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """A registered algorithm (module docstring).

    Attributes:
      name: its registry name.
      estimate: ``(inputs, config) -> (advantages [B, N], value targets [B, N])``.
      critic: trains a value model (needs ``value_model`` in the ``Learner``).
      ratio: "token" or "sequence".
      aggregation: "token_mean", "sequence_mean" or "constant" (``loss_weights``).
      filter_groups: drop groups whose samples all have the same utility.
      clip: the default ``(epsilon, epsilon_high)`` of the clipped ratio.
      overlong_buffer: the default soft overlong window as a fraction of ``max_new_tokens``
        (0: no shaping; ``overlong_penalty``).
      min_samples: the fewest samples per prompt it can use.
    """

    name: str
    estimate: Estimator
    critic: bool = False
    ratio: str = "token"
    aggregation: str = "token_mean"
    filter_groups: bool = False
    clip: tuple[float, float] = (0.2, 0.2)
    overlong_buffer: float = 0.0
    min_samples: int = 2

    def __post_init__(self):
        for field, valid in (("ratio", RATIOS), ("aggregation", AGGREGATIONS)):
            if getattr(self, field) not in valid:
                raise ValueError(f"algorithm {self.name!r}: unknown {field} {getattr(self, field)!r}; valid: {', '.join(valid)}")


ALGORITHMS = Registry("algorithm")


def register(algorithm: Algorithm) -> Algorithm:
    """Adds ``algorithm`` to the registry under its name (names are unique)."""
    return ALGORITHMS.register(algorithm.name)(algorithm)


def get_algorithm(name: str) -> Algorithm:
    """The registered algorithm ``name``; an unknown name is an error listing the valid ones."""
    return ALGORITHMS.get(name)


# ----------------------------------------------------------------------------- estimators


def sequence_scores(x: AdvantageInputs, config: LearnerConfig) -> jax.Array:
    """``s = u - beta * sum_t k1_t`` with the KL in the reward, else ``u``; ``[B]``."""
    return x.utility - x.kl_coef * x.kl_tokens.sum(axis=1) if config.kl.placement == "reward" else x.utility


def per_sequence(group_estimator: Callable[[jax.Array], jax.Array]) -> Estimator:
    """An estimator that gives each response one advantage, ``group_estimator`` of the scores of
    its prompt's G samples (``[P, G] -> [P, G]``), on every one of its tokens."""

    def estimate(x: AdvantageInputs, config: LearnerConfig) -> tuple[jax.Array, jax.Array]:
        scores = sequence_scores(x, config).reshape(-1, config.num_samples)
        advantages = group_estimator(scores).reshape(-1)[:, None] * x.mask
        return advantages, jnp.zeros_like(advantages)

    return estimate


def token_rewards(utility: jax.Array, x: AdvantageInputs, config: LearnerConfig) -> jax.Array:
    """``utility [t = last token] - beta * k1_t`` (the KL only when it is in the reward), ``[B, N]``."""
    last = jax.nn.one_hot(x.mask.sum(axis=1).astype(jnp.int32) - 1, x.mask.shape[1], dtype=x.mask.dtype)
    rewards = utility[:, None] * last
    return rewards - x.kl_coef * x.kl_tokens if config.kl.placement == "reward" else rewards


def gae_estimate(x: AdvantageInputs, config: LearnerConfig) -> tuple[jax.Array, jax.Array]:
    """PPO: GAE(gamma, lambda) of the token rewards against the critic's values, whitened over
    the batch's tokens when ``critic.whiten_advantages``; the value targets are ``A + V``."""
    advantages, returns = adv.gae(token_rewards(x.utility, x, config), x.values, x.mask, config.loss.gamma, config.critic_options.gae_lambda)
    if config.critic_options.whiten_advantages:
        advantages = adv.masked_whiten(advantages, x.mask)
    return advantages, returns


def reinforce_pp_estimate(x: AdvantageInputs, config: LearnerConfig) -> tuple[jax.Array, jax.Array]:
    """REINFORCE++ with a baseline: token rewards of ``u - mean_G u`` (the group-mean baseline)
    at the last token and ``-beta k1_t`` everywhere, discounted returns to go
    ``A_t = sum_{s >= t} gamma^(s-t) r_s``, whitened over the batch's tokens."""
    utility = x.utility.reshape(-1, config.num_samples)
    centred = (utility - utility.mean(axis=1, keepdims=True)).reshape(-1)
    returns, _ = adv.gae(token_rewards(centred, x, config), jnp.zeros_like(x.values), x.mask, config.loss.gamma, 1.0)
    return adv.masked_whiten(returns, x.mask), jnp.zeros_like(returns)


# ----------------------------------------------------------------------------- loss pieces


def sequence_log_ratio(logprobs: jax.Array, old_logprobs: jax.Array, mask: jax.Array) -> jax.Array:
    """GSPO's ratio per token, ``log s_i + log pi(y_t) - sg(log pi(y_t))`` with
    ``log s_i = mean_t (log pi - log pi_old)`` over the response's tokens and sg the stop-gradient:
    its value is the sequence ratio on every token, its gradient the sequence objective's
    (GSPO-token with equal advantages over a sequence)."""
    lengths = jnp.maximum(mask.sum(axis=1), 1.0)
    log_s = ((logprobs - old_logprobs) * mask).sum(axis=1) / lengths
    return jax.lax.stop_gradient(log_s)[:, None] + logprobs - jax.lax.stop_gradient(logprobs)


def log_ratio(algorithm: Algorithm, logprobs: jax.Array, old_logprobs: jax.Array, mask: jax.Array) -> jax.Array:
    """The log importance ratio of ``algorithm`` per token, ``[B, N]``."""
    if algorithm.ratio == "sequence":
        return sequence_log_ratio(logprobs, old_logprobs, mask)
    return logprobs - old_logprobs


def loss_weights(algorithm: Algorithm, mask: jax.Array, max_new_tokens: int) -> jax.Array:
    """Per-token weights ``[B, N]`` of a minibatch's loss ``sum_t w_t l_t`` (``mask``: the tokens
    that count, float):

        token_mean:     m_t / sum m                       (every token of the minibatch alike)
        sequence_mean:  m_t / (|y_i| * rows that count)   (every response alike)
        constant:       m_t / (B * max_new_tokens)        (Dr. GRPO: no length normalisation)
    """
    if algorithm.aggregation == "token_mean":
        return mask / jnp.maximum(mask.sum(), 1.0)
    if algorithm.aggregation == "sequence_mean":
        lengths = mask.sum(axis=1, keepdims=True)
        rows = jnp.maximum((lengths > 0).sum(), 1)
        return mask / jnp.maximum(lengths, 1.0) / rows
    return mask / (mask.shape[0] * max_new_tokens)


def varied_groups(utility: jax.Array, group_size: int) -> jax.Array:
    """``[B]`` 1.0 for the responses of groups whose samples do not all have the same utility
    (DAPO's dynamic sampling keeps only those), 0.0 for the others."""
    groups = utility.reshape(-1, group_size)
    varied = jnp.any(groups != groups[:, :1], axis=1)
    return jnp.repeat(varied, group_size).astype(utility.dtype)


def overlong_penalty(lengths: jax.Array, max_new_tokens: int, buffer: int, factor: float) -> jax.Array:
    """DAPO's soft overlong punishment, ``[B]`` (<= 0): 0 up to ``max_new_tokens - buffer``
    tokens, then falling linearly to ``-factor`` at ``max_new_tokens``:
    ``factor * min(0, (max_new_tokens - buffer - length) / buffer)``."""
    if buffer <= 0:
        return jnp.zeros_like(lengths)
    return factor * jnp.minimum(0.0, (max_new_tokens - buffer - lengths) / buffer)


# ----------------------------------------------------------------------------- the entries

PPO = register(Algorithm("ppo", gae_estimate, critic=True, min_samples=1))
RLOO = register(Algorithm("rloo", per_sequence(adv.rloo)))
GRPO = register(Algorithm("grpo", per_sequence(adv.group_normalized)))
DR_GRPO = register(Algorithm("dr_grpo", per_sequence(adv.group_centered), aggregation="constant"))
DAPO = register(Algorithm("dapo", per_sequence(adv.group_normalized), filter_groups=True, clip=(0.2, 0.28), overlong_buffer=0.2))
GSPO = register(Algorithm("gspo", per_sequence(adv.group_normalized), ratio="sequence", aggregation="sequence_mean", clip=(3e-4, 4e-4)))
REINFORCE_PP = register(Algorithm("reinforce_pp", reinforce_pp_estimate))
