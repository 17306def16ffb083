"""Decisions between methods: per-seed curves on a KL grid, a seed x prompt variance, Holm, verdicts.

The statistics behind ``check_claims`` (docs/decision_rules.md states each rule and why). An
*arm* is one method (its training seeds are its replicates); a metric gives, for each seed s
and held-out prompt i, a value at each checkpoint (e.g. the all-pairs win rate over pi_0 on that
prompt). ``seed_curve`` interpolates a seed's per-prompt values linearly in KL at the fixed grid
``KL_GRID`` (nats; a grid point outside the seed's KL range is not reached); ``ArmCurves`` holds
an arm's ``[seeds, grid, prompts]`` values. ``contrast`` tests a contrast of arm means with a
variance that covers training seeds and prompts, the prompts paired across arms:

    V = s²_D / n + Σ_a c_a² · max(0, M_a - R_a / n) / S_a

(D_i the per-prompt contrast of the seed-averaged values, M_a the variance of arm a's per-seed
means, R_a the residual mean square of its seed x prompt table), referred to a t distribution
with Welch-Satterthwaite degrees of freedom. ``superiority`` and ``noninferiority`` make one
such test per reached grid point, Holm-corrected (family-wise ``ALPHA`` = 0.05), and return a
``Comparison`` with its verdict. ``combine`` joins the verdicts of a claim's parts.

    import numpy as np
    from alignment.evaluation import decide

    rng = np.random.default_rng(0)
    prompt = rng.normal(0, 0.15, size=96)                     # shared by both arms
    def arm(name, shift):
        seeds = []
        for s in range(3):
            kls = np.geomspace(0.4, 30, 8) * rng.lognormal(0, 0.1)
            values = 0.6 + shift + prompt + rng.normal(0, 0.02) + rng.normal(0, 0.1, size=(8, 96))
            seeds.append((s, kls, values))
        return decide.arm_curves(name, seeds)
    comparison = decide.superiority(arm("LSC", 0.06), arm("raw", 0.0))
    print(comparison.verdict, comparison.describe())

``python -m alignment.evaluation.calibration`` simulates experiments without and with a true
difference and prints how often the rules give a definite verdict (docs/decision_rules.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from alignment.evaluation.stats import DEFAULT_LEVEL, t_quantile, t_sf

KL_GRID = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
ALPHA = 0.05

HELD, NOT_HELD, INCONCLUSIVE, NOT_IN_REGIME, NOT_TESTED = "held", "did not hold", "inconclusive", "not in regime", "not tested"
VERDICTS = (HELD, NOT_HELD, INCONCLUSIVE, NOT_IN_REGIME, NOT_TESTED)
ONE_SEED = "1 seed: intervals cover prompts and samples only"


# --- curves on the KL grid ---------------------------------------------------------------------

def seed_curve(kls, values, grid: Sequence[float] = KL_GRID) -> np.ndarray:
    """``[grid, prompts]``: one seed's per-prompt values ``[checkpoints, prompts]`` at the grid KLs.

    ``kls`` ``[checkpoints]``: each checkpoint's mean sampled KL. Checkpoints are sorted by KL
    (checkpoints at the same KL averaged) and each prompt's values interpolated linearly; grid
    points outside [min KL, max KL] are NaN (not reached, never extrapolated).
    """
    kls = np.asarray(kls, dtype=np.float64).reshape(-1)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != kls.size or kls.size == 0:
        raise ValueError(f"seed_curve: values must be [checkpoints, prompts] with {kls.size} checkpoints, got shape {values.shape}")
    if not np.isfinite(kls).all():
        raise ValueError(f"seed_curve: KLs must be finite, got {kls}")
    unique, inverse = np.unique(kls, return_inverse=True)
    merged = np.zeros((unique.size, values.shape[1]))
    np.add.at(merged, inverse, values)
    merged /= np.bincount(inverse, minlength=unique.size)[:, None]
    grid = np.asarray(grid, dtype=np.float64)
    out = np.full((grid.size, values.shape[1]), np.nan)
    inside = (grid >= unique[0]) & (grid <= unique[-1])
    if unique.size == 1:
        out[inside] = merged[0]
        return out
    position = np.searchsorted(unique, grid[inside], side="right").clip(1, unique.size - 1)
    left, right = unique[position - 1], unique[position]
    t = ((grid[inside] - left) / (right - left))[:, None]
    out[inside] = merged[position - 1] + t * (merged[position] - merged[position - 1])
    return out


@dataclasses.dataclass(frozen=True)
class ArmCurves:
    """One arm's per-seed, per-prompt values on the KL grid: ``values`` ``[seeds, grid, prompts]``
    (NaN where a seed did not reach the grid point); ``kl_ranges``: each seed's (min, max) KL."""

    name: str
    grid: tuple[float, ...]
    values: np.ndarray
    seeds: tuple[int, ...]
    kl_ranges: tuple[tuple[float, float], ...]

    @property
    def reached(self) -> np.ndarray:
        """``[grid]``: reached by every seed."""
        return ~np.isnan(self.values).any(axis=(0, 2))

    @property
    def mean(self) -> np.ndarray:
        """``[grid]``: the mean over seeds and prompts (NaN where some seed did not reach the point)."""
        out = np.full(len(self.grid), np.nan)
        out[self.reached] = self.values[:, self.reached].mean(axis=(0, 2))
        return out

    @property
    def prompts(self) -> int:
        return int(self.values.shape[2])

    def map(self, fn: Callable[[np.ndarray], np.ndarray], name: str | None = None) -> ArmCurves:
        """The same arm with ``fn`` applied to the values (NaN stays NaN)."""
        missing = np.isnan(self.values)
        values = np.asarray(fn(np.where(missing, 0.0, self.values)), dtype=np.float64)
        return dataclasses.replace(self, values=np.where(missing, np.nan, values), name=name or self.name)

    def describe_range(self) -> str:
        return ", ".join(f"{low:.3g}-{high:.3g}" for low, high in self.kl_ranges)


