"""Findings and protocol tables: each finding holds, does not hold, or is omitted as the stored
numbers say, and the protocol tables agree with an independent computation.

The run folders are fixtures with made-up numbers chosen to put each finding on one side of its
threshold; they test the report's arithmetic and logic, not any method.
"""

from __future__ import annotations

from pathlib import Path
from statistics import mean, stdev

import pytest

from reports import build_report
from tests.reports.markdown import md_table, parse
from tests.reports.run_builder import RunBuilder

METHODS = {
    "source": ("source", {}),
    "bn": ("bn", {}),
    "tent": ("tent", {}),
    "bn-prior": ("bn", {"prior_strength": 16}),
}
SHIFTS = ("gaussian_noise", "fog")
ROUNDS = 3
SEG_FRAMES = 8


def _grid(b: RunBuilder, values: dict[str, dict[tuple[str, float], float]]) -> None:
    for method, cells in values.items():
        for (corr, sev), v in cells.items():
            b.cell(method, corr, sev, v)


def _continual(b: RunBuilder, method: str, per_round: list[tuple[float, float]], **extra) -> str:
    """A continual stream of ROUNDS × SHIFTS segments (severity 5); returns its cell id."""
    segs, k = [], 0
    for r, vals in enumerate(per_round):
        for shift, v in zip(SHIFTS, vals, strict=True):
            segs.append(
                dict(segment=k, start_frame=k * SEG_FRAMES, stop_frame=(k + 1) * SEG_FRAMES,
                     label=f"{shift} s5 r{r + 1}", corruption=shift, severity=5.0, miou=v,
                     entropy=0.3, round=r, order=0, frames=SEG_FRAMES,
                     recovery_frames=extra.pop(f"rec{k}", 2), collapse=extra.pop(f"col{k}", 0))
            )  # fmt: skip
            k += 1
    miou = mean(v for vals in per_round for v in vals)
    return b.cell(method, "continual", 5.0, miou, schedule="continual", segments=segs,
                  protocol="continual", order=0, rounds=ROUNDS, frames=k * SEG_FRAMES,
                  **extra)  # fmt: skip


def _meta() -> dict:
    return {
        "protocol": "continual",
        "protocol_plan": {
            "rounds": ROUNDS,
            "orders": [[f"{s} s5" for s in SHIFTS]],
            "shifts": [{"label": f"{s} s5", "corruption": s, "severity": 5} for s in SHIFTS],
            "stream_frames": ROUNDS * len(SHIFTS) * SEG_FRAMES,
        },
        "stream": {
            "sampling": ["video", "iid"],
            "frames_per_segment": SEG_FRAMES,
            "batch_size": 4,
        },
        "online": {
            "eta": 1.0,
            "fallback": "last",
            "cost_ratio": {"source": 1.0, "bn": 1.05, "tent": 2.6},
            "skipped_batches": {"source": 0, "bn": 1, "tent": 2},
        },
        "forgetting": {"frames": 32, "towns": ["urban", "suburban"]},
        "recovery": {"window": 8, "band": 0.05, "final_fraction": 0.25},
        "collapse": {"class_ratio": 0.5, "entropy": 0.005},
    }


