"""The registry idiom used across roadshift: a name -> factory table with a bare decorator.

One implementation for every extension point (corruptions, schedule kinds, models, adaptation
methods). Registering a name that is already taken is an error unless ``override=True``: a
plug-in must never silently replace a built-in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from sim.common.names import UnknownNameError, unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories (functions or classes) plus optional metadata."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._meta: dict[str, Any] = {}

    def register(
        self,
        obj: T | None = None,
        *,
        name: str | None = None,
        meta: Any = None,
        override: bool = False,
    ) -> Any:
        """Register ``obj`` under ``name`` (default: its ``__name__``); usable bare or called.

        A name that is already registered raises ``ValueError`` unless ``override=True``.
        """

        def deco(item: T) -> T:
            key = name or getattr(item, "__name__", None)
            if not key:
                raise TypeError(f"cannot infer a {self.kind} name for {item!r}; pass name=")
            self.check_free(key, override)
            self._items[key] = item
            self._meta.pop(key, None)
            if meta is not None:
                self._meta[key] = meta
            return item

        return deco(obj) if obj is not None else deco

    def check_free(self, name: str, override: bool = False) -> None:
        """Raise ``ValueError`` if ``name`` is taken and ``override`` is not set."""
        if name in self._items and not override:
            raise ValueError(
                f"{self.kind} {name!r} is already registered; pass override=True to replace it"
            )

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
        """The error for an unregistered ``name``: close matches and the valid choices."""
        return unknown_name(self.kind, name, self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


def call_ignoring_none(factory: Callable[..., T], **kwargs: Any) -> T:
    """Call ``factory`` dropping ``None`` overrides, so a CLI can pass options blindly."""
    return factory(**{k: v for k, v in kwargs.items() if v is not None})
