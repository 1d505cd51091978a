"""The roadshift CLI: every subcommand's happy path, and exit 2 with one line for bad input."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

import sim
from scenarios import ResultsStore, scenario_names
from scenarios._schema import describe_bundled
from scenarios.cli import main

from .conftest import tiny, write_yaml

ROOT = Path(__file__).resolve().parents[2]
HELPERS = "tests.scenarios.helpers"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """``roadshift run`` on the tiny scenario (report included)."""
    base = tmp_path_factory.mktemp("cli")
    scenario = write_yaml(base / "tiny.yaml", tiny())
    out = base / "run"
    assert main(["run", str(scenario), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    return out


def test_run_writes_results_and_report(run_dir):
    store = ResultsStore(run_dir)
    assert len(store.cells("done")) == 9 and not store.is_partial()
    assert (run_dir / "report.html").is_file() and (run_dir / "report.md").is_file()


def test_report_regenerates(run_dir, capsys):
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir), "--quiet"]) == 0
    assert (run_dir / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out


def test_export_columns_and_rows(run_dir, tmp_path):
    out = tmp_path / "cells.csv"
    assert main(["export", str(run_dir), "-o", str(out)]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    required = ["scenario", "method", "corruption", "severity", "seed", "frames", "miou",
                "pixel_acc", "ece", "status", "error", "ms_per_frame"]  # fmt: skip
    header = list(rows[0])
    assert header[: len(required)] == required
    ious = [h for h in header if h.startswith("iou_")]
    assert len(ious) == 19 and "iou_traffic_light" in ious and "iou_road" in ious
    assert len(rows) == 9 and {r["scenario"] for r in rows} == {"tiny"}
    assert {r["corruption"] for r in rows} == {"clean", "gaussian_noise", "contrast"}
    stored = {c["cell_id"]: c for c in ResultsStore(run_dir).cells()}
    for r in rows:
        cell = stored[r["cell_id"]]
        assert float(r["miou"]) == pytest.approx(cell["miou"])
        road = cell["per_class_iou"][0]
        assert (r["iou_road"] == "") == (road is None)
        assert r["status"] == "done" and r["error"] == ""


def test_run_with_a_failing_method_exits_1_and_keeps_the_rest(tmp_path, capsys):
    scenario = write_yaml(tmp_path / "f.yaml", tiny(
        methods=["source", f"{HELPERS}:FailingAdapter"], corruptions=["contrast"]))  # fmt: skip
    out = tmp_path / "run"
    code = main(["run", str(scenario), "--out", str(out), "--quiet", "--no-report",
                 "--workers", "1"])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "2 failed" in err and "exploded on purpose" in err
    assert len(ResultsStore(out).cells("done")) == 2


@pytest.mark.parametrize("what", ["corruptions", "methods", "models", "scenarios"])
def test_list(what, capsys):
    assert main(["list", what]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    expect = {
        "corruptions": sim.corruption_names(),
        "methods": ["source", "bn", "tent"],
        "models": ["test_bn", "roadseg_s"],
        "scenarios": scenario_names(),
    }[what]
    names = {line.split()[0] for line in lines}
    assert set(expect) <= names
    assert all(len(line.split(None, 1)) == 2 for line in lines)  # every entry has a description
    if what == "scenarios":
        assert describe_bundled()["quick"] in out


def test_preview_writes_a_png(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    code = main(["preview", "-o", str(out), "--corruption", "gaussian_noise", "--corruption",
                 "fog", "--severity", "1", "--severity", "5", "--height", "64", "--width",
                 "128", "--frame", "1"])  # fmt: skip
    assert code == 0
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] >= 2 * 64 and img.shape[1] >= 2 * 128


def test_train_writes_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "m.pt"
    code = main(["train", "--model", "test_bn", "-o", str(out), "--steps", "2",
                 "--batch-size", "2", "--streams", "1", "--frames-per-stream", "6",
                 "--val-streams", "1", "--quiet"])  # fmt: skip
    assert code == 0 and out.is_file()
    import perception

    model = perception.load_model("test_bn", out)
    assert model.checkpoint_meta["val_metrics"]["miou"] >= 0.0


def _bad(args: list[str], capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and err.startswith("roadshift: error: ")
    return err


def test_run_bad_input_exits_2_without_creating_the_folder(tmp_path, capsys):
    out = tmp_path / "never"
    good = write_yaml(tmp_path / "good.yaml", tiny())
    cases = [
        (["run", "no-such-scenario", "--out", str(out)], "bundled"),
        (["run", str(tmp_path / "missing.yaml"), "--out", str(out)], "no such file"),
        (["run", str(write_yaml(tmp_path / "k.yaml", tiny(speed=3))), "--out", str(out)],
         "speed"),
        (["run", str(write_yaml(tmp_path / "c.yaml", tiny(corruptions=["fgo"]))), "--out",
          str(out)], "fog"),
        (["run", str(write_yaml(tmp_path / "o.yaml", tiny(methods=[
            {"name": "bn", "options": {"prior_strenght": 3}}]))), "--out", str(out)],
         "methods[0].options"),
        (["run", str(write_yaml(tmp_path / "m.yaml", tiny(model=f"{HELPERS}:wrong_model"))),
          "--out", str(out)], "expected (N, 19, 64, 128)"),
        (["run", str(good), "--out", str(out), "--workers", "0"], "--workers"),
        (["run", str(good), "--out", str(out), "--executor", "dask"], "--executor"),
    ]  # fmt: skip
    for args, needle in cases:
        err = _bad(args, capsys)
        assert needle in err, (args, err)
        assert not out.exists()


def test_other_bad_input_exits_2(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "results.sqlite" in _bad(["report", str(empty)], capsys)
    assert "results.sqlite" in _bad(["export", str(empty), "-o", str(tmp_path / "x.csv")], capsys)
    assert "corruptions" in _bad(["list", "widgets"], capsys)
    assert "gaussian_noise" in _bad(["preview", "--corruption", "gausian", "-o",
                                     str(tmp_path / "p.png")], capsys)  # fmt: skip
    assert ".png" in _bad(["preview", "-o", str(tmp_path / "p.jpg")], capsys)
    assert "(0, 5]" in _bad(["preview", "--severity", "9"], capsys)
    assert "does not exist" in _bad(["train", "-o", str(tmp_path / "no" / "m.pt")], capsys)
    assert "test_bn" in _bad(["train", "--model", "nope", "-o", str(tmp_path / "m.pt"),
                              "--quiet"], capsys)  # fmt: skip
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "p.png").exists()


def test_console_script_bad_input_is_one_line_in_a_real_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "scenarios.cli", "run", "nope", "--out", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "d").exists()


def test_the_saved_scenario_resumes_its_own_folder(run_dir, capsys):
    before = ResultsStore(run_dir).cells()
    code = main(["run", str(run_dir / "scenario.yaml"), "--out", str(run_dir), "--quiet",
                 "--no-report", "--workers", "1"])  # fmt: skip
    assert code == 0
    assert ResultsStore(run_dir).cells() == before  # nothing recomputed, nothing duplicated


def test_run_without_out_uses_runs_slash_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    scenario = write_yaml(tmp_path / "t.yaml", tiny(methods=["source"], corruptions=[]))
    assert main(["run", str(scenario), "--quiet", "--no-report", "--workers", "1"]) == 0
    assert len(ResultsStore(tmp_path / "runs" / "tiny").cells("done")) == 1
