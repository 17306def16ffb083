"""The general preference model's claims, measured: the ``results["gpm"]`` of an experiment.

Zhang et al., "Beyond Bradley-Terry Models: A General Preference Model for Language Model
Alignment" (arXiv 2410.02197) claim (``alignment.evaluation.claims``, GPM 1-4):

1. on cyclic preferences a > b > c > a a GPM reaches about 100 % pairwise accuracy while
   Bradley-Terry cannot exceed about 2/3;
2. s(a, b) + s(b, a) = 0 and s(a, a) = 0 exactly;
3. on transitive preferences a GPM matches Bradley-Terry's accuracy;
4. scoring K candidates of a prompt costs K forward passes (not K^2, as a pairwise model would).

``gpm_checks(gpm, bt, ...)`` measures each, nothing is asserted (here on the default sandbox,
150-step proxies; the "helpful" GPM)::

    {"cyclic_accuracy": {"gpm": 1.0, "bt": 0.5},            # tiny models, synthetic cycles
     "skew_symmetry_max_error": 0.0,                         # the experiment's GPM, real responses
     "transitive_accuracy": {"gpm": 0.844, "bt": 0.815},     # held-out pairs of the GPM's property
     "forward_passes_for_k": {"4": 4, "16": 16},             # backbone rows while scoring K
     "details": {"property": "helpful", "skew_pairs": 128, "lambda_spread": 1.2e-07,
                 "heldout_pairs": 712, "seconds": 12.6}}

(1) trains a tiny BT model and GPM on ``alignment.training.synthetic.cyclic_preferences``
(seconds on CPU once compiled): what the two families can fit, independent of the experiment. (2) scores
groups of responses with the experiment's trained ``GPMReward`` and compares the matrix that
GPO sums (``group_preference_matrix``) with its transpose and diagonal; ``details`` adds
lambda's spread over a prompt's rows (rows padded differently may round lambda differently, by
about 1e-7, so the matrix reads one row's). (3) is the pairwise
accuracy of the trained GPM and of the BT proxy's head for the same property on held-out pairs
that neither was trained on (``None`` without such pairs). (4) counts the rows that enter the
backbone while a fresh ``GPMReward`` (so that its program is traced again) scores K candidates
of one prompt.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterable, Sequence

import jax
import numpy as np

from alignment.data import RewardBatch
from alignment.parallel import to_host
from alignment.rl.scoring import Chat, GPMReward, ModelReward, group_preference_matrix
from alignment.training.reward_model import pair_accuracies
from alignment.training.synthetic import fit_cyclic

FORWARD_KS = (4, 16)


def cyclic_accuracy(*, steps: int = 150, seed: int = 0) -> dict[str, float]:
    """``{"gpm": a, "bt": b}``: accuracies of a tiny GPM and BT model fitted to cyclic preferences."""
    return fit_cyclic(steps=steps, seed=seed).accuracy


def skew_symmetry(gpm: GPMReward, chats: Sequence[Chat], responses: Sequence[Sequence[str]]) -> dict[str, float]:
    """Skew symmetry over all ordered pairs (a, a included) of the responses to each chat
    (``responses[i]``: the same number for every chat):

    * ``max_error``: max |s(a, b) + s(b, a)| and |s(a, a)| of the matrix GPO sums
      (``group_preference_matrix``, one lambda(x) per chat);
    * ``lambda_spread``: max |lambda_a - lambda_b| over rows of one chat (lambda depends on the
      prompt only, but rows padded to different lengths may round differently, which is why the
      matrix reads one row's);
    * ``pairs``: the ordered pairs scored.
    """
    sizes = {len(group) for group in responses}
    if len(chats) != len(responses) or len(sizes) != 1 or not chats:
        raise ValueError(f"need one equally sized group of responses per chat; got {len(chats)} chats and group sizes {sorted(sizes)}")
    (size,) = sizes
    v, weights = gpm.embed([chat for chat in chats for _ in range(size)], [text for group in responses for text in group])
    grouped = weights.reshape(-1, size, weights.shape[-1])
    scores, lambdas = to_host((group_preference_matrix(v, weights, size), grouped))

    def error(s):
        return float(max(np.abs(s + s.transpose(0, 2, 1)).max(), np.abs(np.diagonal(s, axis1=1, axis2=2)).max()))

    spread = float((lambdas.max(axis=1) - lambdas.min(axis=1)).max())
    return {"max_error": error(scores), "lambda_spread": spread, "pairs": int(scores.size)}


@contextlib.contextmanager
def count_rows(module_type: type, method: str = "hidden_states"):
    """Records ``tokens.shape[0]`` each time ``module_type.<method>(tokens, ...)`` is called (or
    traced: under ``jit`` a call is recorded when the program is traced)."""
    rows: list[int] = []
    own = method in vars(module_type)
    original = getattr(module_type, method)

    @functools.wraps(original)
    def counted(self, tokens, *args, **kwargs):
        rows.append(int(tokens.shape[0]))
        return original(self, tokens, *args, **kwargs)

    setattr(module_type, method, counted)
    try:
        yield rows
    finally:
        if own:
            setattr(module_type, method, original)
        else:
            delattr(module_type, method)


def forward_rows(gpm: GPMReward, chat: Chat, candidates: Sequence[str]) -> int:
    """Backbone rows run while ``gpm``'s model scores ``candidates`` of one prompt against each other.

    A fresh ``GPMReward`` on the same model traces its program anew, so every backbone call of
    the one program that scores the group is recorded; the program runs once.
    """
    fresh = GPMReward(gpm.model, gpm.tokenizer, gpm.properties[0], max_length=gpm.max_length,
                      mesh=gpm.mesh, rules=gpm.rules)
    with count_rows(type(gpm.model.backbone)) as rows:
        scores = fresh([chat] * len(candidates), list(candidates), len(candidates))
    jax.block_until_ready(scores)  # the scores are computed, not only traced
    if fresh.num_compilations != 1:
        raise RuntimeError(f"expected the scoring program to be traced once, got {fresh.num_compilations}")
    return sum(rows)


def heldout_correct(reward: GPMReward | ModelReward, prop: str, batches: Iterable[RewardBatch]) -> np.ndarray:
    """``[pairs]`` per held-out pair: whether the model behind ``reward`` (its head for ``prop``)
    prefers the labelled side (1, 0, or 1/2 for a tied label); its mean is the accuracy."""
    objective = "gpm" if isinstance(reward, GPMReward) else "bt"
    return pair_accuracies(reward.model, ((prop, batch) for batch in batches), objective=objective,
                           properties=reward.properties, mesh=reward.mesh, rules=reward.rules)[prop]


def gpm_checks(
    gpm: GPMReward,
    bt: Sequence[ModelReward] = (),
    *,
    chats: Sequence[Chat],
    responses: Sequence[Sequence[str]],
    heldout: Iterable[RewardBatch] | None = None,
    ks: Sequence[int] = FORWARD_KS,
    cyclic_steps: int = 150,
    seed: int = 0,
) -> dict:
    """The four GPM measurements (module docstring) as ``results["gpm"]``.

    Args:
      gpm: the experiment's trained GPM proxy (its one property is the property checked).
      bt: the Bradley-Terry proxies; the one with a head for that property is compared on
        ``heldout`` (none: no transitive comparison).
      chats, responses: real responses to score pairwise, a group per chat (e.g. pi_0's samples
        on held-out prompts); the K candidates of the forward-pass count are drawn from them
        (cycled when there are fewer than K) and scored for ``chats[0]``.
      heldout: pairs of that property neither proxy was trained on (``None``: not measured).
      ks: the group sizes K whose forward passes are counted.
      cyclic_steps, seed: the training of the tiny cyclic models.
    """
    start = time.perf_counter()
    prop = gpm.properties[0]
    out: dict = {"cyclic_accuracy": cyclic_accuracy(steps=cyclic_steps, seed=seed)}
    details: dict = {"property": prop}
    skew = skew_symmetry(gpm, chats, responses)
    out["skew_symmetry_max_error"] = skew["max_error"]
    details.update(skew_pairs=skew["pairs"], lambda_spread=skew["lambda_spread"])

    pool = [text for group in responses for text in group]
    out["forward_passes_for_k"] = {str(k): forward_rows(gpm, chats[0], [pool[i % len(pool)] for i in range(k)]) for k in ks}

    judge = next((fn for fn in bt if prop in fn.properties), None)
    out["transitive_accuracy"], details["heldout_pairs"] = None, 0
    if heldout is not None and judge is not None:
        batches = list(heldout)
        if batches:
            correct = {"gpm": heldout_correct(gpm, prop, batches), "bt": heldout_correct(judge, prop, batches)}
            out["transitive_accuracy"] = {kind: float(c.mean()) for kind, c in correct.items()}
            out["transitive_correct"] = {kind: c.tolist() for kind, c in correct.items()}  # paired per pair (McNemar's test)
            details["heldout_pairs"] = int(correct["gpm"].size)
    details["seconds"] = round(time.perf_counter() - start, 2)
    return {**out, "details": details}