def arm_curves(name: str, seeds: Sequence[tuple[int, Sequence[float], np.ndarray]], grid: Sequence[float] = KL_GRID) -> ArmCurves:
    """``ArmCurves`` from ``[(seed, kls [checkpoints], values [checkpoints, prompts])]`` (one entry
    per seed; entries with the same seed are pooled into one curve: a KL-coefficient sweep)."""
    pooled: dict[int, tuple[list, list]] = {}
    for seed, kls, values in seeds:
        entry = pooled.setdefault(int(seed), ([], []))
        entry[0].extend(np.asarray(kls, dtype=np.float64).reshape(-1).tolist())
        entry[1].append(np.asarray(values, dtype=np.float64))
    if not pooled:
        raise ValueError(f"arm_curves: arm {name!r} has no seeds")
    order = sorted(pooled)
    curves, ranges = [], []
    for seed in order:
        kls, values = pooled[seed]
        values = np.concatenate(values, axis=0)
        curves.append(seed_curve(kls, values, grid))
        ranges.append((float(min(kls)), float(max(kls))))
    prompts = {c.shape[1] for c in curves}
    if len(prompts) != 1:
        raise ValueError(f"arm_curves: arm {name!r} has seeds with different numbers of prompts {sorted(prompts)}")
    return ArmCurves(name, tuple(float(g) for g in grid), np.stack(curves), tuple(order), tuple(ranges))


def common_points(*arms: ArmCurves) -> np.ndarray:
    """Indices of the grid points reached by every seed of every arm."""
    grids = {a.grid for a in arms}
    if len(grids) != 1:
        raise ValueError(f"common_points: the arms use different grids {sorted(grids)}")
    reached = np.logical_and.reduce([a.reached for a in arms])
    return np.flatnonzero(reached)


