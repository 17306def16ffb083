"""The registry of preference formats.

A format turns one decoded JSON object into a :class:`Pair` or raises
:class:`~alignment.data.errors.FieldError`. Formats are looked up by name; ``detect_format``
picks the first registered format whose required fields are all present in an object, so more
specific formats are registered first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

from alignment.data.records import Message


class Pair(NamedTuple):
    """What a format parser extracts from one object (the reader adds property and location)."""

    context: tuple[Message, ...]
    chosen: str
    rejected: str
    label: float


@dataclasses.dataclass(frozen=True)
class Format:
    """A named preference format.

    Attributes:
      name: registry name.
      parse: one JSON object -> :class:`Pair`; raises ``FieldError`` on bad input.
      fields: the required top-level keys (used for auto-detection).
      property: the default property name for records of this format.
      doc: one line per field, required and optional, saying what it holds and how it becomes
        a record's ``context``, ``chosen``, ``rejected`` and ``label``.
    """

    name: str
    parse: Callable[[dict[str, Any]], Pair]
    fields: tuple[str, ...]
    property: str
    doc: str = ""


FORMATS: dict[str, Format] = {}


def register_format(fmt: Format) -> Format:
    if fmt.name in FORMATS:
        raise ValueError(f"format {fmt.name!r} is already registered")
    FORMATS[fmt.name] = fmt
    return fmt


def get_format(name: str) -> Format:
    """The format called ``name``; raises ``KeyError`` listing the valid names."""
    try:
        return FORMATS[name]
    except KeyError:
        raise KeyError(f"unknown preference format {name!r}; valid formats: {sorted(FORMATS)}") from None


def detect_format(obj: dict[str, Any]) -> Format | None:
    """The first registered format whose required fields are all keys of ``obj``, else None."""
    return next((fmt for fmt in FORMATS.values() if set(fmt.fields) <= obj.keys()), None)
