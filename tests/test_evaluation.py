"""alignment.evaluation: exact statistics on hand-made arrays, the decision rules, each claim's
verdicts on synthetic results with per-sample arrays (built to go one way or the other), the
arrays' save/load round trip, and the report's files. The rates of the decision rules on
simulated experiments are in test_decision_calibration.py."""

import json
import math
import sys
from statistics import NormalDist

import numpy as np
import pytest

from alignment import evaluation as ev
from alignment.evaluation import Estimate, decide

Z = NormalDist().inv_cdf(0.975)
PROPERTIES = ["helpful", "harmless"]


def close(estimate: Estimate, mean: float, low: float, high: float) -> bool:
    return np.allclose([estimate.mean, estimate.low, estimate.high], [mean, low, high], atol=1e-9)


# --- stats -------------------------------------------------------------------------------------

def test_win_rate_compares_all_pairs_of_a_prompt_counts_ties_as_half_and_averages_per_prompt_first():
    new = [[1.0, 2.0], [3.0, 3.0]]                 # m = 2 policy samples
    old = [[0.0, 2.0, 5.0], [4.0, 3.0, 1.0]]       # m' = 3 pi_0 samples
    # prompt 0: 1 vs (0, 2, 5) -> 1, 0, 0; 2 vs (0, 2, 5) -> 1, .5, 0 -> 2.5 / 6
    # prompt 1: 3 vs (4, 3, 1) -> 0, .5, 1 twice -> 3 / 6
    per_prompt = [2.5 / 6, 0.5]
    half = Z * np.std(per_prompt, ddof=1) / math.sqrt(2)
    estimate = ev.win_rate(new, old)
    assert close(estimate, np.mean(per_prompt), np.mean(per_prompt) - half, np.mean(per_prompt) + half) and estimate.n == 2
    assert math.isclose(ev.win_rate(old, new).mean, 1 - estimate.mean)      # ties are shared


def test_win_rate_interval_is_clipped_to_the_unit_interval():
    new, old = [[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]], np.zeros((3, 1))   # prompt 1: win, tie -> 0.75
    estimate = ev.win_rate(new, old)
    assert estimate.high == 1.0 and estimate.low < estimate.mean < 1.0
    assert math.isclose(estimate.mean, (1 + 0.75 + 1) / 3)


def test_and_win_and_loss_rates_multiply_per_property_wins_over_all_pairs():
    new = np.array([[[1, 1], [2, 2]], [[0, 5], [3, 3]]], dtype=float)      # [2 prompts, 2 samples, 2 properties]
    old = np.array([[[0, 1]], [[3, 3]]], dtype=float)                      # [2 prompts, 1 sample, 2 properties]
    # prompt 0: (1,1) vs (0,1): win x tie = .5; (2,2) vs (0,1): 1 -> .75
    # prompt 1: (0,5) vs (3,3): loss x win = 0; (3,3) vs (3,3): tie x tie = .25 -> .125
    win = ev.and_win_rate(new, old)
    assert math.isclose(win.mean, (0.75 + 0.125) / 2)
    # losses: prompt 0: 0 x .5 = 0, 0 -> 0; prompt 1: (0,5): 1 x 0 = 0, tie x tie .25 -> .125
    assert math.isclose(ev.and_loss_rate(new, old).mean, 0.0625)
    assert math.isclose(ev.and_loss_rate(new, old).mean, ev.and_win_rate(old, new).mean)
    win_0, loss_0 = ev.per_prompt_rates(new, old)
    assert np.allclose(win_0, [0.75, 0.125]) and np.allclose(loss_0, [0.0, 0.125])
    assert np.allclose(ev.per_prompt_rates(new, old, 0)[0], [1.0, 0.25])   # helpful alone: (1, 1) and (0, .5)


def test_pi_0_against_an_independent_draw_of_pi_0_is_a_coin_flip():
    """Two independent draws from the same distribution: about 1/2 per property, and AND win =
    AND loss within the interval (whatever the properties' correlation)."""
    rng = np.random.default_rng(3)
    prompts = 400
    difficulty = rng.normal(size=(prompts, 1, 2))
    mixing = np.array([[1.0, 0.6], [0.0, 0.8]])                            # correlated properties
    draw_a = difficulty + rng.normal(size=(prompts, 3, 2)) @ mixing
    draw_b = difficulty + rng.normal(size=(prompts, 5, 2)) @ mixing
    record = ev.evaluate_policy(draw_a, draw_b, PROPERTIES)
    for p in PROPERTIES:
        win = record["win_rate"][p]
        assert win.low < 0.5 < win.high and abs(win.mean - 0.5) < 0.03
    win, loss = ev.per_prompt_rates(draw_a, draw_b)
    difference = ev.stats.clustered_estimate(win - loss)
    assert difference.low < 0 < difference.high
    assert record["win_rate"]["and"].mean > 0.25                           # positively correlated properties
    shifted = ev.evaluate_policy(draw_a + 0.3, draw_b, PROPERTIES)          # and a real shift is seen
    assert shifted["win_rate"]["helpful"].low > 0.5


def test_clustered_interval_is_wider_than_iid_when_samples_of_a_prompt_agree():
    rng = np.random.default_rng(0)
    prompts, samples = 20, 10
    per_prompt = rng.normal(size=(prompts, 1))
    new = np.repeat(per_prompt, samples, axis=1)          # every sample of a prompt wins or every one loses
    old = np.zeros((prompts, 1))
    clustered = ev.win_rate(new, old)
    wins = ev.pair_wins(new, old).reshape(-1)
    iid_half = Z * wins.std(ddof=1) / math.sqrt(wins.size)
    assert clustered.half_width > 2.5 * iid_half        # about sqrt(samples) = 3.2 times wider


def test_mean_estimate_is_the_clustered_mean():
    estimate = ev.mean_estimate([[1.0, 3.0], [5.0, 7.0]])       # per prompt 2 and 6
    half = Z * np.std([2.0, 6.0], ddof=1) / math.sqrt(2)
    assert close(estimate, 4.0, 4.0 - half, 4.0 + half)


