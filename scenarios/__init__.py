"""roadshift's batch runs: scenario files, the runner and its executors, the CLI.

The results store lives in ``reports`` (its reader) and is re-exported here, eagerly and without
torch; the scenario schema and the runner, which need ``perception`` (torch), load on first use
through module ``__getattr__``.
"""

from __future__ import annotations

import importlib
from typing import Any

from reports import NoResultsError, ResultsStore

# Lazily loaded public names -> the private module that defines them.
_LAZY = {
    "Scenario": "scenarios._schema",
    "ScenarioError": "scenarios._schema",
    "expand_cells": "scenarios._plan",
    "export_csv": "scenarios._export",
    "load_scenario": "scenarios._validate",
    "run_scenario": "scenarios._runner",
    "scenario_names": "scenarios._schema",
}

__all__ = [
    "NoResultsError",
    "ResultsStore",
    "Scenario",
    "ScenarioError",
    "expand_cells",
    "export_csv",
    "load_scenario",
    "run_scenario",
    "scenario_names",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'scenarios' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
