"""Anthropic HH-RLHF: ``{"chosen": dialogue, "rejected": dialogue}``.

Each dialogue is ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``; the two share every turn but the last
assistant turn, which holds the two compared responses.

Where the context ends: at the last ``"\\n\\nAssistant:"`` marker that both dialogues have at the same
offset with the same text before it. This is the last marker of each dialogue in almost every
pair; the exception is a response that itself continues the dialogue (it contains a further
``"\\n\\nAssistant:"``, as a handful of HH responses do), which stays inside the response.

Whitespace: every turn marker (``"\\n\\nHuman:"``, ``"\\n\\nAssistant:"``) is followed by one space
in HH; exactly that one separator space is removed from the start of each message and of each
response, and nothing else is stripped (not even trailing whitespace). So
:func:`format_dialogue` rebuilds the original text exactly, and a response of ``" "`` becomes
the empty string (rejected as ``empty_response`` unless empty responses are allowed).

Consecutive turns of the same role occur in the raw data (a few contexts have two assistant
turns in a row); they are kept as they are, never merged.
"""

from __future__ import annotations

import re

from alignment.data.errors import FieldError
from alignment.data.formats.fields import get_str
from alignment.data.formats.registry import Format, Pair, register_format
from alignment.data.records import Message

_ROLES = {"Human": "user", "Assistant": "assistant"}
_NAMES = {role: name for name, role in _ROLES.items()}
_ASSISTANT = "\n\nAssistant:"
_TURN = re.compile(r"\n\n(Human|Assistant):")


def _strip_separator(text: str) -> str:
    return text.removeprefix(" ")


def _split_turns(context: str, field: str) -> tuple[Message, ...]:
    """The messages of a context text that starts with a turn marker."""
    markers = list(_TURN.finditer(context))
    if not markers or markers[0].start() != 0:
        raise FieldError("bad_dialogue", field, 'the dialogue does not start with "\\n\\nHuman:"')
    ends = [m.start() for m in markers[1:]] + [len(context)]
    return tuple(Message(_ROLES[m.group(1)], _strip_separator(context[m.end() : end])) for m, end in zip(markers, ends))


def _context_end(chosen: str, rejected: str) -> int:
    """Offset of the last assistant marker shared by both dialogues (see the module docstring)."""
    for field, text in (("chosen", chosen), ("rejected", rejected)):
        if _ASSISTANT not in text:
            raise FieldError("bad_dialogue", field, 'the dialogue has no "\\n\\nAssistant:" turn')
    end = chosen.rfind(_ASSISTANT)
    while end >= 0 and chosen[: end + len(_ASSISTANT)] != rejected[: end + len(_ASSISTANT)]:
        end = chosen.rfind(_ASSISTANT, 0, end)
    if end < 0:
        raise FieldError("context_mismatch", "rejected", "the dialogues share no context before an assistant turn")
    return end


def parse(obj) -> Pair:
    chosen, rejected = get_str(obj, "chosen"), get_str(obj, "rejected")
    end = _context_end(chosen, rejected)
    context = _split_turns(chosen[:end], "chosen")
    if context[-1].role != "user":
        raise FieldError("bad_dialogue", "chosen", "the shared context does not end with a Human turn")
    start = end + len(_ASSISTANT)
    return Pair(context, _strip_separator(chosen[start:]), _strip_separator(rejected[start:]), 1.0)


def format_dialogue(context: tuple[Message, ...], response: str) -> str:
    """The HH dialogue text of ``context`` followed by an assistant ``response`` (inverse of parsing)."""
    turns = [*((m.role, m.content) for m in context), ("assistant", response)]
    return "".join(f"\n\n{_NAMES[role]}: {content}" for role, content in turns)


FORMAT = register_format(
    Format(
        name="hh",
        parse=parse,
        fields=("chosen", "rejected"),
        property="harmless",
        doc=(
            'chosen: the whole dialogue "\\n\\nHuman: ...\\n\\nAssistant: ..." ending with the preferred response\n'
            "rejected: the same dialogue ending with the other response; the turns both share are the context\n"
            "(no label field: every record's label is 1.0)"
        ),
    )
)