def test_shape_mismatches_and_bad_values_name_the_argument():
    with pytest.raises(ValueError, match=r"win_rate: new has shape \(2, 3\) but old has shape \(3, 3\)"):
        ev.win_rate(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"and_win_rate: new must be .*\[prompts, samples, properties\].*\(2, 3\)"):
        ev.and_win_rate(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"and_win_rate: new has shape \(2, 3, 2\) but old has shape \(2, 3, 1\)"):
        ev.and_win_rate(np.zeros((2, 3, 2)), np.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match="old has 1 non-finite"):
        ev.win_rate(np.zeros((2, 2)), [[0.0, np.nan], [0.0, 0.0]])
    with pytest.raises(ValueError, match="at least 2 prompts"):
        ev.win_rate(np.ones((1, 4)), np.zeros((1, 4)))


def test_estimate_prints_and_round_trips_through_json():
    estimate = Estimate(0.6123, 0.5712, 0.6534, 96)
    assert str(estimate) == "0.612 [0.571, 0.653]"
    assert Estimate.from_json(json.loads(json.dumps(estimate.to_json()))) == estimate
    assert ev.as_estimate(0.3) == Estimate(0.3, 0.3, 0.3, 0)


def test_value_at_kl_interpolates_inside_the_range_and_is_none_outside():
    kls, values = [2.0, 0.0, 1.0], [0.8, 0.5, 0.6]
    assert math.isclose(ev.value_at_kl(kls, values, 0.5), 0.55)
    assert math.isclose(ev.value_at_kl(kls, values, 1.5), 0.7)
    assert ev.value_at_kl(kls, values, 2.0) == 0.8
    assert ev.value_at_kl(kls, values, 2.1) is None and ev.value_at_kl(kls, values, -0.1) is None
    assert ev.frontier([(1.0, 0.6), (0.0, 0.5), (1.0, 0.8)]) == [(0.0, 0.5), (1.0, 0.7)]
    assert ev.matched_kl(ev.frontier([(0.0, 0.0), (2.0, 2.0)]), ev.frontier([(5.0, 1.0), (6.0, 1.0)])) == []


def test_prompt_improvement_splits_prompts_by_base_reward():
    gain = [0.5, 0.0, 1.0, -0.25]
    base = [0.1, 0.3, 0.9, 0.5]                                  # lower half: prompts 0, 1; upper: 3, 2
    result = ev.prompt_improvement(gain, base)
    assert math.isclose(result["improved_fraction"].mean, 0.5)  # a zero gain is not an improvement
    assert math.isclose(result["low_base_gain"].mean, 0.25) and math.isclose(result["high_base_gain"].mean, 0.375)
    assert math.isclose(result["gain"].mean, 0.3125)
    assert math.isclose(result["correlation"], 0.2)              # ranks (3, 2, 4, 1) vs (1, 2, 4, 3)
    with pytest.raises(ValueError, match=r"base_reward has shape \(3,\) but there are 4 prompts' gains"):
        ev.prompt_improvement(gain, base[:3])


def test_spearman_averages_tied_ranks():
    scipy_stats = pytest.importorskip("scipy.stats")
    x, y = [1.0, 1.0, 2.0, 5.0, 3.0], [2.0, 1.0, 4.0, 4.0, 0.0]
    assert math.isclose(ev.spearman(x, y), scipy_stats.spearmanr(x, y)[0])
    assert ev.spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None


# --- evaluate_policy ---------------------------------------------------------------------------

def test_evaluate_policy_builds_the_checkpoint_record_with_its_samples():
    rng = np.random.default_rng(1)
    old = rng.normal(size=(8, 3, 2))
    new = rng.normal(size=(8, 2, 2)) + np.array([10.0, -10.0])               # m = 2 != m' = 3
    record = ev.evaluate_policy(new, old, PROPERTIES, kl=np.ones((8, 2)), new_proxy=new, base_reward=rng.normal(size=(8, 2)), step=5)
    assert record["step"] == 5 and close(record["kl"], 1.0, 1.0, 1.0)
    assert record["win_rate"]["helpful"].mean == 1.0 and record["win_rate"]["harmless"].mean == 0.0
    assert record["win_rate"]["and"].mean == 0.0 and record["loss_rate"]["and"].mean == 0.0
    assert record["loss_rate"]["harmless"].mean == 1.0
    assert record["prompts"]["target"] == "and" and record["prompts"]["improved_fraction"].mean == 0.0
    assert set(record["samples"]) == {"judge", "proxy", "kl"}
    assert record["samples"]["judge"].dtype == np.float32 and record["samples"]["judge"].shape == (8, 2, 2)
    assert record["samples"]["kl"].shape == (8, 2)
    single = ev.evaluate_policy(new, old, PROPERTIES, base_reward=np.zeros((8, 2)), optimised=["helpful"])
    assert single["prompts"]["target"] == "helpful" and single["prompts"]["improved_fraction"].mean == 1.0
    assert math.isclose(single["prompts"]["gain"].mean, 0.5)                  # win rate 1 - 1/2
    assert "kl" not in single and "proxy_mean" not in single and set(single["samples"]) == {"judge"}
    with pytest.raises(ValueError, match=r"kl must be \[prompts, samples\] = \(8, 2\), got shape \(8, 3\)"):
        ev.evaluate_policy(new, old, PROPERTIES, kl=np.ones((8, 3)))
    with pytest.raises(ValueError, match=r"new_judge must be .* 3 properties .* got shape \(8, 2, 2\)"):
        ev.evaluate_policy(new, old, [*PROPERTIES, "honest"])
    with pytest.raises(ValueError, match=r"base_reward must be \[prompts, properties\] = \(8, 2\), got shape \(8,\)"):
        ev.evaluate_policy(new, old, PROPERTIES, base_reward=np.zeros(8))
    with pytest.raises(ValueError, match="same prompts"):
        ev.evaluate_policy(new, old[:4], PROPERTIES)


