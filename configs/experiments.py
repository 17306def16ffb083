"""Experiments as Fiddle configs: each builder returns the ``fdl.Config`` of a whole run.

    python launch/train.py --config config:quickstart --workdir runs/quickstart
    python launch/train.py --config config:paper_sandbox --config set:learner.num_steps=24 --workdir runs/paper
    python launch/train.py --config config:quickstart --config set:learner.rollout.max_new_tokens=64 --workdir runs/short
    python launch/train.py --config config:quickstart --sweep learner.num_steps=8,16 --workdir runs/steps
    python launch/train.py --config config:smollm2_helpful_harmless --config fiddler:cpu_check --workdir runs/check

Builders (``--config config:NAME``): ``quickstart``, ``paper_sandbox``, ``paper_regime``,
``smollm2_helpful_harmless``; the TPU-pod presets live in ``configs/tpu_pod.py``. Fiddlers
(``--config fiddler:NAME``): ``cpu_check``. The runs
compare the log-sigmoid-centred AND of Wang et al., "Transforming and Combining Rewards for
Aligning Large Language Models" (arXiv 2402.00742), with the raw sum of rewards.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import fiddle as fdl

from alignment.experiment import (
    BestOfKSpec,
    EvaluationSpec,
    Experiment,
    PretrainedTask,
    RewardModelSpec,
    RunSpec,
    SandboxTask,
)
from alignment.models.lora import LoRAConfig
from alignment.rl import CriticConfig, LearnerConfig, OptimizerConfig, ReferenceConfig, RolloutConfig, Utility
from alignment.training.reward_model import RewardTrainConfig

LSC_AND = ("LSC AND", "lsc")
RAW_SUM = ("raw sum", "identity")
GROUP_NORMALIZED_SUM = ("group-normalised sum", "identity", "group")
# PPO on the sandbox: 4 optimizer steps per rollout at a smaller learning rate, Monte-Carlo
# returns (gae_lambda = 1) and a critic with its own backbone.
def ppo_overrides() -> dict:
    """The ``RunSpec.learner_overrides`` of a PPO run on the sandbox (a fresh dict each call)."""
    return {"optimizer.learning_rate": 1e-4, "epochs": 2, "minibatches": 2, "critic": fdl.Config(CriticConfig, gae_lambda=1.0)}


def lora_overrides(learning_rate: float, rank: int = 8) -> dict:
    """The ``RunSpec.learner_overrides`` of a run through LoRA adapters of rank ``rank`` on every
    projection, alpha = 2 rank, at ``learning_rate`` (about 10x the full fine-tuning rate, as
    Schulman et al. measured in "LoRA Without Regret", Thinking Machines Lab, 2025)."""
    return {"lora": fdl.Config(LoRAConfig, rank=rank, alpha=2.0 * rank), "optimizer.learning_rate": learning_rate}


def utility(transform: str, normalize: str = "none") -> fdl.Config:
    """The sum over properties of the transformed rewards (``alignment.rl.Utility``), each reward
    first standardised over its prompt's samples when ``normalize="group"``."""
    if normalize == "none":
        return fdl.Config(Utility, transform=transform, aggregator="sum")
    return fdl.Config(Utility, transform=transform, aggregator="sum", normalize=normalize)


def runs(
    kl_coefs: Sequence[float],
    curves: Sequence[tuple[str, ...]] = (LSC_AND, RAW_SUM),
    algorithms: Sequence[str] = ("rloo",),
    properties: tuple[str, ...] | None = None,
    **fields,
) -> list[fdl.Config]:
    """One ``RunSpec`` per (curve, algorithm, KL weight), named ``<curve>-<algorithm>-kl<beta>``
    (plus ``-<property>`` for single-property runs). A curve is ``(label, transform)`` or
    ``(label, transform, normalize)``."""
    out = []
    for label, transform, *normalize in curves:
        for algorithm in algorithms:
            for beta in kl_coefs:
                suffix = "" if properties is None else "-" + "-".join(properties)
                name = f"{label.lower().replace(' ', '_')}-{algorithm}-kl{beta:g}{suffix}"
                overrides = ppo_overrides() if algorithm == "ppo" else {}
                out.append(fdl.Config(RunSpec, name=name, label=label, utility=utility(transform, *normalize), kl_coef=beta,
                                      algorithm=algorithm, properties=properties, learner_overrides=overrides, **fields))
    return out


