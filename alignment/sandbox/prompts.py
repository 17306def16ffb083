"""User prompts: ``prefix + request(subject) + suffix`` over every topic of the bank.

With 4 prefixes, 3 requests, 6 subjects and 2 suffixes per topic there are 144 distinct prompts
per topic and 1728 in all; half of the topics are risky.
"""

from __future__ import annotations

import dataclasses
import functools

from alignment.sandbox.bank import PROMPT_PREFIXES, PROMPT_SUFFIXES, TOPICS, Topic


@dataclasses.dataclass(frozen=True)
class Prompt:
    """A user request and the topic it is about."""

    text: str
    topic: Topic


@functools.cache
def all_prompts() -> tuple[Prompt, ...]:
    """Every prompt of the grammar, in a fixed order (topic, request, subject, prefix, suffix)."""
    prompts = []
    for topic in TOPICS:
        for request in topic.requests:
            for subject in topic.subjects:
                for prefix in PROMPT_PREFIXES:
                    for suffix in PROMPT_SUFFIXES:
                        words = (prefix, request.format(x=subject), suffix)
                        prompts.append(Prompt(" ".join(w for w in words if w), topic))
    return tuple(prompts)


@functools.cache
def _topic_by_text() -> dict[str, Topic]:
    return {p.text: p.topic for p in all_prompts()}


def topic_of(prompt: str) -> Topic:
    """The topic of a sandbox prompt text; ``KeyError`` for a text the grammar does not produce."""
    try:
        return _topic_by_text()[" ".join(prompt.split())]
    except KeyError:
        raise KeyError(f"not a sandbox prompt: {prompt[:80]!r} (prompts come from alignment.sandbox.all_prompts())") from None
