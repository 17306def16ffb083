"""Experiments share their proxies through the cache: the second workdir with the same task and
reward-model spec copies the first one's model instead of training it, and gets the same
parameters; another spec or no task config trains its own."""

import dataclasses

import jax
import numpy as np
from flax import nnx

from alignment import data, nested, sandbox
from alignment.data.records import Message, PreferenceRecord
from alignment.experiment import RewardModelSpec, SandboxTask
from alignment.experiment import reward_models
from alignment.models import Decoder, get_config
from alignment.rl import RolloutConfig
from alignment.training import reward_model as trainer_module

TOKENIZER = sandbox.sandbox_tokenizer()
SPEC = RewardModelSpec(train=nested.replace(RewardModelSpec().train, {"num_steps": 2, "optimizer.warmup_steps": 0}), batch_size=4)


def _batches(spec, properties):
    records = [PreferenceRecord((Message("user", "How do I boil rice?"),), "Rinse the rice and boil it.", "No.", property="helpful")] * 4
    batcher = data.RewardBatcher(TOKENIZER.pad_id, batch_size=spec.batch_size, max_length=64)
    batch = next(iter(batcher(data.encode_pair(r, TOKENIZER) for r in records)))
    while True:
        yield "helpful", batch


def _params(model):
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_a_second_experiment_copies_the_cached_proxy(tmp_path, monkeypatch):
    fits = []
    original = trainer_module.RewardModelTrainer.fit
    monkeypatch.setattr(trainer_module.RewardModelTrainer, "fit", lambda self, *a, **k: fits.append(1) or original(self, *a, **k))
    policy = Decoder(get_config("tiny", vocab_size=TOKENIZER.vocab_size), rngs=nnx.Rngs(0))

    def fit(workdir, spec=SPEC, pairs_from={"task": SandboxTask(), "rollout": RolloutConfig()}):
        return reward_models.fit_reward_model("bt", policy, ("helpful",), spec, _batches, tmp_path / workdir / "bt",
                                              progress=False, pairs_from=pairs_from, cache=tmp_path / "cache")

    first, second = fit("one"), fit("two")
    assert len(fits) == 1 and len(list((tmp_path / "cache").iterdir())) == 2  # the entry and its lock
    for x, y in zip(_params(first), _params(second)):
        np.testing.assert_array_equal(x, y)
    assert (tmp_path / "two" / "bt.made_with.json").is_file()  # the workdir holds its own copy and record
    fit("three", spec=dataclasses.replace(SPEC, seed=5))
    fit("four", pairs_from=None)  # pairs of unnamed provenance are never cached
    assert len(fits) == 3 and len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 2
    fit("five", pairs_from={"task": SandboxTask(), "rollout": RolloutConfig(max_new_tokens=8)})  # pairs sampled otherwise
    assert len(fits) == 4
