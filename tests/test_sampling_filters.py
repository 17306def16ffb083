"""Logit filters and the per-token sampler: top-k, top-p, temperature, greedy (no model needed)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from alignment.sampling import (
    categorical,
    first_argmax,
    SamplingParams,
    filter_logits,
    sample_logits,
    token_logprobs,
    top_k_logits,
    top_p_logits,
)

VOCAB = 12
logit_rows = hnp.arrays(np.float32, (3, VOCAB), elements=st.floats(-8, 8, width=32))


@settings(max_examples=40, deadline=None)
@given(logits=logit_rows, k=st.integers(1, VOCAB))
def test_top_k_keeps_exactly_k_largest(logits, k):
    kept = np.isfinite(np.asarray(top_k_logits(jnp.asarray(logits), k)))
    assert (kept.sum(-1) == k).all()
    for row, mask in zip(logits, kept):
        assert row[mask].min() >= row[~mask].max(initial=-np.inf)


@settings(max_examples=40, deadline=None)
@given(logits=logit_rows, p=st.floats(0.01, 1.0))
def test_top_p_keeps_smallest_set_with_mass_at_least_p(logits, p):
    out = np.asarray(top_p_logits(jnp.asarray(logits), p))
    probs = np.asarray(jax.nn.softmax(jnp.asarray(logits), axis=-1), np.float64)
    for row, prob in zip(out, probs):
        kept = np.isfinite(row)
        # The kept tokens are the most likely ones ...
        assert prob[kept].min() >= prob[~kept].max(initial=0.0)
        # ... their mass reaches p, and dropping the least likely of them falls below p.
        mass = prob[kept].sum()
        assert mass >= p - 1e-5
        assert mass - prob[kept].min() < p + 1e-5


def test_top_p_one_keeps_everything_and_tiny_p_keeps_the_argmax():
    logits = jnp.array([[0.0, 2.0, 1.0, -1.0]])
    assert np.isfinite(top_p_logits(logits, 1.0)).all()
    np.testing.assert_array_equal(np.isfinite(top_p_logits(logits, 1e-6)), [[False, True, False, False]])


def test_top_k_then_top_p_renormalises_over_the_top_k():
    # softmax over the top-2 of [3, 3, 0, ...] is (0.5, 0.5): p=0.5 keeps one token, p=0.6 both.
    logits = jnp.array([3.0, 3.0, 0.0, 0.0, 0.0])
    kept = lambda p: np.isfinite(filter_logits(logits, SamplingParams(top_k=2, top_p=p))).sum()
    assert kept(0.5) == 1
    assert kept(0.6) == 2


@settings(max_examples=30, deadline=None)
@given(
    # Distinct logits at least 0.25 apart: at T = 1e-4 the runner-up is e^-2500 times less likely.
    logits=hnp.arrays(np.float32, (4, VOCAB), elements=st.integers(-40, 40).map(lambda i: i / 4), unique=True),
    seed=st.integers(0, 2**31 - 1),
)
def test_low_temperature_sampling_equals_greedy(logits, seed):
    logits = jnp.asarray(logits)
    greedy, greedy_lp, greedy_model_lp = sample_logits(None, logits, SamplingParams(temperature=0.0))
    cold, _, cold_model_lp = sample_logits(jax.random.key(seed), logits, SamplingParams(temperature=1e-4))
    np.testing.assert_array_equal(greedy, jnp.argmax(logits, -1))
    np.testing.assert_array_equal(cold, greedy)
    np.testing.assert_array_equal(greedy_lp, 0.0)
    np.testing.assert_allclose(cold_model_lp, greedy_model_lp)
    flagged, _, _ = sample_logits(None, logits, SamplingParams(temperature=5.0, greedy=True))
    np.testing.assert_array_equal(flagged, greedy)


@pytest.mark.parametrize(
    "params",
    [SamplingParams(), SamplingParams(temperature=0.7, top_k=5), SamplingParams(top_p=0.8), SamplingParams(temperature=1.3, top_k=6, top_p=0.9)],
)
def test_sampled_tokens_survive_filters_and_logprobs_match_recompute(params):
    logits = jax.random.normal(jax.random.key(0), (64, VOCAB)) * 2.0
    tokens, sampling_lp, model_lp = jax.jit(sample_logits, static_argnums=2)(jax.random.key(1), logits, params)
    assert np.isfinite(sampling_lp).all()
    want_sampling, want_model = token_logprobs(logits, tokens, params)
    np.testing.assert_allclose(sampling_lp, want_sampling, atol=1e-5)
    np.testing.assert_allclose(model_lp, want_model, atol=1e-5)
    # Same key, same draw.
    again, _, _ = sample_logits(jax.random.key(1), logits, params)
    np.testing.assert_array_equal(tokens, again)


def test_sample_frequencies_follow_the_filtered_distribution():
    logits = jnp.log(jnp.array([0.5, 0.3, 0.15, 0.05]))
    params = SamplingParams(top_p=0.75)  # keeps {0, 1}: renormalised to (0.625, 0.375)
    keys = jax.random.split(jax.random.key(0), 4000)
    tokens, _, _ = jax.vmap(lambda key: sample_logits(key, logits, params))(keys)
    freq = np.bincount(np.asarray(tokens), minlength=4) / len(keys)
    np.testing.assert_allclose(freq, [0.625, 0.375, 0.0, 0.0], atol=0.03)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"temperature": -1.0}, "temperature"), ({"top_k": 0}, "top_k"), ({"top_k": 2.5}, "top_k"), ({"top_p": 0.0}, "top_p"), ({"top_p": 1.5}, "top_p")],
)
def test_bad_parameters_raise_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SamplingParams(**kwargs)


def test_top_k_larger_than_vocabulary_raises():
    with pytest.raises(ValueError, match="top_k"):
        filter_logits(jnp.zeros((2, 4)), SamplingParams(top_k=5))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rows=st.integers(1, 5), vocab=st.integers(1, 40))
def test_categorical_draws_jax_random_categoricals_tokens_and_first_argmax_is_argmax(seed, rows, vocab):
    rng = np.random.default_rng(seed)
    logits = np.round(rng.normal(size=(rows, vocab)), 1).astype(np.float32)  # rounded: ties occur
    logits[rng.random(logits.shape) < 0.2] = -np.inf
    logits[:, rng.integers(vocab)] = 0.0  # every row has a finite entry
    key = jax.random.key(seed)
    np.testing.assert_array_equal(categorical(key, jnp.asarray(logits)), jax.random.categorical(key, jnp.asarray(logits), axis=-1))
    np.testing.assert_array_equal(first_argmax(jnp.asarray(logits)), np.argmax(logits, axis=-1))
