"""The claims of the two papers, checked against a results structure with the rules of ``decide``.

Section 1: Wang et al., "Transforming and Combining Rewards for Aligning Large Language Models"
(arXiv 2402.00742), claims 1-7. Section 2: Zhang et al., "Beyond Bradley-Terry Models: A General
Preference Model for Language Model Alignment" (arXiv 2410.02197), claims GPM 1-4.
docs/decision_rules.md states every rule and the reason for it.

Each ``claim_*`` function returns a ``ClaimResult`` whose status is one of ``STATUSES``: "held"
or "did not hold" (a difference beyond the noise, after Holm's correction, one way or the
other), "inconclusive", "not in regime" (the runs never reached the condition the claim is
about) or "not tested" (the results lack what the claim needs, e.g. the per-sample arrays; the
evidence says what). The evidence carries the estimates with intervals, adjusted p-values, the
seeds per arm, the prompts and the KL grid points reached.

**Arms.** Runs with the same label, algorithm, reward model, target (one property, or the AND of
the optimised properties), utility kind and reference form one arm; its training seeds
(``run["seed"]``, default 0) are its replicates. "LSC" arms have a sum of LSC terms with the
paper's default reference (empirical 0.85 quantile); "raw" arms sum raw rewards;
"group_normalized" arms sum rewards standardised within the prompt's group of samples.
Comparisons pair an LSC arm with a raw arm of the same (target, algorithm, reward model).

**Metric.** Per seed and checkpoint, per held-out prompt, the all-pairs win rate of the
checkpoint's samples (``samples.judge``) over pi_0's (``results["pi_0"]["judge"]``) on the arm's
target; each seed's curve is interpolated in KL at ``decide.KL_GRID`` (or ``results["kl_grid"]``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from alignment.evaluation import decide
from alignment.evaluation.decide import ALPHA, HELD, INCONCLUSIVE, NOT_HELD, NOT_IN_REGIME, NOT_TESTED, ArmCurves, combine
from alignment.evaluation.evaluate import target_base
from alignment.evaluation.results import (
    checkpoints,
    estimate_at,
    final_checkpoint,
    has_default_reference,
    lookup,
    optimised,
    proxy_total,
    reference_variant,
    run_kind,
    run_seed,
    validate_results,
)
from alignment.evaluation.stats import as_estimate, base_halves, binomial_two_sided_p, per_prompt_rates, z_value

STATUSES = (HELD, NOT_HELD, INCONCLUSIVE, NOT_IN_REGIME, NOT_TESTED)

NONINFERIORITY_MARGIN = 0.03         # claim 2: "not worse" = within 0.03 win rate (docs/decision_rules.md)
GRADIENT_RESAMPLES = 2000            # claim 1: bootstrap resamples over prompts
GRADIENT_SEED = 0
BEST_OF_K_KS = (4, 16, 64)
SENSITIVITY_QUANTILES = (0.5, 0.85, 0.95)
SENSITIVITY_METHODS = ("empirical", "gaussian")
CYCLIC_GPM_MIN_ACCURACY = 0.95       # "about 100 %"
CYCLIC_BT_MAX_ACCURACY = 2 / 3 + 0.05  # "cannot exceed about 2/3"
SKEW_SYMMETRY_TOLERANCE = 1e-6       # "exactly", up to float rounding
TRANSITIVE_TOLERANCE = 0.02          # "matches": GPM accuracy within 0.02 of BT's (non-inferiority margin)

ARRAYS_NEEDED = "needs the per-sample arrays (checkpoints' samples.judge and results['pi_0']['judge'])"

STATEMENTS = {
    "1": "Gradient shape: on pi_0's samples, LSC shrinks the RLOO advantage magnitude of responses above r_ref relative to those below it, "
         "compared with the raw reward (ratio of above/below mean |advantage|, LSC over raw, < 1).",
    "2": "Single property: at matched KL the LSC-trained policy's gold win rate over pi_0 is not worse than the raw-reward policy's "
         "(non-inferiority within 0.03 at every KL reached), and better where raw over-optimises.",
    "3": "Reward hacking: when raw reward over-optimises (proxy rising while the gold win rate falls from its peak), "
         "LSC's gold win rate falls less over the same KL range.",
    "4": "Underfitting: at matched KL, LSC improves more prompts over pi_0 than raw, and its gains concentrate on prompts with low base reward "
         "(low-base minus high-base gain larger than raw's).",
    "5": "AND: at matched KL the AND win rate over pi_0 is higher with the sum of LSC terms than with the raw sum "
         "(the raw sum may trade one property for another).",
    "6": "Best-of-k: reranking k in {4, 16, 64} base samples by u_AND gives a higher AND win rate than reranking by the raw sum.",
    "7": "Sensitivity: the reference quantile q in {0.5, 0.85, 0.95} and empirical versus gaussian references are swept and reported "
         "(a sweep, not a directional claim: 'held' means the sweep was run).",
    "GPM 1": "On cyclic preferences (a > b > c > a) a GPM reaches about 100 % pairwise accuracy while BT cannot exceed about 2/3.",
    "GPM 2": "GPM scores are skew-symmetric: s(a, b) + s(b, a) = 0 and s(a, a) = 0 exactly.",
    "GPM 3": "On transitive preferences a GPM matches BT's accuracy (paired: not worse by more than 0.02).",
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


def _verdict(claim: str, parts: Sequence[tuple[str, str]], missing: str) -> ClaimResult:
    """Combine the parts' (status, evidence) with ``decide.combine``."""
    status = combine([status for status, _ in parts])
    evidence = " | ".join(text for _, text in parts) if parts else missing
    return ClaimResult(claim, STATEMENTS[claim], status, evidence)


