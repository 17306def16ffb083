"""Placing NNX models on a mesh from the logical axis names in their parameter metadata.

Every ``nnx.Variable`` of the models here carries ``out_sharding`` = a tuple of logical names
("vocab", "embed", ...). ``state_shardings`` resolves them with a rules table of
``alignment.parallel`` (mesh axes that do not divide a dimension are dropped for it), and
``shard_model`` / ``create_sharded`` put the parameters there.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from alignment.parallel import DEFAULT_RULES, logical_sharding


def _is_variable(x) -> bool:
    return isinstance(x, nnx.Variable)


def variable_sharding(var: nnx.Variable, mesh: Mesh, rules=DEFAULT_RULES) -> NamedSharding:
    """The ``NamedSharding`` of one variable; replicated when it has no logical names."""
    axes = var.get_metadata().get("out_sharding")
    if not axes:
        return NamedSharding(mesh, PartitionSpec())
    return logical_sharding(mesh, axes, rules, shape=var.shape)


def state_shardings(state: nnx.State, mesh: Mesh, rules=DEFAULT_RULES) -> nnx.State:
    """A ``State`` of the same structure whose leaves are ``NamedSharding``s."""
    return jax.tree.map(lambda v: v.replace(variable_sharding(v, mesh, rules)), state, is_leaf=_is_variable)


def abstract_state(state: nnx.State, mesh: Mesh, rules=DEFAULT_RULES) -> nnx.State:
    """``ShapeDtypeStruct`` leaves carrying their target sharding (a restore or compile target)."""
    return jax.tree.map(
        lambda v: v.replace(jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=variable_sharding(v, mesh, rules))),
        state,
        is_leaf=_is_variable,
    )


def shard_model(model: nnx.Module, mesh: Mesh, rules=DEFAULT_RULES) -> nnx.Module:
    """Moves every variable of ``model`` to its mesh sharding, in place; returns the model."""
    state = nnx.state(model)
    nnx.update(model, jax.device_put(state, state_shardings(state, mesh, rules)))
    return model


def create_sharded(factory: Callable[[], nnx.Module], mesh: Mesh, rules=DEFAULT_RULES) -> nnx.Module:
    """Builds ``factory()`` with each parameter initialised directly in its shard (no host copy).

    ``factory`` is e.g. ``lambda: Decoder(config, rngs=nnx.Rngs(0))``.
    """
    graphdef, abstract = nnx.split(nnx.eval_shape(factory))
    shardings = state_shardings(abstract, mesh, rules)

    state = jax.jit(lambda: nnx.state(factory()), out_shardings=shardings)()
    return nnx.merge(graphdef, state)
