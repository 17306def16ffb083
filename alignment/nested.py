"""Nested frozen dataclasses (configs) addressed by dotted paths, e.g. ``"kl.coef"``.

    get(config, "kl.coef")                             the value at a path
    replace(config, {"kl.coef": 0.2, "epochs": 2})   one new config, validated once
    unknown_paths(config, paths)                       the paths that name no field, with the valid ones
    leaves(config)                                     {"kl.coef": 0.05, ...} down to non-dataclass values
    changed(before, after)                             the leaf paths whose values differ
    overlap(path, other)                               one path is the other or lies inside it
    check_fields(config, positive=("num_steps",))      the declared types, and sizes >= 1

``check_fields`` is what a config's ``__post_init__`` calls, so that a value of the wrong type
(``set:learner.prompts_per_step='8'``) or a size below 1 is an error naming the field, not a
failure deep inside the program that reads it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any


def field_names(obj) -> list[str]:
    return [f.name for f in dataclasses.fields(obj)]


def get(obj, path: str):
    """The value at the dotted ``path`` of ``obj``."""
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def replace(obj, changes: Mapping[str, Any], *, where: str = ""):
    """``obj`` with each dotted path of ``changes`` set; every dataclass on the way is rebuilt
    once with all of its changes (so that validation sees them together). An unknown path is a
    ``ValueError`` naming the valid fields; a path through a ``None`` field asks for the whole
    field."""
    direct, nested = {}, {}
    for path, value in changes.items():
        head, _, rest = path.partition(".")
        if head not in field_names(obj):
            raise ValueError(f"unknown field {where}{head} of {type(obj).__name__}; valid: {', '.join(field_names(obj))}")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, inner in nested.items():
        if head in direct:
            raise ValueError(f"{where}{head} is set both as a whole and by its fields {sorted(inner)}")
        current = getattr(obj, head)
        if not dataclasses.is_dataclass(current):
            raise ValueError(f"{where}{head} is {current!r}, which has no fields {sorted(inner)}; set {where}{head} as a whole")
        direct[head] = replace(current, inner, where=f"{where}{head}.")
    return dataclasses.replace(obj, **direct)


def unknown_paths(obj, paths) -> list[str]:
    """The dotted ``paths`` that name no field of ``obj`` (descending through dataclass values;
    a path into a non-dataclass value, e.g. ``None``, is checked only up to it), one line each
    with the valid fields."""
    out = []
    for path in paths:
        current, walked = obj, ""
        for name in path.split("."):
            if not (dataclasses.is_dataclass(current) and not isinstance(current, type)):
                break
            if name not in field_names(current):
                out.append(f"{path}: {walked or type(obj).__name__} has no field {name!r} (valid: {', '.join(field_names(current))})")
                break
            current, walked = getattr(current, name), f"{walked}.{name}".lstrip(".")
    return out


def leaves(obj, prefix: str = "") -> dict[str, Any]:
    """Every leaf of ``obj`` by dotted path (a dataclass field that holds a dataclass is
    descended into; anything else, ``None`` included, is a leaf)."""
    out = {}
    for name in field_names(obj):
        value = getattr(obj, name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.update(leaves(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out


def changed(before, after) -> list[str]:
    """The leaf paths at which ``before`` and ``after`` differ (a leaf present in one only counts)."""
    old, new = leaves(before), leaves(after)
    return sorted(path for path in old.keys() | new.keys() if old.get(path, _MISSING) != new.get(path, _MISSING))


def overlap(path: str, other: str) -> bool:
    """``path`` and ``other`` name the same field or one lies inside the other."""
    return path == other or path.startswith(other + ".") or other.startswith(path + ".")


_MISSING = object()


def check_fields(obj, *, positive: Sequence[str] = (), non_negative: Sequence[str] = ()) -> None:
    """A ``TypeError`` naming ``Class.field`` when a field's value is not of its declared type
    (``int``, ``float``, ``bool``, ``str``, a dataclass, ``None`` in an optional, containers by
    kind), and a ``ValueError`` when a float is NaN, a ``positive`` field is below 1 or a
    ``non_negative`` one below 0 (``None`` passes both)."""
    name = type(obj).__name__
    for field, expected in _hints(type(obj)).items():
        value = getattr(obj, field)
        if not _matches(value, expected):
            raise TypeError(f"{name}.{field} must be {_describe(expected)}, got {value!r} ({type(value).__name__})")
        if isinstance(value, float) and math.isnan(value):
            raise ValueError(f"{name}.{field} must be a number, got nan")
    for field in positive:
        if getattr(obj, field) is not None and getattr(obj, field) < 1:
            raise ValueError(f"{name}.{field} must be >= 1, got {getattr(obj, field)!r}")
    for field in non_negative:
        if getattr(obj, field) is not None and getattr(obj, field) < 0:
            raise ValueError(f"{name}.{field} must be >= 0, got {getattr(obj, field)!r}")


@functools.cache
def _hints(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _matches(value, expected) -> bool:
    origin = typing.get_origin(expected)
    if expected is Any or isinstance(expected, typing.TypeVar):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, option) for option in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is not None:  # a container: its kind only
        if origin in (tuple, list, Sequence):
            return isinstance(value, (tuple, list))
        return isinstance(value, origin) if isinstance(origin, type) else True
    return isinstance(value, expected) if isinstance(expected, type) else True


def _describe(expected) -> str:
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        return " or ".join(_describe(option) for option in typing.get_args(expected))
    if expected is type(None):
        return "None"
    return getattr(expected, "__name__", str(expected))
