"""The learner's mechanics on a tiny random policy: sharding and exact resume for every
registered algorithm, microbatches that do not change the update, one compiled program per
phase, non-finite rewards, and the LSC transform's gradient shape in the metrics."""

import ast
import dataclasses
import contextlib
import hashlib
import json
import os
import signal
import statistics
import subprocess
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from alignment import rl, sandbox
from alignment.rl import compiled
from alignment.models import Decoder, get_config, load_pretrained, lora
from alignment.models.heads import GPMModel, RewardModel, ValueModel, gpm_score
from alignment.parallel import make_mesh
from alignment.training import preemption
from alignment.files import WriteError
from alignment.training.checkpointing import DamagedCheckpointsError

TOKENIZER = sandbox.sandbox_tokenizer()
CHATS = [sandbox.policy.messages(p) for p in sandbox.all_prompts()[:16]]
NORMAL = statistics.NormalDist()


def _policy(seed: int = 0) -> Decoder:
    return Decoder(get_config("tiny", vocab_size=TOKENIZER.vocab_size, init_std=0.3), rngs=nnx.Rngs(seed))


def pseudo_reward(chat, response: str) -> dict[str, float]:
    """A deterministic, roughly standard-normal score of the text (3 x N(0, 1) by hashing)."""
    digest = int.from_bytes(hashlib.sha256(response.encode()).digest()[:8], "big")
    return {"score": 3.0 * NORMAL.inv_cdf((digest % 100_003 + 0.5) / 100_003)}


ROLLOUT = rl.RolloutConfig(max_prompt_length=32, max_new_tokens=12)


def _config(**overrides) -> rl.LearnerConfig:
    base = dict(prompts_per_step=4, num_samples=4, rollout=ROLLOUT, optimizer=rl.OptimizerConfig(learning_rate=1e-3), num_steps=4)
    return rl.LearnerConfig(**{**base, **overrides})


def _learner(config, *, mesh=None, workdir=None, reward_fn=None, references=None, programs=None):
    policy, reference = _policy(), None if config.lora else _policy()
    value = ValueModel(policy, rngs=nnx.Rngs(5)) if config.algorithm_spec.critic else None
    reward_fn = reward_fn or rl.FunctionReward(pseudo_reward, ("score",))
    references = references or {"score": np.zeros(len(CHATS), np.float32)}
    return rl.Learner(policy, reference, TOKENIZER, [reward_fn], CHATS, references, config,
                      value_model=value, mesh=mesh, workdir=workdir, programs=programs)


def _params(learner):
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(learner.trainable, nnx.Param))]


@pytest.mark.parametrize("algorithm", rl.ALGORITHMS.names)
def test_sharded_step_equals_one_device_step(algorithm):
    if jax.device_count() < 8:
        pytest.skip("needs 8 (simulated) devices")
    # Two epochs of two minibatches: the second pass sees ratios away from 1 (the clips act).
    config = _config(algorithm=algorithm, epochs=2, minibatches=2)
    plain = _learner(config)
    plain.train_step()
    sharded = _learner(config, mesh=make_mesh(data=2, fsdp=2, model=2))
    assert not sharded.trainable.policy.layers.q[...].sharding.is_fully_replicated
    sharded.train_step()
    a, b = plain.flush(), sharded.flush()
    for name in ("reward/score", "utility", "loss", "grad_norm", "kl/sequence", "entropy"):
        np.testing.assert_allclose(b[name], a[name], rtol=1e-4, atol=1e-5, err_msg=name)
    # Adam divides by sqrt(v): on weights with near-zero gradients, float reordering moves the
    # update by up to a fraction of the learning rate (1e-3).
    for x, y in zip(_params(plain), _params(sharded)):
        np.testing.assert_allclose(y, x, atol=2e-4)


