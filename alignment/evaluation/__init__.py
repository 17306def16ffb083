"""Evaluation: win rates over pi_0 against KL, the papers' claims, and the report.

Turns judge scores of held-out responses into estimates with intervals clustered by prompt
(``stats``), one checkpoint record per call (``evaluate_policy``), verdicts on the claims of
Wang et al., "Transforming and Combining Rewards for Aligning Large Language Models"
(arXiv 2402.00742) and Zhang et al., "Beyond Bradley-Terry Models: A General Preference Model
for Language Model Alignment" (arXiv 2410.02197) (``check_claims``), and ``results.json``,
``report.md`` and PNG plots (``write_report``). Depends on numpy and the standard library only;
matplotlib is imported by the plots. One checkpoint:

    import numpy as np
    from alignment.evaluation import evaluate_policy

    rng = np.random.default_rng(0)
    old = rng.normal(size=(32, 2, 2))                      # pi_0's judge scores [prompts, samples, properties]
    new = old + 0.5 + rng.normal(size=old.shape)           # the policy's, paired with pi_0's
    record = evaluate_policy(new, old, ["helpful", "harmless"], kl=rng.gamma(2.0, size=(32, 2)), step=100)
    print(record["win_rate"]["and"], record["kl"])        # mean [low, high] of each

The results structure (``write_report`` and ``check_claims`` read it; an Estimate is an
``Estimate`` or its JSON dict ``{"mean", "low", "high", "n"}``; ``key?`` marks an optional key,
``P`` a property name of ``properties``):

    {
      "experiment"?: str,  "judge"?: str (free text),  "level"?: float (the intervals' level),
      "properties": [P, ...],
      "base"?: {"judge_mean": {P: float}, "proxy_mean"?: {P: float}},          summarize_base(...)
      "runs": [{
          "name": str (unique),  "label": str (the curve the run belongs to, e.g. "LSC AND"),
          "transform": str,  "aggregator": str  (names of alignment.rewards: ("lsc", "sum") is LSC,
                                                  ("identity", "sum") the raw sum),
          "algorithm": str,  "kl_coef": float,
          "optimised"?: [P, ...] (the utility's properties, default all; one name = single-property run),
          "reference"?: {"method": "empirical" | "gaussian" | ..., "quantile": float} (default empirical 0.85),
          "reward_model"?: "bt" | "gpm" (default "bt"),  "gpm_opponents"?: "policy" | "base" (GPM runs),
          "training"?: {metric: float}  means over the run's steps, e.g.
                       "advantage_abs/above_ref/<P>", "advantage_abs/below_ref/<P>", "utility_slope/...",
          "checkpoints": [evaluate_policy(..., step=step) per judged checkpoint:
              {"step": int,  "kl"?: Estimate,
               "win_rate": {P: Estimate, "and": Estimate},  "loss_rate": {P: Estimate, "and": Estimate},
               "judge_mean": {P: float},  "proxy_mean"?: {P: float},
               "prompts"?: {"target": P | "and", "improved_fraction": Estimate, "gain": Estimate,
                            "low_base_gain": Estimate, "high_base_gain": Estimate, "correlation": float | None}}]
      }],
      "best_of_k"?: [{"label": str, "transform": str, "aggregator": str, "k": int,
                      "kl": float (best_of_k_kl(k)),  "win_rate": {...},  "loss_rate": {...}}],
      "gpm"?: {"cyclic_accuracy"?: {"gpm": float, "bt": float},  "skew_symmetry_max_error"?: float,
               "transitive_accuracy"?: {"gpm": float, "bt": float},  "forward_passes_for_k"?: {"<k>": int}}
    }

A best-of-k entry's ``win_rate`` / ``loss_rate`` are those of ``evaluate_policy`` on the
reranked responses (without ``kl``). ``write_report`` adds ``claims`` and ``plots`` to the
``results.json`` it writes.
"""

from alignment.evaluation.claims import (
    CLAIMS,
    HELD,
    INCONCLUSIVE,
    NOT_HELD,
    NOT_TESTED,
    STATEMENTS,
    ClaimResult,
    MatchedComparison,
    check_claims,
    claim_and,
    claim_best_of_k,
    claim_gpm_cyclic,
    claim_gpm_forward_passes,
    claim_gpm_skew_symmetry,
    claim_gpm_transitive,
    claim_gradient_shape,
    claim_reward_hacking,
    claim_sensitivity,
    claim_single_property,
    claim_underfitting,
    compare_at_matched_kl,
)
from alignment.evaluation.evaluate import best_of_k_kl, evaluate_policy, summarize_base
from alignment.evaluation.report import (
    plot_best_of_k,
    plot_headline,
    plot_prompt_improvement,
    plot_reward_hacking,
    plot_win_rate_vs_kl,
    write_report,
)
from alignment.evaluation.results import to_jsonable, utility_kind, validate_results
from alignment.evaluation.stats import (
    DEFAULT_LEVEL,
    Estimate,
    and_loss_rate,
    and_win_rate,
    and_wins,
    as_estimate,
    frontier,
    matched_kl,
    mean_estimate,
    pair_wins,
    prompt_improvement,
    spearman,
    value_at_kl,
    win_rate,
)

__all__ = [
    "CLAIMS",
    "DEFAULT_LEVEL",
    "HELD",
    "INCONCLUSIVE",
    "NOT_HELD",
    "NOT_TESTED",
    "STATEMENTS",
    "ClaimResult",
    "Estimate",
    "MatchedComparison",
    "and_loss_rate",
    "and_win_rate",
    "and_wins",
    "as_estimate",
    "best_of_k_kl",
    "check_claims",
    "claim_and",
    "claim_best_of_k",
    "claim_gpm_cyclic",
    "claim_gpm_forward_passes",
    "claim_gpm_skew_symmetry",
    "claim_gpm_transitive",
    "claim_gradient_shape",
    "claim_reward_hacking",
    "claim_sensitivity",
    "claim_single_property",
    "claim_underfitting",
    "compare_at_matched_kl",
    "evaluate_policy",
    "frontier",
    "matched_kl",
    "mean_estimate",
    "pair_wins",
    "plot_best_of_k",
    "plot_headline",
    "plot_prompt_improvement",
    "plot_reward_hacking",
    "plot_win_rate_vs_kl",
    "prompt_improvement",
    "spearman",
    "summarize_base",
    "to_jsonable",
    "utility_kind",
    "validate_results",
    "value_at_kl",
    "win_rate",
]
