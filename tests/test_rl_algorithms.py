"""The registered algorithms' pure pieces against exact values on small inputs, and against the
published formulas written out independently here (loops over rows and tokens in NumPy)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alignment import rl
from alignment.rl import algorithms as alg
from alignment.rl import losses

MASK = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], np.float32)
KL = np.array([[0.1, 0.2, 0.3, 0.0], [0.4, 0.5, 0.0, 0.0], [0.0, 0.1, 0.0, 0.2], [0.3, 0.0, 0.0, 0.0]], np.float32)
UTILITY = np.array([1.0, 3.0, 0.5, 2.5], np.float32)  # two prompts, G = 2


def _inputs(kl_coef=0.5):
    return alg.AdvantageInputs(jnp.asarray(UTILITY), jnp.asarray(KL), jnp.zeros_like(jnp.asarray(KL)), jnp.asarray(MASK),
                               jnp.float32(kl_coef))


def _config(algorithm, **overrides):
    fields = {"algorithm": algorithm, "num_samples": 2, "prompts_per_step": 2, "rollout": rl.RolloutConfig(max_new_tokens=4), **overrides}
    return rl.LearnerConfig(**fields)


def test_the_registry_lists_every_algorithm_and_names_the_valid_ones():
    # (the README's example registers one more in the process that runs it)
    assert set(rl.ALGORITHMS.names) >= {"dapo", "dr_grpo", "grpo", "gspo", "ppo", "reinforce_pp", "rloo"}
    assert rl.get_algorithm("ppo").critic and not any(rl.get_algorithm(n).critic for n in rl.ALGORITHMS.names if n != "ppo")
    with pytest.raises(ValueError, match="unknown algorithm 'reinforce'; valid algorithms: dapo, dr_grpo, grpo, gspo, ppo, reinforce_pp, rloo"):
        rl.LearnerConfig(algorithm="reinforce")
    with pytest.raises(ValueError, match="unknown aggregation 'mean'; valid: token_mean, sequence_mean, constant"):
        rl.Algorithm("mine", alg.gae_estimate, aggregation="mean")
    with pytest.raises(ValueError, match="algorithm 'rloo' is already registered"):
        rl.register(rl.Algorithm("rloo", alg.gae_estimate))


@pytest.mark.parametrize("name", ["rloo", "grpo", "dr_grpo", "dapo", "gspo"])
def test_per_sequence_advantages(name):
    """s = u - beta sum_t k1_t, then the group estimator over each prompt's G = 2 samples, on every valid token."""
    scores = UTILITY - 0.5 * KL.sum(axis=1)
    expected = []
    for group in scores.reshape(2, 2):
        centred = group - group.mean()
        expected += list({"rloo": centred * 2 / (2 - 1), "dr_grpo": centred}.get(name, centred / (group.std() + 1e-6)))
    advantages, returns = _config(name).algorithm_spec.estimate(_inputs(), _config(name))
    np.testing.assert_allclose(advantages, np.asarray(expected)[:, None] * MASK, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(returns, 0.0)
    # With the KL in the loss the scores are the utilities themselves.
    in_loss = _config(name, kl=rl.KLConfig(placement="loss"))
    centred = (UTILITY.reshape(2, 2) - UTILITY.reshape(2, 2).mean(axis=1, keepdims=True)).reshape(-1)
    if name == "dr_grpo":
        np.testing.assert_allclose(in_loss.algorithm_spec.estimate(_inputs(), in_loss)[0], centred[:, None] * MASK, rtol=1e-6)


def test_reinforce_pp_returns_to_go_with_a_group_baseline_whitened_over_the_batch():
    """REINFORCE++ with a baseline (arXiv 2501.03262; OpenRLHF's "reinforce_baseline"): the
    reward ``u - mean_G u`` at the last token, ``-beta k1_t`` on every token, the sum to go, then
    (A - mean) / std over the batch's valid tokens."""
    beta, config = 0.5, _config("reinforce_pp")
    centred = (UTILITY.reshape(2, 2) - UTILITY.reshape(2, 2).mean(axis=1, keepdims=True)).reshape(-1)
    returns = np.zeros_like(MASK)
    for i, row in enumerate(MASK):
        n = int(row.sum())
        rewards = [-beta * KL[i, t] + (centred[i] if t == n - 1 else 0.0) for t in range(n)]
        for t in range(n):
            returns[i, t] = sum(rewards[t:])
    valid = returns[MASK > 0]
    expected = (returns - valid.mean()) / np.sqrt(valid.var() + 1e-8) * MASK
    advantages, _ = config.algorithm_spec.estimate(_inputs(beta), config)
    np.testing.assert_allclose(advantages, expected, rtol=1e-5, atol=1e-6)
    assert abs(float(jnp.sum(advantages * MASK))) < 1e-5  # whitened


def test_loss_weights_of_each_aggregation():
    mask = jnp.asarray(MASK)
    token = alg.loss_weights(rl.get_algorithm("dapo"), mask, 4)
    np.testing.assert_allclose(token, MASK / MASK.sum(), rtol=1e-6)
    sequence = np.asarray(alg.loss_weights(rl.get_algorithm("gspo"), mask, 4))
    np.testing.assert_allclose(sequence.sum(axis=1), 0.25, rtol=1e-6)  # every response alike
    np.testing.assert_allclose(sequence[1, :2], 1 / (2 * 4), rtol=1e-6)
    constant = alg.loss_weights(rl.get_algorithm("dr_grpo"), mask, 4)
    np.testing.assert_allclose(constant, MASK / (4 * 4), rtol=1e-6)  # TRL's dr_grpo: sum / (B * max_completion_length)
    dropped = np.asarray(alg.loss_weights(rl.get_algorithm("gspo"), mask * jnp.asarray([1.0, 0.0, 1.0, 0.0])[:, None], 4))
    np.testing.assert_allclose(dropped.sum(axis=1), [0.5, 0.0, 0.5, 0.0], rtol=1e-6)  # the kept rows share the weight


def test_gspo_sequence_ratio_has_the_sequence_objectives_value_and_gradient():
    """GSPO (arXiv 2507.18071): s_i = exp(mean_t log pi / pi_old); the per-token form with
    sequence-mean weights has the value and the gradient of -mean_i s_i A_i (unclipped)."""
    rng = np.random.default_rng(0)
    old = jnp.asarray(rng.normal(-2, 0.5, MASK.shape), jnp.float32)
    logp = old + jnp.asarray(rng.normal(0, 0.05, MASK.shape), jnp.float32)
    a = jnp.asarray([0.7, -1.2, 0.4, 1.0])
    mask, weights = jnp.asarray(MASK), alg.loss_weights(rl.get_algorithm("gspo"), jnp.asarray(MASK), 4)

    def ours(lp):
        ratio = jnp.exp(alg.sequence_log_ratio(lp, old, mask))
        return jnp.sum(weights * -(ratio * a[:, None]))

    def sequence_objective(lp):
        s = jnp.exp(((lp - old) * mask).sum(axis=1) / mask.sum(axis=1))
        return -jnp.mean(s * a)

    log_s = np.asarray(alg.sequence_log_ratio(logp, old, mask))
    for i, row in enumerate(MASK):
        np.testing.assert_allclose(log_s[i, row > 0], np.mean(np.asarray(logp - old)[i, row > 0]), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours(logp), sequence_objective(logp), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(ours)(logp) * mask, jax.grad(sequence_objective)(logp), rtol=1e-5, atol=1e-7)


def test_decoupled_clip_higher():
    """DAPO's clip-higher: the ratio is clipped to [1 - 0.2, 1 + 0.28]."""
    log_ratio = jnp.log(jnp.asarray([1.3, 1.25, 0.7, 0.7]))
    a = jnp.asarray([1.0, 1.0, -1.0, 1.0])
    loss, clipped = losses.clipped_surrogate(log_ratio, a, 0.2, 0.28)
    np.testing.assert_allclose(loss, [-1.28, -1.25, 0.8, -0.7], rtol=1e-6)
    assert clipped.tolist() == [True, False, True, False]
    assert _config("dapo").clip_range == (0.2, 0.28) and _config("gspo").clip_range == (3e-4, 4e-4)
    assert _config("dapo", loss=rl.LossConfig(clip_epsilon_high=0.3)).clip_range == (0.2, 0.3)


def test_dynamic_sampling_keeps_the_groups_whose_samples_differ():
    kept = alg.varied_groups(jnp.asarray([1.0, 1.0, 1.0, 1.0, 2.0, 1.0]), 3)
    np.testing.assert_array_equal(kept, [0, 0, 0, 1, 1, 1])


def test_overlong_penalty():
    """DAPO's soft overlong punishment with L_max = 10 and a buffer of 4 tokens."""
    penalty = alg.overlong_penalty(jnp.asarray([5.0, 6.0, 7.0, 10.0]), 10, 4, 1.0)
    np.testing.assert_allclose(penalty, [0.0, 0.0, -0.25, -1.0], rtol=1e-6)
    assert _config("dapo", rollout=rl.RolloutConfig(max_new_tokens=20)).overlong_window == 4 and _config("grpo").overlong_window == 0
    with pytest.raises(ValueError, match="overlong_buffer < rollout.max_new_tokens=4"):
        _config("dapo", shaping=rl.RewardShaping(overlong_buffer=4))
