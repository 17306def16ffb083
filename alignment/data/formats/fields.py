"""Typed access to the fields of one JSON object, raising ``FieldError`` with the field's name."""

from __future__ import annotations

import math
from typing import Any

from alignment.data.errors import FieldError


def get_str(obj: dict[str, Any], field: str, name: str | None = None) -> str:
    """The string ``obj[field]``; errors name the field ``name`` (default ``field``, e.g. "prompt[0].role").

    A string holding a lone surrogate (a JSON escape such as ``"\\ud800"``) is not Unicode text:
    no tokenizer can encode it, so it is refused here as "bad_encoding".
    """
    name = field if name is None else name
    value = require(obj, field, name)
    if not isinstance(value, str):
        raise FieldError("wrong_type", name, f"expected a string, got {type(value).__name__}")
    return check_text(value, name)


def check_text(value: str, name: str) -> str:
    """``value``, unless it holds a lone surrogate ("bad_encoding" naming the field ``name``)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise FieldError("bad_encoding", name, f"the string holds a lone surrogate ({e.reason} at character {e.start})") from None
    return value


def get_number(obj: dict[str, Any], field: str, low: float, high: float, default: float | None = None) -> float:
    """The finite number ``obj[field]`` in [low, high]; ``default`` when absent (if given)."""
    if default is not None and field not in obj:
        return default
    value = require(obj, field)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldError("wrong_type", field, f"expected a number, got {type(value).__name__}")
    # The range test first: it is exact for integers of any size (math.isfinite overflows on 10**400).
    if not (low <= value <= high and math.isfinite(value)):
        text = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:20]}...({len(repr(value))} characters)"
        raise FieldError("out_of_range", field, f"{text} is not in [{low}, {high}]")
    return float(value)


def require(obj: dict[str, Any], field: str, name: str | None = None) -> Any:
    """``obj[field]`` of any type (errors name the field ``name``, default ``field``)."""
    if field not in obj:
        raise FieldError("missing_field", field if name is None else name, f"required field is absent (keys: {sorted(obj)})")
    return obj[field]