# --- the estimator -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Contrast:
    """A contrast of arm means: ``estimate`` with standard error ``se`` on ``df`` degrees of freedom
    (t reference), its ``level`` interval [low, high], over ``seeds`` per arm and ``prompts``."""

    estimate: float
    se: float
    df: float
    low: float
    high: float
    seeds: tuple[int, ...]
    prompts: int
    note: str | None = None

    def p_value(self, alternative: str = "two-sided", null: float = 0.0) -> float:
        """p of H0: θ = null against ``alternative`` in {"two-sided", "greater", "less"}."""
        if self.se <= 0 or not math.isfinite(self.se):
            if math.isclose(self.estimate, null, abs_tol=1e-12):
                return 1.0
            above = self.estimate > null
            return {"two-sided": 0.0, "greater": 0.0 if above else 1.0, "less": 1.0 if above else 0.0}[alternative]
        t = (self.estimate - null) / self.se
        if alternative == "greater":
            return t_sf(t, self.df)
        if alternative == "less":
            return t_sf(-t, self.df)
        if alternative == "two-sided":
            return min(1.0, 2.0 * t_sf(abs(t), self.df))
        raise ValueError(f"unknown alternative {alternative!r}; valid: two-sided, greater, less")

    def __str__(self) -> str:
        return f"{self.estimate:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def _residual_ms(y: np.ndarray, strata: np.ndarray) -> tuple[float, float]:
    """(mean square, df) of the residual of a [seeds, prompts] table, within strata of prompts."""
    seeds = y.shape[0]
    ss, df = 0.0, 0
    for h in np.unique(strata):
        block = y[:, strata == h]
        if block.shape[1] < 2:
            continue
        resid = block - block.mean(axis=1, keepdims=True) - block.mean(axis=0, keepdims=True) + block.mean()
        ss += float((resid ** 2).sum())
        df += (seeds - 1) * (block.shape[1] - 1)
    return (ss / df if df else 0.0), df


def contrast(parts: Sequence[tuple[float, np.ndarray]], strata=None, level: float = DEFAULT_LEVEL,
             one_seed_note: bool = True) -> Contrast:
    """Test θ = Σ_a c_a · mean_{s,i} y^a_{s,i} for ``parts`` = ``[(c_a, y_a [seeds, prompts])]``,
    the prompts (columns) shared and paired across arms, the seeds independent.

    Variance (module docstring; docs/decision_rules.md, section 3): the per-prompt contrast's
    variance over prompts / n (within ``strata`` of prompts when given) plus each arm's seed
    component max(0, M_a - R_a / n) / S_a; an arm with one seed borrows the seed component of the
    arm with the most seeds; with one seed everywhere only the prompt term remains (``note`` says
    so). Degrees of freedom: Welch-Satterthwaite over the mean squares used.
    """
    ys = [(float(c), np.asarray(y, dtype=np.float64)) for c, y in parts]
    if not ys:
        raise ValueError("contrast: no parts")
    n = ys[0][1].shape[1]
    for _, y in ys:
        if y.ndim != 2 or y.shape[1] != n or y.shape[0] < 1:
            raise ValueError(f"contrast: every part must be [seeds, {n} prompts], got shape {y.shape}")
        if not np.isfinite(y).all():
            raise ValueError("contrast: values must be finite (use grid points reached by every seed)")
    if n < 2:
        raise ValueError(f"contrast: needs at least 2 prompts, got {n}")
    strata = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata).reshape(-1)
    if strata.shape != (n,):
        raise ValueError(f"contrast: strata must be [{n}], got shape {strata.shape}")
    estimate = float(sum(c * y.mean() for c, y in ys))
    # Prompt term: the per-prompt contrast of seed means, its variance within strata.
    d = sum(c * y.mean(axis=0) for c, y in ys)
    labels, counts = np.unique(strata, return_counts=True)
    prompt_df = n - labels.size
    if prompt_df < 1:
        raise ValueError("contrast: every stratum needs at least 2 prompts")
    # Σ_h n_h s²_h / n²; with equal variances this is the pooled variance / n.
    prompt_var = sum(float(counts[k]) * float(((d[strata == h] - d[strata == h].mean()) ** 2).sum()) / max(counts[k] - 1, 1)
                     for k, h in enumerate(labels)) / n ** 2
    terms: dict[tuple, list] = {}  # mean square key -> [coefficient, value, df]
    components = {}
    for k, (c, y) in enumerate(ys):
        if y.shape[0] >= 2:
            m = float(y.mean(axis=1).var(ddof=1))
            r, r_df = _residual_ms(y, strata)
            components[k] = (m, r, y.shape[0] - 1, r_df, max(0.0, m - r / n))
    lender = max(components, key=lambda k: ys[k][1].shape[0]) if components else None
    notes = []
    variance = prompt_var
    for k, (c, y) in enumerate(ys):
        source = k if k in components else lender
        if source is None:
            continue
        m, r, m_df, r_df, seed_var = components[source]
        if source != k:
            notes.append("a 1-seed arm borrows the other arm's seed variance")
        if seed_var <= 0:
            continue
        weight = c * c / y.shape[0]
        variance += weight * seed_var
        terms.setdefault(("M", source), [0.0, m, m_df])[0] += weight
        if r_df:
            terms.setdefault(("R", source), [0.0, r, r_df])[0] -= weight / n
    if lender is None and one_seed_note:
        notes.append(ONE_SEED)
    denominator = prompt_var ** 2 / prompt_df + sum((coef * value) ** 2 / df for coef, value, df in terms.values() if df)
    df = variance ** 2 / denominator if denominator > 0 else float(prompt_df)
    df = float(min(max(df, 1.0), 1e6))
    se = math.sqrt(max(variance, 0.0))
    half = t_quantile(0.5 + level / 2, df) * se
    return Contrast(estimate, se, df, estimate - half, estimate + half, tuple(y.shape[0] for _, y in ys), n,
                    "; ".join(dict.fromkeys(notes)) or None)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error under any dependence)."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (p.size - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