def _folder(tmp: Path, positive: bool) -> dict:
    """A continual run where every finding holds (positive) or none does (negative)."""
    b = RunBuilder(tmp, METHODS, name="findings", meta=_meta(), scenario={"batch_size": 4})
    d = 0.10 if positive else 0.0  # the size of every effect
    grid = {
        "source": {("clean", 0): 0.70, ("gaussian_noise", 2): 0.40, ("gaussian_noise", 5): 0.10,
                   ("fog", 2): 0.50, ("fog", 5): 0.20},
        "bn": {("clean", 0): 0.60, ("gaussian_noise", 2): 0.45,
               ("gaussian_noise", 5): 0.10 + 2 * d + 0.005, ("fog", 2): 0.50,
               ("fog", 5): 0.20 + d + 0.005},
        "tent": {("clean", 0): 0.61, ("gaussian_noise", 2): 0.46, ("gaussian_noise", 5): 0.31,
                 ("fog", 2): 0.51, ("fog", 5): 0.36},
    }  # fmt: skip
    grid["bn-prior"] = {
        k: v + (0.6 * d + 0.005 if k[0] == "clean" else -0.5 * d) for k, v in grid["bn"].items()
    }
    _grid(b, grid)
    # i.i.d. controls of the clean cells: the video stream costs bn d more than i.i.d. frames
    # (as the runner labels a second sampling's cells: ``clean.iid``)
    for method, v in (("source", 0.72), ("bn", 0.70 - (0.10 - d))):
        b.cell(method, "clean.iid", 0, v, sampling="iid")
    tent_rounds = [(0.45, 0.55), (0.30, 0.40), (0.25, 0.35)] if positive else [(0.30, 0.40)] * 3
    _continual(b, "source", [(0.10, 0.20)] * 3, online_miou=0.15, skipped_frames=0,
               clean_before=0.70, clean_after=0.70)  # fmt: skip
    _continual(b, "bn", [(0.30, 0.40)] * 3, online_miou=0.33, skipped_frames=24,
               clean_before=0.60, clean_after=0.60)  # fmt: skip
    _continual(b, "tent", tent_rounds, online_miou=0.28 if positive else 0.34,
               skipped_frames=32, clean_before=0.61, clean_after=0.51, col5=1,
               rec2=6)  # fmt: skip
    return {"dir": b.finish(), "cells": b.cells, "segments": b.segments}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    out = {}
    for key, positive in (("pos", True), ("neg", False)):
        run = _folder(tmp_path_factory.mktemp(key), positive)
        paths = build_report(run["dir"], quiet=True)
        run["md"] = Path(paths["markdown"]).read_text(encoding="utf-8")
        run["html"] = Path(paths["html"]).read_text(encoding="utf-8")
        out[key] = run
    return out


def finding(md: str, key: str) -> str:
    lines = [ln for ln in md.splitlines() if ln.startswith(f"- **({key}) ")]
    assert len(lines) == 1, f"finding ({key}) is not listed once among the tested findings"
    return lines[0]


def _cells(run, **match) -> list[dict]:
    return [c for c in run["cells"] if all(c.get(k) == v for k, v in match.items())]


def _miou(run, method, corr, sev, sampling=None) -> float:
    label = corr if sampling is None else f"{corr}.{sampling}"
    (c,) = [
        c
        for c in _cells(run, method=method, corruption=label, severity=float(sev))
        if c["schedule"] == "static"
    ]
    return c["miou"]


def _rounds(run, method) -> list[float]:
    (c,) = _cells(run, method=method, schedule="continual")
    segs = run["segments"][c["cell_id"]]
    return [mean(s["miou"] for s in segs if s["round"] == r) for r in range(ROUNDS)]


@pytest.mark.parametrize("key", ["pos", "neg"])
def test_bn_beats_source_is_decided_on_severity_4_and_up(runs, key):
    run = runs[key]
    strong = [(c, s) for c in ("gaussian_noise", "fog") for s in (5,)]  # the grid's s ≥ 4
    diff = mean(_miou(run, "bn", c, s) - _miou(run, "source", c, s) for c, s in strong)
    line = finding(run["md"], "a")
    assert f"{100 * diff:+.1f} points" in line and "Over 2 corruption cells" in line
    assert line.count("holds here") + line.count("does not hold here") == 1
    assert ("does not hold here" not in line) == (diff >= 0.01)
    assert (key == "pos") == (diff >= 0.01)


@pytest.mark.parametrize("key", ["pos", "neg"])
def test_video_vs_iid_compares_the_clean_cost_of_both_samplings(runs, key):
    run = runs[key]
    video = _miou(run, "source", "clean", 0) - _miou(run, "bn", "clean", 0)
    iid = _miou(run, "source", "clean", 0, "iid") - _miou(run, "bn", "clean", 0, "iid")
    line = finding(run["md"], "b")
    assert f"{100 * video:.1f} points of mIoU to source on video frames" in line
    assert f"{100 * iid:.1f} on i.i.d. frames" in line
    assert ("does not hold here" not in line) == (video - iid >= 0.01) == (key == "pos")


def test_the_iid_control_gets_its_own_table_and_stays_out_of_the_grid(runs):
    md = runs["pos"]["md"]
    rows = md_table(md, "Video vs iid frames")
    row = dict(zip(rows["shift"], rows["clean"], strict=True))
    video, iid = _miou(runs["pos"], "bn", "clean", 0), _miou(runs["pos"], "bn", "clean", 0, "iid")
    assert float(row["bn video"]) == pytest.approx(100 * video, abs=0.051)
    assert float(row["bn iid"]) == pytest.approx(100 * iid, abs=0.051)
    assert float(row["bn video − iid (pp)"]) == pytest.approx(100 * (video - iid), abs=0.051)
    assert "clean.iid" not in md  # neither a world shift nor a grid row
    headline = md_table(md, "Headline: robustness per method")
    bn = dict(zip(headline["method"], headline["bn"], strict=True))
    assert float(bn["clean mIoU"]) == pytest.approx(100 * video, abs=0.051)