# --- arms and their curves ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Arm:
    """One method: runs of the same label, algorithm, reward model, target, utility kind and
    reference; ``runs`` are its seeds (several runs with the same seed: a KL-coefficient sweep)."""

    label: str
    algorithm: str
    reward_model: str
    optimised: tuple[str, ...]
    kind: str
    reference: tuple[str, float]
    runs: tuple[Mapping, ...]

    @property
    def goal(self) -> str:
        """The target: the property of a single-property arm, else "and"."""
        return self.optimised[0] if len(self.optimised) == 1 else "and"

    @property
    def seeds(self) -> list[int]:
        return sorted({run_seed(r) for r in self.runs})

    @property
    def group(self) -> tuple:
        """What a comparison must share: (optimised properties, algorithm, reward model)."""
        return (self.optimised, self.algorithm, self.reward_model)

    @property
    def group_name(self) -> str:
        return f"{self.goal if self.goal != 'and' else 'AND(' + '+'.join(self.optimised) + ')'}, {self.algorithm}, {self.reward_model}"


def arms(results: Mapping) -> list[Arm]:
    """The results' runs grouped into arms, in a stable order."""
    properties = results["properties"]
    grouped: dict[tuple, list[Mapping]] = {}
    for run in results["runs"]:
        key = (run["label"], run["algorithm"], run.get("reward_model", "bt"), tuple(optimised(run, properties)), run_kind(run),
               reference_variant(run))
        grouped.setdefault(key, []).append(run)
    return [Arm(*key, runs=tuple(runs)) for key, runs in sorted(grouped.items(), key=lambda item: tuple(map(str, item[0])))]


def _pi_0_judge(results: Mapping):
    judge = lookup(results, "pi_0", "judge")
    return None if judge is None else np.asarray(judge, dtype=np.float64)


def checkpoint_kl(checkpoint: Mapping) -> float | None:
    """The checkpoint's mean sampled KL: of ``samples.kl`` when stored, else the ``kl`` Estimate's mean."""
    kl = lookup(checkpoint, "samples", "kl")
    if kl is not None:
        return float(np.mean(kl))
    estimate = estimate_at(checkpoint, "kl")
    return None if estimate is None else estimate.mean


def _grid(results: Mapping) -> tuple[float, ...]:
    return tuple(float(g) for g in results.get("kl_grid") or decide.KL_GRID)


def _checkpoint_values(results: Mapping, arm: Arm, checkpoint: Mapping, metric, old) -> np.ndarray | None:
    properties = list(results["properties"])
    if metric == "proxy":
        proxy = lookup(checkpoint, "samples", "proxy")
        index = [properties.index(p) for p in arm.optimised]
        if proxy is not None:
            return np.asarray(proxy, dtype=np.float64)[..., index].sum(axis=-1).mean(axis=1)
        total = proxy_total(checkpoint, arm.optimised)
        return None if total is None or old is None else np.full(old.shape[0], total)
    judge = lookup(checkpoint, "samples", "judge")
    if judge is None or old is None:
        return None
    judge = np.asarray(judge, dtype=np.float64)
    if isinstance(metric, tuple):  # ("win", property)
        index = properties.index(metric[1])
    else:
        index = [properties.index(p) for p in arm.optimised]
        index = index[0] if len(index) == 1 else index
    win, loss = per_prompt_rates(judge, old, index)
    return (win - loss) / 2 if metric == "gain" else win


