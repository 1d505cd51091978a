"""The numbers behind the report: robustness metrics computed from the stored cells.

Definitions (Hendrycks & Dietterich 2019 for CE; Michaelis et al. 2019 for mPC/rPC):
- clean: mIoU of the method on the unshifted stream.
- grid mean: mean mIoU over every corruption × severity cell of this run's static grid.
- mPC (Michaelis et al.): the mean over the 15 ImageNet-C corruptions × severities 1–5, computed
  only when the grid holds all 75 of those cells (then over exactly them); rPC = mPC / clean.
  Any other grid gets its grid mean under that name, never "mPC".
- gain: mean over the cells both runs have of (mIoU_method − mIoU_baseline).
- CE_c = Σ_s (1 − mIoU_{c,s}) / Σ_s (1 − mIoU^baseline_{c,s}) over the severities both have;
  mCE = mean of CE_c over corruptions: normalised by this run's baseline (ImageNet-C normalises
  by AlexNet), hence "mCE vs source". The baseline scores exactly 1 (shown as 100 %).
- fixed classes: the same cells' mIoU over one class set per seed (``reports._classes``).
The baseline is the run's reference method (meta ``baseline``: by default the first method named
``source``, whatever its label); a run without one has no gain, CE or mCE. Each figure is computed
per seed (the baseline taken from the same seed, or its mean over seeds where that seed is
missing) and then summarised as mean, sample std and count.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._classes import FixedClasses
from ._load import CLEAN, RunData, is_grid_cell, is_schedule_cell, is_world_cell

#: The 15 ImageNet-C corruptions and severities over which Michaelis et al. define mPC.
IMAGENET_C = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip
MICHAELIS_CELLS = frozenset((c, float(s)) for c in IMAGENET_C for s in range(1, 6))


@dataclass(frozen=True)
class Stat:
    """A value summarised over seeds: mean, sample standard deviation (ddof=1), count."""

    mean: float | None
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat:
        vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if not vals:
            return cls(None, None, 0)
        std = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        return cls(float(np.mean(vals)), std, len(vals))


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def method_order(data: RunData) -> list[str]:
    """The baseline first, then methods in scenario/expected order, then any others."""
    seen: list[str] = []
    scen_methods = data.scenario.get("methods") or []
    names: list[str] = []
    for m in scen_methods if isinstance(scen_methods, list) else []:
        # cells are keyed by a method's label when it has one, else by its name
        names.append((m.get("label") or m.get("name")) if isinstance(m, dict) else m)
    names += [c.get("method") for c in data.expected + data.cells]
    for n in names:
        if isinstance(n, str) and n not in seen:
            seen.append(n)
    present = {c.get("method") for c in data.cells} | {c.get("method") for c in data.expected}
    ordered = [m for m in seen if m in present]
    if data.baseline in ordered:
        ordered.remove(data.baseline)
        ordered.insert(0, data.baseline)
    return ordered


def corruption_order(data: RunData) -> list[str]:
    """Static-grid corruptions in scenario order, grouped by family (first-seen family first)."""
    seen: list[str] = []
    for c in data.expected + data.cells:
        name = c.get("corruption")
        if is_grid_cell(c) and name not in (None, CLEAN) and name not in seen:
            seen.append(str(name))
    fam_rank: dict[str, int] = {}
    for name in seen:
        fam_rank.setdefault(data.families.get(name, "other"), len(fam_rank))
    return sorted(seen, key=lambda n: (fam_rank[data.families.get(n, "other")], seen.index(n)))


def severity_order(cells: Sequence[dict[str, Any]]) -> list[float]:
    return sorted({float(c["severity"]) for c in cells if c.get("corruption") != CLEAN})


class Grid:
    """Done static cells indexed as method -> seed -> corruption -> severity -> cell."""

    def __init__(self, data: RunData) -> None:
        self.cells = [c for c in data.done if is_grid_cell(c) and c.get("miou") is not None]
        self.idx: dict[str, dict[int, dict[str, dict[float, dict]]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(dict))
        )
        for c in self.cells:
            sev = 0.0 if c["corruption"] == CLEAN else float(c["severity"])
            self.idx[c["method"]][int(c.get("seed") or 0)][c["corruption"]][sev] = c

    def seeds(self, method: str) -> list[int]:
        return sorted(self.idx.get(method, {}))

    def clean(self, method: str, seed: int) -> float | None:
        cell = self.idx.get(method, {}).get(seed, {}).get(CLEAN, {}).get(0.0)
        return None if cell is None else float(cell["miou"])

    def corrupted(self, method: str, seed: int) -> dict[tuple[str, float], float]:
        out = {}
        for corr, by_sev in self.idx.get(method, {}).get(seed, {}).items():
            if corr == CLEAN:
                continue
            for sev, cell in by_sev.items():
                out[(corr, sev)] = float(cell["miou"])
        return out

    def mean_over_seeds(self, method: str, key: str = "miou") -> dict[tuple[str, float], float]:
        """(corruption, severity) -> mean over seeds of ``key`` (clean under ("clean", 0))."""
        acc: dict[tuple[str, float], list[float]] = defaultdict(list)
        for by_corr in self.idx.get(method, {}).values():
            for corr, by_sev in by_corr.items():
                for sev, cell in by_sev.items():
                    if cell.get(key) is not None:
                        acc[(corr, sev)].append(float(cell[key]))
        return {k: float(np.mean(v)) for k, v in acc.items()}


@dataclass(frozen=True)
class Headline:
    """A method's robustness summary over the static grid (see the module docstring)."""

    method: str
    clean: Stat
    grid_mean: Stat
    grid_ratio: Stat  # grid mean / clean
    mpc: Stat  # Michaelis: n = 0 unless the grid holds the 75 ImageNet-C cells
    rpc: Stat
    gain: Stat
    mce: Stat
    ce: dict[str, Stat]
    n_cells: int
    clean_fixed: Stat  # over the fixed class set
    mean_fixed: Stat


