"""Win rates over the base policy, means, curves, and the t and binomial distributions (numpy, scipy).

The evaluation of Wang et al., "Transforming and Combining Rewards for Aligning Large Language
Models" (arXiv 2402.00742): on each held-out prompt the judge compares each of the m samples of
the policy pi with each of the m' samples of pi_0 (all m·m' pairs; m and m' may differ); the
win rate over pi_0 is plotted against KL(pi || pi_0).

Samples of one prompt are correlated (same prompt, same difficulty), so the intervals of one
checkpoint are clustered by prompt (Miller, "Adding Error Bars to Evals: A Statistical Approach
to Language Model Evaluations", arXiv 2411.00640): average within each prompt i first, then
across the N prompts, with z = Phi^-1(1/2 + level/2):

    m_i = mean_{j,k} w_ijk,   mean = mean_i m_i,   interval = mean ± z · sd_i(m_i) / √N

These intervals describe one checkpoint of one training seed; the decisions between methods
(``alignment.evaluation.decide``) add the variance across training seeds. Arrays are numpy
``[prompts, samples]`` (``[prompts, samples, properties]`` for several properties); nothing here
imports jax or model code (Student's t and the binomial test come from scipy).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from statistics import NormalDist
from typing import TypeVar

import numpy as np
from scipy import stats as scipy_stats

DEFAULT_LEVEL = 0.95


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A mean with its confidence interval ``[low, high]``, estimated from ``n`` prompts.

    ``n = 0`` marks an exact number (no sampling error), e.g. the analytic KL of best-of-k.
    """

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        """(high - low) / 2."""
        return (self.high - self.low) / 2

    def to_json(self) -> dict:
        """``{"mean", "low", "high", "n"}`` with plain Python numbers."""
        return {"mean": float(self.mean), "low": float(self.low), "high": float(self.high), "n": int(self.n)}

    @classmethod
    def from_json(cls, data: Mapping) -> Estimate:
        """The inverse of ``to_json``."""
        return cls(float(data["mean"]), float(data["low"]), float(data["high"]), int(data["n"]))

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def as_estimate(value: Estimate | Mapping | float) -> Estimate:
    """An ``Estimate`` from an Estimate, its ``to_json`` dict, or an exact number (zero width, n = 0)."""
    if isinstance(value, Estimate):
        return value
    if isinstance(value, Mapping):
        return Estimate.from_json(value)
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return Estimate(float(value), float(value), float(value), 0)
    raise TypeError(f"expected an Estimate, its JSON dict or a number, got {type(value).__name__}: {value!r}")