def configurable(cls, **fields) -> fdl.Config:
    """``fdl.Config(cls, **fields)`` with every nested dataclass value (a default included) a
    config of its own, so that ``set:learner.kl.coef=...`` reaches every field (a frozen default
    instance cannot be set)."""
    config = fdl.Config(cls, **fields)
    for field in dataclasses.fields(cls):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            setattr(config, field.name, configurable(type(value), **{f.name: getattr(value, f.name) for f in dataclasses.fields(value)}))
    return config


def learner(**fields) -> fdl.Config:
    """A ``LearnerConfig`` whose every group (rollout, kl, loss, optimizer, ...) is a config of its own."""
    return configurable(LearnerConfig, **fields)


def sandbox_learner(learning_rate: float = 3e-4, **overrides) -> fdl.Config:
    """Defaults on the sandbox: 16 prompts x 4 samples a step of at most 112 tokens after prompts
    of at most 32, RLOO's learning rate (PPO runs replace some fields: ``ppo_overrides``).

    One length bucket: the sandbox's runs are tens of steps, and there the programs of the extra
    buckets cost more than they save (``benchmarks/length_buckets.py``: 4 buckets save 0.09 s a
    step and compile for 7.8 s more: they pay off after about 90 steps)."""
    fields = dict(prompts_per_step=16, num_samples=4, num_steps=12,
                  rollout=fdl.Config(RolloutConfig, max_prompt_length=32, max_new_tokens=112, length_buckets=1),
                  optimizer=fdl.Config(OptimizerConfig, learning_rate=learning_rate))
    return learner(**{**fields, **overrides})


def reward_training(learning_rate: float, num_steps: int, warmup_steps: int = 0, weight_decay: float = 0.0, **fields) -> fdl.Config:
    """A ``RewardTrainConfig``: AdamW on a cosine schedule after ``warmup_steps``."""
    optimizer = fdl.Config(OptimizerConfig, learning_rate=learning_rate, warmup_steps=warmup_steps, schedule="cosine",
                           weight_decay=weight_decay)
    return fdl.Config(RewardTrainConfig, optimizer=optimizer, num_steps=num_steps, **fields)


def quickstart() -> fdl.Config:
    """The sandbox end to end in minutes on a laptop CPU: BT proxies for helpful and harmless
    (trained on gold-labelled pairs of pi_0's own samples), LSC AND versus the raw sum with RLOO at
    three KL weights, best-of-k, and the report."""
    return fdl.Config(
        Experiment,
        name="quickstart",
        task=fdl.Config(SandboxTask, alignment_prompts=128, eval_prompts=64, eval_samples=2),
        runs=runs(kl_coefs=(0.05, 0.2, 0.8)),
        learner=sandbox_learner(num_steps=10),
        reward_models=fdl.Config(RewardModelSpec, train=reward_training(2e-3, 300, warmup_steps=10, weight_decay=0.01)),
        reference=fdl.Config(ReferenceConfig, num_samples=8, batch_prompts=64),
        best_of_k=fdl.Config(BestOfKSpec, ks=(1, 4, 16), eval_prompts=48),
        evaluation=fdl.Config(EvaluationSpec, every=5),
    )


def paper_sandbox() -> fdl.Config:
    """The reproduction grid on the sandbox (the claims of arXiv 2402.00742 and the GPM's):

    * helpful AND harmless: LSC AND versus the raw sum, PPO and RLOO, at four KL weights;
    * helpful alone: LSC versus the raw reward, PPO and RLOO, at the same KL weights;
    * r_ref sensitivity: LSC AND with RLOO at KL 0.2, q in {0.5, 0.85, 0.95}, empirical versus gaussian;
    * a GPM as the helpfulness reward (GPO through the learner), scored against the other policy
      samples and against pi_0's K base samples, beside the BT run;
    * best-of-k for k in {1, 4, 16, 64}, reranked by LSC AND and by the raw sum.
    """
    kl_coefs = (0.02, 0.05, 0.2, 0.8)
    grid = [
        *runs(kl_coefs, algorithms=("rloo", "ppo")),
        *runs(kl_coefs, curves=(("LSC helpful", "lsc"), ("raw helpful", "identity")), algorithms=("rloo", "ppo"),
              properties=("helpful",)),
    ]
    sensitivity = [
        fdl.Config(RunSpec, name=f"lsc_and-rloo-kl0.2-{method}-q{q:g}", label=f"LSC AND {method} q={q:g}",
                   utility=utility("lsc"), kl_coef=0.2, reference_method=method, quantile=q)
        for method in ("empirical", "gaussian")
        for q in (0.5, 0.85, 0.95)
        if (method, q) != ("empirical", 0.85)  # the main grid's run
    ]
    gpm = [fdl.Config(RunSpec, name=f"gpm_lsc-rloo-kl0.2-helpful-vs_{opponents}", label=f"GPM LSC helpful vs {opponents}",
                      utility=utility("lsc"), kl_coef=0.2, properties=("helpful",), reward_model="gpm", gpm_opponents=opponents)
           for opponents in ("policy", "base")]
    config = quickstart()
    config.name = "paper_sandbox"
    config.task.eval_prompts = 90  # the whole "eval" split of the default sandbox
    config.runs = [*grid, *sensitivity, *gpm]
    config.learner = sandbox_learner(num_steps=12)
    config.best_of_k = fdl.Config(BestOfKSpec, ks=(1, 4, 16, 64), eval_prompts=48)
    config.evaluation = fdl.Config(EvaluationSpec, every=4)
    return config