def _baseline_ref(grid: Grid, baseline: str, seed: int) -> dict[tuple[str, float], float]:
    ref = grid.corrupted(baseline, seed)
    return ref if ref else baseline_mean(grid, baseline)


def baseline_mean(grid: Grid, baseline: str) -> dict[tuple[str, float], float]:
    return {k: v for k, v in grid.mean_over_seeds(baseline).items() if k[0] != CLEAN}


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def headlines(
    data: RunData, grid: Grid | None = None, fixed: FixedClasses | None = None
) -> list[Headline]:
    grid = grid or Grid(data)
    fixed = fixed if fixed is not None else FixedClasses(data)
    baseline = data.baseline
    have_baseline = baseline is not None and bool(grid.seeds(baseline))
    out = []
    for method in method_order(data):
        seeds = grid.seeds(method)
        if not seeds:
            continue
        cleans, means, ratios, mpcs, rpcs, gains, mces = [], [], [], [], [], [], []
        clean_fixed, mean_fixed = [], []
        ce_per: dict[str, list[float]] = defaultdict(list)
        n_cells = 0
        for seed in seeds:
            clean = grid.clean(method, seed)
            corr = grid.corrupted(method, seed)
            n_cells += len(corr)
            grid_mean = _mean(corr.values())
            cleans.append(clean)
            means.append(grid_mean)
            ratios.append(_ratio(grid_mean, clean))
            if MICHAELIS_CELLS <= corr.keys():
                mpc = _mean(corr[k] for k in sorted(MICHAELIS_CELLS))
                mpcs.append(mpc)
                rpcs.append(_ratio(mpc, clean))
            by_corr = grid.idx[method][seed]
            clean_cell = by_corr.get(CLEAN, {}).get(0.0)
            clean_fixed.append(None if clean_cell is None else fixed.miou(clean_cell))
            mean_fixed.append(
                _mean(
                    fixed.miou(cell)
                    for corr_name, by_sev in by_corr.items()
                    if corr_name != CLEAN
                    for cell in by_sev.values()
                )
            )
            if not have_baseline:
                continue
            ref = _baseline_ref(grid, baseline, seed)
            common = [k for k in corr if k in ref]
            gains.append(_mean(corr[k] - ref[k] for k in common) if common else None)
            ces = []
            for name in sorted({k[0] for k in common}):
                keys = [k for k in common if k[0] == name]
                den = sum(1.0 - ref[k] for k in keys)
                if den > 0:
                    ce = sum(1.0 - corr[k] for k in keys) / den
                    ce_per[name].append(ce)
                    ces.append(ce)
            mces.append(_mean(ces))
        out.append(
            Headline(
                method=method,
                clean=Stat.of(cleans),
                grid_mean=Stat.of(means),
                grid_ratio=Stat.of(ratios),
                # Michaelis' mPC only when every seed's grid holds the 75 cells
                mpc=Stat.of(mpcs) if len(mpcs) == len(seeds) else Stat(None, None, 0),
                rpc=Stat.of(rpcs) if len(rpcs) == len(seeds) else Stat(None, None, 0),
                gain=Stat.of(gains),
                mce=Stat.of(mces),
                ce={k: Stat.of(v) for k, v in ce_per.items()},
                n_cells=n_cells,
                clean_fixed=Stat.of(clean_fixed),
                mean_fixed=Stat.of(mean_fixed),
            )
        )
    return out


