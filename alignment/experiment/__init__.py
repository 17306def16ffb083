"""Experiments: the whole pipeline of a paper-style run as one config (``spec``).

An ``Experiment`` (built by Fiddle from ``configs/``, or by hand in a notebook) names the task,
the proxy reward models, the reference stage, the learner runs, best-of-k and the evaluation;
``run_experiment(experiment, workdir)`` runs it to a report (``runner``), one stage function
at a time in a notebook through ``Pipeline`` (``.task``, ``.proxies``, ``.base_rewards``,
``.align(run)``, ``.best_of_k()``, ...).
"""

from alignment.experiment.spec import (
    BestOfKSpec,
    EvaluationSpec,
    Experiment,
    MeshSpec,
    PretrainedTask,
    RewardModelSpec,
    RunSpec,
    SandboxTask,
    Task,
)
from alignment.experiment.reward_models import train_judge, train_reward_models
from alignment.experiment.compilation import use_compilation_cache
from alignment.experiment.judging import PolicyJudge
from alignment.experiment.results import RunResult
from alignment.experiment.runner import Pipeline, run_experiment
from alignment.experiment.tasks import TaskData, prepare_task
from alignment.experiment.probes import measure_probes

__all__ = [
    "BestOfKSpec",
    "EvaluationSpec",
    "Experiment",
    "MeshSpec",
    "PretrainedTask",
    "RewardModelSpec",
    "RunResult",
    "RunSpec",
    "Pipeline",
    "PolicyJudge",
    "SandboxTask",
    "Task",
    "TaskData",
    "measure_probes",
    "prepare_task",
    "run_experiment",
    "train_judge",
    "train_reward_models",
    "use_compilation_cache",
]
