"""One call per checkpoint: judge scores, KLs and proxy rewards -> the checkpoint record of the results.

The experiment runner samples m responses of the policy and m' of pi_0 on each of the n held-out
prompts, scores them with the judge (and the proxy reward models), and hands the arrays to
``evaluate_policy``; the returned dict is one entry of a run's ``"checkpoints"`` (see the
package docstring). The record keeps the per-sample arrays under ``"samples"`` (float32, in
memory; ``save_results`` writes them to ``samples.npz``) for the decisions between methods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from alignment.evaluation.stats import (
    DEFAULT_LEVEL,
    _same_prompts,
    and_loss_rate,
    and_win_rate,
    mean_estimate,
    per_prompt_rates,
    prompt_improvement,
    ranks,
    win_rate,
)


def _scores(x, name: str, properties: Sequence[str], shape: tuple[int, ...] | None = None) -> np.ndarray:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 3 or array.shape[-1] != len(properties):
        raise ValueError(f"evaluate_policy: {name} must be [prompts, samples, properties] with {len(properties)} "
                         f"properties {list(properties)}, got shape {array.shape}")
    if shape is not None and array.shape != shape:
        raise ValueError(f"evaluate_policy: {name} has shape {array.shape} but new_judge has shape {shape}")
    return array


def evaluate_policy(new_judge, old_judge, properties: Sequence[str], *, kl=None, new_proxy=None, base_reward=None,
                    optimised: Sequence[str] | None = None, step: int | None = None, level: float = DEFAULT_LEVEL) -> dict:
    """The checkpoint record: win and loss rates over pi_0 per property and for AND, KL, means, samples.

    ``new_judge`` ``[n, m, P]``, ``old_judge`` ``[n, m', P]``: judge scores of m samples of the
    policy and m' samples of pi_0 (m' may differ from m) on the same n held-out prompts. Win
    rates compare each policy sample with each pi_0 sample of its prompt (all m·m' pairs; a tie
    on a property counts 1/2; the AND of a pair is the product of its per-property wins), per
    prompt first, then the interval clustered by prompt. ``kl``: ``[n, m]`` per-response sum over
    tokens of log pi - log pi_0 for the policy's samples. ``new_proxy``: the proxy reward models'
    scores of the policy's samples ``[n, m, P]``. ``base_reward``: ``[n, P]`` the prompt's base
    reward (e.g. r_ref(x)) for the per-prompt diagnostics. ``optimised``: the properties in the
    run's utility (default: all); the diagnostics use that property when there is one, else the
    AND over them, with a prompt's base score the minimum over those properties of its
    base-reward rank (a prompt is low when it is low on some property); a prompt's gain is
    (win - loss) / 2 (``stats.prompt_improvement``).

    Keys present only when their input is given: ``step``, ``kl``, ``proxy_mean``, ``prompts``.
    ``samples``: ``{"judge": new_judge, "proxy"?: new_proxy, "kl"?: kl}`` as float32 arrays.
    """
    properties = list(properties)
    new = _scores(new_judge, "new_judge", properties)
    old = _scores(old_judge, "old_judge", properties)
    _same_prompts(new, old, 3, "evaluate_policy")
    record: dict = {} if step is None else {"step": int(step)}
    samples = {"judge": new.astype(np.float32)}
    if kl is not None:
        kl = np.asarray(kl, dtype=np.float64)
        if kl.shape != new.shape[:2]:
            raise ValueError(f"evaluate_policy: kl must be [prompts, samples] = {new.shape[:2]}, got shape {kl.shape}")
        record["kl"] = mean_estimate(kl, level)
        samples["kl"] = kl.astype(np.float32)
    record["win_rate"] = {p: win_rate(new[..., i], old[..., i], level) for i, p in enumerate(properties)}
    record["win_rate"]["and"] = and_win_rate(new, old, level)
    record["loss_rate"] = {p: win_rate(old[..., i], new[..., i], level) for i, p in enumerate(properties)}
    record["loss_rate"]["and"] = and_loss_rate(new, old, level)
    record["judge_mean"] = {p: float(new[..., i].mean()) for i, p in enumerate(properties)}
    if new_proxy is not None:
        proxy = _scores(new_proxy, "new_proxy", properties, new.shape)
        record["proxy_mean"] = {p: float(proxy[..., i].mean()) for i, p in enumerate(properties)}
        samples["proxy"] = proxy.astype(np.float32)
    if base_reward is not None:
        record["prompts"] = _prompt_diagnostics(new, old, base_reward, properties, optimised or properties, level)
    record["samples"] = samples
    return record


def target_base(base_reward, properties: Sequence[str], optimised: Sequence[str]) -> np.ndarray:
    """``[n]``: the base score that splits prompts for the run's target: the base reward of its
    property, or for the AND of several the minimum over them of the per-property ranks."""
    base = np.asarray(base_reward, dtype=np.float64)
    index = [list(properties).index(p) for p in optimised]
    if len(index) == 1:
        return base[:, index[0]]
    return np.min([ranks(base[:, i]) for i in index], axis=0)


def _prompt_diagnostics(new, old, base_reward, properties, optimised, level) -> dict:
    base = np.asarray(base_reward, dtype=np.float64)
    if base.shape != (new.shape[0], len(properties)):
        raise ValueError(f"evaluate_policy: base_reward must be [prompts, properties] = {(new.shape[0], len(properties))}, got shape {base.shape}")
    unknown = [p for p in optimised if p not in properties]
    if unknown:
        raise ValueError(f"evaluate_policy: optimised names {unknown}, not among the properties {properties}")
    index = [properties.index(p) for p in optimised]
    win, loss = per_prompt_rates(new, old, index[0] if len(index) == 1 else index)
    diagnostics = prompt_improvement((win - loss) / 2, target_base(base, properties, optimised), level)
    return {"target": optimised[0] if len(index) == 1 else "and", **diagnostics}


def summarize_base(judge, properties: Sequence[str], *, proxy=None) -> dict:
    """The results' ``"base"`` entry: pi_0's mean judge (and proxy) score per property.

    ``judge``, ``proxy``: ``[prompts, samples, properties]`` scores of pi_0's samples.
    """
    properties = list(properties)
    judge = _scores(judge, "judge", properties)
    summary = {"judge_mean": {p: float(judge[..., i].mean()) for i, p in enumerate(properties)}}
    if proxy is not None:
        proxy = _scores(proxy, "proxy", properties, judge.shape)
        summary["proxy_mean"] = {p: float(proxy[..., i].mean()) for i, p in enumerate(properties)}
    return summary


def best_of_k_kl(k: int) -> float:
    """log k - (k - 1) / k: the usual analytic KL(best-of-k || pi_0) in nats, an upper bound on the
    true value (Beirami et al., "Theoretical guarantees on the best-of-n alignment policy",
    arXiv 2401.01879)."""
    if k < 1:
        raise ValueError(f"best_of_k_kl: k must be >= 1, got {k}")
    return math.log(k) - (k - 1) / k
