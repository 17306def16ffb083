"""A Bradley-Terry reward model trained on sandbox pairs approaches the gold ceiling on both
properties, for several seeds.

The ceiling is the gold utility's own accuracy on the same noisy held-out labels
(``sandbox.gold_accuracy``): no reward model can be expected to beat it. One model with a
backbone shared by a "helpful" and a "harmless" head trains on both properties' pairs
(600 steps of 64 pairs, about 1.5 epochs); each seed changes the labels, the initialisation and
the batch order. Gaps to the ceiling (ceiling minus held-out accuracy, about 1,430 held-out
pairs per property, whose sampling error alone is about 0.01) measured for seeds 0 to 3:

    seed       0      1      2      3
    helpful    0.021  0.023  0.042  0.028
    harmless   0.021  0.021  0.015  0.008

So the honest promise is "within 5 points of the ceiling" for every seed and property
(``MARGIN``), not the 2 points that seeds 0 and 1 alone would suggest. The test runs seed 2 (the
widest gap measured); a seed takes about two and a half minutes on a 2-core CPU, so the others
are left out to keep the suite under its 15 minutes.
"""

import numpy as np
import pytest
from flax import nnx

from alignment import data, sandbox
from alignment.models import Decoder, DecoderConfig
from alignment.models.heads import RewardModel
from alignment.training.optimizers import OptimizerConfig
from alignment.training.reward_model import RewardModelTrainer, RewardTrainConfig

HELD_OUT = ("reward_eval", "eval")
PROPERTIES = ("helpful", "harmless")
MARGIN = 0.05


@pytest.mark.parametrize("seed", [2])
def test_bradley_terry_reward_model_approaches_the_gold_ceiling(seed):
    config = sandbox.SandboxConfig(seed=seed, pairs_per_prompt=8)
    records = sandbox.preference_records(config)
    splits = sandbox.split_prompts(sandbox.all_prompts(), dict(config.splits), config.salt)
    split_of = {p.text: name for name, prompts in splits.items() for p in prompts}

    tokenizer = sandbox.sandbox_tokenizer()
    batcher = data.RewardBatcher(tokenizer.pad_id, batch_size=64, max_length=128, buckets=(64, 80, 96, 112))
    train_batches, held_out_batches, ceiling = [], [], {}
    for prop in PROPERTIES:
        train = [r for r in records[prop] if split_of[r.context[-1].content] not in HELD_OUT]
        held_out = [r for r in records[prop] if split_of[r.context[-1].content] in HELD_OUT]
        assert len(held_out) > 1000
        train_batches += [(prop, b) for b in batcher(data.encode_pair(r, tokenizer) for r in train)]
        held_out_batches += [(prop, b) for b in batcher(data.encode_pair(r, tokenizer) for r in held_out)]
        ceiling[prop] = sandbox.gold_accuracy(held_out)
    assert batcher.stats.context_truncated == batcher.stats.response_truncated == 0

    backbone = DecoderConfig(vocab_size=tokenizer.vocab_size, embed_dim=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16, mlp_dim=128)
    model = RewardModel(Decoder(backbone, rngs=nnx.Rngs(seed)), num_properties=len(PROPERTIES), rngs=nnx.Rngs(seed + 1))
    trainer = RewardModelTrainer(
        model, RewardTrainConfig(optimizer=OptimizerConfig(learning_rate=3e-3, warmup_steps=20, weight_decay=0.01, schedule="cosine"), num_steps=600), properties=PROPERTIES
    )
    order = np.random.default_rng(seed)

    def shuffled_epochs():
        while True:
            for i in order.permutation(len(train_batches)):
                yield train_batches[i]

    trainer.fit(shuffled_epochs(), progress=False)
    metrics = trainer.evaluate(held_out_batches)
    gaps = {prop: ceiling[prop] - metrics[f"{prop}/accuracy"] for prop in PROPERTIES}
    assert all(gap <= MARGIN for gap in gaps.values()), (gaps, ceiling)
