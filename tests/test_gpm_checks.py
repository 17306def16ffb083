"""The GPM claims measured (alignment.experiment.gpm_checks): cyclic fits, skew symmetry, held-out
accuracy, forward passes per candidate, and the Pipeline's cached ``results["gpm"]``."""

import json

import numpy as np
import pytest
from flax import nnx

from alignment import evaluation, sandbox
from alignment.experiment import Experiment, Pipeline, RewardModelSpec, RunSpec, SandboxTask, TaskData
from alignment.experiment import gpm_checks as checks
from alignment.training import evaluate_pairs
from alignment.experiment.judging import JudgedSamples
from alignment.experiment.tasks import pair_batches
from alignment.models import Decoder, get_config
from alignment.models.heads import GPMModel, RewardModel
from alignment.rl import LearnerConfig, ReferenceConfig, RolloutConfig
from alignment.rl.scoring import GPMReward, ModelReward

TOKENIZER = sandbox.sandbox_tokenizer()
PROMPTS = sandbox.all_prompts()[:3]
CHATS = [sandbox.policy.messages(p) for p in PROMPTS]
TEXTS = list(sandbox.SENTENCES)[:4]
CONFIG = get_config("tiny", vocab_size=TOKENIZER.vocab_size, init_std=0.3)
SPEC = RewardModelSpec(batch_size=8, train_max_length=64)


def _gpm(seed=0) -> GPMReward:
    model = GPMModel(Decoder(CONFIG, rngs=nnx.Rngs(seed)), num_blocks=2, rngs=nnx.Rngs(seed + 1))
    return GPMReward(model, TOKENIZER, "helpful", max_length=64)


def _bt(seed=0) -> ModelReward:
    model = RewardModel(Decoder(CONFIG, rngs=nnx.Rngs(seed)), num_properties=2, rngs=nnx.Rngs(seed + 1))
    return ModelReward(model, TOKENIZER, ("harmless", "helpful"), max_length=64)


def _heldout():
    """BT-labelled pairs of the gold "helpful" utility on the test prompts (transitive labels)."""
    records = sandbox.label_pairs(PROMPTS, "helpful", np.random.default_rng(0), pairs_per_prompt=4, beta=3.0, source="test")
    return [batch for _, batch in pair_batches({"helpful": records}, TOKENIZER)(SPEC, ("helpful",))]


def test_skew_symmetry_error_of_a_random_gpm_is_zero():
    skew = checks.skew_symmetry(_gpm(), CHATS, [TEXTS] * len(CHATS))
    assert skew["pairs"] == len(CHATS) * len(TEXTS) ** 2
    # Float rounding only (the claim's tolerance): jit-compiled, the group matrix is not bitwise exact.
    assert skew["max_error"] == 0.0 and skew["lambda_spread"] <= 1e-6
    with pytest.raises(ValueError, match="equally sized group"):
        checks.skew_symmetry(_gpm(), CHATS[:2], [TEXTS, TEXTS[:2]])


@pytest.mark.parametrize("k", [4, 16])
def test_scoring_k_candidates_runs_k_backbone_rows(k):
    assert checks.forward_rows(_gpm(), CHATS[0], [TEXTS[i % len(TEXTS)] for i in range(k)]) == k


def test_count_rows_restores_the_method():
    original = Decoder.hidden_states
    with checks.count_rows(Decoder) as rows:
        assert Decoder.hidden_states is not original
    assert Decoder.hidden_states is original and rows == []


def test_heldout_correctness_per_pair_of_both_kinds_averages_to_the_accuracy():
    batches = _heldout()
    for reward, objective in ((_gpm(), "gpm"), (_bt(), "bt")):
        correct = checks.heldout_correct(reward, "helpful", batches)
        assert correct.shape == (4 * len(PROMPTS),) and set(np.unique(correct)) <= {0.0, 0.5, 1.0}
        metrics = evaluate_pairs(reward.model, (("helpful", b) for b in batches), objective=objective, properties=reward.properties)
        assert correct.mean() == pytest.approx(metrics["helpful/accuracy"], abs=1e-6)


