"""The learner's pure pieces against rlax and exact values: GAE, clipped surrogate, KL estimators,
RLOO and group-normalised advantages, gradient accumulation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import rlax
from flax import nnx

from alignment.rl import advantages, kl, losses
from alignment.training.steps import make_train_step


def test_gae_equals_rlax_per_row_on_random_inputs():
    rng = np.random.default_rng(0)
    batch, length = 6, 9
    rewards = rng.normal(size=(batch, length)).astype(np.float32)
    values = rng.normal(size=(batch, length)).astype(np.float32)
    lengths = np.array([9, 1, 5, 3, 9, 7])
    mask = np.arange(length)[None] < lengths[:, None]
    gamma, lam = 0.97, 0.9
    ours, returns = advantages.gae(jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(mask), gamma, lam)
    for b, n in enumerate(lengths):
        # rlax: r_t, discount_t at times 1..n, values at 0..n; the episode ends after token n-1.
        discounts = np.full(n, gamma, np.float32)
        discounts[-1] = 0.0
        expected = rlax.truncated_generalized_advantage_estimation(
            rewards[b, :n], discounts, lam, np.append(values[b, :n], 0.0).astype(np.float32)
        )
        np.testing.assert_allclose(ours[b, :n], expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(returns[b, :n], expected + values[b, :n], rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(ours)[~mask] == 0) and np.all(np.asarray(returns)[~mask] == 0)


def test_clipped_surrogate_equals_rlax():
    rng = np.random.default_rng(1)
    logp = rng.normal(size=64).astype(np.float32) * 0.3
    old = logp + rng.normal(size=64).astype(np.float32) * 0.3
    adv = rng.normal(size=64).astype(np.float32)
    ours, clipped = losses.clipped_surrogate(jnp.asarray(logp - old), jnp.asarray(adv), 0.2)
    expected = rlax.clipped_surrogate_pg_loss(np.exp(logp - old), adv, 0.2)
    np.testing.assert_allclose(ours.mean(), expected, rtol=1e-5)
    ratio = np.exp(logp - old)
    assert np.array_equal(np.asarray(clipped), np.minimum(ratio * adv, np.clip(ratio, 0.8, 1.2) * adv) < ratio * adv)
    # Gradient of the mean equals rlax's.
    grad = jax.grad(lambda lp: losses.clipped_surrogate(lp - jnp.asarray(old), jnp.asarray(adv), 0.2)[0].mean())(jnp.asarray(logp))
    grad_rlax = jax.grad(lambda lp: rlax.clipped_surrogate_pg_loss(jnp.exp(lp - old), jnp.asarray(adv), 0.2))(jnp.asarray(logp))
    np.testing.assert_allclose(grad, grad_rlax, rtol=1e-5, atol=1e-7)


def test_kl_estimators_are_unbiased_on_a_small_categorical():
    """E_{y ~ pi}[k1] = E[k3] = KL(pi || pi_0) exactly (expectations by enumeration), k3 >= 0."""
    pi = jax.nn.softmax(jnp.array([0.3, -1.0, 2.0, 0.1]))
    pi0 = jax.nn.softmax(jnp.array([1.0, 0.0, -0.5, 0.2]))
    exact = rlax.categorical_kl_divergence(jnp.log(pi), jnp.log(pi0))
    logp, logp0 = jnp.log(pi), jnp.log(pi0)
    np.testing.assert_allclose(jnp.sum(pi * kl.k1(logp, logp0)), exact, rtol=1e-5)
    np.testing.assert_allclose(jnp.sum(pi * kl.k3(logp, logp0)), exact, rtol=1e-5)
    assert jnp.all(kl.k3(logp, logp0) >= 0) and jnp.any(kl.k1(logp, logp0) < 0)
    np.testing.assert_allclose(kl.k2(logp, logp0), 0.5 * (logp - logp0) ** 2)


def test_adaptive_kl_coefficient_moves_towards_the_target():
    assert kl.adaptive_coefficient(jnp.float32(0.1), jnp.float32(12.0), 6.0, 100.0, 10) == pytest.approx(0.1 * 1.02)
    assert kl.adaptive_coefficient(jnp.float32(0.1), jnp.float32(3.0), 6.0, 100.0, 10) == pytest.approx(0.1 * 0.98)


def test_rloo_and_group_normalised_advantages():
    u = jnp.array([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 0.0, 0.0]])
    expected = np.array([u[0, i] - np.mean(np.delete(np.asarray(u[0]), i)) for i in range(4)])
    np.testing.assert_allclose(advantages.rloo(u)[0], expected, rtol=1e-6)
    np.testing.assert_allclose(advantages.rloo(u)[1], 0.0)
    grpo = advantages.group_normalized(u)
    np.testing.assert_allclose(grpo[0], (u[0] - 3.0) / (np.std(np.asarray(u[0])) + 1e-6), rtol=1e-5)
    np.testing.assert_allclose(grpo[1], 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        advantages.rloo(jnp.ones((3, 1)))


def test_token_logprobs_and_entropy_are_exact():
    logits = jnp.array([[[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]]])
    logp, entropy = losses.token_logprobs_and_entropy(logits, jnp.array([[2, 1]]))
    probs = jax.nn.softmax(logits, -1)
    np.testing.assert_allclose(logp, np.log([[probs[0, 0, 2], probs[0, 1, 1]]]), rtol=1e-6)
    np.testing.assert_allclose(entropy, -(probs * np.log(probs)).sum(-1), rtol=1e-6)


def test_value_loss_clips_pessimistically():
    v, old, ret = jnp.array([2.0, 0.0]), jnp.array([0.0, 0.0]), jnp.array([1.0, 1.0])
    # Row 0: unclipped (2-1)^2 = 1, clipped (0.2-1)^2 = 0.64 -> max 1. Row 1: both 1.
    np.testing.assert_allclose(losses.value_loss(v, old, ret, 0.2), [0.5, 0.5])
    np.testing.assert_allclose(losses.value_loss(jnp.array([0.5]), old[:1], ret[:1], 0.2), [0.5 * 0.8**2])


class _Linear(nnx.Module):
    def __init__(self):
        self.w = nnx.Param(jnp.arange(3.0))


def test_gradient_accumulation_equals_one_full_batch_step():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 3)), jnp.float32)

    def loss(model, batch, target):
        value = jnp.mean((batch @ model.w[...] - target) ** 2)
        return value, {"loss": value}

    results = []
    for microbatches in (1, 4):
        model = _Linear()
        optimizer = nnx.Optimizer(model, optax.adam(0.1), wrt=nnx.Param)
        metrics = make_train_step(loss, microbatches=microbatches)(model, optimizer, x, 1.0)
        results.append((np.asarray(model.w[...]), float(metrics["grad_norm"])))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-6)
    with pytest.raises(ValueError, match="not divisible"):
        make_train_step(loss, microbatches=3)(_Linear(), nnx.Optimizer(_Linear(), optax.sgd(0.1), wrt=nnx.Param), x, 1.0)


def test_only_transforms_that_read_r_ref_need_references():
    from alignment.rl import Utility

    assert Utility("lsc").needs_references and Utility("centered").needs_references and Utility("clip").needs_references
    assert not Utility("identity").needs_references and not Utility("whiten").needs_references