@pytest.mark.parametrize("algorithm", rl.ALGORITHMS.names)
def test_resume_continues_exactly(tmp_path, algorithm):
    config = _config(algorithm=algorithm, epochs=2, minibatches=2, kl=rl.KLConfig(target=1.0, horizon=100.0), num_steps=2)
    straight = _learner(config)
    straight.run(progress=False)

    first = _learner(config, workdir=tmp_path)
    first.run(1, progress=False)
    first.close()
    resumed = _learner(config, workdir=tmp_path)
    assert resumed.restore() == 1 and resumed.position == config.prompts_per_step
    resumed.run(progress=False)
    resumed.close()

    for key in ("utility", "loss", "kl/coef", "grad_norm", *(("value_loss",) if config.algorithm_spec.critic else ())):
        assert resumed.history[-1][key] == pytest.approx(straight.history[-1][key], rel=1e-6, abs=1e-7), key
    for x, y in zip(_params(straight), _params(resumed)):
        np.testing.assert_array_equal(x, y)
    logged = [line for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(logged) == 2  # step 1 before the stop, step 2 after


@pytest.mark.parametrize("algorithm", ["grpo", "gspo", "dr_grpo"])
def test_microbatches_do_not_change_the_update(algorithm):
    """Each aggregation's weights are normalised over the minibatch, so gradient accumulation over
    microbatches (summed) gives the loss and the parameters of one pass over the minibatch."""
    runs = {}
    for microbatches in (1, 4):
        learner = _learner(_config(algorithm=algorithm, microbatches=microbatches))
        learner.train_step()
        runs[microbatches] = (learner.flush(), _params(learner))
    (one, params_one), (four, params_four) = runs[1], runs[4]
    for name in ("loss", "grad_norm", "utility"):
        np.testing.assert_allclose(four[name], one[name], rtol=1e-5, atol=1e-7, err_msg=name)
    for x, y in zip(params_one, params_four):
        np.testing.assert_allclose(y, x, atol=2e-4)


def test_dapo_drops_groups_whose_samples_score_the_same():
    """A reward that is one constant for some prompts: their groups carry no signal and DAPO's
    dynamic sampling drops them from the loss (``filtered_groups``); GRPO keeps them."""
    flat = {chat[-1]["content"] for chat in CHATS[::2]}

    def half_flat(chat, response):
        return {"score": 0.0 if chat[-1]["content"] in flat else pseudo_reward(chat, response)["score"]}

    logged = {}
    for algorithm in ("dapo", "grpo"):
        learner = _learner(_config(algorithm=algorithm, prompts_per_step=len(CHATS)), reward_fn=rl.FunctionReward(half_flat, ("score",)))
        learner.train_step()
        logged[algorithm] = learner.flush()
    assert logged["dapo"]["filtered_groups"] == pytest.approx(0.5)
    assert "filtered_groups" not in logged["grpo"] and logged["dapo"]["overlong_penalty"] <= 0.0


def test_sigterm_stops_before_the_next_step_with_a_checkpoint_and_the_restart_continues_exactly(tmp_path):
    """A preempted job gets SIGTERM: here the reward function sends it to this process during
    step 2, the learner finishes that step, saves and raises ``Preempted``; a new learner
    restores step 2 and ends where an uninterrupted run ends."""
    config = _config(num_steps=3)
    straight = _learner(config)
    straight.run(progress=False)

    def reward(chat, response, calls=[0]):
        calls[0] += 1
        if calls[0] == 16 + 1:  # the first response of step 2
            os.kill(os.getpid(), signal.SIGTERM)
        return pseudo_reward(chat, response)

    previous = signal.getsignal(signal.SIGTERM)
    try:
        first = _learner(config, workdir=tmp_path, reward_fn=rl.FunctionReward(reward, ("score",)))
        with pytest.raises(preemption.Preempted, match="stopped on SIGTERM after step 2; a checkpoint was saved there"):
            first.run(progress=False)
        first.close()
    finally:
        signal.signal(signal.SIGTERM, previous)
        preemption.clear()
    resumed = _learner(config, workdir=tmp_path)
    assert resumed.restore() == 2
    resumed.run(progress=False)
    for x, y in zip(_params(straight), _params(resumed)):
        np.testing.assert_array_equal(x, y)


def _damage(step_directory):
    """Truncates every file of a checkpoint step's arrays to half its size."""
    for path in (step_directory / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_damaged_latest_checkpoint_is_named_and_the_previous_one_restored(tmp_path, capsys):
    config = _config(num_steps=3, checkpoint_every=1)
    straight = _learner(config, workdir=tmp_path / "straight")
    straight.run(progress=False)
    straight.close()
    first = _learner(config, workdir=tmp_path / "run")
    first.run(progress=False)
    first.close()
    _damage(tmp_path / "run" / "checkpoints" / "3")

    resumed = _learner(config, workdir=tmp_path / "run")
    assert resumed.restore() == 2
    logged = capsys.readouterr().out
    assert f"damaged checkpoints in {tmp_path / 'run' / 'checkpoints'}: step 3 (" in logged and "restored step 2 instead" in logged
    resumed.run(progress=False)  # step 3 again, as the uninterrupted run took it
    resumed.close()
    for x, y in zip(_params(straight), _params(resumed)):
        np.testing.assert_array_equal(x, y)

    for step in (1, 2, 3):
        _damage(tmp_path / "run" / "checkpoints" / str(step))
    with pytest.raises(DamagedCheckpointsError, match=r"no checkpoint in .*checkpoints restores: step 3 \(.*; step 2 \(.*; step 1 \("):
        _learner(config, workdir=tmp_path / "run").restore()


def test_one_compiled_program_per_phase():
    reward_model = RewardModel(_policy(3), rngs=nnx.Rngs(4))
    reward_fn = rl.ModelReward(reward_model, TOKENIZER, ("score",), max_length=64)
    learner = _learner(_config(algorithm="grpo", microbatches=2, loss=rl.LossConfig(entropy_coef=0.01)), reward_fn=reward_fn,
                       programs=compiled.SharedPrograms())  # its own: no other test's traces
    learner.run(3, progress=False)
    assert learner.num_compilations == {"reference": 1, "advantages": 1, "update": 1}
    assert learner.sampler.num_compilations == 1 and reward_fn.num_compilations == 1
    assert len(learner.history) == 3 and all(np.isfinite(h["loss"]) for h in learner.history)


def test_non_finite_rewards_stop_the_run_and_leave_parameters_finite():
    calls = {"n": 0}

    def flaky(chat, response):
        calls["n"] += 1
        return {"score": float("nan") if calls["n"] > 16 else pseudo_reward(chat, response)["score"]}

    learner = _learner(_config(), reward_fn=rl.FunctionReward(flaky, ("score",)))
    learner.train_step()
    after_first = _params(learner)
    with pytest.raises(FloatingPointError, match=r"step 2: non-finite reward 'score', utility, loss, gradients"):
        learner.run(progress=False)
    for x, y in zip(after_first, _params(learner)):
        np.testing.assert_array_equal(x, y)


def _nan_at(steps, rows_per_step=16):
    """A reward that is NaN for one response of each step in ``steps`` (1-based) and finite elsewhere."""
    calls = {"n": 0}

    def reward(chat, response):
        calls["n"] += 1
        step = (calls["n"] - 1) // rows_per_step + 1
        nan = step in steps and (calls["n"] - 1) % rows_per_step == 0
        return {"score": float("nan") if nan else pseudo_reward(chat, response)["score"]}

    return rl.FunctionReward(reward, ("score",))


def test_the_skip_policy_drops_non_finite_batches_counts_them_and_stops_after_too_many_in_a_row(capsys):
    learner = _learner(_config(faults=rl.FaultPolicy(non_finite="skip"), num_steps=5), reward_fn=_nan_at({2, 4}))
    snapshots = []
    for _ in range(5):
        learner.train_step()
        learner.flush()
        snapshots.append(_params(learner))
    assert [h["update_skipped"] for h in learner.history] == [0.0, 1.0, 0.0, 1.0, 0.0]
    assert all(np.isfinite(x).all() for params in snapshots for x in params)
    for skipped, before in ((1, 0), (3, 2)):  # a skipped step leaves the parameters as they were
        for x, y in zip(snapshots[before], snapshots[skipped]):
            np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(snapshots[1], snapshots[2]))  # the next step updates again
    assert "step 2: non-finite reward 'score', utility, loss, gradients" in capsys.readouterr().out

    learner = _learner(_config(faults=rl.FaultPolicy(non_finite="skip", max_skips_in_a_row=2), num_steps=5), reward_fn=_nan_at({2, 3}))
    with pytest.raises(FloatingPointError, match=r"step 3: .*; 2 steps in a row were skipped \(faults.max_skips_in_a_row=2\): stopping"):
        learner.run(progress=False)
    assert all(np.isfinite(x).all() for x in _params(learner))


def test_lsc_shrinks_the_gradient_weight_of_responses_above_the_reference():
    """Claim 1 of Wang et al. (arXiv 2402.00742): du/dr = sigmoid(r_ref - r) vanishes above r_ref.

    The exact weight dU/dr is below 1/2 above r_ref and above 1/2 below it under LSC, and 1
    everywhere under the raw reward. The advantages (leave-one-out baseline) show it too, less
    cleanly: a response above r_ref keeps a large |A| when its group's others are far below,
    so LSC lowers the above/below ratio of mean |A| relative to the raw reward rather than
    below one.
    """
    r_ref = np.full(len(CHATS), 3.0 * NORMAL.inv_cdf(0.85), np.float32)
    logged = {}
    for transform in ("lsc", "identity"):
        config = _config(utility=rl.Utility(transform, "sum"), num_samples=8, prompts_per_step=8,
                         optimizer=rl.OptimizerConfig(learning_rate=0.0))
        learner = _learner(config, references={"score": r_ref})
        learner.run(2, progress=False)
        logged[transform] = {k: np.mean([h[k] for h in learner.history]) for k in learner.history[0] if "_ref/" in k}
    lsc, raw = logged["lsc"], logged["identity"]
    assert lsc["utility_slope/above_ref/score"] < 0.5 < lsc["utility_slope/below_ref/score"]
    assert raw["utility_slope/above_ref/score"] == raw["utility_slope/below_ref/score"] == 1.0
    ratio = {t: v["advantage_abs/above_ref/score"] / v["advantage_abs/below_ref/score"] for t, v in logged.items()}
    assert ratio["lsc"] < 0.8 * ratio["identity"], ratio


def test_config_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match="valid algorithms: dapo, dr_grpo, grpo, gspo, ppo, reinforce_pp, rloo"):
        rl.LearnerConfig(algorithm="reinforce")
    with pytest.raises(ValueError, match="num_samples >= 2"):
        rl.LearnerConfig(algorithm="rloo", num_samples=1)
    with pytest.raises(ValueError, match="unknown faults.non_finite 'ignore'; valid: stop, skip"):
        rl.LearnerConfig(faults=rl.FaultPolicy(non_finite="ignore"))
    with pytest.raises(ValueError, match="rloo has no critic, so critic=.* would not be read"):
        rl.LearnerConfig(algorithm="rloo", critic=rl.CriticConfig())
    with pytest.raises(ValueError, match="needs references"):
        rl.Learner(_policy(), _policy(), TOKENIZER, [rl.FunctionReward(pseudo_reward, ("score",))], CHATS, None, _config())
    with pytest.raises(ValueError, match="longer than rollout.max_prompt_length=4"):
        _learner(_config(rollout=rl.RolloutConfig(max_prompt_length=4, max_new_tokens=12)))
    with pytest.raises(ValueError, match="ppo needs a value_model"):
        rl.Learner(_policy(), _policy(), TOKENIZER, [rl.FunctionReward(pseudo_reward, ("score",))], CHATS,
                   {"score": np.zeros(len(CHATS))}, _config(algorithm="ppo"))


