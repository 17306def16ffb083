"""Evaluation: win rates over pi_0 against KL, the papers' claims, and the report.

Turns judge scores of held-out responses into estimates with intervals clustered by prompt
(``stats``), one checkpoint record per call (``evaluate_policy``), decisions between methods
that cover training seeds and prompts, paired by prompt and corrected for multiple comparisons
(``decide``; the rules and their calibration: docs/decision_rules.md), verdicts on the claims
of Wang et al., "Transforming and Combining Rewards for Aligning Large Language Models"
(arXiv 2402.00742) and Zhang et al., "Beyond Bradley-Terry Models: A General Preference Model
for Language Model Alignment" (arXiv 2410.02197) (``check_claims``), and ``results.json`` +
``samples.npz``, ``report.md`` and PNG plots (``save_results``, ``load_results``,
``write_report``). Depends on numpy, scipy and the standard library only; matplotlib is imported by
the plots. One checkpoint:

    import numpy as np
    from alignment.evaluation import evaluate_policy

    rng = np.random.default_rng(0)
    old = rng.normal(size=(32, 3, 2))                      # pi_0's judge scores [prompts, m' samples, properties]
    new = rng.normal(size=(32, 2, 2)) + 0.5                # the policy's [prompts, m samples, properties]
    record = evaluate_policy(new, old, ["helpful", "harmless"], kl=rng.gamma(2.0, size=(32, 2)), step=100)
    print(record["win_rate"]["and"], record["kl"], record["samples"]["judge"].shape)

The results structure (``write_report`` and ``check_claims`` read it; an Estimate is an
``Estimate`` or its JSON dict ``{"mean", "low", "high", "n"}``; ``key?`` marks an optional key,
``P`` a property name of ``properties``; ``[n, m, P]`` a numpy array of that shape, in memory or
re-attached by ``load_results``; n held-out prompts, m policy samples, m' pi_0 samples):

    {
      "experiment"?: str,  "judge"?: str (free text),  "level"?: float (the intervals' level),
      "properties": [P, ...],
      "kl_grid"?: [float, ...] (the KL grid of the decisions, default decide.KL_GRID),
      "base"?: {"judge_mean": {P: float}, "proxy_mean"?: {P: float}},          summarize_base(...)
      "pi_0"?: {"judge": [n, m', P], "proxy"?: [n, m', P]}  pi_0's held-out samples (the old of every checkpoint),
      "eval_base_reward"?: [n, P]  each held-out prompt's base reward r_ref under the proxies (claim 4),
      "gradient_batch"?: {"rewards": [n_a, K, P], "references": [n_a, P]}  proxy rewards of K pi_0
                         samples per alignment prompt and their r_ref (claim 1),
      "runs": [{
          "name": str (unique),  "label": str (the curve the run belongs to, e.g. "LSC AND"),
          "seed"?: int (training seed, default 0; runs with the same label, algorithm,
                        reward_model and target form one arm, its seeds the runs),
          "transform": str,  "aggregator": str  (names of alignment.rewards: ("lsc", "sum") is LSC,
                                                  ("identity", "sum") the raw sum),
          "normalize"?: "none" | "group" (("identity", "sum") with "group": the group-normalised sum),
          "algorithm": str,  "kl_coef": float,
          "optimised"?: [P, ...] (the utility's properties, default all; one name = single-property run),
          "reference"?: {"method": "empirical" | "gaussian" | ..., "quantile": float} (default empirical 0.85),
          "reward_model"?: "bt" | "gpm" (default "bt"),  "gpm_opponents"?: "policy" | "base" (GPM runs),
          "training"?: {metric: float}  means over the run's steps,
          "checkpoints": [evaluate_policy(..., step=step) per judged checkpoint:
              {"step": int,  "kl"?: Estimate,
               "win_rate": {P: Estimate, "and": Estimate},  "loss_rate": {P: Estimate, "and": Estimate},
               "judge_mean": {P: float},  "proxy_mean"?: {P: float},
               "prompts"?: {"target": P | "and", "improved_fraction": Estimate, "gain": Estimate,
                            "low_base_gain": Estimate, "high_base_gain": Estimate, "correlation": float | None},
               "samples"?: {"judge": [n, m, P], "proxy"?: [n, m, P], "kl"?: [n, m]}}]
      }],
      "best_of_k"?: [{"label": str, "transform": str, "aggregator": str, "k": int,
                      "kl": float (best_of_k_kl(k)),  "win_rate": {...},  "loss_rate": {...},
                      "samples"?: {"judge": [n_b, P]} (the chosen response's judge scores on the
                                   first n_b held-out prompts, compared with pi_0.judge[:n_b])}],
      "gpm"?: {"cyclic_accuracy"?: {"gpm": float, "bt": float},  "skew_symmetry_max_error"?: float,
               "transitive_accuracy"?: {"gpm": float, "bt": float},
               "transitive_correct"?: {"gpm": [pairs] bool, "bt": [pairs] bool} (per held-out pair, paired),
               "forward_passes_for_k"?: {"<k>": int}},
      "probes"?: [{"probe": str, "description": str, "n": int, "gold": {P: float}, "proxy": {P: float}}]
                 (mean change of gold and proxy scores against the unmodified response),
      "cost"?: {"wall_seconds": float, ...}
    }

A best-of-k entry's ``win_rate`` / ``loss_rate`` are those of ``evaluate_policy`` on the
reranked responses (without ``kl``). ``save_results`` writes every array into ``samples.npz``
keyed by its JSON path and leaves a marker ``{"array": key, "shape", "dtype"}`` in
``results.json``; ``write_report`` adds ``claims`` and ``plots`` to what it saves. Claims that
need arrays the results lack (results written before the arrays existed) are "not tested".
"""

