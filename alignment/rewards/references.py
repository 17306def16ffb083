"""Reference-reward estimators: rewards of shape [..., K] -> r_ref(x) of shape [...].

The input is, per prompt, the reward model's scores of K responses: K samples from the base
policy pi_0 for ``empirical`` and ``gaussian`` (the recipe of Wang et al., arXiv 2402.00742: computed once, from the base policy),
or K fixed responses (e.g. refusal phrasings) for ``fixed_response``. Estimators reduce the
trailing K axis and keep the input dtype and leading shape. Non-finite rewards raise
``ValueError`` as in ``utility``.
"""

from __future__ import annotations

import statistics

import jax
import jax.numpy as jnp

from alignment.rewards.checks import check_finite
from alignment.rewards.registry import REFERENCES

DEFAULT_QUANTILE = 0.85


def _check_quantile(quantile: float) -> None:
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"reference quantile must be in [0, 1], got {quantile}")


def _check_samples(rewards: jax.Array, method: str) -> jax.Array:
    """``rewards`` as an array of shape [..., K], K >= 1, with finite values (see ``check_finite``)."""
    rewards = jnp.asarray(rewards)
    if rewards.ndim == 0 or rewards.shape[-1] == 0:
        raise ValueError(
            f"reference '{method}' needs rewards of shape [..., K] with K >= 1 responses per prompt, "
            f"got shape {rewards.shape}"
        )
    return check_finite(rewards, f"reference '{method}': rewards")


@REFERENCES.register("empirical")
def empirical(base_rewards: jax.Array, quantile: float = DEFAULT_QUANTILE) -> jax.Array:
    """r_ref = the q-quantile of the K base-policy rewards (linear interpolation, as NumPy)."""
    _check_quantile(quantile)
    base_rewards = _check_samples(base_rewards, "empirical")
    return jnp.quantile(base_rewards, quantile, axis=-1).astype(base_rewards.dtype)


@REFERENCES.register("gaussian")
def gaussian(base_rewards: jax.Array, quantile: float = DEFAULT_QUANTILE) -> jax.Array:
    """r_ref = mu + sigma * Phi^-1(q), with mu, sigma the maximum-likelihood Gaussian fit.

    Smoother than the empirical quantile for small K; q must be in (0, 1).
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"gaussian reference quantile must be in (0, 1), got {quantile}")
    base_rewards = _check_samples(base_rewards, "gaussian")
    z = statistics.NormalDist().inv_cdf(quantile)
    return jnp.mean(base_rewards, axis=-1) + z * jnp.std(base_rewards, axis=-1)


@REFERENCES.register("fixed_response")
def fixed_response(response_rewards: jax.Array) -> jax.Array:
    """r_ref = the reward of a fixed response (e.g. a refusal), averaged over its K phrasings.

    ``response_rewards`` [..., K] are the already-computed rewards of K >= 1 fixed responses
    for each prompt; with K = 1 the reference is exactly that response's reward.
    """
    return jnp.mean(_check_samples(response_rewards, "fixed_response"), axis=-1)


@REFERENCES.register("constant")
def constant(base_rewards: jax.Array, value: float = 0.0) -> jax.Array:
    """r_ref = ``value`` for every prompt: an ablation (BT rewards are only defined per prompt
    up to a constant, so this is not a recommendation).

    Eagerly the result keeps the input's sharding; inside ``jit`` it is a data-independent
    constant, which XLA replicates (``utility`` then broadcasts it onto the rewards' sharding).
    """
    base_rewards = _check_samples(base_rewards, "constant")
    return jnp.full_like(base_rewards[..., 0], value)


def reference_rewards(base_rewards: jax.Array, method: str = "empirical", **params) -> jax.Array:
    """Reference rewards [...] from per-prompt rewards [..., K] with the estimator ``method``.

    ``reference_rewards(r, "empirical", quantile=0.85)``; unknown methods raise an error listing
    the valid ones.
    """
    return REFERENCES.get(method, **params)(base_rewards)
