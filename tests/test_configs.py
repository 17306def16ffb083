"""The named utility configs build into the utilities runs optimise and take overrides."""

import fiddle as fdl
import jax.numpy as jnp
import numpy as np
import pytest

from alignment import rewards, rl
from alignment.configs import utilities
from alignment.experiment import RunSpec

PROPERTIES = ("helpful", "harmless")
CANDIDATES = jnp.array([[1.0, 1.5], [6.0, -2.0]])  # [responses, properties]
REFERENCES = jnp.ones((2, 2))


def _evaluate(config, group_size=None):
    return fdl.build(config)(CANDIDATES, REFERENCES, PROPERTIES, group_size)


@pytest.mark.parametrize("name", ["lsc_and", "raw_sum", "min_centered", "prob_mean", "group_normalized_sum"])
def test_named_utilities_build_into_run_utilities_and_evaluate(name):
    config = getattr(utilities, name)()
    assert isinstance(fdl.build(config), rl.Utility)
    assert _evaluate(config, group_size=2).shape == (2,)
    run = fdl.build(fdl.Config(RunSpec, name="r", label="r", utility=config))  # what a run optimises
    assert run.learner_config(rl.LearnerConfig()).utility == fdl.build(config)


def test_lsc_and_prefers_balance_and_raw_sum_the_trade():
    assert np.argmax(_evaluate(utilities.lsc_and())) == 0
    assert np.argmax(_evaluate(utilities.raw_sum())) == 1


def test_overrides_change_the_experiment():
    config = utilities.raw_weighted_sum({"helpful": 1.0, "harmless": 4.0})
    assert np.argmax(_evaluate(config)) == 0
    config = utilities.lsc_and()
    config.transform = "centered"
    config.aggregator = "lsc_and"
    np.testing.assert_allclose(_evaluate(config), _evaluate(utilities.lsc_and()), rtol=1e-6)


@pytest.mark.parametrize("method", rewards.REFERENCES.names)
def test_reference_configs(method):
    base = jnp.arange(20.0).reshape(2, 10)
    assert fdl.build(utilities.reference(method))(base).shape == (2,)
    if method == "empirical":
        np.testing.assert_allclose(fdl.build(utilities.reference(quantile=0.5))(base), np.quantile(base, 0.5, axis=-1))
