"""The roadshift CLI: every subcommand's happy path, and exit 2 with one line for bad input."""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
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
        "corruptions": [*sim.corruption_names(), *sim.corruption_groups()],
        "methods": ["source", "bn", "tent"],
        "models": ["test_bn", "roadseg_s"],
        "scenarios": scenario_names(),
    }[what]
    rows = {line.split()[0]: line for line in lines}
    assert set(expect) <= set(rows)
    assert all(len(line.split(None, 1)) == 2 for line in lines)  # every entry has a description
    assert "`" not in out  # plain text, no RST markup from docstrings
    if what == "scenarios":
        assert describe_bundled()["quick"] in out
    if what == "corruptions":  # the groups the errors mention, with their members
        for group, members in sim.corruption_groups().items():
            assert f"[group of {len(members)}] {', '.join(members)}" in rows[group]
    if what == "models":
        marked = {name for name, line in rows.items() if "[test model" in line}
        assert marked == {n for n in rows if n.startswith("test_")} != set()
        assert "[default]" in rows["roadseg_s"] and "deeper" not in rows["roadseg_m"]


def test_preview_writes_a_png_and_takes_lists_as_the_readme_writes_them(tmp_path, capsys):
    size = ["--height", "64", "--width", "128", "--frame", "1"]
    listed, repeated = tmp_path / "listed.png", tmp_path / "repeated.png"
    # roadshift preview -o sheet.png [--corruption NAME|GROUP ...] [--severity S ...]
    code = main(["preview", "-o", str(listed), "--corruption", "gaussian_noise", "fog",
                 "--severity", "1", "5", *size])  # fmt: skip
    assert code == 0
    code = main(["preview", "-o", str(repeated), "--corruption", "gaussian_noise", "--corruption",
                 "fog", "--severity", "1", "--severity", "5", *size])  # fmt: skip
    assert code == 0
    img = cv2.imread(str(listed))
    assert img is not None and img.shape[0] >= 2 * 64 and img.shape[1] >= 2 * 128
    assert np.array_equal(img, cv2.imread(str(repeated)))


def test_train_writes_a_checkpoint_that_is_enough_on_its_own(tmp_path, capsys):
    """No --batch-size on a tiny data set: the default shrinks to the frames there are (the
    default 16 would not fit the 4 training frames of 2 towns x 1 drive x 2 kept frames)."""
    out = tmp_path / "m.pt"
    code = main(["train", "--model", "test_bn", "-o", str(out), "--steps", "2",
                 "--streams", "1", "--frames-per-stream", "6", "--val-streams", "1",
                 "--quiet"])  # fmt: skip
    assert code == 0 and out.is_file()
    import perception

    model = perception.load_model(str(out))  # the checkpoint names its model
    meta = model.checkpoint_meta
    assert model.model_name == "test_bn" and meta["model"] == "test_bn"
    assert meta["data"]["batch_size"] == 4 and meta["data"]["train_frames"] == 4
    assert meta["val_metrics"]["frames"] == meta["data"]["val_frames"] == 4
    assert f"{meta['val_metrics']['miou']:.3f}" in capsys.readouterr().out


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
    assert "is a folder" in _bad(["train", "-o", str(tmp_path)], capsys)
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


# --------------------------------------------------------------------------- paths and folders
@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_impossible_out_folders_are_one_line_and_exit_2(tmp_path, capsys):
    scenario = str(write_yaml(tmp_path / "t.yaml", tiny(methods=["source"])))
    (tmp_path / "a-file").write_text("not a folder")
    # /proc/x: no folder can be made there, even by root, whom permission checks let through
    assert "/proc/x/run: out: " in _bad(["run", scenario, "--out", "/proc/x/run"], capsys)
    assert not Path("/proc/x").exists()
    err = _bad(["run", scenario, "--out", str(tmp_path / "a-file" / "run")], capsys)
    assert "is a file, not a folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "t.yaml"]


def test_a_folder_that_cannot_be_made_leaves_no_parents_behind(tmp_path, monkeypatch):
    from scenarios import ScenarioError
    from scenarios._folder import make_folder

    real_mkdir, calls = Path.mkdir, []

    def failing_mkdir(self, *args, **kwargs):
        calls.append(self)
        if len(calls) == 2:
            raise PermissionError(13, "Permission denied")
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", failing_mkdir)
    with pytest.raises(ScenarioError, match=r"out: cannot create the folder \(Permission denied\)"):
        make_folder(tmp_path / "a" / "b" / "c")
    assert calls[0] == tmp_path / "a" and not (tmp_path / "a").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_export_to_a_folder_or_an_unwritable_path_is_refused_without_a_stray_file(
    run_dir, tmp_path, capsys
):
    folder = tmp_path / "folder"
    folder.mkdir()
    assert "is a folder" in _bad(["export", str(run_dir), "-o", str(folder)], capsys)
    assert "cannot write '/proc/x.csv'" in _bad(["export", str(run_dir), "-o", "/proc/x.csv"],
                                                capsys)  # fmt: skip
    assert "is a file" in _bad(["export", str(run_dir), "-o", str(run_dir / "run.log" / "x.csv")],
                               capsys)  # fmt: skip
    assert list(folder.iterdir()) == [] and not list(tmp_path.glob(".*"))


