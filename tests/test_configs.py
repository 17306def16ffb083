"""The named utility configs build into working functions and take overrides."""

import fiddle as fdl
import jax.numpy as jnp
import numpy as np
import pytest

from alignment import rewards
from alignment.configs import utilities

CANDIDATES = {"helpful": jnp.array([1.0, 6.0]), "harmless": jnp.array([1.5, -2.0])}
REFERENCES = {"helpful": jnp.array([1.0]), "harmless": jnp.array([1.0])}


@pytest.mark.parametrize("name", ["lsc_and", "raw_sum", "min_centered", "prob_mean"])
def test_named_utilities_build_and_evaluate(name):
    fn = fdl.build(getattr(utilities, name)())
    assert fn(CANDIDATES, REFERENCES).shape == (2,)


def test_lsc_and_prefers_balance_and_raw_sum_the_trade():
    assert np.argmax(fdl.build(utilities.lsc_and())(CANDIDATES, REFERENCES)) == 0
    assert np.argmax(fdl.build(utilities.raw_sum())(CANDIDATES, REFERENCES)) == 1


def test_overrides_change_the_experiment():
    config = utilities.raw_weighted_sum({"helpful": 1.0, "harmless": 4.0})
    assert np.argmax(fdl.build(config)(CANDIDATES, REFERENCES)) == 0
    config = utilities.lsc_and()
    config.transform = "centered"
    config.aggregator = "lsc_and"
    np.testing.assert_allclose(fdl.build(config)(CANDIDATES, REFERENCES), fdl.build(utilities.lsc_and())(CANDIDATES, REFERENCES), rtol=1e-6)


@pytest.mark.parametrize("method", rewards.REFERENCES.names)
def test_reference_configs(method):
    base = jnp.arange(20.0).reshape(2, 10)
    assert fdl.build(utilities.reference(method))(base).shape == (2,)
    if method == "empirical":
        np.testing.assert_allclose(fdl.build(utilities.reference(quantile=0.5))(base), np.quantile(base, 0.5, axis=-1))
