"""Per-token policy and value losses of the learners (masked means are taken by the caller).

    ratio_t   = exp(log pi(y_t) - log pi_old(y_t))     (or GSPO's sequence ratio: rl/algorithms.py)
    policy_t  = -min(ratio_t A_t, clip(ratio_t, 1 - eps, 1 + eps_high) A_t)   (PPO's clipped surrogate;
                                                      eps_high = eps but in DAPO's clip-higher)
    value_t   = max((V_t - G_t)^2, (V_old,t + clip(V_t - V_old,t, -c, c) - G_t)^2) / 2
    entropy_t = -sum_v pi(v | s_t) log pi(v | s_t)

With one update per rollout (ratio = 1) the clipped surrogate's gradient is REINFORCE's,
``-A_t grad log pi(y_t)``, which is how RLOO and GRPO use it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def clipped_surrogate(
    log_ratio: jax.Array, advantages: jax.Array, epsilon: float, epsilon_high: float | None = None
) -> tuple[jax.Array, jax.Array]:
    """Per-token clipped surrogate loss of ``log_ratio = log pi - log pi_old`` and whether the
    clipped branch was taken (the clip fraction); the ratio is clipped to
    ``[1 - epsilon, 1 + epsilon_high]`` (``epsilon_high=None``: ``epsilon``)."""
    ratio = jnp.exp(log_ratio)
    advantages = jax.lax.stop_gradient(advantages)
    unclipped = ratio * advantages
    high = epsilon if epsilon_high is None else epsilon_high
    clipped = jnp.clip(ratio, 1.0 - epsilon, 1.0 + high) * advantages
    return -jnp.minimum(unclipped, clipped), clipped < unclipped


def value_loss(values: jax.Array, old_values: jax.Array, returns: jax.Array, clip: float | None) -> jax.Array:
    """Per-token squared error to the returns, pessimistically clipped around the rollout's values."""
    returns = jax.lax.stop_gradient(returns)
    loss = jnp.square(values - returns)
    if clip is not None:
        clipped = old_values + jnp.clip(values - old_values, -clip, clip)
        loss = jnp.maximum(loss, jnp.square(clipped - returns))
    return 0.5 * loss


def token_logprobs_and_entropy(logits: jax.Array, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``log softmax(logits)[token]`` and the entropy of each position's distribution, ``[B, T]``."""
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    chosen = jnp.take_along_axis(log_probs, tokens[..., None], axis=-1)[..., 0]
    entropy = -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)
    return chosen, entropy
