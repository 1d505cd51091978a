"""roadshift's reports: the results store of a run folder, and the documents built from it.

The store and the run-metadata contract import eagerly and need neither torch nor matplotlib (the
runner writes through them, ``roadshift export`` reads through them); ``build_report`` loads
matplotlib and Jinja2 on first use, through module ``__getattr__``. Nothing here imports ``sim``,
``perception`` or ``scenarios``: a report is made from the run folder alone.
"""

from __future__ import annotations

import importlib
from typing import Any

from reports._meta import META_VERSION, PROTOCOLS, RunMeta, make_cell_id
from reports._store import NoResultsError, ResultsStore

# Lazily loaded public names -> the private module that defines them.
_LAZY = {"build_report": "reports._build"}

__all__ = [
    "META_VERSION",
    "PROTOCOLS",
    "NoResultsError",
    "ResultsStore",
    "RunMeta",
    "build_report",
    "make_cell_id",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reports' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
