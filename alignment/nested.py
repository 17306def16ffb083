"""Nested frozen dataclasses (configs) addressed by dotted paths, e.g. ``"kl.coef"``.

    get(config, "kl.coef")                             the value at a path
    replace(config, {"kl.coef": 0.2, "epochs": 2})   one new config, validated once
    unknown_paths(config, paths)                       the paths that name no field, with the valid ones
    leaves(config)                                     {"kl.coef": 0.05, ...} down to non-dataclass values
    changed(before, after)                             the leaf paths whose values differ
    overlap(path, other)                               one path is the other or lies inside it
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
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
