"""Every registered algorithm on the gold-reward sandbox, through the experiment pipeline: pi_0
is the sandbox's SFT policy, the proxies a Bradley-Terry model (one head per property) trained on
gold-labelled pairs of pi_0's own samples, the judge the gold utilities on 90 held-out prompts, 4
samples of each learner against 8 of pi_0.

A short run at a moderate KL weight must raise the proxy utility (LSC AND) and both gold means by
more than 0.05, win over pi_0 on helpfulness more often than not, and win on both properties
more often than it loses on both (for pi_0 itself the two are equal). The policy's and pi_0's
samples are independent draws (the paper's win rate, all 4 x 8 pairs of a prompt). Measured
(``pytest -s``), AND win / loss and helpful win: PPO 0.290 / 0.216, 0.539; RLOO 0.262 / 0.243,
0.523; GRPO 0.287 / 0.197, 0.544; Dr. GRPO 0.294 / 0.219, 0.530; DAPO 0.266 / 0.224, 0.526;
GSPO 0.277 / 0.219, 0.537; REINFORCE++ 0.276 / 0.239, 0.510 (before the algorithms became
registry entries, whose loss sums per-token weights rather than dividing a sum, PPO, RLOO and
GRPO measured 0.288 / 0.218, 0.277 / 0.237 and 0.272 / 0.216). The harmless win rate is not
asserted: most pairs tie on harmlessness and its gain comes from a few prompts whose hazards go.
"""

import json

import fiddle as fdl
import numpy as np
import pytest

from alignment import configs, evaluation, rl
from alignment.configs.experiments import PPO_OVERRIDES, sandbox_learner, utility
from alignment.experiment import Pipeline, RunSpec

LEARNERS = tuple(rl.ALGORITHMS.names)  # every registered algorithm


@pytest.fixture(scope="module")
def pipeline(box, tmp_path_factory):
    config = configs.quickstart()
    config.name = "learners"
    config.task.eval_prompts = 90
    config.task.eval_samples = 4
    config.evaluation.base_samples = 8  # pi_0 is sampled once: a precise base for every learner
    config.runs = [
        fdl.Config(RunSpec, name=algorithm, label="LSC AND", utility=utility("lsc"), kl_coef=0.2, algorithm=algorithm,
                   learner_overrides=dict(PPO_OVERRIDES) if algorithm == "ppo" else {})
        for algorithm in LEARNERS
    ]
    config.learner = sandbox_learner(num_steps=20)
    config.best_of_k = None
    config.evaluation.every = 0  # judge the last step only
    config.evaluation.steps = ()
    pipeline = Pipeline(fdl.build(config), tmp_path_factory.mktemp("learners"), cache_dir=box.directory.parent, progress=False)
    for run in pipeline.experiment.runs:
        pipeline.align(run)
    return pipeline


@pytest.mark.parametrize("algorithm", LEARNERS)
def test_learner_raises_the_proxy_utility_and_the_gold_and_win_rate(pipeline, algorithm):
    history = [json.loads(line) for line in (pipeline.workdir / "runs" / algorithm / "metrics.jsonl").read_text().splitlines()]
    start, end = history[0]["utility"], np.mean([h["utility"] for h in history[-3:]])
    final = pipeline.run_results[algorithm]["checkpoints"][-1]
    win, loss = final["win_rate"], final["loss_rate"]
    print(f"{algorithm}: proxy utility {start:.3f} -> {end:.3f}, sampled KL {final['kl']['mean']:.2f}, gold helpful win rate "
          f"{win['helpful']['mean']:.3f}, gold AND wins {win['and']['mean']:.3f} / losses {loss['and']['mean']:.3f}, "
          f"gold means {pipeline.pi_0.judge.mean(axis=(0, 1))} -> {final['judge_mean']}")
    assert end > start + 0.3, (start, end)
    assert 0.05 < history[-1]["kl/sequence"] < 10.0  # it moved, and stayed near pi_0
    base = dict(zip(pipeline.task.properties, pipeline.pi_0.judge.mean(axis=(0, 1))))
    assert all(final["judge_mean"][p] > base[p] + 0.05 for p in base), (base, final["judge_mean"])
    assert win["and"]["mean"] > loss["and"]["mean"], (win["and"], loss["and"])
    assert win["helpful"]["mean"] > 0.5, win


def test_pi_0_against_an_independent_draw_of_itself_wins_half_the_time(pipeline):
    """The judge's samples are independent draws (a key per stream and step), so pi_0 judged
    against a second draw of pi_0 wins 1/2 per property and AND-wins as often as it AND-loses."""
    again = pipeline.judge(pipeline.task.policy, "pi_0, a second draw", 0, pipeline.judge.base_samples)
    assert not np.array_equal(again.texts, pipeline.pi_0.texts)
    record = evaluation.evaluate_policy(again.judge, pipeline.pi_0.judge, list(pipeline.task.properties), kl=again.kl)
    for prop in pipeline.task.properties:
        win = evaluation.as_estimate(record["win_rate"][prop])
        assert win.low < 0.5 < win.high, (prop, win)
    win, loss = (evaluation.as_estimate(record[key]["and"]) for key in ("win_rate", "loss_rate"))
    assert abs(win.mean - loss.mean) < win.high - win.low, (win, loss)
    assert abs(evaluation.as_estimate(record["kl"]).mean) < 1e-3  # pi_0 against itself
