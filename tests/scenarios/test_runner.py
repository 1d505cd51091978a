"""The runner: correct numbers, shared frames, resume, idempotence, failure isolation, executors."""

from __future__ import annotations

import importlib.util
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import perception
import sim
from scenarios import ResultsStore, expand_cells, run_scenario
from scenarios._cells import stable_int
from scenarios._validate import validate_scenario
from scenarios._work import build_model

from .conftest import comparable, tiny, write_yaml

HELPERS = "tests.scenarios.helpers"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One uninterrupted in-process run of the tiny scenario, shared by several tests."""
    out = tmp_path_factory.mktemp("ref") / "run"
    summary = run_scenario(validate_scenario(tiny()), out, workers=1, quiet=True)
    return out, summary


def test_run_stores_every_expected_cell_with_metrics_and_meta(reference_run):
    out, summary = reference_run
    assert summary.ok and summary.total == 9 and summary.done == 9 and summary.skipped == 0
    store = ResultsStore(out)
    cells = store.cells()
    expected = store.expected_cells()
    assert sorted(c["cell_id"] for c in cells) == sorted(c["cell_id"] for c in expected)
    assert not store.is_partial() and store.missing_cells() == []
    for c in cells:
        assert c["status"] == "done" and c["error"] is None and c["frames"] == 6
        assert 0.0 <= c["miou"] <= 1.0 and 0.0 <= c["pixel_acc"] <= 1.0
        assert len(c["per_class_iou"]) == 19 and len(c["confusion"]) == 19
        assert c["forward_passes"] == 2  # 6 frames in batches of 3
        assert c["backward_passes"] == (2 if c["method"] == "tent" else 0)
    assert {c["corruption"] for c in cells} == {"clean", "gaussian_noise", "contrast"}
    meta = store.meta()
    assert meta["scenario"]["name"] == "tiny" and meta["model"]["name"] == "test_bn"
    assert meta["class_names"] == list(sim.CLASS_NAMES) and meta["finished_at"]
    assert "torch" in meta["versions"] and meta["seeds"]["scenario"] == [0]
    assert meta["corruption_families"] == {"contrast": "digital", "gaussian_noise": "noise"}
    assert (out / "scenario.yaml").is_file() and (out / "run.log").stat().st_size > 0
    assert not (out / "cache").exists()  # the clean-stream cache goes when the run completes
    assert len(store.frames()) == 9 * 6  # per-frame rows for timelines


def test_samples_follow_the_contract(reference_run):
    out, _ = reference_run
    samples = ResultsStore(out).samples()
    # clean + the first corruption at its highest severity, for every method
    assert {p.stem for p in samples} == {
        f"{m}__{c}__s{s}__seed0" for m in ("source", "bn", "tent")
        for c, s in (("clean", 0), ("gaussian_noise", 3))
    }  # fmt: skip
    z = np.load(samples[0])
    assert z["clean"].shape == (64, 128, 3) and z["corrupted"].dtype == np.uint8
    assert z["semantic"].shape == (64, 128) and z["prediction"].shape == (64, 128)
    assert str(z["method"]) in ("source", "bn", "tent") and int(z["seed"]) == 0


def test_source_cell_matches_an_independent_evaluation(reference_run):
    """Render + corrupt the same frames by hand, run the bare model, compare the stored mIoU."""
    out, _ = reference_run
    sc = validate_scenario(tiny())
    model = build_model("test_bn")
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    model.eval()
    config = sim.WorldConfig(height=64, width=128)
    frames = list(sim.render_stream(config, 0, sc.frames))
    rng = np.random.default_rng(np.random.SeedSequence([0, stable_int("contrast", 3.0)]))
    metrics = perception.StreamMetrics()
    previous = None
    images, labels = [], []
    for f in frames:
        img, sem, _ = sim.corrupt_frame(f.image, f.semantic, f.depth, "contrast", 3.0, rng,
                                        previous=previous)  # fmt: skip
        previous = img
        images.append(img)
        labels.append(sem)
    with torch.no_grad():
        for i in range(0, sc.frames, sc.batch_size):
            x = torch.from_numpy(np.stack(images[i : i + 3])).permute(0, 3, 1, 2).float() / 255
            metrics.update(model(x), np.stack(labels[i : i + 3]))
    stored = ResultsStore(out).cells()
    cell = next(c for c in stored if c["cell_id"] == "source__contrast__s3__seed0")
    assert cell["miou"] == pytest.approx(metrics.compute()["miou"], abs=1e-9)
    assert cell["confusion"] == metrics.compute()["confusion"]


def test_rerun_is_idempotent(reference_run, tmp_path):
    out, _ = reference_run
    before = comparable(ResultsStore(out))
    again = run_scenario(validate_scenario(tiny()), out, workers=1, quiet=True)
    assert again.skipped == 9 and again.ok
    after = ResultsStore(out)
    assert comparable(after) == before
    con = sqlite3.connect(out / "results.sqlite")
    assert con.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 9


def test_a_different_scenario_or_model_may_not_reuse_the_folder(reference_run, tmp_path):
    import shutil

    from scenarios import ScenarioError

    out, _ = reference_run
    with pytest.raises(ScenarioError, match=r"stored cells mean: frames \(6 → 7\)"):
        run_scenario(validate_scenario(tiny(frames=7)), out, workers=1, quiet=True)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    state = torch.load(copy / "model.pt", weights_only=True)
    next(v for v in state.values() if v.is_floating_point()).add_(1.0)
    torch.save(state, copy / "model.pt")  # as if the bundled weights changed since
    with pytest.raises(ScenarioError, match="other model weights"):
        run_scenario(validate_scenario(tiny()), copy, workers=1, quiet=True)


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"seeds": [1]}, "seeds (drops 0)"),
        ({"corruptions": ["contrast"]}, 'corruptions (drops "gaussian_noise")'),
        ({"include_clean": False}, "include_clean (true → false)"),
        ({"batch_size": 2}, "batch_size (3 → 2)"),
        ({"world": {"town": "rural"}}, 'world ({} → {"town": "rural"})'),
        ({"methods": ["source", {"name": "bn", "options": {"prior_strength": 4}}, "tent"]},
         'methods[bn].options ({} → {"prior_strength": 4})'),
        ({"methods": ["source", {"name": "tent", "label": "bn"}, "tent"]},
         'methods[bn].name ("bn" → "tent")'),
        ({"methods": ["source", "tent"]}, "methods (drops 'bn')"),
        ({"model": "test_gn"}, "model 'test_bn', the scenario's model is 'test_gn' (field model)"),
    ],
)  # fmt: skip
def test_changes_that_alter_stored_cells_are_refused_naming_the_field(
    reference_run, changes, needle
):
    from scenarios import ScenarioError
    from scenarios._runner import prepare_run

    out, _ = reference_run
    with pytest.raises(ScenarioError) as info:
        prepare_run(validate_scenario(tiny(**changes)), out)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_finished_run_is_extended_by_a_scenario_that_only_adds_cells(reference_run, tmp_path):
    """More seeds, a severity and a method: stored cells are kept, only the new ones run, and the
    folder ends equal to a fresh run of the larger scenario."""
    import shutil

    out, _ = reference_run
    extended = tmp_path / "extended"
    shutil.copytree(out, extended)
    larger = tiny(
        seeds=[0, 1],
        severities=[3, 5],
        methods=["source", "bn", "tent", {"name": "bn", "label": "bn-n16",
                                          "options": {"prior_strength": 16}}],
        description="the tiny study, extended",
    )  # fmt: skip
    before = {c["cell_id"]: c for c in ResultsStore(extended).cells()}
    summary = run_scenario(validate_scenario(larger), extended, workers=1, quiet=True)
    assert summary.ok and summary.total == 4 * (1 + 2 * 2) * 2 and summary.skipped == 9
    store = ResultsStore(extended)
    after = {c["cell_id"]: c for c in store.cells()}
    assert all(after[cid] == cell for cid, cell in before.items())  # untouched, not recomputed
    assert not store.is_partial() and store.meta()["scenario"]["seeds"] == [0, 1]
    fresh = tmp_path / "fresh"
    assert run_scenario(validate_scenario(larger), fresh, workers=1, quiet=True).ok
    assert comparable(store) == comparable(ResultsStore(fresh))


def test_failures_are_isolated_and_recorded(tmp_path):
    sc = validate_scenario(tiny(
        methods=["source", f"{HELPERS}:FailingAdapter", f"{HELPERS}:NaNAdapter"],
        corruptions=["contrast"],
    ))  # fmt: skip
    summary = run_scenario(sc, tmp_path / "run", workers=1, quiet=True)
    assert not summary.ok
    store = ResultsStore(tmp_path / "run")
    by = {(c["method"], c["corruption"]): c for c in store.cells()}
    assert len(by) == 6
    for corr in ("clean", "contrast"):
        assert by[("source", corr)]["status"] == "done"
        failing = by[(f"{HELPERS}:FailingAdapter", corr)]
        assert failing["status"] == "failed" and "exploded on purpose" in failing["error"]
        nan = by[(f"{HELPERS}:NaNAdapter", corr)]
        assert nan["status"] == "failed" and "non-finite logits" in nan["error"]
    assert set(summary.failed) == {c["cell_id"] for c in store.cells("failed")}
    assert len(summary.failed) == 4
    log = (tmp_path / "run" / "run.log").read_text()
    assert "Traceback" in log and "exploded on purpose" in log  # the log keeps the details
    # failed cells are retried on a rerun (they fail again), done cells are not recomputed
    again = run_scenario(sc, tmp_path / "run", workers=1, quiet=True)
    assert again.skipped == 2 and len(again.failed) == 4


def test_adapters_only_ever_see_images_and_cannot_spoil_each_others_input(reference_run, tmp_path):
    sc = validate_scenario(tiny(
        methods=[f"{HELPERS}:InPlaceAdapter", "source", f"{HELPERS}:InputRecorder"],
        corruptions=["gaussian_noise"],
    ))  # fmt: skip
    assert run_scenario(sc, tmp_path / "run", workers=1, quiet=True).ok
    ref = {c["cell_id"]: c for c in ResultsStore(reference_run[0]).cells()}
    got = {c["cell_id"]: c for c in ResultsStore(tmp_path / "run").cells()}
    for cid in ("source__clean__s0__seed0", "source__gaussian_noise__s3__seed0"):
        assert got[cid]["confusion"] == ref[cid]["confusion"]


def test_results_do_not_depend_on_the_number_of_workers(reference_run, tmp_path):
    out, _ = reference_run
    two = run_scenario(validate_scenario(tiny()), tmp_path / "two", workers=2, quiet=True)
    assert two.ok
    assert comparable(ResultsStore(tmp_path / "two")) == comparable(ResultsStore(out))


@pytest.mark.ray
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed")
def test_ray_workers_need_no_shared_filesystem_and_give_the_local_results(reference_run, tmp_path):
    """A local Ray cluster whose workers fail on any access to the run folder (an audit hook in
    every worker, see ``ray_guard``): the model reaches them as bytes, they render into their own
    space, and results and samples come back to the driver. Numbers and samples equal the local
    executor's. One Ray start, in a subprocess with a hard timeout."""
    out, _ = reference_run
    scenario = write_yaml(tmp_path / "tiny.yaml", tiny())
    ray_out = tmp_path / "ray"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "tests.scenarios.ray_guard", str(scenario), str(ray_out)]
    caches = set(Path(tempfile.gettempdir()).glob("roadshift-streams-*"))
    proc = subprocess.run(cmd, env=env, cwd=ROOT, timeout=300, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the workers' stream cache on the node is gone with the run
    assert set(Path(tempfile.gettempdir()).glob("roadshift-streams-*")) <= caches
    ray_store, local_store = ResultsStore(ray_out), ResultsStore(out)
    assert comparable(ray_store) == comparable(local_store)
    assert ray_store.meta()["compute"] == {"executor": "ray", "workers": 2, "torch_threads": 1}
    ray_samples, local_samples = ray_store.samples(), local_store.samples()
    assert [p.name for p in ray_samples] == [p.name for p in local_samples] != []
    for a, b in zip(ray_samples, local_samples, strict=True):
        za, zb = np.load(a), np.load(b)
        assert sorted(za.files) == sorted(zb.files)
        assert all(np.array_equal(za[k], zb[k]) for k in za.files)
    assert not (ray_out / "cache").exists()  # Ray workers' streams never touch the run folder


def test_resume_after_sigkill_gives_the_uninterrupted_results(tmp_path):
    """Kill a real ``roadshift run`` subprocess mid-run, restart it, compare to a clean run."""
    data = tiny(corruptions=["gaussian_noise", "contrast", "pixelate", "brightness"],
                severities=[2, 4], frames=9)  # fmt: skip
    scenario = write_yaml(tmp_path / "resume.yaml", data)
    cmd = [sys.executable, "-m", "scenarios.cli", "run", str(scenario), "--workers", "1",
           "--quiet", "--no-report"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--out", str(killed)], env=env, cwd=ROOT)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if (killed / "results.sqlite").is_file():
            try:
                con = sqlite3.connect(f"file:{killed / 'results.sqlite'}?mode=ro", uri=True)
                done = con.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
                con.close()
            except sqlite3.Error:
                done = 0
            if done >= 4:
                break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    partial = ResultsStore(killed)
    assert partial.is_partial() and 0 < len(partial.cells()) < 27
    partial.close()

    rc = subprocess.run([*cmd, "--out", str(killed)], env=env, cwd=ROOT, timeout=120).returncode
    assert rc == 0
    clean = tmp_path / "clean"
    assert run_scenario(scenario, clean, workers=1, quiet=True).ok
    resumed = ResultsStore(killed)
    assert not resumed.is_partial()
    assert comparable(resumed) == comparable(ResultsStore(clean))


def test_expand_cells_counts_and_unique_ids():
    sc = validate_scenario(tiny(seeds=[0, 1], severities=[1, 2.5]))
    cells = expand_cells(sc)
    assert len(cells) == 3 * (1 + 2 * 2) * 2
    assert len({c["cell_id"] for c in cells}) == len(cells)
    assert sum(c["corruption"] == "clean" for c in cells) == 3 * 2
    no_clean = validate_scenario(tiny(include_clean=False))
    assert all(c["corruption"] != "clean" for c in expand_cells(no_clean))


def _entropy_by_frame(store, cell_id):
    return [round(f["entropy"], 6) for f in store.frames(cell_id)]


def test_continual_schedule_carries_one_adapter_and_stores_segments(tmp_path):
    sc = validate_scenario(tiny(
        methods=[f"{HELPERS}:CountingAdapter", "tent"], corruptions=["contrast"],
        schedule={"kind": "continual", "corruptions": ["gaussian_noise", "contrast"],
                  "severity": 4},
    ))  # fmt: skip
    assert run_scenario(sc, tmp_path / "run", workers=1, quiet=True).ok
    store = ResultsStore(tmp_path / "run")
    cells = {(c["method"], c["corruption"]): c for c in store.cells()}
    cont = cells[(f"{HELPERS}:CountingAdapter", "continual")]
    assert cont["schedule"] == "continual" and cont["severity"] == 4
    segs = store.segments(cont["cell_id"])
    assert [(s["start_frame"], s["stop_frame"], s["corruption"]) for s in segs] == [
        (0, 3, "gaussian_noise"), (3, 6, "contrast")]  # fmt: skip
    # one adapter across the stream: confidence keeps growing over both segments (2 batches)
    ent = _entropy_by_frame(store, cont["cell_id"])
    assert ent[0] == ent[1] == ent[2] > ent[3] == ent[4] == ent[5]
    assert ent[0] == pytest.approx(np.log(19), abs=1e-5)
    # every static cell starts from a fresh adapter
    static = cells[(f"{HELPERS}:CountingAdapter", "contrast")]
    assert _entropy_by_frame(store, static["cell_id"]) == ent
    # a static cell is one segment: the whole stream
    [seg] = store.segments(static["cell_id"])
    assert (seg["start_frame"], seg["stop_frame"], seg["frames"]) == (0, 6, 6)
    tent = cells[("tent", "continual")]
    assert len(store.segments(tent["cell_id"])) == 2 and tent["backward_passes"] == 2
    seg_frames = [f["corruption"] for f in store.frames(tent["cell_id"])]
    assert seg_frames == ["gaussian_noise"] * 3 + ["contrast"] * 3


def test_world_shifts_and_in_sim_schedules(tmp_path):
    sc = validate_scenario(tiny(
        methods=["source"], corruptions=[], world_shifts=[{"town": "highway"}],
        schedule={"kind": "day_to_night"}, samples=4,
    ))  # fmt: skip
    assert run_scenario(sc, tmp_path / "run", workers=1, quiet=True).ok
    store = ResultsStore(tmp_path / "run")
    labels = {c["corruption"]: c for c in store.cells()}
    assert set(labels) == {"clean", "day_to_night", "town=highway"}
    assert labels["town=highway"]["severity"] == 0 and labels["day_to_night"]["severity"] > 0
    assert labels["town=highway"]["schedule"] == "world"
    assert labels["day_to_night"]["schedule"] == "day_to_night"
    samples = {p.stem: np.load(p) for p in store.samples()}
    night = samples[labels["day_to_night"]["cell_id"]]["clean"].mean()
    day = samples[labels["clean"]["cell_id"]]["clean"].mean()
    assert night < day  # the in-sim schedule rendered the stream darker as the sun set


def test_a_locked_folder_is_refused_and_leftovers_are_cleaned(reference_run):
    import fcntl

    from scenarios import ScenarioError

    out, _ = reference_run
    leftover = out / "cache" / ".0123456789abcdef.4242.tmp"
    leftover.mkdir(parents=True)
    with open(out / ".lock", "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ScenarioError, match="another run"):
            run_scenario(validate_scenario(tiny()), out, workers=1, quiet=True)
        assert leftover.exists()
    assert run_scenario(validate_scenario(tiny()), out, workers=1, quiet=True).skipped == 9
    assert not leftover.exists()
