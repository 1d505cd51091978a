"""The report's tables agree with an independent computation from the rows written to the store."""

from __future__ import annotations

import re
from collections import defaultdict
from statistics import mean, stdev

import pytest

from tests.reports.markdown import md_table, parse

TOL = 0.051  # tables print one decimal of a percentage


def grid_cells(cells: list[dict]) -> list[dict]:
    """Done cells of the corruption grid: clean, or a corruption at a severity (world shifts,
    which have severity 0, and schedules are reported separately)."""
    return [
        c
        for c in cells
        if c["status"] == "done"
        and c["schedule"] == "static"
        and (c["corruption"] == "clean" or c["severity"] > 0)
    ]


def expected_headline(cells: list[dict]) -> dict[str, dict[str, list[float]]]:
    """Per method, per-seed clean/mPC/rPC/gain/mCE straight from the definitions."""
    done = grid_cells(cells)
    table: dict = defaultdict(lambda: defaultdict(dict))
    for c in done:
        table[c["method"]][c["seed"]][(c["corruption"], c["severity"])] = c["miou"]
    out: dict[str, dict[str, list[float]]] = {}
    for method, by_seed in table.items():
        acc: dict[str, list[float]] = defaultdict(list)
        for seed, cellmap in by_seed.items():
            clean = cellmap[("clean", 0.0)]
            corr = {k: v for k, v in cellmap.items() if k[0] != "clean"}
            src = {k: v for k, v in table["source"][seed].items() if k[0] != "clean"}
            mpc = sum(corr.values()) / len(corr)
            acc["clean"].append(clean)
            acc["mpc"].append(mpc)  # the grid mean (Michaelis' mPC only on his 75 cells)
            acc["rpc"].append(mpc / clean)
            acc["gain"].append(mean(corr[k] - src[k] for k in corr))
            ces = {}
            for name in {k[0] for k in corr}:
                sevs = [k for k in corr if k[0] == name]
                ces[name] = sum(1 - corr[k] for k in sevs) / sum(1 - src[k] for k in sevs)
                acc[f"ce:{name}"].append(ces[name])
            acc["mce"].append(mean(ces.values()))
        out[method] = acc
    return out


def check(text: str, values: list[float]) -> None:
    got, spread = parse(text)
    assert got == pytest.approx(100 * mean(values), abs=TOL), text
    if len(values) > 1:
        assert spread == pytest.approx(100 * stdev(values), abs=TOL), text


def test_headline_table_matches_independent_computation(demo):
    rows = md_table(demo["md"], "Headline: robustness per method")
    exp = expected_headline(demo["cells"])
    assert list(rows) == ["method", "source", "bn", "tent"]
    header = rows["method"]
    for method in ("source", "bn", "tent"):
        row = dict(zip(header, rows[method], strict=True))
        check(row["clean mIoU"], exp[method]["clean"])
        # 11 corruptions, not ImageNet-C's 15: the mean is not called mPC
        assert "mPC" not in row and "rPC" not in row
        check(row["mean over this grid"], exp[method]["mpc"])
        check(row["grid mean / clean"], exp[method]["rpc"])
        if method == "source":
            assert row["gain over source"] == "reference"
            assert parse(row["mCE vs source"])[0] == pytest.approx(100.0)
        else:
            check(row["gain over source"], exp[method]["gain"])
            check(row["mCE vs source"], exp[method]["mce"])
    # the failed tent cell is left out, not counted as zero
    assert rows["tent"][-1] == str(int(rows["bn"][-1]) - 1)


def test_gain_cells_are_marked_by_the_sign_of_the_stored_difference(demo):
    """Report arithmetic on made-up numbers: the HTML marks a gain good or bad by its sign."""
    exp = expected_headline(demo["cells"])
    row = re.compile(r"<tr>(.*?)</tr>", re.S)
    for method in ("bn", "tent"):
        html_row = next(r for r in row.findall(demo["html"]) if f"</span>{method}</td>" in r)
        gain = mean(exp[method]["gain"])
        expected = "good" if gain > 0 else "bad"
        assert f'<td class="{expected}">{100 * gain:+.1f}' in html_row


