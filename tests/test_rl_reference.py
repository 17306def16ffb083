"""The reference-reward stage: cache hits and misses, atomic entries, estimators on stored rewards."""

import dataclasses
import functools
import os

import numpy as np
import pytest
from flax import nnx

from alignment import rewards, sandbox
from alignment.models import Decoder, get_config
from alignment.models.heads import RewardModel
from alignment.rl.reference import (
    CACHE_ENV,
    ReferenceConfig,
    cache_root,
    compute_base_rewards,
    fingerprint,
    fixed_response_references,
)
from alignment.rl.rollout import RolloutConfig
from alignment.rl.scoring import FunctionReward, ModelReward
from alignment.sandbox.policy import messages

CONFIG = ReferenceConfig(num_samples=4, batch_prompts=2, seed=3)
ROLLOUT = RolloutConfig(max_prompt_length=32, max_new_tokens=6)


def length_reward(chat, response):
    return {"length": float(len(response.split()))}


class CountingReward(FunctionReward):
    """The response length in words; counts the rows it scored."""

    def __init__(self):
        super().__init__(length_reward, ("length",))
        self.rows = 0

    def __call__(self, chats, responses, group_size=1):
        self.rows += len(responses)
        return super().__call__(chats, responses, group_size)


@pytest.fixture(scope="module")
def setup():
    tokenizer = sandbox.sandbox_tokenizer()
    config = get_config("tiny", vocab_size=tokenizer.vocab_size, embed_dim=32, num_layers=1, mlp_dim=64)
    policy = Decoder(config, rngs=nnx.Rngs(0))
    reward_model = RewardModel(Decoder(config, rngs=nnx.Rngs(1)), num_properties=2, rngs=nnx.Rngs(2))
    chats = [messages(p) for p in sandbox.all_prompts()[:3]]
    return tokenizer, policy, ModelReward(reward_model, tokenizer, ("helpful", "harmless"), max_length=48), chats


