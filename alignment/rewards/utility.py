"""The one-call utility: transform each property's reward, then aggregate over properties.

    U(x, y) = aggregate_i( transform(r_i(x, y), r_ref,i(x)) ; w )

The choice of Wang et al. (arXiv 2402.00742) for "helpful AND harmless" is ``transform="lsc", aggregator="sum"``:
U = sum_i log sigmoid(r_i - r_ref,i) = log P(good on every property). The raw baseline is
``transform="identity", aggregator="sum"`` (or ``"weighted_sum"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from alignment.rewards.checks import check_finite
from alignment.rewards.registry import AGGREGATORS, TRANSFORMS

ArrayLike = jax.Array | np.ndarray | float
ByProperty = Mapping[str, ArrayLike] | ArrayLike


def utility(
    rewards_by_property: ByProperty,
    references_by_property: ByProperty,
    transform: str | Callable = "lsc",
    aggregator: str | Callable = "sum",
    weights: Mapping[str, float] | Sequence[float] | ArrayLike | None = None,
) -> jax.Array:
    """One utility per response, shape [...].

    Args:
      rewards_by_property: ``{property: rewards [...]}``, or one array [..., P] whose trailing
        axis holds the P properties.
      references_by_property: the reference rewards in the same form (same property names, or
        trailing size P). Each reference has the rank of its rewards with every dimension equal
        or 1 (e.g. [prompts, 1] against [prompts, K] rewards), or is a scalar.
      transform: a name from ``rewards.TRANSFORMS`` or a ``fn(reward, reference)``.
      aggregator: a name from ``rewards.AGGREGATORS`` or a ``fn(utilities, weights)``.
      weights: per-property weights: ``{property: w}``, a length-P sequence, [P] or [..., P].

    Raises ``ValueError`` for unknown names, mismatched property sets, incompatible shapes and
    (for concrete, non-traced inputs) non-finite rewards or references.
    """
    transform_fn = TRANSFORMS.resolve(transform)
    aggregate_fn = AGGREGATORS.resolve(aggregator)
    rewards, references, weights = _as_property_arrays(rewards_by_property, references_by_property, weights)
    return aggregate_fn(transform_fn(rewards, references), weights)


def _as_property_arrays(rewards, references, weights):
    """Validates and returns (rewards [..., P], references broadcastable to it, weights)."""
    if isinstance(rewards, Mapping) or isinstance(references, Mapping):
        if not (isinstance(rewards, Mapping) and isinstance(references, Mapping)):
            raise ValueError("pass rewards and references both as {property: array} mappings, or both as [..., P] arrays")
        names = list(rewards)
        _check_same_names(names, references, "references")
        reward_arrays = [check_finite(jnp.asarray(rewards[name]), f"rewards[{name!r}]") for name in names]
        shapes = {name: r.shape for name, r in zip(names, reward_arrays)}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"all properties' rewards must have the same shape, got {shapes}")
        shape = reward_arrays[0].shape
        reference_arrays = []
        for name in names:
            reference = check_finite(jnp.asarray(references[name]), f"references[{name!r}]")
            _check_reference_shape(reference.shape, shape, f"references[{name!r}]")
            reference_arrays.append(jnp.broadcast_to(reference, shape))
        if isinstance(weights, Mapping):
            _check_same_names(names, weights, "weights")
            weights = [weights[name] for name in names]
        return jnp.stack(reward_arrays, axis=-1), jnp.stack(reference_arrays, axis=-1), _weights_array(weights)

    rewards = check_finite(jnp.asarray(rewards), "rewards")
    references = check_finite(jnp.asarray(references), "references")
    if rewards.ndim == 0:
        raise ValueError("rewards must have a trailing property axis [..., P]; got a scalar")
    _check_reference_shape(references.shape, rewards.shape, "references")
    if isinstance(weights, Mapping):
        raise ValueError("weights by property name need rewards and references given by property name too")
    return rewards, references, _weights_array(weights)


def _weights_array(weights):
    return None if weights is None else jnp.asarray(weights)


def _check_same_names(names: list[str], other: Mapping, what: str) -> None:
    missing = [n for n in names if n not in other]
    extra = [n for n in other if n not in names]
    if missing or extra:
        raise ValueError(
            f"{what} must name the same properties as the rewards {names}: missing {missing}, unexpected {extra}"
        )


def _check_reference_shape(reference_shape: tuple, reward_shape: tuple, what: str) -> None:
    if reference_shape == ():
        return
    compatible = len(reference_shape) == len(reward_shape) and all(
        ref in (1, rew) for ref, rew in zip(reference_shape, reward_shape)
    )
    if not compatible:
        raise ValueError(
            f"{what} has shape {reference_shape}, incompatible with rewards of shape {reward_shape}: a reference "
            f"needs the rewards' rank with each dimension equal or 1 (e.g. [prompts, 1] for [prompts, K] rewards), "
            f"or to be a scalar; reduce base-policy samples [..., K] with reference_rewards() first"
        )
