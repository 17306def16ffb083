"""The utility a learner maximises, as a config: a transform and an aggregator by name.

    U(x, y) = aggregate_i( transform(r_i(x, y), r_ref,i(x)) ; w )

``Utility()`` is the paper's choice for several properties, the logical AND
``sum_i log sigmoid(r_i - r_ref,i)`` (Wang et al., "Transforming and Combining Rewards for
Aligning Large Language Models", arXiv 2402.00742); ``Utility("identity", "sum")`` is the raw
sum baseline. Names and parameters are those of ``alignment.rewards`` (a misspelt name raises
an error listing the valid ones when the utility is built).

``normalize="group"`` first standardises each reward over the G samples of its prompt,
r_i <- (r_i - mean_G r_i) / (std_G r_i + eps), so that ``Utility("identity", "sum",
normalize="group")`` is the per-reward normalised sum that TRL, verl and NeMo-RL ship for
several rewards (each reward normalised within the group, then summed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

from alignment import rewards

NORMALIZATIONS = ("none", "group")
GROUP_EPS = 1e-6
REFERENCE_FREE_TRANSFORMS = ("identity", "whiten")  # the transforms that ignore r_ref


@dataclasses.dataclass(frozen=True)
class Utility:
    """``transform`` and ``aggregator`` names (with keyword parameters) and per-property weights
    (resolved by ``alignment.rewards.utility``).

    Weights follow the order of ``properties`` given to ``__call__``, or are a
    ``{property: weight}`` mapping. ``normalize``: "none", or "group" (module docstring).
    """

    transform: str = "lsc"
    aggregator: str = "sum"
    transform_params: Mapping[str, float] = dataclasses.field(default_factory=dict)
    aggregator_params: Mapping[str, float] = dataclasses.field(default_factory=dict)
    weights: Mapping[str, float] | Sequence[float] | None = None
    normalize: str = "none"

    def __post_init__(self):
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"unknown normalize {self.normalize!r}; valid: {', '.join(NORMALIZATIONS)}")
        rewards.get_transform(self.transform, **self.transform_params)
        rewards.get_aggregator(self.aggregator, **self.aggregator_params)

    @property
    def needs_references(self) -> bool:
        """Whether the transform reads r_ref (all but ``REFERENCE_FREE_TRANSFORMS`` do)."""
        return self.transform not in REFERENCE_FREE_TRANSFORMS

    def __call__(self, rewards_: jax.Array, references: jax.Array, properties: Sequence[str],
                 group_size: int | None = None) -> jax.Array:
        """``[B]`` utilities from rewards and references ``[B, P]`` (P properties in ``properties``
        order); ``group_size``: the G consecutive rows that share a prompt (``normalize="group"``)."""
        if self.normalize == "group":
            rewards_ = group_standardize(rewards_, group_size)
        # By property name, so that alignment.rewards resolves weights given by name (once, there).
        return rewards.utility(
            {p: rewards_[..., i] for i, p in enumerate(properties)}, {p: references[..., i] for i, p in enumerate(properties)},
            transform=rewards.get_transform(self.transform, **self.transform_params),
            aggregator=rewards.get_aggregator(self.aggregator, **self.aggregator_params),
            weights=self.weights,
        )


def group_standardize(rewards_: jax.Array, group_size: int | None) -> jax.Array:
    """``[B, P]`` rewards standardised within each run of ``group_size`` rows (one prompt's
    samples): (r - mean_G r) / (std_G r + eps), per property."""
    rewards_ = jnp.asarray(rewards_)
    if group_size is None or group_size < 2 or rewards_.shape[0] % group_size:
        raise ValueError(f"normalize='group' needs the group size G >= 2 dividing the batch of {rewards_.shape[0]} rows, got {group_size}")
    groups = rewards_.reshape(-1, group_size, *rewards_.shape[1:])
    mean, std = groups.mean(axis=1, keepdims=True), groups.std(axis=1, keepdims=True)
    return ((groups - mean) / (std + GROUP_EPS)).reshape(rewards_.shape)