def test_a_gpm_stands_in_as_a_reward_model():
    """GPO (Zhang et al., arXiv 2410.02197): r_i = mean_{j != i} s(y_i > y_j | x) over the group;
    skew symmetry makes each group's rewards sum to zero, and the learner trains on them."""
    gpm = GPMModel(_policy(3), num_blocks=2, rngs=nnx.Rngs(4))
    reward_fn = rl.GPMReward(gpm, TOKENIZER, "score", max_length=64)
    responses = ["Good question.", "Rice needs water.", "I can not help.", "Good question."]
    scores = np.asarray(reward_fn([CHATS[0]] * 4, responses, group_size=4)["score"])
    assert abs(scores.sum()) < 1e-5 and scores[0] == scores[3] and np.ptp(scores) > 0
    with pytest.raises(ValueError, match="group_size >= 2"):
        reward_fn([CHATS[0]] * 3, responses[:3], group_size=2)
    learner = _learner(_config(utility=rl.Utility("identity", "sum")), reward_fn=reward_fn)
    learner.run(2, progress=False)
    assert all(abs(h["reward/score"]) < 1e-5 and np.isfinite(h["loss"]) for h in learner.history)


def test_a_gpm_scores_against_fixed_base_opponents():
    """GPO against K stored base responses: r(y) = 1/K sum_k s(y > y_k | x), computed from the mean
    opponent embedding, equals the pairwise scores averaged; it is a different reward to the
    reference cache, and the learner trains on it."""
    gpm = GPMModel(_policy(3), num_blocks=2, rngs=nnx.Rngs(4))
    group = rl.GPMReward(gpm, TOKENIZER, "score", max_length=64)
    base = [["Rice needs water.", "Good question.", "I can not help."], ["Good question.", "Rice needs water.", "Rice."]]
    fixed = group.against(CHATS[:2], base)
    responses = ["Good question.", "I can not help.", "Rice needs water.", "Rice needs water."]
    chats = [CHATS[0], CHATS[0], CHATS[1], CHATS[1]]
    scores = np.asarray(fixed(chats, responses, group_size=2)["score"])
    v, weights = (np.asarray(x) for x in group.embed(chats, responses))
    for i, chat in enumerate(chats):
        opponents = base[CHATS.index(chat)]
        u, _ = (np.asarray(x) for x in group.embed([chat] * len(opponents), opponents))
        pairwise = [float(gpm_score(jnp.asarray(v[i]), jnp.asarray(u[k]), jnp.asarray(weights[i]))) for k in range(len(opponents))]
        np.testing.assert_allclose(scores[i], np.mean(pairwise), rtol=1e-4, atol=1e-6)
    assert fixed.opponents_digest and rl.fingerprint(fixed) != rl.fingerprint(group)
    assert rl.fingerprint(fixed) != rl.fingerprint(group.against(CHATS[:2], [base[0], base[0]]))
    with pytest.raises(KeyError, match="no opponents for the prompt"):
        fixed([CHATS[2]], ["Rice."])
    learner = _learner(_config(utility=rl.Utility("identity", "sum")), reward_fn=group.against(CHATS, [base[0]] * len(CHATS)))
    learner.run(1, progress=False)
    assert np.isfinite(learner.history[-1]["loss"])


