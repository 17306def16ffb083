"""A Bradley-Terry reward model trained on sandbox pairs comes within 3 points of the gold
model's own held-out accuracy on the same noisy labels (the ceiling any reward model has)."""

import numpy as np
import pytest
from flax import nnx

from alignment import data, sandbox
from alignment.models import Decoder, DecoderConfig
from alignment.models.heads import RewardModel
from alignment.training.reward_model import RewardModelTrainer, RewardTrainConfig

HELD_OUT = ("reward_eval", "eval")


@pytest.mark.parametrize("prop", ["helpful"])
def test_bradley_terry_reward_model_approaches_the_gold_ceiling(prop):
    config = sandbox.SandboxConfig(pairs_per_prompt=8)
    records = sandbox.preference_records(config)[prop]
    splits = sandbox.split_prompts(sandbox.all_prompts(), dict(config.splits), config.salt)
    split_of = {p.text: name for name, prompts in splits.items() for p in prompts}
    train = [r for r in records if split_of[r.context[-1].content] not in HELD_OUT]
    held_out = [r for r in records if split_of[r.context[-1].content] in HELD_OUT]

    tokenizer = sandbox.sandbox_tokenizer()
    batcher = data.RewardBatcher(tokenizer.pad_id, batch_size=64, max_length=112, buckets=(64, 80, 96))
    train_batches = list(batcher(data.encode_pair(r, tokenizer) for r in train))
    held_out_batches = [(prop, b) for b in batcher(data.encode_pair(r, tokenizer) for r in held_out)]
    assert batcher.stats.context_truncated == batcher.stats.response_truncated == 0

    backbone = DecoderConfig(vocab_size=tokenizer.vocab_size, embed_dim=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16, mlp_dim=128)
    model = RewardModel(Decoder(backbone, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))
    trainer = RewardModelTrainer(
        model, RewardTrainConfig(learning_rate=3e-3, warmup_steps=20, num_steps=400, weight_decay=0.01), properties=(prop,)
    )
    order = np.random.default_rng(0)

    def shuffled_epochs():
        while True:
            for i in order.permutation(len(train_batches)):
                yield prop, train_batches[i]

    trainer.fit(shuffled_epochs(), progress=False)
    accuracy = trainer.evaluate(held_out_batches)[f"{prop}/accuracy"]
    ceiling = sandbox.gold_accuracy(held_out)
    assert len(held_out) > 1000
    assert accuracy >= ceiling - 0.03, (accuracy, ceiling)
