"""Closed-loop results: drives pooled per method and shift, offset traces, failure strips.

A closed-loop cell (``loop = 'closed'``) is one method × shift × severity × seed: a batch of
drives that the method's predictions steered. Its drives are stored one row each (the store's
``drives`` table) with their traces and the frames around their first failure in
``drives/<cell_id>.npz``. Tables pool every drive of a method and shift over the seeds:
rates are totals over the total scored distance, never means of per-drive rates.

The ground-truth ``oracle`` drives on the labels the world renders, which no image shift
reaches, so the runner drives it once per world (under the ``clean`` shift); its row is the
upper bound for every shift of that world.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ._load import CLEAN, RunData, is_closed_loop_cell
from ._tables import DASH, Table

ORACLE = "oracle"
SOURCE = "source"


@dataclass(frozen=True)
class DriveStats:
    """Drives pooled: totals, rates over the total scored distance, and extremes."""

    drives: int
    distance_km: float
    interventions: int
    interventions_per_km: float | None
    #: mean over drives of the metres driven before the first failure; a drive without one
    #: counts its whole scored distance (so this is a lower bound when drives_failed < drives)
    distance_to_failure_m: float | None
    drives_failed: int
    collisions: int
    off_road: int
    stalls: int
    offset_rms: float | None  # over every step the controller drove
    min_ttc: float | None  # s; None: never closing on anything


def pool_drives(rows: Iterable[Mapping[str, Any]]) -> DriveStats:
    """Pool drive rows (the store's ``drives`` table) into one :class:`DriveStats`."""
    rows = list(rows)
    km = sum(float(r.get("distance_m") or 0.0) for r in rows) / 1000.0
    interventions = sum(int(r.get("interventions") or 0) for r in rows)
    steps = sum(int(r.get("controlled_steps") or 0) for r in rows)
    sq = sum(
        float(r["offset_rms"]) ** 2 * int(r.get("controlled_steps") or 0)
        for r in rows
        if r.get("offset_rms") is not None
    )
    to_failure = [
        float(r["first_failure_m"] if r.get("first_failure_m") is not None else r["distance_m"])
        for r in rows
        if r.get("distance_m") is not None
    ]
    ttcs = [float(r["min_ttc"]) for r in rows if r.get("min_ttc") is not None]
    return DriveStats(
        drives=len(rows),
        distance_km=km,
        interventions=interventions,
        interventions_per_km=interventions / km if km > 0 else None,
        distance_to_failure_m=float(np.mean(to_failure)) if to_failure else None,
        drives_failed=sum(1 for r in rows if int(r.get("interventions") or 0) > 0),
        collisions=sum(int(r.get("collisions") or 0) for r in rows),
        off_road=sum(int(r.get("off_road") or 0) for r in rows),
        stalls=sum(int(r.get("stalls") or 0) for r in rows),
        offset_rms=math.sqrt(sq / steps) if steps else None,
        min_ttc=min(ttcs) if ttcs else None,
    )


Shift = tuple[str, float]  # (corruption label, severity)


def shift_name(shift: Shift) -> str:
    corruption, severity = shift
    return corruption if corruption == CLEAN or not severity else f"{corruption} s{severity:g}"


@dataclass
class ClosedLoop:
    """A run's closed-loop results: pooled stats per (method, shift), shifts in order."""

    methods: list[str]
    shifts: list[Shift]
    stats: dict[tuple[str, Shift], DriveStats]
    miou: dict[tuple[str, Shift], float]  # mean over seeds of the cells' mIoU
    seeds: list[int]

    def get(self, method: str, shift: Shift) -> DriveStats | None:
        return self.stats.get((method, shift))

    def oracle(self, shift: Shift) -> DriveStats | None:
        """The oracle's stats for a shift: its own cell, else its clean drive."""
        return self.get(ORACLE, shift) or self.get(ORACLE, (CLEAN, 0.0))


def closed_loop(data: RunData, methods: Sequence[str], corruptions: Sequence[str]) -> ClosedLoop:
    cells = [c for c in data.done if is_closed_loop_cell(c)]
    by_key: dict[tuple[str, Shift], list[dict[str, Any]]] = defaultdict(list)
    miou: dict[tuple[str, Shift], list[float]] = defaultdict(list)
    for c in cells:
        shift = (str(c["corruption"]), 0.0 if c["corruption"] == CLEAN else float(c["severity"]))
        key = (str(c["method"]), shift)
        by_key[key] += data.drives.get(c["cell_id"], [])
        if c.get("miou") is not None:
            miou[key].append(float(c["miou"]))
    order = {name: i for i, name in enumerate(corruptions)}
    shifts = sorted(
        {s for _, s in by_key},
        key=lambda s: (s[0] != CLEAN, order.get(s[0], len(order)), s[0], s[1]),
    )
    present = {m for m, _ in by_key}
    ordered = [m for m in methods if m in present] + sorted(present - set(methods))
    if ORACLE in ordered:  # the upper bound first, then the baseline
        ordered.remove(ORACLE)
        ordered.insert(0, ORACLE)
    return ClosedLoop(
        methods=ordered,
        shifts=shifts,
        stats={k: pool_drives(v) for k, v in by_key.items()},
        miou={k: float(np.mean(v)) for k, v in miou.items()},
        seeds=sorted({int(c.get("seed") or 0) for c in cells}),
    )


def _num(v: float | None, fmt: str = "{:.2f}") -> str:
    return DASH if v is None or not math.isfinite(v) else fmt.format(v)


def drive_table(cl: ClosedLoop) -> Table:
    t = Table(
        "Closed loop: drives per method and shift",
        "closed-loop",
        [
            "shift",
            "method",
            "drives",
            "km",
            "interventions / km (n)",
            "m to first failure",
            "collisions",
            "off-road",
            "stalls",
            "offset RMS (m)",
            "min TTC (s)",
            "mIoU",
        ],
        [],
        "Every drive of a method and shift, pooled over seeds "
        f"({', '.join(map(str, cl.seeds))}). A failure is a collision, leaving the road or a "
        "stall (standing still with the lane clear); each one hands the car to the autopilot "
        "for a while (an intervention). m to first failure: mean over drives, a drive without "
        "a failure counting its whole distance (a lower bound). Offset RMS and min TTC (time "
        "to collision with what the car closes on) cover the steps the controller drove. mIoU "
        "is on the frames each method itself saw and steered into, so it compares only "
        "loosely across methods.",
    )
    for shift in cl.shifts:
        for m in cl.methods:
            s = cl.get(m, shift)
            if s is None:
                continue
            t.rows.append(
                [
                    shift_name(shift),
                    m,
                    str(s.drives),
                    f"{s.distance_km:.2f}",
                    f"{_num(s.interventions_per_km)} ({s.interventions})",
                    _num(s.distance_to_failure_m, "{:.0f}"),
                    str(s.collisions),
                    str(s.off_road),
                    str(s.stalls),
                    _num(s.offset_rms, "{:.3f}"),
                    _num(s.min_ttc, "{:.1f}"),
                    _num(cl.miou.get((m, shift)), "{:.3f}"),
                ]
            )
    return t


def interventions_table(cl: ClosedLoop) -> Table:
    """Interventions per km: methods × shifts, with each adaptation method's change against
    ``source`` and the share of the source-to-oracle gap it closes."""
    t = Table(
        "Closed loop: interventions per km",
        "closed-loop-interventions",
        ["method", *[shift_name(s) for s in cl.shifts]],
        [],
        "Interventions per km over every drive of the shift (lower is better). Under each "
        f"adaptation method: its change against {SOURCE} and, when {SOURCE} fails more than "
        f"the {ORACLE}, the share of that gap it closes (100 % = as good as the {ORACLE}, "
        f"negative = worse than {SOURCE}). The {ORACLE} drives on ground-truth labels, which "
        "no image shift reaches: its one clean drive is the bound for every shift.",
    )
    for m in cl.methods:
        row = [m]
        for shift in cl.shifts:
            s = cl.get(m, shift) if m != ORACLE else cl.oracle(shift)
            if s is None or s.interventions_per_km is None:
                row.append(DASH)
                continue
            text = f"{s.interventions_per_km:.2f}"
            src, orc = cl.get(SOURCE, shift), cl.oracle(shift)
            if (
                m not in (ORACLE, SOURCE)
                and src is not None
                and src.interventions_per_km is not None
            ):
                delta = s.interventions_per_km - src.interventions_per_km
                text += f" ({delta:+.2f}"
                if orc is not None and orc.interventions_per_km is not None:
                    gap = src.interventions_per_km - orc.interventions_per_km
                    if gap > 0:
                        text += f", {100 * -delta / gap:.0f} % of gap"
                text += ")"
            row.append(text)
        t.rows.append(row)
    return t


# ----------------------------------------------------------------------------- drive records


def load_record(path: Path) -> dict[str, Any] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (OSError, ValueError):
        return None
    if not {"distance", "offset", "event", "auto"} <= set(out):
        return None
    for key in ("method", "corruption", "severity", "seed", "strip_kind", "strip_distance"):
        if key in out and out[key].ndim == 0:
            out[key] = out[key].item()
    return out


def _records(data: RunData) -> dict[str, dict[str, Any]]:
    out = {}
    for path in data.drive_records:
        rec = load_record(path)
        if rec is not None:
            out[path.stem] = rec
    return out


def _cells_by_method(data: RunData) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in data.done:
        if is_closed_loop_cell(c):
            out[str(c["method"])].append(c)
    return out


def offset_figure(data: RunData, cl: ClosedLoop, colors: Mapping[str, str]) -> Figure | None:
    """Lateral offset over distance, one panel per method: the first drive of the first seed
    under clean frames and each corruption at its highest severity; failures marked ×, the
    autopilot's stretches shaded."""
    records = _records(data)
    if not records:
        return None
    worst: dict[str, float] = {}
    for corr, sev in cl.shifts:
        worst[corr] = max(worst.get(corr, sev), sev)
    shown = [(c, s) for c, s in cl.shifts if worst.get(c) == s]
    cells = _cells_by_method(data)
    methods = [m for m in cl.methods if m in cells]
    if not methods:
        return None
    fig = Figure(figsize=(11, 2.3 * len(methods) + 0.6), layout="constrained")
    axes = fig.subplots(len(methods), 1, squeeze=False, sharex=True)[:, 0]
    palette = [
        "#333333", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    ]  # fmt: skip
    shift_color = {s: palette[i % len(palette)] for i, s in enumerate(shown)}
    seed0 = cl.seeds[0] if cl.seeds else 0
    for ax, m in zip(axes, methods, strict=True):
        for shift in shown:
            cell = next(
                (
                    c
                    for c in cells[m]
                    if (c["corruption"], 0.0 if c["corruption"] == CLEAN else float(c["severity"]))
                    == shift
                    and int(c.get("seed") or 0) == seed0
                ),
                None,
            )
            rec = records.get(cell["cell_id"]) if cell else None
            if rec is None:
                continue
            dist, off = rec["distance"][0], rec["offset"][0]
            ok = np.isfinite(dist)
            dist, off = dist[ok], off[ok]
            ax.plot(dist, off, lw=1.0, color=shift_color[shift], label=shift_name(shift))
            ev = rec["event"][0][ok] > 0
            ax.plot(dist[ev], off[ev], "x", color=shift_color[shift], ms=7, mew=2)
            auto = rec["auto"][0][ok]
            ax.fill_between(dist, 0, 1, where=auto, color="0.9", transform=ax.get_xaxis_transform())
        ax.axhline(0.0, color="0.6", lw=0.8)
        if ax.get_lines():
            ax.legend(fontsize=7, ncols=min(len(shown), 5), loc="upper right")
        ax.set_ylabel("offset (m)")
        ax.set_title(f"{m}", fontsize=9, loc="left", color=colors.get(m, "black"))
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("distance along the road (m)")
    return fig


def _failure_of(rec: dict[str, Any]) -> tuple[float, str] | None:
    if "strip_clean" not in rec:
        return None
    return float(rec.get("strip_distance", math.inf)), str(rec.get("strip_kind", "failure"))


def strip_figures(data: RunData, cl: ClosedLoop) -> list[tuple[str, str, Figure]]:
    """Per method, the frames around its earliest first failure over every shift and seed:
    rows are times before the failure, columns clean | corrupted | predicted | ground truth."""
    records = _records(data)
    cells = _cells_by_method(data)
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(data.palette)] = data.palette
    out = []
    for m in cl.methods:
        best = None
        for c in cells.get(m, []):
            rec = records.get(c["cell_id"])
            fail = _failure_of(rec) if rec is not None else None
            if fail is not None and (best is None or fail[0] < best[0]):
                best = (fail[0], fail[1], c, rec)
        if best is None:
            continue
        distance, kind, cell, rec = best
        offsets = rec["strip_offset"]
        h, w = rec["strip_clean"].shape[1:3]
        fig = Figure(figsize=(4 * 2.4, len(offsets) * 2.4 * h / w + 0.8), layout="constrained")
        axes = fig.subplots(len(offsets), 4, squeeze=False)
        dt = float(data.meta.get("closed_loop", {}).get("dt", 0.1) or 0.1)
        for r, off in enumerate(offsets):
            panels = (
                rec["strip_clean"][r],
                rec["strip_corrupted"][r],
                lut[rec["strip_predicted"][r]],
                lut[rec["strip_ground_truth"][r]],
            )
            when = "failure" if off == 0 else f"{off * dt:+.1f} s"
            for k, (img, name) in enumerate(
                zip(panels, ("clean", "corrupted", "predicted", "ground truth"), strict=True)
            ):
                ax = axes[r, k]
                ax.imshow(img, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(name, fontsize=9)
                if k == 0:
                    ax.set_ylabel(when, fontsize=9)
        shift = shift_name((str(cell["corruption"]), float(cell["severity"] or 0.0)))
        caption = (
            f"{m}: first {kind.replace('_', '-')} {distance:.0f} m into drive "
            f"{int(rec.get('strip_drive', 0))} of seed {cell.get('seed')} under {shift}; rows "
            "from top: seconds before the failure, and the frame that shows it."
        )
        out.append((m, caption, fig))
    return out
