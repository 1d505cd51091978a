"""The run folder before a run: can it be written, and may this scenario resume or extend it?

A folder that already holds a run is resumed when the scenario is the same, and *extended* when
the scenario only adds to it (seeds, severities, corruptions, methods, schedules, world shifts,
the clean cells): every stored cell keeps its meaning, so the runner skips it and runs the new
ones. A change to anything a stored number depends on (frames, size, world, batch size, per-frame
rows, a stored method's name or options, a removed item) is refused with the fields named.
Nothing here creates anything except :func:`make_folder`, which leaves nothing behind on failure.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from reports import ResultsStore
from scenarios._schema import Scenario, ScenarioError

__all__ = ["check_out", "make_folder", "scenario_changes"]

#: Fields every stored number depends on: any change is refused.
FIXED = ("frames", "batch_size", "height", "width", "world", "per_frame")
#: Lists a run may only add to (their items are compared as data).
GROWING = ("seeds", "severities", "corruptions", "schedule", "world_shifts")
#: Fields that change what is reported or sampled, never a stored number. The model is compared
#: by what it resolves to (name and weights), not by how the scenario spells it.
FREE = ("name", "description", "samples", "baseline", "model")


#: Keys added since run folders were first written, with the values older folders ran with.
_DEFAULTS: dict[str, Any] = {
    "protocol": "reset_each_shift", "rounds": 1, "orders": 1, "sampling": "video",
    "label_shift": [], "window": None, "forgetting": False, "online": None, "data": None,
    "source_data": None,
}  # fmt: skip


def _show(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def scenario_changes(stored: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What in ``new`` (a resolved scenario) would change the cells ``stored`` already has.

    An empty list means ``new`` equals ``stored`` or only extends it.
    """
    problems: list[str] = []
    known = set(FIXED) | set(GROWING) | set(FREE) | {"methods", "include_clean", "orders"}
    # a folder written before a key existed ran with that key's default
    stored = {**_DEFAULTS, **stored}
    for key in [*FIXED, *sorted((set(stored) | set(new)) - known)]:
        if stored.get(key) != new.get(key):
            problems.append(f"{key} ({_show(stored.get(key))} → {_show(new.get(key))})")
    if int(new.get("orders") or 1) < int(stored.get("orders") or 1):  # more orders add cells
        problems.append(f"orders ({stored.get('orders')} → {new.get('orders')}: drops orders)")
    for key in GROWING:
        dropped = [x for x in stored.get(key) or [] if x not in (new.get(key) or [])]
        if dropped:
            problems.append(f"{key} (drops {', '.join(_show(x) for x in dropped)})")
    if stored.get("include_clean", True) and not new.get("include_clean", True):
        problems.append("include_clean (true → false)")
    new_methods = {_key(m): m for m in new.get("methods") or []}
    for m in stored.get("methods") or []:
        key = _key(m)
        now = new_methods.get(key)
        if now is None:
            problems.append(f"methods (drops {key!r})")
            continue
        for field in ("name", "options"):
            if (m.get(field) or None) != (now.get(field) or None):
                before, after = _show(m.get(field)), _show(now.get(field))
                problems.append(f"methods[{key}].{field} ({before} → {after})")
    return problems


def _key(method: dict[str, Any]) -> str:
    return str(method.get("label") or method.get("name"))


def check_out(out: Path, sc: Scenario) -> None:
    """Raise ``ScenarioError`` unless ``out`` can take this run (new, resumed or extended)."""
    if out.exists() and not out.is_dir():
        raise ScenarioError(f"{out}: out: exists and is not a folder")
    _check_writable(out)
    if (out / "results.sqlite").is_file():
        with ResultsStore(out) as store:
            stored = store.meta().get("scenario")
        if isinstance(stored, dict):
            problems = scenario_changes(stored, sc.resolved())
            if problems:
                raise ScenarioError(
                    f"{out}: out: holds run {stored.get('name')!r}, and this scenario changes "
                    f"what its stored cells mean: {'; '.join(problems)}. A run folder may only "
                    "be extended (more seeds, severities, corruptions, methods, schedules, "
                    "world shifts); choose another --out for a different run"
                )
    elif out.is_dir() and any(p.name != ".lock" for p in out.iterdir()):
        raise ScenarioError(f"{out}: out: folder is not empty and is not a roadshift run folder")


def _check_writable(out: Path) -> None:
    """The nearest existing folder on the way to ``out`` must be a folder we may write in."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ScenarioError(f"{out}: out: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ScenarioError(f"{out}: out: cannot write in {str(existing)!r} (permission denied)")


def make_folder(out: Path) -> None:
    """Create ``out`` and its missing parents; on failure remove what was made, raise one line.

    (Permission checks cannot foresee everything: a superuser passes them for ``/proc/x``.)
    """
    missing: list[Path] = []
    p = out
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    made: list[Path] = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            made.append(folder)
    except OSError as exc:
        for folder in reversed(made):
            try:
                folder.rmdir()
            except OSError:
                pass
        why = exc.strerror or type(exc).__name__
        raise ScenarioError(f"{out}: out: cannot create the folder ({why})") from None
