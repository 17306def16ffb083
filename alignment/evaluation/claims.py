"""The claims of the two papers, checked against a results structure.

Section 1: Wang et al., "Transforming and Combining Rewards for Aligning Large Language Models"
(arXiv 2402.00742), claims 1-7. Section 2: Zhang et al., "Beyond Bradley-Terry Models: A General
Preference Model for Language Model Alignment" (arXiv 2410.02197), claims GPM 1-4.

Each ``claim_*`` function returns a ``ClaimResult`` whose status is "held", "did not hold",
"inconclusive" (no difference beyond the intervals either way) or "not tested" (the results
lack what the claim needs; the evidence says what). No status is set
by construction: every "held" is a comparison of measured numbers that could have gone the
other way, and the evidence carries those numbers with their intervals.

"LSC" runs are those whose utility is a sum of LSC terms (``results.utility_kind``) with the
paper's default reference (empirical 0.85 quantile); "raw" runs sum raw rewards. Comparisons
pair runs of the same target (one property, or the AND of several), learner algorithm and
reward-model kind.

**Matched KL.** A method's curve is the ``frontier`` of (KL, value) over every checkpoint of its
runs (the final checkpoint of each run of a KL-coefficient sweep, plus intermediate ones). Two
curves are compared at every observed KL of either that lies inside both KL ranges, the other
curve linearly interpolated there (``stats.matched_kl``). At each matched point the difference
d = LSC - raw has half-width h = sqrt(h_LSC² + h_raw²) (independent intervals). A comparison
**does not hold** when some point has raw ahead beyond noise (d + h < 0); it **holds** when
none does, mean(d) > 0 and some point has LSC ahead beyond noise (d - h > 0); otherwise it is
**inconclusive**. It is not tested when the KL ranges do not overlap. A claim with several
comparisons (e.g. one per learner) holds only when every tested one holds, and does not hold
as soon as one does not.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from alignment.evaluation.results import (
    checkpoints,
    curve,
    estimate_at,
    final_checkpoint,
    has_default_reference,
    lookup,
    optimised,
    proxy_total,
    reference_variant,
    run_kind,
    target,
    validate_results,
)
from alignment.evaluation.stats import Estimate, as_estimate, matched_kl

HELD, NOT_HELD, INCONCLUSIVE, NOT_TESTED = "held", "did not hold", "inconclusive", "not tested"
STATUSES = (HELD, NOT_HELD, INCONCLUSIVE, NOT_TESTED)

BEST_OF_K_KS = (4, 16, 64)
SENSITIVITY_QUANTILES = (0.5, 0.85, 0.95)
SENSITIVITY_METHODS = ("empirical", "gaussian")
CYCLIC_GPM_MIN_ACCURACY = 0.95       # "about 100 %"
CYCLIC_BT_MAX_ACCURACY = 2 / 3 + 0.05  # "cannot exceed about 2/3"
SKEW_SYMMETRY_TOLERANCE = 1e-6       # "exactly", up to float rounding
TRANSITIVE_TOLERANCE = 0.02          # "matches": GPM accuracy >= BT accuracy - 0.02

STATEMENTS = {
    "1": "Gradient shape: under LSC the per-sample policy-gradient weight (mean |advantage|) is smaller for responses above r_ref than below it.",
    "2": "Single property: at matched KL, the LSC-trained policy's gold win rate over pi_0 >= the raw-reward policy's.",
    "3": "Reward hacking: under raw reward the proxy keeps rising with KL while the gold win rate stalls or falls; under LSC the gold win rate degrades less.",
    "4": "Underfitting: the fraction of prompts improved over pi_0 is higher under LSC (at matched KL), and LSC's gains concentrate on prompts with low base reward.",
    "5": "AND: at matched KL the AND win rate over pi_0 is higher with the sum of LSC terms than with the raw sum; the raw sum lets one property rise while the other falls.",
    "6": "Best-of-k: reranking k in {4, 16, 64} base samples by u_AND gives a higher AND win rate than reranking by the raw sum.",
    "7": "Sensitivity: the reference quantile q in {0.5, 0.85, 0.95} and empirical versus gaussian references are swept and reported (a sweep, not a directional claim: 'held' means the sweep was run).",
    "GPM 1": "On cyclic preferences (a > b > c > a) a GPM reaches about 100 % pairwise accuracy while BT cannot exceed about 2/3.",
    "GPM 2": "GPM scores are skew-symmetric: s(a, b) + s(b, a) = 0 and s(a, a) = 0 exactly.",
    "GPM 3": "On transitive preferences a GPM matches BT's accuracy.",
    "GPM 4": "Scoring K candidates with a GPM costs K forward passes.",
}


@dataclasses.dataclass(frozen=True)
class ClaimResult:
    """One claim's verdict: ``status`` in ``STATUSES`` and ``evidence`` (the numbers, with intervals)."""

    claim: str
    statement: str
    status: str
    evidence: str

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class MatchedComparison:
    """Differences d = a - b (with half-widths h) at matched points ``at`` (KLs, or k for best-of-k)."""

    at: tuple[float, ...]
    differences: tuple[float, ...]
    half_widths: tuple[float, ...]

    @property
    def mean_difference(self) -> float:
        return float(np.mean(self.differences))

    def count(self, beyond_noise: bool, a_ahead: bool) -> int:
        """Points where a (or b) is ahead; ``beyond_noise``: by more than the half-width."""
        sign = 1.0 if a_ahead else -1.0
        margins = self.half_widths if beyond_noise else [0.0] * len(self.at)
        return sum(sign * d > h for d, h in zip(self.differences, margins))

    @property
    def verdict(self) -> str:
        """The module's rule: did not hold / held / inconclusive."""
        if self.count(beyond_noise=True, a_ahead=False):
            return NOT_HELD
        if self.mean_difference > 0 and self.count(beyond_noise=True, a_ahead=True):
            return HELD
        return INCONCLUSIVE

    def describe(self, a: str, b: str, unit: str = "KL") -> str:
        ahead = {(noise, first): self.count(beyond_noise=noise, a_ahead=first) for noise in (False, True) for first in (True, False)}
        return (f"mean difference {a} - {b} {self.mean_difference:+.3f} over {len(self.at)} matched {unit} points "
                f"({min(self.at):.3g} to {max(self.at):.3g}); {a} ahead at {ahead[False, True]}, {b} ahead at "
                f"{ahead[False, False]}; beyond the interval: {a} {ahead[True, True]}, {b} {ahead[True, False]}")


