"""The experiment spec's repetition over seeds, judged steps and task label settings, and the
group-normalised utility (no model is built here)."""

import dataclasses

import fiddle as fdl
import jax.numpy as jnp
import numpy as np
import pytest

from alignment import configs
from alignment.experiment import EvaluationSpec, Experiment, RunSpec, SandboxTask
from alignment.experiment.judging import stream_id
from alignment.rl import LearnerConfig, Utility
from alignment.rl.utility import group_standardize


def test_a_run_repeats_over_its_seeds_with_one_learner_seed_each():
    run = RunSpec(name="lsc", label="LSC AND", seeds=(3, 5))
    repeated = run.repeated()
    assert [r.name for r in repeated] == ["lsc-seed3", "lsc-seed5"]
    assert [r.learner_config(LearnerConfig(seed=0)).seed for r in repeated] == [3, 5]
    # without seeds the base learner's seed is kept, not overwritten
    assert RunSpec(name="a", label="a").learner_config(LearnerConfig(seed=11)).seed == 11
    assert RunSpec(name="a", label="a", seeds=(4,)).repeated()[0].name == "a"


def test_bad_seeds_are_refused_with_the_run_named():
    with pytest.raises(ValueError, match="run 'x': seeds must be distinct"):
        RunSpec(name="x", label="x", seeds=(1, 1))
    with pytest.raises(ValueError, match="not both"):
        RunSpec(name="x", label="x", seeds=(1,), learner_overrides={"seed": 2})


def test_repeated_names_must_stay_unique_across_the_experiment():
    with pytest.raises(ValueError, match="repeated: \\['a-seed1'\\]"):
        Experiment("e", SandboxTask(), runs=[RunSpec(name="a", label="a", seeds=(1, 2)), RunSpec(name="a-seed1", label="b")])


def test_judged_steps_take_the_listed_steps_or_every_and_always_the_last():
    assert EvaluationSpec(steps=(8, 2)).judged_steps(10) == [2, 8, 10]
    assert EvaluationSpec(every=4).judged_steps(10) == [4, 8, 10]
    assert EvaluationSpec().judged_steps(10) == [10]
    with pytest.raises(ValueError, match="must lie in"):
        EvaluationSpec(steps=(12,)).judged_steps(10)


def test_task_label_settings_are_validated():
    with pytest.raises(ValueError, match="label_flip"):
        SandboxTask(label_flip=0.5)
    with pytest.raises(ValueError, match="label_temperatures must be > 0"):
        SandboxTask(label_temperatures={"harmless": 0.0})
    with pytest.raises(ValueError, match="reward_pairs_from='policy'"):
        SandboxTask(label_temperatures={"harmless": 1.0}, reward_pairs_from="grammar")


def test_group_normalised_sum_standardises_each_reward_within_its_prompt():
    rewards = jnp.array([[1.0, 10.0], [3.0, 30.0], [0.0, 5.0], [0.0, 7.0]])  # two prompts of G = 2
    utility = Utility("identity", "sum", normalize="group")
    u = np.asarray(utility(rewards, jnp.zeros_like(rewards), ("a", "b"), group_size=2))
    # within each prompt each reward becomes -1 / +1 (up to eps), then the two are summed
    np.testing.assert_allclose(u, [-2.0, 2.0, -1.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(np.asarray(group_standardize(rewards, 2))[:, 1], [-1, 1, -1, 1], atol=1e-5)
    # scale-free: multiplying one reward model's scores by 100 changes nothing
    scaled = rewards * jnp.array([1.0, 100.0])
    np.testing.assert_allclose(np.asarray(utility(scaled, jnp.zeros_like(rewards), ("a", "b"), group_size=2)), u, atol=1e-4)
    with pytest.raises(ValueError, match="group size"):
        utility(rewards, jnp.zeros_like(rewards), ("a", "b"))
    with pytest.raises(ValueError, match="unknown normalize 'batch'"):
        Utility(normalize="batch")


def test_stream_ids_are_stable_and_differ_between_runs():
    assert stream_id("pi_0") == stream_id("pi_0")
    assert len({stream_id(f"run-{i}") for i in range(100)}) == 100
    assert 0 <= stream_id("x") < 2**31


def test_paper_regime_has_three_seeds_per_arm_and_independent_base_samples():
    experiment = fdl.build(configs.paper_regime())
    runs = experiment.learner_runs()
    arms = {}
    for run in runs:
        arms.setdefault((run.label, run.properties), []).append(run.learner_config(experiment.learner).seed)
    main = {arm: seeds for arm, seeds in arms.items() if len(seeds) > 1}
    assert len(main) == 5 and all(sorted(seeds) == [0, 1, 2] for seeds in main.values())
    assert sorted((r.reference_method, r.quantile) for r in runs if r.label.startswith("LSC AND ")) == [
        ("empirical", 0.5), ("empirical", 0.95), ("gaussian", 0.5), ("gaussian", 0.85), ("gaussian", 0.95)]  # claim 7's sweep
    assert experiment.gpm_checks
    assert all(run.kl_coef == 0.0 for run in runs)
    assert len(experiment.evaluation.judged_steps(experiment.learner.num_steps)) >= 8
    assert experiment.task.eval_samples >= 8 and experiment.evaluation.base_samples >= 8
    normalised = [r for r in runs if r.utility.normalize == "group"]
    assert len(normalised) == 3 and all(r.properties is None for r in normalised)
    assert dataclasses.asdict(experiment.task)["label_temperatures"] == {"harmless": 1.0}