def arm_curves(results: Mapping, arm: Arm, metric="win") -> ArmCurves | str:
    """The arm's ``decide.ArmCurves`` of ``metric``: "win" (per-prompt win rate on its target),
    "gain" ((win - loss) / 2 on its target), ("win", property), or "proxy" (per-prompt mean over
    samples of the sum of the optimised properties' proxy rewards). A string says why there are
    none (missing arrays)."""
    old = _pi_0_judge(results)
    if old is None and metric != "proxy":
        return f"{arm.label}: results lack pi_0.judge; {ARRAYS_NEEDED}"
    seeds = []
    for run in arm.runs:
        points = [(checkpoint_kl(c), _checkpoint_values(results, arm, c, metric, old)) for c in checkpoints(run)]
        points = [(kl, v) for kl, v in points if kl is not None and v is not None]
        if points:
            seeds.append((run_seed(run), [kl for kl, _ in points], np.stack([v for _, v in points])))
    if not seeds:
        if metric == "proxy":
            return f"{arm.label}: no checkpoint has a KL and proxy scores (samples.proxy or proxy_mean)"
        return f"{arm.label}: no checkpoint has a KL and samples.judge; {ARRAYS_NEEDED}"
    return decide.arm_curves(arm.label, seeds, _grid(results))


def _pairs(results: Mapping, multi: bool | None) -> list[tuple[Arm, Arm, list[Arm]]]:
    """``[(LSC arm, raw arm, group-normalised arms)]`` sharing (target, algorithm, reward model);
    ``multi``: only multi-property (True) or single-property (False) arms, or all (None)."""
    chosen = [a for a in arms(results) if multi is None or (len(a.optimised) > 1) == multi]
    out = []
    for lsc in [a for a in chosen if a.kind == "lsc" and has_default_reference(a.runs[0])]:
        group = [a for a in chosen if a.group == lsc.group]
        normalised = [a for a in group if a.kind == "group_normalized"]
        for raw in [a for a in group if a.kind == "raw"]:
            out.append((lsc, raw, normalised))
    return out


def _name(lsc: Arm, raw: Arm) -> str:
    return f"{lsc.group_name}: {lsc.label} vs {raw.label}"


def _ready(*curves) -> str | None:
    reasons = [c for c in curves if isinstance(c, str)]
    return "; ".join(reasons) if reasons else None


# --- claim 1 -----------------------------------------------------------------------------------

def _lsc(r: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """log sigmoid(r - r_ref) = -softplus(r_ref - r), in the stable form."""
    x = r - reference
    return np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x)))


def _rloo(u: np.ndarray) -> np.ndarray:
    """A_k = u_k - mean_{j != k} u_j over the last axis (K >= 2)."""
    k = u.shape[-1]
    return k / (k - 1) * (u - u.mean(axis=-1, keepdims=True))


def gradient_ratio(rewards, references, resamples: int = GRADIENT_RESAMPLES, seed: int = GRADIENT_SEED,
                   level: float = 0.95) -> dict | None:
    """Claim 1 for one property: ``rewards`` ``[n, K]`` (proxy rewards of K pi_0 samples per
    prompt), ``references`` ``[n]`` (r_ref). R = (Σ_above |A_lsc| / Σ_below |A_lsc|) /
    (Σ_above |A_raw| / Σ_below |A_raw|) with RLOO advantages of u = lsc(r, r_ref) and u = r
    (above: r > r_ref, below: r < r_ref), and a percentile bootstrap interval over prompts.
    Returns ``{"ratio", "low", "high", "lsc", "raw", "above", "below", "prompts"}`` or None when
    no sample is above (or below) r_ref."""
    r = np.asarray(rewards, dtype=np.float64)
    reference = np.asarray(references, dtype=np.float64).reshape(-1, 1)
    if r.ndim != 2 or r.shape[1] < 2 or reference.shape[0] != r.shape[0]:
        raise ValueError(f"gradient_ratio: rewards must be [prompts, K >= 2] and references [prompts], got {r.shape}, {reference.shape}")
    above, below = r > reference, r < reference
    if not above.any() or not below.any():
        return None
    a_lsc, a_raw = np.abs(_rloo(_lsc(r, reference))), np.abs(_rloo(r))
    sums = np.stack([(a_lsc * above).sum(1), (a_lsc * below).sum(1), (a_raw * above).sum(1), (a_raw * below).sum(1)], axis=1)

    def ratio(total):
        return (total[..., 0] * total[..., 3]) / (total[..., 1] * total[..., 2])

    total = sums.sum(axis=0)
    n = r.shape[0]
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = ratio(counts @ sums)
    boot = boot[np.isfinite(boot)]
    tail = (1 - level) / 2
    return {"ratio": float(ratio(total)), "low": float(np.quantile(boot, tail)), "high": float(np.quantile(boot, 1 - tail)),
            "lsc": float(total[0] / total[1]), "raw": float(total[2] / total[3]), "above": int(above.sum()),
            "below": int(below.sum()), "prompts": n}


