"""Reading a run folder through the results store's read API into one plain snapshot.

Everything the report shows comes from here, so the rest of the package works on lists of dicts
and never touches SQLite, the runner or torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

CLEAN = "clean"
STATIC = "static"
WORLD = "world"


@dataclass
class RunData:
    """A snapshot of one run folder: meta, cells by status, schedule traces and sample files."""

    run_dir: Path
    meta: dict[str, Any]
    cells: list[dict[str, Any]]
    expected: list[dict[str, Any]]
    missing: list[dict[str, Any]]
    partial: bool
    segments: dict[str, list[dict[str, Any]]]
    frames: dict[str, list[dict[str, Any]]]
    samples: list[Path]
    class_names: tuple[str, ...]
    palette: np.ndarray
    families: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> list[dict[str, Any]]:
        return [c for c in self.cells if c.get("status") == "done"]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.cells if c.get("status") != "done"]

    @property
    def scenario(self) -> dict[str, Any]:
        sc = self.meta.get("scenario")
        return sc if isinstance(sc, dict) else {}


def is_schedule_cell(cell: dict[str, Any]) -> bool:
    """True for cells of a shift schedule (a stream), False for the static corruption grid."""
    return (cell.get("schedule") or STATIC) not in (STATIC, WORLD)


def is_world_cell(cell: dict[str, Any]) -> bool:
    """True for a shift of the world itself (another town, weather...): clean camera, no
    corruption and no severity, so it stays out of the corruption × severity grid."""
    if (cell.get("schedule") or STATIC) == WORLD:
        return True
    return (
        not is_schedule_cell(cell)
        and cell.get("corruption") not in (None, CLEAN)
        and float(cell.get("severity") or 0.0) == 0.0
    )


def is_grid_cell(cell: dict[str, Any]) -> bool:
    """A cell of the static grid: clean, or a corruption at a severity."""
    return not is_schedule_cell(cell) and not is_world_cell(cell)


def _families(meta: dict[str, Any], corruptions: set[str]) -> dict[str, str]:
    """Corruption name -> family, from ``sim.corruption_info`` or else the store's meta."""
    out: dict[str, str] = {}
    info = None
    try:
        import sim

        info = getattr(sim, "corruption_info", None)
    except Exception:
        info = None
    meta_fams = meta.get("corruption_families") or meta.get("families") or {}
    if not isinstance(meta_fams, dict):
        meta_fams = {}
    for name in corruptions:
        fam = None
        if info is not None:
            try:
                fam = info(name).family
            except Exception:  # unknown to this sim (plugin or renamed corruption)
                fam = None
        if fam is None:
            fam = meta_fams.get(name)
        out[name] = str(fam) if fam else "other"
    return out


def _decode(value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except (TypeError, ValueError):
            return value
    return value


def _wall_seconds(meta: dict[str, Any]) -> float | None:
    wall = meta.get("wall_seconds")
    if isinstance(wall, (int, float)):
        return float(wall)
    try:
        start = datetime.fromisoformat(str(meta["started_at"]))
        stop = datetime.fromisoformat(str(meta["finished_at"]))
    except (KeyError, TypeError, ValueError):
        return None
    return max((stop - start).total_seconds(), 0.0)


def load_run(run_dir: str | Path) -> RunData:
    """Read a run folder through ``scenarios.ResultsStore`` (raises its ``NoResultsError``)."""
    if not isinstance(run_dir, (str, Path)):
        raise TypeError(f"run_dir must be a str or pathlib.Path, got {type(run_dir).__name__}")
    from scenarios import ResultsStore

    run_dir = Path(run_dir)
    store = ResultsStore(run_dir, readonly=True)
    if run_dir.is_file():  # the results.sqlite itself was given: report beside it
        run_dir = run_dir.parent
    try:
        meta = {k: _decode(v) for k, v in dict(store.meta()).items()}
        cells = [dict(c) for c in store.cells()]
        expected = [dict(c) for c in store.expected_cells()]
        missing = [dict(c) for c in store.missing_cells()]
        partial = bool(store.is_partial())
        segments: dict[str, list[dict[str, Any]]] = {}
        for row in store.segments():
            segments.setdefault(row["cell_id"], []).append(dict(row))
        frames: dict[str, list[dict[str, Any]]] = {}
        for row in store.frames():
            frames.setdefault(row["cell_id"], []).append(dict(row))
        samples = sorted(Path(p) for p in store.samples())
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
    for rows in segments.values():
        rows.sort(key=lambda r: r.get("segment") or 0)
    for rows in frames.values():
        rows.sort(key=lambda r: r.get("frame") or 0)
    meta.setdefault("wall_seconds", None)
    meta["wall_seconds"] = _wall_seconds(meta)

    from sim import CLASS_NAMES, PALETTE  # torch-free; imported here to keep `import reports` light

    names = meta.get("class_names")
    if isinstance(names, list) and len(names) == len(CLASS_NAMES):
        class_names = tuple(str(n) for n in names)
    else:
        class_names = tuple(CLASS_NAMES)
    palette = np.asarray(PALETTE, dtype=np.uint8)
    corruptions = {
        str(c["corruption"])
        for c in cells + expected
        if is_grid_cell(c) and c.get("corruption") not in (None, CLEAN)
    }
    return RunData(
        run_dir=run_dir,
        meta=meta,
        cells=cells,
        expected=expected,
        missing=missing,
        partial=partial,
        segments=segments,
        frames=frames,
        samples=samples,
        class_names=class_names,
        palette=palette,
        families=_families(meta, corruptions),
    )
