"""Mesh construction and logical-axis rules."""

import jax
import pytest
from jax.sharding import PartitionSpec as P

from alignment import parallel


def test_mesh_shapes_on_eight_devices():
    assert parallel.make_mesh().shape == {"data": 8, "fsdp": 1, "model": 1}
    assert parallel.make_mesh(data=2, fsdp=2, model=2).shape == {"data": 2, "fsdp": 2, "model": 2}
    assert parallel.make_mesh(data=1, fsdp=-1, model=2).shape == {"data": 1, "fsdp": 4, "model": 2}
    single = parallel.make_mesh(devices=jax.devices()[:1])
    assert single.shape == {"data": 1, "fsdp": 1, "model": 1}


@pytest.mark.parametrize(
    "sizes, message",
    [
        ({"data": 3}, "needs 3 devices but 8"),
        ({"data": -1, "fsdp": 3}, "not divisible"),
        ({"data": -1, "fsdp": -1}, "at most one -1"),
        ({"data": 0}, "must be positive"),
    ],
)
def test_bad_mesh_shapes_are_explained(sizes, message):
    with pytest.raises(ValueError, match=message):
        parallel.make_mesh(**sizes)


def test_rules_resolve_in_the_t5x_manner():
    assert parallel.logical_to_mesh_axes(("batch", "length", "embed")) == P(("data", "fsdp"), None, None)
    assert parallel.logical_to_mesh_axes(("embed", "mlp")) == P("fsdp", "model")
    assert parallel.logical_to_mesh_axes(("vocab", "embed")) == P("model", "fsdp")
    custom = (("batch", "data"), ("embed", "model"))
    assert parallel.logical_to_mesh_axes(("batch", "embed"), custom) == P("data", "model")


def test_non_dividing_mesh_axes_are_dropped_when_the_shape_is_known():
    mesh = parallel.make_mesh(data=2, fsdp=2, model=2)
    # 3 KV heads cannot be split 2 ways: replicated; 576 splits over fsdp.
    assert parallel.logical_to_mesh_axes(("embed", "kv_heads", "head_dim"), shape=(576, 3, 64), mesh=mesh) == P("fsdp", None, None)
    # A batch of 2 splits over data only.
    assert parallel.logical_sharding(mesh, ("batch", "length"), shape=(2, 7)).spec == P("data", None)


def test_unknown_logical_names_are_refused():
    with pytest.raises(ValueError, match=r"unknown logical axis names \['hidden'\]"):
        parallel.logical_to_mesh_axes(("batch", "hidden"))