def claim_gradient_shape(results: Mapping) -> ClaimResult:
    """Claim 1 from ``results["gradient_batch"]`` (``gradient_ratio`` per property, interval level
    1 - α/P: Bonferroni over the P properties). Per property: held if the interval is below 1,
    did not hold if above 1, else inconclusive; properties combined by ``decide.combine``."""
    validate_results(results)
    batch = results.get("gradient_batch") or {}
    rewards, references = batch.get("rewards"), batch.get("references")
    if rewards is None or references is None:
        return _verdict("1", [], "results lack gradient_batch {rewards [n, K, P], references [n, P]} (proxy rewards of K pi_0 samples per alignment prompt)")
    rewards, references = np.asarray(rewards, dtype=np.float64), np.asarray(references, dtype=np.float64)
    properties = results["properties"]
    level = 1 - ALPHA / len(properties)
    parts = []
    for i, name in enumerate(properties):
        measured = gradient_ratio(rewards[..., i], references[:, i], level=level)
        if measured is None:
            parts.append((NOT_TESTED, f"{name}: no sample above (or below) r_ref"))
            continue
        status = HELD if measured["high"] < 1 else NOT_HELD if measured["low"] > 1 else INCONCLUSIVE
        parts.append((status, f"{name}: R = {measured['ratio']:.3f} [{measured['low']:.3f}, {measured['high']:.3f}] "
                              f"({level:.1%} bootstrap over {measured['prompts']} prompts, {GRADIENT_RESAMPLES} resamples); "
                              f"mean |A| above/below r_ref: LSC {measured['lsc']:.3f}, raw {measured['raw']:.3f} "
                              f"({measured['above']} samples above, {measured['below']} below) -> {status}"))
    return _verdict("1", parts, "no property measured")


# --- claims 2-5: learner runs at matched KL ----------------------------------------------------

def claim_single_property(results: Mapping) -> ClaimResult:
    """Claim 2: per single-property (LSC, raw) pair, non-inferiority of LSC's win-rate curve with
    margin ``NONINFERIORITY_MARGIN`` at every grid point reached (``decide.noninferiority``), and,
    reported, superiority at the grid points beyond raw's peak."""
    validate_results(results)
    parts = []
    for lsc, raw, _ in _pairs(results, multi=False):
        a, b = arm_curves(results, lsc), arm_curves(results, raw)
        reason = _ready(a, b)
        if reason:
            parts.append((NOT_TESTED, f"{_name(lsc, raw)}: {reason}"))
            continue
        comparison = decide.noninferiority(a, b, NONINFERIORITY_MARGIN)
        text = f"{_name(lsc, raw)}: {comparison.describe()}"
        common = decide.common_points(a, b)
        if common.size >= 2:
            peak = int(common[np.argmax(b.mean[common])])
            beyond = common[common > peak]
            if beyond.size:
                better = decide.superiority(a, b, points=beyond)
                text += f"; better where raw over-optimises (beyond raw's peak at KL {b.grid[peak]:g}): {better.describe()}"
            else:
                text += f"; raw's win rate peaks at the last common KL {b.grid[peak]:g} (no over-optimisation to compare)"
        parts.append((comparison.verdict, text))
    return _verdict("2", parts, "needs single-property LSC and raw runs of the same property, algorithm and reward model")