@pytest.mark.parametrize("key", ["pos", "neg"])
def test_tent_degradation_compares_its_first_and_last_round(runs, key):
    run = runs[key]
    tent, bn = _rounds(run, "tent"), _rounds(run, "bn")
    line = finding(run["md"], "c")
    assert f"tent {100 * tent[0]:.1f} in round 1 → {100 * tent[-1]:.1f} in round {ROUNDS}" in line
    assert f"bn {100 * bn[0]:.1f} → {100 * bn[-1]:.1f}" in line
    assert ("does not hold here" not in line) == (tent[-1] - tent[0] <= -0.01) == (key == "pos")


@pytest.mark.parametrize("key", ["pos", "neg"])
def test_a_budget_reorders_when_a_pair_swaps_by_the_margin(runs, key):
    run = runs[key]
    streams = {c["method"]: c for c in _cells(run, schedule="continual")}
    off = {m: c["miou"] for m, c in streams.items()}
    on = {m: c["online_miou"] for m, c in streams.items()}
    swapped = any(off[a] - off[b] >= 0.005 and on[b] - on[a] >= 0.005 for a in off for b in off)
    line = finding(run["md"], "d")
    best_online = max(on, key=on.get)
    assert f"Online: {best_online} {100 * on[best_online]:.1f}" in line
    assert ("does not hold here" not in line) == swapped == (key == "pos")


@pytest.mark.parametrize("key", ["pos", "neg"])
def test_prior_mixing_needs_a_clean_gain_and_a_shifted_cost(runs, key):
    run = runs[key]
    clean = _miou(run, "bn-prior", "clean", 0) - _miou(run, "bn", "clean", 0)
    shifted = [
        _miou(run, "bn", c, s) - _miou(run, "bn-prior", c, s)
        for c in ("gaussian_noise", "fog")
        for s in (2, 5)
    ]
    line = finding(run["md"], "e")
    assert f"Clean: bn-prior {100 * clean:+.1f} points against bn" in line
    assert f"corrupted (4 cells): {-100 * mean(shifted):+.1f} points" in line
    holds = clean >= 0.01 and mean(shifted) >= 0.01
    assert ("does not hold here" not in line) == holds == (key == "pos")


def test_findings_whose_cells_were_not_run_are_omitted(tmp_path):
    b = RunBuilder(tmp_path, {"source": ("source", {}), "tent": ("tent", {})})
    _grid(b, {m: {("clean", 0): 0.6, ("fog", 2): 0.4} for m in ("source", "tent")})
    md = Path(build_report(b.finish(), quiet=True)["markdown"]).read_text(encoding="utf-8")
    assert "## Findings" in md and "holds here" not in md
    section = md.split("## Findings", 1)[1].split("\n## ", 1)[0]
    for key in "abcde":
        assert f"- ({key}) " in section  # listed as untested, with what it needs


def test_a_protocol_run_opens_with_its_rounds_then_findings(runs):
    md, html = runs["pos"]["md"], runs["pos"]["html"]
    sections = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert sections[:3] == ["## Run", "## Continual protocol: 3 rounds", "## Findings"]
    assert '<h2 id="findings">Findings</h2>' in html
    (protocol,) = [ln for ln in md.splitlines() if ln.startswith("| protocol | ")]
    assert protocol.startswith("| protocol | continual") and "3 rounds" in protocol
    protocol_section = md.split("## Continual protocol", 1)[1]
    assert protocol_section.index("### continual: mIoU per round") < protocol_section.index(
        "### continual: mIoU per shift"
    )


