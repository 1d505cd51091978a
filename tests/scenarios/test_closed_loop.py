"""Closed-loop scenarios (``loop: closed``): every method drives, the oracle and source are
reference rows, drives are paired across methods, and runs are deterministic and resumable."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import sim
from reports import ResultsStore, build_report, make_cell_id
from scenarios import ScenarioError, load_scenario, run_scenario
from scenarios._closed import ORACLE, drive_seeds, shift_seed
from scenarios._schema import ClosedLoopSpec
from scenarios._validate import validate_scenario

from .conftest import comparable, tiny

HELPERS = "tests.scenarios.helpers"
LOOP = {"drives": 2, "distance_m": 20.0}


def closed(**changes) -> dict:
    """A closed-loop tiny scenario: the oracle, source (added) and bn under one shift."""
    data = tiny(methods=["bn"], corruptions=["gaussian_noise"], severities=[3],
                include_clean=False, loop="closed", closed_loop=dict(LOOP))  # fmt: skip
    data.update(changes)
    return data


def _records(run: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for path in sorted((run / "drives").glob("*.npz")):
        with np.load(path) as z:
            out[path.stem] = {k: z[k] for k in z.files}
    return out


def _same_records(a: Path, b: Path) -> None:
    ra, rb = _records(a), _records(b)
    assert sorted(ra) == sorted(rb) != []
    for name in ra:
        assert sorted(ra[name]) == sorted(rb[name])
        for key in ra[name]:
            assert np.array_equal(ra[name][key], rb[name][key]), (name, key)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("closed") / "run"
    assert run_scenario(validate_scenario(closed()), out, workers=1, quiet=True).ok
    return out


def test_every_method_drives_beside_the_oracle_and_source(reference: Path) -> None:
    with ResultsStore(reference) as store:
        cells = {c["cell_id"]: c for c in store.cells()}
        meta = store.meta()
        drives = store.drives()
    assert sorted((c["method"], c["corruption"]) for c in cells.values()) == [
        ("bn", "gaussian_noise"), (ORACLE, "clean"), ("source", "gaussian_noise")
    ]  # fmt: skip
    assert all(c["loop"] == "closed" and c["status"] == "done" for c in cells.values())
    assert [m["label"] for m in meta["methods"]] == [ORACLE, "source", "bn"]
    assert meta["baseline"] == "source"
    assert meta["closed_loop"]["drives"] == 2 and meta["closed_loop"]["distance_m"] == 20.0
    # each cell drove the same two worlds (paired drives), seeded as documented
    by_cell: dict[str, list[dict]] = {}
    for d in drives:
        by_cell.setdefault(d["cell_id"], []).append(d)
    assert sorted(by_cell) == sorted(cells)
    for rows in by_cell.values():
        assert [r["seed"] for r in rows] == drive_seeds(0, 2)
    # an adapting method is scored on the frames it saw (mIoU), the oracle is not
    assert cells["bn__gaussian_noise__s3__seed0"]["miou"] is not None
    assert cells["oracle__clean__s0__seed0"]["miou"] is None
    records = _records(reference)
    assert sorted(records) == sorted(cells)
    for name, rec in records.items():
        n = len(by_cell[name])
        assert rec["distance"].shape[0] == rec["event"].shape[0] == n
        failed = any(r["interventions"] for r in by_cell[name])
        assert ("strip_clean" in rec) == failed  # the frames around the first failure


def test_the_oracle_cell_is_the_drive_sim_computes_on_ground_truth(reference: Path) -> None:
    """The runner's oracle rows against ``sim.ClosedLoop`` driven here on ground truth."""
    sc = validate_scenario(closed())
    config = sim.WorldConfig(height=sc.height, width=sc.width, **sc.world)
    loop = sim.ClosedLoop(config, drive_seeds(0, 2), shift_seed=shift_seed("clean", 0.0, 0),
                          distance_m=LOOP["distance_m"])  # fmt: skip
    while not loop.done:
        loop.observe()
        loop.act(loop.ground_truth())
    expected = [r.row() for r in loop.results()]
    with ResultsStore(reference) as store:
        stored = store.drives("oracle__clean__s0__seed0")
    assert len(stored) == len(expected) == 2
    for row, exp in zip(stored, expected, strict=True):
        assert {k: row[k] for k in exp} == exp  # floats stored exactly
        assert exp["interventions"] == 0 and exp["distance_m"] == LOOP["distance_m"]