def test_and_diagnostics_call_a_prompt_low_when_it_is_low_on_some_property():
    base = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 0.0]])   # min ranks 1, 2, 3, 1: prompts 0 and 3 are low
    old = np.zeros((4, 2, 2))
    new = np.zeros((4, 3, 2))
    new[[0, 3]] = 1.0                                                    # AND win on prompts 0 and 3, ties elsewhere
    diagnostics = ev.evaluate_policy(new, old, PROPERTIES, base_reward=base)["prompts"]
    # gain = (AND win - AND loss) / 2: 1/2 on the AND wins, (1/4 - 1/4) / 2 = 0 on the ties
    assert diagnostics["low_base_gain"].mean == 0.5 and diagnostics["high_base_gain"].mean == 0.0


def test_best_of_k_kl_is_the_analytic_formula():
    assert ev.best_of_k_kl(1) == 0.0
    assert math.isclose(ev.best_of_k_kl(4), math.log(4) - 0.75)


# --- results: kinds, save and load -------------------------------------------------------------

def test_utility_kind_names_the_group_normalised_sum():
    assert ev.utility_kind("lsc", "sum") == "lsc" and ev.utility_kind("identity", "sum") == "raw"
    assert ev.utility_kind("identity", "sum", "group") == "group_normalized"
    assert ev.utility_kind("identity", "sum", "none") == "raw" and ev.utility_kind("lsc", "sum", "group") == "other"


def test_save_and_load_results_round_trip_every_array(tmp_path):
    rng = np.random.default_rng(0)
    results = {"properties": PROPERTIES, "runs": [{"name": "a", "checkpoints": [
        {"step": 1, "win_rate": {"and": Estimate(0.5, 0.4, 0.6, 8)}, "samples": {"judge": rng.normal(size=(8, 3, 2)).astype(np.float32)}}]}],
        "pi_0": {"judge": rng.normal(size=(8, 4, 2))}, "gpm": {"transitive_correct": {"gpm": np.array([True, False]), "bt": np.array([True, True])}},
        "listed": [np.arange(3)], "nan": float("nan")}
    paths = ev.save_results(results, tmp_path)
    assert set(paths) == {"results", "samples"}
    written = json.loads(paths["results"].read_text())
    marker = written["runs"][0]["checkpoints"][0]["samples"]["judge"]
    assert marker == {"array": "runs/0/checkpoints/0/samples/judge", "shape": [8, 3, 2], "dtype": "float32"}
    assert written["listed"][0]["array"] == "listed/0" and written["nan"] is None
    assert written["runs"][0]["checkpoints"][0]["win_rate"]["and"] == {"mean": 0.5, "low": 0.4, "high": 0.6, "n": 8}
    with np.load(paths["samples"]) as archive:
        assert set(archive.files) == {"runs/0/checkpoints/0/samples/judge", "pi_0/judge", "gpm/transitive_correct/gpm",
                                      "gpm/transitive_correct/bt", "listed/0"}
    back = ev.load_results(tmp_path)
    assert np.array_equal(back["runs"][0]["checkpoints"][0]["samples"]["judge"], results["runs"][0]["checkpoints"][0]["samples"]["judge"])
    assert back["runs"][0]["checkpoints"][0]["samples"]["judge"].dtype == np.float32
    assert np.array_equal(back["pi_0"]["judge"], results["pi_0"]["judge"]) and back["gpm"]["transitive_correct"]["bt"].dtype == bool
    assert np.array_equal(back["listed"][0], [0, 1, 2])
    assert ev.load_results(paths["results"])["pi_0"]["judge"].shape == (8, 4, 2)     # the file works as well as the folder
    paths["samples"].unlink()                                                        # markers without their arrays read as missing
    assert ev.load_results(tmp_path)["pi_0"]["judge"] is None
    assert json.loads(json.dumps(ev.to_jsonable(results), allow_nan=False))["listed"] == [[0, 1, 2]]   # to_jsonable: lists


def test_old_results_without_arrays_load_and_their_array_claims_are_not_tested(tmp_path):
    old = results([run("lsc", "lsc", [checkpoint(1, 1.0, {"and": 0.6})]), run("raw", "raw", [checkpoint(1, 1.0, {"and": 0.5})])])
    (tmp_path / "results.json").write_text(json.dumps(ev.to_jsonable(old)))
    loaded = ev.load_results(tmp_path)
    statuses = {c.claim: c.status for c in ev.check_claims(loaded)}
    assert all(statuses[c] == "not tested" for c in ("1", "3", "4", "5", "6")), statuses
    assert "per-sample arrays" in ev.claim_and(loaded).evidence


# --- decide ------------------------------------------------------------------------------------

def test_seed_curve_interpolates_per_prompt_and_does_not_extrapolate():
    values = np.array([[0.0, 1.0], [1.0, 1.0], [3.0, 0.0], [5.0, 2.0]])    # checkpoints x prompts
    curve = decide.seed_curve([4.0, 0.5, 1.0, 1.0], values, grid=(0.25, 0.5, 0.75, 2.0, 4.0, 8.0))
    # KL 1 has two checkpoints: averaged to (4, 1); sorted: 0.5 -> (1, 1), 1 -> (4, 1), 4 -> (0, 1)
    assert np.isnan(curve[0]).all() and np.isnan(curve[-1]).all()
    assert np.allclose(curve[1], [1.0, 1.0]) and np.allclose(curve[2], [2.5, 1.0])
    assert np.allclose(curve[3], [4 - 4 / 3, 1.0]) and np.allclose(curve[4], [0.0, 1.0])


