"""alignment.evaluation: exact statistics on hand-made arrays, each claim's three verdicts on
constructed results, and the report's files."""

import json
import math
import sys
from statistics import NormalDist

import numpy as np
import pytest

from alignment import evaluation as ev
from alignment.evaluation import Estimate

Z = NormalDist().inv_cdf(0.975)
PROPERTIES = ["helpful", "harmless"]


def close(estimate: Estimate, mean: float, low: float, high: float) -> bool:
    return np.allclose([estimate.mean, estimate.low, estimate.high], [mean, low, high], atol=1e-9)


# --- stats -------------------------------------------------------------------------------------

def test_win_rate_counts_ties_as_half_and_averages_per_prompt_first():
    new = [[1.0, 2.0], [3.0, 3.0]]
    old = [[0.0, 2.0], [4.0, 3.0]]          # prompt 0: win, tie -> 0.75; prompt 1: loss, tie -> 0.25
    half = Z * np.std([0.75, 0.25], ddof=1) / math.sqrt(2)
    estimate = ev.win_rate(new, old)
    assert close(estimate, 0.5, 0.5 - half, 0.5 + half) and estimate.n == 2


def test_win_rate_interval_is_clipped_to_the_unit_interval():
    new, old = [[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]], np.zeros((3, 2))   # prompt 1: win, tie -> 0.75
    estimate = ev.win_rate(new, old)
    assert estimate.high == 1.0 and estimate.low < estimate.mean < 1.0
    assert math.isclose(estimate.mean, (1 + 0.75 + 1) / 3)


def test_and_win_and_loss_rates_multiply_per_property_wins_with_ties_as_coin_flips():
    new = np.array([[[1, 1], [2, 2]], [[0, 5], [3, 3]]], dtype=float)
    old = np.array([[[0, 1], [1, 1]], [[1, 0], [3, 3]]], dtype=float)
    # prompt 0: (win, tie) = 0.5, (win, win) = 1 -> 0.75; prompt 1: (loss, win) = 0, (tie, tie) = 0.25 -> 0.125
    win = ev.and_win_rate(new, old)
    assert math.isclose(win.mean, (0.75 + 0.125) / 2)
    # pi_0 wins on every property: prompt 0: 0, 0; prompt 1: 0, 0.25 -> 0.125
    loss = ev.and_loss_rate(new, old)
    assert math.isclose(loss.mean, 0.0625)
    assert math.isclose(loss.mean, ev.and_win_rate(old, new).mean)


def test_clustered_interval_is_wider_than_iid_when_samples_of_a_prompt_agree():
    rng = np.random.default_rng(0)
    prompts, samples = 20, 10
    per_prompt = rng.normal(size=(prompts, 1))
    new = np.repeat(per_prompt, samples, axis=1)          # every sample of a prompt wins or every one loses
    old = np.zeros_like(new)
    clustered = ev.win_rate(new, old)
    wins = ev.pair_wins(new, old).reshape(-1)
    iid_half = Z * wins.std(ddof=1) / math.sqrt(wins.size)
    assert clustered.half_width > 2.5 * iid_half        # about sqrt(samples) = 3.2 times wider


def test_mean_estimate_is_the_clustered_mean():
    estimate = ev.mean_estimate([[1.0, 3.0], [5.0, 7.0]])       # per prompt 2 and 6
    half = Z * np.std([2.0, 6.0], ddof=1) / math.sqrt(2)
    assert close(estimate, 4.0, 4.0 - half, 4.0 + half)


def test_shape_mismatches_and_bad_values_name_the_argument():
    with pytest.raises(ValueError, match=r"win_rate: new has shape \(2, 3\) but old has shape \(2, 4\)"):
        ev.win_rate(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"and_win_rate: new must be .*\[prompts, samples, properties\].*\(2, 3\)"):
        ev.and_win_rate(np.zeros((2, 3)), np.zeros((2, 3)))
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
    middle = ev.value_at_kl([0.0, 1.0], [Estimate(0.5, 0.4, 0.6, 10), Estimate(0.7, 0.5, 0.9, 20)], 0.5)
    assert close(middle, 0.6, 0.45, 0.75) and middle.n == 10


