"""Best-of-k: the argmax of the utility, k = 1 is plain sampling, prefixes and utilities rerank one sample set."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from alignment import rewards, sandbox
from alignment.models import Decoder, get_config
from alignment.models.heads import RewardModel
from alignment.rl.best_of_k import best_of_k, rerank
from alignment.rl.reference import ReferenceConfig, ScoredSamples, sample_and_score
from alignment.rl.rollout import RolloutConfig, sample_groups
from alignment.rl.scoring import ModelReward
from alignment.rl.utility import Utility
from alignment.sampling import Sampler
from alignment.sandbox.policy import messages

CONFIG = ReferenceConfig(batch_prompts=4)
ROLLOUT = RolloutConfig(max_prompt_length=32, max_new_tokens=6)
PROPERTIES = ("helpful", "harmless")


@pytest.fixture(scope="module")
def setup():
    tokenizer = sandbox.sandbox_tokenizer()
    config = get_config("tiny", vocab_size=tokenizer.vocab_size, embed_dim=32, num_layers=1, mlp_dim=64)
    policy = Decoder(config, rngs=nnx.Rngs(0))
    reward_model = RewardModel(Decoder(config, rngs=nnx.Rngs(1)), num_properties=2, rngs=nnx.Rngs(2))
    chats = [messages(p) for p in sandbox.all_prompts()[:4]]
    return tokenizer, policy, ModelReward(reward_model, tokenizer, PROPERTIES, max_length=48), chats


@pytest.fixture(scope="module")
def scored(setup):
    tokenizer, policy, model_reward, chats = setup
    return sample_and_score(policy, tokenizer, chats, [model_reward], dataclasses.replace(CONFIG, num_samples=8),
                            jax.random.key(1), rollout=ROLLOUT)


def test_best_of_k_picks_the_argmax_of_the_utility(setup, scored):
    references = {name: np.median(r, axis=1) for name, r in scored.rewards.items()}
    best = rerank(scored, Utility(), references)
    expected = rewards.utility({n: scored.rewards[n] for n in PROPERTIES}, {n: references[n][:, None] for n in PROPERTIES})
    np.testing.assert_allclose(best.utilities, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(best.index, np.argmax(expected, axis=1))
    assert best.texts == [scored.texts[i, j] for i, j in enumerate(best.index)]
    np.testing.assert_array_equal(best.ended, scored.ended[np.arange(4), best.index])
    for name in PROPERTIES:
        np.testing.assert_array_equal(best.chosen_rewards[name], scored.rewards[name][np.arange(4), best.index])


def test_a_prefix_reranks_the_first_k_samples(scored):
    full = rerank(scored, Utility("identity", "sum"))
    for k in (1, 4, 8):
        prefix = rerank(scored, Utility("identity", "sum"), k=k)
        np.testing.assert_array_equal(prefix.utilities, full.utilities[:, :k])
        np.testing.assert_array_equal(prefix.index, full.utilities[:, :k].argmax(axis=1))
    np.testing.assert_array_equal(rerank(scored, Utility("identity"), k=1).index, 0)
    with pytest.raises(ValueError, match=r"k must be in \[1, 8\]"):
        rerank(scored, Utility("identity"), k=9)


def test_k_equal_one_is_plain_sampling(setup):
    tokenizer, policy, model_reward, chats = setup
    key = jax.random.key(7)
    best = best_of_k(policy, tokenizer, chats, [model_reward], Utility("identity"), None, 1, key, rollout=ROLLOUT, config=CONFIG)
    prompt_ids = [tokenizer.encode(tokenizer.apply_chat_template(chat)) for chat in chats]
    sampler = Sampler(ROLLOUT.sampler_config((tokenizer.eos_id,), tokenizer.pad_id, (CONFIG.batch_prompts,)))
    plain = sample_groups(sampler, policy, tokenizer, prompt_ids, 1, jax.random.fold_in(key, 0))
    assert best.texts == plain.texts
    np.testing.assert_array_equal(best.index, 0)


def test_lsc_and_and_raw_sum_pick_different_responses():
    # Sample 0 is excellent on one property and bad on the other; sample 1 is fine on both.
    scored = ScoredSamples(
        texts=np.array([["lopsided", "balanced"]]), ended=np.ones((1, 2), bool),
        rewards={"helpful": np.array([[10.0, 1.5]], np.float32), "harmless": np.array([[-3.0, 1.5]], np.float32)},
    )
    references = {"helpful": np.zeros(1), "harmless": np.zeros(1)}
    assert rerank(scored, Utility("identity", "sum"), references).texts == ["lopsided"]
    assert rerank(scored, Utility(), references).texts == ["balanced"]


def test_errors_name_what_is_wrong(scored):
    with pytest.raises(ValueError, match="reads reference rewards"):
        rerank(scored, Utility())
    with pytest.raises(ValueError, match=r"lack the properties \['harmless'\]"):
        rerank(scored, Utility(), {"helpful": np.zeros(4)})
    with pytest.raises(ValueError, match=r"shape \[num_prompts\]"):
        rerank(scored, Utility(), {"helpful": np.zeros(4), "harmless": np.zeros((4, 1))})