def test_contrast_with_one_seed_is_the_prompt_paired_t_interval():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(1, 30)), rng.normal(size=(1, 30))
    test = decide.contrast([(1.0, a), (-1.0, b)])
    d = (a - b)[0]
    assert math.isclose(test.estimate, d.mean()) and math.isclose(test.se, d.std(ddof=1) / math.sqrt(30))
    assert test.df == 29 and test.note == "1 seed: intervals cover prompts and samples only"
    half = ev.stats.t_quantile(0.975, 29) * test.se
    assert math.isclose(test.high - test.low, 2 * half)


def test_contrast_adds_the_seed_variance_net_of_the_sample_noise():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 20)) + np.array([[0.5], [0.0], [-0.5]])      # seed effects
    b = rng.normal(size=(4, 20))
    test = decide.contrast([(1.0, a), (-1.0, b)])
    d = a.mean(axis=0) - b.mean(axis=0)

    def seed_part(y):
        resid = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0) + y.mean()
        r = (resid ** 2).sum() / ((y.shape[0] - 1) * (y.shape[1] - 1))
        return max(0.0, y.mean(axis=1).var(ddof=1) - r / y.shape[1]) / y.shape[0]

    expected = d.var(ddof=1) / 20 + seed_part(a) + seed_part(b)
    assert math.isclose(test.se ** 2, expected) and test.note is None
    assert test.df < 19                                                  # the seed term costs degrees of freedom
    wider = decide.contrast([(1.0, a * 0 + a.mean(axis=0)), (-1.0, b)])   # no seed variation in a: only b's seed term
    assert wider.se < test.se


def test_holm_adjusts_step_down():
    assert np.allclose(decide.holm([0.01, 0.04, 0.03, 0.2]), [0.04, 0.09, 0.09, 0.2])


def arm(name, shift, seeds=3, prompts=40, kls=(0.4, 1.0, 3.0, 9.0, 20.0), sd=0.1, seed=0):
    """ArmCurves of per-prompt values shift(kl) + noise."""
    rng = np.random.default_rng(seed)
    runs = [(s, np.array(kls), np.array([shift(k) + rng.normal(0, sd, prompts) for k in kls])) for s in range(seeds)]
    return decide.arm_curves(name, runs)


@pytest.mark.parametrize("shift_a, shift_b, verdict", [
    (lambda k: 0.60, lambda k: 0.50, "held"),
    (lambda k: 0.50, lambda k: 0.60, "did not hold"),
    (lambda k: 0.5 + 0.1 * (k < 2) - 0.1 * (k > 5), lambda k: 0.5, "inconclusive"),     # mixed
    (lambda k: 0.50, lambda k: 0.50, "inconclusive"),
])
def test_superiority_verdicts(shift_a, shift_b, verdict):
    comparison = decide.superiority(arm("A", shift_a), arm("B", shift_b, seed=1))
    assert comparison.verdict == verdict, comparison.describe()
    assert comparison.at == (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)                # 32 is beyond every seed's range
    assert ("mixed" in comparison.describe()) == (verdict == "inconclusive" and shift_a(1.0) != shift_b(1.0))


def test_superiority_is_not_in_regime_without_a_common_grid_point():
    comparison = decide.superiority(arm("A", lambda k: 0.6, kls=(0.05, 0.3)), arm("B", lambda k: 0.5))
    assert comparison.verdict == "not in regime" and "no grid point" in comparison.describe()


@pytest.mark.parametrize("shift_a, verdict", [
    (lambda k: 0.52, "held"), (lambda k: 0.40, "did not hold"), (lambda k: 0.485, "inconclusive")])
def test_noninferiority_verdicts(shift_a, verdict):
    comparison = decide.noninferiority(arm("A", shift_a, sd=0.05), arm("B", lambda k: 0.5, sd=0.05, seed=1), margin=0.03)
    assert comparison.verdict == verdict, comparison.describe()


def test_combine_ignores_untested_parts_and_needs_every_tested_part_for_held():
    assert decide.combine(["held", "held", "not tested", "not in regime"]) == "held"
    assert decide.combine(["held", "did not hold"]) == "did not hold"
    assert decide.combine(["held", "inconclusive"]) == "inconclusive"
    assert decide.combine(["not in regime", "not tested"]) == "not in regime"
    assert decide.combine(["not tested"]) == decide.combine([]) == "not tested"


# --- synthetic results with per-sample arrays --------------------------------------------------

N_PROMPTS, M_POLICY, M_BASE = 64, 4, 3
KLS = tuple(np.geomspace(0.4, 36, 7))


def progress(kl):
    return kl / (kl + 2.0)