def test_matched_kl_uses_every_observed_kl_inside_both_ranges():
    a = ev.frontier([(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)])
    b = ev.frontier([(0.5, 0.0), (3.0, 2.5)])
    assert ev.matched_kl(a, b) == [(0.5, 0.5, 0.0), (1.0, 1.0, 0.5), (2.0, 2.0, 1.5)]
    assert ev.matched_kl(a, ev.frontier([(5.0, 1.0), (6.0, 1.0)])) == []


def test_prompt_improvement_splits_prompts_by_base_reward():
    new = [[1.0, 1.0], [0.0, 0.0], [2.0, 2.0], [0.0, 1.0]]
    old = [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]      # gains 1, 0, 2, -0.5
    base = [0.1, 0.3, 0.9, 0.5]                                  # lower half: prompts 0, 1; upper: 3, 2
    result = ev.prompt_improvement(new, old, base)
    assert math.isclose(result["improved_fraction"].mean, 0.5)  # a zero gain is not an improvement
    assert math.isclose(result["low_base_gain"].mean, 0.5) and math.isclose(result["high_base_gain"].mean, 0.75)
    assert math.isclose(result["gain"].mean, 0.625)
    assert math.isclose(result["correlation"], 0.2)              # ranks (3, 2, 4, 1) vs (1, 2, 4, 3)
    with pytest.raises(ValueError, match=r"base_reward has shape \(3,\) but the judge scores have 4 prompts"):
        ev.prompt_improvement(new, old, base[:3])


def test_spearman_averages_tied_ranks():
    scipy_stats = pytest.importorskip("scipy.stats")
    x, y = [1.0, 1.0, 2.0, 5.0, 3.0], [2.0, 1.0, 4.0, 4.0, 0.0]
    assert math.isclose(ev.spearman(x, y), scipy_stats.spearmanr(x, y)[0])
    assert ev.spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None


def test_evaluate_policy_builds_the_checkpoint_record():
    rng = np.random.default_rng(1)
    old = rng.normal(size=(8, 3, 2))
    new = old + np.array([1.0, -1.0])                           # better on helpful, worse on harmless
    record = ev.evaluate_policy(new, old, PROPERTIES, kl=np.ones((8, 3)), new_proxy=new, base_reward=rng.normal(size=(8, 2)), step=5)
    assert record["step"] == 5 and close(record["kl"], 1.0, 1.0, 1.0)
    assert record["win_rate"]["helpful"].mean == 1.0 and record["win_rate"]["harmless"].mean == 0.0
    assert record["win_rate"]["and"].mean == 0.0 and record["loss_rate"]["and"].mean == 0.0
    assert record["loss_rate"]["harmless"].mean == 1.0
    assert record["prompts"]["target"] == "and" and record["prompts"]["improved_fraction"].mean == 0.0
    single = ev.evaluate_policy(new, old, PROPERTIES, base_reward=np.zeros((8, 2)), optimised=["helpful"])
    assert single["prompts"]["target"] == "helpful" and single["prompts"]["improved_fraction"].mean == 1.0
    assert "kl" not in single and "proxy_mean" not in single
    with pytest.raises(ValueError, match=r"kl must be \[prompts, samples\] = \(8, 3\), got shape \(8,\)"):
        ev.evaluate_policy(new, old, PROPERTIES, kl=np.ones(8))
    with pytest.raises(ValueError, match=r"new_judge must be .* 3 properties .* got shape \(8, 3, 2\)"):
        ev.evaluate_policy(new, old, [*PROPERTIES, "honest"])
    with pytest.raises(ValueError, match=r"base_reward must be \[prompts, properties\] = \(8, 2\), got shape \(8,\)"):
        ev.evaluate_policy(new, old, PROPERTIES, base_reward=np.zeros(8))


