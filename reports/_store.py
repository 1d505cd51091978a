"""The results store: one SQLite database per run folder, written one finished cell at a time.

Why SQLite: a batch run may be killed at any moment (even SIGKILL). Each finished cell is written
in a single transaction keyed by its ``cell_id``, in WAL mode, so a restarted run sees exactly the
cells that finished, never half a cell and never a cell twice. Readers (reports, export) open the
database read-only and never need torch.

The store belongs to ``reports`` (its reader) and is written by the runner in ``scenarios``, the
only writer of a run folder: workers, local or on a Ray cluster, send their results and samples
back to it and never touch the folder themselves.

Layout of a run folder::

    DIR/results.sqlite   tables meta, cells, segments, frames (schema below)
    DIR/scenario.yaml    the resolved scenario
    DIR/run.log          the run's log
    DIR/model.pt         the model's weights, so a resumed run checks it uses the same model
    DIR/samples/<cell_id>.npz   a few qualitative samples (written before their cell's row)

The ``meta`` table follows the run-metadata contract, versioned by ``meta_version``: see
``reports._meta`` for every key (baseline method, class names and palette, corruption families,
cell-id format, protocol, compute conditions). Reports read nothing else.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ._meta import RunMeta, is_cell_id, make_cell_id

__all__ = ["DB_NAME", "NoResultsError", "ResultsStore", "make_cell_id"]

DB_NAME = "results.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(
    key TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE IF NOT EXISTS cells(
    cell_id TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    corruption TEXT NOT NULL,
    severity REAL NOT NULL,
    seed INTEGER NOT NULL,
    schedule TEXT NOT NULL DEFAULT 'static',
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    error TEXT,
    frames INTEGER,
    miou REAL,
    pixel_acc REAL,
    ece REAL,
    entropy REAL,
    ms_per_frame REAL,
    forward_passes INTEGER,
    backward_passes INTEGER,
    per_class_iou TEXT,
    safety_recall TEXT,
    confusion TEXT,
    finished_at TEXT,
    batches INTEGER,
    protocol TEXT,
    "order" INTEGER,
    rounds INTEGER,
    miou_fixed REAL,
    online_miou REAL,
    skipped_frames INTEGER,
    clean_before REAL,
    clean_after REAL,
    sampling TEXT
);
CREATE TABLE IF NOT EXISTS segments(
    cell_id TEXT NOT NULL,
    segment INTEGER NOT NULL,
    start_frame INTEGER,
    stop_frame INTEGER,
    label TEXT,
    corruption TEXT,
    severity REAL,
    miou REAL,
    pixel_acc REAL,
    entropy REAL,
    round INTEGER,
    "order" INTEGER,
    domain TEXT,
    frames INTEGER,
    miou_fixed REAL,
    online_miou REAL,
    skipped_frames INTEGER,
    pred_classes REAL,
    gt_classes REAL,
    recovery_frames INTEGER,
    collapse INTEGER,
    class_prior TEXT,
    PRIMARY KEY(cell_id, segment)
);
CREATE TABLE IF NOT EXISTS frames(
    cell_id TEXT NOT NULL,
    frame INTEGER NOT NULL,
    corruption TEXT,
    severity REAL,
    miou REAL,
    entropy REAL,
    segment INTEGER,
    PRIMARY KEY(cell_id, frame)
);
"""

CELL_COLUMNS = (
    "cell_id", "method", "corruption", "severity", "seed", "schedule", "status", "error",
    "frames", "miou", "pixel_acc", "ece", "entropy", "ms_per_frame", "forward_passes",
    "backward_passes", "per_class_iou", "safety_recall", "confusion", "finished_at", "batches",
    "protocol", "order", "rounds", "miou_fixed", "online_miou", "skipped_frames", "clean_before",
    "clean_after", "sampling",
)  # fmt: skip
SEGMENT_COLUMNS = (
    "cell_id", "segment", "start_frame", "stop_frame", "label", "corruption", "severity",
    "miou", "pixel_acc", "entropy", "round", "order", "domain", "frames", "miou_fixed",
    "online_miou", "skipped_frames", "pred_classes", "gt_classes", "recovery_frames",
    "collapse", "class_prior",
)  # fmt: skip
FRAME_COLUMNS = ("cell_id", "frame", "corruption", "severity", "miou", "entropy", "segment")
_TABLE_COLUMNS = {"cells": CELL_COLUMNS, "segments": SEGMENT_COLUMNS, "frames": FRAME_COLUMNS}
_JSON_CELL_COLUMNS = ("per_class_iou", "safety_recall", "confusion")
_JSON_SEGMENT_COLUMNS = ("class_prior",)
_REQUIRED_CELL = ("method", "corruption", "severity", "seed", "status")


