"""The preference record: one context, two responses, and how strongly the first is preferred."""

from __future__ import annotations

import dataclasses
import json
import math

ROLES = ("user", "assistant", "system")


@dataclasses.dataclass(frozen=True)
class Message:
    """One chat turn. ``role`` is one of :data:`ROLES`."""

    role: str
    content: str

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"message role must be one of {ROLES}, got {self.role!r}")
        if not isinstance(self.content, str):
            raise TypeError(f"message content must be a str, got {type(self.content).__name__}")

    def as_dict(self) -> dict[str, str]:
        """The ``{"role", "content"}`` dict that chat templates expect."""
        return {"role": self.role, "content": self.content}


@dataclasses.dataclass(frozen=True)
class PreferenceRecord:
    """A pairwise preference between two responses to the same context.

    Attributes:
      context: the conversation so far, ending with a user turn.
      chosen: the response text that is (more likely) preferred.
      rejected: the other response text.
      label: P(``chosen`` preferred to ``rejected``) in [0, 1]; 1.0 for a hard label.
      property: what the preference judges, e.g. "harmless" or "helpful".
      source: the file the record was read from ("" when built in memory).
      line: the 1-based line number in ``source`` (0 when built in memory).
    """

    context: tuple[Message, ...]
    chosen: str
    rejected: str
    label: float = 1.0
    property: str = ""
    source: str = ""
    line: int = 0

    def __post_init__(self):
        if not self.context or self.context[-1].role != "user":
            raise ValueError("a preference context must be non-empty and end with a user turn")
        if not all(isinstance(m, Message) for m in self.context):
            raise TypeError("context must be a tuple of Message")
        if not (isinstance(self.label, (int, float)) and math.isfinite(self.label) and 0.0 <= self.label <= 1.0):
            raise ValueError(f"label must be a probability in [0, 1], got {self.label!r}")

    def messages(self) -> list[dict[str, str]]:
        """The context as a list of ``{"role", "content"}`` dicts, for chat templates."""
        return [m.as_dict() for m in self.context]

    def context_key(self) -> str:
        """A canonical text of the context: equal contexts give equal keys (used for splits)."""
        return json.dumps([[m.role, m.content] for m in self.context], ensure_ascii=False)
