"""A tiny name → builder registry, shared by models and data sources.

Example:
    >>> r = Registry("widget")
    >>> @r.register("small")
    ... def small(): return 1
    >>> r.get("small")()
    1
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from striate.errors import StriateError

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """Maps names to builders. Registering a name twice raises; looking up a missing one
    raises a :class:`StriateError` that lists the close matches."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def decorator(fn: T) -> T:
            key = name or fn.__name__
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._items[key] = fn
            return fn

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise StriateError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
