"""Dr. GRPO, DAPO, GSPO and REINFORCE++ on the gold-reward sandbox, in the test that runs PPO,
RLOO and GRPO (``sandbox_learners.py``); together with ``test_rl_sandbox.py`` every registered
algorithm runs."""

import pytest
from sandbox_learners import CLASSIC, SUCCESSORS, check_learner, sandbox_pipeline

from alignment import rl

LEARNERS = SUCCESSORS
REGISTERED = tuple(rl.ALGORITHMS.names)  # at collection, before any test registers one of its own


def test_every_registered_algorithm_runs_on_the_sandbox():
    assert sorted(CLASSIC + SUCCESSORS) == sorted(REGISTERED)


@pytest.fixture(scope="module")
def pipeline(box, tmp_path_factory):
    return sandbox_pipeline(box, tmp_path_factory.mktemp("successors"), LEARNERS)


@pytest.mark.parametrize("algorithm", LEARNERS)
def test_learner_raises_the_proxy_utility_and_the_gold_and_win_rate(pipeline, algorithm):
    check_learner(pipeline, algorithm)
