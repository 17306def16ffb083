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

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from alignment.evaluation.claims import ClaimResult, check_claims
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
    target,
    to_jsonable,
    validate_results,
)
from alignment.evaluation.stats import Estimate, as_estimate

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


def plot_win_rate_vs_kl(results: Mapping, goal: str = "and", runs: Sequence[Mapping] | None = None, ax=None):
    """Win rate over pi_0 on ``goal`` (a property or "and") against KL: one line per label (and
    learner) through its runs' final checkpoints (``runs``: a subset of ``results["runs"]``),
    intermediate checkpoints as faint dots, best-of-k as dashed lines at its analytic KL. The
    dotted line is pi_0 against itself: 1/2 for a property; for AND the best-of-1 entry when
    there is one (two independent pi_0 samples tie in expectation, so AND wins and losses share
    that value, below 1/2)."""
    ax = _axes(ax)
    runs = results["runs"] if runs is None else runs
    colors, algorithms = _colors(results), {r["algorithm"] for r in runs}
    lines: dict[str, list[Mapping]] = {}
    for run in runs:
        lines.setdefault(_line_name(run, algorithms), []).append(run)
    for name, runs in sorted(lines.items()):
        color = colors[runs[0]["label"]]
        finals, middles = [], []
        for run in runs:
            points = [(estimate_at(c, "kl"), estimate_at(c, "win_rate", goal)) for c in checkpoints(run)]
            points = [(kl.mean, win) for kl, win in points if kl is not None and win is not None]
            finals += points[-1:]
            middles += points[:-1]
        if middles:
            ax.scatter([k for k, _ in middles], [w.mean for _, w in middles], s=8, alpha=0.3, color=color)
        if finals:
            finals.sort(key=lambda p: p[0])
            marker, style = ALGORITHM_STYLES.get(runs[0]["algorithm"], ("o", "-"))
            _errorbar(ax, [k for k, _ in finals], [w for _, w in finals], marker=marker, linestyle=style, color=color, label=name)
    for label, entries in _best_of_k_lines(results, goal).items():
        _errorbar(ax, [as_estimate(e["kl"]).mean for e in entries], [as_estimate(e["win_rate"][goal]) for e in entries],
                  marker="s", linestyle="--", color=colors[label], label=f"best-of-k: {label}")
    baseline = [as_estimate(e["win_rate"][goal]).mean for e in results.get("best_of_k") or []
                if e["k"] == 1 and lookup(e, "win_rate", goal) is not None]
    level = 0.5 if goal != "and" or not baseline else float(np.mean(baseline))
    ax.axhline(level, color="gray", linestyle=":", linewidth=1, label="pi_0 vs pi_0" if goal == "and" and baseline else None)
    ax.set(xlabel="KL(pi || pi_0), nats per response", ylabel=f"win rate over pi_0 ({goal})", title=goal)
    _legend(ax)
    return ax


