"""``roadshift render-dataset`` and ``roadshift corrupt-dataset``: what they write, resuming after a
kill, and exit 2 with one line (nothing written) for bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import sim
from scenarios.cli import main
from sim.common import stable_int

from ..sim.datasets import depth_mm, world_frames, write_cityscapes, write_pairs, write_video

ROOT = Path(__file__).resolve().parents[2]


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _png(path: Path) -> np.ndarray:
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(raw, cv2.COLOR_BGR2RGB) if raw.ndim == 3 else raw


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("render") / "ds"
    args = [
        "render-dataset",
        str(out),
        "--frames",
        "3",
        "--towns",
        "urban",
        "rural",
        "--weather",
        "clear",
        "dense_fog",
        "--size",
        "64",
        "128",
        "--paired",
        "--depth",
        "npy",
        "--workers",
        "2",
        "--quiet",
    ]
    assert main(args) == 0
    return out


def test_render_dataset_is_the_world_in_cityscapes_layout(rendered: Path) -> None:
    ds = sim.FolderDataset({"root": str(rendered), "layout": "cityscapes"})
    assert len(ds) == 2 * 2 * 3 and ds.labelled and ds.has_depth
    for town in ("urban", "rural"):
        for weather in ("clear", "dense_fog"):
            config = sim.WorldConfig(height=64, width=128, town=town, weather=weather)
            city = f"{town}-day-{weather}".replace("_", "-")
            for frame in sim.render_stream(config, 0, 3):  # paired: the world seed is the seed
                prefix = f"{city}_000000_{frame.index:06d}"
                i = next(k for k, r in enumerate(ds.records) if r.rel.name.startswith(prefix))
                s = ds.read(i)
                assert np.array_equal(s.image, frame.image)
                assert np.array_equal(s.semantic, frame.semantic)
                assert np.array_equal(s.depth, frame.depth)
                gt = rendered / "gtFine/val" / city
                assert np.array_equal(
                    _png(gt / f"{prefix}_gtFine_color.png"), sim.colorize(frame.semantic)
                )
                meta = json.loads(
                    (rendered / "conditions/val" / city / f"{prefix}_conditions.json").read_text()
                )
                assert meta["town"] == town and meta["time_of_day"] == "day"
                assert meta["weather"] == frame.conditions["weather"]
                assert meta["weather"]["fog_density"] == sim.Weather.preset(weather).fog_density
                assert meta["seed"] == 0 and meta["frame"] == frame.index and meta["paired"]
    about = json.loads((rendered / "roadshift_dataset.json").read_text())
    assert about["frames"] == 12 and about["paired"] and about["layout"] == "cityscapes"


def test_paired_drives_share_geometry_and_unpaired_drives_do_not(rendered, tmp_path) -> None:
    def labels(root: Path, city: str) -> np.ndarray:
        return _png(root / "gtFine/val" / city / f"{city}_000000_000002_gtFine_labelTrainIds.png")

    clear, fog = labels(rendered, "urban-day-clear"), labels(rendered, "urban-day-dense-fog")
    assert np.array_equal(clear, fog)
    images = [
        _png(rendered / "leftImg8bit/val" / c / f"{c}_000000_000002_leftImg8bit.png")
        for c in ("urban-day-clear", "urban-day-dense-fog")
    ]
    assert not np.array_equal(*images)
    out = tmp_path / "unpaired"
    assert (
        main(
            [
                "render-dataset",
                str(out),
                "--frames",
                "3",
                "--weather",
                "clear",
                "dense_fog",
                "--size",
                "64",
                "128",
                "--workers",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    assert not np.array_equal(labels(out, "urban-day-clear"), labels(out, "urban-day-dense-fog"))
    # 16-bit millimetre depth by default
    depth = _png(out / "depth/val/urban-day-clear/urban-day-clear_000000_000000_depth.png")
    meta = json.loads((out / "roadshift_dataset.json").read_text())
    seed = next(d["world_seed"] for d in meta["drives"] if d["weather"] == "clear")
    first = next(iter(sim.render_stream(sim.WorldConfig(height=64, width=128), seed, 1)))
    assert depth.dtype == np.uint16 and np.array_equal(depth, depth_mm(first.depth))


def _expected(image, semantic, depth, corruption, severity, index, seed=0, previous=None):
    """The documented per-frame draw, computed here independently of corrupt_dataset."""
    rng = np.random.default_rng(
        np.random.SeedSequence([seed, stable_int(corruption, float(severity)), index])
    )
    return sim.corrupt_frame(
        image,
        semantic,
        depth,
        corruption,
        severity,
        rng,
        previous=previous,
        pattern_seed=stable_int("pattern", seed),
    )


def test_corrupt_dataset_applies_the_documented_draws_and_moves_labels(tmp_path) -> None:
    frames = world_frames()
    src = write_pairs(tmp_path / "src", frames, depth=True)
    out = tmp_path / "out"
    args = [
        "corrupt-dataset",
        str(src),
        str(out),
        "--corruptions",
        "elastic_transform",
        "frame_drop",
        "fog_depth",
        "--severities",
        "2",
        "4.5",
        "--quiet",
    ]
    assert main([*args, "--workers", "2"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["layout"] == "pairs" and manifest["seed"] == 0
    assert manifest["folders"][:2] == ["elastic_transform/2", "elastic_transform/4.5"]
    moves = {c["name"]: c["moves_pixels"] for c in manifest["corruptions"]}
    assert moves == {"elastic_transform": True, "frame_drop": False, "fog_depth": False}
    src_ds = sim.FolderDataset({"root": str(src), "layout": "pairs"})
    for corruption in ("elastic_transform", "frame_drop", "fog_depth"):
        for severity in (2, 4.5):
            folder = out / corruption / f"{severity:g}"
            got = sim.FolderDataset({"root": str(folder), "layout": "pairs"})
            previous = None
            for i in range(len(frames)):
                s = src_ds.read(i)
                image, semantic, depth = _expected(
                    s.image, s.semantic, s.depth, corruption, severity, i, previous=previous
                )
                previous = image
                g = got.read(i)
                assert np.array_equal(g.image, image) and np.array_equal(g.semantic, semantic)
                # depth travels as millimetres; undefined (NaN after a warp) becomes no depth
                assert np.array_equal(g.depth == np.inf, ~np.isfinite(depth))
    moved = sim.FolderDataset({"root": str(out / "elastic_transform/4.5"), "layout": "pairs"})
    assert not np.array_equal(moved.read(0).semantic, frames[0].semantic)  # labels moved
    # the worker count changes nothing
    again = tmp_path / "again"
    assert main([args[0], str(src), str(again), *args[3:], "--workers", "1"]) == 0
    assert _files(again) == _files(out)


@pytest.mark.slow
def test_corrupt_dataset_resumes_after_a_kill_with_identical_output(tmp_path) -> None:
    frames = world_frames(12)
    src = write_cityscapes(tmp_path / "src", frames, labels="labelids")
    args = [
        "corrupt-dataset",
        str(src),
        "OUT",
        "--corruptions",
        "glass_blur",
        "gaussian_noise",
        "frame_drop",
        "--severities",
        "3",
        "5",
        "--workers",
        "2",
        "--quiet",
    ]
    whole = tmp_path / "whole"
    assert main([a if a != "OUT" else str(whole) for a in args]) == 0

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "scenarios.cli", *[a if a != "OUT" else str(killed) for a in args]]
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(killed.rglob("*_leftImg8bit.png"))) >= 10:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the command and its worker processes, mid-write
    proc.wait()
    manifest = json.loads((killed / "manifest.json").read_text())
    assert not manifest["complete"], "the kill came too late to test resuming"
    (killed / "glass_blur/3/.x.png.1.tmp.png").write_bytes(b"")  # as a kill mid-write leaves
    assert main([a if a != "OUT" else str(killed) for a in args]) == 0
    assert _files(killed) == _files(whole)


def test_layouts_are_recognised_and_a_yaml_spec_carries_a_label_map(tmp_path, capsys) -> None:
    frames = world_frames()[:2]
    video = write_video(tmp_path / "drive.mkv", frames)
    assert (
        main(
            [
                "corrupt-dataset",
                str(video),
                str(tmp_path / "v"),
                "--corruptions",
                "contrast",
                "--severities",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    got = sim.FolderDataset(
        {"root": str(tmp_path / "v/contrast/1"), "layout": "pairs", "labels": "none"}
    )
    assert [r.rel.name for r in got.records] == ["000000.png", "000001.png"]
    assert "2 frames in 1 datasets" in capsys.readouterr().out
    theirs = [(f.semantic.astype(np.uint16) + 1000) for f in frames]
    src = write_pairs(tmp_path / "p", frames, labels=theirs)
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"data:\n  root: {src}\n  layout: pairs\n  label_map: {{1000: 0, 1013: 13}}\n")
    assert (
        main(
            [
                "corrupt-dataset",
                str(spec),
                str(tmp_path / "o"),
                "--corruptions",
                "brightness",
                "--severities",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    out = sim.FolderDataset({"root": str(tmp_path / "o/brightness/2"), "layout": "pairs"})
    expected = np.where(np.isin(frames[1].semantic, [0, 13]), frames[1].semantic, 255)
    assert np.array_equal(out.read(1).semantic, expected)  # written as trainIds


def _bad(capsys, argv: list[str], message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("roadshift: error: "), err
    assert message in err[0], err[0]


def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys) -> None:
    frames = world_frames()[:3]
    out = tmp_path / "out"
    cs = write_cityscapes(tmp_path / "cs", frames)
    run = ["corrupt-dataset", str(cs), str(out), "--corruptions", "contrast", "--quiet"]
    _bad(
        capsys,
        ["corrupt-dataset", str(tmp_path / "nope"), str(out), "--corruptions", "fog"],
        "nope: no such file or folder",
    )
    (tmp_path / "empty").mkdir()
    _bad(
        capsys,
        ["corrupt-dataset", str(tmp_path / "empty"), str(out), "--corruptions", "fog"],
        "empty: no known layout (give --layout)",
    )
    _bad(
        capsys,
        [
            "corrupt-dataset",
            str(tmp_path / "empty"),
            str(out),
            "--corruptions",
            "fog",
            "--layout",
            "pairs",
        ],
        "empty/images: no such folder; layout pairs expects",
    )
    _bad(capsys, [*run, "--layout", "kitti"], "layout: unknown layout 'kitti'; valid choices")
    _bad(
        capsys,
        ["render-dataset", str(out), "--frames", "2", "--depth", "exr"],
        "--depth: unknown 'exr'; valid choices: png, npy, none",
    )
    pairs = write_pairs(tmp_path / "p", frames)
    (pairs / "labels/frame002.png").unlink()
    _bad(
        capsys,
        ["corrupt-dataset", str(pairs), str(out), "--corruptions", "fog"],
        "frame002.png: no label labels/frame002.png",
    )
    _bad(capsys, [*run[:4], "nois"], "unknown corruption 'nois' (did you mean noise")
    _bad(capsys, [*run, "--severities", "7"], "--severities: 7.0 is not a severity")
    _bad(capsys, [*run[:4], "fog_depth"], "fog_depth needs depth, and")
    label = cs / "gtFine/val/testcity/testcity_000000_000002_gtFine_labelTrainIds.png"
    bad = _png(label)
    bad[5, 5] = 77
    cv2.imwrite(str(label), bad)
    _bad(capsys, run, "label values 77 are outside trainIds 0..18 and 255")
    assert not out.exists()
    # an existing run of other arguments is refused, naming what differs
    cv2.imwrite(str(label), frames[2].semantic)
    assert main(run) == 0
    _bad(capsys, [*run, "--seed", "1"], "holds a corrupt-dataset run with other seed")
    _bad(capsys, ["render-dataset", str(out), "--frames", "2"], "exists and is not empty")
    new = tmp_path / "new"
    _bad(
        capsys,
        ["render-dataset", str(new), "--frames", "2", "--towns", "mars"],
        "--towns: unknown 'mars'; valid choices: urban, suburban, highway, rural",
    )
    _bad(capsys, ["render-dataset", str(new), "--frames", "0"], "--frames: must be a positive")
    _bad(capsys, ["render-dataset", str(new), "--frames", "2", "--size", "8", "8"], "--size: ")
    _bad(capsys, ["render-dataset", str(tmp_path / "a/b"), "--frames", "2"], "its parent folder")
    assert not new.exists() and not (tmp_path / "a").exists()