def _over_optimisation(raw: ArmCurves, proxy: ArmCurves) -> dict:
    """Whether the raw arm's gold win rate falls significantly from its peak to its last reached
    grid point (one-sided tests of every earlier point against the last, Holm) while its proxy rises."""
    reached = np.flatnonzero(raw.reached & proxy.reached)
    if reached.size < 2:
        return {"regime": False, "text": f"{raw.name} reaches {reached.size} grid point(s) (KL per seed {raw.describe_range()}); needs 2"}
    last, earlier = int(reached[-1]), reached[:-1]
    means = raw.mean
    peak = int(reached[np.argmax(means[reached])])
    tests = [decide.contrast([(1.0, raw.values[:, last] - raw.values[:, g])]) for g in earlier]
    adjusted = decide.holm([t.p_value("less") for t in tests])
    highest = max(high for _, high in raw.kl_ranges)
    if peak == last:
        return {"regime": False, "peak": peak, "last": last,
                "text": f"{raw.name}: gold win rate highest at its last reached grid point KL {raw.grid[last]:g} "
                        f"({means[last]:.3f}; highest KL reached {highest:.3g}): no over-optimisation"}
    position = int(np.flatnonzero(earlier == peak)[0])
    drop, p = tests[position], adjusted[position]
    proxy_change = float(proxy.mean[last] - proxy.mean[peak])
    text = (f"{raw.name}: gold win peaks at KL {raw.grid[peak]:g} ({means[peak]:.3f}), at its last reached KL {raw.grid[last]:g} "
            f"({means[last]:.3f}; highest KL reached {highest:.3g}): change {drop} (one-sided, Holm over {len(tests)} earlier "
            f"points: adj. p {p:.3g}; {raw.values.shape[0]} seeds, {raw.prompts} prompts); proxy objective "
            f"{proxy.mean[peak]:.3f} -> {proxy.mean[last]:.3f}")
    regime = p < ALPHA and drop.estimate < 0 and proxy_change > 0
    return {"regime": regime, "peak": peak, "last": last, "text": text + ("" if regime else ": not over-optimising")}


def claim_reward_hacking(results: Mapping) -> ClaimResult:
    """Claim 3: regime = the raw arm over-optimises (``_over_optimisation``); then the difference
    of contrasts [LSC(last) - LSC(raw's peak)] - [raw(last) - raw(peak)] from raw's peak to the
    last grid point reached by both arms: held if significantly > 0 (LSC drops less), did not hold
    if significantly < 0 (two-sided, α = 0.05)."""
    validate_results(results)
    parts = []
    for lsc, raw, _ in _pairs(results, multi=None):
        a, b, proxy = arm_curves(results, lsc), arm_curves(results, raw), arm_curves(results, raw, "proxy")
        reason = _ready(a, b, proxy)
        if reason:
            parts.append((NOT_TESTED, f"{_name(lsc, raw)}: {reason}"))
            continue
        hacking = _over_optimisation(b, proxy)
        name = _name(lsc, raw)
        if not hacking["regime"]:
            parts.append((NOT_IN_REGIME, f"{name}: {hacking['text']}"))
            continue
        peak = hacking["peak"]
        common = decide.common_points(a, b)
        if peak not in common or not (common > peak).any():
            parts.append((NOT_IN_REGIME, f"{name}: {hacking['text']}; LSC seeds (KL {a.describe_range()}) do not reach both raw's "
                                         f"peak KL {b.grid[peak]:g} and a later grid point"))
            continue
        last = int(common[-1])
        lsc_change = a.values[:, last] - a.values[:, peak]
        raw_change = b.values[:, last] - b.values[:, peak]
        test = decide.contrast([(1.0, lsc_change), (-1.0, raw_change)])
        p = test.p_value()
        status = HELD if p < ALPHA and test.estimate > 0 else NOT_HELD if p < ALPHA and test.estimate < 0 else INCONCLUSIVE
        parts.append((status, f"{name}: {hacking['text']}; from KL {b.grid[peak]:g} to {b.grid[last]:g}: LSC change "
                              f"{lsc_change.mean():+.3f}, raw {raw_change.mean():+.3f}, LSC - raw {test} (p {p:.3g}; "
                              f"{len(lsc.seeds)} vs {len(raw.seeds)} seeds, {test.prompts} prompts)"
                              + (f" [{test.note}]" if test.note else "") + f" -> {status}"))
    return _verdict("3", parts, "needs LSC and raw runs of the same target, algorithm and reward model")