# paper_regime (docs/paper_regime.md, written before its runs): the pilot's calibration.
REGIME_LEARNING_RATE = 3e-4
REGIME_STEPS = 100
REGIME_JUDGED_STEPS = (2, 4, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80)
REGIME_SEEDS = (0, 1, 2)


def paper_regime() -> fdl.Config:
    """The decisive reproduction on the sandbox (docs/paper_regime.md): RLOO at KL weight 0 for
    100 steps, far enough that the raw rewards are over-optimised, three training seeds per arm;

    * helpful alone: LSC versus the raw reward;
    * helpful AND harmless: LSC AND versus the raw sum and versus the group-normalised sum (each
      reward standardised over its prompt's samples, then summed);
    * proxies whose labels differ in reliability per property (helpfulness at the sandbox's beta 3,
      harmlessness at beta 1) with 10 % of labels flipped;
    * 15 judged checkpoints per run (denser early, where the gold curves move fastest) on the 90
      held-out prompts, 8 policy samples against 8 independent pi_0 samples per prompt;
    * best-of-k for k in {1, 4, 16, 64};
    * the r_ref sweep of claim 7 (LSC AND, q in {0.5, 0.85, 0.95}, empirical and gaussian; one
      seed each) and the GPM claims (a GPM helpfulness proxy beside the BT proxies).
    """
    seeds = dict(seeds=REGIME_SEEDS)
    config = quickstart()
    config.name = "paper_regime"
    config.task.eval_prompts = 90  # the whole "eval" split of the default sandbox
    config.task.eval_samples = 8
    config.task.label_temperatures = {"harmless": 1.0}
    config.task.label_flip = 0.1
    config.runs = [
        *runs((0.0,), curves=(("LSC helpful", "lsc"), ("raw helpful", "identity")), properties=("helpful",), **seeds),
        *runs((0.0,), curves=(LSC_AND, RAW_SUM, GROUP_NORMALIZED_SUM), **seeds),
    ]
    sensitivity = [
        fdl.Config(RunSpec, name=f"lsc_and-rloo-kl0-{method}-q{q:g}", label=f"LSC AND {method} q={q:g}", utility=utility("lsc"),
                   kl_coef=0.0, reference_method=method, quantile=q, seeds=REGIME_SEEDS[:1])
        for method in ("empirical", "gaussian")
        for q in (0.5, 0.85, 0.95)
        if (method, q) != ("empirical", 0.85)  # the main grid's arm
    ]
    config.runs = [*config.runs, *sensitivity]
    config.learner = sandbox_learner(num_steps=REGIME_STEPS, learning_rate=REGIME_LEARNING_RATE)
    config.best_of_k = fdl.Config(BestOfKSpec, ks=(1, 4, 16, 64), eval_prompts=48)
    config.evaluation = fdl.Config(EvaluationSpec, steps=REGIME_JUDGED_STEPS, base_samples=8)
    config.gpm_checks = True
    return config


def smoke() -> fdl.Config:
    """The quickstart shrunk to a few tens of seconds (after the sandbox is cached): one LSC AND
    run of 2 steps, a 20-step proxy, 16 held-out prompts, best-of-k up to 4. For checking a setup
    and for the tests; its numbers mean nothing."""
    config = quickstart()
    config.name = "smoke"
    config.task.alignment_prompts = 16
    config.task.eval_prompts = 16
    config.runs = runs(kl_coefs=(0.2,), curves=(LSC_AND,))
    config.learner = sandbox_learner(num_steps=2, prompts_per_step=4)
    config.reward_models.train.num_steps = 20
    config.reward_models.train.optimizer.warmup_steps = 2
    config.reference.num_samples = 4
    config.reference.batch_prompts = 16
    config.best_of_k = fdl.Config(BestOfKSpec, ks=(1, 4), eval_prompts=8)
    config.evaluation = fdl.Config(EvaluationSpec, every=1)
    return config


