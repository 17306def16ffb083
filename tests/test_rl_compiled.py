"""Programs shared by learners (``alignment.rl.compiled``): the fields a shared program's key
resets change none of its results, learners of equal shapes trace each program once between
them, and a learner that shares its programs trains exactly as one with its own."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from alignment import nested, rl, sandbox
from alignment.models import Decoder, get_config, lora
from alignment.models.heads import ValueModel
from alignment.parallel import DEFAULT_RULES
from alignment.rl import compiled
from alignment.rl.programs import Trainable, UpdateBatch, policy_loss, rollout_advantages

TOKENIZER = sandbox.sandbox_tokenizer()
CHATS = [sandbox.policy.messages(p) for p in sandbox.all_prompts()[:8]]
PROPERTIES = ("helpful", "harmless")

# A value other than the default for every field some program's key resets.
PERTURBED = {
    "num_steps": 7, "seed": 3, "log_every": 2, "checkpoint_every": 5, "faults": rl.FaultPolicy(non_finite="skip"),
    "kl.coef": 0.7, "kl.target": 3.0, "kl.horizon": 50.0,
    "optimizer": rl.OptimizerConfig(learning_rate=0.5, warmup_steps=2, schedule="cosine", weight_decay=0.1),
    "lora": lora.LoRAConfig(rank=2), "epochs": 2, "minibatches": 2, "microbatches": 2,
    "utility": rl.Utility("identity", weights={"helpful": 2.0, "harmless": 1.0}),
    "shaping": rl.RewardShaping(no_eos_penalty=1.5, overlong_buffer=3, overlong_penalty=2.0),
}
ROLLOUT = rl.RolloutConfig(max_prompt_length=32, max_new_tokens=8)
PROMPT, NEW = ROLLOUT.max_prompt_length, ROLLOUT.max_new_tokens
ROWS = 16


def _policy(seed: int = 0) -> Decoder:
    return Decoder(get_config("tiny", vocab_size=TOKENIZER.vocab_size, init_std=0.3), rngs=nnx.Rngs(seed))


def _base_config(algorithm: str, **fields) -> rl.LearnerConfig:
    spec = rl.ALGORITHMS.get(algorithm)
    return rl.LearnerConfig(algorithm=algorithm, prompts_per_step=ROWS // 4, num_samples=4, rollout=ROLLOUT,
                            critic=rl.CriticConfig() if spec.critic else None, **fields)


def _perturbed(config: rl.LearnerConfig, ignore) -> rl.LearnerConfig:
    return nested.replace(config, {path: PERTURBED[path] for path in ignore})


def test_every_reset_field_has_a_test_value():
    assert set(compiled.ADVANTAGES_IGNORE + compiled.UPDATE_IGNORE) <= set(PERTURBED)
    default = rl.LearnerConfig()
    assert all(nested.get(default, path) != value for path, value in PERTURBED.items())


@pytest.mark.parametrize("placement", ["reward", "loss"])
@pytest.mark.parametrize("algorithm", rl.ALGORITHMS.names)
def test_the_reset_fields_change_no_program_result(algorithm, placement):
    keys = iter(jax.random.split(jax.random.key(0), 32))
    normal = lambda *shape: jax.random.normal(next(keys), shape)  # noqa: E731
    response_mask = jax.random.uniform(next(keys), (ROWS, NEW)) < 0.8
    base = _base_config(algorithm, kl=rl.KLConfig(placement=placement))

    real = _perturbed(base, compiled.ADVANTAGES_IGNORE)
    inputs = (normal(ROWS, 2), normal(ROWS, 2), jax.random.uniform(next(keys), (ROWS,)) < 0.5, -jax.nn.softplus(normal(ROWS, NEW)),
              -jax.nn.softplus(normal(ROWS, NEW)), normal(ROWS, NEW), response_mask, 0.3)
    want = rollout_advantages(*inputs, config=real, properties=PROPERTIES)
    got = rollout_advantages(*inputs, config=compiled.program_config(real, compiled.ADVANTAGES_IGNORE), properties=PROPERTIES)
    jax.tree.map(np.testing.assert_array_equal, got, want)

    real = _perturbed(base, compiled.UPDATE_IGNORE)
    policy = _policy()
    trainable = Trainable(policy, ValueModel(policy, rngs=nnx.Rngs(1)) if real.critic is not None else None)
    tokens = jax.random.randint(next(keys), (ROWS, PROMPT + NEW), 0, TOKENIZER.vocab_size)
    prompt_mask = np.zeros((ROWS, PROMPT + NEW), bool)
    prompt_mask[:, 2:PROMPT] = True
    full_response = np.concatenate([np.zeros((ROWS, PROMPT), bool), np.asarray(response_mask)], axis=1)
    batch = UpdateBatch(tokens, prompt_mask, full_response, -jax.nn.softplus(normal(ROWS, NEW)), -jax.nn.softplus(normal(ROWS, NEW)),
                        normal(ROWS, NEW), normal(ROWS, NEW), normal(ROWS, NEW), response_mask / response_mask.sum())

    def loss_and_grads(config):
        loss = lambda t: policy_loss(t, batch, 0.3, config=config, prompt_length=PROMPT, rules=DEFAULT_RULES)  # noqa: E731
        return nnx.value_and_grad(loss, has_aux=True)(trainable)

    want = loss_and_grads(real)
    got = loss_and_grads(compiled.program_config(real, compiled.UPDATE_IGNORE))
    jax.tree.map(np.testing.assert_array_equal, got, want)


def pseudo_reward(chat, response: str) -> dict[str, float]:
    """A deterministic score of the text per property."""
    return {"helpful": (len(response) % 7) / 7.0, "harmless": (response.count(" ") % 5) / 5.0}


def _learner(config, programs, base=True):
    policy = _policy()
    return rl.Learner(policy, _policy() if base else None, TOKENIZER, [rl.FunctionReward(pseudo_reward, PROPERTIES)], CHATS,
                      {p: np.zeros(len(CHATS), np.float32) for p in PROPERTIES}, config, programs=programs)


def _history(learner):
    return [{k: v for k, v in h.items() if not k.startswith("time/") and k != "tokens_per_second"} for h in learner.history]


def _params(learner):
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(learner.trainable, nnx.Param))]


def test_learners_of_equal_shapes_share_their_programs_and_train_as_alone():
    programs = compiled.SharedPrograms()
    config = _base_config("rloo", num_steps=2)
    first = _learner(config, programs)
    first.run(progress=False)
    assert first.num_compilations == {"reference": 1, "advantages": 1, "update": 1}

    # Another seed and KL weight: nothing the programs read.
    other = nested.replace(config, {"seed": 1, "kl.coef": 0.3})
    second = _learner(other, programs)
    second.run(progress=False)
    assert second.num_compilations == {"reference": 0, "advantages": 0, "update": 0}
    assert second.sampler is first.sampler and first.sampler.num_compilations == 1

    alone = _learner(other, compiled.SharedPrograms())
    alone.run(progress=False)
    assert alone.num_compilations == {"reference": 1, "advantages": 1, "update": 1} and alone.sampler is not first.sampler
    assert _history(second) == _history(alone)
    for x, y in zip(_params(second), _params(alone)):
        np.testing.assert_array_equal(x, y)

    # Another utility: new advantages only. Another run length: the learning-rate schedule's
    # optimizer, so a new update only.
    raw = _learner(dataclasses.replace(config, utility=rl.Utility("identity")), programs)
    raw.train_step()
    assert raw.num_compilations == {"reference": 0, "advantages": 1, "update": 0}
    longer = _learner(dataclasses.replace(config, num_steps=3), programs)
    longer.train_step()
    assert longer.num_compilations == {"reference": 0, "advantages": 0, "update": 1}
    assert len(programs) == 7  # sampler, base-policy pass, 2 advantages, 2 optimizers, 1 update (traced for each)


def test_lora_learners_share_their_update():
    programs = compiled.SharedPrograms()
    config = _base_config("rloo", num_steps=2, lora=lora.LoRAConfig(rank=2, alpha=4.0))
    first, second = (_learner(dataclasses.replace(config, seed=seed), programs, base=False) for seed in (0, 1))
    first.train_step()
    second.train_step()
    assert first.num_compilations == {"reference": 1, "advantages": 1, "update": 1}
    assert second.num_compilations == {"reference": 0, "advantages": 0, "update": 0}


def test_frozen_keys():
    a = rl.Utility("lsc", weights={"helpful": 1.0, "harmless": 2.0})
    b = rl.Utility("lsc", weights={"harmless": 2.0, "helpful": 1.0})
    assert hash(compiled.frozen(a)) == hash(compiled.frozen(b)) and compiled.frozen(a) == compiled.frozen(b)
    assert compiled.frozen(a) != compiled.frozen(rl.Utility("lsc", weights={"helpful": 1.0, "harmless": 3.0}))
    assert compiled.frozen(np.arange(3.0)) != compiled.frozen(np.arange(3))  # dtypes differ
    with pytest.raises(TypeError):
        compiled.frozen({1, 2} and [set()])