def claim_underfitting(results: Mapping) -> ClaimResult:
    """Claim 4, per (LSC, raw) pair: (a) the fraction of prompts improved (gain > 0), LSC vs raw,
    superiority; (b) concentration: LSC's (low-base half gain - high-base half gain) minus raw's,
    superiority with the halves as strata; halves by ``results["eval_base_reward"]`` of the target
    (``evaluate.target_base``). Joined by ``decide.combine``."""
    validate_results(results)
    base = results.get("eval_base_reward")
    parts = []
    for lsc, raw, _ in _pairs(results, multi=None):
        name = _name(lsc, raw)
        a, b = arm_curves(results, lsc, "gain"), arm_curves(results, raw, "gain")
        reason = _ready(a, b) or (None if base is not None else "results lack eval_base_reward [n, P]")
        if reason:
            parts.append((NOT_TESTED, f"{name}: {reason}"))
            continue
        improved = decide.superiority(a.map(lambda v: (v > 0).astype(float)), b.map(lambda v: (v > 0).astype(float)))
        score = target_base(base, results["properties"], lsc.optimised)
        low, high = base_halves(score)
        columns = np.concatenate([low, high])
        n = columns.size
        weights = np.concatenate([np.full(low.size, n / low.size), np.full(high.size, -n / high.size)])
        strata = np.concatenate([np.zeros(low.size, int), np.ones(high.size, int)])

        def gap(curves: ArmCurves) -> ArmCurves:
            return dataclasses.replace(curves, values=curves.values[..., columns] * weights)

        concentrated = decide.superiority(gap(a), gap(b), strata=strata)
        status = combine([improved.verdict, concentrated.verdict])
        parts.append((status, f"{name}: (a) fraction of prompts improved: {improved.describe()}; (b) low-base minus high-base "
                              f"gain (halves of {low.size} prompts by base reward), LSC gap - raw gap: {concentrated.describe()} -> {status}"))
    return _verdict("4", parts, "needs LSC and raw runs of the same target, algorithm and reward model")


def _trades(results: Mapping, raw: Arm) -> str:
    """Whether the arm trades one optimised property for another at some reached grid point: one
    property's win rate significantly above 1/2, another's below (one-arm tests, Holm over grid
    points x properties)."""
    curves = {p: arm_curves(results, raw, ("win", p)) for p in raw.optimised}
    if any(isinstance(c, str) for c in curves.values()):
        return "trade not measured"
    reached = decide.common_points(*curves.values())
    tests = [(g, p, decide.contrast([(1.0, curves[p].values[:, g] - 0.5)])) for g in reached for p in raw.optimised]
    if not tests:
        return "trade not measured (no grid point reached by every seed)"
    adjusted = decide.holm([t.p_value() for _, _, t in tests])
    grid = next(iter(curves.values())).grid
    for g in reached:
        rows = [(p, t, q) for (h, p, t), q in zip(tests, adjusted) if h == g]
        up = [(p, t, q) for p, t, q in rows if q < ALPHA and t.estimate > 0]
        down = [(p, t, q) for p, t, q in rows if q < ALPHA and t.estimate < 0]
        if up and down:
            return (f"{raw.label} trades properties at KL {grid[g]:g}: {up[0][0]} win - 1/2 {up[0][1]} (adj. p {up[0][2]:.3g}) vs "
                    f"{down[0][0]} {down[0][1]} (adj. p {down[0][2]:.3g})")
    return f"{raw.label} trades no property for another at the {reached.size} grid points reached (Holm over {len(tests)} tests)"


def claim_and(results: Mapping) -> ClaimResult:
    """Claim 5, per multi-property (LSC AND, raw sum) pair: superiority of LSC's AND win-rate curve
    (``decide.superiority``). Reported without a veto: whether the raw sum trades one property for
    another (``_trades``), and LSC AND vs the group-normalised sum with its own verdict."""
    validate_results(results)
    parts = []
    for lsc, raw, normalised in _pairs(results, multi=True):
        a, b = arm_curves(results, lsc), arm_curves(results, raw)
        reason = _ready(a, b)
        if reason:
            parts.append((NOT_TESTED, f"{_name(lsc, raw)}: {reason}"))
            continue
        comparison = decide.superiority(a, b)
        text = f"{_name(lsc, raw)}: AND win rate {comparison.describe()}; {_trades(results, raw)}"
        for other in normalised:
            c = arm_curves(results, other)
            if isinstance(c, str):
                text += f"; vs {other.label}: {c}"
            else:
                extra = decide.superiority(a, c)
                text += f"; extra comparison vs the group-normalised sum {other.label} (verdict {extra.verdict}): {extra.describe()}"
        parts.append((comparison.verdict, text))
    return _verdict("5", parts, "needs multi-property LSC and raw-sum runs of the same properties, algorithm and reward model")


# --- claim 6: best-of-k --------------------------------------------------------------------------

def _chosen(entry: Mapping):
    judge = lookup(entry, "samples", "judge")
    if judge is None:
        return None
    judge = np.asarray(judge, dtype=np.float64)
    return judge[:, 0] if judge.ndim == 3 and judge.shape[1] == 1 else judge