def test_cache_hit_then_misses_on_a_changed_reward_model_or_policy(setup, tmp_path):
    tokenizer, policy, model_reward, chats = setup
    counter = CountingReward()
    fns = [model_reward, counter]
    first = compute_base_rewards(policy, tokenizer, chats, fns, CONFIG, tmp_path, rollout=ROLLOUT)
    assert not first.samples_from_cache and not first.from_cache and counter.rows == 3 * 4
    assert first.properties == ("helpful", "harmless", "length")
    assert first.rewards["helpful"].shape == (3, 4) and first.rewards["helpful"].dtype == np.float32
    assert first.texts.shape == first.ended.shape == (3, 4)

    again = compute_base_rewards(policy, tokenizer, chats, fns, CONFIG, tmp_path, rollout=ROLLOUT)
    assert again.samples_from_cache and again.from_cache and counter.rows == 3 * 4
    assert (again.texts == first.texts).all()
    for name in first.properties:
        np.testing.assert_array_equal(again.rewards[name], first.rewards[name])

    # One reward-model parameter changes: rescored (property 0 shifts by the bias), not resampled.
    model_reward.model.bias[...] = model_reward.model.bias[...].at[0].add(1.0)
    try:
        rescored = compute_base_rewards(policy, tokenizer, chats, fns, CONFIG, tmp_path, rollout=ROLLOUT)
    finally:
        model_reward.model.bias[...] = model_reward.model.bias[...].at[0].add(-1.0)
    assert rescored.samples_from_cache and not rescored.from_cache and counter.rows == 2 * 3 * 4
    np.testing.assert_allclose(rescored.rewards["helpful"], first.rewards["helpful"] + 1.0, rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(rescored.rewards["harmless"], first.rewards["harmless"])

    # A changed policy resamples.
    changed = nnx.clone(policy)
    changed.final_norm[...] = changed.final_norm[...].at[0].add(1e-3)
    resampled = compute_base_rewards(changed, tokenizer, chats, fns, CONFIG, tmp_path, rollout=ROLLOUT)
    assert not resampled.samples_from_cache and not resampled.from_cache and counter.rows == 3 * 3 * 4

    # A changed sampling parameter resamples too.
    hotter = compute_base_rewards(policy, tokenizer, chats, fns, CONFIG, tmp_path,
                                  rollout=dataclasses.replace(ROLLOUT, temperature=0.5))
    assert not hotter.samples_from_cache and counter.rows == 4 * 3 * 4


def test_estimators_on_stored_rewards_agree_with_alignment_rewards_without_resampling(setup, tmp_path):
    tokenizer, policy, model_reward, chats = setup
    counter = CountingReward()
    base = compute_base_rewards(policy, tokenizer, chats, [model_reward, counter], CONFIG, tmp_path, rollout=ROLLOUT)
    for method, params in [("empirical", {}), ("empirical", {"quantile": 0.5}), ("gaussian", {"quantile": 0.7}),
                           ("fixed_response", {}), ("constant", {"value": 2.0})]:
        refs = base.references(method, **params)
        assert set(refs) == {"helpful", "harmless", "length"}
        for name, ref in refs.items():
            assert ref.shape == (3,)
            np.testing.assert_allclose(ref, rewards.reference_rewards(base.rewards[name], method, **params), rtol=1e-6)
    np.testing.assert_allclose(base.references(quantile=0.25)["helpful"], np.quantile(base.rewards["helpful"], 0.25, axis=-1), rtol=1e-5)
    assert counter.rows == 3 * 4  # no estimator resampled or rescored
    with pytest.raises(ValueError, match="valid references: .*empirical"):
        base.references("median")


def test_non_finite_stored_rewards_name_the_property_and_prompt(setup, tmp_path):
    tokenizer, policy, model_reward, chats = setup
    base = compute_base_rewards(policy, tokenizer, chats, [model_reward], CONFIG, tmp_path, rollout=ROLLOUT)
    base.rewards["harmless"][1, 2] = np.nan
    with pytest.raises(ValueError, match=r"property 'harmless'.*prompt index 1"):
        base.references()


def test_partial_or_corrupt_entries_are_misses(setup, tmp_path, monkeypatch):
    tokenizer, policy, model_reward, chats = setup
    counter = CountingReward()
    fns = [model_reward, counter]

    # A crash between writing the temporary file and renaming it leaves no entry, and no temp file.
    def crash(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        compute_base_rewards(policy, tokenizer, chats, fns, CONFIG, tmp_path, rollout=ROLLOUT)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []

    base = compute_base_rewards(policy, tokenizer, chats, fns, CONFIG, tmp_path, rollout=ROLLOUT)
    assert not base.from_cache and counter.rows == 3 * 4
    # A leftover temporary file is never read; a truncated entry is a miss, rewritten whole.
    (tmp_path / f".{base.rewards_path.name}.abc.tmp").write_bytes(b"PK\x03\x04 half")
    data = base.rewards_path.read_bytes()
    base.rewards_path.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="unreadable"):
        recomputed = compute_base_rewards(policy, tokenizer, chats, fns, CONFIG, tmp_path, rollout=ROLLOUT)
    assert recomputed.samples_from_cache and not recomputed.from_cache and counter.rows == 2 * 3 * 4
    np.testing.assert_array_equal(recomputed.rewards["helpful"], base.rewards["helpful"])
    assert compute_base_rewards(policy, tokenizer, chats, fns, CONFIG, tmp_path, rollout=ROLLOUT).from_cache
    assert counter.rows == 2 * 3 * 4


def test_fixed_response_references_average_the_phrasings(setup):
    tokenizer, _, model_reward, chats = setup
    refusals = ["I can not help with that.", "Sorry, I will not do that."]
    refs = fixed_response_references(chats, refusals, [model_reward, CountingReward()])
    scores = model_reward([c for c in chats for _ in refusals], refusals * len(chats))
    np.testing.assert_allclose(refs["helpful"], np.asarray(scores["helpful"]).reshape(3, 2).mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(refs["length"], [6.0, 6.0, 6.0])
    per_prompt = fixed_response_references(chats, [["No."], ["No ."], ["Not that."]], [CountingReward()])
    np.testing.assert_allclose(per_prompt["length"], [1.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="one list of M"):
        fixed_response_references(chats, [["No."], ["No.", "Never."], ["No."]], [CountingReward()])


def test_fingerprints_and_cache_root(setup, tmp_path, monkeypatch):
    _, policy, model_reward, _ = setup
    assert fingerprint(policy) == fingerprint(nnx.clone(policy))
    assert fingerprint(FunctionReward(length_reward, ("length",))).endswith("test_rl_reference.length_reward")
    anonymous = FunctionReward(lambda chat, response: {"x": 0.0}, ("x",))
    for unnamed in (anonymous, FunctionReward(functools.partial(length_reward), ("length",))):
        with pytest.raises(ValueError, match="set a `fingerprint` string attribute"):
            fingerprint(unnamed)
    reads_less = type(model_reward)(model_reward.model, model_reward.tokenizer, model_reward.properties, max_length=model_reward.max_length // 2)
    assert fingerprint(reads_less) != fingerprint(model_reward)  # a reward model that reads less of a response
    anonymous.fingerprint = "zero-v1"
    assert fingerprint(anonymous) == "zero-v1"
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert cache_root() is None
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert cache_root() == tmp_path / "reference" and cache_root("elsewhere").name == "elsewhere"


def test_prompt_longer_than_the_bucket_is_an_error(setup):
    tokenizer, policy, model_reward, chats = setup
    with pytest.raises(ValueError, match="rollout.max_prompt_length=8"):
        compute_base_rewards(policy, tokenizer, chats, [model_reward], ReferenceConfig(), rollout=RolloutConfig(max_prompt_length=8))
