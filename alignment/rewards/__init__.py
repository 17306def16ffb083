"""Reward transforms, aggregations and reference rewards, after Wang et al., "Transforming and
Combining Rewards for Aligning Large Language Models" (arXiv 2402.00742).

Pure functions of arrays (no model code, no I/O): jit-able, vmappable, sharding-preserving.

    u_i = log sigmoid(r_i(x, y) - r_ref,i(x))      lsc: the log-sigmoid-centred transform
    U   = sum_i u_i = log P(good on all i)         the logical AND of several reward models
    r_ref,i(x) = quantile_q of r_i(x, y_k), y_k ~ pi_0(.|x), k = 1..K     (q = 0.85)

Start with ``utility`` and ``reference_rewards``; the registries list every named choice.
"""

from alignment.rewards.aggregators import lsc_and, minimum, plain_sum, prob_mean, softmin, weighted_sum
from alignment.rewards.references import DEFAULT_QUANTILE, constant, empirical, fixed_response, gaussian, reference_rewards
from alignment.rewards.registry import AGGREGATORS, REFERENCES, TRANSFORMS, Registry
from alignment.rewards.transforms import centered, clip, identity, lsc, whiten
from alignment.rewards.utility import utility

get_transform = TRANSFORMS.get
get_aggregator = AGGREGATORS.get
get_reference = REFERENCES.get

__all__ = [
    "AGGREGATORS",
    "DEFAULT_QUANTILE",
    "REFERENCES",
    "TRANSFORMS",
    "Registry",
    "centered",
    "clip",
    "constant",
    "empirical",
    "fixed_response",
    "gaussian",
    "get_aggregator",
    "get_reference",
    "get_transform",
    "identity",
    "lsc",
    "lsc_and",
    "minimum",
    "plain_sum",
    "prob_mean",
    "reference_rewards",
    "softmin",
    "utility",
    "weighted_sum",
    "whiten",
]