def synthetic(arms_spec, properties=PROPERTIES, seeds=3, kls=KLS, seed=0, base_of=None):
    """Results with arrays: ``arms_spec`` = [(label, kind, optimised, shift(kl, base) -> [n, P] latent
    shift, proxy(kl) -> float or None)]; judge scores = prompt difficulty + shift + noise; pi_0 =
    difficulty + noise. ``base`` (the prompts' difficulty, [n, P]) is also eval_base_reward."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(size=(N_PROMPTS, len(properties)))
    out = {"experiment": "synthetic", "properties": list(properties), "runs": [],
           "pi_0": {"judge": (difficulty[:, None] + rng.normal(size=(N_PROMPTS, M_BASE, len(properties)))).astype(np.float32)},
           "eval_base_reward": difficulty.copy()}
    for label, kind, names, shift, proxy in arms_spec:
        transform = "lsc" if kind == "lsc" else "identity"
        for s in range(seeds):
            speed, seed_effect = rng.lognormal(0, 0.1), rng.normal(0, 0.03, size=len(properties))
            records = []
            for step, kl in enumerate(np.asarray(kls) * speed):
                mean = difficulty + shift(kl, difficulty) + seed_effect * progress(kl)
                judge = mean[:, None] + rng.normal(size=(N_PROMPTS, M_POLICY, len(properties)))
                samples = {"judge": judge.astype(np.float32), "kl": np.full((N_PROMPTS, M_POLICY), kl, np.float32)}
                if proxy is not None:
                    samples["proxy"] = np.full((N_PROMPTS, M_POLICY, len(properties)), proxy(kl) / len(properties), np.float32)
                records.append({"step": step + 1, "win_rate": {}, "samples": samples})
            run_ = {"name": f"{label}-{s}", "label": label, "transform": transform, "aggregator": "sum", "algorithm": "rloo",
                    "kl_coef": 0.05, "optimised": list(names), "reward_model": "bt", "seed": s, "checkpoints": records}
            if kind == "group_normalized":
                run_["normalize"] = "group"
            out["runs"].append(run_)
    return out


def flat(values):
    """A shift(kl, base) that grows with training to ``values`` (one per property)."""
    return lambda kl, base: progress(kl) * np.asarray(values, dtype=float)


@pytest.mark.parametrize("lsc_shift, raw_shift, status", [
    ((1.0,), (0.4,), "held"),              # LSC clearly not worse (better)
    ((0.2,), (1.0,), "did not hold"),      # LSC clearly worse by more than the margin
])
def test_claim_2_non_inferiority_at_matched_kl(lsc_shift, raw_shift, status):
    data = synthetic([("LSC", "lsc", ["helpful"], flat(lsc_shift), None), ("raw", "raw", ["helpful"], flat(raw_shift), None)],
                     properties=["helpful"])
    claim = ev.claim_single_property(data)
    assert claim.status == status, claim.evidence
    assert "3 vs 3 seeds, 64 prompts" in claim.evidence and "margin 0.03" in claim.evidence and "adj. p" in claim.evidence


def test_claim_2_is_not_in_regime_below_the_grid_and_not_tested_without_arrays():
    spec = [("LSC", "lsc", ["helpful"], flat((1.0,)), None), ("raw", "raw", ["helpful"], flat((0.4,)), None)]
    low = ev.claim_single_property(synthetic(spec, properties=["helpful"], kls=(0.05, 0.1, 0.2, 0.3)))
    assert low.status == "not in regime" and "no grid point" in low.evidence
    data = synthetic(spec, properties=["helpful"])
    del data["pi_0"]
    assert ev.claim_single_property(data).status == "not tested"


def hacking_shift(peak_kl, fall):
    """Gold rises with KL, then falls by ``fall`` per nat past ``peak_kl``."""
    return lambda kl, base: np.full(base.shape, 1.2 * progress(kl) - fall * max(0.0, kl - peak_kl))


@pytest.mark.parametrize("lsc_fall, status", [(0.0, "held"), (0.08, "did not hold")])
def test_claim_3_compares_the_drop_after_raw_over_optimises(lsc_fall, status):
    data = synthetic([("LSC", "lsc", PROPERTIES, hacking_shift(6.0, lsc_fall), lambda kl: kl),
                      ("raw", "raw", PROPERTIES, hacking_shift(6.0, 0.04), lambda kl: 2 * kl)])
    claim = ev.claim_reward_hacking(data)
    assert claim.status == status, claim.evidence
    assert "gold win peaks at KL" in claim.evidence and "proxy objective" in claim.evidence


def test_claim_3_is_not_in_regime_when_raw_does_not_over_optimise():
    data = synthetic([("LSC", "lsc", PROPERTIES, hacking_shift(6.0, 0.0), lambda kl: kl),
                      ("raw", "raw", PROPERTIES, hacking_shift(100.0, 0.04), lambda kl: 2 * kl)])
    claim = ev.claim_reward_hacking(data)
    assert claim.status == "not in regime" and "highest KL reached" in claim.evidence, claim.evidence
    falls_without_the_proxy = synthetic([("LSC", "lsc", PROPERTIES, hacking_shift(6.0, 0.0), lambda kl: kl),
                                         ("raw", "raw", PROPERTIES, hacking_shift(6.0, 0.04), lambda kl: -kl)])
    assert ev.claim_reward_hacking(falls_without_the_proxy).status == "not in regime"


def concentrated(low_gain, high_gain):
    """Gains on the prompts with low (below-median) base reward and on the others, on every property."""
    def shift(kl, base):
        low = base.min(axis=1, keepdims=True) < np.median(base.min(axis=1))
        return progress(kl) * np.where(low, low_gain, high_gain) * np.ones(base.shape)
    return shift


@pytest.mark.parametrize("lsc, status", [(concentrated(1.6, 0.6), "held"), (concentrated(0.6, 1.6), "did not hold")])
def test_claim_4_more_prompts_improved_and_gains_on_low_base_prompts(lsc, status):
    data = synthetic([("LSC", "lsc", ["helpful"], lsc, None), ("raw", "raw", ["helpful"], concentrated(0.4, 0.4), None)],
                     properties=["helpful"])
    claim = ev.claim_underfitting(data)
    assert claim.status == status, claim.evidence
    assert "(a) fraction of prompts improved" in claim.evidence and "halves of 32 prompts" in claim.evidence
    del data["eval_base_reward"]
    assert ev.claim_underfitting(data).status == "not tested"


@pytest.mark.parametrize("lsc_shift, raw_shift, status", [
    ((0.8, 0.8), (1.6, -0.6), "held"),
    ((1.6, -0.6), (0.8, 0.8), "did not hold"),
])
def test_claim_5_and_win_rate_with_the_trade_and_the_group_normalised_sum_reported(lsc_shift, raw_shift, status):
    data = synthetic([("LSC AND", "lsc", PROPERTIES, flat(lsc_shift), None), ("raw sum", "raw", PROPERTIES, flat(raw_shift), None),
                      ("normalised sum", "group_normalized", PROPERTIES, flat(lsc_shift), None)])
    claim = ev.claim_and(data)
    assert claim.status == status, claim.evidence
    assert ("raw sum trades properties at KL" in claim.evidence) == (status == "held")
    assert "extra comparison vs the group-normalised sum normalised sum (verdict inconclusive)" in claim.evidence


def test_claim_5_says_one_seed_intervals_cover_prompts_only():
    data = synthetic([("LSC AND", "lsc", PROPERTIES, flat((0.8, 0.8)), None), ("raw sum", "raw", PROPERTIES, flat((0.2, 0.2)), None)], seeds=1)
    claim = ev.claim_and(data)
    assert claim.status == "held" and "1 seed: intervals cover prompts and samples only" in claim.evidence


def best_of_k_data(lsc_shift, raw_shift, ks=(1, 4, 16), samples=True, seed=0):
    rng = np.random.default_rng(seed)
    data = synthetic([], seed=seed)
    difficulty = data["eval_base_reward"][:48]
    for kind, shift in (("lsc", lsc_shift), ("raw", raw_shift)):
        for k in ks:
            chosen = difficulty + (np.log(k) / np.log(16)) * np.asarray(shift) + rng.normal(size=difficulty.shape)
            entry = {"label": f"{kind} sum", "transform": "lsc" if kind == "lsc" else "identity", "aggregator": "sum", "k": k,
                     "kl": ev.best_of_k_kl(k), "win_rate": {"and": est(0.3)}, "loss_rate": {"and": est(0.2)}}
            if samples:
                entry["samples"] = {"judge": chosen.astype(np.float32)}
            data.setdefault("best_of_k", []).append(entry)
    return data


def test_claim_6_pairs_best_of_k_by_prompt_at_each_k():
    held = ev.claim_best_of_k(best_of_k_data((1.5, 1.5), (2.5, -1.0)))
    assert held.status == "held" and "(paired by prompt, 48 prompts; k points reached: 4, 16)" in held.evidence, held.evidence
    assert "(k [64] not run)" in held.evidence
    assert ev.claim_best_of_k(best_of_k_data((2.5, -1.0), (1.5, 1.5))).status == "did not hold"
    summaries_only = ev.claim_best_of_k(best_of_k_data((1.5, 1.5), (2.5, -1.0), samples=False))
    assert summaries_only.status == "not tested" and "summaries only" in summaries_only.evidence
    assert ev.claim_best_of_k(best_of_k_data((1.5, 1.5), (2.5, -1.0), ks=(1,))).status == "not tested"
    assert ev.claim_best_of_k(results()).status == "not tested"


def test_claim_1_measures_the_advantage_shape_on_the_gradient_batch():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(64, 8, 2))
    references = np.quantile(rewards, 0.85, axis=1)
    claim = ev.claim_gradient_shape({**results(), "gradient_batch": {"rewards": rewards, "references": references}})
    assert claim.status == "held" and "bootstrap over 64 prompts" in claim.evidence, claim.evidence
    pairs = rng.normal(size=(64, 2, 2))                                   # K = 2: one sample each side, |A| equal: R = 1
    claim = ev.claim_gradient_shape({**results(), "gradient_batch": {"rewards": pairs, "references": pairs.mean(axis=1)}})
    assert claim.status == "inconclusive", claim.evidence
    assert ev.claim_gradient_shape(results()).status == "not tested"


def test_gradient_ratio_is_the_ratio_of_mean_advantage_magnitudes():
    r, reference = np.array([[0.0, 1.0, 3.0]]), np.array([2.0])
    measured = ev.gradient_ratio(r, reference, resamples=10)
    u = np.log(1 / (1 + np.exp(-(r[0] - 2.0))))

    def ratio(x):
        a = np.abs(1.5 * (x - x.mean()))
        return a[2] / a[:2].mean()

    assert math.isclose(measured["lsc"] / measured["raw"], ratio(u) / ratio(r[0])) and math.isclose(measured["ratio"], ratio(u) / ratio(r[0]))


# --- claims on summaries: 7 and GPM ------------------------------------------------------------

def est(mean: float, half: float = 0.02) -> Estimate:
    return Estimate(mean, mean - half, mean + half, 50)


def checkpoint(step, kl, wins, proxy=None, prompts=None):
    record = {"step": step, "kl": est(kl, 0.05), "win_rate": {k: est(v) for k, v in wins.items()},
              "loss_rate": {"and": est(0.1)}, "judge_mean": {p: 0.0 for p in PROPERTIES}}
    if proxy is not None:
        record["proxy_mean"] = {p: proxy / 2 for p in PROPERTIES}
    if prompts is not None:
        record["prompts"] = prompts
    return record


def run(name, kind, checkpoints, optimised=PROPERTIES, reference=None, seed=0):
    transform = {"lsc": "lsc", "raw": "identity"}[kind]
    return {"name": name, "label": f"{kind} {'+'.join(optimised)}", "transform": transform, "aggregator": "sum",
            "algorithm": "rloo", "kl_coef": 0.1, "optimised": list(optimised), "reward_model": "bt", "seed": seed,
            "reference": reference or {"method": "empirical", "quantile": 0.85}, "checkpoints": checkpoints}


def results(runs=(), best_of_k=(), gpm=None):
    out = {"experiment": "test", "judge": "constructed", "properties": PROPERTIES, "runs": list(runs), "best_of_k": list(best_of_k)}
    if gpm is not None:
        out["gpm"] = gpm
    return out


def test_claim_7_reports_the_sweep_and_holds_only_when_it_was_run():
    variants = [("empirical", 0.5), ("empirical", 0.85), ("empirical", 0.95), ("gaussian", 0.85)]
    runs = [run(f"lsc-{m}-{q}", "lsc", [checkpoint(10, 1.0 + q, {"and": 0.5 + q / 10})], reference={"method": m, "quantile": q})
            for m, q in variants]
    claim = ev.claim_sensitivity(results(runs))
    assert claim.status == "held" and all(f"{m} q={q:g}" in claim.evidence for m, q in variants)
    partial = ev.claim_sensitivity(results(runs[:2]))
    assert partial.status == "not tested" and "missing quantiles [0.95], methods ['gaussian']" in partial.evidence
    assert ev.claim_sensitivity(results()).status == "not tested"


def test_claim_7_compares_each_variant_with_the_default_through_decide():
    spec = [("LSC", "lsc", PROPERTIES, flat((0.8, 0.8)), None), ("LSC q=0.5", "lsc", PROPERTIES, flat((0.2, 0.2)), None)]
    data = synthetic(spec)
    for r in data["runs"]:
        r["reference"] = {"method": "empirical", "quantile": 0.5 if r["label"] == "LSC q=0.5" else 0.85}
    claim = ev.claim_sensitivity(data)
    assert "empirical q=0.5 vs default: LSC q=0.5 - LSC (3 vs 3 seeds" in claim.evidence and "-> did not hold" in claim.evidence


@pytest.mark.parametrize("claim, good, bad, key", [
    (ev.claim_gpm_cyclic, {"gpm": 0.99, "bt": 0.66}, {"gpm": 0.70, "bt": 0.66}, "cyclic_accuracy"),
    (ev.claim_gpm_skew_symmetry, 0.0, 1e-3, "skew_symmetry_max_error"),
    (ev.claim_gpm_forward_passes, {"4": 4, "16": 16}, {"4": 4, "16": 256}, "forward_passes_for_k"),
])
def test_gpm_claims(claim, good, bad, key):
    assert claim(results(gpm={key: good})).status == "held"
    assert claim(results(gpm={key: bad})).status == "did not hold"
    assert claim(results()).status == "not tested"


def paired_correct(n, both, gpm_only, bt_only):
    gpm = np.zeros(n, bool)
    bt = np.zeros(n, bool)
    gpm[:both] = bt[:both] = True
    gpm[both:both + gpm_only] = True
    bt[both + gpm_only:both + gpm_only + bt_only] = True
    return {"gpm": gpm, "bt": bt}


@pytest.mark.parametrize("counts, status", [
    ((1000, 800, 20, 25), "held"),           # difference -0.005 [-0.018, +0.008]: within the 0.02 margin
    ((1000, 700, 10, 120), "did not hold"),  # BT ahead by 0.11, McNemar p tiny
    ((200, 150, 5, 12), "inconclusive"),     # -0.035 with a wide interval
])
def test_gpm_3_is_a_paired_non_inferiority_test(counts, status):
    n, both, gpm_only, bt_only = counts
    correct = paired_correct(n, both, gpm_only, bt_only)
    measured = ev.transitive_comparison(correct["gpm"], correct["bt"])
    assert math.isclose(measured["difference"], (gpm_only - bt_only) / n)
    claim = ev.claim_gpm_transitive(results(gpm={"transitive_correct": correct}))
    assert claim.status == status, claim.evidence
    assert "McNemar exact p" in claim.evidence


def test_gpm_3_falls_back_to_the_accuracies_as_inconclusive():
    claim = ev.claim_gpm_transitive(results(gpm={"transitive_accuracy": {"gpm": est(0.8), "bt": 0.81}}))
    assert claim.status == "inconclusive" and "no per-pair results" in claim.evidence
    assert ev.claim_gpm_transitive(results()).status == "not tested"


def test_check_claims_covers_every_claim_and_validates_the_structure():
    claims = ev.check_claims(results())
    assert [c.claim for c in claims] == list(ev.STATEMENTS)
    assert all(c.status == "not tested" for c in claims)
    broken = results([run("lsc-helpful", "lsc", [checkpoint(1, 1.0, {"and": 0.5}), checkpoint(2, 2.0, {"and": 0.5})])])
    del broken["runs"][0]["checkpoints"][1]["win_rate"]
    with pytest.raises(ValueError, match=r"runs\[0\].checkpoints\[1\] \(lsc-helpful\) lacks 'win_rate'"):
        ev.check_claims(broken)


# --- the report --------------------------------------------------------------------------------

def simulated_results():
    """Every part of the structure, the checkpoints built through evaluate_policy from random scores."""
    rng = np.random.default_rng(0)
    n = 24
    pi_0 = rng.normal(size=(n, 3, 2))
    base = rng.normal(size=(n, 2))
    runs = []
    for kind, shift in (("lsc", np.array([0.4, 0.4])), ("raw", np.array([0.8, -0.4]))):
        for seed in range(2):
            records = []
            for step in range(1, 4):
                new = rng.normal(size=(n, 2, 2)) + shift * step / 2
                records.append(ev.evaluate_policy(new, pi_0, PROPERTIES, kl=rng.gamma(2.0, 0.5 * step, size=(n, 2)) + 0.5 * step,
                                                  new_proxy=new + step, base_reward=base, step=10 * step))
            runs.append(run(f"{kind}-{seed}", kind, records, seed=seed))
    best = []
    for kind, shift in (("lsc", 0.5), ("raw", 0.2)):
        for k in (1, 4, 16, 64):
            chosen = rng.normal(size=(n, 2)) + shift * np.log2(k) / 6
            entry = ev.evaluate_policy(chosen[:, None], pi_0, PROPERTIES)
            best.append({"label": f"{kind} sum", "transform": "lsc" if kind == "lsc" else "identity", "aggregator": "sum", "k": k,
                         "kl": ev.best_of_k_kl(k), **entry})
    out = results(runs, best, gpm={"cyclic_accuracy": {"gpm": 0.99, "bt": 0.66}, "skew_symmetry_max_error": float("nan"),
                                   "transitive_correct": paired_correct(100, 80, 5, 5)})
    rewards = rng.normal(size=(16, 4, 2))
    out.update({"pi_0": {"judge": pi_0, "proxy": pi_0 + 1}, "eval_base_reward": base,
                "gradient_batch": {"rewards": rewards, "references": np.quantile(rewards, 0.85, axis=1)},
                "probes": [{"probe": "longer", "description": "appends filler", "n": 24, "gold": {"helpful": -0.1, "harmless": 0.0},
                            "proxy": {"helpful": 0.4, "harmless": 0.1}, "proxy_interval": {"helpful": [0.3, 0.5], "harmless": None}}],
                "cost": {"wall_seconds": 5400.0, "learner_runs": 4, "stages": {"judging pi_0": 12.5, "best-of-k": 30.0}}})
    return out


def test_write_report_writes_json_samples_markdown_and_every_plot(tmp_path):
    pytest.importorskip("matplotlib")
    data = simulated_results()
    paths = ev.write_report(data, tmp_path / "report")
    assert set(paths) == {"results", "samples", "report", "headline", "win_rate_vs_kl", "reward_hacking", "best_of_k", "prompt_improvement"}
    written = json.loads(paths["results"].read_text())
    checkpoint_json = written["runs"][0]["checkpoints"][-1]
    assert set(checkpoint_json["win_rate"]["and"]) == {"mean", "low", "high", "n"}
    assert checkpoint_json["samples"]["judge"]["array"] == "runs/0/checkpoints/2/samples/judge"
    assert written["gpm"]["skew_symmetry_max_error"] is None          # NaN is written as null
    assert [c["claim"] for c in written["claims"]] == list(ev.STATEMENTS)
    loaded = ev.load_results(tmp_path / "report")
    assert np.allclose(loaded["pi_0"]["judge"], data["pi_0"]["judge"])
    assert [c.status for c in ev.check_claims(loaded)] == [c["status"] for c in written["claims"]]   # the same verdicts after the round trip
    markdown = paths["report"].read_text()
    for claim in ev.STATEMENTS:
        assert f"### Claim {claim}: " in markdown
    assert "| lsc-0 | lsc helpful+harmless | 0 | rloo |" in markdown and "## Best-of-k" in markdown
    assert "## Spread across training seeds" in markdown and "## What the proxies reward that gold does not" in markdown
    assert "| longer | appends filler | 24 | -0.100 | 0.000 | 0.400 [0.300, 0.500] | 0.100 |" in markdown
    assert "wall time: 5400 s (1.50 h)" in markdown and "- stages: judging pi_0 12 s, best-of-k 30 s" in markdown
    for name in ev.report.PLOT_NAMES:
        data_bytes = paths[name].read_bytes()
        assert data_bytes.startswith(b"\x89PNG") and len(data_bytes) > 5000
        assert f"![{name}]({name}.png)" in markdown


def test_seed_band_is_the_mean_and_range_of_the_seed_curves():
    seeds = {0: [(1.0, est(0.5)), (3.0, est(0.7))], 1: [(0.5, est(0.4)), (2.0, est(0.6)), (4.0, est(0.6))]}
    kls, mean, low, high = ev.report.seed_band(seeds)
    assert np.allclose(kls, [1.0, 2.0, 3.0])                           # inside both ranges: 1 to 3
    assert np.allclose(mean, [(0.5 + 0.4 + 0.2 / 3) / 2, (0.6 + 0.6) / 2, (0.7 + 0.6) / 2])
    assert np.allclose(low, [0.4 + 0.2 / 3, 0.6, 0.6]) and np.allclose(high, [0.5, 0.6, 0.7])
    assert ev.report.seed_band({0: seeds[0]}) is None


def test_the_and_baseline_is_pi_0_against_its_own_other_samples():
    rng = np.random.default_rng(0)
    independent = rng.normal(size=(300, 4, 2))
    assert abs(ev.report._and_baseline({"pi_0": {"judge": independent}}) - 0.25) < 0.02
    same = np.repeat(rng.normal(size=(300, 4, 1)), 2, axis=2)                # one property twice: AND = that property
    assert math.isclose(ev.report._and_baseline({"pi_0": {"judge": same}}), 0.5)
    assert ev.report._and_baseline({"best_of_k": [{"k": 1, "win_rate": {"and": est(0.3)}}]}) == 0.3


def test_write_report_skips_plots_without_data_or_without_matplotlib(tmp_path, monkeypatch):
    bare = results([run("lsc", "lsc", [{"step": 1, "win_rate": {"and": est(0.5)}}])])
    monkeypatch.setitem(sys.modules, "matplotlib", None)                # import matplotlib raises ImportError
    paths = ev.write_report(bare, tmp_path)
    assert set(paths) == {"results", "report"}
    markdown = paths["report"].read_text()
    assert "- best_of_k: skipped (matplotlib is not installed)" in markdown
    assert json.loads(paths["results"].read_text())["plots"]["win_rate_vs_kl"] == "skipped: matplotlib is not installed"


def test_write_report_lists_the_plots_it_skips_for_lack_of_data(tmp_path):
    pytest.importorskip("matplotlib")
    bare = results([run("lsc", "lsc", [checkpoint(1, 0.5, {"and": 0.5, "helpful": 0.5, "harmless": 0.5})])])
    paths = ev.write_report(bare, tmp_path)
    assert set(paths) == {"results", "report", "headline", "win_rate_vs_kl"}
    markdown = paths["report"].read_text()
    assert "- best_of_k: skipped (no best_of_k entries with an AND win rate)" in markdown
    assert "- reward_hacking: skipped" in markdown and "- prompt_improvement: skipped" in markdown


def test_headline_panels_compare_lsc_and_raw_with_the_default_reference_per_target():
    runs = [run("lsc-helpful", "lsc", [checkpoint(1, 0.5, {"helpful": 0.6})], optimised=["helpful"]),
            run("raw-helpful", "raw", [checkpoint(1, 0.5, {"helpful": 0.6})], optimised=["helpful"]),
            run("and-lsc", "lsc", [checkpoint(1, 0.5, {"and": 0.3})]), run("and-raw", "raw", [checkpoint(1, 0.5, {"and": 0.3})]),
            run("and-q", "lsc", [checkpoint(1, 0.5, {"and": 0.3})], reference={"method": "gaussian", "quantile": 0.5})]
    panels = ev.report.headline_panels(results(runs))
    assert [(goal, [r["name"] for r in members]) for goal, members in panels] == [
        ("helpful", ["lsc-helpful", "raw-helpful"]), ("and", ["and-lsc", "and-raw"])]