def z_value(level: float) -> float:
    """The two-sided normal quantile Phi^-1(1/2 + level/2) (1.96 for level 0.95)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return NormalDist().inv_cdf(0.5 + level / 2)


def clustered_estimate(per_prompt: np.ndarray, level: float = DEFAULT_LEVEL, bounds: tuple[float, float] | None = None,
                       name: str = "estimate") -> Estimate:
    """mean ± z · sd / √N over N per-prompt values (sd with N - 1 degrees of freedom), clipped to ``bounds``."""
    values = np.asarray(per_prompt, dtype=np.float64).reshape(-1)
    if values.size < 2:
        raise ValueError(f"{name}: an interval clustered by prompt needs at least 2 prompts, got {values.size}")
    mean = float(values.mean())
    half = z_value(level) * float(values.std(ddof=1)) / math.sqrt(values.size)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Estimate(mean, low, high, int(values.size))


def _array(x, ndim: int, name: str, what: str) -> np.ndarray:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != ndim or 0 in array.shape:
        raise ValueError(f"{name} must be a non-empty {what} array, got shape {array.shape}")
    bad = int((~np.isfinite(array)).sum())
    if bad:
        raise ValueError(f"{name} has {bad} non-finite values (shape {array.shape}); judge scores and KLs must be finite")
    return array


def _same_prompts(new, old, ndim: int, caller: str) -> tuple[np.ndarray, np.ndarray]:
    """``new`` [n, m, ...] and ``old`` [n, m', ...]: same prompts (and properties), any sample counts."""
    what = "[prompts, samples]" if ndim == 2 else "[prompts, samples, properties]"
    new = _array(new, ndim, f"{caller}: new", what)
    old = _array(old, ndim, f"{caller}: old", what)
    if new.shape[0] != old.shape[0] or new.shape[2:] != old.shape[2:]:
        raise ValueError(f"{caller}: new has shape {new.shape} but old has shape {old.shape}; they must be {what} "
                         f"on the same prompts (and properties), the sample counts may differ")
    return new, old


def pair_wins(new, old) -> np.ndarray:
    """Per pair: 1 if new > old, 1/2 if equal (a coin flip), 0 otherwise; any broadcastable shapes."""
    new, old = np.asarray(new), np.asarray(old)
    return (new > old).astype(np.float64) + 0.5 * (new == old)


def all_pair_wins(new, old) -> np.ndarray:
    """``[n, m, m', ...]``: ``pair_wins`` of each of the m samples of ``new`` [n, m, ...] against each
    of the m' samples of ``old`` [n, m', ...] of the same prompt."""
    new, old = np.asarray(new), np.asarray(old)
    return pair_wins(new[:, :, None], old[:, None, :])


def per_prompt_rates(new, old, index: int | Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-prompt all-pairs (win, loss) rates ``[n]`` of ``new`` [n, m, P] over ``old`` [n, m', P].

    ``index``: one property (an int), or the AND of several (a sequence; None = all): per pair the
    product over those properties of the per-property pair wins (a tie counts 1/2 on each
    property), the loss the same with the roles swapped. For one property win + loss = 1.
    """
    new, old = np.asarray(new, dtype=np.float64), np.asarray(old, dtype=np.float64)
    if isinstance(index, (int, np.integer)):
        wins = all_pair_wins(new[..., index], old[..., index])
        return wins.mean(axis=(1, 2)), 1.0 - wins.mean(axis=(1, 2))
    if index is not None:
        new, old = new[..., list(index)], old[..., list(index)]
    wins = all_pair_wins(new, old)
    return wins.prod(axis=-1).mean(axis=(1, 2)), (1.0 - wins).prod(axis=-1).mean(axis=(1, 2))


def win_rate(new, old, level: float = DEFAULT_LEVEL) -> Estimate:
    """P(judge prefers the policy's sample to pi_0's), ties counted 1/2, clustered by prompt, in [0, 1].

    ``new`` [prompts, m], ``old`` [prompts, m']: judge scores of the policy's and pi_0's samples on
    the same prompts. Per prompt the mean over all m·m' pairs of w = 1[new > old] + 1[new = old] / 2,
    then the module's clustered interval over the per-prompt rates, clipped to [0, 1].
    """
    new, old = _same_prompts(new, old, 2, "win_rate")
    return clustered_estimate(all_pair_wins(new, old).mean(axis=(1, 2)), level, (0.0, 1.0), "win_rate")


def and_wins(new, old) -> np.ndarray:
    """``[prompts, m, m']`` AND-win per pair (all pairs of a prompt): prod_p w_p with w_p in {0, 1/2, 1}."""
    return all_pair_wins(new, old).prod(axis=-1)


def and_win_rate(new, old, level: float = DEFAULT_LEVEL) -> Estimate:
    """P(policy's sample beats pi_0's on every property); a tie on a property is a coin flip.

    ``new`` [prompts, m, properties], ``old`` [prompts, m', properties]. Per pair prod_p w_p (so one
    tie halves the win, a loss on any property zeroes it), averaged over the m·m' pairs of each
    prompt, then the clustered interval, clipped to [0, 1].
    """
    new, old = _same_prompts(new, old, 3, "and_win_rate")
    return clustered_estimate(and_wins(new, old).mean(axis=(1, 2)), level, (0.0, 1.0), "and_win_rate")


def and_loss_rate(new, old, level: float = DEFAULT_LEVEL) -> Estimate:
    """P(pi_0's sample beats the policy's on every property) = ``and_win_rate(old, new)``.

    1 - AND-win - AND-loss is the share of pairs that trade one property against another.
    """
    new, old = _same_prompts(new, old, 3, "and_loss_rate")
    return clustered_estimate(and_wins(old, new).mean(axis=(1, 2)), level, (0.0, 1.0), "and_loss_rate")


def mean_estimate(x, level: float = DEFAULT_LEVEL) -> Estimate:
    """The mean of a per-response quantity ``[prompts, samples]`` with the clustered interval.

    For the sampled KL(pi || pi_0): x = sum_t (log pi - log pi_0) of responses sampled from pi,
    whose mean is an unbiased estimate of the KL in nats per response.
    """
    x = _array(x, 2, "mean_estimate: x", "[prompts, samples]")
    return clustered_estimate(x.mean(axis=1), level, None, "mean_estimate")


Value = TypeVar("Value", float, Estimate)


def _average(values: Sequence[Value]) -> Value:
    if isinstance(values[0], Estimate):
        return Estimate(float(np.mean([v.mean for v in values])), float(np.mean([v.low for v in values])),
                        float(np.mean([v.high for v in values])), min(v.n for v in values))
    return float(np.mean(values))


def frontier(points: Iterable[tuple[float, Value | Mapping]]) -> list[tuple[float, Value]]:
    """The curve through ``(kl, value)`` points: sorted by KL, points at the same KL averaged.

    Values are numbers or Estimates (JSON dicts are read as Estimates). It is the curve of the
    observed points, not their upper envelope: a win rate that falls at high KL stays visible.
    """
    by_kl: dict[float, list] = {}
    for kl, value in points:
        kl = float(kl)
        if not math.isfinite(kl):
            raise ValueError(f"frontier: KL values must be finite, got {kl}")
        by_kl.setdefault(kl, []).append(as_estimate(value) if isinstance(value, Mapping) else value)
    return [(kl, _average(values)) for kl, values in sorted(by_kl.items())]


def _lerp(a: Value, b: Value, t: float) -> Value:
    if isinstance(a, Estimate):
        return Estimate(a.mean + t * (b.mean - a.mean), a.low + t * (b.low - a.low), a.high + t * (b.high - a.high), min(a.n, b.n))
    return float(a + t * (b - a))


def interpolate(curve: Sequence[tuple[float, Value]], kl: float) -> Value | None:
    """The value of a ``frontier`` curve at ``kl`` by linear interpolation; None outside its KL range."""
    kls = [k for k, _ in curve]
    if not kls or not kls[0] <= kl <= kls[-1]:
        return None
    i = bisect.bisect_left(kls, kl)
    if kls[i] == kl:
        return curve[i][1]
    t = (kl - kls[i - 1]) / (kls[i] - kls[i - 1])
    return _lerp(curve[i - 1][1], curve[i][1], t)


def value_at_kl(kls: Sequence[float], values: Sequence[Value], kl: float) -> Value | None:
    """The curve through ``(kls, values)`` at ``kl``: linear interpolation inside the observed KL
    range, None outside it. Estimates interpolate their mean, low and high."""
    if len(kls) != len(values):
        raise ValueError(f"value_at_kl: {len(kls)} KLs but {len(values)} values")
    return interpolate(frontier(zip(kls, values)), kl)


def matched_kl(curve_a: Sequence[tuple[float, Value]], curve_b: Sequence[tuple[float, Value]]) -> list[tuple[float, Value, Value]]:
    """Both ``frontier`` curves at every observed KL of either that lies inside both KL ranges.

    Returns ``[(kl, value_a, value_b)]`` sorted by KL (empty when the ranges do not overlap).
    """
    if not curve_a or not curve_b:
        return []
    low, high = max(curve_a[0][0], curve_b[0][0]), min(curve_a[-1][0], curve_b[-1][0])
    kls = sorted({k for k, _ in [*curve_a, *curve_b] if low <= k <= high})
    return [(k, interpolate(curve_a, k), interpolate(curve_b, k)) for k in kls]


def ranks(x) -> np.ndarray:
    """1-based ranks of a 1-D array, ties given their average rank."""
    _, inverse, counts = np.unique(np.asarray(x, dtype=np.float64), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2)[inverse.reshape(-1)]


def spearman(x, y) -> float | None:
    """Spearman's rank correlation (Pearson's on average ranks); None when either side is constant."""
    x, y = np.asarray(x, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"spearman: x has {x.size} values but y has {y.size}")
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def prompt_improvement(gain, base_reward, level: float = DEFAULT_LEVEL) -> dict:
    """Per-prompt gains over pi_0 and how they depend on the prompt's base reward (claim 4 of arXiv 2402.00742).

    ``gain``: ``[prompts]`` per-prompt gain, g_i = (win_i - loss_i) / 2 from ``per_prompt_rates``
    (= win rate - 1/2 for one property; for AND half of P(AND win) - P(AND loss); 0 for pi_0
    against itself). ``base_reward``: ``[prompts]`` (e.g. r_ref(x) from pi_0's samples under the
    proxy). Prompts are split by base reward into a lower and an upper half of N // 2 each (the
    median prompt is left out when N is odd). Returns:

    - ``improved_fraction``: share of prompts with g_i > 0 (ties are not improvements);
    - ``gain``: mean g_i over all prompts;
    - ``low_base_gain``, ``high_base_gain``: mean g_i in the lower and upper half;
    - ``correlation``: Spearman's correlation of g_i with the base reward (None if undefined).
    """
    gain = _array(gain, 1, "prompt_improvement: gain", "[prompts]")
    base = _array(base_reward, 1, "prompt_improvement: base_reward", "[prompts]")
    if base.shape[0] != gain.shape[0]:
        raise ValueError(f"prompt_improvement: base_reward has shape {base.shape} but there are {gain.shape[0]} prompts' gains")
    if gain.shape[0] < 4:
        raise ValueError(f"prompt_improvement needs at least 4 prompts (two per base-reward half), got {gain.shape[0]}")
    low, high = base_halves(base)
    return {
        "improved_fraction": clustered_estimate(gain > 0, level, (0.0, 1.0), "improved_fraction"),
        "gain": clustered_estimate(gain, level, None, "gain"),
        "low_base_gain": clustered_estimate(gain[low], level, None, "low_base_gain"),
        "high_base_gain": clustered_estimate(gain[high], level, None, "high_base_gain"),
        "correlation": spearman(gain, base),
    }


def base_halves(base) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the lower and the upper N // 2 prompts by ``base`` (stable order; the median
    prompt of an odd N is in neither)."""
    order = np.argsort(np.asarray(base, dtype=np.float64), kind="stable")
    half = len(order) // 2
    return order[:half], order[len(order) - half:]


# --- distributions (numpy and math only) -----------------------------------------------------------

def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` > 0 degrees of freedom (``scipy.stats.t``)."""
    if not df > 0:
        raise ValueError(f"t_sf: df must be > 0, got {df}")
    return float(scipy_stats.t.sf(t, df))


def t_quantile(q: float, df: float) -> float:
    """The q-quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t``)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"t_quantile: q must be in (0, 1), got {q}")
    return float(scipy_stats.t.ppf(q, df))


def binomial_two_sided_p(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n trials under p = 1/2 (McNemar's exact test on
    the discordant pairs; ``scipy.stats.binomtest``); 1 for no trials."""
    return 1.0 if n == 0 else float(scipy_stats.binomtest(k, n).pvalue)
