"""Turning a preference record into token ids with a chat template.

The reward model reads exactly what the chat template renders for the whole conversation
(context plus one assistant response). It is split into a *prompt* (the context rendered with
the generation prompt, e.g. ``"...<|im_start|>assistant\\n"``) and a *completion* (the rest: the
response and the template's end-of-turn text), which are encoded separately, so the two
responses of a pair share the prompt's ids and truncation can cut the prompt only. The
tokenizer's ``encode`` must not add special tokens of its own: the template holds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from alignment.data.records import PreferenceRecord


class ChatTokenizer(Protocol):
    """What the data pipeline needs of a tokenizer (``alignment.models.tokenizer`` provides one)."""

    pad_id: int

    def encode(self, text: str) -> list[int]: ...

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str: ...


class EncodedPair(NamedTuple):
    """Unpadded, untruncated token ids of one preference pair."""

    prompt: list[int]
    chosen: list[int]
    rejected: list[int]
    label: float


def render(
    tokenizer: ChatTokenizer, messages: Sequence[dict[str, str]], responses: Sequence[str]
) -> tuple[str, list[str]]:
    """The prompt text of ``messages`` and the completion text of each response.

    Raises ``ValueError`` if the template's rendering of a full conversation does not start with
    its rendering of the prompt (the template cannot then be split into prompt and completion).
    """
    messages = list(messages)
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    completions = []
    for response in responses:
        full = tokenizer.apply_chat_template(
            messages + [{"role": "assistant", "content": response}], add_generation_prompt=False
        )
        if not full.startswith(prompt):
            raise ValueError("the chat template's full conversation does not start with its generation prompt")
        completions.append(full[len(prompt) :])
    return prompt, completions


def encode_pair(record: PreferenceRecord, tokenizer: ChatTokenizer) -> EncodedPair:
    """The token ids of the shared prompt and of both completions of ``record``."""
    prompt, (chosen, rejected) = render(tokenizer, record.messages(), (record.chosen, record.rejected))
    return EncodedPair(tokenizer.encode(prompt), tokenizer.encode(chosen), tokenizer.encode(rejected), record.label)