def test_and_diagnostics_call_a_prompt_low_when_it_is_low_on_some_property():
    base = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 0.0]])   # min ranks 1, 2, 3, 1: prompts 0 and 3 are low
    old = np.zeros((4, 2, 2))
    new = old.copy()
    new[[0, 3]] = 1.0                                                    # AND win on prompts 0 and 3, ties elsewhere
    diagnostics = ev.evaluate_policy(new, old, PROPERTIES, base_reward=base)["prompts"]
    assert diagnostics["low_base_gain"].mean == 1.0 and diagnostics["high_base_gain"].mean == 0.0


def test_best_of_k_kl_is_the_analytic_formula():
    assert ev.best_of_k_kl(1) == 0.0
    assert math.isclose(ev.best_of_k_kl(4), math.log(4) - 0.75)


# --- constructed results -----------------------------------------------------------------------

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


def run(name, kind, checkpoints, optimised=PROPERTIES, reference=None, training=None, algorithm="rloo"):
    transform = {"lsc": "lsc", "raw": "identity"}[kind]
    return {"name": name, "label": f"{kind} {'+'.join(optimised)}", "transform": transform, "aggregator": "sum",
            "algorithm": algorithm, "kl_coef": 0.1, "optimised": list(optimised), "reward_model": "bt",
            "reference": reference or {"method": "empirical", "quantile": 0.85}, "training": training or {},
            "checkpoints": checkpoints}


def results(runs=(), best_of_k=(), gpm=None):
    out = {"experiment": "test", "judge": "constructed", "properties": PROPERTIES, "runs": list(runs), "best_of_k": list(best_of_k)}
    if gpm is not None:
        out["gpm"] = gpm
    return out


def single_curve(kind, wins, kls=(1.0, 2.0, 4.0), prop="helpful"):
    return run(f"{kind}-{prop}", kind, [checkpoint(10 * (i + 1), kl, {prop: w, "and": 0.3}) for i, (kl, w) in enumerate(zip(kls, wins))],
               optimised=[prop])


@pytest.mark.parametrize("lsc_wins, raw_wins, status", [
    ((0.60, 0.70, 0.75), (0.55, 0.60, 0.62), "held"),
    ((0.55, 0.60, 0.62), (0.60, 0.70, 0.75), "did not hold"),
    ((0.70, 0.70, 0.58), (0.60, 0.60, 0.70), "did not hold"),   # LSC ahead on average, raw ahead beyond noise once
    ((0.61, 0.62, 0.63), (0.60, 0.61, 0.62), "inconclusive"),   # LSC ahead everywhere, never beyond the intervals
    ((0.60, 0.61, 0.62), (0.60, 0.61, 0.62), "inconclusive"),   # equal curves: ">=" holds, but nothing is shown
])
def test_claim_2_compares_curves_at_matched_kl(lsc_wins, raw_wins, status):
    claim = ev.claim_single_property(results([single_curve("lsc", lsc_wins), single_curve("raw", raw_wins)]))
    assert claim.status == status, claim.evidence
    assert "matched KL points" in claim.evidence


def test_claim_2_is_not_tested_without_a_raw_run_or_without_overlapping_kl():
    assert ev.claim_single_property(results([single_curve("lsc", (0.6, 0.7, 0.8))])).status == "not tested"
    apart = results([single_curve("lsc", (0.6, 0.7, 0.8)), single_curve("raw", (0.6, 0.7, 0.8), kls=(10.0, 11.0, 12.0))])
    claim = ev.claim_single_property(apart)
    assert claim.status == "not tested" and "do not overlap" in claim.evidence


def gradient_training(above, below):
    return {f"advantage_abs/{side}_ref/{p}": value for p in PROPERTIES for side, value in (("above", above), ("below", below))}


