"""Protocols end to end on a tiny model: what adapters see, where they reset, what is stored."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import perception
import sim
from scenarios import ResultsStore, run_scenario
from scenarios._forgetting import FORGETTING_SEED_BASE
from scenarios._validate import validate_scenario
from scenarios._work import build_model

from . import helpers
from .conftest import comparable, tiny, write_yaml

HELPERS = "tests.scenarios.helpers"
ROOT = Path(__file__).resolve().parents[2]
COUNTING = f"{HELPERS}:CountingAdapter"


def _run(tmp_path: Path, name: str, **changes) -> ResultsStore:
    out = tmp_path / name
    assert run_scenario(validate_scenario(tiny(**changes)), out, workers=1, quiet=True).ok
    return ResultsStore(out)


@pytest.fixture(scope="module")
def continual(tmp_path_factory):
    """A continual run (2 shifts x 2 rounds x 2 orders) and the reset run of the same shifts."""
    tmp = tmp_path_factory.mktemp("continual")
    shifts = {"corruptions": ["gaussian_noise", "contrast"], "methods": ["source", "bn", COUNTING]}
    cont = _run(tmp, "cont", protocol="continual", rounds=2, orders=2, **shifts)
    reset = _run(tmp, "reset", **shifts)
    return cont, reset


def test_continual_cells_segments_and_meta(continual):
    cont, _ = continual
    cells = {(c["method"], c["corruption"]): c for c in cont.cells()}
    assert set(cells) == {(m, s) for m in ("source", "bn", COUNTING)
                          for s in ("clean", "continual.o0", "continual.o1")}  # fmt: skip
    c = cells[("bn", "continual.o1")]
    assert (c["protocol"], c["order"], c["rounds"], c["schedule"], c["frames"]) == (
        "continual", 1, 2, "continual", 24)  # fmt: skip
    assert cells[("bn", "clean")]["protocol"] == "reset_each_shift"  # the reference stays reset
    segs = cont.segments(cells[("bn", "continual.o0")]["cell_id"])
    assert [(s["label"], s["round"], s["order"], s["start_frame"], s["stop_frame"]) for s in segs] \
        == [("gaussian_noise s3 r1", 1, 0, 0, 6), ("contrast s3 r1", 1, 0, 6, 12),
            ("gaussian_noise s3 r2", 2, 0, 12, 18), ("contrast s3 r2", 2, 0, 18, 24)]  # fmt: skip
    meta = cont.meta()
    assert meta["meta_version"] == 3 and meta["protocol"] == "continual"
    orders = meta["protocol_plan"]["orders"]
    assert orders[0] == ["gaussian_noise s3", "contrast s3"] and sorted(orders[1]) == sorted(
        orders[0]
    )
    assert meta["stream"]["sampling"] == "video" and meta["online"] is None
    assert meta["recovery"]["window"] > 0 and meta["collapse"]["class_ratio"] > 0


def test_each_continual_segment_shows_its_shifts_reset_cell_frames(continual):
    """Same clean frames, same corruption draws, every round and order: a method without state
    across batches (source; bn with segment-aligned batches) scores exactly its reset cell."""
    cont, reset = continual
    ref = {(c["method"], c["corruption"]): c["miou"] for c in reset.cells()}
    checked = 0
    for c in cont.cells():
        if c["method"] not in ("source", "bn") or c["protocol"] != "continual":
            continue
        for s in cont.segments(c["cell_id"]):
            assert s["miou"] == pytest.approx(ref[(c["method"], s["corruption"])], abs=1e-12)
            checked += 1
    assert checked == 2 * 2 * 4


def test_one_adapter_is_carried_through_rounds_and_reset_per_cell(continual):
    cont, reset = continual
    cell = next(c for c in cont.cells() if c["method"] == COUNTING and c["order"] == 0
                and c["protocol"] == "continual")  # fmt: skip
    ent = [f["entropy"] for f in cont.frames(cell["cell_id"])]
    per_batch = [ent[i] for i in range(0, 24, 3)]
    assert all(a > b for a, b in itertools.pairwise(per_batch))  # never reset
    for c in reset.cells():  # reset_each_shift: every cell starts from a fresh adapter
        if c["method"] == COUNTING:
            assert [round(f["entropy"], 6) for f in reset.frames(c["cell_id"])][::3] == [
                round(e, 6) for e in per_batch[:2]
            ]


def test_batches_cross_segment_boundaries(tmp_path):
    helpers.CALLS.clear()
    _run(tmp_path, "c", protocol="continual", corruptions=["gaussian_noise", "contrast"],
         frames=4, methods=[f"{HELPERS}:BatchRecorder"], include_clean=False)  # fmt: skip
    assert [n for n, _ in helpers.CALLS] == [3, 3, 2]  # 8 frames; batch 2 spans both shifts
    helpers.CALLS.clear()
    _run(tmp_path, "r", corruptions=["gaussian_noise", "contrast"], frames=4,
         methods=[f"{HELPERS}:BatchRecorder"], include_clean=False)  # fmt: skip
    assert [n for n, _ in helpers.CALLS] == [3, 1, 3, 1]  # a fresh stream per cell


def test_mixed_stream_mixes_shifts_in_batches_and_scores_each(tmp_path):
    store = _run(tmp_path, "m", protocol="mixed", corruptions=["gaussian_noise", "contrast"],
                 methods=["source"], include_clean=False)  # fmt: skip
    [cell] = store.cells()
    frames = store.frames(cell["cell_id"])
    kinds = [f["corruption"] for f in frames]
    assert sorted(kinds) == ["contrast"] * 6 + ["gaussian_noise"] * 6 and kinds != sorted(kinds)
    assert any(len(set(kinds[i : i + 3])) == 2 for i in range(0, 12, 3))  # a mixed batch
    reset = _run(tmp_path, "r", corruptions=["gaussian_noise", "contrast"], methods=["source"],
                 include_clean=False)  # fmt: skip
    ref = {c["corruption"]: c["miou"] for c in reset.cells()}
    segs = store.segments(cell["cell_id"])
    assert [(s["corruption"], s["frames"], s["start_frame"]) for s in segs] == [
        ("gaussian_noise", 6, None), ("contrast", 6, None)]  # fmt: skip
    for s in segs:  # per-shift scores from the one stream: the same frames as the reset cells
        assert s["miou"] == pytest.approx(ref[s["corruption"]], abs=1e-12)


def _constant_miou(labels: list[np.ndarray], classes: list[int]) -> float:
    m = perception.StreamMetrics()
    for lab, cls in zip(labels, classes, strict=True):
        logits = torch.zeros(1, 19, *lab.shape)
        logits[:, cls] = 5.0
        m.update(logits, lab[None])
    return float(m.compute()["miou"])


@pytest.mark.parametrize("fallback", ["last", "source"])
def test_online_evaluation_against_a_hand_computed_schedule(tmp_path, monkeypatch, fallback):
    """r = 2.5, eta = 1: batches 0, 3, 6 processed; the others get the fallback."""
    import scenarios._runner as runner

    def fake(model, methods, batch, prepare=None):
        return {"source_ms_per_batch": 10.0, "ms_per_batch": {m[0]: 25.0 for m in methods},
                "cost_ratio": {m[0]: 2.5 for m in methods}}  # fmt: skip

    monkeypatch.setattr(runner, "calibrate", fake)
    store = _run(tmp_path, "o", methods=[f"{HELPERS}:ClassCycler"], corruptions=[], frames=7,
                 batch_size=1, online={"eta": 1.0, "fallback": fallback})  # fmt: skip
    [cell] = store.cells()
    assert store.meta()["online"]["skipped_batches"] == {f"{HELPERS}:ClassCycler": 2}
    assert cell["skipped_frames"] == 4
    frames = list(sim.render_stream(sim.WorldConfig(height=64, width=128), 0, 7))
    labels = [f.semantic for f in frames]
    assert cell["miou"] == pytest.approx(_constant_miou(labels, list(range(7))), abs=1e-12)
    if fallback == "last":  # the online adapter's own predictions: classes 0, 1, 2 held
        expected = _constant_miou(labels, [0, 0, 0, 1, 1, 1, 2])
    else:  # skipped frames: the source model itself
        model = build_model("test_bn")
        model.load_state_dict(torch.load(store.dir / "model.pt", weights_only=True))
        m = perception.StreamMetrics()
        for b, f in enumerate(frames):
            if b % 3 == 0:
                logits = torch.zeros(1, 19, 64, 128)
                logits[:, b // 3] = 5.0
            else:
                with torch.no_grad():
                    x = torch.from_numpy(f.image).permute(2, 0, 1)[None].float() / 255
                    logits = model.eval()(x)
            m.update(logits, f.semantic[None])
        expected = float(m.compute()["miou"])
    assert cell["online_miou"] == pytest.approx(expected, abs=1e-12)
    [seg] = store.segments(cell["cell_id"])
    assert seg["online_miou"] == pytest.approx(expected, abs=1e-12) and seg["skipped_frames"] == 4


def test_online_ratios_are_measured_once_and_reused_on_resume(tmp_path, monkeypatch):
    import scenarios._runner as runner

    data = tiny(methods=["source", "tent"], corruptions=[], online={"eta": 1.0})
    out = tmp_path / "o"
    assert run_scenario(validate_scenario(data), out, workers=1, quiet=True).ok
    first = ResultsStore(out)
    online, before = first.meta()["online"], comparable(first)
    assert online["cost_ratio"]["source"] == 1.0 and online["cost_ratio"]["tent"] > 0
    assert online["skipped_batches"]["tent"] == max(0, -(-online["cost_ratio"]["tent"] // 1) - 1)
    src = next(c for c in first.cells() if c["method"] == "source")
    assert src["online_miou"] == src["miou"] and src["skipped_frames"] == 0  # r = 1: no miss
    first.close()
    con = sqlite3.connect(out / "results.sqlite")
    with con:
        con.execute("DELETE FROM cells")  # as if killed before any cell finished
    con.close()

    def refuse(*args, **kwargs):
        raise AssertionError("calibrated again")

    monkeypatch.setattr(runner, "calibrate", refuse)
    assert run_scenario(validate_scenario(data), out, workers=1, quiet=True).ok
    again = ResultsStore(out)
    assert again.meta()["online"] == online and comparable(again) == before


def test_forgetting_against_an_independent_recomputation(tmp_path):
    store = _run(tmp_path, "f", methods=["source", "tent"], corruptions=[], forgetting=True)
    cells = {c["method"]: c for c in store.cells()}
    # the held-out source frames, as documented: 16 drives alternating urban/suburban, seeds
    # 850000 + i, every 6th of 24 frames, shuffled with default_rng(850000)
    images, labels = [], []
    for i in range(16):
        config = sim.WorldConfig(height=64, width=128, town=("urban", "suburban")[i % 2],
                                 time_of_day="day", weather="clear")  # fmt: skip
        for k, f in enumerate(sim.render_stream(config, FORGETTING_SEED_BASE + i, 24)):
            if k % 6 == 0:
                images.append(f.image)
                labels.append(f.semantic)
    order = np.random.default_rng(FORGETTING_SEED_BASE).permutation(64)
    images, labels = np.stack(images)[order], np.stack(labels)[order]

    def score(adapter) -> float:
        m = perception.StreamMetrics()
        for s in range(0, 64, 3):
            x = torch.from_numpy(images[s : s + 3]).permute(0, 3, 1, 2).float() / 255
            m.update(adapter.infer(x), labels[s : s + 3])
        return float(m.compute()["miou"])

    model = build_model("test_bn")
    model.load_state_dict(torch.load(store.dir / "model.pt", weights_only=True))
    model.eval()
    tent = perception.create_adapter("tent", model)
    assert cells["tent"]["clean_before"] == pytest.approx(score(tent), abs=1e-12)
    stream = list(sim.render_stream(sim.WorldConfig(height=64, width=128), 0, 6))
    for s in (0, 3):  # replay the clean stream's two batches
        tent.predict(torch.from_numpy(np.stack([f.image for f in stream[s : s + 3]]))
                     .permute(0, 3, 1, 2).float() / 255)  # fmt: skip
    assert cells["tent"]["clean_after"] == pytest.approx(score(tent), abs=1e-12)
    assert cells["tent"]["clean_after"] != cells["tent"]["clean_before"]
    source = perception.create_adapter("source", model)
    assert cells["source"]["clean_before"] == cells["source"]["clean_after"]
    assert cells["source"]["clean_before"] == pytest.approx(score(source), abs=1e-12)
    assert store.meta()["forgetting"]["seeds"] == [FORGETTING_SEED_BASE, FORGETTING_SEED_BASE + 15]


def test_label_shift_segments_store_the_drifting_class_priors(tmp_path):
    store = _run(tmp_path, "l", methods=["source"], corruptions=[], label_shift=True, frames=4)
    [cell] = store.cells()
    segs = store.segments(cell["cell_id"])
    assert [s["domain"] for s in segs] == ["town=urban", "town=highway", "town=rural"]
    for s, town in zip(segs, ("urban", "highway", "rural"), strict=True):
        frames = sim.render_stream(sim.WorldConfig(height=64, width=128, town=town), 0, 4)
        counts = sum(np.bincount(f.semantic.ravel(), minlength=256)[:19] for f in frames)
        assert s["class_prior"] == pytest.approx(list(counts / counts.sum()), abs=1e-6)
    drift = 0.5 * np.abs(np.subtract(segs[0]["class_prior"], segs[1]["class_prior"])).sum()
    assert drift > 0.1  # urban -> highway: the class priors move


@pytest.mark.slow
def test_a_killed_continual_run_shows_finished_segments_and_resumes_exactly(tmp_path):
    """Segments of a running stream are stored as they finish; a kill loses no finished cell;
    the resumed run (on 2 workers) equals an uninterrupted one (on 1)."""
    data = tiny(protocol="continual", rounds=3, corruptions=["gaussian_noise", "contrast"],
                methods=[f"{HELPERS}:SlowSource", "bn"], include_clean=False)  # fmt: skip
    scenario = write_yaml(tmp_path / "cont.yaml", data)
    cmd = [sys.executable, "-m", "scenarios.cli", "run", str(scenario), "--quiet", "--no-report"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--workers", "1", "--out", str(killed)], env=env, cwd=ROOT)
    deadline, running = time.monotonic() + 180, 0
    while time.monotonic() < deadline and proc.poll() is None:
        if (killed / "results.sqlite").is_file():
            try:
                con = sqlite3.connect(f"file:{killed / 'results.sqlite'}?mode=ro", uri=True)
                running = con.execute(
                    "SELECT COUNT(*) FROM segments WHERE cell_id LIKE '%SlowSource%' "
                    "AND cell_id NOT IN (SELECT cell_id FROM cells)"
                ).fetchone()[0]
                con.close()
            except sqlite3.Error:
                running = 0
            if running >= 2:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    partial = ResultsStore(killed)
    rows = [s for s in partial.segments() if "SlowSource" in s["cell_id"]]
    assert partial.is_partial() and len(rows) >= 2 and rows[0]["miou"] is not None
    partial.close()
    rc = subprocess.run([*cmd, "--workers", "2", "--out", str(killed)], env=env, cwd=ROOT,
                        timeout=300).returncode  # fmt: skip
    assert rc == 0
    clean = tmp_path / "clean"
    assert run_scenario(scenario, clean, workers=1, quiet=True).ok
    resumed = ResultsStore(killed)
    assert not resumed.is_partial() and comparable(resumed) == comparable(ResultsStore(clean))
    assert len(resumed.segments()) == 2 * 6
