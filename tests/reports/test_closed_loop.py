"""The closed-loop part of a report: pooling drives, the tables' arithmetic, figures, strips.

The folder is written through the store's write API with made-up drives; the report must compute
its numbers from whatever the store holds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from reports import ResultsStore, build_report, make_cell_id
from reports._closed_loop import pool_drives
from sim import CLASS_NAMES, PALETTE

H, W, T = 16, 32, 120


def _drive(seed: int, km: float, failures: list[tuple[str, int, float]], rms: float,
           steps: int = 100, ttc: float | None = 4.0) -> dict:  # fmt: skip
    kinds = [k for k, _, _ in failures]
    return {
        "seed": seed,
        "distance_m": 1000.0 * km,
        "steps": steps,
        "controlled_steps": steps - 30 * len(failures),
        "interventions": len(failures),
        "collisions": kinds.count("collision"),
        "off_road": kinds.count("off_road"),
        "stalls": kinds.count("stall"),
        "first_failure_m": failures[0][2] if failures else None,
        "offset_rms": rms,
        "min_ttc": ttc,
        "failures": [list(f) for f in failures],
    }


def test_pooling_totals_rates_and_censored_distances_by_hand() -> None:
    rows = [
        _drive(0, 0.4, [("stall", 50, 120.0), ("collision", 200, 300.0)], 0.1),
        _drive(1, 0.4, [], 0.2, ttc=None),
        _drive(2, 0.2, [("off_road", 10, 20.0)], 0.5, ttc=1.5),
    ]
    s = pool_drives(rows)
    assert s.drives == 3 and s.distance_km == pytest.approx(1.0)
    assert s.interventions == 3 and s.interventions_per_km == pytest.approx(3.0)
    # the drive without a failure counts its whole 400 m
    assert s.distance_to_failure_m == pytest.approx((120.0 + 400.0 + 20.0) / 3)
    assert (s.collisions, s.off_road, s.stalls, s.drives_failed) == (1, 1, 1, 2)
    n = [40, 100, 70]  # controlled steps
    expect = math.sqrt((0.1**2 * n[0] + 0.2**2 * n[1] + 0.5**2 * n[2]) / sum(n))
    assert s.offset_rms == pytest.approx(expect)
    assert s.min_ttc == 1.5
    empty = pool_drives([])
    assert empty.interventions_per_km is None and empty.offset_rms is None


def _record(n_drives: int, failure_at: int | None, rng: np.random.Generator) -> dict:
    distance = np.cumsum(np.full((n_drives, T), 1.2, np.float32), axis=1)
    offset = rng.normal(0, 0.1, (n_drives, T)).astype(np.float32)
    event = np.zeros((n_drives, T), np.uint8)
    out = {
        "distance": distance,
        "offset": offset,
        "speed": np.full((n_drives, T), 12.0, np.float32),
        "auto": np.zeros((n_drives, T), bool),
        "event": event,
    }
    if failure_at is not None:
        event[0, failure_at] = 1
        k = 4
        out.update(
            strip_offset=np.array([-20, -10, -5, 0]),
            strip_frame=np.array([failure_at - 20, failure_at - 10, failure_at - 5, failure_at]),
            strip_clean=rng.integers(0, 255, (k, H, W, 3), dtype=np.uint8),
            strip_corrupted=rng.integers(0, 255, (k, H, W, 3), dtype=np.uint8),
            strip_predicted=rng.integers(0, 19, (k, H, W), dtype=np.uint8),
            strip_ground_truth=rng.integers(0, 19, (k, H, W), dtype=np.uint8),
            strip_drive=np.array(0),
            strip_kind=np.array("collision"),
            strip_distance=np.array(float(distance[0, failure_at])),
        )
    return out


def _folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    store = ResultsStore.create(tmp_path / "run")
    store.update_meta(
        {
            "meta_version": 2,
            "class_names": list(CLASS_NAMES),
            "palette": np.asarray(PALETTE).tolist(),
            "methods": [{"label": m, "name": m, "options": {}} for m in ("oracle", "source", "bn")],
            "baseline": "source",
            "closed_loop": {"drives": 2, "distance_m": 400.0, "dt": 0.1},
            "scenario": {"name": "loop-test", "methods": ["source", "bn"]},
            "finished_at": "2025-01-01T00:00:00+00:00",
        }
    )
    # (method, corruption, severity) -> per seed: list of (km, failures)
    plan = {
        ("oracle", "clean", 0.0): [[(0.4, []), (0.4, [])]],
        ("source", "clean", 0.0): [[(0.4, []), (0.4, [("stall", 90, 150.0)])]],
        ("source", "fog", 5.0): [
            [(0.4, [("collision", 10, 12.0)] * 3), (0.4, [("off_road", 20, 30.0)])]
        ],
        ("bn", "clean", 0.0): [[(0.4, []), (0.4, [])]],
        ("bn", "fog", 5.0): [[(0.4, [("collision", 25, 40.0)]), (0.4, [])]],
    }  # fmt: skip
    for (method, corr, sev), seeds in plan.items():
        for seed, drives in enumerate(seeds):
            cid = make_cell_id(method, corr, sev, seed)
            rows = [
                _drive(1000 * seed + b, km, f, 0.1 + 0.05 * b) for b, (km, f) in enumerate(drives)
            ]
            failure = next((f[0][1] for _, f in drives if f), None)
            store.write_drive_record(cid, _record(len(drives), failure, rng))
            cell = {
                "cell_id": cid, "method": method, "corruption": corr, "severity": sev,
                "seed": seed, "status": "done", "loop": "closed", "frames": 2 * T,
                "miou": 0.7 if corr == "clean" else 0.3,
            }  # fmt: skip
            store.write_cell(cell, drives=rows)
    store.close()
    return tmp_path / "run"


def test_a_closed_loop_report_pools_drives_and_compares_with_source_and_the_oracle(
    tmp_path: Path,
) -> None:
    run = _folder(tmp_path)
    with ResultsStore(run) as store:
        rows = store.drives(make_cell_id("source", "fog", 5.0, 0))
        assert [r["drive"] for r in rows] == [0, 1]
        assert rows[0]["failures"] == [["collision", 10, 12.0]] * 3
    paths = build_report(run, quiet=True)
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "## Closed loop: perception drives the car" in md
    assert "Robustness under corruption" not in md  # no open-loop grid in a closed-loop run
    pivot = md.split("### Closed loop: interventions per km")[1].split("###")[0]
    lines = {ln.split("|")[1].strip(): ln for ln in pivot.splitlines() if ln.startswith("| ")}
    # source under fog s5: 4 interventions over 0.8 km; bn: 1 over 0.8 km; the oracle: 0
    assert "| 5.00 |" in lines["source"]
    # bn: 1.25 / km, 3.75 fewer than source, closing 75 % of source's 5.00 gap to the oracle
    assert "1.25 (-3.75, 75 % of gap)" in lines["bn"]
    assert "0.00 (-1.25, 100 % of gap)" in lines["bn"]  # clean: source 1.25 / km, bn none
    detail = md.split("### Closed loop: drives per method and shift")[1].split("###")[0]
    fog_src = next(ln for ln in detail.splitlines() if "fog s5" in ln and "| source |" in ln)
    cells = [c.strip() for c in fog_src.split("|")[1:-1]]
    assert cells[2:5] == ["2", "0.80", "5.00 (4)"]
    assert cells[5] == f"{(12.0 + 30.0) / 2:.0f}"  # mean metres to the first failure
    assert cells[6:9] == ["3", "1", "0"]  # collisions, off-road, stalls
    figures = sorted(p.name for p in (run / "figures").glob("closed_loop_*.png"))
    # offsets, and one strip each for source and bn (the oracle never failed)
    assert figures == [
        "closed_loop_offsets.png",
        "closed_loop_strip_1.png",
        "closed_loop_strip_2.png",
    ]
    assert "First failure: source" in md and "First failure: bn" in md
    assert "First failure: oracle" not in md
    html = paths["html"].read_text(encoding="utf-8")
    assert 'id="closed-loop-section"' in html and "closed_loop_offsets" in html
