"""The utility a learner maximises, as a config: a transform and an aggregator by name.

    U(x, y) = aggregate_i( transform(r_i(x, y), r_ref,i(x)) ; w )

``Utility()`` is the paper's choice for several properties, the logical AND
``sum_i log sigmoid(r_i - r_ref,i)`` (Wang et al., "Transforming and Combining Rewards for
Aligning Large Language Models", arXiv 2402.00742); ``Utility("identity", "sum")`` is the raw
sum baseline. Names and parameters are those of ``alignment.rewards`` (a misspelt name raises
an error listing the valid ones when the utility is built).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax

from alignment import rewards


@dataclasses.dataclass(frozen=True)
class Utility:
    """``transform`` and ``aggregator`` names (with keyword parameters) and per-property weights.

    Weights follow the order of ``properties`` given to ``__call__``, or are a
    ``{property: weight}`` mapping.
    """

    transform: str = "lsc"
    aggregator: str = "sum"
    transform_params: Mapping[str, float] = dataclasses.field(default_factory=dict)
    aggregator_params: Mapping[str, float] = dataclasses.field(default_factory=dict)
    weights: Mapping[str, float] | Sequence[float] | None = None

    def __post_init__(self):
        rewards.get_transform(self.transform, **self.transform_params)
        rewards.get_aggregator(self.aggregator, **self.aggregator_params)

    @property
    def needs_references(self) -> bool:
        """Whether the transform reads r_ref (every transform but ``identity`` does)."""
        return self.transform != "identity"

    def __call__(self, rewards_: jax.Array, references: jax.Array, properties: Sequence[str]) -> jax.Array:
        """``[B]`` utilities from rewards and references ``[B, P]`` (P properties in ``properties`` order)."""
        weights = self.weights
        if isinstance(weights, Mapping):
            missing = [p for p in properties if p not in weights]
            if missing or len(weights) != len(properties):
                raise ValueError(f"utility weights {dict(weights)} must name exactly the properties {list(properties)}")
            weights = [weights[p] for p in properties]
        return rewards.utility(
            rewards_, references,
            transform=rewards.get_transform(self.transform, **self.transform_params),
            aggregator=rewards.get_aggregator(self.aggregator, **self.aggregator_params),
            weights=weights,
        )