def compare(points: Sequence[tuple[float, Estimate, Estimate]]) -> MatchedComparison | None:
    """The ``MatchedComparison`` of ``[(at, a, b)]``; None for no points."""
    if not points:
        return None
    return MatchedComparison(
        at=tuple(float(x) for x, _, _ in points),
        differences=tuple(a.mean - b.mean for _, a, b in points),
        half_widths=tuple(math.hypot(a.half_width, b.half_width) for _, a, b in points),
    )


def compare_at_matched_kl(curve_a, curve_b) -> MatchedComparison | None:
    """Curve a - curve b at matched KL (module docstring); None when the KL ranges do not overlap."""
    return compare(matched_kl(curve_a, curve_b))


def _combine(*statuses: str) -> str:
    """Several tested statuses as one: did not hold > inconclusive > held (not tested ignored)."""
    tested = [s for s in statuses if s != NOT_TESTED]
    for status in (NOT_HELD, INCONCLUSIVE, HELD):
        if status in tested:
            return status
    return NOT_TESTED


def _verdict(claim: str, parts: Sequence[tuple[str, str]], missing: str) -> ClaimResult:
    """Combine per-group (status, evidence) with ``_combine``."""
    status = _combine(*(status for status, _ in parts))
    evidence = "; ".join(text for _, text in parts) if parts else missing
    return ClaimResult(claim, STATEMENTS[claim], status, evidence)


def _grouped(runs: Sequence[Mapping], key: Callable[[Mapping], tuple]) -> dict[tuple, list[Mapping]]:
    groups: dict[tuple, list[Mapping]] = {}
    for run in runs:
        groups.setdefault(key(run), []).append(run)
    return dict(sorted(groups.items(), key=lambda item: tuple(map(str, item[0]))))


