"""Reward transforms: ``fn(reward, reference) -> utility``, elementwise over any leading shape.

``reward`` is a reward model's score r(x, y); ``reference`` is the per-prompt reference reward
r_ref(x) (see ``references.py``), broadcastable to ``reward``. The transform of Wang et al.
(arXiv 2402.00742) is ``lsc``; the others are baselines and ablations. Results have the
promoted dtype of the inputs (float32 stays float32, bfloat16 stays bfloat16).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alignment.rewards.registry import TRANSFORMS


@TRANSFORMS.register("identity")
def identity(reward: jax.Array, reference: jax.Array) -> jax.Array:
    """u = r: the raw reward, the standard-practice baseline. ``reference`` is not used."""
    del reference
    return jnp.asarray(reward)


@TRANSFORMS.register("centered")
def centered(reward: jax.Array, reference: jax.Array) -> jax.Array:
    """u = r - r_ref(x): removes the per-prompt constant left free by Bradley-Terry."""
    return jnp.asarray(reward) - reference


@TRANSFORMS.register("lsc")
def lsc(reward: jax.Array, reference: jax.Array) -> jax.Array:
    """u = log sigmoid(r - r_ref(x)) = log p(good | x, y), the log-sigmoid-centred transform.

    Computed as -softplus(r_ref - r), finite for any finite input (and bfloat16). u <= 0 and
    du/dr = sigmoid(r_ref - r): near 1 below the reference, near 0 far above it.
    """
    return jax.nn.log_sigmoid(centered(reward, reference))


@TRANSFORMS.register("whiten")
def whiten(reward: jax.Array, reference: jax.Array, axis: int = 0, eps: float = 1e-6) -> jax.Array:
    """u = (r - mean_B r) / (std_B r + eps): standardisation over a batch axis.

    A per-batch baseline (no per-prompt reference; ``reference`` is not used). ``axis=0``
    standardises over the batch; ``axis=-1`` on [prompts, K] rewards standardises within each
    prompt's group of K samples, as group-relative methods do.
    """
    del reference
    reward = jnp.asarray(reward)
    mean = jnp.mean(reward, axis=axis, keepdims=True)
    std = jnp.std(reward, axis=axis, keepdims=True)
    return (reward - mean) / (std + eps)


@TRANSFORMS.register("clip")
def clip(reward: jax.Array, reference: jax.Array, low: float = -5.0, high: float = 5.0) -> jax.Array:
    """u = clip(r - r_ref(x), low, high): the centred reward, clipped.

    ``high=0, low=-inf`` gives min(r - r_ref, 0), the hard (non-smooth) limit of ``lsc``;
    ``reference=0`` clips the raw reward as reward-clipping baselines do.
    """
    return jnp.clip(centered(reward, reference), low, high)
