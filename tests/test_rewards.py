"""Properties of the reward library: the paper's formulas, numerics, dtypes, jit and vmap."""

import statistics

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from alignment import rewards

FINITE = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, width=32)
MODERATE = st.floats(min_value=-30.0, max_value=30.0, allow_nan=False, width=32)
settings.register_profile("rewards", max_examples=60, deadline=None)
settings.load_profile("rewards")


@given(FINITE, FINITE)
def test_lsc_is_a_log_probability(reward, reference):
    assert float(rewards.lsc(jnp.float32(reward), jnp.float32(reference))) <= 0.0


@given(FINITE, FINITE, FINITE)
def test_lsc_is_monotone_in_reward(r1, r2, reference):
    low, high = sorted((r1, r2))
    assert rewards.lsc(jnp.float32(low), reference) <= rewards.lsc(jnp.float32(high), reference)


@given(FINITE, FINITE)
def test_lsc_gradient_is_sigmoid_of_reference_minus_reward(reward, reference):
    grad = jax.grad(rewards.lsc)(jnp.float32(reward), jnp.float32(reference))
    expected = jax.nn.sigmoid(jnp.float32(reference) - jnp.float32(reward))
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)


@given(st.lists(MODERATE, min_size=1, max_size=6))
def test_lsc_and_is_log_prod_sigmoid(centered_rewards):
    d = np.asarray(centered_rewards, dtype=np.float64)
    expected = np.log(np.prod(1.0 / (1.0 + np.exp(-d))))
    np.testing.assert_allclose(rewards.lsc_and(jnp.asarray(d, jnp.float32)), expected, rtol=1e-5, atol=1e-5)


@given(st.lists(MODERATE, min_size=2, max_size=4))
def test_sum_of_lsc_terms_equals_lsc_and_of_centred(values):
    r = jnp.asarray(values, jnp.float32)
    ref = jnp.asarray(values[::-1], jnp.float32)
    np.testing.assert_allclose(
        rewards.utility(r, ref, "lsc", "sum"), rewards.utility(r, ref, "centered", "lsc_and"), rtol=1e-6, atol=1e-6
    )


@given(FINITE, FINITE, st.floats(min_value=-100, max_value=100, width=32))
def test_centered_is_shift_equivariant(reward, reference, shift):
    base = rewards.centered(jnp.float32(reward), jnp.float32(reference))
    np.testing.assert_allclose(rewards.centered(jnp.float32(reward) + shift, reference), base + jnp.float32(shift), rtol=1e-5, atol=1e-2)
    # A per-prompt constant added to both (the BT ambiguity) leaves it unchanged.
    np.testing.assert_allclose(
        rewards.centered(jnp.float32(reward) + shift, jnp.float32(reference) + shift), base, rtol=1e-5, atol=1e-2
    )


@given(st.integers(1, 40), st.sampled_from([0.0, 0.5, 0.85, 0.95, 1.0]), st.integers(0, 2**31 - 1))
def test_empirical_reference_matches_numpy_quantile(k, quantile, seed):
    base = np.random.default_rng(seed).normal(size=(3, k)).astype(np.float32)
    np.testing.assert_allclose(
        rewards.reference_rewards(base, "empirical", quantile=quantile), np.quantile(base, quantile, axis=-1), rtol=1e-5, atol=1e-6
    )


@given(st.integers(2, 64), st.sampled_from([0.5, 0.85, 0.95]), st.integers(0, 2**31 - 1))
def test_gaussian_reference_matches_a_gaussian_fit(k, quantile, seed):
    base = np.random.default_rng(seed).normal(2.0, 3.0, size=(k,))
    fit = statistics.NormalDist(np.mean(base), np.std(base))  # maximum-likelihood fit
    np.testing.assert_allclose(rewards.reference_rewards(base.astype(np.float32), "gaussian", quantile=quantile), fit.inv_cdf(quantile), rtol=1e-4, atol=1e-4)


def test_default_reference_is_the_85th_percentile():
    base = jnp.arange(101.0)
    assert float(rewards.reference_rewards(base)) == pytest.approx(85.0)


def test_fixed_response_and_constant_references():
    refusal = jnp.array([[1.5], [-0.5]])
    np.testing.assert_array_equal(rewards.reference_rewards(refusal, "fixed_response"), [1.5, -0.5])
    np.testing.assert_allclose(rewards.reference_rewards(jnp.array([[1.0, 3.0]]), "fixed_response"), [2.0])
    np.testing.assert_array_equal(rewards.reference_rewards(jnp.ones((2, 5)), "constant", value=0.7), np.full(2, 0.7, np.float32))


@pytest.mark.parametrize("name", rewards.TRANSFORMS.names)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_transforms_keep_dtype_and_stay_finite_far_from_the_reference(name, dtype):
    reward = jnp.array([1e4, -1e4, 0.0, 3.0], dtype)
    reference = jnp.zeros(4, dtype)
    fn = rewards.get_transform(name)
    out = fn(reward, reference)
    assert out.dtype == dtype and out.shape == reward.shape
    assert bool(jnp.all(jnp.isfinite(out)))
    grad = jax.grad(lambda r: jnp.sum(fn(r, reference).astype(jnp.float32)))(reward)
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_lsc_far_from_the_reference_is_exact():
    out = rewards.lsc(jnp.array([-1e4, 1e4]), 0.0)
    np.testing.assert_allclose(out, [-1e4, 0.0])
    out16 = rewards.lsc(jnp.array([-1e4, 1e4], jnp.bfloat16), jnp.bfloat16(0))
    np.testing.assert_allclose(out16.astype(jnp.float32), [-1e4, 0.0], rtol=1e-2)


