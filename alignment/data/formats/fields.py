"""Typed access to the fields of one JSON object, raising ``FieldError`` with the field's name."""

from __future__ import annotations

import math
from typing import Any

from alignment.data.errors import FieldError


def get_str(obj: dict[str, Any], field: str) -> str:
    """The string ``obj[field]``."""
    value = require(obj, field)
    if not isinstance(value, str):
        raise FieldError("wrong_type", field, f"expected a string, got {type(value).__name__}")
    return value


def get_number(obj: dict[str, Any], field: str, low: float, high: float, default: float | None = None) -> float:
    """The finite number ``obj[field]`` in [low, high]; ``default`` when absent (if given)."""
    if default is not None and field not in obj:
        return default
    value = require(obj, field)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldError("wrong_type", field, f"expected a number, got {type(value).__name__}")
    if not (math.isfinite(value) and low <= value <= high):
        raise FieldError("out_of_range", field, f"{value!r} is not in [{low}, {high}]")
    return float(value)


def require(obj: dict[str, Any], field: str) -> Any:
    """``obj[field]`` of any type."""
    if field not in obj:
        raise FieldError("missing_field", field, f"required field is absent (keys: {sorted(obj)})")
    return obj[field]
