"""The experiment report: ``results.json``, ``report.md`` and PNG plots from a results structure.

Plots follow Wang et al., "Transforming and Combining Rewards for Aligning Large Language
Models" (arXiv 2402.00742): win rate over pi_0 against KL(pi || pi_0) per property and for AND,
proxy reward against gold win rate over training, best-of-k against k, and per-prompt gains
against the prompts' base reward. matplotlib is imported inside the plotting functions only;
``write_report`` draws on ``matplotlib.figure.Figure`` objects (the Agg canvas, no pyplot state),
and skips every plot, saying so in the report, when matplotlib is not installed. Each
``plot_*`` function draws on a given Axes, or on a new pyplot one for a notebook.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from alignment import files

from alignment.evaluation.claims import ClaimResult, arms, check_claims, checkpoint_kl
from alignment.evaluation.decide import HELD, INCONCLUSIVE, KL_GRID, NOT_HELD, NOT_IN_REGIME, NOT_TESTED
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
    save_results,
    target,
    validate_results,
)
from alignment.evaluation.stats import Estimate, all_pair_wins, as_estimate

ALGORITHM_STYLES = {"rloo": ("o", "-"), "ppo": ("^", "-."), "grpo": ("D", ":")}  # marker, line style
PLOT_NAMES = ("headline", "win_rate_vs_kl", "reward_hacking", "best_of_k", "prompt_improvement")


def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots()[1]


def _colors(results: Mapping) -> dict[str, str]:
    """One colour per label, shared by every plot."""
    labels = sorted({r["label"] for r in results["runs"]} | {e["label"] for e in results.get("best_of_k") or []})
    return {label: f"C{i % 10}" for i, label in enumerate(labels)}


def _errorbar(ax, xs: Sequence[float], estimates: Sequence[Estimate], **style):
    yerr = [[e.mean - e.low for e in estimates], [e.high - e.mean for e in estimates]]
    return ax.errorbar(xs, [e.mean for e in estimates], yerr=yerr, capsize=3, **style)


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def _line_name(run: Mapping, algorithms: set[str]) -> str:
    return f"{run['label']} ({run['algorithm']})" if len(algorithms) > 1 else run["label"]


def _seed_points(arm_runs: Sequence[Mapping], goal: str) -> dict[int, list[tuple[float, Estimate]]]:
    """``{seed: [(KL, win on goal)]}`` sorted by KL, from the checkpoints' summaries (the runs of
    one seed, e.g. a KL-coefficient sweep, pooled)."""
    seeds: dict[int, list] = {}
    for run in arm_runs:
        for c in checkpoints(run):
            kl, win = checkpoint_kl(c), estimate_at(c, "win_rate", goal)
            if kl is not None and win is not None:
                seeds.setdefault(run_seed(run), []).append((kl, win))
    return {seed: sorted(points, key=lambda p: p[0]) for seed, points in sorted(seeds.items())}


def seed_band(seeds: Mapping[int, Sequence[tuple[float, Estimate]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """``(kls, mean, low, high)`` over the seeds' curves: at every checkpoint KL inside the range
    every seed reached, the mean over seeds of each seed's curve (linear in KL) and the min-max
    across seeds. None with fewer than 2 seeds or no common KL range."""
    curves = [(np.array([k for k, _ in pts]), np.array([w.mean for _, w in pts])) for pts in seeds.values() if pts]
    if len(curves) < 2:
        return None
    low, high = max(k[0] for k, _ in curves), min(k[-1] for k, _ in curves)
    kls = np.unique(np.concatenate([k[(k >= low) & (k <= high)] for k, _ in curves]))
    if kls.size == 0:
        return None
    values = np.stack([np.interp(kls, k, w) for k, w in curves])
    return kls, values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def _and_baseline(results: Mapping) -> float | None:
    """pi_0's AND win rate against itself: over the pairs of distinct pi_0 samples of a prompt
    (``results["pi_0"]["judge"]`` with m' >= 2), else the best-of-1 entries; None without either."""
    judge = lookup(results, "pi_0", "judge")
    if judge is not None and np.shape(judge)[1] >= 2:
        judge = np.asarray(judge, dtype=np.float64)
        wins = all_pair_wins(judge, judge).prod(axis=-1)                  # [n, m', m']
        distinct = ~np.eye(judge.shape[1], dtype=bool)
        return float(wins[:, distinct].mean())
    baseline = [as_estimate(e["win_rate"]["and"]).mean for e in results.get("best_of_k") or []
                if e["k"] == 1 and lookup(e, "win_rate", "and") is not None]
    return float(np.mean(baseline)) if baseline else None


def plot_win_rate_vs_kl(results: Mapping, goal: str = "and", runs: Sequence[Mapping] | None = None, ax=None):
    """Win rate over pi_0 on ``goal`` (a property or "and") against KL, one line per arm (label,
    and learner when there are several; ``runs``: a subset of ``results["runs"]``). An arm with
    several training seeds is drawn as the mean over its seeds' curves with a band from the
    lowest to the highest seed curve (``seed_band``); an arm with one seed as its checkpoints with
    their intervals (clustered by prompt). Checkpoints are faint dots; best-of-k dashed lines at
    its analytic KL. The dotted line is pi_0 against itself: 1/2 for a property; for AND pi_0's
    samples against each other (``_and_baseline``; two independent pi_0 samples tie in
    expectation, so AND wins and losses share that value, below 1/2)."""
    ax = _axes(ax)
    runs = results["runs"] if runs is None else runs
    colors, algorithms = _colors(results), {r["algorithm"] for r in runs}
    lines: dict[str, list[Mapping]] = {}
    for run in runs:
        lines.setdefault(_line_name(run, algorithms), []).append(run)
    for name, members in sorted(lines.items()):
        color = colors[members[0]["label"]]
        marker, style = ALGORITHM_STYLES.get(members[0]["algorithm"], ("o", "-"))
        seeds = _seed_points(members, goal)
        points = [p for pts in seeds.values() for p in pts]
        if not points:
            continue
        band = seed_band(seeds)
        if band is not None:
            kls, mean, low, high = band
            ax.scatter([k for k, _ in points], [w.mean for _, w in points], s=8, alpha=0.3, color=color)
            ax.fill_between(kls, low, high, color=color, alpha=0.2, linewidth=0)
            ax.plot(kls, mean, marker=marker, markersize=3, linestyle=style, color=color, label=f"{name} ({len(seeds)} seeds)")
        else:
            pts = max(seeds.values(), key=len)
            _errorbar(ax, [k for k, _ in pts], [w for _, w in pts], marker=marker, linestyle=style, color=color, label=name)
    for label, entries in _best_of_k_lines(results, goal).items():
        _errorbar(ax, [as_estimate(e["kl"]).mean for e in entries], [as_estimate(e["win_rate"][goal]) for e in entries],
                  marker="s", linestyle="--", color=colors[label], label=f"best-of-k: {label}")
    level = 0.5 if goal != "and" else _and_baseline(results)
    ax.axhline(0.5 if level is None else level, color="gray", linestyle=":", linewidth=1,
               label="pi_0 vs pi_0" if goal == "and" and level is not None else None)
    ax.set(xlabel="KL(pi || pi_0), nats per response", ylabel=f"win rate over pi_0 ({goal})", title=goal)
    ax.set_xscale("symlog", linthresh=1.0)  # linear below 1 nat, logarithmic above: runs span 0.05 to hundreds of nats
    ax.set_xlim(left=0.0)
    _legend(ax)
    return ax


def headline_panels(results: Mapping) -> list[tuple[str, list[Mapping]]]:
    """``[(goal, runs)]``: per property with single-property runs, LSC against the raw reward; for
    AND, the multi-property LSC, raw-sum and group-normalised-sum runs; LSC runs with the default
    reference only."""
    properties = results["properties"]
    chosen = [r for r in results["runs"] if run_kind(r) in ("lsc", "raw", "group_normalized")
              and (run_kind(r) != "lsc" or has_default_reference(r))
              and r.get("reward_model", "bt") == "bt"]
    panels = [(p, [r for r in chosen if optimised(r, properties) == [p]]) for p in properties]
    panels.append(("and", [r for r in chosen if len(optimised(r, properties)) > 1]))
    return [(goal, runs) for goal, runs in panels if runs]


def plot_headline(results: Mapping, axes=None):
    """The paper's comparison at a glance: ``plot_win_rate_vs_kl`` on each ``headline_panels`` panel."""
    panels = headline_panels(results)
    if axes is None:
        axes = _panels(len(panels), columns=len(panels))[1]
    for ax, (goal, runs) in zip(axes, panels):
        plot_win_rate_vs_kl(results, goal, runs, ax=ax)
    return axes


def _best_of_k_lines(results: Mapping, goal: str) -> dict[str, list[Mapping]]:
    lines: dict[str, list[Mapping]] = {}
    for entry in results.get("best_of_k") or []:
        if lookup(entry, "win_rate", goal) is not None:
            lines.setdefault(entry["label"], []).append(entry)
    return {label: sorted(entries, key=lambda e: e["k"]) for label, entries in sorted(lines.items())}


def _hacking_points(run: Mapping, properties: Sequence[str]) -> list[tuple[float, Estimate, float]]:
    """(KL, gold win on the run's target, proxy objective) per checkpoint that has all three."""
    goal, names = target(run, properties), optimised(run, properties)
    points = [(estimate_at(c, "kl"), estimate_at(c, "win_rate", goal), proxy_total(c, names)) for c in checkpoints(run)]
    return [(kl.mean, win, proxy) for kl, win, proxy in points if kl is not None and win is not None and proxy is not None]


def plot_reward_hacking(run: Mapping, properties: Sequence[str], ax=None):
    """One run over training: gold win rate on its target (left axis) and the proxy objective, the
    sum of proxy means over its optimised properties (right axis), against KL."""
    ax = _axes(ax)
    points = _hacking_points(run, properties)
    goal = target(run, properties)
    _errorbar(ax, [k for k, _, _ in points], [w for _, w, _ in points], marker="o", color="C0", label=f"gold win ({goal})")
    ax.set(xlabel="KL(pi || pi_0), nats per response", ylabel=f"gold win rate ({goal})", title=run["name"])
    ax.yaxis.label.set_color("C0")
    proxy_ax = ax.twinx()
    proxy_ax.plot([k for k, _, _ in points], [p for _, _, p in points], marker="^", color="C3", label="proxy")
    proxy_ax.set_ylabel("proxy reward (sum of means)", color="C3")
    return ax


def plot_best_of_k(results: Mapping, goal: str = "and", ax=None):
    """Best-of-k win rate over pi_0 on ``goal`` against k (log2 axis), one line per reranking utility."""
    ax = _axes(ax)
    colors = _colors(results)
    for label, entries in _best_of_k_lines(results, goal).items():
        _errorbar(ax, [e["k"] for e in entries], [as_estimate(e["win_rate"][goal]) for e in entries],
                  marker="o", color=colors[label], label=label)
    ax.set_xscale("log", base=2)
    ks = sorted({e["k"] for entries in _best_of_k_lines(results, goal).values() for e in entries})
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.axhline(0.5, color="gray", linestyle=":", linewidth=1)
    ax.set(xlabel="k (samples reranked)", ylabel=f"win rate over pi_0 ({goal})", title=f"best-of-k ({goal})")
    _legend(ax)
    return ax


def _improvement_runs(results: Mapping, goal: str) -> list[tuple[Mapping, Estimate, Estimate]]:
    rows = []
    for run in results["runs"]:
        final = final_checkpoint(run) or {}
        low, high = estimate_at(final, "prompts", "low_base_gain"), estimate_at(final, "prompts", "high_base_gain")
        if lookup(final, "prompts", "target") == goal and low is not None and high is not None:
            rows.append((run, low, high))
    return rows


def plot_prompt_improvement(results: Mapping, goal: str = "and", ax=None):
    """Per-prompt gain over pi_0 (final checkpoint) in the lower and the upper half of prompts by
    base reward, one line per run whose diagnostics target ``goal``: lines that fall from left to
    right mean the gains concentrate on low-base prompts."""
    ax = _axes(ax)
    colors, named = _colors(results), set()
    for run, low, high in _improvement_runs(results, goal):
        label = None if run["label"] in named else run["label"]
        named.add(run["label"])
        _errorbar(ax, [0, 1], [low, high], marker="o", color=colors[run["label"]], alpha=0.7, label=label)
    ax.axhline(0.0, color="gray", linestyle=":", linewidth=1)
    ax.set_xticks([0, 1], ["lower half", "upper half"])
    ax.set_xlim(-0.3, 1.3)
    unit = "(AND win - AND loss) / 2" if goal == "and" else "win rate - 1/2"
    ax.set(xlabel="prompts by base reward", ylabel=f"mean gain per prompt ({unit})", title=f"per-prompt gain ({goal})")
    _legend(ax)
    return ax


def _panels(count: int, columns: int = 3):
    from matplotlib.figure import Figure

    columns = min(columns, count)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(5.5 * columns, 4.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).reshape(-1)
    for ax in axes[count:]:
        ax.set_visible(False)
    return figure, axes[:count]


def _plot_jobs(results: Mapping) -> dict[str, tuple[str | None, list]]:
    """``{plot: (reason it is skipped or None, [(draw function, arguments) per panel])}``."""
    properties = results["properties"]
    has_kl = any(estimate_at(c, "kl") is not None for r in results["runs"] for c in r["checkpoints"])
    hacking = [r for r in results["runs"] if len(_hacking_points(r, properties)) >= 2]
    best = _best_of_k_lines(results, "and")
    improvement = [g for g in [*properties, "and"] if _improvement_runs(results, g)]
    return {
        "headline": (None if headline_panels(results) else "no LSC and raw runs with the default reference",
                     [(plot_win_rate_vs_kl, (results, goal, runs)) for goal, runs in headline_panels(results)]),
        "win_rate_vs_kl": (None if has_kl or best else "no checkpoint has a KL and there are no best-of-k entries",
                           [(plot_win_rate_vs_kl, (results, g)) for g in [*properties, "and"]]),
        "reward_hacking": (None if hacking else "no run has two or more checkpoints with KL, win rate and proxy_mean",
                           [(plot_reward_hacking, (r, properties)) for r in hacking]),
        "best_of_k": (None if best else "no best_of_k entries with an AND win rate", [(plot_best_of_k, (results, "and"))]),
        "prompt_improvement": (None if improvement else "no final checkpoint has prompts diagnostics",
                               [(plot_prompt_improvement, (results, g)) for g in improvement]),
    }


def _write_plots(results: Mapping, out_dir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return {}, {name: "matplotlib is not installed" for name in PLOT_NAMES}
    written, skipped = {}, {}
    for name, (reason, panels) in _plot_jobs(results).items():
        if reason:
            skipped[name] = reason
            continue
        figure, axes = _panels(len(panels))
        for ax, (draw, arguments) in zip(axes, panels):
            draw(*arguments, ax=ax)
        written[name] = out_dir / f"{name}.png"
        figure.savefig(written[name], dpi=100)
    return written, skipped


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, (Estimate, Mapping)):
        return str(as_estimate(value))
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|")


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def _reward_model_text(run: Mapping) -> str:
    """"bt", "gpm" (opponents: the other policy samples) or "gpm vs base" (the K base responses)."""
    model = run.get("reward_model", "bt")
    return f"{model} vs base" if run.get("gpm_opponents") == "base" else model


def _reference_text(run: Mapping) -> str:
    if run_kind(run) == "raw" or not run.get("reference"):
        return "–"
    method, quantile = reference_variant(run)
    return f"{method} q={quantile:g}"


def _data_lines(data: Mapping) -> list[str]:
    """What a task read from its files (``results["data"]``, e.g. a ``PretrainedTask``'s summary):
    pairs kept and skipped per file, pairs each reward model trained on, prompts dropped as too long."""
    limit = data["max_prompt_length"]

    def prompts(row):
        return f"{row['distinct'] - row['too_long']} of {row['distinct']} ({row['too_long']} over {limit} tokens, dropped)"

    rows = [[prop, Path(row["file"]).name, f"{row['kept']} of {row['lines']}",
             ", ".join(f"{k}={v}" for k, v in row["skipped"].items()) or None, row["proxy_pairs"], row["judge_pairs"],
             prompts(row["policy_prompts"]), prompts(row["eval_prompts"])]
            for prop, row in data["properties"].items()]
    lines = ["## Data", ""]
    header = ["property", "file", "pairs kept", "lines skipped", "proxy pairs", "judge pairs", "policy prompts", "eval prompts"]
    lines += _table(header, rows)
    return lines + ["", f"Prompts used: {data['alignment_prompts']} for alignment, {data['eval_prompts']} held out.", ""]


VERDICT_MEANINGS = {
    HELD: "supported beyond the noise (seeds and prompts), after Holm's correction",
    NOT_HELD: "the opposite is supported beyond the noise",
    INCONCLUSIVE: "no significant difference either way, or both ways (mixed)",
    NOT_IN_REGIME: "the runs never reached the condition the claim is about",
    NOT_TESTED: "the results lack the data the claim needs",
}


def _seed_rows(results: Mapping) -> list[list]:
    """Per arm and seed: runs, final KL and target win rate (the spread across training seeds)."""
    rows = []
    for arm in arms(results):
        for run in sorted(arm.runs, key=lambda r: (run_seed(r), r["name"])):
            final = final_checkpoint(run) or {}
            rows.append([arm.label, arm.group_name, len(arm.seeds), run_seed(run), run["name"], final.get("step"),
                         estimate_at(final, "kl"), arm.goal, estimate_at(final, "win_rate", arm.goal)])
    return rows


def _keys(rows: Sequence[Mapping], field: str) -> list[str]:
    """The keys of ``row[field]`` over the rows, in order of first appearance."""
    return list(dict.fromkeys(k for row in rows for k in (row.get(field) or {})))


def _probe_lines(results: Mapping) -> list[str]:
    """The probe table: per probe the mean change of gold and of each proxy against the unmodified
    response (a proxy's 95 % interval when the row has ``proxy_interval``)."""
    probes = results.get("probes") or []
    if not probes:
        return []
    gold, proxy = _keys(probes, "gold"), _keys(probes, "proxy")

    def proxy_cell(probe, p):
        value, interval = lookup(probe, "proxy", p), lookup(probe, "proxy_interval", p)
        if value is None or not interval:
            return value
        return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"

    header = ["probe", "description", "n"] + [f"gold Δ {p}" for p in gold] + [f"proxy Δ {p}" for p in proxy]
    rows = [[probe.get("probe"), probe.get("description"), probe.get("n")]
            + [lookup(probe, "gold", p) for p in gold] + [proxy_cell(probe, p) for p in proxy] for probe in probes]
    lines = ["## What the proxies reward that gold does not", "",
             "Mean change of the gold (judge) and proxy scores of a modified response against the unmodified one:", ""]
    return lines + _table(header, rows) + [""]


def _cost_lines(results: Mapping) -> list[str]:
    cost = results.get("cost") or {}
    if not cost:
        return []
    lines = ["## Cost", ""]
    for key, value in cost.items():
        if key == "wall_seconds" and isinstance(value, (int, float)):
            lines.append(f"- wall time: {value:.0f} s ({value / 3600:.2f} h)")
        elif isinstance(value, Mapping):
            parts = [f"{k} {v:.0f} s" if isinstance(v, float) else f"{k} {v}" for k, v in value.items()]
            lines.append(f"- {key}: {', '.join(parts) or '–'}")
        else:
            lines.append(f"- {key}: {_cell(value)}")
    return lines + [""]


def _markdown(results: Mapping, claims: Sequence[ClaimResult], plots: Mapping[str, Path], skipped: Mapping[str, str]) -> str:
    properties, runs, best = results["properties"], results["runs"], results.get("best_of_k") or []
    level = results.get("level")
    grid = results.get("kl_grid") or KL_GRID
    lines = [f"# Evaluation report: {results.get('experiment', 'experiment')}", ""]
    lines += [f"Judge: {results.get('judge', 'not stated')}. Properties: {', '.join(properties)}. Win rates compare every policy "
              "sample with every pi_0 sample of the same held-out prompt (ties 1/2). Intervals of one checkpoint: "
              + (f"{level:.0%} " if level else "") + "normal intervals clustered by prompt. KL: sampled KL(pi || pi_0) in nats per "
              "response. Verdicts compare methods at the KL grid " + ", ".join(f"{g:g}" for g in grid) + " nats with intervals "
              "that cover training seeds and prompts (prompts paired), Holm-corrected at family-wise 0.05 (docs/decision_rules.md).", ""]
    lines += ["## What was run", ""]
    lines += [f"- {len(runs)} learner runs; labels: {', '.join(sorted({r['label'] for r in runs})) or '–'}; algorithms: "
              f"{', '.join(sorted({r['algorithm'] for r in runs})) or '–'}; KL coefficients: "
              f"{', '.join(f'{c:g}' for c in sorted({float(r['kl_coef']) for r in runs})) or '–'}; reward models: "
              f"{', '.join(sorted({r.get('reward_model', 'bt') for r in runs})) or '–'}; training seeds: "
              f"{', '.join(str(s) for s in sorted({run_seed(r) for r in runs})) or '–'}."]
    lines += [f"- best-of-k: {', '.join(sorted({e['label'] for e in best}))}; k = {', '.join(str(k) for k in sorted({e['k'] for e in best}))}."
              if best else "- best-of-k: not run."]
    lines += [f"- GPM checks: {', '.join(sorted(results['gpm']))}." if results.get("gpm") else "- GPM checks: not run."]
    judge = lookup(results, "pi_0", "judge")
    lines += [f"- pi_0 held-out samples: {np.shape(judge)[0]} prompts x {np.shape(judge)[1]} samples." if judge is not None
              else "- pi_0 held-out samples: not stored (claims that need per-sample arrays are not tested)."]
    lines += [""]
    lines += _cost_lines(results)
    lines += _data_lines(results["data"]) if results.get("data") else []
    base = results.get("base") or {}
    if base:
        lines += ["Base policy pi_0:", ""]
        lines += _table(["property", "judge mean", "proxy mean"],
                        [[p, lookup(base, "judge_mean", p), lookup(base, "proxy_mean", p)] for p in properties]) + [""]
    lines += ["## Claims", ""]
    lines += _table(["claim", "verdict", "statement"], [[c.claim, f"**{c.status}**", c.statement] for c in claims]) + [""]
    lines += ["Verdicts: " + "; ".join(f"**{k}**: {v}" for k, v in VERDICT_MEANINGS.items()) + ".", ""]
    lines += ["## Learner runs (final checkpoint)", ""]
    header = ["run", "label", "seed", "algorithm", "KL coef", "reward model", "reference", "step", "KL"]
    header += [f"win {p}" for p in properties] + ["AND win", "AND loss"] + [f"proxy {p}" for p in properties]
    rows = []
    for run in runs:
        final = final_checkpoint(run) or {}
        rows.append([run["name"], run["label"], run_seed(run), run["algorithm"], f"{float(run['kl_coef']):g}", _reward_model_text(run),
                     _reference_text(run), final.get("step"), estimate_at(final, "kl")]
                    + [estimate_at(final, "win_rate", p) for p in properties]
                    + [estimate_at(final, "win_rate", "and"), estimate_at(final, "loss_rate", "and")]
                    + [lookup(final, "proxy_mean", p) for p in properties])
    lines += _table(header, rows) + [""]
    lines += ["## Spread across training seeds", "",
              "Each arm's seeds at their final checkpoint (target: the arm's property, or AND):", ""]
    lines += _table(["arm", "target, learner, reward model", "seeds", "seed", "run", "step", "final KL", "target", "target win"],
                    _seed_rows(results)) + [""]
    diagnostics = [(run, (final_checkpoint(run) or {}).get("prompts")) for run in runs]
    diagnostics = [(run, d) for run, d in diagnostics if d]
    if diagnostics:
        lines += ["Per-prompt diagnostics (final checkpoint; gain = (win - loss) / 2 per prompt, in the lower and upper half of prompts by base reward):", ""]
        lines += _table(["run", "target", "improved prompts", "gain", "low-base gain", "high-base gain", "Spearman (gain, base)"],
                        [[run["name"], d.get("target"), d.get("improved_fraction"), d.get("gain"), d.get("low_base_gain"),
                          d.get("high_base_gain"), d.get("correlation")] for run, d in diagnostics]) + [""]
    if best:
        lines += ["## Best-of-k", ""]
        lines += _table(["label", "k", "KL (analytic)"] + [f"win {p}" for p in properties] + ["AND win", "AND loss"],
                        [[e["label"], e["k"], as_estimate(e["kl"]).mean] + [lookup(e, "win_rate", p) for p in properties]
                         + [lookup(e, "win_rate", "and"), lookup(e, "loss_rate", "and")]
                         for e in sorted(best, key=lambda e: (e["label"], e["k"]))]) + [""]
    lines += _probe_lines(results)
    lines += ["## Evidence per claim", ""]
    for claim in claims:
        lines += [f"### Claim {claim.claim}: {claim.status}", "", claim.statement, "", f"Evidence: {claim.evidence}", ""]
    lines += ["## Plots", ""]
    lines += [f"![{name}]({path.name})" for name, path in plots.items()]
    lines += [f"- {name}: skipped ({reason})" for name, reason in skipped.items()]
    return "\n".join(lines) + "\n"


def write_report(results: Mapping, out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.json`` (the results without their arrays, plus ``claims`` and ``plots``) and
    ``samples.npz`` (the arrays, when there are any) with ``save_results``, ``report.md`` and the
    PNG plots into ``out_dir``; return ``{"results", "samples"?, "report", <plot name>...: path}``
    for the files written. Plots without data (or without matplotlib) are skipped and listed as such."""
    validate_results(results)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    claims = check_claims(results)
    plots, skipped = _write_plots(results, out_dir)
    payload = {
        **results,
        "claims": [claim.to_json() for claim in claims],
        "plots": {**{name: path.name for name, path in plots.items()}, **{name: f"skipped: {why}" for name, why in skipped.items()}},
    }
    paths = save_results(payload, out_dir)
    paths["report"] = out_dir / "report.md"
    files.write_text(paths["report"], _markdown(results, claims, plots, skipped))
    return {**paths, **plots}
