"""KL(pi || pi_0) estimators from sampled tokens, and the KL coefficient's controllers.

With ``log_ratio = log pi(y_t) - log pi_0(y_t)`` for a token sampled from pi:

    k1 = log_ratio                                   unbiased, can be negative; the per-token
                                                     penalty added to the reward
    k2 = log_ratio^2 / 2                             biased, low variance
    k3 = exp(-log_ratio) - 1 + log_ratio             unbiased, >= 0; the loss-term estimator

(Schulman, "Approximating KL divergence", 2020). Summed over a response's tokens, k1 is the
sampled sequence KL(pi || pi_0) that every result is plotted against.

The coefficient beta is fixed (the swept quantity of every experiment) or adapted towards a
target KL (Ziegler et al., "Fine-Tuning Language Models from Human Preferences", arXiv
1909.08593): ``beta <- beta * (1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon)`` after a
step of n responses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def k1(logprobs: jax.Array, ref_logprobs: jax.Array) -> jax.Array:
    """``log pi - log pi_0`` per token."""
    return logprobs - ref_logprobs


def k2(logprobs: jax.Array, ref_logprobs: jax.Array) -> jax.Array:
    """``(log pi - log pi_0)^2 / 2`` per token."""
    return 0.5 * jnp.square(logprobs - ref_logprobs)


def k3(logprobs: jax.Array, ref_logprobs: jax.Array) -> jax.Array:
    """``exp(log pi_0 - log pi) - (log pi_0 - log pi) - 1`` per token (non-negative)."""
    log_ratio = ref_logprobs - logprobs
    return jnp.expm1(log_ratio) - log_ratio


ESTIMATORS = {"k1": k1, "k2": k2, "k3": k3}


def adaptive_coefficient(coef: jax.Array, observed_kl: jax.Array, target: float, horizon: float, num_responses: int) -> jax.Array:
    """The adaptive controller's next beta (module docstring); ``observed_kl`` is the mean
    sequence KL of the step's responses."""
    error = jnp.clip(observed_kl / target - 1.0, -0.2, 0.2)
    return coef * (1.0 + error * num_responses / horizon)
