"""The decision rules are calibrated: simulated experiments (arms of 3 training seeds, 8
checkpoints each with KLs spread to about 30 nats, 96 held-out prompts, per-prompt win rates with
sd about 0.2 and a seed-to-seed sd of an arm's mean win rate about 0.025) run through the claims'
own code (``alignment.evaluation.calibration``, docs/decision_rules.md section 8). Numpy only;
run with ``-s`` to see the rates."""

import numpy as np

from alignment.evaluation import calibration, claims
from alignment.evaluation.stats import per_prompt_rates

EXPERIMENTS = 400


def test_the_simulation_has_the_stated_scales():
    rng = np.random.default_rng(5)
    sds, spreads = [], []
    for _ in range(40):
        data = calibration.simulate_results(rng, properties=("helpful",))
        old = data["pi_0"]["judge"]
        means = []
        for run in data["runs"][:3]:                                       # the LSC arm's seeds, checkpoint 6 (KL about 9)
            win, _ = per_prompt_rates(run["checkpoints"][5]["samples"]["judge"], old, 0)
            sds.append(win.std())
            means.append(win.mean())
        spreads.append(np.var(means, ddof=1))
    print(f"\nper-prompt win-rate sd {np.mean(sds):.3f}, seed-to-seed sd of the arm mean {np.sqrt(np.mean(spreads)):.3f}")
    assert 0.15 < np.mean(sds) < 0.25 and 0.015 < np.sqrt(np.mean(spreads)) < 0.04


def test_no_true_difference_rarely_gives_a_definite_verdict():
    rates = calibration.rates(EXPERIMENTS, effect=0.0, seed=0)
    print(f"\nclaim 5, no difference: definite {rates['definite']:.3f} (held {rates['held']:.3f}, "
          f"did not hold {rates['not_held']:.3f}) over {EXPERIMENTS} experiments")
    assert rates["definite"] <= 0.10
    assert abs(rates["difference"]) < 0.02                                 # the arms really are equal


def test_a_true_difference_of_five_points_is_detected():
    rates = calibration.rates(EXPERIMENTS // 2, effect=calibration.AND_EFFECT, seed=1)
    print(f"\nclaim 5, LSC +{rates['difference']:.3f} AND win rate: power {rates['held']:.3f}, "
          f"did not hold {rates['not_held']:.3f} over {EXPERIMENTS // 2} experiments")
    assert 0.035 < rates["difference"] < 0.065
    assert rates["held"] >= 0.5 and rates["not_held"] == 0.0


def test_non_inferiority_is_not_shown_when_lsc_is_worse_by_the_margin():
    at_margin = calibration.rates(EXPERIMENTS // 2, effect=calibration.SINGLE_MARGIN_EFFECT, single=True, seed=2)
    equal = calibration.rates(EXPERIMENTS // 2, effect=0.0, single=True, seed=3)
    print(f"\nclaim 2, LSC worse by {-at_margin['difference']:.3f}: held {at_margin['held']:.3f}; "
          f"equal arms: held (power) {equal['held']:.3f}, did not hold {equal['not_held']:.3f}")
    assert -0.045 < at_margin["difference"] < -0.015
    assert at_margin["held"] <= 0.10 and equal["not_held"] <= 0.10
    assert claims.NONINFERIORITY_MARGIN == 0.03