def test_gradient_norm_spikes_are_flagged_against_the_recent_median():
    from alignment.training.metrics import gradient_spike

    steady = [1.0, 1.2, 0.9, 1.1, 1.0, 0.95]
    assert gradient_spike(steady, 11.0, 10.0) == pytest.approx(11.0)
    assert gradient_spike(steady, 9.0, 10.0) is None
    assert gradient_spike(steady[:4], 100.0, 10.0) is None  # no baseline yet
    assert gradient_spike([*steady, float("nan")], 50.0, 10.0) == pytest.approx(50.0)  # a skipped step's NaN is left out
    learner = _learner(_config(num_steps=2))
    learner.run(progress=False)
    assert [h["grad_spike"] for h in learner.history] == [0.0, 0.0]


@contextlib.contextmanager
def _small_filesystem(path: Path, megabytes: int):
    """A tmpfs of ``megabytes`` at ``path`` (needs the right to mount: root in a container), or a skip."""
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small filesystem here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(directory: Path) -> Path:
    """Writes a file into ``directory`` until its filesystem is full; returns it."""
    filler = directory / "filler"
    with filler.open("wb") as out:
        with contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 65536)
                out.flush()
    return filler


def test_a_full_disk_stops_the_run_naming_what_it_wrote_and_a_restart_after_freeing_space_resumes(tmp_path):
    """A real ENOSPC (a 64 MB tmpfs filled up after the first checkpoint): the learner raises
    ``WriteError`` naming the path and what it was writing; once space is freed, a new learner
    on the same workdir restores the last checkpoint and ends where a run without the fault does."""
    config = _config(num_steps=3, checkpoint_every=1)
    straight = _learner(config)
    straight.run(progress=False)
    with _small_filesystem(tmp_path / "disk", 64) as disk:
        workdir = disk / "run"
        first = _learner(config, workdir=workdir)
        first.run(1, progress=False)
        filler = _fill(disk)
        with pytest.raises(WriteError, match=rf"cannot write the (checkpoint|metrics) of step 2 to {workdir}.*No space left on device; "
                                             "free space and run the same command again"):
            first.run(progress=False)
        filler.unlink()
        resumed = _learner(config, workdir=workdir)
        assert resumed.restore() == 1
        resumed.run(progress=False)
        resumed.close()
        logged = [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert logged[-2:] == [2, 3] and all(isinstance(step, int) for step in logged)  # whole lines only
    for x, y in zip(_params(resumed), _params(straight)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


LORA = lora.LoRAConfig(rank=4, alpha=8.0)


def _checkpoint_arrays(directory: Path) -> set[str]:
    """The array paths of a learner checkpoint's "model" item (from Orbax's tree metadata)."""
    metadata = json.loads((directory / "state" / "_METADATA").read_text())
    keys = [ast.literal_eval(key) for key in metadata["tree_metadata"]]  # tuples ('model', ..., 'value')
    return {"/".join(key[:-1]) for key in keys if key[0] == "model"}


def test_a_lora_learner_updates_only_adapters_and_heads_and_resumes_exactly(tmp_path):
    """PPO with a value head on the LoRA policy: the adapters and the head train, nothing else."""
    algorithm = "ppo"
    config = _config(algorithm=algorithm, lora=LORA, epochs=2, minibatches=2, num_steps=2)
    straight = _learner(config)
    base = nnx.state(_policy(), nnx.Param)
    straight.run(progress=False)
    assert abs(straight.history[0]["kl/sequence"]) < 1e-4  # B = 0: the first rollout's policy is pi_0
    policy = straight.trainable.policy
    frozen = nnx.state(policy, nnx.Not(lora.LoRAParam))
    for x, y in zip(jax.tree.leaves(frozen), jax.tree.leaves(base)):
        np.testing.assert_array_equal(x, y)  # the base weights never move
    assert float(jnp.abs(policy.layers.q_lora_b[...]).max()) > 0  # the adapters do
    adapters = {"/".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(straight.trainable, straight.wrt))}
    head = {"value/kernel", "value/bias"}
    assert adapters == {f"policy/layers/{n}" for t in lora.PROJECTIONS for n in lora.lora_names(t)} | head

    exported = load_pretrained(straight.export_policy(tmp_path / "export"), "tiny", vocab_size=TOKENIZER.vocab_size).model
    tokens = jnp.asarray([[3, 4, 5, 6]])
    inputs = (tokens, jnp.arange(4)[None], jnp.ones_like(tokens, bool))
    assert exported.lora is None
    np.testing.assert_allclose(exported(*inputs)[0], policy(*inputs)[0], rtol=1e-5, atol=1e-4)  # logits of size ~4

    first = _learner(config, workdir=tmp_path / "run")
    first.run(1, progress=False)
    first.close()
    assert _checkpoint_arrays(tmp_path / "run" / "checkpoints" / "1") == {f"model/{name}" for name in adapters}
    resumed = _learner(config, workdir=tmp_path / "run")
    assert resumed.restore() == 1
    resumed.run(progress=False)
    for x, y in zip(_params(straight), _params(resumed)):
        np.testing.assert_array_equal(x, y)


def test_a_lora_learner_shards_and_takes_no_base_copy():
    if jax.device_count() < 8:
        pytest.skip("needs 8 (simulated) devices")
    config = _config(lora=LORA, epochs=2, minibatches=2)
    plain = _learner(config)
    plain.train_step()
    sharded = _learner(config, mesh=make_mesh(data=2, fsdp=2, model=2))
    assert sharded.trainable.policy.layers.gate_lora_b[...].sharding.spec == jax.sharding.PartitionSpec(None, None, "model")
    sharded.train_step()
    for name in ("utility", "loss", "grad_norm", "kl/sequence"):
        np.testing.assert_allclose(sharded.flush()[name], plain.flush()[name], rtol=1e-4, atol=1e-5, err_msg=name)
    for x, y in zip(_params(plain), _params(sharded)):
        np.testing.assert_allclose(y, x, atol=2e-4)
    with pytest.raises(ValueError, match="pass base_policy=None"):
        rl.Learner(_policy(), _policy(), TOKENIZER, [rl.FunctionReward(pseudo_reward, ("score",))], CHATS,
                   {"score": np.zeros(len(CHATS), np.float32)}, config)


def _eos_prone_policy() -> Decoder:
    """The test policy with the EOS row of its (tied) embedding scaled up: responses end early."""
    policy = _policy()
    policy.embed[...] = policy.embed[...].at[TOKENIZER.eos_id].multiply(8.0)
    return policy


def test_length_buckets_trim_the_passes_after_sampling_and_change_nothing():
    """With 4 buckets the base-policy pass, the advantages and the update run over the longest
    response's bucket; with 1 over all of max_new_tokens. Same metrics and parameters."""
    runs = {}
    for buckets in (1, 4):
        config = _config(algorithm="dr_grpo", rollout=dataclasses.replace(ROLLOUT, length_buckets=buckets), num_steps=3)
        learner = rl.Learner(_eos_prone_policy(), _eos_prone_policy(), TOKENIZER, [rl.FunctionReward(pseudo_reward, ("score",))],
                             CHATS, {"score": np.zeros(len(CHATS), np.float32)}, config, programs=compiled.SharedPrograms())
        learner.run(progress=False)
        runs[buckets] = learner
    columns = [h["response_columns"] for h in runs[4].history]
    assert min(columns) < ROLLOUT.max_new_tokens, columns  # every response of a step ended early: trimming acted
    assert [h["response_columns"] for h in runs[1].history] == [ROLLOUT.max_new_tokens] * 3
    assert runs[1].num_compilations == {"reference": 1, "advantages": 1, "update": 1}
    met = len(set(columns))  # one program of each phase per bucket met
    assert runs[4].num_compilations == {"reference": met, "advantages": met, "update": met}
    for a, b in zip(runs[1].history, runs[4].history):
        for name in ("utility", "loss", "grad_norm", "kl/sequence", "entropy", "response_length"):
            np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-6, err_msg=name)
    for x, y in zip(_params(runs[1]), _params(runs[4])):
        np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-6)
    assert [rl.RolloutConfig(max_new_tokens=112).response_columns(n) for n in (1, 28, 29, 84, 85, 112)] == [28, 28, 56, 84, 112, 112]
    with pytest.raises(ValueError, match="length_buckets"):
        rl.RolloutConfig(max_new_tokens=4, length_buckets=5)