@pytest.mark.parametrize("lsc_above, raw_above, status", [
    (0.2, 0.5, "held"),
    (0.6, 0.5, "did not hold"),
    (0.6, 0.9, "did not hold"),      # below raw's ratio, but not below 1
])
def test_claim_1_compares_advantages_above_and_below_the_reference(lsc_above, raw_above, status):
    runs = [run("lsc", "lsc", [], training=gradient_training(lsc_above, 0.5)), run("raw", "raw", [], training=gradient_training(raw_above, 0.5))]
    claim = ev.claim_gradient_shape(results(runs))
    assert claim.status == status, claim.evidence
    assert ev.claim_gradient_shape(results([run("lsc", "lsc", [])])).status == "not tested"


def hacking_run(kind, wins, proxies):
    return run(kind, kind, [checkpoint(10 * i, 1.0 + i, {"and": w, "helpful": 0.6, "harmless": 0.6}, proxy=p)
                            for i, (w, p) in enumerate(zip(wins, proxies))])


def test_claim_3_reads_the_checkpoint_sequence():
    raw = hacking_run("raw", (0.6, 0.7, 0.55), (1.0, 2.0, 3.0))        # proxy keeps rising, win falls after the peak
    lsc = hacking_run("lsc", (0.6, 0.7, 0.69), (1.0, 1.5, 1.6))
    assert ev.claim_reward_hacking(results([raw, lsc])).status == "held"
    honest_raw = hacking_run("raw", (0.6, 0.7, 0.8), (1.0, 2.0, 3.0))   # win still rising: no hacking seen
    claim = ev.claim_reward_hacking(results([honest_raw, lsc]))
    assert claim.status == "did not hold" and "raw hacked in 0/1" in claim.evidence
    proxy_falls_too = hacking_run("raw", (0.6, 0.7, 0.55), (1.0, 3.0, 2.0))   # a drop, but not from chasing the proxy
    assert ev.claim_reward_hacking(results([proxy_falls_too, lsc])).status == "did not hold"
    short = [run("raw", "raw", [raw["checkpoints"][0]]), run("lsc", "lsc", [lsc["checkpoints"][0]])]
    assert ev.claim_reward_hacking(results(short)).status == "not tested"


def prompts(improved, low, high):
    return {"target": "and", "improved_fraction": est(improved), "gain": est((low + high) / 2),
            "low_base_gain": est(low, 0.05), "high_base_gain": est(high, 0.05), "correlation": -0.3}


def underfitting_run(kind, improved, low, high):
    return run(kind, kind, [checkpoint(10 * (i + 1), kl, {"and": 0.5}, prompts=prompts(f, low, high))
                            for i, (kl, f) in enumerate(zip((1.0, 2.0), improved))])


def test_claim_4_needs_more_improved_prompts_and_gains_on_low_base_prompts():
    raw = underfitting_run("raw", (0.5, 0.6), 0.2, 0.2)
    assert ev.claim_underfitting(results([underfitting_run("lsc", (0.6, 0.7), 0.4, 0.1), raw])).status == "held"
    claim = ev.claim_underfitting(results([underfitting_run("lsc", (0.6, 0.7), 0.1, 0.4), raw]))
    assert claim.status == "did not hold", claim.evidence
    other_target = underfitting_run("lsc", (0.6, 0.7), 0.4, 0.1)
    for record in other_target["checkpoints"]:
        record["prompts"]["target"] = "helpful"                         # diagnostics of another target do not count
    assert ev.claim_underfitting(results([other_target, raw])).status == "not tested"
    no_prompts = [hacking_run("raw", (0.6, 0.7), (1, 2)), hacking_run("lsc", (0.6, 0.7), (1, 2))]
    assert ev.claim_underfitting(results(no_prompts)).status == "not tested"