def per_class(data: RunData, grid: Grid, method: str) -> tuple[list, list]:
    """Per-class IoU of ``method``: (clean means, corrupted means) per class; None = absent."""
    n = len(data.class_names)
    clean_acc: list[list[float]] = [[] for _ in range(n)]
    shift_acc: list[list[float]] = [[] for _ in range(n)]
    for c in grid.cells:
        if c["method"] != method or not isinstance(c.get("per_class_iou"), list):
            continue
        target = clean_acc if c["corruption"] == CLEAN else shift_acc
        for i, v in enumerate(c["per_class_iou"][:n]):
            if v is not None:
                target[i].append(float(v))
    return [_mean(v) for v in clean_acc], [_mean(v) for v in shift_acc]


def safety(data: RunData, grid: Grid, method: str) -> dict[str, tuple[float | None, float | None]]:
    """Safety-class recall of ``method``: class -> (clean mean, corrupted mean)."""
    clean_acc: dict[str, list[float]] = defaultdict(list)
    shift_acc: dict[str, list[float]] = defaultdict(list)
    names: list[str] = []
    for c in grid.cells:
        rec = c.get("safety_recall")
        if c["method"] != method or not isinstance(rec, dict):
            continue
        for name, v in rec.items():
            if name not in names:
                names.append(name)
            if v is not None:
                (clean_acc if c["corruption"] == CLEAN else shift_acc)[name].append(float(v))
    rank = {n: i for i, n in enumerate(data.class_names)}
    names.sort(key=lambda n: rank.get(n, len(rank)))
    return {n: (_mean(clean_acc[n]), _mean(shift_acc[n])) for n in names}


@dataclass(frozen=True)
class Compute:
    """A method's cost. A forward pass over a batch is one pass for each of its frames, so
    passes per frame = passes / batches (a method that runs the model once per batch: 1.00)."""

    method: str
    cells: int
    frames: int
    ms_per_frame: float | None
    forward_per_frame: float | None
    backward_per_frame: float | None
    forward: int
    backward: int


def compute(data: RunData) -> list[Compute]:
    out = []
    for method in method_order(data):
        cells = [c for c in data.all_done if c["method"] == method]  # every sampling's cost
        if not cells:
            continue
        frames = sum(int(c.get("frames") or 0) for c in cells)
        timed = [c for c in cells if c.get("ms_per_frame") is not None and c.get("frames")]
        tframes = sum(int(c["frames"]) for c in timed)
        ms = (
            sum(float(c["ms_per_frame"]) * int(c["frames"]) for c in timed) / tframes
            if tframes
            else None
        )
        fwd = sum(int(c.get("forward_passes") or 0) for c in cells)
        bwd = sum(int(c.get("backward_passes") or 0) for c in cells)
        counted = [c for c in cells if c.get("batches")]  # folders before meta_version 2: none
        batches = sum(int(c["batches"]) for c in counted)
        cfwd = sum(int(c.get("forward_passes") or 0) for c in counted)
        cbwd = sum(int(c.get("backward_passes") or 0) for c in counted)
        out.append(
            Compute(
                method,
                len(cells),
                frames,
                ms,
                cfwd / batches if batches else None,
                cbwd / batches if batches else None,
                fwd,
                bwd,
            )
        )
    return out