def _group_key(properties: Sequence[str]) -> Callable[[Mapping], tuple]:
    return lambda run: (target(run, properties), run["algorithm"], run.get("reward_model", "bt"))


def _comparison_groups(results: Mapping, runs: Sequence[Mapping]) -> list[tuple[str, str, list, list]]:
    """``[(name, target, LSC runs, raw runs)]`` per (target, algorithm, reward model) that has both."""
    groups = []
    for (goal, algorithm, model), members in _grouped(runs, _group_key(results["properties"])).items():
        lsc = [r for r in members if run_kind(r) == "lsc" and has_default_reference(r)]
        raw = [r for r in members if run_kind(r) == "raw"]
        if lsc and raw:
            groups.append((f"{goal}, {algorithm}, {model}", goal, lsc, raw))
    return groups


def _win_rate(goal: str) -> Callable[[Mapping], Estimate | None]:
    return lambda checkpoint: estimate_at(checkpoint, "win_rate", goal)


def _improved_fraction(goal: str) -> Callable[[Mapping], Estimate | None]:
    """The checkpoint's improved-prompt fraction when its diagnostics are about ``goal``."""
    def value(checkpoint: Mapping) -> Estimate | None:
        if lookup(checkpoint, "prompts", "target") not in (goal, None):
            return None
        return estimate_at(checkpoint, "prompts", "improved_fraction")
    return value


def _matched_part(name: str, lsc: Sequence[Mapping], raw: Sequence[Mapping], value: Callable) -> tuple[str, str]:
    a, b = curve(lsc, value), curve(raw, value)
    if not a or not b:
        return NOT_TESTED, f"{name}: no checkpoints with both a KL and the value ({len(a)} LSC, {len(b)} raw)"
    comparison = compare_at_matched_kl(a, b)
    if comparison is None:
        return NOT_TESTED, f"{name}: KL ranges do not overlap (LSC {a[0][0]:.3g} to {a[-1][0]:.3g}, raw {b[0][0]:.3g} to {b[-1][0]:.3g})"
    return comparison.verdict, f"{name}: {comparison.describe('LSC', 'raw')}"


def _training_ratio(run: Mapping, name: str, metric: str) -> float | None:
    above = lookup(run, "training", f"{metric}/above_ref/{name}")
    below = lookup(run, "training", f"{metric}/below_ref/{name}")
    if above is None or below is None or not math.isfinite(above) or not math.isfinite(below) or below <= 0:
        return None
    return float(above) / float(below)


def claim_gradient_shape(results: Mapping) -> ClaimResult:
    """Claim 1: ratio = mean |A| above r_ref / mean |A| below r_ref per run and property (from the
    learner's ``advantage_abs/{above,below}_ref/<p>`` training means). Holds for an (algorithm,
    property) when every LSC run has ratio < 1 and, where raw runs of that algorithm exist, the
    mean LSC ratio is below the mean raw ratio. The utility slope dU/dr (sigmoid(r_ref - r) under
    LSC, by construction) is quoted as context, never as evidence."""
    validate_results(results)
    properties = results["properties"]
    parts = []
    for algorithm in sorted({r["algorithm"] for r in results["runs"]}):
        runs = [r for r in results["runs"] if r["algorithm"] == algorithm]
        for name in properties:
            lsc = _training_ratios(runs, "lsc", name, "advantage_abs", properties)
            raw = _training_ratios(runs, "raw", name, "advantage_abs", properties)
            if not lsc:
                continue
            text = f"{algorithm}/{name}: |A| above/below r_ref, LSC {_numbers(lsc)}"
            contrast = True
            if raw:
                contrast = float(np.mean(lsc)) < float(np.mean(raw))
                text += f" vs raw {_numbers(raw)}"
            else:
                text += " (no raw run to contrast)"
            slopes = _training_ratios(runs, "lsc", name, "utility_slope", properties)
            if slopes:
                text += f"; LSC dU/dr above/below {_numbers(slopes)}"
            parts.append((HELD if all(v < 1 for v in lsc) and contrast else NOT_HELD, text))
    return _verdict("1", parts, "no LSC run logged training['advantage_abs/above_ref/<p>'] and ['advantage_abs/below_ref/<p>']")