def headline_panels(results: Mapping) -> list[tuple[str, list[Mapping]]]:
    """``[(goal, runs)]``: per property with single-property runs, LSC against the raw reward; for
    AND, the multi-property LSC and raw-sum runs; runs with the default reference only."""
    properties = results["properties"]
    chosen = [r for r in results["runs"] if run_kind(r) in ("lsc", "raw") and has_default_reference(r)
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
    unit = "P(AND win) - P(AND loss)" if goal == "and" else "judge score"
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


def _markdown(results: Mapping, claims: Sequence[ClaimResult], plots: Mapping[str, Path], skipped: Mapping[str, str]) -> str:
    properties, runs, best = results["properties"], results["runs"], results.get("best_of_k") or []
    level = results.get("level")
    lines = [f"# Evaluation report: {results.get('experiment', 'experiment')}", ""]
    lines += [f"Judge: {results.get('judge', 'not stated')}. Properties: {', '.join(properties)}. Intervals: "
              + (f"{level:.0%} " if level else "") + "normal intervals clustered by prompt. KL: sampled KL(pi || pi_0) in nats per response.", ""]
    lines += ["## What was run", ""]
    lines += [f"- {len(runs)} learner runs; labels: {', '.join(sorted({r['label'] for r in runs})) or '–'}; algorithms: "
              f"{', '.join(sorted({r['algorithm'] for r in runs})) or '–'}; KL coefficients: "
              f"{', '.join(f'{c:g}' for c in sorted({float(r['kl_coef']) for r in runs})) or '–'}; reward models: "
              f"{', '.join(sorted({r.get('reward_model', 'bt') for r in runs})) or '–'}."]
    lines += [f"- best-of-k: {', '.join(sorted({e['label'] for e in best}))}; k = {', '.join(str(k) for k in sorted({e['k'] for e in best}))}."
              if best else "- best-of-k: not run."]
    lines += [f"- GPM checks: {', '.join(sorted(results['gpm']))}." if results.get("gpm") else "- GPM checks: not run.", ""]
    lines += _data_lines(results["data"]) if results.get("data") else []
    base = results.get("base") or {}
    if base:
        lines += ["Base policy pi_0:", ""]
        lines += _table(["property", "judge mean", "proxy mean"],
                        [[p, lookup(base, "judge_mean", p), lookup(base, "proxy_mean", p)] for p in properties]) + [""]
    lines += ["## Learner runs (final checkpoint)", ""]
    header = ["run", "label", "algorithm", "KL coef", "reward model", "reference", "step", "KL"]
    header += [f"win {p}" for p in properties] + ["AND win", "AND loss"] + [f"proxy {p}" for p in properties]
    rows = []
    for run in runs:
        final = final_checkpoint(run) or {}
        rows.append([run["name"], run["label"], run["algorithm"], f"{float(run['kl_coef']):g}", _reward_model_text(run),
                     _reference_text(run), final.get("step"), estimate_at(final, "kl")]
                    + [estimate_at(final, "win_rate", p) for p in properties]
                    + [estimate_at(final, "win_rate", "and"), estimate_at(final, "loss_rate", "and")]
                    + [lookup(final, "proxy_mean", p) for p in properties])
    lines += _table(header, rows) + [""]
    diagnostics = [(run, (final_checkpoint(run) or {}).get("prompts")) for run in runs]
    diagnostics = [(run, d) for run, d in diagnostics if d]
    if diagnostics:
        lines += ["Per-prompt diagnostics (final checkpoint; gains in the lower and upper half of prompts by base reward):", ""]
        lines += _table(["run", "target", "improved prompts", "gain", "low-base gain", "high-base gain", "Spearman (gain, base)"],
                        [[run["name"], d.get("target"), d.get("improved_fraction"), d.get("gain"), d.get("low_base_gain"),
                          d.get("high_base_gain"), d.get("correlation")] for run, d in diagnostics]) + [""]
    if best:
        lines += ["## Best-of-k", ""]
        lines += _table(["label", "k", "KL (analytic)"] + [f"win {p}" for p in properties] + ["AND win", "AND loss"],
                        [[e["label"], e["k"], as_estimate(e["kl"]).mean] + [lookup(e, "win_rate", p) for p in properties]
                         + [lookup(e, "win_rate", "and"), lookup(e, "loss_rate", "and")]
                         for e in sorted(best, key=lambda e: (e["label"], e["k"]))]) + [""]
    lines += ["## Claims", ""]
    lines += _table(["claim", "status", "statement"], [[c.claim, f"**{c.status}**", c.statement] for c in claims]) + [""]
    for claim in claims:
        lines += [f"### Claim {claim.claim}: {claim.status}", "", claim.statement, "", f"Evidence: {claim.evidence}", ""]
    lines += ["## Plots", ""]
    lines += [f"![{name}]({path.name})" for name, path in plots.items()]
    lines += [f"- {name}: skipped ({reason})" for name, reason in skipped.items()]
    return "\n".join(lines) + "\n"


def write_report(results: Mapping, out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.json`` (the results, JSON-safe, plus ``claims`` and ``plots``), ``report.md``
    and the PNG plots into ``out_dir``; return ``{"results", "report", <plot name>...: path}`` for
    the files written. Plots without data (or without matplotlib) are skipped and listed as such."""
    validate_results(results)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    claims = check_claims(results)
    plots, skipped = _write_plots(results, out_dir)
    payload = {
        **to_jsonable(results),
        "claims": [claim.to_json() for claim in claims],
        "plots": {**{name: path.name for name, path in plots.items()}, **{name: f"skipped: {why}" for name, why in skipped.items()}},
    }
    paths = {"results": out_dir / "results.json", "report": out_dir / "report.md"}
    paths["results"].write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    paths["report"].write_text(_markdown(results, claims, plots, skipped))
    return {**paths, **plots}