def and_run(kind, and_wins, helpful, harmless):
    return run(kind, kind, [checkpoint(10 * (i + 1), kl, {"and": w, "helpful": helpful, "harmless": harmless})
                            for i, (kl, w) in enumerate(zip((1.0, 2.0, 3.0), and_wins))])


def test_claim_5_needs_a_better_and_curve_and_a_raw_sum_that_trades_properties():
    lsc = and_run("lsc", (0.4, 0.5, 0.55), 0.6, 0.6)
    trading_raw = and_run("raw", (0.3, 0.3, 0.3), 0.75, 0.4)
    claim = ev.claim_and(results([lsc, trading_raw]))
    assert claim.status == "held" and "trades a property in 1/1" in claim.evidence
    balanced_raw = and_run("raw", (0.3, 0.3, 0.3), 0.55, 0.55)
    assert ev.claim_and(results([lsc, balanced_raw])).status == "did not hold"
    assert ev.claim_and(results([single_curve("lsc", (0.6, 0.7, 0.8)), single_curve("raw", (0.5, 0.6, 0.7))])).status == "not tested"


def best_of_k_entries(kind, wins, ks=(1, 4, 16, 64)):
    transform = {"lsc": "lsc", "raw": "identity"}[kind]
    return [{"label": f"{kind} sum", "transform": transform, "aggregator": "sum", "k": k, "kl": ev.best_of_k_kl(k),
             "win_rate": {"and": est(w)}, "loss_rate": {"and": est(0.1)}} for k, w in zip(ks, wins)]


def test_claim_6_compares_best_of_k_at_each_k():
    raw = best_of_k_entries("raw", (0.3, 0.35, 0.38, 0.38))
    assert ev.claim_best_of_k(results(best_of_k=[*best_of_k_entries("lsc", (0.3, 0.4, 0.45, 0.5)), *raw])).status == "held"
    assert ev.claim_best_of_k(results(best_of_k=[*best_of_k_entries("lsc", (0.3, 0.3, 0.3, 0.3)), *raw])).status == "did not hold"
    only_k1 = [*best_of_k_entries("lsc", (0.3,), ks=(1,)), *best_of_k_entries("raw", (0.3,), ks=(1,))]
    assert ev.claim_best_of_k(results(best_of_k=only_k1)).status == "not tested"
    assert ev.claim_best_of_k(results()).status == "not tested"


def test_claim_7_reports_the_sweep_and_holds_only_when_it_was_run():
    variants = [("empirical", 0.5), ("empirical", 0.85), ("empirical", 0.95), ("gaussian", 0.85)]
    runs = [run(f"lsc-{m}-{q}", "lsc", [checkpoint(10, 1.0 + q, {"and": 0.5 + q / 10})], reference={"method": m, "quantile": q})
            for m, q in variants]
    claim = ev.claim_sensitivity(results(runs))
    assert claim.status == "held" and all(f"{m} q={q:g}" in claim.evidence for m, q in variants)
    partial = ev.claim_sensitivity(results(runs[:2]))
    assert partial.status == "not tested" and "missing quantiles [0.95], methods ['gaussian']" in partial.evidence
    empirical_only = ev.claim_sensitivity(results(runs[:3]))
    assert empirical_only.status == "not tested" and "methods ['gaussian']" in empirical_only.evidence
    assert ev.claim_sensitivity(results()).status == "not tested"


@pytest.mark.parametrize("claim, good, bad, key", [
    (ev.claim_gpm_cyclic, {"gpm": 0.99, "bt": 0.66}, {"gpm": 0.70, "bt": 0.66}, "cyclic_accuracy"),
    (ev.claim_gpm_skew_symmetry, 0.0, 1e-3, "skew_symmetry_max_error"),
    (ev.claim_gpm_transitive, {"gpm": est(0.8), "bt": 0.81}, {"gpm": 0.7, "bt": 0.81}, "transitive_accuracy"),
    (ev.claim_gpm_forward_passes, {"4": 4, "16": 16}, {"4": 4, "16": 256}, "forward_passes_for_k"),
])
def test_gpm_claims(claim, good, bad, key):
    assert claim(results(gpm={key: good})).status == "held"
    assert claim(results(gpm={key: bad})).status == "did not hold"
    assert claim(results()).status == "not tested"


