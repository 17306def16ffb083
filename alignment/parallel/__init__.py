"""Meshes over ("data", "fsdp", "model") and the logical-axis rules that map onto them."""

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
    "logical_sharding",
    "logical_to_mesh_axes",
    "make_mesh",
    "resolve_mesh_shape",
    "with_logical_constraint",
]