def _training_ratios(runs: Sequence[Mapping], kind: str, name: str, metric: str, properties: Sequence[str]) -> list[float]:
    values = [_training_ratio(r, name, metric) for r in runs if run_kind(r) == kind and name in optimised(r, properties)]
    return [v for v in values if v is not None]


def _numbers(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


def claim_single_property(results: Mapping) -> ClaimResult:
    """Claim 2: for each single-property group, the property's win-rate-vs-KL curves of LSC and raw
    runs compared at matched KL (module docstring)."""
    validate_results(results)
    properties = results["properties"]
    single = [r for r in results["runs"] if len(optimised(r, properties)) == 1]
    parts = [_matched_part(name, lsc, raw, _win_rate(goal)) for name, goal, lsc, raw in _comparison_groups(results, single)]
    return _verdict("2", parts, "needs single-property LSC and raw runs of the same property, algorithm and reward model")


def _trajectory(run: Mapping, properties: Sequence[str]) -> dict | None:
    """Where the run's gold win rate peaked, and what the proxy and win did after the peak."""
    goal, names = target(run, properties), optimised(run, properties)
    sequence = [(estimate_at(c, "win_rate", goal), proxy_total(c, names), estimate_at(c, "kl")) for c in checkpoints(run)]
    sequence = [s for s in sequence if s[0] is not None and s[1] is not None]
    if len(sequence) < 2:
        return None
    peak = int(np.argmax([win.mean for win, _, _ in sequence]))
    (peak_win, peak_proxy, _), (last_win, last_proxy, last_kl) = sequence[peak], sequence[-1]
    return {
        "hacked": peak < len(sequence) - 1 and last_proxy > peak_proxy,
        "drop": peak_win.mean - last_win.mean,
        "significant": last_win.high < peak_win.low,
        "proxy_gain": last_proxy - peak_proxy,
        "kl": None if last_kl is None else last_kl.mean,
    }


def claim_reward_hacking(results: Mapping) -> ClaimResult:
    """Claim 3, from each run's checkpoint sequence. A run is *hacked* when its gold win rate (its
    target) peaks before the last checkpoint (stalls or falls) while the proxy objective (sum of
    proxy means over the optimised properties) is higher at the last checkpoint than at the peak;
    its degradation is drop = win(peak) - win(last). Holds for a group when at least one raw run
    is hacked and the mean LSC drop is below the mean raw drop."""
    validate_results(results)
    properties = results["properties"]
    parts = []
    for name, _, lsc, raw in _comparison_groups(results, results["runs"]):
        lsc_paths = [t for t in (_trajectory(r, properties) for r in lsc) if t]
        raw_paths = [t for t in (_trajectory(r, properties) for r in raw) if t]
        if not lsc_paths or not raw_paths:
            parts.append((NOT_TESTED, f"{name}: needs >= 2 checkpoints with win rate and proxy_mean per run "
                                      f"({len(lsc_paths)} LSC, {len(raw_paths)} raw runs have them)"))
            continue
        hacked = [t for t in raw_paths if t["hacked"]]
        lsc_drop, raw_drop = float(np.mean([t["drop"] for t in lsc_paths])), float(np.mean([t["drop"] for t in raw_paths]))
        text = (f"{name}: raw hacked in {len(hacked)}/{len(raw_paths)} runs (proxy after the win peak "
                f"{_numbers([t['proxy_gain'] for t in raw_paths])}, win drop beyond the interval in "
                f"{sum(t['significant'] for t in raw_paths)}); mean win drop from peak LSC {lsc_drop:.3f} vs raw "
                f"{raw_drop:.3f}; final KL LSC {_kls(lsc_paths)} vs raw {_kls(raw_paths)}")
        parts.append((HELD if hacked and lsc_drop < raw_drop else NOT_HELD, text))
    return _verdict("3", parts, "needs LSC and raw runs of the same target, algorithm and reward model")


def _kls(paths: Sequence[dict]) -> str:
    return _numbers([t["kl"] for t in paths if t["kl"] is not None])


def claim_underfitting(results: Mapping) -> ClaimResult:
    """Claim 4, from the checkpoints' ``prompts`` diagnostics. (a) the improved-prompt fraction of
    LSC and raw compared at matched KL (module docstring); (b) at each LSC run's final checkpoint,
    gap = low_base_gain - high_base_gain: mean gap > 0 and no run with gap + h < 0 (h the
    combined half-width; the halves are disjoint prompt sets). Holds when (a) and (b) hold."""
    validate_results(results)
    parts = []
    for name, goal, lsc, raw in _comparison_groups(results, results["runs"]):
        status, text = _matched_part(name, lsc, raw, _improved_fraction(goal))
        if status == NOT_TESTED:
            parts.append((status, text + " (improved_fraction)"))
            continue
        gaps = _base_gaps(lsc)
        if not gaps:
            parts.append((NOT_TESTED, f"{name}: LSC final checkpoints lack prompts.low_base_gain / high_base_gain"))
            continue
        concentrated = float(np.mean([g for g, _ in gaps])) > 0 and not any(g + h < 0 for g, h in gaps)
        raw_gaps = _base_gaps(raw)
        text += (f"; LSC gain in low-base minus high-base half {_numbers([g for g, _ in gaps])} (± {_numbers([h for _, h in gaps])})"
                 + (f", raw {_numbers([g for g, _ in raw_gaps])}" if raw_gaps else ""))
        parts.append((_combine(status, HELD if concentrated else NOT_HELD), text))
    return _verdict("4", parts, "needs LSC and raw runs of the same target, algorithm and reward model with prompts diagnostics")


def _base_gaps(runs: Sequence[Mapping]) -> list[tuple[float, float]]:
    gaps = []
    for run in runs:
        final = final_checkpoint(run) or {}
        low, high = estimate_at(final, "prompts", "low_base_gain"), estimate_at(final, "prompts", "high_base_gain")
        if low is not None and high is not None:
            gaps.append((low.mean - high.mean, math.hypot(low.half_width, high.half_width)))
    return gaps


def _trade(run: Mapping, properties: Sequence[str]) -> str | None:
    """The first checkpoint where one optimised property's win rate is above 1/2 and another's below,
    both beyond their intervals."""
    for checkpoint in checkpoints(run):
        wins = {p: estimate_at(checkpoint, "win_rate", p) for p in optimised(run, properties)}
        wins = {p: w for p, w in wins.items() if w is not None}
        rising = [p for p, w in wins.items() if w.low > 0.5]
        falling = [p for p, w in wins.items() if w.high < 0.5]
        if rising and falling:
            return (f"{run['name']} step {checkpoint['step']}: {rising[0]} {wins[rising[0]]} vs "
                    f"{falling[0]} {wins[falling[0]]}")
    return None


def claim_and(results: Mapping) -> ClaimResult:
    """Claim 5. (a) the AND win-rate curves of multi-property LSC and raw-sum runs at matched KL
    (module docstring); (b) some raw-sum checkpoint trades: one optimised property's win rate over
    pi_0 is above 1/2 and another's below 1/2, both beyond their intervals. Holds when both hold."""
    validate_results(results)
    properties = results["properties"]
    multi = [r for r in results["runs"] if len(optimised(r, properties)) > 1]
    parts = []
    for name, _, lsc, raw in _comparison_groups(results, multi):
        status, text = _matched_part(name, lsc, raw, _win_rate("and"))
        if status == NOT_TESTED:
            parts.append((status, text))
            continue
        raw_trades = [t for t in (_trade(r, properties) for r in raw) if t]
        lsc_trades = [t for t in (_trade(r, properties) for r in lsc) if t]
        text += (f"; raw sum trades a property in {len(raw_trades)}/{len(raw)} runs"
                 + (f" (e.g. {raw_trades[0]})" if raw_trades else "") + f", LSC in {len(lsc_trades)}/{len(lsc)}")
        parts.append((_combine(status, HELD if raw_trades else NOT_HELD), text))
    return _verdict("5", parts, "needs multi-property LSC and raw-sum runs of the same properties, algorithm and reward model")


def claim_best_of_k(results: Mapping) -> ClaimResult:
    """Claim 6: the AND win rate of best-of-k reranked by u_AND (LSC entries) minus by the raw sum,
    at every k > 1 both have (k = 1 is the same sample), with the matched-KL rule of the module
    docstring (the KL of best-of-k depends on k only). Entries are classified by their
    ``transform`` / ``aggregator`` keys."""
    validate_results(results)
    entries = [e for e in results.get("best_of_k") or [] if lookup(e, "win_rate", "and") is not None]
    lsc_labels = _grouped([e for e in entries if run_kind(e) == "lsc"], lambda e: (e["label"],))
    raw_labels = _grouped([e for e in entries if run_kind(e) == "raw"], lambda e: (e["label"],))
    parts = []
    for (lsc_label,), lsc in lsc_labels.items():
        for (raw_label,), raw in raw_labels.items():
            lsc_at = {int(e["k"]): as_estimate(e["win_rate"]["and"]) for e in lsc}
            raw_at = {int(e["k"]): as_estimate(e["win_rate"]["and"]) for e in raw}
            ks = sorted(k for k in lsc_at.keys() & raw_at.keys() if k > 1)
            comparison = compare([(k, lsc_at[k], raw_at[k]) for k in ks])
            if comparison is None:
                parts.append((NOT_TESTED, f"{lsc_label} vs {raw_label}: no common k > 1"))
                continue
            absent = [k for k in BEST_OF_K_KS if k not in ks]
            detail = ", ".join(f"k={k}: {lsc_at[k]} vs {raw_at[k]}" for k in ks)
            text = f"{lsc_label} vs {raw_label}: {detail}; {comparison.describe(lsc_label, raw_label, 'k')}"
            parts.append((comparison.verdict, text + (f" (k {absent} not run)" if absent else "")))
    return _verdict("6", parts, "needs best_of_k entries with an AND win rate for an LSC-sum and a raw-sum utility "
                                "(entries name their 'transform' and 'aggregator')")


def claim_sensitivity(results: Mapping) -> ClaimResult:
    """Claim 7: each LSC run's reference variant (method, quantile) with its final KL and target
    win rate, and each non-default variant's win-rate curve minus the default's at matched KL.
    Held when the sweep was run: the quantiles 0.5, 0.85, 0.95 and both the empirical and the
    gaussian method appear among the LSC runs; otherwise not tested (the evidence says what ran)."""
    validate_results(results)
    properties = results["properties"]
    lsc = [r for r in results["runs"] if run_kind(r) == "lsc"]
    if not lsc:
        return _verdict("7", [], "no LSC runs")
    lines = []
    for run in sorted(lsc, key=lambda r: (reference_variant(r), r["name"])):
        final = final_checkpoint(run) or {}
        method, quantile = reference_variant(run)
        goal = target(run, properties)
        lines.append(f"{run['name']} ({method} q={quantile:g}): KL {estimate_at(final, 'kl')}, {goal} win {estimate_at(final, 'win_rate', goal)}")
    for (goal, algorithm, model), members in _grouped(lsc, _group_key(properties)).items():
        default = [r for r in members if has_default_reference(r)]
        value = _win_rate(goal)
        for variant, runs in _grouped([r for r in members if not has_default_reference(r)], reference_variant).items():
            comparison = compare_at_matched_kl(curve(runs, value), curve(default, value)) if default else None
            if comparison is not None:
                lines.append(f"{goal}, {algorithm}, {model}: {variant[0]} q={variant[1]:g} vs default: "
                             f"{comparison.describe('variant', 'default')}")
    variants = {reference_variant(r) for r in lsc}
    missing_q = [q for q in SENSITIVITY_QUANTILES if not any(math.isclose(q, v[1]) for v in variants)]
    missing_m = [m for m in SENSITIVITY_METHODS if m not in {v[0] for v in variants}]
    status = HELD if not missing_q and not missing_m else NOT_TESTED
    if status == NOT_TESTED:
        lines.append(f"sweep incomplete: missing quantiles {missing_q}, methods {missing_m}")
    return ClaimResult("7", STATEMENTS["7"], status, "; ".join(lines))


def _gpm_pair(results: Mapping, key: str) -> tuple[float, float] | None:
    pair = lookup(results, "gpm", key)
    if not isinstance(pair, Mapping) or pair.get("gpm") is None or pair.get("bt") is None:
        return None
    return as_estimate(pair["gpm"]).mean, as_estimate(pair["bt"]).mean


def claim_gpm_cyclic(results: Mapping) -> ClaimResult:
    """GPM 1: ``gpm.cyclic_accuracy = {"gpm": a, "bt": b}``; holds when a >= 0.95 and b <= 2/3 + 0.05."""
    pair = _gpm_pair(results, "cyclic_accuracy")
    if pair is None:
        return _verdict("GPM 1", [], "results lack gpm.cyclic_accuracy {gpm, bt}")
    gpm, bt = pair
    held = gpm >= CYCLIC_GPM_MIN_ACCURACY and bt <= CYCLIC_BT_MAX_ACCURACY
    return _verdict("GPM 1", [(HELD if held else NOT_HELD, f"cyclic pairwise accuracy GPM {gpm:.3f} (needs >= {CYCLIC_GPM_MIN_ACCURACY}), "
                                                          f"BT {bt:.3f} (needs <= {CYCLIC_BT_MAX_ACCURACY:.3f})")], "")


def claim_gpm_skew_symmetry(results: Mapping) -> ClaimResult:
    """GPM 2: ``gpm.skew_symmetry_max_error`` = max |s(a, b) + s(b, a)| and |s(a, a)| over the tested
    responses; holds when <= 1e-6 (float rounding)."""
    error = lookup(results, "gpm", "skew_symmetry_max_error")
    if error is None:
        return _verdict("GPM 2", [], "results lack gpm.skew_symmetry_max_error")
    held = abs(float(error)) <= SKEW_SYMMETRY_TOLERANCE
    return _verdict("GPM 2", [(HELD if held else NOT_HELD, f"max |s(a,b) + s(b,a)|, |s(a,a)| = {float(error):.3g} (tolerance {SKEW_SYMMETRY_TOLERANCE:g})")], "")


def claim_gpm_transitive(results: Mapping) -> ClaimResult:
    """GPM 3: ``gpm.transitive_accuracy = {"gpm": a, "bt": b}``; holds when a >= b - 0.02."""
    pair = _gpm_pair(results, "transitive_accuracy")
    if pair is None:
        return _verdict("GPM 3", [], "results lack gpm.transitive_accuracy {gpm, bt}")
    gpm, bt = pair
    held = gpm >= bt - TRANSITIVE_TOLERANCE
    return _verdict("GPM 3", [(HELD if held else NOT_HELD, f"transitive accuracy GPM {gpm:.3f} vs BT {bt:.3f} (tolerance {TRANSITIVE_TOLERANCE})")], "")


def claim_gpm_forward_passes(results: Mapping) -> ClaimResult:
    """GPM 4: ``gpm.forward_passes_for_k = {"<k>": passes}`` counted while scoring k candidates;
    holds when passes == k for every k."""
    counts = lookup(results, "gpm", "forward_passes_for_k")
    if not isinstance(counts, Mapping) or not counts:
        return _verdict("GPM 4", [], "results lack gpm.forward_passes_for_k {k: passes}")
    pairs = sorted((int(k), int(v)) for k, v in counts.items())
    held = all(k == passes for k, passes in pairs)
    return _verdict("GPM 4", [(HELD if held else NOT_HELD, ", ".join(f"k={k}: {passes} passes" for k, passes in pairs))], "")


CLAIMS = (
    claim_gradient_shape,
    claim_single_property,
    claim_reward_hacking,
    claim_underfitting,
    claim_and,
    claim_best_of_k,
    claim_sensitivity,
    claim_gpm_cyclic,
    claim_gpm_skew_symmetry,
    claim_gpm_transitive,
    claim_gpm_forward_passes,
)


def check_claims(results: Mapping) -> list[ClaimResult]:
    """Every claim of ``STATEMENTS``, in order."""
    validate_results(results)
    return [check(results) for check in CLAIMS]