def test_check_claims_covers_every_claim_and_validates_the_structure():
    claims = ev.check_claims(results())
    assert [c.claim for c in claims] == list(ev.STATEMENTS)
    assert all(c.status == "not tested" for c in claims)
    broken = results([single_curve("lsc", (0.6, 0.7, 0.8))])
    del broken["runs"][0]["checkpoints"][1]["win_rate"]
    with pytest.raises(ValueError, match=r"runs\[0\].checkpoints\[1\] \(lsc-helpful\) lacks 'win_rate'"):
        ev.check_claims(broken)


# --- the report --------------------------------------------------------------------------------

def simulated_results():
    """Every part of the structure, built through evaluate_policy from random scores."""
    rng = np.random.default_rng(0)
    runs = []
    for kind, shift in (("lsc", np.array([0.4, 0.4])), ("raw", np.array([0.8, -0.4]))):
        records = []
        for step in range(3):
            old = rng.normal(size=(16, 2, 2))
            new = old + shift * step / 2 + rng.normal(size=old.shape)
            records.append(ev.evaluate_policy(new, old, PROPERTIES, kl=rng.gamma(2.0, 0.5 + step, size=(16, 2)),
                                              new_proxy=new + step, base_reward=rng.normal(size=(16, 2)), step=10 * step))
        runs.append(run(kind, kind, records, training=gradient_training(0.2 if kind == "lsc" else 0.5, 0.5)))
    best = [*best_of_k_entries("lsc", (0.3, 0.4, 0.45, 0.5)), *best_of_k_entries("raw", (0.3, 0.35, 0.38, 0.38))]
    return results(runs, best, gpm={"cyclic_accuracy": {"gpm": 0.99, "bt": 0.66}, "skew_symmetry_max_error": float("nan")})


def test_write_report_writes_json_markdown_and_every_plot(tmp_path):
    pytest.importorskip("matplotlib")
    paths = ev.write_report(simulated_results(), tmp_path / "report")
    assert set(paths) == {"results", "report", "headline", "win_rate_vs_kl", "reward_hacking", "best_of_k", "prompt_improvement"}
    written = json.loads(paths["results"].read_text())
    checkpoint_json = written["runs"][0]["checkpoints"][-1]
    assert set(checkpoint_json["win_rate"]["and"]) == {"mean", "low", "high", "n"}
    assert written["gpm"]["skew_symmetry_max_error"] is None          # NaN is written as null
    assert [c["claim"] for c in written["claims"]] == list(ev.STATEMENTS)
    markdown = paths["report"].read_text()
    for claim in ev.STATEMENTS:
        assert f"### Claim {claim}: " in markdown
    assert "| lsc | lsc helpful+harmless | rloo |" in markdown and "## Best-of-k" in markdown
    for name in ev.report.PLOT_NAMES:
        data = paths[name].read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000
        assert f"![{name}]({name}.png)" in markdown


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
    runs = [single_curve("lsc", (0.6, 0.7, 0.8)), single_curve("raw", (0.6, 0.6, 0.6)),
            run("and-lsc", "lsc", [checkpoint(1, 0.5, {"and": 0.3})]), run("and-raw", "raw", [checkpoint(1, 0.5, {"and": 0.3})]),
            run("and-q", "lsc", [checkpoint(1, 0.5, {"and": 0.3})], reference={"method": "gaussian", "quantile": 0.5})]
    panels = ev.report.headline_panels(results(runs))
    assert [(goal, [r["name"] for r in members]) for goal, members in panels] == [
        ("helpful", ["lsc-helpful", "raw-helpful"]), ("and", ["and-lsc", "and-raw"])]
