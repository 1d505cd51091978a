"""The registry idiom used across roadshift: a name -> factory table with a bare decorator.

``sim`` may not import torch and ``perception`` may not import ``sim``, so each package keeps
its own copy of this ~50-line class; keep them identical.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    """A name that is not registered; the message lists the close matches and valid choices."""


class Registry(Generic[T]):
    """Maps names to factories (functions or classes) plus optional metadata."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._meta: dict[str, Any] = {}

    def register(self, obj: T | None = None, *, name: str | None = None, meta: Any = None) -> Any:
        """Register ``obj`` under ``name`` (default: its ``__name__``); usable bare or called."""

        def deco(item: T) -> T:
            key = name or getattr(item, "__name__", None)
            if not key:
                raise TypeError(f"cannot infer a {self.kind} name for {item!r}; pass name=")
            self._items[key] = item
            if meta is not None:
                self._meta[key] = meta
            return item

        return deco(obj) if obj is not None else deco

    def names(self) -> list[str]:
        return sorted(self._items)

    def get(self, name: str) -> T:
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a string, got {type(name).__name__}")
        try:
            return self._items[name]
        except KeyError:
            raise self.unknown(name) from None

    def meta(self, name: str) -> Any:
        self.get(name)
        return self._meta.get(name)

    def unknown(self, name: str) -> UnknownNameError:
        close = difflib.get_close_matches(name, self.names(), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return UnknownNameError(
            f"unknown {self.kind} {name!r}{hint}; valid choices: {', '.join(self.names())}"
        )

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


def call_ignoring_none(factory: Callable[..., T], **kwargs: Any) -> T:
    """Call ``factory`` dropping ``None`` overrides, so a CLI can pass options blindly."""
    return factory(**{k: v for k, v in kwargs.items() if v is not None})
