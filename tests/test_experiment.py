"""Experiments: the Fiddle configs build, bad specs fail clearly, and the launcher runs a
command-line sweep (one directory per value, each with its resolved config and report) that
resumes without redoing finished runs."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import fiddle as fdl
import numpy as np
import pytest

from alignment import configs, evaluation, nested
from alignment.experiment import Experiment, RewardModelSpec, RunSpec, SandboxTask
from alignment.rl import CriticConfig, LearnerConfig, Utility
from alignment.training import RewardTrainConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", configs.EXPERIMENTS)
def test_every_experiment_config_builds(name):
    experiment = fdl.build(getattr(configs, name)())
    assert isinstance(experiment, Experiment) and experiment.runs
    for run in experiment.runs:
        learner = run.learner_config(experiment.learner)
        assert {path: nested.get(learner, path) for path in run.learner_fields()} == run.learner_fields()
        assert run.kl_coef is not None  # every named experiment's runs set their KL weight
    # Every leaf of the base learner is reachable by set: (no frozen default instance on the way).
    config = getattr(configs, name)()
    for path in nested.leaves(experiment.learner):
        node = config.learner
        for part in path.split(".")[:-1]:
            node = getattr(node, part)
        assert isinstance(node, fdl.Buildable), f"set:learner.{path} would fail: {path.rsplit('.', 1)[0]} is {node!r}"


def test_paper_sandbox_covers_the_grid():
    experiment = fdl.build(configs.paper_sandbox())
    runs, learners = experiment.runs, [r.learner_config(experiment.learner) for r in experiment.runs]
    assert {(c.utility.transform, c.algorithm, r.properties) for r, c in zip(runs, learners)} >= {
        (t, a, p) for t in ("lsc", "identity") for a in ("ppo", "rloo") for p in (None, ("helpful",))
    }
    assert {(r.reference_method, r.quantile) for r in runs} == {(m, q) for m in ("empirical", "gaussian") for q in (0.5, 0.85, 0.95)}
    assert {r.gpm_opponents for r in runs if r.reward_model == "gpm"} == {"policy", "base"}
    ppo = next(r for r in runs if r.algorithm == "ppo")
    assert ppo.learner_config(fdl.build(configs.paper_sandbox()).learner).epochs == 2


def test_bad_specs_name_the_problem():
    with pytest.raises(ValueError, match="unknown LearnerConfig fields: optimizer.learning_rte: optimizer has no field 'learning_rte'"):
        RunSpec("a", "A", learner_overrides={"optimizer.learning_rte": 1.0})
    with pytest.raises(ValueError, match="learner_overrides sets \\['rollout.max_new_tokens'\\], but the rollout is the experiment's"):
        RunSpec("a", "A", learner_overrides={"rollout.max_new_tokens": 8})
    with pytest.raises(ValueError, match="run 'a': rloo has no critic"):
        RunSpec("a", "A", learner_overrides={"critic": CriticConfig()}).learner_config(LearnerConfig())
    with pytest.raises(ValueError, match="unknown reference_method 'median'; valid: empirical, gaussian"):
        RunSpec("a", "A", reference_method="median")
    with pytest.raises(ValueError, match="reward_models.train.objective='gpm' would not be read"):
        RewardModelSpec(train=RewardTrainConfig(objective="gpm"))
    with pytest.raises(ValueError, match="run names must be unique; repeated: \\['a'\\]"):
        Experiment("x", SandboxTask(), runs=[RunSpec("a", "A"), RunSpec("a", "B", utility=Utility("identity"))])


def test_a_run_inherits_what_it_does_not_set():
    base = fdl.build(configs.smoke()).learner
    inherited = RunSpec("a", "A").learner_config(base)
    assert (inherited.kl, inherited.algorithm, inherited.utility) == (base.kl, base.algorithm, base.utility)
    own = RunSpec("b", "B", kl_coef=0.7, algorithm="gspo", learner_overrides={"epochs": 2, "optimizer.learning_rate": 0.1},
                  seeds=(3,)).learner_config(base)
    assert (own.kl.coef, own.algorithm, own.epochs, own.seed) == (0.7, "gspo", 2, 3)
    assert own.optimizer == dataclasses.replace(base.optimizer, learning_rate=0.1) and own.kl.placement == base.kl.placement
    experiment = Experiment("x", SandboxTask(), runs=[RunSpec("a", "A"), RunSpec("b", "B", kl_coef=0.7)])
    assert experiment.shadowed(["kl.coef", "num_steps"]) == ["learner.kl.coef is set by run 1 ('b'): kl.coef = 0.7, which wins"]
    assert experiment.shadowed(["kl"]) == ["learner.kl is set by run 1 ('b'): kl.coef = 0.7, which wins"]
    assert not experiment.shadowed(["kl.placement"])


def test_a_sweep_of_a_learner_field_that_runs_set_is_refused_naming_the_run(tmp_path):
    """Every named experiment sets each run's KL weight, so sweeping the base learner's would run
    the same experiment twice: the launcher refuses before anything runs or is written."""
    done = _train("--config", "config:smoke", "--config", "sweep:values('learner.kl.coef', [0.05, 0.2])",
                  "--workdir", str(tmp_path / "kl"), cache=tmp_path)
    assert done.returncode != 0
    assert "learner.kl.coef is set by run 0 ('lsc_and-rloo-kl0.2'): kl.coef = 0.2, which wins" in done.stderr, done.stderr[-2000:]
    assert "set:runs[0].kl_coef" in done.stderr and not (tmp_path / "kl").exists()
    # The same through set:.
    done = _train("--config", "config:smoke", "--config", "set:learner.kl.coef=0.3", "--workdir", str(tmp_path / "kl"), cache=tmp_path)
    assert done.returncode != 0 and "learner.kl.coef is set by run 0" in done.stderr


def test_an_unwritable_workdir_stops_the_launcher_naming_the_file(tmp_path):
    """A workdir through a regular file (as root, permission bits would not stop a write): the
    command ends with exit code 74 and a line naming the file it could not write, before any stage."""
    (tmp_path / "a_file").write_text("")
    workdir = tmp_path / "a_file" / "run"
    done = _train("--config", "config:smoke", "--workdir", str(workdir), cache=tmp_path)
    assert done.returncode == 74, done.stderr[-2000:]
    assert f"[experiment] stopped: [Errno 20] cannot write the file to {workdir}/config.json: Not a directory" in done.stdout
    assert "[experiment] task" not in done.stdout


def _train(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "launch" / "train.py"), "--sandbox_cache", str(cache), "--noprogress", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def test_a_command_line_sweep_runs_one_experiment_per_value_and_resumes(box, tmp_path):
    cache = box.directory.parent  # the session's sandbox, already built
    sweep = "sweep:values('runs[0].kl_coef', [0.1, 0.5])"
    done = _train("--config", "config:smoke", "--config", sweep, "--workdir", str(tmp_path), cache=cache)
    assert done.returncode == 0, done.stderr[-3000:]
    for value in (0.1, 0.5):
        directory = tmp_path / f"runs_0_.kl_coef={value}"  # the override, made a safe file name
        assert f"runs[0].kl_coef: float | None = {value}" in (directory / "config.txt").read_text()
        assert json.loads((directory / "config.json").read_text())
        results = json.loads((directory / "report" / "results.json").read_text())
        assert [run["kl_coef"] for run in results["runs"]] == [value]
        assert [c["step"] for c in results["runs"][0]["checkpoints"]] == [1, 2]
        assert {c["claim"] for c in results["claims"]} >= {"1", "5", "GPM 1"}
        assert "## Claims" in (directory / "report" / "report.md").read_text()
        assert (directory / "report" / "win_rate_vs_kl.png").stat().st_size > 0
    assert done.stdout.count("[experiment] run lsc_and-rloo-kl0.2: ") == 2

    # The same experiment again in its directory: the finished run is read back, not retrained.
    directory = tmp_path / "runs_0_.kl_coef=0.1"
    again = _train("--config", "config:smoke", "--config", "set:runs[0].kl_coef=0.1", "--workdir", str(directory), cache=cache)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[experiment] report" in again.stdout and "[experiment] run " not in again.stdout
    saved = json.loads((directory / "runs" / "lsc_and-rloo-kl0.2" / "result.json").read_text())
    reported = evaluation.load_results(directory / "report")["runs"][0]["checkpoints"]
    assert [{k: v for k, v in c.items() if k != "samples"} for c in reported] == saved["checkpoints"]
    for checkpoint in reported:  # the per-sample arrays travel with the report, equal to the run's own
        with np.load(directory / "runs" / "lsc_and-rloo-kl0.2" / "judged" / f"step_{checkpoint['step']}.npz") as judged:
            np.testing.assert_array_equal(checkpoint["samples"]["judge"], judged["judge"])

    # A kept file cut short (as by a crash of an older version mid-write: writes are atomic now) is
    # named and recomputed, never trusted: the run starts over and its results come out the same.
    damaged = tmp_path / "runs_0_.kl_coef=0.5"
    before = json.loads((damaged / "report" / "results.json").read_text())["runs"][0]["checkpoints"]
    result_file = damaged / "runs" / "lsc_and-rloo-kl0.2" / "result.json"
    result_file.write_text(result_file.read_text()[:100])
    redone = _train("--config", "config:smoke", "--config", "set:runs[0].kl_coef=0.5", "--workdir", str(damaged), cache=cache)
    assert redone.returncode == 0, redone.stderr[-3000:]
    assert f"[experiment] {result_file} is damaged (truncated or not JSON" in redone.stdout
    assert "run lsc_and-rloo-kl0.2 starts over" in redone.stdout
    assert json.loads((damaged / "report" / "results.json").read_text())["runs"][0]["checkpoints"] == before

    # Another config in that directory is an error naming what differs, never a silent reuse.
    changed = _train("--config", "config:smoke", "--config", "set:runs[0].kl_coef=0.1", "--config", "set:learner.num_steps=3",
                     "--workdir", str(directory), cache=cache)
    assert changed.returncode != 0 and "made with another config (differs at learner.num_steps)" in changed.stderr


def test_an_unknown_config_name_lists_the_valid_ones(tmp_path):
    done = _train("--config", "config:quikstart", "--workdir", str(tmp_path), cache=tmp_path)
    assert done.returncode != 0
    assert "quikstart" in done.stderr and "quickstart, smoke" in done.stderr
