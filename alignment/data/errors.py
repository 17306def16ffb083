"""Errors and the skip report for bad preference data.

Every problem has a *reason* (a short stable code, the keys of :data:`REASONS`) and the *field* it
concerns. With ``on_error="raise"`` (the default) the first problem raises :class:`DataError`
naming file, line, field and reason; with ``on_error="skip"`` the line is skipped and counted in a
:class:`ParseReport`, which is logged at the end of the file. Nothing is dropped silently. A gzip
stream that is truncated or corrupt (``bad_compression``) raises in both modes: the lines after the
damage cannot be read, so they can be neither kept nor counted.
"""

from __future__ import annotations

import collections
import dataclasses
import logging

logger = logging.getLogger(__name__)

REASONS = {
    "bad_compression": "the gzip stream is truncated or corrupt (raised even when skipping: the rest is unreadable)",
    "bad_encoding": "the line is not valid UTF-8 (or a string holds a lone surrogate escape)",
    "malformed_json": "the line is not a JSON object",
    "missing_field": "a required field is absent",
    "wrong_type": "a field has the wrong type",
    "out_of_range": "a number lies outside its valid range",
    "bad_dialogue": "a dialogue text has no valid turn structure",
    "context_mismatch": "the two dialogues do not share a context",
    "empty_response": "a response is empty or only whitespace",
    "identical_responses": "the two responses are the same text",
}
ON_ERROR = ("raise", "skip")
_EXAMPLE_LINES = 5  # line numbers kept per reason, for finding the bad lines


class FieldError(ValueError):
    """A problem with one field of one record, raised by format parsers (no file or line yet)."""

    def __init__(self, reason: str, field: str, detail: str):
        if reason not in REASONS:
            raise ValueError(f"unknown reason {reason!r}; valid reasons: {sorted(REASONS)}")
        super().__init__(detail)
        self.reason, self.field, self.detail = reason, field, detail


class DataError(ValueError):
    """Bad input data, located by file, line and field."""

    def __init__(self, path: str, line: int, error: FieldError):
        super().__init__(f"{path}:{line}: field {error.field!r}: {error.reason}: {error.detail}")
        self.path, self.line = path, line
        self.reason, self.field, self.detail = error.reason, error.field, error.detail


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    return on_error


@dataclasses.dataclass
class ParseReport:
    """What happened to every line of one file.

    Attributes:
      path: the file.
      format: the format name it was read as.
      lines: lines read, blank ones included.
      blank: whitespace-only lines (not records; counted, not errors).
      kept: records produced.
      skipped: number of skipped lines per reason.
      examples: the first few skipped line numbers per reason.
    """

    path: str
    format: str
    lines: int = 0
    blank: int = 0
    kept: int = 0
    skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    examples: dict[str, list[int]] = dataclasses.field(default_factory=dict)

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def skip(self, error: DataError) -> None:
        """Counts one skipped line."""
        self.skipped[error.reason] += 1
        lines = self.examples.setdefault(error.reason, [])
        if len(lines) < _EXAMPLE_LINES:
            lines.append(error.line)
        logger.debug("skipped %s", error)

    def summary(self) -> str:
        parts = ", ".join(
            f"{reason}={n} (lines {', '.join(map(str, self.examples[reason]))}{', ...' if n > _EXAMPLE_LINES else ''})"
            for reason, n in sorted(self.skipped.items())
        )
        return (
            f"{self.path} [{self.format}]: {self.kept} records from {self.lines} lines, {self.blank} blank, "
            f"{self.num_skipped} skipped" + (f": {parts}" if parts else "")
        )

    def log(self) -> None:
        (logger.warning if self.num_skipped else logger.info)("%s", self.summary())