def _insert(table: str, columns: tuple[str, ...], *, replace: bool = False) -> str:
    """An INSERT statement; ``replace`` lets a row take the place of one with the same key
    (a cell written again, a running stream's segment rewritten), otherwise a duplicate key
    is an error (two rows with one key in one write are a bug, not an update)."""
    names = ", ".join(f'"{c}"' for c in columns)  # quoted: ``order`` is an SQL keyword
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    return f"{verb} INTO {table}({names}) VALUES ({', '.join('?' * len(columns))})"


class NoResultsError(ValueError):
    """A folder (or path) that holds no ``results.sqlite``."""


def _clean_number(value: Any) -> Any:
    """NaN/inf cannot round-trip through JSON or compare equal; store them as NULL."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _to_json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(_jsonable(value), allow_nan=False)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _jsonable(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return _clean_number(value)


class ResultsStore:
    """Read (and, for the runner, write) the results of one run folder.

    ``ResultsStore(dir)`` opens an existing store read-only; ``ResultsStore.create(dir)`` creates
    (or reopens for resuming) a writable one. ``path_or_dir`` may be the run folder or the
    ``results.sqlite`` file itself.
    """

    def __init__(self, path_or_dir: str | Path, readonly: bool = True) -> None:
        path = Path(path_or_dir)
        db = path / DB_NAME if path.is_dir() or path.suffix != ".sqlite" else path
        if not db.is_file():
            raise NoResultsError(f"run_dir: no {DB_NAME} in {path} (not a roadshift run folder)")
        self.path = db
        self.dir = db.parent
        self.readonly = readonly
        try:
            if readonly:
                self._con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
            else:
                self._con = sqlite3.connect(db, timeout=30.0)
            self._con.row_factory = sqlite3.Row
            tables = {r[0] for r in self._con.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as exc:
            raise NoResultsError(f"run_dir: {db} is not a results database ({exc})") from None
        if not {"meta", "cells"} <= tables:
            self._con.close()
            raise NoResultsError(f"run_dir: {db} is not a roadshift results database")

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def create(cls, run_dir: str | Path) -> ResultsStore:
        """Create the run folder and an empty store in it (or reopen an existing one to resume)."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(run_dir / DB_NAME, timeout=30.0)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)
            for table, wanted in _TABLE_COLUMNS.items():
                columns = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
                for name in wanted:  # columns added since a resumed folder was created
                    if name not in columns:
                        con.execute(f'ALTER TABLE {table} ADD COLUMN "{name}"')
            con.commit()
        finally:
            con.close()
        store = cls(run_dir, readonly=False)
        store._con.execute("PRAGMA synchronous=NORMAL")
        return store

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _writable(self) -> None:
        if self.readonly:
            raise PermissionError(f"store {self.path} was opened read-only")

    # ----------------------------------------------------------------- writing
    def set_meta(self, key: str, value: Any) -> None:
        """Store one JSON-serialisable meta value (replacing any previous one)."""
        self.update_meta({key: value})

    def update_meta(self, values: Mapping[str, Any]) -> None:
        """Store several meta values in one transaction (all of them or none)."""
        self._writable()
        rows = [(str(k), _to_json(v)) for k, v in values.items()]
        with self._con:
            self._con.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", rows)

    def write_sample(self, cell_id: str, arrays: Mapping[str, Any]) -> Path:
        """Write ``samples/<cell_id>.npz`` atomically (a temporary name, then a rename).

        The runner writes a cell's sample before the cell's row, so a stored cell never lacks
        its picture; a sample whose cell is not stored (a run killed in between) is ignored.
        """
        import numpy as np

        self._writable()
        if not is_cell_id(cell_id):
            raise ValueError(f"cell_id: {cell_id!r} is not a cell id (see make_cell_id)")
        folder = self.dir / "samples"
        folder.mkdir(exist_ok=True)
        tmp = folder / f".{cell_id}.tmp.npz"
        np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
        final = folder / f"{cell_id}.npz"
        tmp.replace(final)
        return final

    def write_cell(
        self,
        cell: Mapping[str, Any],
        segments: Iterable[Mapping[str, Any]] = (),
        frames: Iterable[Mapping[str, Any]] = (),
    ) -> str:
        """Write one finished cell with its segment and frame rows in a single transaction.

        Writing a cell again replaces it (and its rows) atomically, so nothing is stored twice.
        Returns the cell id (derived from method, corruption, severity, seed when not given).
        """
        self._writable()
        unknown = set(cell) - set(CELL_COLUMNS)
        if unknown:
            raise ValueError(
                f"cell: unknown field(s) {sorted(unknown)}; "
                f"valid choices: {', '.join(CELL_COLUMNS)}"
            )
        missing = [k for k in _REQUIRED_CELL if cell.get(k) is None]
        if missing:
            raise ValueError(f"cell: missing required field(s) {missing}")
        if cell["status"] not in ("done", "failed"):
            raise ValueError(f"cell.status: {cell['status']!r}; valid choices: done, failed")
        row = {k: cell.get(k) for k in CELL_COLUMNS}
        if row["cell_id"] is None:
            row["cell_id"] = make_cell_id(
                row["method"], row["corruption"], row["severity"], row["seed"]
            )
        if row["schedule"] is None:
            row["schedule"] = "static"
        row = {
            k: (_to_json(v) if k in _JSON_CELL_COLUMNS else _jsonable(v)) for k, v in row.items()
        }
        cid = row["cell_id"]
        seg_rows = [self._row(SEGMENT_COLUMNS, s, cid) for s in segments]
        frame_rows = [self._row(FRAME_COLUMNS, f, cid) for f in frames]
        with self._con:  # one transaction: all of it or none of it
            self._con.execute("DELETE FROM segments WHERE cell_id = ?", (cid,))
            self._con.execute("DELETE FROM frames WHERE cell_id = ?", (cid,))
            self._con.execute(
                _insert("cells", CELL_COLUMNS, replace=True), [row[k] for k in CELL_COLUMNS]
            )
            if seg_rows:
                self._con.executemany(_insert("segments", SEGMENT_COLUMNS), seg_rows)
            if frame_rows:
                self._con.executemany(_insert("frames", FRAME_COLUMNS), frame_rows)
        return cid

    def write_segment(self, cell_id: str, segment: Mapping[str, Any]) -> None:
        """Store one finished segment of a cell that is still running (a long carried stream
        writes each segment as it ends). The cell's own row, written when the stream ends,
        replaces these rows in the same transaction; until then a cell id with segment rows
        and no cell row is running (or was killed, and reruns from its start on resume)."""
        self._writable()
        if not is_cell_id(cell_id):
            raise ValueError(f"cell_id: {cell_id!r} is not a cell id (see make_cell_id)")
        row = self._row(SEGMENT_COLUMNS, segment, cell_id)
        with self._con:
            self._con.execute(_insert("segments", SEGMENT_COLUMNS, replace=True), row)

    def drop_unfinished_rows(self) -> int:
        """Remove segment and frame rows of cells that have no cell row (a killed run's
        running streams), before a resumed run writes them again; returns the rows removed."""
        self._writable()
        removed = 0
        with self._con:
            for table in ("segments", "frames"):
                cur = self._con.execute(
                    f"DELETE FROM {table} WHERE cell_id NOT IN (SELECT cell_id FROM cells)"
                )
                removed += cur.rowcount
        return removed

    @staticmethod
    def _row(columns: tuple[str, ...], values: Mapping[str, Any], cell_id: str) -> list[Any]:
        unknown = set(values) - set(columns)
        if unknown:
            raise ValueError(
                f"row: unknown field(s) {sorted(unknown)}; valid choices: {', '.join(columns)}"
            )
        out = dict(values, cell_id=cell_id)
        return [
            _to_json(out.get(k)) if k in _JSON_SEGMENT_COLUMNS else _jsonable(out.get(k))
            for k in columns
        ]

    # ----------------------------------------------------------------- reading
    def meta(self) -> dict[str, Any]:
        """All meta keys, JSON-decoded."""
        rows = self._con.execute("SELECT key, value FROM meta").fetchall()
        return {r["key"]: None if r["value"] is None else json.loads(r["value"]) for r in rows}

    def run_meta(self) -> RunMeta:
        """The run-metadata contract (see ``reports._meta``), upgraded from older folders."""
        cells = [dict(r) for r in self._con.execute("SELECT method FROM cells ORDER BY cell_id")]
        return RunMeta.from_meta(self.meta(), [*self.expected_cells(), *cells])

    def cells(self, status: str | None = None) -> list[dict[str, Any]]:
        """Stored cells (ordered by cell id), JSON fields decoded; optionally only one status."""
        if status is not None and status not in ("done", "failed"):
            raise ValueError(f"status: {status!r}; valid choices: done, failed, None")
        sql = "SELECT * FROM cells"
        args: tuple[Any, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            args = (status,)
        out = []
        for r in self._con.execute(sql + " ORDER BY cell_id", args):
            d = {k: None for k in CELL_COLUMNS} | dict(r)
            for k in _JSON_CELL_COLUMNS:
                d[k] = json.loads(d[k]) if d[k] is not None else None
            out.append(d)
        return out

    def segments(self, cell_id: str | None = None) -> list[dict[str, Any]]:
        """Per-segment rows (schedules and protocol streams), ordered by cell and segment.

        Every row has every column of ``SEGMENT_COLUMNS`` (None where an older folder lacks
        it); ``class_prior`` is decoded. Rows of a cell that has no cell row yet belong to a
        stream still running."""
        rows = self._rows("segments", "segment", cell_id)
        for r in rows:
            for k in _JSON_SEGMENT_COLUMNS:
                r[k] = json.loads(r[k]) if isinstance(r[k], str) else r[k]
        return rows

    def frames(self, cell_id: str | None = None) -> list[dict[str, Any]]:
        """Per-frame rows (timelines), ordered by cell and frame."""
        return self._rows("frames", "frame", cell_id)

    def _rows(self, table: str, order: str, cell_id: str | None) -> list[dict[str, Any]]:
        sql = f"SELECT * FROM {table}"
        args: tuple[Any, ...] = ()
        if cell_id is not None:
            sql += " WHERE cell_id = ?"
            args = (cell_id,)
        columns = _TABLE_COLUMNS[table]
        rows = self._con.execute(f"{sql} ORDER BY cell_id, {order}", args)
        return [{k: d.get(k) for k in columns} for d in map(dict, rows)]

    def done_ids(self) -> set[str]:
        """Ids of the cells that finished successfully (a resumed run skips them)."""
        return {r[0] for r in self._con.execute("SELECT cell_id FROM cells WHERE status = 'done'")}

    def expected_cells(self) -> list[dict[str, Any]]:
        """The cells the scenario asked for (meta ``expected_cells``), in run order."""
        return list(self.meta().get("expected_cells") or [])

    def missing_cells(self) -> list[dict[str, Any]]:
        """Expected cells with no stored row at all (neither done nor failed)."""
        stored = {r[0] for r in self._con.execute("SELECT cell_id FROM cells")}
        return [c for c in self.expected_cells() if c.get("cell_id") not in stored]

    def is_partial(self) -> bool:
        """True while cells are missing or the run never recorded its end."""
        return bool(self.missing_cells()) or not self.meta().get("finished_at")

    def samples(self) -> list[Path]:
        """The qualitative sample files (``samples/<cell_id>.npz``), sorted."""
        folder = self.dir / "samples"
        return sorted(folder.glob("*.npz")) if folder.is_dir() else []
