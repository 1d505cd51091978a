"""CSV export of a run: one row per cell, for spreadsheets and pandas. Needs no torch."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from scenarios._store import ResultsStore

__all__ = ["EXPORT_COLUMNS", "export_csv"]

EXPORT_COLUMNS = (
    "scenario", "method", "corruption", "severity", "seed", "frames", "miou", "pixel_acc", "ece",
    "status", "error", "ms_per_frame", "entropy", "schedule", "forward_passes", "backward_passes",
    "cell_id",
)  # fmt: skip


def _iou_column(name: str) -> str:
    return "iou_" + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def export_csv(run_dir: str | Path, path: str | Path) -> Path:
    """Write the run's cells to ``path`` (CSV) in run order; returns the path.

    Columns: ``EXPORT_COLUMNS`` then ``iou_<class>`` per class (empty where the class is absent
    from both ground truth and prediction). Missing values are empty fields.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"output: folder {str(path.parent)!r} does not exist")
    with ResultsStore(run_dir) as store:
        meta = store.meta()
        cells = {c["cell_id"]: c for c in store.cells()}
        order = [c["cell_id"] for c in store.expected_cells() if c.get("cell_id") in cells]
    order += sorted(set(cells) - set(order))
    scenario = (meta.get("scenario") or {}).get("name", "")
    class_names = meta.get("class_names") or []
    iou_cols = [_iou_column(n) for n in class_names]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*EXPORT_COLUMNS, *iou_cols])
        for cid in order:
            c = cells[cid]
            row = [scenario if k == "scenario" else c.get(k) for k in EXPORT_COLUMNS]
            ious = c.get("per_class_iou") or [None] * len(iou_cols)
            writer.writerow(["" if v is None else v for v in (*row, *ious)])
    tmp.replace(path)
    return path