def claim_best_of_k(results: Mapping) -> ClaimResult:
    """Claim 6: per LSC-sum and raw-sum best-of-k label pair and k > 1 both have, per prompt the
    AND win of LSC's chosen response over pi_0's m' samples minus raw's (both rerank the same
    candidates: paired by prompt); paired t over prompts, Holm over the ks, superiority rule."""
    validate_results(results)
    entries = [e for e in results.get("best_of_k") or [] if run_kind(e) in ("lsc", "raw")]
    if not entries:
        return _verdict("6", [], "needs best_of_k entries for an LSC-sum and a raw-sum utility (entries name their 'transform' and 'aggregator')")
    old = _pi_0_judge(results)
    labels: dict[tuple[str, str], dict[int, Mapping]] = {}
    for entry in entries:
        labels.setdefault((run_kind(entry), entry["label"]), {})[int(entry["k"])] = entry
    parts = []
    for (kind, lsc_label), lsc in sorted(labels.items()):
        if kind != "lsc":
            continue
        for (other, raw_label), raw in sorted(labels.items()):
            if other != "raw":
                continue
            ks = sorted(k for k in lsc.keys() & raw.keys() if k > 1)
            if not ks:
                parts.append((NOT_TESTED, f"{lsc_label} vs {raw_label}: no common k > 1"))
                continue
            chosen = {k: (_chosen(lsc[k]), _chosen(raw[k])) for k in ks}
            if old is None or any(x is None or y is None for x, y in chosen.values()):
                summary = ", ".join(f"k={k}: {as_estimate(lsc[k]['win_rate']['and'])} vs {as_estimate(raw[k]['win_rate']['and'])}"
                                    for k in ks if lookup(lsc[k], "win_rate", "and") is not None and lookup(raw[k], "win_rate", "and") is not None)
                parts.append((NOT_TESTED, f"{lsc_label} vs {raw_label}: {ARRAYS_NEEDED.replace('checkpoints', 'best_of_k entries')}"
                                          + (f" (summaries only: {summary})" if summary else "")))
                continue
            tests = []
            for k in ks:
                x, y = chosen[k]
                n = min(x.shape[0], y.shape[0], old.shape[0])
                win_l = per_prompt_rates(x[:n, None, :], old[:n])[0]
                win_r = per_prompt_rates(y[:n, None, :], old[:n])[0]
                tests.append(decide.contrast([(1.0, win_l[None]), (-1.0, win_r[None])], one_seed_note=False))
            comparison = decide.compare_tests(lsc_label, raw_label, ks, tests, unit="k")
            absent = [k for k in BEST_OF_K_KS if k not in ks]
            parts.append((comparison.verdict, f"{lsc_label} vs {raw_label}: per-prompt AND win over pi_0's samples: "
                                              f"{comparison.describe()}" + (f" (k {absent} not run)" if absent else "")))
    return _verdict("6", parts, "needs best_of_k entries for an LSC-sum and a raw-sum utility")


# --- claim 7: the reference sweep ----------------------------------------------------------------

def claim_sensitivity(results: Mapping) -> ClaimResult:
    """Claim 7: each LSC arm's reference variant (method, quantile) with each seed's final KL and
    target win rate, and each non-default variant's curve against the default's
    (``decide.superiority``, reported). Held when the sweep was run: the quantiles 0.5, 0.85, 0.95
    and both the empirical and the gaussian method appear among the LSC runs; otherwise not tested."""
    validate_results(results)
    lsc = [a for a in arms(results) if a.kind == "lsc"]
    if not lsc:
        return _verdict("7", [], "no LSC runs")
    lines = []
    for arm in sorted(lsc, key=lambda a: (a.reference, a.label)):
        finals = []
        for run in sorted(arm.runs, key=run_seed):
            final = final_checkpoint(run) or {}
            finals.append(f"seed {run_seed(run)} KL {estimate_at(final, 'kl')}, {arm.goal} win {estimate_at(final, 'win_rate', arm.goal)}")
        lines.append(f"{arm.label} ({arm.reference[0]} q={arm.reference[1]:g}; {arm.group_name}): " + "; ".join(finals))
    for arm in lsc:
        if has_default_reference(arm.runs[0]):
            continue
        for default in [d for d in lsc if d.group == arm.group and has_default_reference(d.runs[0])]:
            a, b = arm_curves(results, arm), arm_curves(results, default)
            if _ready(a, b) is None:
                lines.append(f"{arm.reference[0]} q={arm.reference[1]:g} vs default: {decide.superiority(a, b).describe()}")
    variants = {a.reference for a in lsc}
    missing_q = [q for q in SENSITIVITY_QUANTILES if not any(math.isclose(q, v[1]) for v in variants)]
    missing_m = [m for m in SENSITIVITY_METHODS if m not in {v[0] for v in variants}]
    status = HELD if not missing_q and not missing_m else NOT_TESTED
    if status == NOT_TESTED:
        lines.append(f"sweep incomplete: missing quantiles {missing_q}, methods {missing_m}")
    return ClaimResult("7", STATEMENTS["7"], status, " | ".join(lines))


