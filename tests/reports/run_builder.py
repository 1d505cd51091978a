"""Write small run folders cell by cell, including the protocols contract's columns.

Report tests use it for report arithmetic on numbers they choose: every value is made up, and
nothing is concluded about any method from them. Columns the store's schema lacks (those of the
protocols contract, in a folder written before it) are added with ``ALTER TABLE``, so the same
fixture reads alike whichever store wrote the base columns.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from reports import ResultsStore, RunMeta, make_cell_id
from sim import CLASS_NAMES, PALETTE


def confusion(gt: dict[int, int], pred_right: dict[int, int], stray: dict[int, int]) -> list:
    """A 19×19 matrix: ``gt[c]`` ground-truth pixels of class c of which ``pred_right[c]`` are
    predicted right (the rest as road, class 0, or as class 1 for road itself); ``stray[c]``
    road pixels predicted as class c (a class the stream may not hold)."""
    cm = np.zeros((19, 19), np.int64)
    for c, n in gt.items():
        right = pred_right.get(c, n)
        cm[c, c] += right
        cm[c, 1 if c == 0 else 0] += n - right
    for c, n in stray.items():
        cm[0, 0] -= n
        cm[0, c] += n
    return cm.tolist()


def miou_of(cm: list, rule: str = "cell", classes: list[int] | None = None) -> float:
    """mIoU of a matrix: 'cell' = classes in ground truth or prediction; or over ``classes``."""
    m = np.asarray(cm, float)
    tp = np.diag(m)
    union = m.sum(0) + m.sum(1) - tp
    keep = [c for c in (classes if classes is not None else range(19)) if union[c] > 0]
    return float(np.mean([tp[c] / union[c] for c in keep]))


class RunBuilder:
    """A run folder under construction: ``cell(...)`` per cell, then ``finish()``."""

    def __init__(
        self,
        run_dir: Path,
        methods: dict[str, tuple[str, dict[str, Any]]],
        *,
        name: str = "fixture",
        scenario: dict[str, Any] | None = None,
        model: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        baseline: str | None = "source",
    ) -> None:
        self.dir = Path(run_dir)
        self.store = ResultsStore.create(self.dir)
        contract = RunMeta(
            methods=tuple({"label": k, "name": n, "options": o} for k, (n, o) in methods.items()),
            class_names=tuple(CLASS_NAMES),
            palette=tuple(tuple(int(v) for v in rgb) for rgb in PALETTE),
            corruption_families={"gaussian_noise": "noise", "fog": "weather", "night": "driving"},
            baseline=baseline if baseline in methods else None,
            compute={"executor": "local", "workers": 1, "torch_threads": 1},
        )
        self.store.update_meta(contract.to_meta())
        self.store.update_meta(
            {
                "scenario": {"name": name, "methods": list(methods), **(scenario or {})},
                "model": model or {"name": "tiny"},
                "started_at": "2026-01-01T00:00:00+00:00",
                **(meta or {}),
            }
        )
        con = sqlite3.connect(self.dir / "results.sqlite")
        self.columns = {
            t: {r[1] for r in con.execute(f"PRAGMA table_info({t})")} for t in ("cells", "segments")
        }
        con.close()
        self.cells: list[dict[str, Any]] = []
        self.segments: dict[str, list[dict[str, Any]]] = {}
        self.pending: list[tuple[str, dict, str, tuple]] = []

    def cell(
        self,
        method: str,
        corruption: str,
        severity: float,
        miou: float,
        *,
        seed: int = 0,
        schedule: str = "static",
        segments: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> str:
        cell = dict(
            method=method, corruption=corruption, severity=float(severity), seed=seed,
            schedule=schedule, status="done", miou=miou, frames=extra.pop("frames", 16),
            batches=4, forward_passes=4, backward_passes=0, ms_per_frame=1.0,
        )  # fmt: skip
        cell["cell_id"] = extra.pop("cell_id", None) or make_cell_id(
            method, corruption, severity, seed
        )
        if "confusion" in extra and "per_class_iou" not in extra:  # as the runner stores both
            m = np.asarray(extra["confusion"], float)
            union = m.sum(0) + m.sum(1) - np.diag(m)
            extra["per_class_iou"] = [
                float(m[c, c] / union[c]) if union[c] > 0 else None for c in range(len(m))
            ]
        cell.update(extra)
        base = {k: v for k, v in cell.items() if k in self.columns["cells"]}
        rest = {k: v for k, v in cell.items() if k not in self.columns["cells"]}
        segs = segments or []
        seg_base = [{k: v for k, v in s.items() if k in self.columns["segments"]} for s in segs]
        cid = self.store.write_cell(base, segments=seg_base)
        # extra columns are added when the folder is finished: a store that inserts segment
        # rows by position cannot take more rows once its table has grown
        self.pending.append(("cells", rest, "cell_id = ?", (cid,)))
        for s in segs:
            seg_rest = {k: v for k, v in s.items() if k not in self.columns["segments"]}
            self.pending.append(
                ("segments", seg_rest, "cell_id = ? AND segment = ?", (cid, s["segment"]))
            )
        self.cells.append(cell)
        self.segments[cid] = segs
        return cid

    def _extend(self, con, table: str, values: dict, where: str, args: tuple) -> None:
        if not values:
            return
        have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
        for k in values:
            if k not in have:
                con.execute(f'ALTER TABLE {table} ADD COLUMN "{k}"')
        sets = ", ".join(f'"{k}" = ?' for k in values)
        vals = [json.dumps(v) if isinstance(v, (list, dict)) else v for v in values.values()]
        con.execute(f"UPDATE {table} SET {sets} WHERE {where}", (*vals, *args))

    def finish(self) -> Path:
        self.store.set_meta("finished_at", "2026-01-01T00:10:00+00:00")
        self.store.close()
        con = sqlite3.connect(self.dir / "results.sqlite")
        with con:
            for table, values, where, args in self.pending:
                self._extend(con, table, values, where, args)
        con.close()
        return self.dir