AGGREGATOR_WEIGHTS = {"weighted_sum": jnp.array([1.0, 2.0])}


@pytest.mark.parametrize("name", rewards.AGGREGATORS.names)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_aggregators_keep_dtype_and_stay_finite(name, dtype):
    utilities = jnp.array([[1e4, -1e4], [0.0, 2.0], [-1e4, -1e4]], dtype)
    out = rewards.get_aggregator(name)(utilities, AGGREGATOR_WEIGHTS.get(name))
    assert out.dtype == dtype and out.shape == (3,)
    assert bool(jnp.all(jnp.isfinite(out)))


@pytest.mark.parametrize("name", rewards.REFERENCES.names)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_references_keep_dtype_and_leading_shape(name, dtype):
    base = jax.random.normal(jax.random.key(0), (2, 3, 16), dtype)
    out = rewards.reference_rewards(base, name)
    assert out.dtype == dtype and out.shape == (2, 3)


def test_aggregator_values():
    u = jnp.array([[-1.0, -3.0]])
    np.testing.assert_allclose(rewards.plain_sum(u), [-4.0])
    np.testing.assert_allclose(rewards.weighted_sum(u, jnp.array([2.0, 0.5])), [-3.5])
    np.testing.assert_allclose(rewards.minimum(u), [-3.0])
    # softmin -> min as the temperature -> 0, and is below the min for unit weights.
    np.testing.assert_allclose(rewards.softmin(u, temperature=1e-3), [-3.0], atol=1e-2)
    assert float(rewards.softmin(u, temperature=1.0)[0]) < -3.0
    # prob_mean is the log of the mean sigmoid.
    expected = np.log(np.mean(1 / (1 + np.exp([1.0, 3.0]))))
    np.testing.assert_allclose(rewards.prob_mean(u), [expected], rtol=1e-6)
    np.testing.assert_allclose(rewards.lsc_and(u, jnp.array([1.0, 0.0])), jax.nn.log_sigmoid(-1.0)[None], rtol=1e-6)


def test_lsc_and_is_dominated_by_the_worst_property():
    """AND: trading a large gain on one property for a loss on the other lowers U_AND."""
    balanced = jnp.array([1.0, 1.0])
    traded = jnp.array([10.0, -7.0])
    assert rewards.plain_sum(traded) > rewards.plain_sum(balanced)  # the raw sum prefers the trade
    assert rewards.lsc_and(traded) < rewards.lsc_and(balanced)  # the AND does not


def test_whiten_standardises_over_the_chosen_axis():
    x = jax.random.normal(jax.random.key(1), (64, 4)) * 5 + 3
    out = rewards.whiten(x, None)
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(0), 1.0, atol=1e-4)
    np.testing.assert_allclose(rewards.whiten(x, None, axis=-1).mean(-1), 0.0, atol=1e-5)


def test_clip_bounds_the_centred_reward_and_has_a_hinge_limit():
    np.testing.assert_allclose(rewards.clip(jnp.array([10.0, -10.0, 1.0]), 1.0), [5.0, -5.0, 0.0])
    hinge = rewards.get_transform("clip", low=-jnp.inf, high=0.0)
    np.testing.assert_allclose(hinge(jnp.array([3.0, -2.0]), 1.0), [0.0, -3.0])


def test_utility_is_jittable_and_vmappable():
    key1, key2 = jax.random.split(jax.random.key(2))
    r = jax.random.normal(key1, (5, 8, 2))
    ref = jax.random.normal(key2, (5, 1, 2))
    eager = rewards.utility(r, ref, "lsc", "sum")
    jitted = jax.jit(rewards.utility, static_argnames=("transform", "aggregator"))(r, ref, transform="lsc", aggregator="sum")
    vmapped = jax.vmap(lambda a, b: rewards.utility(a, b, "lsc", "sum"))(r, ref)
    assert eager.shape == (5, 8)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6)
    np.testing.assert_allclose(vmapped, eager, rtol=1e-6)
    refs = jax.jit(jax.vmap(lambda b: rewards.reference_rewards(b, "gaussian")))(r[..., 0])
    np.testing.assert_allclose(refs, rewards.reference_rewards(r[..., 0], "gaussian"), rtol=1e-5)


def test_utility_by_property_name_matches_the_array_form():
    r = {"helpful": jnp.array([[1.0, 2.0]]), "harmless": jnp.array([[-1.0, 0.5]])}
    ref = {"harmless": jnp.array([[0.0]]), "helpful": 1.5}
    by_name = rewards.utility(r, ref, "identity", "weighted_sum", weights={"harmless": 3.0, "helpful": 1.0})
    np.testing.assert_allclose(by_name, [[1.0 * 1 + -1.0 * 3, 2.0 + 0.5 * 3]])
    stacked = rewards.utility(jnp.stack([r["helpful"], r["harmless"]], -1), jnp.stack([jnp.full((1, 1), 1.5), ref["harmless"]], -1), "lsc", "sum")
    np.testing.assert_allclose(rewards.utility(r, ref), stacked, rtol=1e-6)


def test_utility_accepts_bound_functions():
    u = rewards.utility(jnp.array([[1.0, -1.0]]), 0.0, "identity", rewards.get_aggregator("softmin", temperature=0.1))
    np.testing.assert_allclose(u, rewards.softmin(jnp.array([[1.0, -1.0]]), temperature=0.1))