# --- comparisons and verdicts ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Comparison:
    """Tests of arm A against arm B at grid points ``at`` (KLs, or k for best-of-k), Holm-corrected.

    ``kind``: "superiority" (two-sided tests of d = 0) or "noninferiority" (``margin``: one-sided
    tests of d <= -margin, and of d >= -margin for "did not hold"). ``adjusted``: Holm-adjusted
    p-values of the main family (per point); ``adjusted_against``: of the second family
    (non-inferiority only).
    """

    a: str
    b: str
    kind: str
    at: tuple[float, ...]
    tests: tuple[Contrast, ...]
    adjusted: tuple[float, ...]
    verdict: str
    margin: float = 0.0
    adjusted_against: tuple[float, ...] = ()
    alpha: float = ALPHA
    unit: str = "KL"
    reason: str = ""

    @property
    def favour(self) -> list[float]:
        """Points significant in favour of A (superiority) / non-inferior (non-inferiority)."""
        if self.kind == "superiority":
            return [x for x, t, p in zip(self.at, self.tests, self.adjusted) if p < self.alpha and t.estimate > 0]
        return [x for x, p in zip(self.at, self.adjusted) if p < self.alpha]

    @property
    def against(self) -> list[float]:
        """Points significant against A (B ahead; for non-inferiority: A worse than B - margin)."""
        if self.kind == "superiority":
            return [x for x, t, p in zip(self.at, self.tests, self.adjusted) if p < self.alpha and t.estimate < 0]
        return [x for x, p in zip(self.at, self.adjusted_against) if p < self.alpha]

    def describe(self) -> str:
        if not self.at:
            return f"{self.a} vs {self.b}: {self.reason}"
        test = self.tests[0]
        if self.unit != "KL":  # best-of-k: no training seeds, prompts are the replicates
            seeds = "paired by prompt"
        elif len(test.seeds) == 2:
            seeds = f"{test.seeds[0]} vs {test.seeds[1]} seeds"
        else:
            seeds = f"{'/'.join(map(str, test.seeds))} seeds"
        head = (f"{self.a} - {self.b} ({seeds}, {test.prompts} prompts; {self.unit} points reached: "
                f"{', '.join(f'{x:g}' for x in self.at)})")
        points = "; ".join(f"{self.unit} {x:g}: {t} (adj. p {p:.3g})" for x, t, p in zip(self.at, self.tests, self.adjusted))
        if self.kind == "superiority":
            tail = f"Holm at α={self.alpha:g}: {self.a} ahead at {len(self.favour)}, {self.b} at {len(self.against)}"
            if self.favour and self.against:
                tail += " (mixed)"
        else:
            points = "; ".join(f"{self.unit} {x:g}: {t} (adj. p non-inferior {p:.3g}, worse by > margin {q:.3g})"
                               for x, t, p, q in zip(self.at, self.tests, self.adjusted, self.adjusted_against))
            tail = (f"margin {self.margin:g}, Holm at α={self.alpha:g}: non-inferior at {len(self.favour)}/{len(self.at)}, "
                    f"worse by more than the margin at {len(self.against)}")
        notes = sorted({t.note for t in self.tests if t.note})
        return f"{head}: {points}; {tail} -> {self.verdict}" + (f" [{'; '.join(notes)}]" if notes else "")


def superiority_verdict(estimates: Sequence[float], adjusted: Sequence[float], alpha: float = ALPHA) -> str:
    """Held if some point is significant in favour and none against; did not hold if the reverse;
    else inconclusive (also when significant both ways: mixed)."""
    favour = any(p < alpha and d > 0 for d, p in zip(estimates, adjusted))
    against = any(p < alpha and d < 0 for d, p in zip(estimates, adjusted))
    if favour and not against:
        return HELD
    if against and not favour:
        return NOT_HELD
    return INCONCLUSIVE


