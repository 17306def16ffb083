"""Preference pairs labelled by the Bradley-Terry model of a gold utility, and their splits.

For property ``p`` with gold utility ``g_p`` and two base responses ``a, b`` to prompt ``x``::

    P(a preferred to b) = sigmoid(beta * (g_p(x, a) - g_p(x, b)))

and the label is one draw from it (so labels are noisy: the worse response wins with the
complementary probability). Each pair becomes a ``PreferenceRecord`` with ``chosen`` = the
winner and a hard ``label = 1.0``. The gold model's own accuracy on these labels,
``E[1{g(chosen) > g(rejected)} + 0.5 * 1{g(chosen) = g(rejected)}]``, is the ceiling of any
learnt reward model's accuracy (about ``E[sigmoid(beta * |g(a) - g(b)|)]``).

Splits reuse ``alignment.data.splits``: a prompt's split is a hash of its context key, so
pairs and prompts of one prompt always fall in the same split.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from alignment.data.records import Message, PreferenceRecord
from alignment.sandbox.gold import PROPERTIES, gold_utilities
from alignment.sandbox.prompts import Prompt
from alignment.sandbox.responses import ResponseGrammar, sample_response
from alignment.data.splits import assign_split


def context(prompt: Prompt) -> tuple[Message, ...]:
    """The one-turn chat context of a sandbox prompt."""
    return (Message("user", prompt.text),)


def _distinct_pair(prompt: Prompt, rng: np.random.Generator, grammar: ResponseGrammar, tries: int = 20) -> tuple[str, str]:
    a = sample_response(prompt.topic, rng, grammar)
    for _ in range(tries):
        b = sample_response(prompt.topic, rng, grammar)
        if b != a:
            return a, b
    raise RuntimeError(f"the response grammar produced the same text {tries} times for {prompt.text!r}")


def label_pairs(
    prompts: Sequence[Prompt],
    prop: str,
    rng: np.random.Generator,
    *,
    pairs_per_prompt: int,
    beta: float,
    source: str,
    grammar: ResponseGrammar = ResponseGrammar(),
) -> list[PreferenceRecord]:
    """``pairs_per_prompt`` BT-labelled pairs of distinct base responses per prompt for ``prop``.

    Records carry ``property=prop``, ``source`` and ``line`` = 1-based index in the returned list.
    """
    if prop not in PROPERTIES:
        raise KeyError(f"unknown property {prop!r}; valid properties: {PROPERTIES}")
    records = []
    for prompt in prompts:
        for _ in range(pairs_per_prompt):
            a, b = _distinct_pair(prompt, rng, grammar)
            chosen, rejected = label_pair(prompt.text, a, b, prop, rng, beta)
            records.append(PreferenceRecord(context(prompt), chosen, rejected, 1.0, prop, source, len(records) + 1))
    return records


def label_pair(prompt: str, a: str, b: str, prop: str, rng: np.random.Generator, beta: float) -> tuple[str, str]:
    """``(chosen, rejected)`` of responses ``a, b`` to the prompt text ``prompt``: one draw of
    ``P(a preferred to b) = sigmoid(beta * (g_p(a) - g_p(b)))`` (module docstring)."""
    margin = gold_utilities(prompt, a)[prop] - gold_utilities(prompt, b)[prop]
    a_wins = rng.random() < 1.0 / (1.0 + np.exp(-beta * margin))
    return (a, b) if a_wins else (b, a)


def gold_margins(records: Iterable[PreferenceRecord]) -> np.ndarray:
    """``g_p(chosen) - g_p(rejected)`` per record, ``p`` = the record's property."""
    margins = []
    for r in records:
        prompt = r.context[-1].content
        margins.append(gold_utilities(prompt, r.chosen)[r.property] - gold_utilities(prompt, r.rejected)[r.property])
    return np.asarray(margins, dtype=np.float64)


def gold_accuracy(records: Iterable[PreferenceRecord]) -> float:
    """Accuracy of the gold utility on the (noisy) labels, ties counting one half."""
    margins = gold_margins(records)
    if margins.size == 0:
        raise ValueError("gold_accuracy needs at least one record")
    return float(np.mean((margins > 0) + 0.5 * (margins == 0)))


def split_prompts(prompts: Iterable[Prompt], fractions: Mapping[str, float], salt: str = "") -> dict[str, list[Prompt]]:
    """Prompts grouped by split, the same split as their records get from ``split_records``."""
    groups: dict[str, list[Prompt]] = {name: [] for name in fractions}
    for prompt in prompts:
        key = PreferenceRecord(context(prompt), "", "").context_key()
        groups[assign_split(key, fractions, salt)].append(prompt)
    return groups
