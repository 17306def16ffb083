"""Running an ``Experiment``: reward models, reference rewards, learner runs, best-of-k, the report.

``run_experiment(experiment, workdir)`` runs the stages in order and writes under ``workdir``::

    reward_models/<kind>[-<property>]/   the proxies' parameters (reused when present; a sandbox
                                         task's are shared through the sandbox cache: reward_models.py)
    reward_models/judge/                 the judge's, for a task whose judge is a reward model
    reference/                           the reference stage's cache (alignment.rl.reference)
    runs/<run>/                          each learner's metrics, checkpoints, evaluations.json, result.json
    gpm_checks.json                      the GPM claims measured, when a run uses a GPM or gpm_checks is set
    report/                              results.json, report.md and the plots (alignment.evaluation)

A run whose ``result.json`` exists is not run again, and a run interrupted after a checkpoint
continues from it, so an interrupted experiment resumes where it stopped. Every reused output
records the config that made it (``made_with.json``): reusing it under another config is an
error that names the differing fields. Every checkpoint of a
run is judged on the held-out prompts (``judging.PolicyJudge``): sampled KL(pi || pi_0), the
judge's win rates over pi_0 per property and for AND, the proxies' mean rewards and per-prompt
gains; a run's result is a ``results.RunResult``. The reward models are trained and cached by
``reward_models.py``.
With several processes (``alignment.parallel.initialize``) each runs every stage on the same
data and seeds, and only the primary process writes the JSON files and the report (the learner
itself is tested across two processes; a whole experiment is not yet).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from flax import nnx

from alignment import evaluation
from alignment.experiment.gpm_checks import gpm_checks as measure_gpm_claims
from alignment.experiment.judging import JudgedSamples, PolicyJudge, attach_samples, save_samples, without_samples
from alignment.experiment.outputs import copy_module, write_json
from alignment.experiment.probes import measure_probes
from alignment.experiment.results import RunResult, read_history, training_summary
from alignment.experiment.reward_models import Proxies, check_made_with, train_judge, train_reward_models
from alignment.experiment.spec import Experiment, RunSpec, SandboxTask
from alignment.experiment.tasks import TaskData, prepare_task
from alignment.files import DamagedFileError, json_default, read_json
from alignment.models.heads import ValueModel
from alignment.parallel import distributed, make_mesh
from alignment.rl.best_of_k import rerank
from alignment.rl.learner import Learner
from alignment.rl.reference import BaseRewards, compute_base_rewards
from alignment.rl.scoring import PropertySubset, RewardFunction
from alignment.sandbox.build import cache_root
GPM_CHECK_PROMPTS = 8  # held-out prompts whose pi_0 samples the GPM checks score pairwise


@contextlib.contextmanager
def stage(name: str, seconds: dict[str, float] | None = None, key: str | None = None):
    """Prints a line when a stage starts and one with its wall time when it ends (the learners
    and trainers add progress bars); adds the time to ``seconds[key or name]`` when given."""
    start = time.perf_counter()
    print(f"[experiment] {name} ...", flush=True)
    yield
    elapsed = time.perf_counter() - start
    if seconds is not None:
        key = key or name
        seconds[key] = round(seconds.get(key, 0.0) + elapsed, 1)
    print(f"[experiment] {name}: {elapsed:.1f} s", flush=True)


def run_reward_functions(proxies: Sequence[RewardFunction], run: RunSpec, properties: Sequence[str]) -> list[RewardFunction]:
    """The ``proxies`` (of ``run``'s kind) that score its properties, restricted to them."""
    wanted = run.properties or tuple(properties)
    unknown = [p for p in wanted if p not in properties]
    if unknown:
        raise ValueError(f"run {run.name!r} optimises unknown properties {unknown}; valid: {list(properties)}")
    fns = [PropertySubset(fn, wanted) for fn in proxies]
    return [fn for fn in fns if fn.properties]


# --------------------------------------------------------------------------------- judging


# --------------------------------------------------------------------------------- the pipeline


class Pipeline:
    """The stages of one experiment under ``workdir``, each run on first use and kept.

    ``task``, ``proxies``, ``base_rewards``, ``eval_base_rewards``, ``judge`` and ``pi_0`` are
    computed when first read (a notebook reads them one by one); ``align(run)`` trains and
    judges one run, ``best_of_k()`` and ``results()`` the rest, and ``run()`` does it all.
    """

    def __init__(self, experiment: Experiment, workdir: str | Path, *, cache_dir: str | Path | None = None, progress: bool = True):
        self.experiment, self.cache_dir, self.progress = experiment, cache_dir, progress
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.mesh = None if experiment.mesh is None else make_mesh(**dataclasses.asdict(experiment.mesh))
        self.run_results: dict[str, RunResult] = {}
        self.started = time.perf_counter()
        self.stage_seconds: dict[str, float] = {}
        self.reused: list[str] = []  # runs read back from an earlier invocation

    @functools.cached_property
    def task(self) -> TaskData:
        """The task's data, with its judge: a task without one gets a held-out reward model
        (``train_judge``), trained once and kept in ``workdir/reward_models/judge``."""
        with stage("task", self.stage_seconds):
            task = prepare_task(self.experiment.task, self.cache_dir, rollout=self.experiment.learner.rollout, mesh=self.mesh)
        if task.judge is not None:
            return task
        with stage("judge reward model", self.stage_seconds):
            judge = train_judge(self.experiment, task, self.workdir / "reward_models" / "judge", mesh=self.mesh, progress=self.progress)
        return dataclasses.replace(task, judge=judge)

    @functools.cached_property
    def proxies(self) -> Proxies:
        with stage("reward models", self.stage_seconds):
            # Sandbox proxies are also kept in the sandbox cache, shared by experiments (reward_models.py).
            cache = cache_root(self.cache_dir) / "reward_models" if isinstance(self.experiment.task, SandboxTask) else None
            return train_reward_models(self.experiment, self.task, self.workdir / "reward_models", mesh=self.mesh,
                                       progress=self.progress, cache=cache)

    def _base_rewards(self, chats, reward_fns, config=None) -> BaseRewards:
        return compute_base_rewards(self.task.policy, self.task.tokenizer, chats, reward_fns, config or self.experiment.reference,
                                    cache_dir=self.workdir / "reference", rollout=self.experiment.learner.rollout, mesh=self.mesh)

    @functools.cached_property
    def base_rewards(self) -> dict[str, BaseRewards]:
        """The reference stage on the alignment prompts, per reward-model kind."""
        with stage("reference rewards", self.stage_seconds):
            return {kind: self._base_rewards(self.task.alignment_chats, fns) for kind, fns in self.proxies.items()}

    @functools.cached_property
    def eval_base_rewards(self) -> BaseRewards:
        """The reference stage on the held-out prompts (BT proxies): their r_ref is the base
        reward of the per-prompt diagnostics and of best-of-k's reranking."""
        with stage("held-out reference rewards", self.stage_seconds):
            return self._base_rewards(self.task.eval_chats, self.proxies["bt"])

    @property
    def eval_references(self) -> np.ndarray:
        """``[eval prompts, P]`` r_ref of the held-out prompts (empirical, the default quantile)."""
        references = self.eval_base_rewards.references()
        return np.stack([references[p] for p in self.task.properties], axis=-1)

    @functools.cached_property
    def judge(self) -> PolicyJudge:
        t, e = self.experiment.task, self.experiment.evaluation
        return PolicyJudge(self.task, self.task.policy, self.proxies["bt"], rollout=self.experiment.learner.rollout,
                           samples=t.eval_samples, base_samples=e.base_samples or t.eval_samples, seed=e.seed, mesh=self.mesh)

    @functools.cached_property
    def pi_0(self) -> JudgedSamples:
        """pi_0's samples on the held-out prompts, judged: the ``old`` side of every win rate."""
        with stage("judging pi_0", self.stage_seconds):
            return self.judge.base(self.task.policy)

    def align(self, run: RunSpec) -> RunResult:
        """Trains ``run``, judging every ``evaluation.every`` steps and the last; returns its
        result (``as_dict()``: a ``runs`` entry of ``alignment.evaluation``'s results). A run whose
        ``result.json`` exists is read back; an interrupted one continues from its checkpoint.
        Every checkpoint record is computed from its stored per-sample arrays (``judged/``) with
        this code's ``evaluate_policy``, so a report always reflects the current evaluation."""
        if run.seeds is not None and len(run.seeds) > 1:
            raise ValueError(f"run {run.name!r} has seeds {run.seeds}: align each of run.repeated() (Experiment.learner_runs)")
        directory = self.workdir / "runs" / run.name
        try:
            result, checkpoints = self._reused_result(directory, self._made_with(run))
        except DamagedFileError as error:  # never trusted: the run is recomputed
            print(f"[experiment] {error}: run {run.name} starts over", flush=True)
            if distributed.is_primary():
                shutil.rmtree(directory)
            result, checkpoints = self._reused_result(directory, self._made_with(run))
        if result is None:
            try:
                result = self._train_and_judge(run, directory)
            except DamagedFileError as error:  # e.g. no checkpoint of an interrupted run restores
                print(f"[experiment] {error}: run {run.name} starts over", flush=True)
                if distributed.is_primary():
                    shutil.rmtree(directory)
                self._reused_result(directory, self._made_with(run))
                result = self._train_and_judge(run, directory)
            checkpoints = attach_samples(directory, result.checkpoints)
        else:
            self.reused.append(run.name)
        result.checkpoints = [self._checkpoint_record(result.optimised, c["step"], c["samples"]) for c in checkpoints]
        self.run_results[run.name] = result
        return result

    def _reused_result(self, directory: Path, made_with: dict) -> tuple[RunResult | None, list[dict]]:
        """A finished run's stored result and checkpoint records with their arrays, or
        ``(None, [])`` when it has not finished (its directory is made, with its ``made_with.json``,
        if there is none). ``DamagedFileError`` when a kept file of the run cannot be read."""
        if not directory.is_dir():
            directory.mkdir(parents=True)
            write_json(directory / "made_with.json", made_with)
            return None, []
        check_made_with(directory / "made_with.json", made_with)
        if (directory / "evaluations.json").is_file():
            read_json(directory / "evaluations.json")  # an interrupted run resumes from it: it must parse
        if not (directory / "result.json").is_file():
            return None, []
        result = RunResult.from_dict(read_json(directory / "result.json"), directory / "result.json")
        return result, attach_samples(directory, result.checkpoints)

    def _made_with(self, run: RunSpec) -> dict:
        """What a run's outputs depend on: checked before they are reused."""
        e = self.experiment
        return {name: dataclasses.asdict(value) for name, value in (
            ("run", run), ("learner", run.learner_config(e.learner)), ("task", e.task), ("reward_models", e.reward_models),
            ("reference", e.reference), ("evaluation", e.evaluation))}

    def _train_and_judge(self, run: RunSpec, directory: Path) -> RunResult:
        task, experiment = self.task, self.experiment
        properties = tuple(run.properties or task.properties)
        proxies, base = self.proxies[run.reward_model], self.base_rewards[run.reward_model]
        if run.reward_model == "gpm" and run.gpm_opponents == "base":
            # GPO against pi_0: each GPM scores responses against the K stored base responses of
            # the prompt, and r_ref comes from the base responses scored the same way.
            proxies = [fn.against(task.alignment_chats, base.texts) for fn in proxies]
            with stage("reference rewards against base opponents", self.stage_seconds):
                base = self._base_rewards(task.alignment_chats, proxies)
        reward_fns = run_reward_functions(proxies, run, task.properties)
        references = base.references(run.reference_method, quantile=run.quantile)
        config = run.learner_config(experiment.learner)
        _ = self.eval_references, self.pi_0  # both stages run, and are timed, before this run's stage
        with stage(f"run {run.name}", self.stage_seconds, "learner runs"):
            value = ValueModel(copy_module(task.policy), rngs=nnx.Rngs(config.seed + 1)) if config.algorithm_spec.critic else None
            base_policy = None if config.lora else task.policy  # with LoRA, pi_0 is the policy with its adapters off
            learner = Learner(copy_module(task.policy), base_policy, task.tokenizer, reward_fns, task.alignment_chats,
                              {p: references[p] for p in properties}, config, value_model=value, mesh=self.mesh, workdir=directory)
            evaluations_file = directory / "evaluations.json"
            evaluations = read_json(evaluations_file) if evaluations_file.is_file() else []
            if any(path.name.isdigit() for path in (directory / "checkpoints").glob("*")):
                try:
                    learner.restore()  # an interrupted run continues from its newest checkpoint that restores
                except DamagedFileError:
                    learner.close()
                    raise
            evaluations = [e for e in evaluations if e["step"] <= learner.step]
            for stop in experiment.evaluation.judged_steps(config.num_steps):
                if stop < learner.step or any(e["step"] == stop for e in evaluations):
                    continue  # judged before, or passed (a checkpoint between two judged steps)
                learner.run(stop, progress=self.progress)  # nothing to run when it stopped here before being judged
                samples = self.judge(learner.trainable.policy, run.name, stop).arrays()
                save_samples(directory, stop, samples)
                evaluations.append(self._checkpoint_record(properties, stop, samples))
                write_json(evaluations_file, without_samples(evaluations))
            learner.close()
        result = RunResult.of(run, config, properties, training_summary(read_history(directory / "metrics.jsonl")),
                              without_samples(evaluations))
        write_json(directory / "result.json", result.as_dict())
        return RunResult.from_dict(json.loads(json.dumps(result.as_dict(), default=json_default)), directory / "result.json")

    def _checkpoint_record(self, optimised: Sequence[str], step: int, samples: dict[str, np.ndarray]) -> dict:
        """One judged checkpoint: ``evaluate_policy`` of its samples against pi_0's, with the
        samples attached (a ``checkpoints`` entry of the results)."""
        record = evaluation.evaluate_policy(
            samples["judge"], self.pi_0.judge, list(self.task.properties), kl=samples["kl"], new_proxy=samples["proxy"],
            base_reward=self.eval_references, optimised=list(optimised), step=step, level=self.experiment.evaluation.level)
        return {**json.loads(json.dumps(record, default=json_default)), "samples": samples}  # Estimates as their JSON dicts

    def best_of_k(self) -> list[dict]:
        """Best-of-k from pi_0 on the first ``best_of_k.eval_prompts`` held-out prompts: ``max(ks)``
        samples each (cached), reranked by each utility with r_ref from the held-out reference
        samples; the chosen response is judged against each of pi_0's samples. KL(best-of-k ||
        pi_0) is the analytic ``log k - (k - 1) / k``."""
        spec, task = self.experiment.best_of_k, self.task
        if spec is None:
            return []
        n = spec.eval_prompts
        references = {p: r[:n] for p, r in self.eval_base_rewards.references(spec.reference_method, quantile=spec.quantile).items()}
        old = self.pi_0.judge[:n]
        with stage("best-of-k", self.stage_seconds):
            chats = task.eval_chats[:n]
            config = dataclasses.replace(self.experiment.reference, num_samples=max(spec.ks), seed=self.experiment.reference.seed + 1)
            scored = self._base_rewards(chats, self.proxies["bt"], config)
            flat_chats = [chat for chat in chats for _ in range(scored.num_samples)]
            judged = task.judge(flat_chats, scored.texts.reshape(-1).tolist()).reshape(n, scored.num_samples, -1)
            out = []
            for label, utility in spec.utilities:
                for k in spec.ks:
                    index = rerank(scored, utility, references, k).index
                    chosen = judged[np.arange(n), index][:, None]  # [n, 1, P], against each of pi_0's samples
                    entry = evaluation.evaluate_policy(chosen, old, list(task.properties), level=self.experiment.evaluation.level)
                    entry["samples"] = {"judge": np.asarray(chosen[:, 0], np.float32)}
                    out.append({"label": label, "transform": utility.transform, "aggregator": utility.aggregator,
                                "normalize": utility.normalize, "k": k, "kl": evaluation.best_of_k_kl(k), **entry})
        return out

    @functools.cached_property
    def gpm_checks(self) -> dict | None:
        """``results["gpm"]``: the GPM claims measured (``alignment.experiment.gpm_checks``) on the
        first GPM proxy, pi_0's samples on the first held-out prompts and the task's held-out pairs
        of its property; computed once and kept in ``workdir/gpm_checks.json``. ``None`` when the
        experiment trains no GPM."""
        if "gpm" not in self.proxies:
            return None
        path = self.workdir / "gpm_checks.json"
        if path.is_file():
            try:
                return read_json(path)
            except DamagedFileError as error:
                print(f"[experiment] {error}: measuring the GPM claims again", flush=True)
        task, gpm = self.task, self.proxies["gpm"][0]
        n = min(GPM_CHECK_PROMPTS, len(task.eval_chats))
        heldout = None if task.heldout_batches is None else [b for _, b in task.heldout_batches(self.experiment.reward_models, gpm.properties)]
        responses = self.pi_0.texts[:n].tolist()
        with stage("GPM checks", self.stage_seconds):
            checks = measure_gpm_claims(gpm, self.proxies["bt"], chats=task.eval_chats[:n], responses=responses, heldout=heldout,
                                        seed=self.experiment.reward_models.seed)
        write_json(path, checks)
        return checks

    def results(self, best_of_k: Sequence[dict] = ()) -> dict:
        """The results structure of ``alignment.evaluation`` over the runs aligned so far (with
        ``"gpm"``, the GPM checks, when the experiment trains a GPM)."""
        computed = self.__dict__  # the cached stages computed so far (aligning a run computes both reference stages)
        return {
            "experiment": self.experiment.name, "judge": self.task.judge_name, "properties": list(self.task.properties),
            "level": self.experiment.evaluation.level,
            "base": evaluation.summarize_base(self.pi_0.judge, self.task.properties, proxy=self.pi_0.proxy),
            "pi_0": {"judge": np.asarray(self.pi_0.judge, np.float32), "proxy": np.asarray(self.pi_0.proxy, np.float32)},
            **({"eval_base_reward": np.asarray(self.eval_references, np.float32)} if "eval_base_rewards" in computed else {}),
            **({"gradient_batch": self.gradient_batch} if "base_rewards" in computed else {}),
            "runs": [self.run_results[run.name].as_dict() for run in self.experiment.learner_runs() if run.name in self.run_results],
            "best_of_k": list(best_of_k),
            **({"probes": self.probes} if self.probes else {}),
            **({"data": self.task.summary} if self.task.summary else {}),
            **({"gpm": self.gpm_checks} if self.gpm_checks is not None else {}),
            "cost": {"wall_seconds": round(time.perf_counter() - self.started, 1), "learner_runs": len(self.run_results),
                     "reused_runs": len(self.reused), "stages": dict(self.stage_seconds),
                     "note": "this invocation only: reused runs (read back from the workdir) cost nothing here"},
        }

    @property
    def gradient_batch(self) -> dict[str, np.ndarray]:
        """Claim 1's fixed batch: the BT proxies' rewards ``[prompts, K, P]`` of pi_0's K reference
        samples on the alignment prompts, and their r_ref ``[prompts, P]`` (empirical, the default quantile)."""
        bt, properties = self.base_rewards["bt"], self.task.properties
        references = bt.references()
        return {"rewards": np.stack([np.asarray(bt.rewards[p], np.float32) for p in properties], axis=-1),
                "references": np.stack([np.asarray(references[p], np.float32) for p in properties], axis=-1)}

    @functools.cached_property
    def probes(self) -> list[dict]:
        """What the BT proxies reward that the judge does not: ``alignment.experiment.probes``'
        table on one pi_0 sample per held-out prompt (sandbox tasks only; [] otherwise)."""
        with stage("probes", self.stage_seconds):
            return measure_probes(self.task, self.proxies["bt"], [str(texts[0]) for texts in self.pi_0.texts],
                                  seed=self.experiment.evaluation.seed)

    def run(self) -> dict:
        """Every stage in order, then the report under ``workdir/report``; returns the results."""
        for run in self.experiment.learner_runs():
            self.align(run)
        _ = self.base_rewards, self.eval_base_rewards  # claims 1 and 4 read them (cached on disk when runs are reused)
        results = self.results(self.best_of_k())
        if distributed.is_primary():
            with stage("report", self.stage_seconds):
                evaluation.write_report(results, self.workdir / "report")
        return results


def run_experiment(experiment: Experiment, workdir: str | Path, *, cache_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Runs every stage of ``experiment`` under ``workdir`` (module docstring); returns the
    results that ``workdir/report`` renders."""
    return Pipeline(experiment, workdir, cache_dir=cache_dir, progress=progress).run()
