"""On 8 simulated devices, utilities of data-sharded rewards equal the unsharded values and
keep the batch sharding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src.array import ArrayImpl
from jax.sharding import NamedSharding, PartitionSpec as P

from alignment import parallel, rewards

COMBINATIONS = [("lsc", "sum"), ("centered", "lsc_and"), ("identity", "weighted_sum"), ("centered", "softmin"), ("whiten", "min")]


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() == 8
    return parallel.make_mesh(data=8)


@pytest.mark.parametrize("transform, aggregator", COMBINATIONS)
def test_sharded_utility_matches_unsharded_and_keeps_sharding(mesh, transform, aggregator):
    key1, key2 = jax.random.split(jax.random.key(0))
    r = jax.random.normal(key1, (64, 2)) * 3
    ref = jax.random.normal(key2, (64, 2))
    weights = jnp.array([0.3, 0.7]) if aggregator == "weighted_sum" else None
    expected = rewards.utility(r, ref, transform, aggregator, weights)

    batch = NamedSharding(mesh, P("data"))
    r_sharded, ref_sharded = jax.device_put((r, ref), batch)
    eager = rewards.utility(r_sharded, ref_sharded, transform, aggregator, weights)
    jitted = jax.jit(lambda a, b: rewards.utility(a, b, transform, aggregator, weights))(r_sharded, ref_sharded)
    for out in (eager, jitted):
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
        assert out.sharding.is_equivalent_to(NamedSharding(mesh, P("data")), out.ndim), out.sharding


def test_sharded_reference_rewards_keep_prompt_sharding(mesh):
    base = jax.random.normal(jax.random.key(3), (16, 32))
    base_sharded = jax.device_put(base, NamedSharding(mesh, P("data", None)))
    for method in rewards.REFERENCES.names:
        eager = rewards.reference_rewards(base_sharded, method)
        jitted = jax.jit(lambda b: rewards.reference_rewards(b, method))(base_sharded)
        # A constant reference does not depend on the data: inside jit XLA replicates it.
        for out in (eager,) if method == "constant" else (eager, jitted):
            np.testing.assert_allclose(out, rewards.reference_rewards(base, method), rtol=1e-5)
            assert out.sharding.is_equivalent_to(NamedSharding(mesh, P("data")), 1), (method, out.sharding)


def test_eager_finiteness_checks_do_not_gather_sharded_inputs(mesh, monkeypatch):
    """Checking a sharded input copies single scalars to the host, never the array itself."""
    fetched = []
    value = ArrayImpl._value
    monkeypatch.setattr(ArrayImpl, "_value", property(lambda x: fetched.append(x.size) or value.fget(x)))
    batch = NamedSharding(mesh, P("data"))
    r, ref = jax.device_put((jnp.ones((64, 2)), jnp.zeros((64, 2))), batch)
    rewards.utility(r, ref)
    rewards.reference_rewards(jax.device_put(jnp.ones((16, 32)), batch))
    assert fetched and max(fetched) == 1, fetched
    with pytest.raises(ValueError, match="non-finite"):
        rewards.utility(r.at[3, 1].set(jnp.nan), ref)
    assert max(fetched) == 1, fetched
