"""Reading a run folder through the results store's read API into one plain snapshot.

Everything the report shows comes from here, so the rest of the package works on lists of dicts
and never touches SQLite, the runner or torch. Names, groups and colours come from the run's
metadata (``reports._meta``), never from the installed library, so a report of a folder is the
same whatever ``sim`` has become since the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ._store import ResultsStore

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
    baseline: str | None = None
    protocol: str = "reset_each_shift"
    compute: dict[str, Any] = field(default_factory=dict)
    stored_palette: bool = True  # False: the run recorded no palette (a version 1 folder)
    drives: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # closed-loop cells
    drive_records: list[Path] = field(default_factory=list)  # drives/<cell_id>.npz
    # cells of a second sampling (``sampling: [video, iid]``: the i.i.d. control, labelled
    # ``<shift>.iid``): kept apart so that only the comparison of samplings reads them
    controls: list[dict[str, Any]] = field(default_factory=list)
    expected_controls: list[dict[str, Any]] = field(default_factory=list)

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

    @property
    def sampling(self) -> str:
        """The run's own sampling: ``video`` unless it drew i.i.d. frames."""
        return main_sampling(self.meta)

    @property
    def data_source(self) -> dict[str, Any] | None:
        """``meta.data``: the dataset on disk the run's frames came from, or None when they
        came from the procedural world (a report on your data says nothing of the world)."""
        d = self.meta.get("data")
        return d if isinstance(d, dict) and d else None

    def sampling_of(self, cell: dict[str, Any]) -> str:
        """A cell's own sampling where it records one, else the run's."""
        s = cell.get("sampling")
        return s if isinstance(s, str) and s else self.sampling

    @property
    def all_done(self) -> list[dict[str, Any]]:
        """Done cells of every sampling (the controls included)."""
        return self.done + [c for c in self.controls if c.get("status") == "done"]

    @property
    def all_failed(self) -> list[dict[str, Any]]:
        return self.failed + [c for c in self.controls if c.get("status") != "done"]

    def method_spec(self, label: str) -> tuple[str, dict[str, Any]]:
        """(registered name, options as the scenario gave them) of a method label; a folder
        that did not list its methods (version 1) gives (label, {})."""
        for m in self.meta.get("methods") or []:
            if isinstance(m, dict) and m.get("label") == label:
                options = m.get("options")
                return str(m.get("name") or label), dict(options) if isinstance(
                    options, dict
                ) else {}
        return label, {}


def main_sampling(meta: dict[str, Any]) -> str:
    """The sampling a run's unlabelled cells used (meta ``stream.sampling``, the first of a
    list; ``video`` for folders that recorded none)."""
    stream = meta.get("stream") if isinstance(meta.get("stream"), dict) else {}
    sc = meta.get("scenario") if isinstance(meta.get("scenario"), dict) else {}
    value = stream.get("sampling") or sc.get("sampling") or "video"
    if isinstance(value, list):
        value = value[0] if value else "video"
    return str(value)


def _split(cells: list[dict[str, Any]], main: str) -> tuple[list, list]:
    mine = [c for c in cells if c.get("sampling") in (None, "", main)]
    return mine, [c for c in cells if c.get("sampling") not in (None, "", main)]


def is_closed_loop_cell(cell: dict[str, Any]) -> bool:
    """True for a closed-loop cell: drives its method steered (``reports._closed_loop``). Its
    frames depend on the method, so it stays out of every open-loop table."""
    return cell.get("loop") == "closed"


def is_schedule_cell(cell: dict[str, Any]) -> bool:
    """True for cells of a shift schedule (a stream), False for the static corruption grid."""
    return not is_closed_loop_cell(cell) and (cell.get("schedule") or STATIC) not in (
        STATIC,
        WORLD,
    )


def is_world_cell(cell: dict[str, Any]) -> bool:
    """True for a shift of the world itself (another town, weather...): clean camera, no
    corruption and no severity, so it stays out of the corruption × severity grid."""
    if is_closed_loop_cell(cell):
        return False
    if (cell.get("schedule") or STATIC) == WORLD:
        return True
    return (
        not is_schedule_cell(cell)
        and cell.get("corruption") not in (None, CLEAN)
        and float(cell.get("severity") or 0.0) == 0.0
    )


def is_grid_cell(cell: dict[str, Any]) -> bool:
    """A cell of the static grid: clean, or a corruption at a severity."""
    return not (is_closed_loop_cell(cell) or is_schedule_cell(cell) or is_world_cell(cell))


def _fallback_palette(n: int) -> np.ndarray:
    """Distinct fixed colours for a folder that recorded no palette (tab20, then repeated)."""
    from matplotlib import colormaps

    colors = colormaps["tab20"].colors
    return np.array([[round(255 * v) for v in colors[i % len(colors)]] for i in range(n)], np.uint8)


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
    """Read a run folder through :class:`ResultsStore` (raises its ``NoResultsError``)."""
    if not isinstance(run_dir, (str, Path)):
        raise TypeError(f"run_dir must be a str or pathlib.Path, got {type(run_dir).__name__}")
    run_dir = Path(run_dir)
    with ResultsStore(run_dir, readonly=True) as store:
        meta = {k: _decode(v) for k, v in dict(store.meta()).items()}
        contract = store.run_meta()
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
        done = {c["cell_id"] for c in cells if c.get("status") == "done"}
        # a sample counts only with its finished cell (a killed run may leave one behind)
        samples = sorted(Path(p) for p in store.samples() if Path(p).stem in done)
        drives: dict[str, list[dict[str, Any]]] = {}
        for row in store.drives():
            if row["cell_id"] in done:
                drives.setdefault(row["cell_id"], []).append(dict(row))
        records = sorted(Path(p) for p in store.drive_records() if Path(p).stem in done)
        run_dir = store.dir
    for rows in segments.values():
        rows.sort(key=lambda r: r.get("segment") or 0)
    for rows in frames.values():
        rows.sort(key=lambda r: r.get("frame") or 0)
    meta["wall_seconds"] = _wall_seconds(meta)
    class_names = contract.class_names or tuple(f"class {i}" for i in range(_n_classes(cells)))
    if contract.palette is not None:
        palette = np.asarray(contract.palette, dtype=np.uint8)
    else:
        palette = _fallback_palette(len(class_names))
    main = main_sampling(meta)
    cells, controls = _split(cells, main)
    expected, expected_controls = _split(expected, main)
    methods = {c.get("method") for c in cells + expected}
    baseline = contract.baseline if contract.baseline in methods else None
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
        families=dict(contract.corruption_families),
        baseline=baseline,
        protocol=contract.protocol,
        compute=dict(contract.compute),
        stored_palette=contract.palette is not None,
        drives=drives,
        drive_records=records,
        controls=controls,
        expected_controls=expected_controls,
    )


def _n_classes(cells: list[dict[str, Any]]) -> int:
    """Classes of a folder that recorded no names: the length of its per-class rows."""
    return max((len(c.get("per_class_iou") or []) for c in cells), default=0)