# SmolLM2 on real preferences: prompts and responses in tokens, and the hash splits of the
# files' prompts. A quarter of the prompts train the judge (HH-RLHF has 2,312 pairs; the
# default 5 % would leave it about 120), a tenth are held out for judging.
SMOLLM2_PROMPT_TOKENS, SMOLLM2_RESPONSE_TOKENS = 128, 96
SMOLLM2_SPLITS = {"reward_train": 0.35, "reward_eval": 0.25, "policy": 0.3, "eval": 0.1}


def smollm2_helpful_harmless() -> fdl.Config:
    """SmolLM2-135M-Instruct as pi_0 on real preference data, sized for one accelerator:

    * proxies: a Bradley-Terry model with a head per property, fine-tuned from SmolLM2 on the
      "reward_train" pairs of AlpacaEval (helpful, 4,000 pairs) and HH-RLHF harmless-base (harmless,
      all of its ~800);
    * judge: the same kind of model trained on the "reward_eval" pairs (~2,600 and ~600), which the
      proxies never see;
    * runs: LSC AND versus the raw sum with RLOO at KL weights 0.01, 0.05 and 0.2; 400 prompts of
      at most 128 tokens (after the chat template; longer ones are dropped and counted in the
      report's data section), 64 prompts x 4 samples a step, 96 new tokens, 200 steps, judged
      every 50 on 128 held-out prompts x 4 samples;
    * best-of-k for k in {1, 4, 16} on 64 held-out prompts.

    The data come from ``$ALIGNMENT_SHARED_DATA`` or ``../shared/data`` (``set:task.data_dir=...``
    elsewhere). ``fiddler:cpu_check`` shrinks it to minutes on a CPU.
    """
    prompt, response = SMOLLM2_PROMPT_TOKENS, SMOLLM2_RESPONSE_TOKENS
    return fdl.Config(
        Experiment,
        name="smollm2_helpful_harmless",
        task=fdl.Config(PretrainedTask, model="smollm2-135m", decoder_overrides={"dtype": "bfloat16"}, splits=dict(SMOLLM2_SPLITS),
                        reward_pairs=4000, judge_pairs=4000, alignment_prompts=400, eval_prompts=128, eval_samples=4),
        runs=runs(kl_coefs=(0.01, 0.05, 0.2)),
        learner=learner(prompts_per_step=64, num_samples=4,
                        rollout=fdl.Config(RolloutConfig, max_prompt_length=prompt, max_new_tokens=response),
                        optimizer=fdl.Config(OptimizerConfig, learning_rate=2e-6, warmup_steps=10),
                        minibatches=2, num_steps=200, log_every=5, checkpoint_every=50),
        reward_models=fdl.Config(RewardModelSpec, batch_size=32, train_max_length=384, max_length=prompt + response + 32,
                                 train=reward_training(1e-5, 300, warmup_steps=20, weight_decay=0.01)),
        reference=fdl.Config(ReferenceConfig, num_samples=16, batch_prompts=64),
        best_of_k=fdl.Config(BestOfKSpec, ks=(1, 4, 16), eval_prompts=64),
        evaluation=fdl.Config(EvaluationSpec, every=50),
    )


def cpu_check(config: fdl.Config) -> None:
    """A fiddler that shrinks ``smollm2_helpful_harmless`` to minutes on a 2-core CPU: linear-probe
    reward models (``trainable="head"``) of 4 steps on 16 pairs a property, one LSC AND and one
    raw-sum run of 2 steps of 2 prompts x 2 samples with 16 new tokens, 4 held-out prompts,
    best-of-k up to 2. It checks that the pipeline runs; its numbers mean nothing."""
    config.task.reward_pairs = config.task.judge_pairs = 16
    config.task.alignment_prompts = config.task.eval_prompts = 4
    config.task.eval_samples = 2
    config.runs = runs(kl_coefs=(0.05,))
    for field, value in dict(prompts_per_step=2, num_samples=2, minibatches=1, num_steps=2, log_every=1, checkpoint_every=0).items():
        setattr(config.learner, field, value)
    config.learner.rollout.max_new_tokens = 16
    config.learner.optimizer.warmup_steps = 0
    config.reward_models.batch_size, config.reward_models.train_max_length = 8, 64
    config.reward_models.max_length = config.learner.rollout.max_prompt_length + 32
    config.reward_models.train = reward_training(1e-3, 4, trainable="head")
    config.reference.num_samples, config.reference.batch_prompts = 4, 4
    config.best_of_k = fdl.Config(BestOfKSpec, ks=(1, 2), eval_prompts=4)
    config.evaluation.every = 0