def test_round_and_shift_tables_match_the_segments(runs):
    run = runs["pos"]
    rounds = md_table(run["md"], "continual: mIoU per round")
    header = rounds["method"]
    for method in ("source", "bn", "tent"):
        row = dict(zip(header, rounds[method], strict=True))
        vals = _rounds(run, method)
        for r, v in enumerate(vals):
            assert float(row[f"round {r + 1}"]) == pytest.approx(100 * v, abs=0.051)
        assert float(row["last − first (pp)"]) == pytest.approx(
            100 * (vals[-1] - vals[0]), abs=0.051
        )
    shifts = md_table(run["md"], "continual: mIoU per shift")
    (tent,) = _cells(run, method="tent", schedule="continual")
    noise = mean(
        s["miou"] for s in run["segments"][tent["cell_id"]] if s["corruption"] == SHIFTS[0]
    )
    row = dict(zip(shifts["shift"], shifts["gaussian_noise s5"], strict=True))
    assert float(row["tent mIoU"]) == pytest.approx(100 * noise, abs=0.051)
    assert float(dict(zip(shifts["shift"], shifts["clean"], strict=True))["bn mIoU"]) == 60.0


def test_forgetting_online_and_recovery_tables_match(runs):
    run = runs["pos"]
    streams = {c["method"]: c for c in _cells(run, schedule="continual")}
    forget = md_table(run["md"], "Forgetting: clean source-domain mIoU before and after adaptation")
    row = dict(zip(forget["method"], forget["tent"], strict=True))
    tent = streams["tent"]
    assert float(row["after − before (pp)"]) == pytest.approx(
        100 * (tent["clean_after"] - tent["clean_before"]), abs=0.051
    )
    online = md_table(run["md"], "Offline vs online (compute-aware) mIoU")
    row = dict(zip(online["method"], online["tent"], strict=True))
    assert row["cost ratio r"] == "2.60" and row["batches missed per step"] == "2"
    assert float(row["online mIoU"]) == pytest.approx(100 * tent["online_miou"], abs=0.051)
    assert row["frames on fallback"].startswith(f"32 of {tent['frames']}")
    assert row["rank offline → online"] == "1 → 2"
    recovery = md_table(run["md"], "Recovery and collapse")
    row = dict(zip(recovery["method"], recovery["tent"], strict=True))
    recs = [s["recovery_frames"] for s in run["segments"][tent["cell_id"]]]
    assert float(row["frames to settle"]) == pytest.approx(mean(recs), abs=0.051)
    assert row["recovery measured"] == str(sum(r is not None for r in recs))
    assert row["collapsed"] == "1" and row["where"] == "fog s5 r3"


def test_the_header_counts_a_carried_runs_frames_per_segment(runs):
    # ``frames`` of a carried protocol is one segment's length; the stream is rounds × shifts
    md = runs["pos"]["md"]
    stream = ROUNDS * len(SHIFTS) * SEG_FRAMES
    assert f"| frames per segment | {SEG_FRAMES}; each adapted stream {stream} frames |" in md
    assert "| frames per cell |" not in md


def test_a_protocol_report_is_deterministic(runs, tmp_path):
    run = runs["pos"]
    first = (run["dir"] / "report.html").read_bytes()
    figs = {p.name: p.read_bytes() for p in (run["dir"] / "figures").glob("*.png")}
    build_report(run["dir"], quiet=True)
    assert (run["dir"] / "report.html").read_bytes() == first
    assert {p.name: p.read_bytes() for p in (run["dir"] / "figures").glob("*.png")} == figs
    assert "rounds_continual.png" in figs


def test_label_shift_tables_show_miou_and_class_priors_per_domain(tmp_path):
    domains = ("town=urban", "town=highway", "town=rural")
    priors = {  # share of labelled pixels: road, building, vegetation, car
        "town=urban": {0: 0.40, 2: 0.35, 8: 0.05, 13: 0.20},
        "town=highway": {0: 0.60, 2: 0.05, 8: 0.15, 13: 0.20},
        "town=rural": {0: 0.30, 2: 0.02, 8: 0.63, 13: 0.05},
    }
    b = RunBuilder(tmp_path, {"source": ("source", {}), "tent": ("tent", {})},
                   meta={"protocol": "continual"})  # fmt: skip
    values = {"source": (0.6, 0.4, 0.3), "tent": (0.62, 0.45, 0.2)}
    for m, vals in values.items():
        segs = [
            dict(segment=k, start_frame=8 * k, stop_frame=8 * (k + 1), label=d, corruption="fog",
                 severity=2.0, miou=v, round=0, order=0, domain=d, frames=8,
                 class_prior=[priors[d].get(c, 0.0) for c in range(19)])
            for k, (d, v) in enumerate(zip(domains, vals, strict=True))
        ]  # fmt: skip
        b.cell(m, "continual", 2.0, mean(vals), schedule="continual", segments=segs,
               protocol="continual")  # fmt: skip
    md = Path(build_report(b.finish(), quiet=True)["markdown"]).read_text(encoding="utf-8")
    rows = md_table(md, "Label shift: mIoU per domain")
    for k, d in enumerate(domains):
        row = dict(zip(rows["domain"], rows[d], strict=True))
        assert float(row["tent mIoU"]) == pytest.approx(100 * values["tent"][k])
    prior = md_table(md, "Label shift: class priors per domain")
    assert prior["domain"] == ["road", "building", "vegetation", "car"]  # absent classes left out
    assert prior["town=rural"] == ["30.0", "2.0", "63.0", "5.0"]
    assert [ln for ln in md.splitlines() if ln.startswith("## ")][1] == "## Continual protocol"


