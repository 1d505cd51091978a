"""roadshift's reports: HTML and Markdown robustness reports built from a results store."""

from __future__ import annotations

from reports._build import build_report

__all__: list[str] = ["build_report"]
