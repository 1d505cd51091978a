"""CSV export of a run: one row per cell, or per segment, for spreadsheets and pandas.

Needs no torch."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from reports import ResultsStore

__all__ = ["EXPORT_COLUMNS", "SEGMENT_EXPORT_COLUMNS", "export_csv", "export_segments_csv"]

EXPORT_COLUMNS = (
    "scenario", "method", "corruption", "severity", "seed", "frames", "miou", "pixel_acc", "ece",
    "status", "error", "ms_per_frame", "entropy", "schedule", "forward_passes", "backward_passes",
    "batches", "cell_id", "protocol", "order", "rounds", "sampling", "miou_fixed", "online_miou",
    "skipped_frames", "clean_before", "clean_after",
)  # fmt: skip


#: ``export --segments``: the pinned columns first (other tools read them), then the rest.
SEGMENT_EXPORT_COLUMNS = (
    "method", "protocol", "order", "round", "corruption", "severity", "frames", "miou",
    "online_miou", "skipped_frames", "entropy",
    "seed", "segment", "label", "domain", "start_frame", "stop_frame", "miou_fixed", "pixel_acc",
    "pred_classes", "gt_classes", "recovery_frames", "collapse", "stream", "sampling",
    "cell_status", "cell_id", "scenario",
)  # fmt: skip


def _iou_column(name: str) -> str:
    return "iou_" + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def export_csv(run_dir: str | Path, path: str | Path) -> Path:
    """Write the run's cells to ``path`` (CSV) in run order; returns the path.

    Columns: ``EXPORT_COLUMNS`` then ``iou_<class>`` per class (empty where the class is absent
    from both ground truth and prediction). Missing values are empty fields.
    """
    path = Path(path)
    _check_output(path)
    with ResultsStore(run_dir) as store:
        meta = store.meta()
        cells = {c["cell_id"]: c for c in store.cells()}
        order = [c["cell_id"] for c in store.expected_cells() if c.get("cell_id") in cells]
    order += sorted(set(cells) - set(order))
    scenario = (meta.get("scenario") or {}).get("name", "")
    class_names = meta.get("class_names") or []
    iou_cols = [_iou_column(n) for n in class_names]
    rows = []
    for cid in order:
        c = cells[cid]
        row = [scenario if k == "scenario" else c.get(k) for k in EXPORT_COLUMNS]
        rows.append([*row, *(c.get("per_class_iou") or [None] * len(iou_cols))])
    return _write(path, [*EXPORT_COLUMNS, *iou_cols], rows)


def export_segments_csv(run_dir: str | Path, path: str | Path) -> Path:
    """Write one row per stored segment to ``path`` (CSV), in run order; returns the path.

    Columns: ``SEGMENT_EXPORT_COLUMNS`` (the first eleven are pinned). ``method``,
    ``protocol`` and ``order`` come from the segment's cell; ``cell_status`` is ``done``,
    ``failed`` or ``running`` (the segments of a stream that has not finished, or was killed);
    ``stream`` is the cell's ``corruption`` label (``continual``, ``fog``, ...)."""
    path = Path(path)
    _check_output(path)
    with ResultsStore(run_dir) as store:
        meta = store.meta()
        cells = {c["cell_id"]: c for c in store.cells()}
        expected = {c["cell_id"]: c for c in store.expected_cells() if c.get("cell_id")}
        segments = store.segments()
    scenario = (meta.get("scenario") or {}).get("name", "")
    rank = {cid: i for i, cid in enumerate(expected)}
    segments.sort(key=lambda r: (rank.get(r["cell_id"], len(rank)), r["cell_id"], r["segment"]))
    rows = []
    for seg in segments:
        cell = cells.get(seg["cell_id"]) or expected.get(seg["cell_id"]) or {}
        status = cell.get("status") or "running"
        values = {
            **seg,
            "method": cell.get("method"),
            "protocol": cell.get("protocol") or meta.get("protocol") or "reset_each_shift",
            "order": seg.get("order") if seg.get("order") is not None else cell.get("order"),
            "seed": cell.get("seed"),
            "stream": cell.get("corruption"),
            "sampling": cell.get("sampling") or "video",
            "cell_status": status,
            "scenario": scenario,
        }
        rows.append([values.get(k) for k in SEGMENT_EXPORT_COLUMNS])
    return _write(path, list(SEGMENT_EXPORT_COLUMNS), rows)


def _write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    """Write a CSV atomically (a temporary name, then a rename); empty fields for None."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for row in rows:
                writer.writerow(["" if v is None else v for v in row])
        tmp.replace(path)
    except OSError as exc:  # a full disk, a read-only mount: no half-written file stays
        tmp.unlink(missing_ok=True)
        raise ValueError(f"output: cannot write {str(path)!r} ({exc.strerror or exc})") from None
    return path


def _check_output(path: Path) -> None:
    """A file we may write: its folder exists and is writable, and it is not itself a folder."""
    if path.is_dir():
        raise ValueError(f"output: {str(path)!r} is a folder; give a file name such as cells.csv")
    parent = path.parent
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist"
        raise ValueError(f"output: folder {str(parent)!r} {what}")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"output: cannot write {str(path)!r} (permission denied)")