def compare_tests(a: str, b: str, at: Sequence[float], tests: Sequence[Contrast], alpha: float = ALPHA, unit: str = "KL",
                  reason: str = "") -> Comparison:
    """The superiority ``Comparison`` of ready-made tests (two-sided, Holm over ``at``)."""
    if not tests:
        return Comparison(a, b, "superiority", (), (), (), NOT_IN_REGIME, alpha=alpha, unit=unit, reason=reason or "no common point")
    adjusted = holm([t.p_value("two-sided") for t in tests])
    verdict = superiority_verdict([t.estimate for t in tests], adjusted, alpha)
    return Comparison(a, b, "superiority", tuple(float(x) for x in at), tuple(tests), tuple(adjusted), verdict, alpha=alpha, unit=unit)


def _unreached(a: ArmCurves, b: ArmCurves) -> str:
    return (f"no grid point of {', '.join(f'{g:g}' for g in a.grid)} nats is reached by every seed of both arms "
            f"(KL ranges per seed: {a.name} {a.describe_range()}; {b.name} {b.describe_range()})")


def superiority(a: ArmCurves, b: ArmCurves, alpha: float = ALPHA, points: Sequence[int] | None = None, strata=None,
                level: float = DEFAULT_LEVEL) -> Comparison:
    """A better than B: d = mean A - mean B per grid point reached by every seed of both (or the
    given ``points``), two-sided tests, Holm; verdict by ``superiority_verdict``; no common point:
    not in regime."""
    index = common_points(a, b) if points is None else np.asarray(points, dtype=np.int64)
    if index.size == 0:
        return compare_tests(a.name, b.name, (), (), alpha, reason=_unreached(a, b))
    tests = [contrast([(1.0, a.values[:, g]), (-1.0, b.values[:, g])], strata, level) for g in index]
    return compare_tests(a.name, b.name, [a.grid[g] for g in index], tests, alpha)


def noninferiority(a: ArmCurves, b: ArmCurves, margin: float, alpha: float = ALPHA, min_points: int = 2,
                   level: float = DEFAULT_LEVEL) -> Comparison:
    """A not worse than B by more than ``margin``: one-sided tests of H0 d <= -margin at every
    reached grid point, Holm; held if every point rejects. Did not hold if some point shows
    d < -margin (one-sided, Holm); else inconclusive; fewer than ``min_points`` points: not in regime."""
    index = common_points(a, b)
    if index.size < min_points:
        reason = _unreached(a, b) if index.size == 0 else (f"only {index.size} grid point reached by every seed of both arms "
                                                            f"(KL {a.grid[index[0]]:g}); a curve needs {min_points}")
        return Comparison(a.name, b.name, "noninferiority", (), (), (), NOT_IN_REGIME, margin=margin, alpha=alpha, reason=reason)
    tests = [contrast([(1.0, a.values[:, g]), (-1.0, b.values[:, g])], None, level) for g in index]
    adjusted = holm([t.p_value("greater", -margin) for t in tests])
    against = holm([t.p_value("less", -margin) for t in tests])
    if any(p < alpha for p in against):
        verdict = NOT_HELD
    elif all(p < alpha for p in adjusted):
        verdict = HELD
    else:
        verdict = INCONCLUSIVE
    return Comparison(a.name, b.name, "noninferiority", tuple(a.grid[g] for g in index), tuple(tests), tuple(adjusted),
                      verdict, margin=margin, adjusted_against=tuple(against), alpha=alpha)


def combine(statuses: Sequence[str]) -> str:
    """A claim's verdict from its parts' (docs/decision_rules.md, section 5): not tested parts are
    ignored; all remaining not in regime -> not in regime; among the parts in regime: did not hold
    if one did not, held if all held, else inconclusive."""
    tested = [s for s in statuses if s != NOT_TESTED]
    if not tested:
        return NOT_TESTED
    in_regime = [s for s in tested if s != NOT_IN_REGIME]
    if not in_regime:
        return NOT_IN_REGIME
    if NOT_HELD in in_regime:
        return NOT_HELD
    if all(s == HELD for s in in_regime):
        return HELD
    return INCONCLUSIVE
