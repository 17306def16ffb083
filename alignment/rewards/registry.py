"""Name -> value registries: transforms, aggregators and reference estimators here, the RL
algorithms in ``alignment.rl.algorithms``.

Every experiment names its choices ("lsc", "lsc_and", "empirical"), so that a config sweep
over names is an ablation. ``get(name, **params)`` binds keyword parameters with
``functools.partial``: ``get_aggregator("softmin", temperature=0.5)``; a name the function
does not take raises ``ValueError`` at once.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable


class Registry:
    """A named collection of functions (or other values) of one kind (e.g. "transform")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._functions: dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[Callable], Callable]:
        """Decorator adding a function under ``name``; names must be unique."""

        def add(fn: Callable) -> Callable:
            if name in self._functions:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._functions[name] = fn
            return fn

        return add

    @property
    def names(self) -> list[str]:
        return sorted(self._functions)

    def get(self, name: str, **params) -> Callable:
        """The function registered as ``name``, with ``params`` bound as keywords."""
        if name not in self._functions:
            raise ValueError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.names)}")
        fn = self._functions[name]
        if not params:
            return fn
        accepted = list(inspect.signature(fn).parameters)
        unknown = [p for p in params if p not in accepted]
        if unknown:
            raise ValueError(f"{self.kind} {name!r} takes no parameter {', '.join(map(repr, unknown))}; its parameters: {', '.join(accepted)}")
        return functools.partial(fn, **params)

    def resolve(self, name_or_fn: str | Callable) -> Callable:
        """Looks up a name, or passes a callable (e.g. a bound ``get`` result) through."""
        return name_or_fn if callable(name_or_fn) else self.get(name_or_fn)


TRANSFORMS = Registry("transform")
AGGREGATORS = Registry("aggregator")
REFERENCES = Registry("reference")
