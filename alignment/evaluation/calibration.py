"""Calibration of the decision rules: simulated experiments run through the claims' own code.

``simulate_results`` builds a whole results structure (pi_0's judge scores, two arms of seeds,
each seed's checkpoints with per-sample judge scores and KLs) from a latent model of judge
scores; ``rates`` runs ``claims.claim_and`` (superiority, AND target) or
``claims.claim_single_property`` (non-inferiority, one property) on many of them and counts the
verdicts. docs/decision_rules.md, section 8, reports the numbers; ``python -m
alignment.evaluation.calibration [--experiments N] [--seed S]`` reprints them.

The latent model, per prompt i, property p, sample j (scores on the judge's scale):

    pi_0:    o_ijp = a_ip + e_ijp
    arm X:   x_ijp = a_ip + h(kl) · (LIFT + g_Xip + b_Xsp + z_Xsip) + effect_X + e'_ijp

a_ip the prompt's difficulty (shared by both arms, as are pi_0's samples), g the prompt x arm
interaction, b the seed effect, z the seed x prompt effect, e and e' unit sample noise drawn
afresh at every checkpoint, h(kl) = kl / (kl + 4) the progress of training. Under the null both
arms have the same distribution; ``effect`` shifts arm A (LSC) at every KL.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence

import numpy as np

from alignment.evaluation import claims
from alignment.evaluation.decide import HELD, NOT_HELD

PROMPTS, SAMPLES, SEEDS, CHECKPOINTS, MAX_KL = 96, 4, 3, 8, 30.0
LIFT = 0.8                    # latent gain at full progress: a win rate of about 0.7 on one property
PROMPT_SD = 1.0               # a_ip
INTERACTION_SD = 0.25         # g_Xip (prompt x arm)
SEED_SD = 0.12                # b_Xsp
SEED_PROMPT_SD = 0.25         # z_Xsip
AND_EFFECT = 0.17             # latent shift giving about +0.05 AND win rate (2 properties)
AND_GROWING_EFFECT = 0.2      # the same growing with training (x h(kl)): about +0.05 at the highest KLs, 0 at KL 0
SINGLE_MARGIN_EFFECT = -0.105  # latent shift giving about -0.03 win rate (one property): the non-inferiority margin
DIFFERENCE_EXPERIMENTS = 50   # experiments whose measured difference is averaged (the report's "mean difference")


def simulate_results(rng: np.random.Generator, *, effect: float = 0.0, grow: bool = False, properties: tuple[str, ...] = ("helpful", "harmless"),
                     prompts: int = PROMPTS, samples: int = SAMPLES, seeds: int = SEEDS, checkpoints: int = CHECKPOINTS,
                     max_kl: float = MAX_KL) -> dict:
    """One simulated experiment: an LSC arm and a raw arm (``seeds`` runs each) with
    ``checkpoints`` checkpoints at KLs spread geometrically to about ``max_kl`` nats (each seed
    its own speed), the LSC arm's latent scores shifted by ``effect`` (``grow``: by ``effect``
    times the progress h(kl), so that the arms start equal)."""
    shape = (prompts, len(properties))
    difficulty = rng.normal(0.0, PROMPT_SD, size=shape)
    pi_0 = difficulty[:, None] + rng.normal(size=(prompts, samples, len(properties)))
    base_kls = np.geomspace(max_kl / 60, max_kl, checkpoints)
    runs = []
    for kind, shift in (("lsc", effect), ("raw", 0.0)):
        interaction = rng.normal(0.0, INTERACTION_SD, size=shape)
        for seed in range(seeds):
            seed_effect = rng.normal(0.0, SEED_SD, size=len(properties))
            seed_prompt = rng.normal(0.0, SEED_PROMPT_SD, size=shape)
            speed = rng.lognormal(0.0, 0.15)
            records = []
            for step, kl in enumerate(base_kls * speed):
                progress = kl / (kl + 4.0)
                mean = difficulty + progress * (LIFT + interaction + seed_effect + seed_prompt) + shift * (progress if grow else 1.0)
                judge = mean[:, None] + rng.normal(size=(prompts, samples, len(properties)))
                records.append({"step": step + 1, "win_rate": {},
                                "samples": {"judge": judge.astype(np.float32), "kl": np.full((prompts, samples), kl, np.float32)}})
            runs.append({"name": f"{kind}-{seed}", "label": f"{kind} sum", "transform": "lsc" if kind == "lsc" else "identity",
                         "aggregator": "sum", "algorithm": "rloo", "kl_coef": 0.05, "optimised": list(properties),
                         "reward_model": "bt", "seed": seed, "checkpoints": records})
    return {"experiment": "calibration", "properties": list(properties), "runs": runs,
            "pi_0": {"judge": pi_0.astype(np.float32)}}


def rates(experiments: int, *, effect: float = 0.0, grow: bool = False, single: bool = False, seed: int = 0) -> dict:
    """Verdict counts of claim 5 (``single=False``: LSC AND vs raw sum, superiority) or claim 2
    (``single=True``: one property, non-inferiority) over ``experiments`` simulated experiments;
    also the mean measured LSC - raw difference of the target win rate (first 50 experiments)."""
    rng = np.random.default_rng(seed)
    properties = ("helpful",) if single else ("helpful", "harmless")
    check = claims.claim_single_property if single else claims.claim_and
    counts: dict[str, int] = {}
    differences = []
    for index in range(experiments):
        results = simulate_results(rng, effect=effect, grow=grow, properties=properties)
        if index < DIFFERENCE_EXPERIMENTS:
            differences.append(_difference(results))
        status = check(results).status
        counts[status] = counts.get(status, 0) + 1
    return {"counts": counts, "experiments": experiments, "definite": (counts.get(HELD, 0) + counts.get(NOT_HELD, 0)) / experiments,
            "held": counts.get(HELD, 0) / experiments, "not_held": counts.get(NOT_HELD, 0) / experiments,
            "difference": float(np.mean(differences)) if differences else float("nan")}


def _difference(results: dict) -> float:
    """The measured LSC - raw difference of the target win rate, averaged over the common grid points."""
    lsc, raw, _ = claims._pairs(results, multi=None)[0]
    a, b = claims.arm_curves(results, lsc), claims.arm_curves(results, raw)
    common = claims.decide.common_points(a, b)
    return float(np.mean(a.mean[common] - b.mean[common]))


def report(experiments: int = 400, seed: int = 0) -> Iterator[str]:
    """The calibration's lines (docs/decision_rules.md, section 8)."""
    rows = [
        ("claim 5 (AND, superiority), no difference", dict(effect=0.0), "definite"),
        ("claim 5 (AND, superiority), LSC +0.05 AND win rate at every KL", dict(effect=AND_EFFECT), "held"),
        ("claim 5 (AND, superiority), LSC ahead by a gap growing with KL to about +0.05", dict(effect=AND_GROWING_EFFECT, grow=True), "held"),
        ("claim 2 (one property, non-inferiority), no difference", dict(effect=0.0, single=True), "held"),
        ("claim 2 (one property, non-inferiority), LSC worse by the margin", dict(effect=SINGLE_MARGIN_EFFECT, single=True), "held"),
    ]
    for name, kwargs, key in rows:
        measured = rates(experiments, seed=seed, **kwargs)
        yield (f"{name}: {key} rate {measured[key]:.3f} (held {measured['held']:.3f}, did not hold {measured['not_held']:.3f}; "
               f"mean measured difference {measured['difference']:+.3f}; {experiments} experiments, seed {seed})")


def main(argv: Sequence[str] | None = None) -> None:
    """Print ``report(experiments, seed)``."""
    parser = argparse.ArgumentParser(description="Calibration of alignment.evaluation's decision rules (docs/decision_rules.md)")
    parser.add_argument("--experiments", type=int, default=400, help="simulated experiments per condition")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for line in report(args.experiments, seed=args.seed):
        print(line, flush=True)


if __name__ == "__main__":
    main()
