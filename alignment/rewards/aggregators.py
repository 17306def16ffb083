"""Aggregators over the trailing property axis: ``fn(utilities, weights=None) -> [...]``.

``utilities`` has shape [..., P] (one entry per property / reward model); ``weights``, when
given, broadcasts to it (shape [P], or [..., P] for per-example weights). The logical AND of
Wang et al. (arXiv 2402.00742) is ``sum`` over LSC-transformed rewards, or equivalently ``lsc_and`` over centred ones.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alignment.rewards.registry import AGGREGATORS


def _check_weights(utilities: jax.Array, weights: jax.Array | None, name: str, *, required: bool) -> jax.Array | None:
    if weights is None:
        if required:
            raise ValueError(f"aggregator '{name}' needs weights of shape [P] or [..., P]")
        return None
    weights = jnp.asarray(weights, dtype=jnp.result_type(utilities))
    try:
        shape = jnp.broadcast_shapes(weights.shape, utilities.shape)
    except ValueError:
        shape = None
    if shape != utilities.shape or weights.ndim == 0:
        raise ValueError(
            f"aggregator '{name}': weights of shape {weights.shape} do not broadcast to utilities "
            f"of shape {utilities.shape}; pass one weight per property ([P]) or per example ([..., P])"
        )
    return weights


def _forbid_weights(weights, name: str) -> None:
    if weights is not None:
        raise ValueError(f"aggregator '{name}' takes no weights; use 'weighted_sum' or 'softmin' to weight properties")


@AGGREGATORS.register("sum")
def plain_sum(utilities: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """U = sum_i u_i. With LSC utilities this is the logical AND, log prod_i p(good_i)."""
    _forbid_weights(weights, "sum")
    return jnp.sum(utilities, axis=-1)


@AGGREGATORS.register("weighted_sum")
def weighted_sum(utilities: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """U = sum_i w_i u_i; with raw rewards, the usual multi-objective baseline."""
    weights = _check_weights(utilities, weights, "weighted_sum", required=True)
    return jnp.sum(weights * utilities, axis=-1)


@AGGREGATORS.register("lsc_and")
def lsc_and(centered_rewards: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """U = sum_i w_i log sigmoid(d_i) = log prod_i sigmoid(d_i)^w_i, d_i = r_i - r_ref,i.

    Takes *centred* rewards (transform "centered") and applies the stable log-sigmoid itself:
    log P(good on every property) under independent judgements (w_i = 1 by default).
    """
    terms = jax.nn.log_sigmoid(centered_rewards)
    weights = _check_weights(terms, weights, "lsc_and", required=False)
    return jnp.sum(terms if weights is None else weights * terms, axis=-1)


@AGGREGATORS.register("prob_mean")
def prob_mean(centered_rewards: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """U = log sum_i w_i sigmoid(d_i) / sum_i w_i: log of the mean probability of "good".

    An OR-like contrast to ``lsc_and`` (one good property suffices to score well). Takes
    centred rewards; computed as a logsumexp of log-sigmoids, so it is finite everywhere.
    """
    terms = jax.nn.log_sigmoid(centered_rewards)
    weights = _check_weights(terms, weights, "prob_mean", required=False)
    if weights is None:
        weights = jnp.ones_like(terms)
    total = jnp.sum(jnp.broadcast_to(weights, terms.shape), axis=-1)
    return jax.nn.logsumexp(terms, axis=-1, b=weights) - jnp.log(total)


@AGGREGATORS.register("min")
def minimum(utilities: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """U = min_i u_i: the worst property decides (with centred rewards, a hard AND)."""
    _forbid_weights(weights, "min")
    return jnp.min(utilities, axis=-1)


@AGGREGATORS.register("softmin")
def softmin(utilities: jax.Array, weights: jax.Array | None = None, temperature: float = 1.0) -> jax.Array:
    """U = -T log sum_i w_i exp(-u_i / T): a smooth minimum, -> min_i u_i as T -> 0.

    Unit weights give a value <= min_i u_i (by at most T log P); weights shift the
    properties' influence.
    """
    if temperature <= 0:
        raise ValueError(f"softmin temperature must be > 0, got {temperature}")
    weights = _check_weights(utilities, weights, "softmin", required=False)
    return -temperature * jax.nn.logsumexp(-utilities / temperature, axis=-1, b=weights)
