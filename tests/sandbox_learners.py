"""The sandbox learners' test, shared by ``test_rl_sandbox.py`` (PPO, RLOO, GRPO) and
``test_rl_sandbox_successors.py`` (Dr. GRPO, DAPO, GSPO, REINFORCE++), which run on two pytest
workers side by side; the second pipeline copies the first one's proxies from the sandbox cache.

Every registered algorithm on the gold-reward sandbox, through the experiment pipeline: pi_0
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

The LoRA run (``LORA``, rank 8 on every projection of the 64-wide policy, alpha 16) is asserted
to raise the proxy utility and move away from pi_0 within the same bounds. Its gold results are
printed, not asserted (the gold checks above are the full-fine-tuning learners'): measured, proxy
utility -2.646 -> -2.163 at a sampled KL of 0.88, gold means helpful 1.051 -> 1.077 (+0.025, short
of the +0.05 asked of the others) and harmless -0.350 -> -0.110, AND win / loss 0.288 / 0.226,
helpful win 0.508.
"""

import json

import fiddle as fdl
import numpy as np

from alignment import configs
from alignment.configs.experiments import lora_overrides, ppo_overrides, sandbox_learner, utility
from alignment.experiment import Pipeline, RunSpec

CLASSIC = ("ppo", "rloo", "grpo")  # test_rl_sandbox.py
LORA = "rloo_lora"  # test_rl_sandbox.py: RLOO through rank-8 LoRA adapters at 10x RLOO's learning rate
SUCCESSORS = ("dr_grpo", "dapo", "gspo", "reinforce_pp")  # test_rl_sandbox_successors.py


def sandbox_pipeline(box, directory, algorithms):
    """The pipeline of one 20-step LSC AND run per algorithm (the same experiment, runs aside, for every group)."""
    config = configs.quickstart()
    config.name = "learners"
    config.task.eval_prompts = 90
    config.task.eval_samples = 4
    config.evaluation.base_samples = 8  # pi_0 is sampled once: a precise base for every learner
    overrides = {"ppo": ppo_overrides(), LORA: lora_overrides(learning_rate=3e-3)}  # 10x RLOO's full fine-tuning rate
    config.runs = [
        fdl.Config(RunSpec, name=name, label="LSC AND", utility=utility("lsc"), kl_coef=0.2, algorithm=name.removesuffix("_lora"),
                   learner_overrides=overrides.get(name, {}))
        for name in algorithms
    ]
    config.learner = sandbox_learner(num_steps=20)
    config.best_of_k = None
    config.evaluation.every = 0  # judge the last step only
    config.evaluation.steps = ()
    pipeline = Pipeline(fdl.build(config), directory, cache_dir=box.directory.parent, progress=False)
    for run in pipeline.experiment.runs:
        pipeline.align(run)
    return pipeline


def check_learner(pipeline, algorithm, gold: bool = True):
    """The run's proxy utility rose by 0.3 with a KL to pi_0 in (0.05, 10); with ``gold``, the
    gold checks of the module docstring too."""
    history = [json.loads(line) for line in (pipeline.workdir / "runs" / algorithm / "metrics.jsonl").read_text().splitlines()]
    start, end = history[0]["utility"], np.mean([h["utility"] for h in history[-3:]])
    final = pipeline.run_results[algorithm].checkpoints[-1]
    win, loss = final["win_rate"], final["loss_rate"]
    print(f"{algorithm}: proxy utility {start:.3f} -> {end:.3f}, sampled KL {final['kl']['mean']:.2f}, gold helpful win rate "
          f"{win['helpful']['mean']:.3f}, gold AND wins {win['and']['mean']:.3f} / losses {loss['and']['mean']:.3f}, "
          f"gold means {pipeline.pi_0.judge.mean(axis=(0, 1))} -> {final['judge_mean']}")
    assert end > start + 0.3, (start, end)
    assert 0.05 < history[-1]["kl/sequence"] < 10.0  # it moved, and stayed near pi_0
    if not gold:
        return
    base = dict(zip(pipeline.task.properties, pipeline.pi_0.judge.mean(axis=(0, 1))))
    assert all(final["judge_mean"][p] > base[p] + 0.05 for p in base), (base, final["judge_mean"])
    assert win["and"]["mean"] > loss["and"]["mean"], (win["and"], loss["and"])
    assert win["helpful"]["mean"] > 0.5, win
