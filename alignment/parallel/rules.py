"""Logical-axis rules: named array dimensions -> mesh axes, in the t5x manner.

Modules annotate every parameter and large activation with *logical* axis names ("batch",
"embed", "mlp", ...). One rules table maps those names to the physical mesh axes of
``alignment.parallel.mesh`` ("data", "fsdp", "model"). Changing the parallelism strategy is
a change of table, never of model code.

Resolution follows t5x / Flax semantics (``flax.linen.logical_to_mesh_axes``): rules are
tried in order, and a mesh axis already used by an earlier dimension of the same array is not
used again, so activations ``("batch", "length", "embed")`` shard the batch over
``("data", "fsdp")`` while weights ``("embed", "mlp")`` shard ``embed`` over ``fsdp``.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

LogicalAxes = Sequence[str | None]
Rules = Sequence[tuple[str, str | tuple[str, ...] | None]]

DEFAULT_RULES: Rules = (
    # Activations and data.
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("samples", None),  # K responses per prompt
    ("properties", None),  # one entry per reward model / property
    # Parameters.
    ("vocab", "model"),
    ("embed", "fsdp"),
    ("mlp", "model"),
    ("heads", "model"),
    ("kv_heads", "model"),
    ("head_dim", None),
    ("layers", None),  # the scanned layer axis
    ("norm", None),
    ("lora_rank", None),  # the inner width r of low-rank adapters
)


def logical_to_mesh_axes(
    logical_axes: LogicalAxes,
    rules: Rules = DEFAULT_RULES,
    *,
    shape: Sequence[int] | None = None,
    mesh: Mesh | None = None,
) -> PartitionSpec:
    """Maps logical dimension names to a ``PartitionSpec`` of mesh axes.

    With ``shape`` and ``mesh`` given, a mesh axis whose size does not divide its dimension is
    dropped for that dimension (the dimension is replicated over it instead): e.g. 3 KV heads on
    a 2-way ``model`` axis. Unknown logical names raise ``ValueError`` listing the known ones.
    """
    known = {name for name, _ in rules}
    unknown = [name for name in logical_axes if name is not None and name not in known]
    if unknown:
        raise ValueError(f"unknown logical axis names {unknown}; the rules know {sorted(known)}")
    spec = nn.logical_to_mesh_axes(tuple(logical_axes), tuple(rules))
    if shape is None:
        return spec
    if mesh is None:
        raise ValueError("pass the mesh together with the shape to check divisibility")
    if len(shape) != len(logical_axes):
        raise ValueError(f"shape {tuple(shape)} has {len(shape)} dims but logical axes {tuple(logical_axes)} name {len(logical_axes)}")
    return PartitionSpec(*(_dividing_axes(entry, dim, mesh) for entry, dim in zip(spec, shape)))


def _dividing_axes(entry, dim: int, mesh: Mesh):
    if entry is None:
        return None
    axes = (entry,) if isinstance(entry, str) else tuple(entry)
    kept, product = [], 1
    for axis in axes:
        if dim % (product * mesh.shape[axis]) == 0:
            kept.append(axis)
            product *= mesh.shape[axis]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else tuple(kept)


def logical_sharding(
    mesh: Mesh,
    logical_axes: LogicalAxes,
    rules: Rules = DEFAULT_RULES,
    *,
    shape: Sequence[int] | None = None,
) -> NamedSharding:
    """``NamedSharding`` on ``mesh`` for an array with the given logical dimension names."""
    return NamedSharding(mesh, logical_to_mesh_axes(logical_axes, rules, shape=shape, mesh=mesh if shape is not None else None))


def with_logical_constraint(x: jax.Array, logical_axes: LogicalAxes, rules: Rules = DEFAULT_RULES) -> jax.Array:
    """Sharding constraint on an activation from its logical axis names, inside ``jit``.

    Applies only under a mesh (``jax.set_mesh(mesh)``) and is the identity otherwise, so model
    code runs unchanged on one device. Mesh axes that do not divide a dimension are dropped
    for it (e.g. 9 heads on a 2-way "model" axis).
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, logical_to_mesh_axes(logical_axes, rules, shape=x.shape, mesh=mesh))
