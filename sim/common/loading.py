"""Loading an object named by a ``"module:attr"`` path (plug-in models and methods)."""

from __future__ import annotations

import importlib
from typing import Any


def load_object(spec: str, what: str, form: str = "module:attr") -> Any:
    """Import ``module`` and return its attribute ``attr`` (dotted for nested attributes).

    ``what`` names the thing in errors (``"model spec"``, ``"adaptation method path"``) and
    ``form`` is the shape the path must have. Every problem is a one-line ``ValueError``.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{what} {spec!r} must look like {form!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{what} {spec!r}: cannot import module {module_name!r} ({exc})") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{what} {spec!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj
