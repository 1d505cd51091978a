"""Finding adaptation methods: the built-in registry, installed plugins, ``module:Class`` paths.

Installed packages contribute methods through the entry-point group ``roadshift.adapters``
(name = the method's name, value = ``"module:Class"``). Entry points are read on every
lookup, so a package installed while the process runs is seen; a plugin whose import fails
is reported by :func:`adapter_info` and by :func:`create_adapter` for that name only.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from sim.common import Registry, load_object, unknown_name

from ._adapt import Adapter, MethodTraits

ENTRY_POINT_GROUP = "roadshift.adapters"
_BUILTIN: Registry[type[Adapter]] = Registry("adaptation method")
_LOADED: dict[tuple[str, str], type[Adapter]] = {}


def register_adapter(
    cls: type[Adapter] | None = None, *, name: str | None = None, override: bool = False
) -> Any:
    """Register an :class:`Adapter` subclass (bare decorator or ``(name=..., override=...)``).

    The name defaults to the class's ``name`` attribute, else its lower-cased class name. A name
    that is already registered raises ``ValueError`` unless ``override=True``."""

    def deco(klass: type[Adapter]) -> type[Adapter]:
        if not (isinstance(klass, type) and issubclass(klass, Adapter)):
            raise TypeError(f"register_adapter expects an Adapter subclass, got {klass!r}")
        key = name or klass.__dict__.get("name") or klass.__name__.lower()
        if not isinstance(key, str) or not key or ":" in key:
            raise ValueError(f"adaptation method name must be a string without ':', got {key!r}")
        _BUILTIN.check_free(key, override)
        if klass.__dict__.get("name") is None:
            klass.name = key
        _BUILTIN.register(klass, name=key, override=override)
        return klass

    return deco(cls) if cls is not None else deco


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)  # first on sys.path wins, like imports
    return found


def adapter_names() -> list[str]:
    """Names of every available method: built-in and installed plugins (sorted)."""
    return sorted(set(_BUILTIN.names()) | set(_entry_points()))


class PluginError(ValueError):
    """An installed adaptation-method plugin that cannot be loaded."""


def _load_entry_point(name: str, ep: importlib.metadata.EntryPoint) -> type[Adapter]:
    key = (name, ep.value)
    if key in _LOADED:
        return _LOADED[key]
    dist = getattr(ep, "dist", None)
    where = f"{ep.value}" + (f" from {dist.name}" if dist is not None else "")
    try:
        obj = ep.load()
    except Exception as exc:  # any import failure in a third-party package
        raise PluginError(
            f"adaptation method plugin {name!r} ({where}) failed to load: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(obj, type) and issubclass(obj, Adapter)):
        raise PluginError(
            f"adaptation method plugin {name!r} ({where}) is not a perception.Adapter subclass"
        )
    if obj.__dict__.get("name") is None:
        obj.name = name
    _LOADED[key] = obj
    return obj


def _load_path(spec: str) -> type[Adapter]:
    obj = load_object(spec, "adaptation method path", "module:Class")
    if not (isinstance(obj, type) and issubclass(obj, Adapter)):
        raise TypeError(f"adaptation method path {spec!r} is not a perception.Adapter subclass")
    return obj


def _resolve(name_or_path: str | type[Adapter]) -> tuple[type[Adapter], str]:
    if isinstance(name_or_path, type) and issubclass(name_or_path, Adapter):
        return name_or_path, "class"
    if not isinstance(name_or_path, str):
        raise TypeError(
            "name_or_path must be a method name, a 'module:Class' path or an Adapter subclass, "
            f"got {type(name_or_path).__name__}"
        )
    if name_or_path in _BUILTIN:
        return _BUILTIN.get(name_or_path), "built-in"
    plugins = _entry_points()
    if name_or_path in plugins:
        ep = plugins[name_or_path]
        dist = getattr(ep, "dist", None)
        origin = f"plugin ({dist.name} {dist.version})" if dist is not None else "plugin"
        return _load_entry_point(name_or_path, ep), origin
    if ":" in name_or_path:
        return _load_path(name_or_path), "path"
    raise unknown_name(
        "adaptation method",
        name_or_path,
        adapter_names(),
        alternatives=" or a 'module:Class' path",
    )


def create_adapter(name_or_path: str | type[Adapter], model: nn.Module, **options: Any) -> Adapter:
    """Build an adaptation method on (a private copy of) ``model``.

    ``name_or_path`` is a registered or plugin name (see :func:`adapter_names`), a
    ``"module:Class"`` path or an Adapter subclass. Options set to ``None`` are dropped, so a
    command line can pass its options blindly; unknown options raise ValueError."""
    cls, _ = _resolve(name_or_path)
    return cls(model, **{k: v for k, v in options.items() if v is not None})


@dataclass(frozen=True)
class AdapterInfo:
    """What ``roadshift list methods`` shows for one method; ``str()`` is the description.

    ``needs_source_data``/``needs_features`` and ``traits`` (views, what updates, required
    normalisation layers, resets, expected passes per frame) come from the class."""

    name: str
    description: str
    origin: str
    options: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    needs_source_data: bool = False
    needs_features: bool = False
    traits: MethodTraits = field(default_factory=MethodTraits)

    def __str__(self) -> str:
        return self.description

    def summary(self) -> str:
        """The method's traits on one line (what ``roadshift list methods`` prints under it)."""
        t = self.traits
        parts = [p for p, on in (("needs source data", self.needs_source_data),
                                 ("needs features", self.needs_features)) if on]  # fmt: skip
        parts += [
            f"views: {t.views}",
            f"updates: {t.updates}",
            f"normalisation: {t.norm}",
            f"resets: {t.resets}",
            f"forward passes per frame: {t.forward_per_frame}",
            f"backward: {t.backward_per_frame}",
        ]
        return "; ".join(parts)


def adapter_info(name_or_path: str) -> AdapterInfo:
    """Describe a method: first docstring line, where it comes from, its options and defaults.

    A plugin that fails to load gives an info with ``error`` set (and a warning) instead of
    raising, so listing every method never fails because of one broken package."""
    try:
        cls, origin = _resolve(name_or_path)
    except PluginError as exc:
        warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
        return AdapterInfo(str(name_or_path), f"broken plugin: {exc}", "plugin", {}, str(exc))
    doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
    first = doc.splitlines()[0] if doc else ""
    return AdapterInfo(
        str(name_or_path),
        first,
        origin,
        cls.option_defaults(),
        needs_source_data=bool(cls.needs_source_data),
        needs_features=bool(cls.needs_features),
        traits=cls.traits,
    )