def _pipeline(workdir, gpm: GPMReward, experiment: Experiment | None = None, chats=CHATS) -> Pipeline:
    """A Pipeline whose task, proxies and pi_0 samples are set by hand (nothing is trained)."""
    experiment = experiment or Experiment("gpm", SandboxTask(), runs=[RunSpec("gpo", "GPO", reward_model="gpm", properties=("helpful",))],
                                          reward_models=SPEC)
    pipeline = Pipeline(experiment, workdir, progress=False)
    properties = ("helpful", "harmless")
    pipeline.__dict__["task"] = TaskData(
        properties=properties, policy=Decoder(CONFIG, rngs=nnx.Rngs(0)), tokenizer=TOKENIZER, alignment_chats=chats,
        eval_chats=chats, reward_batches=None, judge=lambda chats, texts: np.zeros((len(texts), len(properties))), judge_name="zeros",
        heldout_batches=lambda spec, props: [("helpful", batch) for batch in _heldout()],
    )
    pipeline.__dict__["proxies"] = {"bt": [_bt()], "gpm": [gpm]}
    rng = np.random.default_rng(0)
    texts = np.array([TEXTS[i % 4:] + TEXTS[:i % 4] for i in range(len(chats))], dtype=object)  # [prompts, 4 samples]
    shape = (*texts.shape, len(properties))
    pipeline.__dict__["pi_0"] = JudgedSamples(texts, rng.normal(size=shape), rng.normal(size=shape), np.zeros(texts.shape))
    return pipeline


def test_the_pipeline_reports_the_gpm_checks_once(tmp_path):
    results = _pipeline(tmp_path, _gpm()).results()
    gpm = results["gpm"]
    # A GPM fits cyclic preferences, Bradley-Terry cannot (tiny models, trained by gpm_checks).
    assert gpm["cyclic_accuracy"]["gpm"] >= 0.95 and gpm["cyclic_accuracy"]["bt"] <= 0.70
    assert gpm["forward_passes_for_k"] == {"4": 4, "16": 16} and gpm["skew_symmetry_max_error"] == 0.0
    assert set(gpm["transitive_accuracy"]) == {"gpm", "bt"} and gpm["details"]["heldout_pairs"] == 4 * len(PROMPTS)
    assert len(gpm["transitive_correct"]["gpm"]) == len(gpm["transitive_correct"]["bt"]) == 4 * len(PROMPTS)
    assert gpm["details"]["property"] == "helpful" and gpm["details"]["skew_pairs"] == 3 * 4 * 4
    statuses = {c.claim: c.status for c in evaluation.check_claims(results) if c.claim.startswith("GPM")}
    assert statuses["GPM 1"] == statuses["GPM 2"] == statuses["GPM 4"] == "held" and statuses["GPM 3"] != "not tested"
    assert json.loads((tmp_path / "gpm_checks.json").read_text()) == gpm

    # Read back, not measured again: a GPM that would fail is never called.
    assert _pipeline(tmp_path, gpm=None).results()["gpm"] == gpm


def test_a_gpo_run_against_the_base_responses(tmp_path):
    """``gpm_opponents="base"``: the GPM scores each response against the reference stage's K base
    responses of its prompt; r_ref comes from those responses rescored the same way (not resampled)."""
    task = SandboxTask(eval_samples=4)
    learner = LearnerConfig(prompts_per_step=2, num_samples=2, rollout=RolloutConfig(max_prompt_length=32, max_new_tokens=6), num_steps=1)
    reference = ReferenceConfig(num_samples=3, batch_prompts=3)
    run = RunSpec("gpo-base", "GPO vs base", reward_model="gpm", properties=("helpful",), gpm_opponents="base")
    experiment = Experiment("gpo", task, runs=[run], learner=learner, reward_models=SPEC, reference=reference)
    chats = [sandbox.policy.messages(p) for p in sandbox.all_prompts()[:4]]  # the judging needs 4 prompts
    pipeline = _pipeline(tmp_path, _gpm(), experiment, chats)
    result = pipeline.align(run)
    assert result.gpm_opponents == "base" and [c["step"] for c in result.checkpoints] == [1]
    entries = sorted(p.name.split("-")[0] for p in (tmp_path / "reference").glob("*.npz"))
    assert entries == ["rewards"] * 3 + ["samples"]  # BT, GPM vs the group, GPM vs base; one set of samples
    with pytest.raises(ValueError, match="unknown gpm_opponents 'pi_0'; valid: policy, base"):
        RunSpec("a", "A", gpm_opponents="pi_0")
