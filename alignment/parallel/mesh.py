"""Device meshes over the framework's three mesh axes.

* ``data``  -- pure data parallelism (replicated parameters, split batch);
* ``fsdp``  -- data parallelism with parameters and optimizer state sharded (ZeRO-3 style);
* ``model`` -- tensor parallelism inside layers (heads, MLP hidden units, vocabulary).

The same call builds a 1-device mesh on one CPU and the 8-device simulated CPU mesh of the
tests. It calls ``jax.make_mesh``, which on TPU orders devices by their physical torus
coordinates, and on several processes ``jax.devices()`` is the global device list once
``alignment.parallel.initialize`` has run. Tested: one process with simulated CPU devices, and
two processes of one CPU device each on one machine over 127.0.0.1 (``tests/test_multihost.py``,
a mesh spanning both). Not tested: TPU slices, and processes on separate machines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
from jax.sharding import AxisType, Mesh

MESH_AXES = ("data", "fsdp", "model")


def resolve_mesh_shape(num_devices: int, data: int = -1, fsdp: int = 1, model: int = 1) -> tuple[int, int, int]:
    """Returns ``(data, fsdp, model)`` with at most one ``-1`` replaced by the remaining devices.

    Raises ``ValueError`` naming the axes when the sizes do not multiply to ``num_devices``.
    """
    sizes = {"data": data, "fsdp": fsdp, "model": model}
    free = [name for name, size in sizes.items() if size == -1]
    bad = [f"{name}={size}" for name, size in sizes.items() if size != -1 and size < 1]
    if bad or len(free) > 1:
        raise ValueError(
            f"mesh axis sizes must be positive, with at most one -1 (meaning 'the remaining "
            f"devices'); got {sizes}"
        )
    fixed = math.prod(size for size in sizes.values() if size != -1)
    if free:
        if num_devices % fixed:
            raise ValueError(
                f"cannot fill mesh axis '{free[0]}': {num_devices} devices are not divisible by "
                f"the product {fixed} of the other axes {sizes}"
            )
        sizes[free[0]] = num_devices // fixed
    if math.prod(sizes.values()) != num_devices:
        raise ValueError(
            f"mesh shape {sizes} needs {math.prod(sizes.values())} devices but {num_devices} are "
            f"available; use -1 for one axis to take the remaining devices"
        )
    return sizes["data"], sizes["fsdp"], sizes["model"]


def make_mesh(
    data: int = -1,
    fsdp: int = 1,
    model: int = 1,
    *,
    devices: Sequence[jax.Device] | None = None,
    axis_type: AxisType = AxisType.Auto,
) -> Mesh:
    """Builds a ``Mesh`` with axes ``("data", "fsdp", "model")`` over ``devices``.

    Args:
      data, fsdp, model: axis sizes; one of them may be -1 to take all remaining devices.
        The default puts every device on ``data``.
      devices: the devices to use (default: all global devices, ``jax.devices()``).
      axis_type: ``AxisType.Auto`` (default) lets XLA propagate shardings through jit, the
        classic GSPMD behaviour that the logical-axis rules assume; ``AxisType.Explicit`` puts
        shardings in the types.
    """
    devices = list(jax.devices() if devices is None else devices)
    shape = resolve_mesh_shape(len(devices), data, fsdp, model)
    return jax.make_mesh(shape, MESH_AXES, axis_types=(axis_type,) * len(MESH_AXES), devices=devices)
