"""Scenarios on your own data (``data:``): a dataset on disk as the stream source.

Datasets are built inside each test from world frames written as files, so a scenario on the
folder can be compared with the same scenario on the world stream: the runner must give exactly
the same numbers (PNG images and labels and ``.npy`` depth are lossless).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import perception
import sim
from scenarios import ResultsStore, run_scenario
from scenarios._forgetting import FORGETTING_SEED_BASE
from scenarios._validate import ScenarioError, validate_scenario
from scenarios._work import build_model
from scenarios.cli import main

from ..sim.datasets import world_frames, write_acdc, write_cityscapes, write_pairs, write_video
from .conftest import comparable, tiny, write_yaml


def _run(tmp_path: Path, name: str, **changes) -> ResultsStore:
    out = tmp_path / name
    assert run_scenario(validate_scenario(tiny(**changes)), out, workers=1, quiet=True).ok
    return ResultsStore(out)


def _cells(store: ResultsStore) -> dict[tuple[str, str], dict]:
    return {(c["method"], c["corruption"]): c for c in store.cells()}


def test_a_folder_stream_gives_exactly_the_world_streams_results(tmp_path):
    """Same frames from disk as from the renderer: every cell, segment and frame row equal,
    including a depth-aware corruption (depth from .npy metres) and a second seed (the seed
    draws the corruptions; the data stay the same)."""
    root = write_cityscapes(tmp_path / "cs", world_frames(6), depth="npy")
    shifts = {"corruptions": ["gaussian_noise", "fog_depth"], "seeds": [0]}
    world = _run(tmp_path, "w", world={"town": "urban"}, **shifts)
    data = _run(tmp_path, "d", data={"root": str(root), "layout": "cityscapes"}, **shifts)
    assert comparable(data) == comparable(world)
    assert len(data.cells()) == 9 and all(c["status"] == "done" for c in data.cells())
    meta = data.meta()["data"]
    assert (meta["root"], meta["layout"], meta["split"]) == (str(root), "cityscapes", "val")
    assert (meta["dataset_frames"], meta["stream_frames"], meta["labelled"], meta["depth"]) == (
        6, 6, True, True)  # fmt: skip
    assert world.meta()["data"] is None


def test_frames_caps_the_stream_and_native_keeps_the_frame_size(tmp_path):
    root = write_pairs(tmp_path / "p", world_frames(6))
    data = {"root": str(root), "layout": "pairs"}
    sc = validate_scenario(tiny(data=data, height="native", width="native", frames=4))
    assert (sc.height, sc.width, sc.frames) == (64, 128, 4)
    every = validate_scenario({k: v for k, v in tiny(data=data).items() if k != "frames"})
    assert every.frames == 6  # left out: every frame
    store = _run(tmp_path, "r", data=data, frames=4, methods=["source"], corruptions=[])
    assert [f["frame"] for f in store.frames(store.cells()[0]["cell_id"])] == [0, 1, 2, 3]


def test_acdc_conditions_are_natural_shifts_and_parts_of_the_clean_stream(tmp_path):
    """Under reset_each_shift each condition is a cell of its own (its frames only); the clean
    cell walks the conditions in order as domains. The source model has no state, so a
    condition's cell scores its frames exactly as the clean cell's segment of that domain."""
    fog, night = world_frames(3, seed=1), world_frames(3, seed=2, town="rural")
    root = write_acdc(tmp_path / "acdc", {"night": night, "fog": fog})
    data = {"root": str(root), "layout": "acdc"}  # default order: fog before night
    store = _run(tmp_path, "a", data=data, methods=["source"], corruptions=["contrast"])
    cells = _cells(store)
    assert sorted(label for _, label in cells) == ["acdc-fog", "acdc-night", "clean", "contrast"]
    segments = {s["domain"]: s for s in store.segments(cells[("source", "clean")]["cell_id"])}
    assert list(segments) == ["fog", "night"]
    for cond in ("fog", "night"):
        cell = cells[("source", f"acdc-{cond}")]
        assert (cell["frames"], cell["severity"], cell["schedule"]) == (3, 0.0, "world")
        assert cell["miou"] == pytest.approx(segments[cond]["miou"], abs=1e-12)
    meta = store.meta()["data"]
    assert meta["conditions"] == [{"name": "fog", "frames": 3}, {"name": "night", "frames": 3}]


def test_continual_without_corruptions_is_cottas_acdc_loop(tmp_path):
    """protocol: continual over ACDC walks the listed conditions round after round with one
    adapter; each segment shows the condition's frames, scored like its own cell."""
    fog, snow = world_frames(3, seed=1), world_frames(3, seed=2, town="rural")
    root = write_acdc(tmp_path / "acdc", {"fog": fog, "snow": snow})
    data = {"root": str(root), "layout": "acdc", "conditions": ["snow", "fog"]}
    store = _run(tmp_path, "c", data=data, methods=["source", "tent"], corruptions=[],
                 protocol="continual", rounds=2, include_clean=False)  # fmt: skip
    cells = _cells(store)
    assert set(cells) == {("source", "continual"), ("tent", "continual")}
    segs = store.segments(cells[("source", "continual")]["cell_id"])
    assert [(s["domain"], s["round"]) for s in segs] == [
        ("snow", 1), ("fog", 1), ("snow", 2), ("fog", 2)]  # fmt: skip
    assert segs[0]["miou"] == pytest.approx(segs[2]["miou"], abs=1e-12)  # same frames again
    tent = store.segments(cells[("tent", "continual")]["cell_id"])
    assert tent[0]["entropy"] != tent[2]["entropy"]  # the same frames, an adapted model