def test_a_scenario_name_cannot_leave_the_runs_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    for name in ("../../x", "../x", "/abs/x", ".hidden", "a/b"):  # /abs/x: any absolute name
        scenario = write_yaml(tmp_path / "t.yaml", tiny(name=name, methods=["source"]))
        err = _bad(["run", str(scenario), "--quiet"], capsys)
        assert "name: must be a plain folder name" in err and repr(name) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.yaml", "work"]
    assert list((tmp_path / "work").iterdir()) == []


def test_a_changed_scenario_names_the_fields_that_differ(run_dir, tmp_path, capsys):
    changed = write_yaml(tmp_path / "c.yaml", tiny(frames=8, batch_size=2))
    err = _bad(["run", str(changed), "--out", str(run_dir), "--quiet"], capsys)
    assert "frames (6 → 8)" in err and "batch_size (3 → 2)" in err


def test_run_without_out_uses_runs_slash_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    scenario = write_yaml(tmp_path / "t.yaml", tiny(methods=["source"], corruptions=[]))
    assert main(["run", str(scenario), "--quiet", "--no-report", "--workers", "1"]) == 0
    assert len(ResultsStore(tmp_path / "runs" / "tiny").cells("done")) == 1


# --------------------------------------------------------------------------- the program itself
def test_version(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"roadshift {version('roadshift')}"


def test_help_is_plain_text_and_train_shows_every_default_and_the_time(capsys):
    import perception
    from scenarios._train_data import DEFAULT_STEPS

    for args in (
        ["--help"],
        *([cmd, "--help"] for cmd in ("run", "report", "export", "list", "preview", "train")),
    ):
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "`" not in out, args
    main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{DEFAULT_STEPS} steps" in text and "25-31 minutes" in text
    assert f"(default: {perception.DEFAULT_MODEL})" in text
    options = re.findall(r"(--[a-z-]+) [A-Z_]+(?: \[[A-Z_ .]+\])? (.*?)(?= --|$)",
                         text.split("options:")[1])  # fmt: skip
    valued = {opt: help_text for opt, help_text in options if opt not in ("--out", "--output")}
    assert set(valued) >= {"--model", "--steps", "--batch-size", "--seed", "--streams", "--towns",
                           "--frames-per-stream", "--val-streams", "--threads"}  # fmt: skip
    assert all("(default: " in h for h in valued.values()), valued


def test_train_checks_its_options_before_rendering(tmp_path, monkeypatch, capsys):
    import torch

    from scenarios import _train_data

    def no_rendering(*args, **kwargs):
        raise AssertionError("rendered before the options were checked")

    monkeypatch.setattr(_train_data, "render_frames", no_rendering)
    small = ["--streams", "1", "--frames-per-stream", "6", "-o", str(tmp_path / "m.pt")]
    err = _bad(["train", "--batch-size", "5", *small], capsys)
    assert "batch_size: 5 is more than the 4 training frames" in err
    assert "urban" in _bad(["train", "--towns", "atlantis", *small], capsys)
    assert "steps" in _bad(["train", "--steps", "0", *small], capsys)
    assert "valid choices: auto, cpu, cuda" in _bad(["train", "--device", "tpu", *small], capsys)
    if not torch.cuda.is_available():
        assert "no CUDA device" in _bad(["train", "--device", "cuda", *small], capsys)
    assert not (tmp_path / "m.pt").exists()


def test_ctrl_c_says_what_it_leaves(tmp_path, monkeypatch, capsys):
    from scenarios import _runner, _train_data

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_train_data, "train_default", interrupted)
    assert main(["train", "-o", str(tmp_path / "m.pt"), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert "no checkpoint was written" in err and "resum" not in err
    monkeypatch.setattr(_runner, "run_scenario", interrupted)
    scenario = write_yaml(tmp_path / "t.yaml", tiny())
    assert main(["run", str(scenario), "--out", str(tmp_path / "r")]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err


def test_a_foreign_sim_or_perception_is_one_line_and_exit_2(tmp_path):
    """A user's own sim.py in the current folder, or another distribution's perception package
    earlier on the path, must not be used as roadshift's (nor imported at all)."""
    (tmp_path / "sim.py").write_text("raise SystemExit('SIM-PY-WAS-IMPORTED')\n")
    other = tmp_path / "site"
    (other / "perception").mkdir(parents=True)
    (other / "perception" / "__init__.py").write_text(
        "raise SystemExit('PERCEPTION-WAS-IMPORTED')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cases = [
        (tmp_path, env, "'sim' resolves to " + str(tmp_path / "sim.py")),
        (other.parent.parent, {**env, "PYTHONPATH": str(other)},
         "'perception' resolves to " + str(other / "perception" / "__init__.py")),
    ]  # fmt: skip
    for cwd, run_env, needle in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "scenarios.cli", "list", "methods"],
            capture_output=True, text=True, timeout=60, cwd=cwd, env=run_env,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr
        assert "WAS-IMPORTED" not in proc.stderr and "Traceback" not in proc.stderr


def test_a_package_of_ours_replaced_by_another_distribution_is_refused(monkeypatch, capsys):
    """Files of another distribution installed over ours: the location is right, the content is
    not (it lacks the names roadshift's sim has)."""
    fake = types.ModuleType("sim")
    fake.__spec__ = importlib.util.spec_from_file_location("sim", sim.__file__)
    monkeypatch.setitem(sys.modules, "sim", fake)
    assert "is not roadshift's package" in _bad(["list", "corruptions"], capsys)


def test_export_segments_leads_with_the_pinned_columns(run_dir, tmp_path):
    out = tmp_path / "seg.csv"
    assert main(["export", str(run_dir), "--segments", "-o", str(out)]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    pinned = ["method", "protocol", "order", "round", "corruption", "severity", "frames", "miou",
              "online_miou", "skipped_frames", "entropy"]  # fmt: skip
    assert list(rows[0])[: len(pinned)] == pinned
    assert len(rows) == len(ResultsStore(run_dir).segments()) == 9  # one segment per cell here
    row = next(r for r in rows if r["method"] == "bn" and r["corruption"] == "contrast")
    assert row["protocol"] == "reset_each_shift" and row["cell_status"] == "done"
    assert float(row["miou"]) == pytest.approx(
        next(c["miou"] for c in ResultsStore(run_dir).cells() if c["cell_id"] == row["cell_id"])
    )


def test_set_overrides_keys_and_names_itself_in_errors(tmp_path, capsys):
    scenario = write_yaml(tmp_path / "s.yaml", tiny())
    out = tmp_path / "run"
    args = ["run", str(scenario), "--out", str(out), "--workers", "1", "--quiet", "--no-report"]
    sets = ["--set", "frames=3", "--set", "seeds=[4]", "--set", "methods=[source]",
            "--set", "world.town=rural"]  # fmt: skip
    assert main([*args, *sets]) == 0
    store = ResultsStore(out)
    sc = store.meta()["scenario"]
    assert (sc["frames"], sc["seeds"], sc["world"]) == (3, [4], {"town": "rural"})
    assert {c["frames"] for c in store.cells()} == {3} and len(store.cells()) == 3
    capsys.readouterr()
    for bad, needle in [
        ("frames=abc", "--set frames=abc: frames: Input should be a valid integer"),
        ("world.town=atlantis", "--set world.town=atlantis: world: unknown town 'atlantis'"),
        ("online.eta=-1", "--set online.eta=-1: online.eta"),
        ("frames.x=1", "--set frames.x=1: frames is a int, not a mapping"),
        ("nokey", "--set nokey: expected KEY=VALUE"),
    ]:
        fresh = tmp_path / f"fresh-{len(bad)}"
        assert main(["run", str(scenario), "--out", str(fresh), "--set", bad]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1 and not fresh.exists()


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    scenario = write_yaml(tmp_path / "s.yaml", tiny(protocol="continual", rounds=3))
    out = tmp_path / "run"
    assert main(["run", str(scenario), "--out", str(out), "--dry-run", "--workers", "2",
                 "--set", "frames=5"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert not out.exists()
    assert "protocol continual, 3 rounds" in text
    assert "6 cells in 4 units" in text  # one clean unit of 3 cells + one stream per method
    assert "continual seed 0 (bn) (1 cells): 30 frames" in text  # 2 shifts x 3 rounds x 5
    assert re.search(r"estimated time: \d+(\.\d)? (s|min) with 2 worker", text)
    assert "nothing was written" in text


def test_run_with_a_device_that_does_not_exist_is_one_line_and_writes_nothing(tmp_path, capsys):
    import torch

    scenario = write_yaml(tmp_path / "t.yaml", tiny())
    run = ["run", str(scenario), "--out", str(tmp_path / "r")]
    assert "device: unknown device 'tpu'" in _bad([*run, "--device", "tpu"], capsys)
    if not torch.cuda.is_available():
        assert "no CUDA device" in _bad([*run, "--device", "cuda"], capsys)
    assert not (tmp_path / "r").exists()
