"""roadshift's reports: HTML and Markdown robustness reports built from a results store."""

from __future__ import annotations

__all__: list[str] = []