def test_video_without_labels_reports_label_free_signals_only(tmp_path):
    video = write_video(tmp_path / "drive.avi", world_frames(6))
    store = _run(tmp_path, "v", data={"root": str(video), "layout": "video"},
                 methods=["source"], corruptions=["contrast"])  # fmt: skip
    assert store.meta()["data"]["labelled"] is False
    for cell in store.cells():
        assert cell["status"] == "done" and cell["miou"] is None
        assert cell["entropy"] is not None and cell["entropy"] > 0
    frames = store.frames(store.cells()[0]["cell_id"])
    assert len(frames) == 6 and all(f["miou"] is None for f in frames)


def test_forgetting_scores_the_source_data(tmp_path):
    """``source_data`` replaces the world's held-out frames: 64 drawn by
    default_rng(850000).permutation over the dataset, recomputed here."""
    source_frames = world_frames(8, seed=5, town="suburban")
    src = write_cityscapes(tmp_path / "src", source_frames, split="train")
    target = write_pairs(tmp_path / "t", world_frames(6))
    store = _run(tmp_path, "f", data={"root": str(target), "layout": "pairs"},
                 source_data={"root": str(src), "layout": "cityscapes", "split": "train"},
                 methods=["source"], corruptions=[], forgetting=True)  # fmt: skip
    order = np.random.default_rng(FORGETTING_SEED_BASE).permutation(8)
    images = np.stack([source_frames[i].image for i in order])
    labels = np.stack([source_frames[i].semantic for i in order])
    model = build_model("test_bn")
    model.load_state_dict(torch.load(store.dir / "model.pt", weights_only=True))
    adapter = perception.create_adapter("source", model.eval())
    metrics = perception.StreamMetrics()
    for s in range(0, 8, 3):
        x = torch.from_numpy(images[s : s + 3]).permute(0, 3, 1, 2).float() / 255
        metrics.update(adapter.infer(x), labels[s : s + 3])
    cell = store.cells()[0]
    assert cell["clean_before"] == pytest.approx(float(metrics.compute()["miou"]), abs=1e-12)
    assert store.meta()["forgetting"]["source_data"]["split"] == "train"


