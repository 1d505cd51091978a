"""The results store: schema, one-transaction writes, read API, torch-free import."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from reports import NoResultsError, ResultsStore, make_cell_id


def _cell(method="bn", corruption="fog", severity=3, seed=0, **kw):
    rng = np.random.default_rng(seed)
    base = {
        "method": method,
        "corruption": corruption,
        "severity": severity,
        "seed": seed,
        "status": "done",
        "frames": 8,
        "miou": float(rng.random()),
        "pixel_acc": 0.9,
        "ece": 0.05,
        "entropy": 0.4,
        "ms_per_frame": 3.2,
        "forward_passes": 4,
        "backward_passes": 0,
        "per_class_iou": [0.5] * 18 + [None],
        "safety_recall": {"car": 0.7, "person": None},
        "confusion": np.eye(19, dtype=np.int64) * 3,
        "finished_at": "2026-01-01T00:00:00",
    }
    base.update(kw)
    return base


def test_cell_id_is_filename_safe_and_unique():
    assert make_cell_id("tent", "gaussian_noise", 3, 1) == "tent__gaussian_noise__s3__seed1"
    assert make_cell_id("bn", "clean", 0.0, 0) == "bn__clean__s0__seed0"
    assert make_cell_id("my.mod:Cls", "fog", 2.5, 0) == "my.mod-Cls__fog__s2.5__seed0"
    assert make_cell_id("a", "b", 1, 0) != make_cell_id("a", "b", 1.5, 0)


def test_roundtrip_cells_segments_frames_and_meta(tmp_path):
    store = ResultsStore.create(tmp_path / "run")
    store.set_meta("scenario", {"name": "quick", "frames": 8})
    store.set_meta("class_names", ["road"] * 19)
    expected = [
        {"cell_id": make_cell_id("bn", "fog", 3, 0), "method": "bn", "corruption": "fog",
         "severity": 3, "seed": 0, "schedule": "static"},
        {"cell_id": make_cell_id("bn", "clean", 0, 0), "method": "bn", "corruption": "clean",
         "severity": 0, "seed": 0, "schedule": "static"},
    ]  # fmt: skip
    store.set_meta("expected_cells", expected)
    cid = store.write_cell(
        _cell(),
        segments=[{"segment": 0, "start_frame": 0, "stop_frame": 4, "label": "fog",
                   "corruption": "fog", "severity": 3, "miou": 0.5, "pixel_acc": 0.8,
                   "entropy": 0.3}],
        frames=[{"frame": i, "corruption": "fog", "severity": 3.0, "miou": 0.1 * i,
                 "entropy": 0.2} for i in range(3)],
    )  # fmt: skip
    store.close()
    assert cid == "bn__fog__s3__seed0"

    ro = ResultsStore(tmp_path / "run")  # read-only by default
    meta = ro.meta()
    assert meta["scenario"] == {"name": "quick", "frames": 8}
    cells = ro.cells()
    assert len(cells) == 1
    c = cells[0]
    assert c["cell_id"] == cid and c["schedule"] == "static" and c["status"] == "done"
    assert c["per_class_iou"][-1] is None and c["per_class_iou"][0] == 0.5
    assert c["safety_recall"] == {"car": 0.7, "person": None}
    assert c["confusion"][2][2] == 3 and len(c["confusion"]) == 19
    assert [s["segment"] for s in ro.segments()] == [0]
    assert [f["frame"] for f in ro.frames(cid)] == [0, 1, 2]
    assert ro.frames("nope") == []
    assert [m["corruption"] for m in ro.missing_cells()] == ["clean"]
    assert ro.is_partial()
    with pytest.raises(PermissionError):
        ro.set_meta("x", 1)
    # the sqlite file itself is accepted too
    assert len(ResultsStore(tmp_path / "run" / "results.sqlite").cells()) == 1


def test_rewriting_a_cell_replaces_it_and_its_rows(tmp_path):
    store = ResultsStore.create(tmp_path)
    frames = [{"frame": i, "miou": 0.5} for i in range(5)]
    store.write_cell(_cell(miou=0.1), frames=frames)
    store.write_cell(_cell(miou=0.2), frames=frames[:2])
    assert [c["miou"] for c in store.cells()] == [0.2]
    assert len(store.frames()) == 2


def test_write_is_atomic_when_a_row_is_bad(tmp_path):
    store = ResultsStore.create(tmp_path)
    with pytest.raises(ValueError, match="unknown field"):
        store.write_cell(_cell(), frames=[{"frame": 0, "bogus": 1}])
    # a duplicate segment key fails inside the transaction: nothing of the cell remains
    seg = {"segment": 0, "label": "a"}
    with pytest.raises(sqlite3.IntegrityError):
        store.write_cell(_cell(), segments=[seg, seg])
    assert store.cells() == [] and store.segments() == []


def test_status_filter_failed_cells_and_done_ids(tmp_path):
    store = ResultsStore.create(tmp_path)
    store.write_cell(_cell(method="a"))
    store.write_cell(
        {"method": "b", "corruption": "fog", "severity": 3, "seed": 0, "status": "failed",
         "error": "RuntimeError: boom", "miou": float("nan")}
    )  # fmt: skip
    assert [c["method"] for c in store.cells("failed")] == ["b"]
    assert store.cells("failed")[0]["miou"] is None  # NaN is stored as NULL
    assert store.done_ids() == {"a__fog__s3__seed0"}
    with pytest.raises(ValueError, match="valid choices"):
        store.cells("weird")


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"status": "running"}, "status"),
        ({"method": None}, "missing"),
        ({"colour": "red"}, "unknown field"),
    ],
)
def test_bad_cells_are_rejected(tmp_path, bad, match):
    store = ResultsStore.create(tmp_path)
    with pytest.raises(ValueError, match=match):
        store.write_cell(_cell(**bad))


def test_no_results_error_for_empty_folder_and_foreign_file(tmp_path):
    with pytest.raises(NoResultsError, match=r"results\.sqlite"):
        ResultsStore(tmp_path)
    with pytest.raises(NoResultsError):
        ResultsStore(tmp_path / "missing")
    (tmp_path / "results.sqlite").write_bytes(b"\x00\x01 not a database" * 10)
    with pytest.raises(NoResultsError):
        ResultsStore(tmp_path)
    assert issubclass(NoResultsError, ValueError)


def test_finished_run_is_not_partial_and_lists_samples(tmp_path):
    store = ResultsStore.create(tmp_path)
    cell = _cell()
    cell["cell_id"] = make_cell_id("bn", "fog", 3, 0)
    store.set_meta("expected_cells", [{k: cell[k] for k in ("cell_id", "method", "corruption")}])
    store.write_cell(cell)
    assert store.is_partial()  # no finished_at yet
    store.set_meta("finished_at", "2026-01-01T00:00:01")
    assert not store.is_partial()
    (tmp_path / "samples").mkdir()
    np.savez(tmp_path / "samples" / f"{cell['cell_id']}.npz", clean=np.zeros((2, 2, 3), np.uint8))
    assert [p.stem for p in store.samples()] == [cell["cell_id"]]


def test_store_is_in_wal_mode_and_values_are_json(tmp_path):
    ResultsStore.create(tmp_path).set_meta("wall_seconds", 1.5)
    con = sqlite3.connect(tmp_path / "results.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert json.loads(con.execute("SELECT value FROM meta").fetchone()[0]) == 1.5
    assert not math.isnan(1.5)


def test_importing_scenarios_store_does_not_import_torch():
    code = (
        "import sys, scenarios; from scenarios import ResultsStore, NoResultsError; "
        "assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_samples_are_written_atomically_under_a_safe_cell_id(tmp_path):
    store = ResultsStore.create(tmp_path)
    arrays = {"clean": np.zeros((2, 2, 3), np.uint8), "method": np.array("bn")}
    path = store.write_sample("bn__fog__s3__seed0", arrays)
    assert path == tmp_path / "samples" / "bn__fog__s3__seed0.npz"
    assert not list((tmp_path / "samples").glob(".*"))  # no temporary file left
    assert str(np.load(path)["method"]) == "bn"
    for bad in ("../escape", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="cell_id"):
            store.write_sample(bad, arrays)
    assert not (tmp_path.parent / "escape.npz").exists()


def test_a_folder_from_before_the_batches_column_is_upgraded_on_resume(tmp_path):
    con = sqlite3.connect(tmp_path / "results.sqlite")
    con.executescript(
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
        "CREATE TABLE cells(cell_id TEXT PRIMARY KEY, method TEXT NOT NULL, corruption TEXT NOT "
        "NULL, severity REAL NOT NULL, seed INTEGER NOT NULL, schedule TEXT NOT NULL DEFAULT "
        "'static', status TEXT NOT NULL, error TEXT);"
        "INSERT INTO cells VALUES ('a__fog__s3__seed0', 'a', 'fog', 3, 0, 'static', 'done', NULL)"
    )
    con.close()
    store = ResultsStore.create(tmp_path)
    store.write_cell(_cell(method="b", batches=2))
    cells = {c["method"]: c for c in store.cells()}
    assert cells["a"]["batches"] is None and cells["b"]["batches"] == 2


def test_run_meta_reads_version_1_folders_and_refuses_future_ones(tmp_path):
    store = ResultsStore.create(tmp_path)
    store.update_meta({
        "scenario": {"name": "old", "methods": [{"name": "source"}, {"name": "bn", "label": "b"}]},
        "class_names": ["road", "sky"],
        "corruption_families": {"fog": "weather"},
    })  # fmt: skip
    old = store.run_meta()
    assert old.method_labels == ["source", "b"] and old.baseline == "source"
    assert old.palette is None and old.protocol == "reset_each_shift"
    assert old.corruption_families == {"fog": "weather"} and old.class_names == ("road", "sky")
    store.set_meta("meta_version", 99)
    with pytest.raises(ValueError, match=r"meta_version: 99.*up to version 3"):
        store.run_meta()
