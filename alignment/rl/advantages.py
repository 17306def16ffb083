"""Advantage estimators: pure functions of utilities, values and masks.

The learner computes one utility ``u`` per response (``alignment.rewards.utility``: a transform
such as LSC, then an aggregation over properties), optionally minus the KL penalty, and turns it
into advantages with one of:

    rloo:              A_i = u_i - mean_{j != i} u_j = G / (G - 1) * (u_i - mean_j u_j)
    group_normalized:  A_i = (u_i - mean_j u_j) / (std_j u_j + eps)         (GRPO)
    group_centered:    A_i = u_i - mean_j u_j                               (Dr. GRPO)
    gae:               A_t = sum_l (gamma lambda)^l delta_{t+l},
                       delta_t = r_t + gamma V_{t+1} - V_t                  (PPO, per token)

``rloo`` and the group estimators act on the trailing group axis G (the samples of one prompt) and
give one advantage per response; ``gae`` gives one per response token. A monotone transform of
the reward keeps the ranking inside a group but changes the spacing: LSC compresses the
differences among samples above r_ref and keeps those below. ``group_norm`` then rescales every
prompt's spread to one (``group_centered`` does not), which partly undoes the per-prompt scale that LSC's saturation sets
(the learner reports mean |A| above and below r_ref so this can be measured, not assumed).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def rloo(utilities: jax.Array) -> jax.Array:
    """REINFORCE leave-one-out: ``u_i`` minus the mean of the other G - 1 samples, ``[..., G]``."""
    group = utilities.shape[-1]
    if group < 2:
        raise ValueError(f"rloo needs at least 2 samples per prompt (the trailing axis), got {group}")
    centred = utilities - jnp.mean(utilities, axis=-1, keepdims=True)
    return centred * (group / (group - 1))


def group_normalized(utilities: jax.Array, eps: float = 1e-6) -> jax.Array:
    """GRPO: ``(u_i - mean_G u) / (std_G u + eps)`` over the trailing group axis ``[..., G]``."""
    if utilities.shape[-1] < 2:
        raise ValueError(f"group normalisation needs at least 2 samples per prompt, got {utilities.shape[-1]}")
    centred = utilities - jnp.mean(utilities, axis=-1, keepdims=True)
    return centred / (jnp.std(utilities, axis=-1, keepdims=True) + eps)


def group_centered(utilities: jax.Array) -> jax.Array:
    """Dr. GRPO: ``u_i - mean_G u`` over the trailing group axis ``[..., G]`` (no std division)."""
    if utilities.shape[-1] < 2:
        raise ValueError(f"a group baseline needs at least 2 samples per prompt, got {utilities.shape[-1]}")
    return utilities - jnp.mean(utilities, axis=-1, keepdims=True)


def gae(rewards: jax.Array, values: jax.Array, mask: jax.Array, gamma: float, lam: float) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation per token, and the value targets ``A + V``.

    Args:
      rewards: ``[B, T]`` reward received after token t (the utility at the last valid token,
        per-token KL penalties anywhere).
      values: ``[B, T]`` V(s_t), the value before token t is emitted.
      mask: ``[B, T]`` valid response tokens (a prefix of each row).
      gamma, lam: discount and GAE mixing parameter.

    The episode ends after the last valid token (V = 0 beyond it); advantages and returns are 0
    on invalid tokens.
    """
    mask = mask.astype(values.dtype)
    rewards, values = rewards * mask, values * mask
    next_values = jnp.concatenate([values[:, 1:], jnp.zeros_like(values[:, :1])], axis=1)
    next_mask = jnp.concatenate([mask[:, 1:], jnp.zeros_like(mask[:, :1])], axis=1)
    deltas = rewards + gamma * next_values * next_mask - values

    def backward(carry, xs):
        delta, m_next = xs
        advantage = delta + gamma * lam * m_next * carry
        return advantage, advantage

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(deltas[:, 0]), (deltas.T, next_mask.T), reverse=True)
    advantages = advantages.T * mask
    return advantages, (advantages + values) * mask


def masked_mean(x: jax.Array, mask: jax.Array, axis=None) -> jax.Array:
    """Mean of ``x`` over the entries where ``mask`` is true (0 where none are)."""
    mask = mask.astype(x.dtype)
    return jnp.sum(x * mask, axis=axis) / jnp.maximum(jnp.sum(mask, axis=axis), 1.0)


def masked_whiten(x: jax.Array, mask: jax.Array, eps: float = 1e-8) -> jax.Array:
    """``(x - mean) / std`` over the masked entries (PPO's advantage normalisation); 0 elsewhere."""
    mean = masked_mean(x, mask)
    var = masked_mean(jnp.square(x - mean), mask)
    return (x - mean) * jax.lax.rsqrt(var + eps) * mask.astype(x.dtype)
