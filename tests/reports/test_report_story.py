"""What a report says first, and the sentences that explain its numbers where they appear:
the fixed-class mIoU beside the per-cell rule, the clean row against the model's stated figure,
the clean-frame cost of batch statistics, Michaelis' mPC only on its 75 cells, and which section
leads for each kind of run. Numbers are made up (report arithmetic only)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from statistics import mean

import numpy as np
import pytest

from reports import build_report, make_cell_id
from tests.reports.demo_store import make_demo_store
from tests.reports.markdown import md_table, parse
from tests.reports.run_builder import RunBuilder, confusion, miou_of

# a clean stream without fence (4) and train (16): the model still predicts a few pixels of them
GT = {0: 40_000, 1: 6_000, 2: 20_000, 8: 9_000, 10: 15_000, 13: 3_000, 6: 30}
CLEAN_CM = confusion(GT, {1: 5_000, 2: 18_000, 13: 2_500, 6: 10}, {4: 300, 16: 60})
NOISY_CM = confusion(GT, {1: 2_000, 2: 9_000, 8: 4_000, 13: 900, 6: 0}, {4: 900})


def _story_run(tmp: Path, stated: float, bn_clean: float) -> dict:
    methods = {"source": ("source", {}), "bn": ("bn", {})}
    b = RunBuilder(
        tmp,
        methods,
        name="story",
        scenario={"frames": 32, "batch_size": 8},
        model={"name": "tiny", "weights": "bundled", "clean_val_miou": stated},
    )
    b.cell("source", "clean", 0, miou_of(CLEAN_CM), confusion=CLEAN_CM, frames=32)
    b.cell("bn", "clean", 0, bn_clean, confusion=CLEAN_CM, frames=32)
    for m in methods:
        b.cell(m, "gaussian_noise", 3, miou_of(NOISY_CM), confusion=NOISY_CM, frames=32)
    b.finish()
    md = Path(build_report(tmp, quiet=True)["markdown"]).read_text(encoding="utf-8")
    return {"md": md, "cells": b.cells}


def test_fixed_class_mIoU_sits_beside_the_per_cell_rule(tmp_path):
    md = _story_run(tmp_path, 0.80, miou_of(CLEAN_CM))["md"]
    present = sorted(GT)  # the classes of the clean ground truth
    rows = md_table(md, "Headline: robustness per method")
    row = dict(zip(rows["method"], rows["source"], strict=True))
    k = f"{len(present)} classes"
    assert parse(row["clean mIoU"])[0] == pytest.approx(100 * miou_of(CLEAN_CM), abs=0.051)
    assert parse(row[f"clean mIoU, {k}"])[0] == pytest.approx(
        100 * miou_of(CLEAN_CM, classes=present), abs=0.051
    )
    assert parse(row[f"mean over this grid, {k}"])[0] == pytest.approx(
        100 * miou_of(NOISY_CM, classes=present), abs=0.051
    )
    # the stray classes are named as absent, and marked in the per-class table
    absent = md.split("present in the clean ground truth (absent: ", 1)[1].split(")", 1)[0]
    names = ("road", "sidewalk", "building", "traffic light", "vegetation", "sky", "car")
    assert {"fence", "train"} <= set(absent.split(", ")) and not set(names) & set(
        absent.split(", ")
    )
    classes = md_table(md, "Per-class IoU under shift")
    assert "fence †" in classes and "road" in classes


def test_a_clean_row_below_the_stated_figure_says_why_in_one_sentence(tmp_path):
    md = _story_run(tmp_path, 0.80, 0.5)["md"]
    (line,) = [ln for ln in md.splitlines() if ln.startswith("The bundled model's stated")]
    gt = np.asarray(CLEAN_CM).sum(1)
    assert line.count(". ") == 0 and line.endswith(".")  # one sentence
    assert "80.0" in line and f"clean row ({100 * miou_of(CLEAN_CM):.1f})" in line
    assert "32 consecutive frames of one drive" in line
    assert (
        "fence and train never appear in the ground truth" in line and "300 and 60 pixels" in line
    )
    present = sorted(GT)
    assert f"it reads {100 * miou_of(CLEAN_CM, classes=present):.1f}" in line
    rare = [c for c in present if gt[c] < 0.001 * gt.sum()]
    assert rare == [6] and "traffic light cover under 0.1 %" in line


def test_a_clean_row_that_agrees_with_the_stated_figure_says_so(tmp_path):
    stated = miou_of(CLEAN_CM) + 0.01
    md = _story_run(tmp_path, stated, 0.5)["md"]
    assert "agrees with the bundled model's stated clean mIoU" in md
    assert "never appear in the ground truth" not in md


def test_the_clean_cost_of_batch_statistics_is_explained_only_when_there_is_one(tmp_path):
    lossy = _story_run(tmp_path / "a", 0.80, miou_of(CLEAN_CM) - 0.15)["md"]
    (line,) = [ln for ln in lossy.splitlines() if ln.startswith("bn loses")]
    assert "bn loses 15.0 points of clean mIoU against source" in line
    assert "8 consecutive frames of one drive" in line and "iid-vs-video" in line
    even = _story_run(tmp_path / "b", 0.80, miou_of(CLEAN_CM) - 0.005)["md"]
    assert "points of clean mIoU against" not in even


@pytest.mark.slow  # 160 cells and their heat maps: several seconds
def test_michaelis_mPC_only_where_the_grid_holds_his_75_cells(tmp_path):
    imagenet_c = (
        "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
        "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
        "elastic_transform", "pixelate", "jpeg_compression",
    )  # fmt: skip
    cells = make_demo_store(
        tmp_path,
        corruptions=(*imagenet_c, "low_light"),
        seeds=(0,),
        methods=("source", "bn"),
        frames=8,
        schedules=False,
        world_shifts=False,
        samples=False,
        failed=0,
    )
    md = Path(build_report(tmp_path, quiet=True)["markdown"]).read_text(encoding="utf-8")
    rows = md_table(md, "Headline: robustness per method")
    for method in ("source", "bn"):
        row = dict(zip(rows["method"], rows[method], strict=True))
        mine = [c for c in cells if c["method"] == method and c["corruption"] != "clean"]
        clean = next(
            c["miou"] for c in cells if c["method"] == method and c["corruption"] == "clean"
        )
        mpc = mean(c["miou"] for c in mine if c["corruption"] in imagenet_c)
        assert parse(row["mPC"])[0] == pytest.approx(100 * mpc, abs=0.051)
        assert parse(row["rPC"])[0] == pytest.approx(100 * mpc / clean, abs=0.051)
        # low light is not one of the 15: the grid's own mean is shown beside, under its name
        grid = mean(c["miou"] for c in mine)
        assert parse(row["mean over this grid"])[0] == pytest.approx(100 * grid, abs=0.051)
    assert "mPC (Michaelis et al. 2019)" in md


def _sections(md: str) -> list[str]:
    return [ln[3:] for ln in md.splitlines() if ln.startswith("## ")]


def test_a_schedule_run_opens_with_its_streams_not_empty_grid_tables(tmp_path):
    make_demo_store(
        tmp_path, corruptions=(), severities=(), seeds=(0,), frames=8, world_shifts=False,
        samples=False, failed=0,
    )  # fmt: skip
    paths = build_report(tmp_path, quiet=True)
    md = paths["markdown"].read_text(encoding="utf-8")
    assert _sections(md)[:3] == ["Run", "Shift schedules", "Findings"]
    assert "Headline: robustness per method" not in md and "Per-class IoU" not in md
    assert not any(p.stem.startswith("heatmap") for p in paths["figures"].glob("*.png"))
    # a short stream: one column per segment, the clean reference beside it
    rows = md_table(md, "day_to_night schedule: day-to-night")
    assert rows["method"] == ["clean", "stream mIoU", "day", "dusk", "twilight", "night"]
    # a long one (10 segments): first, last and worst
    rows = md_table(md, "continual schedule: continual-imagenet-c")
    assert rows["method"][-3:] == ["first segment", "last segment", "worst segment"]


def test_a_single_segment_stream_shows_no_first_last_worst(tmp_path):
    b = RunBuilder(tmp_path, {"source": ("source", {}), "bn": ("bn", {})})
    for m, v in (("source", 0.3), ("bn", 0.4)):
        seg = [dict(segment=0, start_frame=0, stop_frame=16, label="night", miou=v)]
        b.cell(m, "day_to_night", 2.0, v, schedule="day_to_night", segments=seg)
    md = Path(build_report(b.finish(), quiet=True)["markdown"]).read_text(encoding="utf-8")
    rows = md_table(md, "day_to_night schedule: day_to_night")
    assert rows["method"] == ["stream mIoU"]
    assert "one segment" in md


def test_a_world_shift_run_opens_with_the_world_table(tmp_path):
    make_demo_store(
        tmp_path, corruptions=(), severities=(), seeds=(0,), frames=8, schedules=False,
        samples=False, failed=0,
    )  # fmt: skip
    md = build_report(tmp_path, quiet=True)["markdown"].read_text(encoding="utf-8")
    assert _sections(md)[:2] == ["Run", "Shifts of the world"]
    assert "Headline: robustness per method" not in md


def _pixels_near(png: Path, rgb: tuple[int, int, int], tol: int = 40) -> int:
    from matplotlib.image import imread

    img = (np.asarray(imread(png))[..., :3] * 255).astype(int)
    return int((np.abs(img - np.array(rgb)).sum(-1) < tol).sum())


def test_a_method_drawn_on_top_of_another_stays_visible(tmp_path):
    """BN and TENT with identical numbers: BN's marks must still show beside TENT's."""
    make_demo_store(
        tmp_path, methods=("source", "bn", "tent"), corruptions=("fog",), seeds=(0,),
        frames=8, schedules=False, world_shifts=False, samples=False, failed=0,
    )  # fmt: skip
    import sqlite3

    con = sqlite3.connect(tmp_path / "results.sqlite")
    with con:  # tent's numbers := bn's
        con.execute(
            "UPDATE cells SET miou = (SELECT b.miou FROM cells b WHERE b.method = 'bn' AND "
            "b.corruption = cells.corruption AND b.severity = cells.severity) "
            "WHERE method = 'tent'"
        )
    con.close()
    figures = build_report(tmp_path, quiet=True)["figures"]
    bn_blue = (31, 119, 180)
    shown = _pixels_near(figures / "severity_curves.png", bn_blue)
    # drawn exactly under tent's line, as before, bn showed 15 such pixels (its legend entry)
    legend_only = 15
    assert shown > 10 * legend_only, f"bn's curve is hidden ({shown} blue pixels)"


def test_a_mixed_streams_per_frame_lines_keep_a_coincident_method_visible(tmp_path):
    """A mixed stream has no contiguous segments: its timeline is per-frame lines only. BN and
    TENT with identical per-frame numbers: BN's marks must still show beside TENT's."""
    b = RunBuilder(tmp_path, {m: (m, {}) for m in ("source", "bn", "tent")},
                   meta={"protocol": "mixed"})  # fmt: skip
    per_frame = {"source": [0.1 + 0.01 * (f % 5) for f in range(48)]}
    per_frame["bn"] = per_frame["tent"] = [0.4 + 0.02 * (f % 7) for f in range(48)]
    for m, values in per_frame.items():
        segs = [
            dict(segment=k, start_frame=None, stop_frame=None, label=f"{c} s5", corruption=c,
                 severity=5.0, miou=mean(values), round=1, order=0, frames=24)
            for k, c in enumerate(("fog", "night"))
        ]  # fmt: skip
        b.cell(m, "mixed", 5.0, mean(values), schedule="mixed", protocol="mixed",
               segments=segs, frames=48)  # fmt: skip
    b.finish()
    con = sqlite3.connect(tmp_path / "results.sqlite")
    with con:
        for m, values in per_frame.items():
            con.executemany(
                "INSERT INTO frames(cell_id, frame, corruption, severity, miou, entropy) "
                "VALUES (?, ?, 'mixed', 5.0, ?, 0.5)",
                [(make_cell_id(m, "mixed", 5.0, 0), f, v) for f, v in enumerate(values)],
            )
    con.close()
    figures = build_report(tmp_path, quiet=True)["figures"]
    shown = _pixels_near(figures / "timeline_0.png", (31, 119, 180))
    # drawn exactly under tent's line, bn showed only its legend entry (under 40 such pixels)
    assert shown > 150, f"bn's per-frame line is hidden ({shown} blue pixels)"