def test_render_dataset_then_data_round_trip(tmp_path):
    """The world exported with render-dataset and read back as data: the same results as the
    world stream it was rendered from (non-depth corruptions: depth PNGs are millimetres).
    ``paired`` drives use the seed itself as the world seed, as a scenario's seed does."""
    out = tmp_path / "export"
    sim.render_dataset(out, frames=6, seeds=[0], towns=["urban"], size=(64, 128), paired=True)
    world = _run(tmp_path, "w", world={"town": "urban"}, methods=["source", "bn"])
    data = _run(tmp_path, "d", data={"root": str(out), "layout": "cityscapes"},
                methods=["source", "bn"])  # fmt: skip
    assert comparable(data) == comparable(world)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        (
            {"data": {"root": "${ROADSHIFT_TEST_NOT_SET}/cs", "layout": "cityscapes"}},
            "environment variable ROADSHIFT_TEST_NOT_SET is not set",
        ),
        ({"data": {"root": "{tmp}/missing", "layout": "cityscapes"}}, "leftImg8bit/<split>"),
        (
            {"data": {"root": "{tmp}/p", "layout": "pairs"}, "world": {"town": "rural"}},
            "world (the procedural world) does not apply",
        ),
        (
            {"data": {"root": "{tmp}/p", "layout": "pairs"}, "corruptions": ["fog_depth"]},
            "fog_depth needs depth",
        ),
        ({"data": {"root": "{tmp}/p", "layout": "nope"}}, "valid choices: cityscapes, acdc"),
        ({"height": "native"}, "needs data:"),
    ],
)
def test_bad_data_is_one_line_and_exit_2(tmp_path, capsys, changes, needle):
    write_pairs(tmp_path / "p", world_frames(2))
    for value in changes.values():
        if isinstance(value, dict) and isinstance(value.get("root"), str):
            value["root"] = value["root"].replace("{tmp}", str(tmp_path))
    scenario = write_yaml(tmp_path / "s.yaml", tiny(**changes))
    out = tmp_path / "out"
    assert main(["run", str(scenario), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err
    assert str(scenario) in err and not out.exists()


def test_a_label_value_outside_the_map_fails_before_the_run(tmp_path):
    frames = world_frames(2)
    bad = frames[1].semantic.copy()
    bad[0, 0] = 40  # neither a trainId nor 255
    root = write_pairs(tmp_path / "p", frames, labels=[frames[0].semantic, bad])
    with pytest.raises(ScenarioError) as info:
        validate_scenario(tiny(data={"root": str(root), "layout": "pairs"}), source="s.yaml")
    msg = str(info.value)
    assert msg.startswith("s.yaml: data: ") and "frame001.png" in msg and "40" in msg


@pytest.mark.parametrize(("name", "variable"), [("cityscapes-c", "CITYSCAPES_ROOT"),
                                                ("acdc", "ACDC_ROOT")])  # fmt: skip
def test_bundled_data_scenarios_name_the_variable_they_need(tmp_path, capsys, monkeypatch,
                                                            name, variable):  # fmt: skip
    monkeypatch.delenv(variable, raising=False)
    assert main(["run", name, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"environment variable {variable} is not set" in err and "\n" not in err


def test_bundled_acdc_is_cottas_loop(bundled_data):
    from scenarios._plan import plan_units
    from scenarios._validate import load_scenario

    sc = load_scenario("acdc")
    units = [u for u in plan_units(sc) if u.carried]
    assert {u.cells[0]["method"] for u in units} == {m.key for m in sc.methods}
    segments = units[0].stream.segments
    assert len(segments) == 40 and [s.domain for s in segments[:4]] == [
        "fog", "night", "rain", "snow"]  # fmt: skip
    assert {s.round for s in segments} == set(range(1, 11)) and sc.forgetting


def test_iid_sampling_draws_the_datasets_frames_in_a_seeded_order(tmp_path):
    """``sampling: iid`` on data shuffles the same frames (seeded per seed): the stateless
    source model's counts, summed over the stream, are those of file order."""
    root = write_pairs(tmp_path / "p", world_frames(6))
    store = _run(tmp_path, "i", data={"root": str(root), "layout": "pairs"},
                 methods=["source"], corruptions=[], sampling=["video", "iid"])  # fmt: skip
    cells = _cells(store)
    video, iid = cells[("source", "clean")], cells[("source", "clean.iid")]
    assert iid["miou"] == pytest.approx(video["miou"], abs=1e-12)
    by_frame = [f["miou"] for f in store.frames(video["cell_id"])]
    shuffled = [f["miou"] for f in store.frames(iid["cell_id"])]
    assert sorted(shuffled) == pytest.approx(sorted(by_frame)) and shuffled != by_frame


def test_the_report_names_the_data_source(tmp_path):
    """The header names the data (root, layout, split, frame counts); nothing in the report
    speaks of the procedural world."""
    from reports import build_report

    fog, night = world_frames(3, seed=1), world_frames(3, seed=2, town="rural")
    root = write_acdc(tmp_path / "acdc", {"fog": fog, "night": night})
    store = _run(tmp_path, "a", data={"root": str(root), "layout": "acdc"}, methods=["source"],
                 corruptions=["contrast"])  # fmt: skip
    md = build_report(store.dir, quiet=True)["markdown"].read_text(encoding="utf-8")
    assert f"| data | {root} (layout acdc, split val): 6 frames in conditions fog (3), " in md
    assert "## Natural shifts of the data" in md and "## Conditions of the data" in md
    for word in ("drive", "world", "town"):
        assert word not in md.lower()
    video = write_video(tmp_path / "clip.avi", world_frames(6))
    store = _run(tmp_path, "v", data={"root": str(video), "layout": "video"}, methods=["source"],
                 corruptions=[])  # fmt: skip
    md = build_report(store.dir, quiet=True)["markdown"].read_text(encoding="utf-8")
    assert "| labels | none: mIoU is undefined; only label-free signals" in md


def test_methods_that_need_source_frames_take_them_from_source_data(tmp_path, capsys):
    """EATA looks at source frames before the stream: on your data they come from
    ``source_data`` (in file order), and a scenario without it is refused in one line."""
    from scenarios._source_data import SourceFrames

    data = {"root": str(write_pairs(tmp_path / "t", world_frames(6))), "layout": "pairs"}
    scenario = write_yaml(tmp_path / "s.yaml", tiny(data=data, methods=["eata"], corruptions=[]))
    assert main(["run", str(scenario), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs source-domain images" in err and "source_data:" in err and "\n" not in err
    source_frames = world_frames(4, seed=5, town="suburban")
    src = {"root": str(write_cityscapes(tmp_path / "src", source_frames, split="train")),
           "layout": "cityscapes", "split": "train"}  # fmt: skip
    batches = list(SourceFrames(64, 128, 3, data=src).batches())
    got = torch.cat(batches).mul(255).round().byte().permute(0, 2, 3, 1).numpy()
    assert np.array_equal(got, np.stack([f.image for f in source_frames]))
    store = _run(tmp_path, "e", data=data, source_data=src, methods=["eata"], corruptions=[])
    assert [c["status"] for c in store.cells()] == ["done"]
