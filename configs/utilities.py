"""Utilities over several reward models, as named Fiddle configs: the log-sigmoid-centred AND of
Wang et al., "Transforming and Combining Rewards for Aligning Large Language Models"
(arXiv 2402.00742), and baselines.

Each utility config is an ``fdl.Config`` of ``alignment.rl.Utility``, what a run optimises
(``RunSpec(utility=utilities.lsc_and())``, or ``learner.utility``); building it gives
``utility(rewards [B, P], references [B, P], properties) -> [B]``. The reference estimator is a
config of its own (``reference``), so q in {0.5, 0.85, 0.95} and empirical versus gaussian are
one override each.
"""

import fiddle as fdl

from alignment import rewards
from alignment.rl.utility import Utility


def lsc_and() -> fdl.Config:
    """Wang et al. (arXiv 2402.00742): U = sum_i log sigmoid(r_i - r_ref,i) = log P(good on every property)."""
    return fdl.Config(Utility, transform="lsc", aggregator="sum")


def raw_sum() -> fdl.Config:
    """The standard baseline: U = sum_i r_i (raw rewards, no reference)."""
    return fdl.Config(Utility, transform="identity", aggregator="sum")


def group_normalized_sum() -> fdl.Config:
    """TRL's, verl's and NeMo-RL's several-reward baseline: each reward standardised over its
    prompt's samples, then summed."""
    return fdl.Config(Utility, transform="identity", aggregator="sum", normalize="group")


def raw_weighted_sum(weights: dict[str, float]) -> fdl.Config:
    """U = sum_i w_i r_i with one weight per property, e.g. ``{"helpful": 1, "harmless": 2}``."""
    return fdl.Config(Utility, transform="identity", aggregator="weighted_sum", weights=weights)


def min_centered() -> fdl.Config:
    """A hard AND: U = min_i (r_i - r_ref,i)."""
    return fdl.Config(Utility, transform="centered", aggregator="min")


def prob_mean() -> fdl.Config:
    """An OR-like contrast: U = log mean_i sigmoid(r_i - r_ref,i)."""
    return fdl.Config(Utility, transform="centered", aggregator="prob_mean")


def reference(method: str = "empirical", quantile: float = rewards.DEFAULT_QUANTILE) -> fdl.Partial:
    """r_ref(x) from [..., K] base-policy rewards; Wang et al. (arXiv 2402.00742) use the 85th percentile."""
    params = {"quantile": quantile} if method in ("empirical", "gaussian") else {}
    return fdl.Partial(rewards.reference_rewards, method=method, **params)
