"""Reading the tables of a Markdown report back, for tests that check its numbers."""

from __future__ import annotations


def md_table(md: str, title: str) -> dict[str, list[str]]:
    """Rows of the Markdown table under ``### title``, keyed by their first cell."""
    lines = md.splitlines()
    start = lines.index(f"### {title}")
    rows: dict[str, list[str]] = {}
    seen_table = False
    for ln in lines[start + 1 : start + 200]:
        if ln.startswith("|:"):
            continue  # the alignment row
        if ln.startswith("|"):
            seen_table = True
            cells = [c.strip() for c in ln.strip().strip("|").split(" | ")]
            rows[cells[0]] = cells[1:]
        elif seen_table:
            break
    return rows


def parse(text: str) -> tuple[float, float | None]:
    """'61.2 ± 1.3' -> (61.2, 1.3); '+7.5' -> (7.5, None)."""
    parts = text.split("±")
    return float(parts[0]), (float(parts[1]) if len(parts) > 1 else None)