from alignment.evaluation import decide
from alignment.evaluation.claims import (
    CLAIMS,
    NONINFERIORITY_MARGIN,
    STATEMENTS,
    STATUSES,
    Arm,
    ClaimResult,
    arm_curves,
    arms,
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
    gradient_ratio,
    transitive_comparison,
)
from alignment.evaluation.decide import (
    ALPHA,
    HELD,
    INCONCLUSIVE,
    KL_GRID,
    NOT_HELD,
    NOT_IN_REGIME,
    NOT_TESTED,
    ArmCurves,
    Comparison,
    Contrast,
    combine,
    contrast,
    holm,
    noninferiority,
    seed_curve,
    superiority,
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
from alignment.evaluation.results import load_results, save_results, to_jsonable, utility_kind, validate_results
from alignment.evaluation.stats import (
    DEFAULT_LEVEL,
    Estimate,
    all_pair_wins,
    and_loss_rate,
    and_win_rate,
    and_wins,
    as_estimate,
    frontier,
    matched_kl,
    mean_estimate,
    pair_wins,
    per_prompt_rates,
    prompt_improvement,
    spearman,
    value_at_kl,
    win_rate,
)

__all__ = [
    "ALPHA",
    "CLAIMS",
    "DEFAULT_LEVEL",
    "HELD",
    "INCONCLUSIVE",
    "KL_GRID",
    "NONINFERIORITY_MARGIN",
    "NOT_HELD",
    "NOT_IN_REGIME",
    "NOT_TESTED",
    "STATEMENTS",
    "STATUSES",
    "Arm",
    "ArmCurves",
    "ClaimResult",
    "Comparison",
    "Contrast",
    "Estimate",
    "all_pair_wins",
    "and_loss_rate",
    "and_win_rate",
    "and_wins",
    "arm_curves",
    "arms",
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
    "combine",
    "contrast",
    "decide",
    "evaluate_policy",
    "frontier",
    "gradient_ratio",
    "holm",
    "load_results",
    "matched_kl",
    "mean_estimate",
    "noninferiority",
    "pair_wins",
    "per_prompt_rates",
    "plot_best_of_k",
    "plot_headline",
    "plot_prompt_improvement",
    "plot_reward_hacking",
    "plot_win_rate_vs_kl",
    "prompt_improvement",
    "save_results",
    "seed_curve",
    "spearman",
    "summarize_base",
    "superiority",
    "to_jsonable",
    "transitive_comparison",
    "utility_kind",
    "validate_results",
    "value_at_kl",
    "win_rate",
]
