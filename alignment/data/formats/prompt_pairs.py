"""Plain preference pairs: ``{"prompt", "chosen", "rejected"}`` with an optional ``"label"``.

``prompt`` is either a string (one user turn) or a list of ``{"role", "content"}`` messages
ending with a user turn. ``label`` is P(chosen preferred) in [0, 1] (default 1.0) and is kept as
given, not reoriented. Use this format to write records of any source back to disk.
"""

from __future__ import annotations

from alignment.data.errors import FieldError
from alignment.data.formats.fields import check_text, get_number, get_str, require
from alignment.data.formats.registry import Format, Pair, register_format
from alignment.data.records import ROLES, Message


def _messages(prompt) -> tuple[Message, ...]:
    if isinstance(prompt, str):
        return (Message("user", check_text(prompt, "prompt")),)
    if not isinstance(prompt, list) or not prompt:
        raise FieldError("wrong_type", "prompt", "expected a string or a non-empty list of messages")
    messages = []
    for i, message in enumerate(prompt):
        field = f"prompt[{i}]"
        if not isinstance(message, dict):
            raise FieldError("wrong_type", field, f"expected a message object, got {type(message).__name__}")
        role, content = get_str(message, "role", f"{field}.role"), get_str(message, "content", f"{field}.content")
        if role not in ROLES:
            raise FieldError("out_of_range", f"{field}.role", f"{role!r} is not one of {ROLES}")
        messages.append(Message(role, content))
    if messages[-1].role != "user":
        raise FieldError("bad_dialogue", "prompt", "the prompt does not end with a user turn")
    return tuple(messages)


def parse(obj) -> Pair:
    context = _messages(require(obj, "prompt"))
    label = get_number(obj, "label", 0.0, 1.0, default=1.0)
    return Pair(context, get_str(obj, "chosen"), get_str(obj, "rejected"), label)


def to_json(record) -> dict:
    """The JSON object of a :class:`~alignment.data.records.PreferenceRecord` in this format."""
    return {"prompt": record.messages(), "chosen": record.chosen, "rejected": record.rejected, "label": record.label}


FORMAT = register_format(
    Format(
        name="prompt_pairs",
        parse=parse,
        fields=("prompt", "chosen", "rejected"),
        property="",
        doc=(
            'prompt: a string (one user turn) or a list of {"role", "content"} messages ending with a user turn\n'
            "chosen: the preferred response\n"
            "rejected: the other response\n"
            "label: optional, P(chosen preferred) in [0, 1], default 1.0, kept as given"
        ),
    )
)