# --- GPM claims ----------------------------------------------------------------------------------

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
    if error is None or not math.isfinite(float(error)):
        return _verdict("GPM 2", [], f"results lack a finite gpm.skew_symmetry_max_error (got {error})")
    held = abs(float(error)) <= SKEW_SYMMETRY_TOLERANCE
    return _verdict("GPM 2", [(HELD if held else NOT_HELD, f"max |s(a,b) + s(b,a)|, |s(a,a)| = {float(error):.3g} (tolerance {SKEW_SYMMETRY_TOLERANCE:g})")], "")


def transitive_comparison(gpm_correct, bt_correct, level: float = 0.95) -> dict:
    """Paired accuracy difference d = acc_GPM - acc_BT over the same held-out pairs: Wald interval
    se = √((b + c)/N - d²)/√N (b: GPM right and BT wrong, c: the reverse) and McNemar's exact
    two-sided p on the b + c discordant pairs."""
    gpm, bt = np.asarray(gpm_correct, dtype=bool).reshape(-1), np.asarray(bt_correct, dtype=bool).reshape(-1)
    if gpm.shape != bt.shape or gpm.size == 0:
        raise ValueError(f"transitive_comparison: gpm and bt must be the same non-empty [pairs], got {gpm.shape}, {bt.shape}")
    n, b, c = gpm.size, int((gpm & ~bt).sum()), int((~gpm & bt).sum())
    d = (b - c) / n
    half = z_value(level) * math.sqrt(max((b + c) / n - d * d, 0.0) / n)
    return {"difference": d, "low": d - half, "high": d + half, "p": binomial_two_sided_p(b, b + c), "gpm_only": b, "bt_only": c,
            "pairs": n, "gpm": float(gpm.mean()), "bt": float(bt.mean())}


def claim_gpm_transitive(results: Mapping) -> ClaimResult:
    """GPM 3 from ``gpm.transitive_correct = {"gpm": [pairs] bool, "bt": [pairs] bool}``
    (``transitive_comparison``): held if the 95 % interval's lower end is above -0.02; did not hold
    if McNemar p < 0.05 with BT ahead and the interval's upper end below -0.02; else inconclusive.
    With only ``gpm.transitive_accuracy``: inconclusive, the accuracies quoted."""
    correct = lookup(results, "gpm", "transitive_correct")
    if isinstance(correct, Mapping) and correct.get("gpm") is not None and correct.get("bt") is not None:
        m = transitive_comparison(correct["gpm"], correct["bt"])
        if m["low"] > -TRANSITIVE_TOLERANCE:
            status = HELD
        elif m["p"] < ALPHA and m["bt_only"] > m["gpm_only"] and m["high"] < -TRANSITIVE_TOLERANCE:
            status = NOT_HELD
        else:
            status = INCONCLUSIVE
        return _verdict("GPM 3", [(status, f"transitive accuracy GPM {m['gpm']:.3f} vs BT {m['bt']:.3f} on {m['pairs']} paired held-out pairs: "
                                           f"difference {m['difference']:+.3f} [{m['low']:+.3f}, {m['high']:+.3f}] (95 %), "
                                           f"discordant GPM-only {m['gpm_only']}, BT-only {m['bt_only']}, McNemar exact p {m['p']:.3g}; "
                                           f"margin {TRANSITIVE_TOLERANCE} -> {status}")], "")
    pair = _gpm_pair(results, "transitive_accuracy")
    if pair is None:
        return _verdict("GPM 3", [], "results lack gpm.transitive_correct {gpm, bt} (per pair) and gpm.transitive_accuracy")
    gpm, bt = pair
    return _verdict("GPM 3", [(INCONCLUSIVE, f"transitive accuracy GPM {gpm:.3f} vs BT {bt:.3f} (tolerance {TRANSITIVE_TOLERANCE}); "
                                             f"no per-pair results (transitive_correct), so no paired test")], "")


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
