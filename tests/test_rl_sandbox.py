"""PPO, RLOO, GRPO and RLOO with LoRA on the gold-reward sandbox (``sandbox_learners.py`` has the test and the
measured numbers; ``test_rl_sandbox_successors.py`` runs the other registered algorithms), and
pi_0 judged against an independent draw of itself."""

import numpy as np
import pytest
from sandbox_learners import CLASSIC, LORA, check_learner, sandbox_pipeline

from alignment import evaluation

LEARNERS = CLASSIC


@pytest.fixture(scope="module")
def pipeline(box, tmp_path_factory):
    return sandbox_pipeline(box, tmp_path_factory.mktemp("learners"), LEARNERS + (LORA,))


@pytest.mark.parametrize("algorithm", LEARNERS)
def test_learner_raises_the_proxy_utility_and_the_gold_and_win_rate(pipeline, algorithm):
    check_learner(pipeline, algorithm)


def test_a_lora_learner_raises_the_proxy_utility(pipeline):
    """RLOO through LoRA adapters (``LearnerConfig.lora``): pi_0 is the policy with its adapters off."""
    check_learner(pipeline, LORA, gold=False)


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