@dataclass(frozen=True)
class Stream:
    """One schedule (kind + label) and, per method, its mean segment trace over seeds."""

    kind: str
    label: str
    # method -> list of (start, stop, label, mean mIoU over seeds)
    traces: dict[str, list[tuple[int, int, str, float]]]
    # method -> per-seed stream mIoU stat
    overall: dict[str, Stat]
    # method -> (frame, mIoU) per-frame mean over seeds (used when segments are absent)
    frame_traces: dict[str, list[tuple[int, float]]]


#: The kind of a label-shift stream: a cell of the grid whose segments are town parts.
LABEL_SHIFT = "label shift"


def _is_label_shift_stream(data: RunData, cell: dict[str, Any]) -> bool:
    """A grid cell that ran through several domains (``label_shift``): a stream to draw."""
    segs = data.segments.get(cell["cell_id"], [])
    return len(segs) > 1 and any(s.get("domain") for s in segs)


def streams(data: RunData) -> list[Stream]:
    """Schedule streams and label-shift streams (a grid cell through several domains), one
    per (kind, label), each method's trace averaged over seeds."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for c in data.done:
        if is_schedule_cell(c):
            groups[(str(c.get("schedule")), str(c.get("corruption")))].append(c)
        elif _is_label_shift_stream(data, c):
            sev = float(c.get("severity") or 0.0)
            label = str(c.get("corruption")) + (f" s{sev:g}" if sev else "")
            groups[(LABEL_SHIFT, label)].append(c)
    out = []
    for (kind, label), cells in groups.items():
        traces, overall, ftraces = {}, {}, {}
        for method in method_order(data):
            mine = [c for c in cells if c["method"] == method]
            if not mine:
                continue
            overall[method] = Stat.of(c.get("miou") for c in mine)
            seg_acc: dict[int, list] = defaultdict(list)
            seg_info: dict[int, tuple[int, int, str]] = {}
            fr_acc: dict[int, list[float]] = defaultdict(list)
            for c in mine:
                for s in data.segments.get(c["cell_id"], []):
                    # a mixed stream's segments are scattered frames: no place on a timeline
                    if s.get("miou") is None or s.get("start_frame") is None:
                        continue
                    seg_acc[int(s["segment"])].append(float(s["miou"]))
                    seg_info.setdefault(
                        int(s["segment"]),
                        (int(s["start_frame"]), int(s["stop_frame"]), str(s.get("label") or "")),
                    )
                for f in data.frames.get(c["cell_id"], []):
                    if f.get("miou") is not None:
                        fr_acc[int(f["frame"])].append(float(f["miou"]))
            if seg_acc:
                traces[method] = [
                    (*seg_info[k], float(np.mean(seg_acc[k]))) for k in sorted(seg_acc)
                ]
            if fr_acc:
                ftraces[method] = [(k, float(np.mean(fr_acc[k]))) for k in sorted(fr_acc)]
        out.append(Stream(kind, label, traces, overall, ftraces))
    out.sort(key=lambda s: (s.kind, s.label))
    return out


@dataclass(frozen=True)
class WorldShift:
    """A shift of the world (clean camera): per method its mIoU over seeds and paired gain."""

    label: str
    miou: dict[str, Stat]
    gain: dict[str, Stat]


def world_shifts(data: RunData) -> list[WorldShift]:
    cells = [c for c in data.done if is_world_cell(c) and c.get("miou") is not None]
    labels: list[str] = []
    for c in data.expected + cells:
        if is_world_cell(c) and c["corruption"] not in labels:
            labels.append(str(c["corruption"]))
    out = []
    for label in labels:
        mine = [c for c in cells if c["corruption"] == label]
        if not mine:
            continue
        base = data.baseline
        src = {int(c.get("seed") or 0): float(c["miou"]) for c in mine if c["method"] == base}
        miou, gain = {}, {}
        for method in method_order(data):
            rows = [c for c in mine if c["method"] == method]
            if not rows:
                continue
            miou[method] = Stat.of(c["miou"] for c in rows)
            if src and method != base:
                gain[method] = Stat.of(
                    float(c["miou"]) - src[int(c.get("seed") or 0)]
                    for c in rows
                    if int(c.get("seed") or 0) in src
                )
        out.append(WorldShift(label, miou, gain))
    return out