def test_the_report_has_the_closed_loop_section(reference: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    md = build_report(run, quiet=True)["markdown"].read_text(encoding="utf-8")
    assert "### Closed loop: interventions per km" in md
    pivot = md.split("### Closed loop: interventions per km")[1].split("###")[0]
    assert {ln.split("|")[1].strip() for ln in pivot.splitlines() if ln.startswith("| ")} >= {
        ORACLE, "source", "bn"
    }  # fmt: skip


def test_resuming_a_partial_closed_loop_run_gives_the_uninterrupted_results(
    reference: Path, tmp_path: Path
) -> None:
    """A run stopped after some cells (a half-written drive record left behind) resumes to
    the same rows and records as the uninterrupted run."""
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    con = sqlite3.connect(run / "results.sqlite")
    with con:
        for table in ("cells", "drives"):
            con.execute(f"DELETE FROM {table} WHERE cell_id LIKE 'bn__%'")
    con.close()
    with ResultsStore(run) as store:
        assert store.is_partial()
    (run / "drives" / "bn__gaussian_noise__s3__seed0.npz").unlink()
    (run / "drives" / ".bn__gaussian_noise__s3__seed0.tmp.npz").write_bytes(b"half")
    summary = run_scenario(validate_scenario(closed()), run, workers=1, quiet=True)
    assert summary.ok and summary.skipped == 2
    assert not list((run / "drives").glob(".*"))
    with ResultsStore(run) as a, ResultsStore(reference) as b:
        assert comparable(a) == comparable(b) and a.drives() == b.drives()
    _same_records(run, reference)


@pytest.mark.slow
def test_closed_loop_runs_do_not_depend_on_the_worker_count(
    reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "two"
    assert run_scenario(validate_scenario(closed()), out, workers=2, quiet=True).ok
    with ResultsStore(out) as a, ResultsStore(reference) as b:
        assert comparable(a) == comparable(b) and a.drives() == b.drives()
    _same_records(out, reference)


def test_a_method_that_raises_mid_drive_is_a_failed_cell(tmp_path: Path) -> None:
    sc = validate_scenario(closed(methods=[f"{HELPERS}:FailingAdapter"],
                                  closed_loop={"drives": 1, "distance_m": 5.0}))  # fmt: skip
    summary = run_scenario(sc, tmp_path / "run", workers=1, quiet=True)
    failing = make_cell_id(f"{HELPERS}:FailingAdapter", "gaussian_noise", 3.0, 0)
    assert list(summary.failed) == [failing]
    assert "adapter exploded on purpose" in summary.failed[failing]
    with ResultsStore(tmp_path / "run") as store:
        assert store.drives(failing) == []  # nothing half-scored
        assert len(store.drives("source__gaussian_noise__s3__seed0")) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"methods": [{"name": "bn", "label": "oracle"}]}, r"methods\[0\]: the label 'oracle'"),
        ({"schedule": [{"kind": "continual", "corruptions": ["fog"]}]}, "schedule: a closed"),
        ({"world_shifts": [{"town": "rural"}]}, "world_shifts: a closed"),
        ({"loop": "open"}, "closed_loop: applies only to loop: closed"),
        ({"protocol": "continual"}, "protocol: a closed-loop scenario"),
        ({"window": 4, "batch_size": 1}, "window: a closed-loop scenario"),
        ({"sampling": "iid"}, "sampling: a closed-loop scenario"),
        ({"loop": "round"}, "loop: "),
        ({"closed_loop": {"drives": 0}}, r"closed_loop\.drives: "),
        ({"closed_loop": {"laps": 2}}, "closed_loop.laps: unknown key; valid keys: drives, "),
    ],
)
def test_bad_closed_loop_scenarios_name_the_field(changes: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        validate_scenario(closed(**changes))


def test_source_is_added_to_a_closed_loop_that_lacks_it() -> None:
    assert validate_scenario(closed(methods=["tent"])).method_keys() == ["source", "tent"]
    assert validate_scenario(closed(methods=["tent", "source"])).method_keys() == [
        "tent", "source"
    ]  # fmt: skip
    assert validate_scenario(tiny(methods=["tent"])).method_keys() == ["tent"]  # open loop


def test_the_bundled_closed_loop_scenario_drives_the_pinned_shifts() -> None:
    sc = load_scenario("closed-loop")
    assert sc.loop == "closed" and sc.include_clean
    assert sc.corruptions == ["fog_depth", "night", "lens_dirt", "gaussian_noise"]
    assert len(sc.severities) == 2
    assert sc.method_keys()[:3] == ["source", "bn", "tent"]


def test_the_readme_closed_loop_example_is_valid(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Closed loop: does the car stay on the road?")[1]
    block = section.split("```yaml\n")[1].split("```")[0]
    path = tmp_path / "my-drive.yaml"
    path.write_text(block, encoding="utf-8")
    sc = load_scenario(path)
    assert sc.loop == "closed" and sc.method_keys() == ["source", "bn", "tent"]
    assert sc.closed_loop == ClosedLoopSpec()  # the README states the defaults
