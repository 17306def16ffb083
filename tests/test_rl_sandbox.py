"""Each learner on the gold-reward sandbox: pi_0 is the sandbox's SFT policy, the proxies are a
Bradley-Terry reward model (one head per property) trained on the sandbox's pairs, the judge
is the gold utilities on held-out prompts.

A short run at a moderate KL weight must raise the proxy utility (LSC AND) and the gold
helpfulness win rate over pi_0. The gold AND win rate (better than pi_0 on both properties) is
not asserted: in this setting it ends within noise of the AND loss rate (measured over 180
held-out pairs: PPO 0.35 against 0.29, RLOO and GRPO 0.32 against 0.31), because the policies
learn to refuse less and to state more hazards on risky prompts, which the proxy helpfulness
rewards more than the proxy harmlessness penalises (the gold harmlessness mean falls from
-0.15 to between -0.47 and -0.61). ``pytest -s`` prints these numbers.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from alignment import data, rl, sandbox
from alignment.models.heads import RewardModel, ValueModel
from alignment.sandbox.policy import messages, sample_texts
from alignment.training.reward_model import RewardModelTrainer, RewardTrainConfig

LEARNERS = ("ppo", "rloo", "grpo")
MAX_NEW_TOKENS = 112


def _copy(module: nnx.Module) -> nnx.Module:
    """A copy that shares no buffers (trainers donate theirs)."""
    copy = nnx.clone(module)
    nnx.update(copy, jax.tree.map(jnp.copy, nnx.state(copy)))
    return copy


@pytest.fixture(scope="module")
def proxy(box):
    """The base policy's backbone with two BT heads, fine-tuned on 8 pairs per prompt outside the
    policy and evaluation splits (held-out accuracy about 0.83 and 0.75 against gold ceilings of
    0.89 and 0.77)."""
    records = sandbox.preference_records(sandbox.SandboxConfig(pairs_per_prompt=8))
    split_of = {p.text: name for name, prompts in box.splits.items() for p in prompts}
    batcher = data.RewardBatcher(box.tokenizer.pad_id, batch_size=64, max_length=112, buckets=(64, 80, 96))
    batches = [
        (prop, batch)
        for prop in sandbox.PROPERTIES
        for batch in batcher(data.encode_pair(r, box.tokenizer) for r in records[prop] if split_of[r.context[-1].content] == "reward_train")
    ]
    model = RewardModel(_copy(box.policy), num_properties=2, rngs=nnx.Rngs(1))
    trainer = RewardModelTrainer(model, RewardTrainConfig(learning_rate=1e-3, warmup_steps=10, num_steps=150, weight_decay=0.01),
                                 properties=sandbox.PROPERTIES)
    order = np.random.default_rng(0)
    trainer.fit((batches[i] for _ in iter(int, 1) for i in order.permutation(len(batches))), progress=False)
    return rl.ModelReward(model, box.tokenizer, sandbox.PROPERTIES, max_length=160)


def _gold(box, model, prompts, key) -> np.ndarray:
    texts = sample_texts(model, box.tokenizer, prompts, key, max_new_tokens=MAX_NEW_TOKENS)
    return np.array([[sandbox.gold_utilities(p.text, t)[q] for q in sandbox.PROPERTIES] for p, t in zip(prompts, texts)])


@pytest.fixture(scope="module")
def runs(box, proxy):
    """Per learner: its history and the gold utilities of its samples next to pi_0's, on 96
    held-out prompts x 2 samples."""
    chats = [messages(p) for p in box.splits["policy"][:128]]
    base = rl.compute_base_rewards(box.policy, box.tokenizer, chats, [proxy],
                                   rl.ReferenceConfig(num_samples=8, max_new_tokens=MAX_NEW_TOKENS, max_prompt_length=32, batch_prompts=64))
    references = base.references("empirical", quantile=0.85)
    held_out = box.splits["eval"][:96] * 2
    pi_0 = _gold(box, box.policy, held_out, jax.random.key(7))
    out = {}
    for algorithm in LEARNERS:
        ppo = algorithm == "ppo"
        policy = _copy(box.policy)
        # PPO takes 4 optimizer steps per rollout (a smaller learning rate) and a critic with its own
        # backbone and Monte-Carlo returns (lambda = 1): a fresh value head on the policy's backbone
        # was seen to raise the entropy and lose gold helpfulness in this short run.
        config = rl.LearnerConfig(
            algorithm=algorithm, prompts_per_step=16, num_samples=4, max_prompt_length=32, max_new_tokens=MAX_NEW_TOKENS,
            kl_coef=0.2, learning_rate=1e-4 if ppo else 3e-4, num_steps=12, epochs=2 if ppo else 1,
            minibatches=2 if ppo else 1, gae_lambda=1.0,
        )
        value = ValueModel(_copy(box.policy), rngs=nnx.Rngs(3)) if ppo else None
        learner = rl.Learner(policy, box.policy, box.tokenizer, [proxy], chats, references, config, value_model=value)
        history = learner.run(progress=False)
        out[algorithm] = history, pi_0, _gold(box, learner.trainable.policy, held_out, jax.random.key(8))
    return out


def _win_rate(new: np.ndarray, old: np.ndarray) -> float:
    return float(np.mean((new > old) + 0.5 * (new == old)))


@pytest.mark.parametrize("algorithm", LEARNERS)
def test_learner_raises_the_proxy_utility_and_the_gold_helpfulness(runs, algorithm):
    history, pi_0, policy = runs[algorithm]
    start, end = history[0]["utility"], np.mean([h["utility"] for h in history[-3:]])
    assert end > start + 0.3, (start, end)
    assert 0.2 < history[-1]["kl/sequence"] < 10.0  # it moved, and stayed near pi_0
    helpful_win = _win_rate(policy[:, 0], pi_0[:, 0])
    and_wins = np.mean((policy >= pi_0).all(axis=1) & (policy > pi_0).any(axis=1))
    and_losses = np.mean((policy <= pi_0).all(axis=1) & (policy < pi_0).any(axis=1))
    print(f"{algorithm}: proxy utility {start:.3f} -> {end:.3f}, KL {history[-1]['kl/sequence']:.2f}, gold helpful win "
          f"rate {helpful_win:.3f}, gold AND wins {and_wins:.3f} / losses {and_losses:.3f}, gold means {pi_0.mean(0)} -> {policy.mean(0)}")
    assert helpful_win > 0.53, helpful_win
