"""Preference file formats by name: parsers of one JSON object each, and auto-detection."""

from alignment.data.formats.registry import FORMATS, Format, Pair, detect_format, get_format, register_format

# Registration order is detection order: the most specific field sets first.
from alignment.data.formats import alpaca_eval, prompt_pairs, hh  # noqa: F401  isort: skip

__all__ = ["FORMATS", "Format", "Pair", "detect_format", "get_format", "register_format"]