def test_per_corruption_ce_matches(demo):
    rows = md_table(demo["md"], "Per corruption")
    header = rows["corruption"]
    exp = expected_headline(demo["cells"])
    for name in ("gaussian_noise", "fog", "contrast", "low_light"):
        row = dict(zip(header, rows[name], strict=True))
        check(row["bn CE vs source"], exp["bn"][f"ce:{name}"])
        check(row["tent CE vs source"], exp["tent"][f"ce:{name}"])
        assert row["family"] in {"noise", "weather", "digital", "driving"}


def test_per_class_and_safety_tables_match(demo):
    done = grid_cells(demo["cells"])
    src = [c for c in done if c["method"] == "source"]
    rows = md_table(demo["md"], "Per-class IoU under shift")
    header = rows["class"]
    for k, name in ((0, "road"), (11, "person"), (5, "pole")):
        clean = mean(c["per_class_iou"][k] for c in src if c["corruption"] == "clean")
        shifted = mean(c["per_class_iou"][k] for c in src if c["corruption"] != "clean")
        key = next(r for r in rows if r.split(" ⚠")[0] == name)
        row = dict(zip(header, rows[key], strict=True))
        assert float(row["source clean"]) == pytest.approx(100 * clean, abs=TOL)
        assert float(row["source corrupted"]) == pytest.approx(100 * shifted, abs=TOL)
        assert key.endswith("⚠") == (shifted < 0.5 * clean)
    assert "wall" not in rows  # a class absent everywhere is left out, not shown as 0
    safety = md_table(demo["md"], "Safety-critical recall")
    header = safety["class"]
    row = dict(zip(header, safety["person"], strict=True))
    clean, shifted = (float(x) for x in row["source clean → corrupted"].split(" → "))
    exp_clean = mean(c["safety_recall"]["person"] for c in src if c["corruption"] == "clean")
    exp_shift = mean(c["safety_recall"]["person"] for c in src if c["corruption"] != "clean")
    assert clean == pytest.approx(100 * exp_clean, abs=TOL)
    assert shifted == pytest.approx(100 * exp_shift, abs=TOL)


def test_compute_and_schedule_tables_match(demo):
    done = [c for c in demo["cells"] if c["status"] == "done"]
    rows = md_table(demo["md"], "Compute")
    header = rows["method"]
    for method in ("source", "tent"):
        mine = [c for c in done if c["method"] == method]
        frames = sum(c["frames"] for c in mine)
        ms = sum(c["ms_per_frame"] * c["frames"] for c in mine) / frames
        row = dict(zip(header, rows[method], strict=True))
        assert int(row["frames"]) == frames
        assert float(row["ms / frame"]) == pytest.approx(ms, abs=0.006)
        assert int(row["backward passes"]) == sum(c["backward_passes"] for c in mine)
        # passes per frame: forward passes over batches (each pass sees every frame of its batch)
        batches = sum(c["batches"] for c in mine)
        assert row["forward / frame"] == f"{sum(c['forward_passes'] for c in mine) / batches:.2f}"
        assert row["backward / frame"] == ("1.00" if method == "tent" else "0.00")
    assert "Timed with 1 torch thread per worker and 2 workers running at once" in demo["md"]
    stream = md_table(demo["md"], "continual schedule: continual-imagenet-c")
    header = stream["method"]
    for method in ("bn", "tent"):
        vals = [c["miou"] for c in done if c["method"] == method and c["schedule"] == "continual"]
        check(dict(zip(header, stream[method], strict=True))["stream mIoU"], vals)


def test_world_shift_table_matches(demo):
    done = [c for c in demo["cells"] if c["status"] == "done"]
    rows = md_table(demo["md"], "World shifts")
    header = rows["shift"]
    assert {"town=highway", "town=rural", "clean"} <= set(rows)
    for label in ("town=highway", "town=rural"):
        row = dict(zip(header, rows[label], strict=True))
        by = {(c["method"], c["seed"]): c["miou"] for c in done if c["corruption"] == label}
        check(row["source mIoU"], [v for (m, _), v in by.items() if m == "source"])
        check(row["tent gain"], [v - by[("source", s)] for (m, s), v in by.items() if m == "tent"])
    clean = dict(zip(header, rows["clean"], strict=True))
    check(
        clean["bn mIoU"],
        [c["miou"] for c in done if c["method"] == "bn" and c["corruption"] == "clean"],
    )
