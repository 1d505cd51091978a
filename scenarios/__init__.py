"""roadshift's batch runs: scenario files, the runner and its executors, the results store, the CLI."""

from __future__ import annotations

__all__: list[str] = []
