"""Bad input to the reward library gets an error that names what is wrong."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alignment import rewards


@pytest.mark.parametrize(
    "lookup, kind, valid",
    [
        (rewards.get_transform, "transform", "centered, clip, identity, lsc, whiten"),
        (rewards.get_aggregator, "aggregator", "lsc_and, min, prob_mean, softmin, sum, weighted_sum"),
        (rewards.get_reference, "reference", "constant, empirical, fixed_response, gaussian"),
    ],
)
def test_unknown_names_list_the_valid_ones(lookup, kind, valid):
    with pytest.raises(ValueError, match=f"unknown {kind} 'nope'; valid {kind}s: {valid}"):
        lookup("nope")


def test_unknown_names_in_utility_and_reference_rewards():
    with pytest.raises(ValueError, match="valid transforms"):
        rewards.utility(jnp.ones((2, 2)), 0.0, transform="raw")
    with pytest.raises(ValueError, match="valid aggregators"):
        rewards.utility(jnp.ones((2, 2)), 0.0, aggregator="and")
    with pytest.raises(ValueError, match="valid references"):
        rewards.reference_rewards(jnp.ones((2, 4)), method="median")


def test_mismatched_property_sets():
    r = {"helpful": jnp.ones(3), "harmless": jnp.ones(3)}
    with pytest.raises(ValueError, match=r"missing \['harmless'\], unexpected \['honest'\]"):
        rewards.utility(r, {"helpful": 0.0, "honest": 0.0})
    with pytest.raises(ValueError, match=r"weights must name the same properties"):
        rewards.utility(r, {"helpful": 0.0, "harmless": 0.0}, "identity", "weighted_sum", weights={"helpful": 1.0})
    with pytest.raises(ValueError, match="same shape"):
        rewards.utility({"helpful": jnp.ones(3), "harmless": jnp.ones(4)}, {"helpful": 0.0, "harmless": 0.0})
    with pytest.raises(ValueError, match="both as"):
        rewards.utility(r, jnp.zeros((3, 2)))


def test_wrong_ranks():
    # A reference still carrying its K base samples is refused, even when K happens to equal the batch.
    with pytest.raises(ValueError, match=r"references\['helpful'\] has shape \(4, 4\).*reference_rewards"):
        rewards.utility({"helpful": jnp.ones(4)}, {"helpful": jnp.ones((4, 4))})
    # [prompts] against [prompts, K] would broadcast along the wrong axis: refused.
    with pytest.raises(ValueError, match=r"shape \(3, 2\), incompatible with rewards of shape \(3, 3, 2\)"):
        rewards.utility(jnp.ones((3, 3, 2)), jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="trailing property axis"):
        rewards.utility(jnp.float32(1.0), 0.0)
    with pytest.raises(ValueError, match=r"shape \[\.\.\., K\]"):
        rewards.reference_rewards(jnp.float32(1.0))
    with pytest.raises(ValueError, match=r"weights of shape \(3,\) do not broadcast"):
        rewards.utility(jnp.ones((4, 2)), 0.0, "identity", "weighted_sum", weights=jnp.ones(3))


def test_weights_where_they_have_no_meaning():
    with pytest.raises(ValueError, match="'sum' takes no weights"):
        rewards.plain_sum(jnp.ones((2, 2)), jnp.ones(2))
    with pytest.raises(ValueError, match="'min' takes no weights"):
        rewards.minimum(jnp.ones((2, 2)), jnp.ones(2))
    with pytest.raises(ValueError, match="'weighted_sum' needs weights"):
        rewards.weighted_sum(jnp.ones((2, 2)))


def test_non_finite_rewards_are_named():
    r = np.ones((3, 2), np.float32)
    r[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"rewards has 1 non-finite values \(NaN or inf\); the first at index \(2, 1\)"):
        rewards.utility(r, 0.0)
    with pytest.raises(ValueError, match=r"references\['harmless'\] has 1 non-finite"):
        rewards.utility({"harmless": jnp.ones(2)}, {"harmless": jnp.array([0.0, jnp.inf])})


def test_bad_parameters():
    with pytest.raises(ValueError, match=r"quantile must be in \[0, 1\], got 1.5"):
        rewards.reference_rewards(jnp.ones((2, 4)), quantile=1.5)
    with pytest.raises(ValueError, match=r"in \(0, 1\), got 1.0"):
        rewards.reference_rewards(jnp.ones((2, 4)), "gaussian", quantile=1.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        rewards.softmin(jnp.ones((2, 2)), temperature=0.0)
    with pytest.raises(ValueError, match="already registered"):
        rewards.TRANSFORMS.register("lsc")(lambda r, ref: r)


def test_misspelt_parameters_are_refused_when_binding():
    with pytest.raises(ValueError, match=r"aggregator 'softmin' takes no parameter 'temp'; its parameters: utilities, weights, temperature"):
        rewards.get_aggregator("softmin", temp=0.5)
    with pytest.raises(ValueError, match=r"reference 'empirical' takes no parameter 'q'"):
        rewards.reference_rewards(jnp.ones((2, 4)), "empirical", q=0.5)
    assert rewards.get_aggregator("softmin", temperature=0.5)(jnp.zeros((1, 2))).shape == (1,)


@pytest.mark.parametrize("method", rewards.REFERENCES.names)
def test_non_finite_base_rewards_are_named(method):
    base = np.ones((3, 4), np.float32)
    base[1, 2] = np.nan
    with pytest.raises(ValueError, match=rf"reference '{method}': rewards has 1 non-finite values .* index \(1, 2\)"):
        rewards.reference_rewards(base, method)
    # Traced values cannot be inspected: inside jit the estimator runs unchecked.
    assert jax.jit(lambda b: rewards.reference_rewards(b, method))(np.ones((3, 4), np.float32)).shape == (3,)
