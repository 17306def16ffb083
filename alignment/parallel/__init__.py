"""Meshes over ("data", "fsdp", "model"), the logical-axis rules that map onto them, and runs
over several processes (``distributed``)."""

from alignment.parallel.distributed import from_host, initialize, is_primary, to_host
from alignment.parallel.mesh import MESH_AXES, make_mesh, resolve_mesh_shape
from alignment.parallel.rules import (
    DEFAULT_RULES,
    logical_sharding,
    logical_to_mesh_axes,
    with_logical_constraint,
)

__all__ = [
    "DEFAULT_RULES",
    "MESH_AXES",
    "from_host",
    "initialize",
    "is_primary",
    "logical_sharding",
    "logical_to_mesh_axes",
    "make_mesh",
    "resolve_mesh_shape",
    "to_host",
    "with_logical_constraint",
]
