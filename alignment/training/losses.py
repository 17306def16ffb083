"""Pure preference losses shared by Bradley-Terry and general preference models.

Both model families produce a *margin* m = score(chosen > rejected | x): for Bradley-Terry
m = r(x, y+) - r(x, y-); for a GPM m = s(y+ > y- | x) = <R(x) v+, v->. The label P in [0, 1] is
the probability that ``chosen`` is preferred (1 for hard labels), and

    loss = -[P log sigmoid(m / beta) + (1 - P) log sigmoid(-m / beta)]

(beta = 1 is the usual BT loss; Zhang et al., "General Preference Modeling with Preference
Representations for Aligning Language Models", arXiv 2410.02197, use beta = 0.1 for GPM).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def preference_loss(margin: jax.Array, label: jax.Array | float = 1.0, beta: float = 1.0) -> jax.Array:
    """Per-pair cross-entropy of the preference model sigmoid(m / beta) against label P."""
    if beta <= 0:
        raise ValueError(f"preference loss beta must be > 0, got {beta}")
    logits = margin / beta
    return -(label * jax.nn.log_sigmoid(logits) + (1.0 - label) * jax.nn.log_sigmoid(-logits))


def preference_accuracy(margin: jax.Array, label: jax.Array | float = 1.0) -> jax.Array:
    """1 where the model prefers the side the label favours (m > 0 iff P > 1/2), else 0.

    A tied label (P = 1/2) scores 1/2 whatever the margin: it favours no side.
    """
    label = jnp.asarray(label, margin.dtype)
    agree = jnp.where(label > 0.5, margin > 0, margin < 0).astype(margin.dtype)
    return jnp.where(label == 0.5, 0.5, agree)
