"""Linear-probe reward heads: logistic regression on feature differences recovers a BT reward,
and the fitted head drops into a RewardModel with the same margins."""

import jax.numpy as jnp
import numpy as np
from flax import nnx

from alignment import data
from alignment.models import Decoder, DecoderConfig
from alignment.models.heads import RewardModel
from alignment.training.linear_probe import fit_linear_head, pair_features, probe_accuracy, set_reward_head
from alignment.training.reward_model import sequence_inputs


def test_probe_recovers_a_bradley_terry_reward_direction():
    rng = np.random.default_rng(0)
    true_w = rng.normal(size=16)
    chosen, rejected = rng.normal(size=(4000, 16)), rng.normal(size=(4000, 16))
    p = 1 / (1 + np.exp(-(chosen - rejected) @ true_w))
    labels = (rng.uniform(size=4000) < p).astype(np.float32)  # noisy BT labels
    w = fit_linear_head(chosen[:3000], rejected[:3000], labels[:3000], l2=1e-4)
    cosine = w @ true_w / np.linalg.norm(w) / np.linalg.norm(true_w)
    assert cosine > 0.98
    gold = probe_accuracy(true_w, chosen[3000:], rejected[3000:], labels[3000:])
    assert probe_accuracy(w, chosen[3000:], rejected[3000:], labels[3000:]) >= gold - 0.02


def test_fitted_head_gives_the_probe_margins_inside_a_reward_model():
    config = DecoderConfig(vocab_size=32, embed_dim=16, num_layers=1, num_heads=2, num_kv_heads=1, head_dim=8, mlp_dim=32)
    model = RewardModel(Decoder(config, rngs=nnx.Rngs(0)), num_properties=2, rngs=nnx.Rngs(1))
    rng = np.random.default_rng(1)
    pairs = [data.EncodedPair(list(rng.integers(1, 32, 4)), list(rng.integers(1, 32, 3)), list(rng.integers(1, 32, 5)), 1.0) for _ in range(5)]
    batches = list(data.RewardBatcher(pad_id=0, batch_size=4, max_length=10, min_context_tokens=1)(pairs))
    chosen, rejected, labels = pair_features(model.backbone, batches)
    assert chosen.shape == (5, 16) and labels.shape == (5,)  # the filler rows of the last batch are dropped
    w = rng.normal(size=16).astype(np.float32)
    set_reward_head(model, w, property_index=1)
    batch = batches[0]
    rewards = model(*sequence_inputs(jnp.concatenate([batch.chosen_ids, batch.rejected_ids]), jnp.concatenate([batch.chosen_mask, batch.rejected_mask])))
    margins = rewards[:4, 1] - rewards[4:, 1]
    np.testing.assert_allclose(margins, (chosen[:4] - rejected[:4]) @ w, rtol=1e-4, atol=1e-5)
