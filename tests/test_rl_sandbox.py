"""Each learner on the gold-reward sandbox, through the experiment pipeline: pi_0 is the
sandbox's SFT policy, the proxies a Bradley-Terry model (one head per property) trained on the
sandbox's pairs, the judge the gold utilities on 90 held-out prompts x 2 samples.

A short run at a moderate KL weight must raise the proxy utility (LSC AND) and the gold
helpfulness win rate over pi_0. The gold AND win rate (better than pi_0 on both properties) is
not asserted: in this setting it stays at or below the AND loss rate, because the policies
learn to refuse less and to state more hazards on risky prompts, which the proxy helpfulness
rewards more than the proxy harmlessness penalises (``pytest -s`` prints the numbers; the
``paper_sandbox`` experiment measures it over a KL sweep).
"""

import json

import fiddle as fdl
import numpy as np
import pytest

from alignment import configs
from alignment.configs.experiments import PPO_OVERRIDES, sandbox_learner, utility
from alignment.experiment import Pipeline, RunSpec

LEARNERS = ("ppo", "rloo", "grpo")


@pytest.fixture(scope="module")
def pipeline(box, tmp_path_factory):
    config = configs.quickstart()
    config.name = "learners"
    config.task.eval_prompts = 90
    config.runs = [
        fdl.Config(RunSpec, name=algorithm, label="LSC AND", utility=utility("lsc"), kl_coef=0.2, algorithm=algorithm,
                   learner_overrides=dict(PPO_OVERRIDES) if algorithm == "ppo" else {})
        for algorithm in LEARNERS
    ]
    config.learner = sandbox_learner(num_steps=12)
    config.best_of_k = None
    config.evaluation.every = 0  # judge the last step only
    pipeline = Pipeline(fdl.build(config), tmp_path_factory.mktemp("learners"), cache_dir=box.directory.parent, progress=False)
    for run in pipeline.experiment.runs:
        pipeline.align(run)
    return pipeline


@pytest.mark.parametrize("algorithm", LEARNERS)
def test_learner_raises_the_proxy_utility_and_the_gold_helpfulness(pipeline, algorithm):
    history = [json.loads(line) for line in (pipeline.workdir / "runs" / algorithm / "metrics.jsonl").read_text().splitlines()]
    start, end = history[0]["utility"], np.mean([h["utility"] for h in history[-3:]])
    final = pipeline.run_results[algorithm]["checkpoints"][-1]
    win, loss = final["win_rate"], final["loss_rate"]
    print(f"{algorithm}: proxy utility {start:.3f} -> {end:.3f}, sampled KL {final['kl']['mean']:.2f}, gold helpful win rate "
          f"{win['helpful']['mean']:.3f}, gold AND wins {win['and']['mean']:.3f} / losses {loss['and']['mean']:.3f}, "
          f"gold means {pipeline.pi_0.judge.mean(axis=(0, 1))} -> {final['judge_mean']}")
    assert end > start + 0.3, (start, end)
    assert 0.2 < history[-1]["kl/sequence"] < 10.0  # it moved, and stayed near pi_0
    assert win["helpful"]["mean"] > 0.53, win["helpful"]
