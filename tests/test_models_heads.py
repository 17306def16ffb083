"""Heads: reward at the last valid token, per-token values, exact GPM skew-symmetry."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from alignment.models import Decoder, get_config
from alignment.models.heads import GPMModel, RewardModel, ValueModel, ensemble_rewards, gpm_score, last_valid_index

TINY = get_config("tiny")


def _batch():
    tokens = jax.random.randint(jax.random.key(0), (3, 6), 0, TINY.vocab_size, dtype=jnp.int32)
    kv_mask = jnp.array([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0]], bool)
    positions = jnp.maximum(jnp.cumsum(kv_mask, axis=1) - 1, 0).astype(jnp.int32)
    return tokens, positions, kv_mask


def test_last_valid_index_handles_left_and_right_padding():
    _, _, kv_mask = _batch()
    np.testing.assert_array_equal(last_valid_index(kv_mask), [5, 5, 3])


def test_reward_model_reads_last_valid_token():
    backbone = Decoder(TINY, rngs=nnx.Rngs(0))
    model = RewardModel(backbone, num_properties=2, rngs=nnx.Rngs(1))
    tokens, positions, kv_mask = _batch()
    rewards = nnx.jit(lambda m, *a: m(*a))(model, tokens, positions, kv_mask)
    assert rewards.shape == (3, 2) and rewards.dtype == jnp.float32
    # Row 2 alone (its real tokens only) gives the same rewards.
    alone = model(tokens[2:, 1:4], jnp.arange(3)[None], jnp.ones((1, 3), bool))
    np.testing.assert_allclose(rewards[2:], alone, atol=1e-5)
    other = RewardModel(Decoder(TINY, rngs=nnx.Rngs(2)), num_properties=1, rngs=nnx.Rngs(3))
    both = ensemble_rewards([model, other], tokens, positions, kv_mask)
    assert both.shape == (3, 3)
    np.testing.assert_allclose(both[:, :2], rewards, atol=1e-6)


def test_value_model_is_per_token():
    model = ValueModel(Decoder(TINY, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))
    tokens, positions, kv_mask = _batch()
    values = model(tokens, positions, kv_mask)
    assert values.shape == (3, 6) and values.dtype == jnp.float32


def test_gpm_score_is_exactly_skew_symmetric():
    keys = jax.random.split(jax.random.key(0), 3)
    a = jax.random.normal(keys[0], (4096, 8))
    b = jax.random.normal(keys[1], (4096, 8))
    weights = jax.nn.softmax(jax.random.normal(keys[2], (4096, 4)))
    score = jax.jit(gpm_score)
    np.testing.assert_array_equal(score(a, b, weights), -score(b, a, weights))
    np.testing.assert_array_equal(score(a, a, weights), 0.0)
    # k = 1 with v = [r, c] is Bradley-Terry: s = c (r_i - r_j).
    r, c = jnp.array([2.0, -1.0]), 0.5
    bt = gpm_score(jnp.stack([r[0], c])[None], jnp.stack([r[1], c])[None], jnp.ones((1, 1)))
    np.testing.assert_allclose(bt, c * (r[0] - r[1]))


def test_gpm_model_embeddings_and_weights():
    model = GPMModel(Decoder(TINY, rngs=nnx.Rngs(0)), num_blocks=3, rngs=nnx.Rngs(1))
    tokens, positions, kv_mask = _batch()
    v, weights = nnx.jit(lambda m, *a: m(*a))(model, tokens, positions, kv_mask, jnp.array([2, 3, 2]))
    assert v.shape == (3, 6) and weights.shape == (3, 3)
    np.testing.assert_allclose(jnp.linalg.norm(v, axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    scores = gpm_score(v[:, None], v[None], weights[0])  # all pairs under the first prompt's weights
    np.testing.assert_array_equal(scores, -scores.T)
    np.testing.assert_array_equal(jnp.diag(scores), 0.0)