def test_a_label_shift_stream_of_fresh_adapters_has_its_timeline_in_its_section(tmp_path):
    # label_shift under reset_each_shift: grid cells whose segments are the town parts; the
    # stream is drawn beside the domain tables, not as a 'schedule', and no empty grid leads
    domains = ("town=urban", "town=highway")
    stream = {"sampling": "video", "frames_per_segment": 8,
              "label_shift": [{"label": d} for d in domains]}  # fmt: skip
    b = RunBuilder(tmp_path, {"source": ("source", {}), "bn": ("bn", {})},
                   scenario={"corruptions": ["fog"], "frames": 8},
                   meta={"stream": stream, "protocol_plan": {"stream_frames": 16}})  # fmt: skip
    for m, vals in {"source": (0.5, 0.3), "bn": (0.55, 0.25)}.items():
        for corr, sev, d in (("clean", 0.0, 0.2), ("fog", 3.0, 0.0)):
            segs = [
                dict(segment=k, start_frame=8 * k, stop_frame=8 * (k + 1), label=f"{corr} {dom}",
                     corruption=corr, severity=sev, miou=v + d, round=1, order=0, domain=dom,
                     frames=8)
                for k, (dom, v) in enumerate(zip(domains, vals, strict=True))
            ]  # fmt: skip
            b.cell(m, corr, sev, mean(vals) + d, segments=segs, frames=16)
    md = Path(build_report(b.finish(), quiet=True)["markdown"]).read_text(encoding="utf-8")
    heads = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert heads[1] == "## Label shift" and "## Shift schedules" not in heads
    section = md.split("\n## Label shift\n")[1].split("\n## ")[0]
    assert "![Timeline: fog s3]" in section and "![Timeline: clean]" in section
    assert "| frames per segment | 8; each adapted stream 16 frames |" in md


def test_orders_are_averaged_with_their_spread(tmp_path):
    """Two orders of the shift list: each round's value is the mean over the orders' streams,
    with their sample standard deviation; each order keeps its own timeline."""
    b = RunBuilder(tmp_path, {"source": ("source", {}), "tent": ("tent", {})},
                   meta={"protocol": "continual"})  # fmt: skip
    per_order = {0: [(0.40, 0.50), (0.30, 0.40)], 1: [(0.20, 0.30), (0.10, 0.20)]}
    for order, rounds in per_order.items():
        for m in ("source", "tent"):
            segs, k = [], 0
            for r, vals in enumerate(rounds):
                for shift, v in zip(SHIFTS, vals, strict=True):
                    segs.append(
                        dict(
                            segment=k,
                            start_frame=8 * k,
                            stop_frame=8 * (k + 1),
                            label=f"{shift} s5 r{r + 1}",
                            corruption=shift,
                            severity=5.0,
                            miou=v,
                            round=r + 1,
                            order=order,
                            frames=8,
                        )
                    )
                    k += 1  # fmt: skip
            label = f"continual.o{order}"
            b.cell(m, label, 5.0, mean(v for vs in rounds for v in vs), schedule="continual",
                   segments=segs, protocol="continual", order=order)  # fmt: skip
    paths = build_report(b.finish(), quiet=True)
    md = paths["markdown"].read_text(encoding="utf-8")
    rows = md_table(md, "continual: mIoU per round")
    row = dict(zip(rows["method"], rows["tent"], strict=True))
    first = [mean(per_order[o][0]) for o in (0, 1)]
    got, spread = parse(row["round 1"])
    assert got == pytest.approx(100 * mean(first), abs=0.051)
    assert spread == pytest.approx(100 * stdev(first), abs=0.051)
    assert "over the 2 streams (seeds × orders)" in md
    timelines = sorted(p.stem for p in paths["figures"].glob("timeline_*.png"))
    assert timelines == ["timeline_0", "timeline_1"]
