"""The sandbox's base distribution of assistant responses: a small stochastic grammar.

A response to a prompt of topic ``t`` is drawn as follows (probabilities in ``ResponseGrammar``):

* with probability ``p_refuse`` (``p_refuse_risky`` for risky topics) it *refuses*: one refusal
  sentence, then 0-2 harmless details of ``t``, maybe a caveat and a closing;
* otherwise it *answers*: maybe an acknowledgement; ``k`` distinct details with
  ``P(k) = detail_counts``, each drawn from the hazards of ``t`` with probability ``p_hazard``
  (risky topics) and from its harmless details otherwise; maybe a caveat (of ``t`` or generic);
  maybe an off-topic filler sentence at a random place; maybe one repeated detail; maybe a
  closing (an answer that would be empty is an acknowledgement).

Responses rarely exceed 7 sentences, which is where the gold helpfulness starts to punish
length (``alignment.sandbox.gold``): a reward model learnt from these samples never sees
the downturn.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from alignment.sandbox.bank import ACKS, CLOSINGS, FILLERS, GENERIC_CAVEATS, REFUSALS, Topic


@dataclasses.dataclass(frozen=True)
class ResponseGrammar:
    """Probabilities of the response grammar (see the module docstring)."""

    p_refuse: float = 0.05
    p_refuse_risky: float = 0.2
    p_ack: float = 0.7
    detail_counts: tuple[float, ...] = (0.08, 0.22, 0.32, 0.24, 0.14)
    p_hazard: float = 0.3
    p_caveat: float = 0.45
    p_filler: float = 0.12
    p_repeat: float = 0.08
    p_closing: float = 0.4

    def __post_init__(self):
        if not np.isclose(sum(self.detail_counts), 1.0):
            raise ValueError(f"detail_counts must sum to 1, got {self.detail_counts}")


def _pick(rng: np.random.Generator, options) -> str:
    return options[rng.integers(len(options))]


def _distinct(rng: np.random.Generator, options, k: int) -> list[str]:
    return [options[i] for i in rng.permutation(len(options))[:k]]


def sample_response(topic: Topic, rng: np.random.Generator, grammar: ResponseGrammar = ResponseGrammar()) -> str:
    """One response text to a prompt of ``topic`` (sentences joined by single spaces)."""
    g = grammar
    caveats = topic.caveats + GENERIC_CAVEATS
    if rng.random() < (g.p_refuse_risky if topic.risky else g.p_refuse):
        parts = [_pick(rng, REFUSALS)] + _distinct(rng, topic.details, int(rng.integers(3)))
        parts += [_pick(rng, caveats)] if rng.random() < g.p_caveat else []
        parts += [_pick(rng, CLOSINGS)] if rng.random() < g.p_closing else []
        return " ".join(parts)
    k = int(rng.choice(len(g.detail_counts), p=g.detail_counts))
    n_hazards = int((rng.random(k) < g.p_hazard).sum()) if topic.risky else 0
    n_hazards = min(n_hazards, len(topic.hazards))
    details = _distinct(rng, topic.details, k - n_hazards) + _distinct(rng, topic.hazards, n_hazards)
    details = [details[i] for i in rng.permutation(len(details))]
    if details and rng.random() < g.p_repeat:
        details.append(_pick(rng, details))
    body = details + ([_pick(rng, caveats)] if rng.random() < g.p_caveat else [])
    if rng.random() < g.p_filler:
        body.insert(int(rng.integers(len(body) + 1)), _pick(rng, FILLERS))
    parts = ([_pick(rng, ACKS)] if rng.random() < g.p_ack else []) + body
    parts += [_pick(rng, CLOSINGS)] if rng.random() < g.p_closing else []
    return " ".join(parts or [_pick(rng, ACKS)])
