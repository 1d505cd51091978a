"""The report's tables as preformatted strings, shared verbatim by the HTML and Markdown output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._analysis import (
    MICHAELIS_CELLS,
    Grid,
    Headline,
    Stat,
    compute,
    headlines,
    per_class,
    safety,
    streams,
    world_shifts,
)
from ._classes import FixedClasses
from ._load import RunData, is_schedule_cell
from ._meta import make_cell_id

DASH = "—"


@dataclass
class Table:
    """A titled table of strings; ``classes`` optionally gives a CSS class per cell."""

    title: str
    anchor: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""
    classes: list[list[str]] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # optional long text per row (HTML only)
    text: bool = False  # a table of prose (left-aligned), not of numbers


def pct(v: float | None, signed: bool = False) -> str:
    if v is None:
        return DASH
    v = round(100 * v, 1) + 0.0  # + 0.0: no "-0.0"
    return f"{v:+.1f}" if signed else f"{v:.1f}"


def stat(s: Stat, signed: bool = False) -> str:
    if s.mean is None:
        return DASH
    text = pct(s.mean, signed)
    return f"{text} ± {100 * s.std:.1f}" if s.std is not None else text


def cell_name(c: dict[str, Any]) -> str:
    if c.get("cell_id"):
        return str(c["cell_id"])
    return make_cell_id(
        str(c.get("method")), str(c.get("corruption")), c.get("severity") or 0, c.get("seed") or 0
    )


def _sign_class(s: Stat) -> str:
    if s.mean is None or abs(s.mean) < 0.0005:
        return ""
    return "good" if s.mean > 0 else "bad"


def headline_table(
    rows: list[Headline], n_seeds: int, baseline: str | None, fixed: FixedClasses, names
) -> Table:
    """Per method: clean, the grid's mean (Michaelis' mPC/rPC only where the grid holds them),
    the same over the fixed class set, gain and mCE against this run's baseline."""
    ref_name = baseline or "the baseline"
    if not any(h.n_cells for h in rows):
        return _clean_table(rows, n_seeds, fixed, names)
    michaelis = all(h.mpc.n for h in rows)
    extra = any(h.n_cells > len(MICHAELIS_CELLS) * max(h.mpc.n, 1) for h in rows)
    has_fixed = bool(fixed) and any(h.clean_fixed.n or h.mean_fixed.n for h in rows)
    k = fixed.size_label()
    cols = ["method", "clean mIoU"] + ([f"clean mIoU, {k}"] if has_fixed else [])
    if michaelis:
        cols += ["mPC", "rPC"]
    if not michaelis or extra:
        cols += ["mean over this grid", "grid mean / clean"]
    cols += [f"mean over this grid, {k}"] if has_fixed else []
    cols += [f"gain over {ref_name}", f"mCE vs {ref_name}", "cells"]
    parts = [
        f"Values are mean ± sample standard deviation (ddof = 1) over the {n_seeds} seeds."
        if n_seeds > 1
        else "",
        "mIoU in %. clean mIoU and the grid means follow the per-cell rule (classes present "
        "in a cell's ground truth or prediction).",
    ]
    if has_fixed:
        parts.append(
            f"The '{k}' columns average every cell over one fixed set: {fixed.describe(names)}."
        )
    if michaelis:
        parts.append(
            "mPC (Michaelis et al. 2019) = mean over the 15 ImageNet-C corruptions × "
            "severities 1–5; rPC = mPC / clean."
        )
    else:
        parts.append(
            "mean over this grid = mean over every corruption × severity cell of this run; it "
            "is not Michaelis' mPC, which needs the 15 ImageNet-C corruptions × severities 1–5."
        )
    parts.append(
        f"gain = mean over paired cells of (mIoU − mIoU of {ref_name}) in percentage points; "
        f"CE_c = Σ_s(1 − mIoU_c,s) / Σ_s(1 − mIoU^{ref_name}_c,s), mCE vs {ref_name} = mean "
        f"CE_c in % ({ref_name} = 100, lower is better), normalised by this run's {ref_name} "
        "model, not ImageNet-C's AlexNet."
    )
    if baseline is None:
        parts.append("This run has no baseline method, so no gain or mCE.")
    t = Table(
        "Headline: robustness per method",
        "headline",
        cols,
        [],
        " ".join(p for p in parts if p),
    )
    for h in rows:
        ref = h.method == baseline  # the reference: gain 0 and mCE 100 by definition
        row = [h.method, stat(h.clean)] + ([stat(h.clean_fixed)] if has_fixed else [])
        if michaelis:
            row += [stat(h.mpc), stat(h.rpc)]
        if not michaelis or extra:
            row += [stat(h.grid_mean), stat(h.grid_ratio)]
        row += [stat(h.mean_fixed)] if has_fixed else []
        row += [
            "reference" if ref else stat(h.gain, True),
            "100.0" if ref and h.mce.mean is not None else stat(h.mce),
            str(h.n_cells),
        ]
        t.rows.append(row)
        cls = [""] * len(row)
        cls[-3] = _sign_class(h.gain)
        t.classes.append(cls)
    return t


def _clean_table(rows: list[Headline], n_seeds: int, fixed: FixedClasses, names) -> Table:
    """The headline of a grid without corruption cells: clean mIoU only."""
    has_fixed = bool(fixed) and any(h.clean_fixed.n for h in rows)
    note = "mIoU in % (per-cell rule: classes present in a cell's ground truth or prediction)."
    if has_fixed:
        note += f" '{fixed.size_label()}': over {fixed.describe(names)}."
    if n_seeds > 1:
        note += f" Mean ± sample standard deviation over the {n_seeds} seeds."
    t = Table(
        "Clean frames",
        "headline",
        ["method", "clean mIoU"] + ([f"clean mIoU, {fixed.size_label()}"] if has_fixed else []),
        [],
        note,
    )
    for h in rows:
        t.rows.append([h.method, stat(h.clean)] + ([stat(h.clean_fixed)] if has_fixed else []))
    return t


def corruption_table(data: RunData, grid: Grid, methods, corruptions, heads) -> Table:
    ce_methods = [h for h in heads if h.method != data.baseline and h.ce]
    cols = [
        "corruption",
        "family",
        *[f"{m} mIoU" for m in methods],
        *[f"{h.method} CE vs {data.baseline}" for h in ce_methods],
    ]
    t = Table(
        "Per corruption",
        "per-corruption",
        cols,
        [],
        "mIoU in % averaged over severities and seeds"
        + (
            f"; CE vs {data.baseline} in % ({data.baseline} = 100; normalised by this run's "
            f"{data.baseline} model)."
            if data.baseline
            else "."
        ),
    )
    means = {m: grid.mean_over_seeds(m) for m in methods}
    for c in corruptions:
        row = [c, data.families.get(c, "other")]
        for m in methods:
            vals = [v for (name, _), v in means[m].items() if name == c]
            row.append(pct(sum(vals) / len(vals)) if vals else DASH)
        for h in ce_methods:
            row.append(stat(h.ce.get(c, Stat(None, None, 0))))
        t.rows.append(row)
    return t


def class_table(
    data: RunData, grid: Grid, methods: list[str], fixed: FixedClasses
) -> tuple[Table, list[str]]:
    ref = methods[0]
    rows = {m: per_class(data, grid, m) for m in methods}
    # classes outside every seed's fixed set: absent from the clean ground truth
    absent = (
        set(range(len(data.class_names))) - {i for k in fixed.sets.values() for i in k}
        if fixed
        else set()
    )
    cols = ["class", f"{ref} clean", *[f"{m} corrupted" for m in methods], f"{ref} drop (pp)"]
    t = Table(
        "Per-class IoU under shift",
        "per-class",
        cols,
        [],
        f"IoU in %; corrupted = mean over every corruption cell. ⚠ marks a class whose "
        f"{ref} IoU under corruption falls below half its clean IoU.",
    )
    drops = []
    for i, name in enumerate(data.class_names):
        clean = rows[ref][0][i]
        shifted = [rows[m][1][i] for m in methods]
        if clean is None and all(v is None for v in shifted):
            continue
        drop = None if clean is None or shifted[0] is None else clean - shifted[0]
        collapsed = clean is not None and shifted[0] is not None and shifted[0] < 0.5 * clean
        label = name + (" ⚠" if collapsed else "") + (" †" if i in absent else "")
        t.rows.append([label, pct(clean), *[pct(v) for v in shifted], pct(drop)])
        t.classes.append(["bad" if collapsed else "", *[""] * (len(cols) - 1)])
        if drop is not None:
            drops.append((drop, name))
    if any(i in absent for i in range(len(data.class_names)) if rows[ref][0][i] is not None):
        t.note += (
            " † absent from the clean ground truth: the model's few predictions of it score "
            "IoU 0 under the per-cell rule."
        )
    worst = [n for d, n in sorted(drops, reverse=True)[:3] if d > 0]
    return t, worst


def safety_table(data: RunData, grid: Grid, methods: list[str]) -> Table | None:
    per = {m: safety(data, grid, m) for m in methods}
    names: list[str] = []
    for m in methods:
        names += [n for n in per[m] if n not in names]
    if not names:
        return None
    t = Table(
        "Safety-critical recall",
        "safety",
        ["class", *[f"{m} clean → corrupted" for m in methods]],
        [],
        "Recall in % (share of the class's pixels found), clean and mean over corruption cells.",
    )
    for n in names:
        row = [n]
        for m in methods:
            clean, shifted = per[m].get(n, (None, None))
            row.append(f"{pct(clean)} → {pct(shifted)}")
        t.rows.append(row)
    return t


def compute_table(data: RunData) -> Table:
    rows = compute(data)
    base = next((r.ms_per_frame for r in rows if r.method == data.baseline), None)
    t = Table(
        "Compute",
        "compute",
        [
            "method",
            "cells",
            "frames",
            "ms / frame",
            f"× {data.baseline or 'baseline'} time",
            "forward / frame",
            "backward / frame",
            "forward passes",
            "backward passes",
        ],
        [],
        "ms / frame is the method's own time (prediction and adaptation, no rendering or "
        "corrupting), frame-weighted over every completed cell (static and schedule). "
        "A pass over a batch is one pass for each of its frames: forward / frame is 1.00 for a "
        "method that runs the model once per batch. " + _conditions(data.compute),
    )
    for r in rows:
        ratio = f"{r.ms_per_frame / base:.2f}×" if base and r.ms_per_frame is not None else DASH
        t.rows.append(
            [
                r.method,
                str(r.cells),
                str(r.frames),
                DASH if r.ms_per_frame is None else f"{r.ms_per_frame:.2f}",
                ratio,
                DASH if r.forward_per_frame is None else f"{r.forward_per_frame:.2f}",
                DASH if r.backward_per_frame is None else f"{r.backward_per_frame:.2f}",
                str(r.forward),
                str(r.backward),
            ]
        )
    return t


def traits_table(data: RunData) -> Table | None:
    """What each method does (its traits as the run recorded them), beside its compute cost."""
    methods = [m for m in data.meta.get("methods") or [] if isinstance(m, dict)]
    rows = [[str(m.get("label")), str(m.get("name")), str(m["traits"])]
            for m in methods if m.get("traits")]  # fmt: skip
    if not rows:  # runs before traits were recorded
        return None
    return Table(
        "What each method does",
        "traits",
        ["method", "implementation", "traits"],
        rows,
        "As the method describes itself (roadshift list methods): the data it needs, augmented "
        "views, what it updates, the normalisation it requires, when it resets, and the images "
        "through the network per frame it expects (the compute table counts the real ones).",
    )


def _conditions(compute: dict[str, Any]) -> str:
    """The conditions the times were measured in, so they compare with other measurements."""
    threads, workers = compute.get("torch_threads"), compute.get("workers")
    if threads is None or workers is None:
        return "The run did not record its thread and worker counts."
    executor = compute.get("executor") or "local"
    return (
        f"Timed with {threads} torch thread{'s' if threads != 1 else ''} per worker and "
        f"{workers} worker{'s' if workers != 1 else ''} running at once ({executor} executor)."
    )


#: A stream with at most this many segments gets one column per segment.
MAX_SEGMENT_COLUMNS = 8


def stream_tables(data: RunData, grid: Grid) -> list[tuple[Any, Table]]:
    """One table per stream: its mIoU per method, the clean reference, and per segment (one
    column each for short streams; first, last and worst for long ones; none for a stream of
    one segment, where they would all repeat the stream's value)."""
    out = []
    for s in streams(data):
        labels = max(([lab for *_, lab, _ in tr] for tr in s.traces.values()), key=len, default=[])
        per_segment = 1 < len(labels) <= MAX_SEGMENT_COLUMNS
        summary = len(labels) > MAX_SEGMENT_COLUMNS
        clean = {m: Stat.of(grid.clean(m, sd) for sd in grid.seeds(m)) for m in s.overall}
        has_clean = any(c.n for c in clean.values())
        seg_cols = [
            lab if labels.count(lab) == 1 else f"{k + 1}. {lab}" for k, lab in enumerate(labels)
        ]
        cols = ["method"] + (["clean"] if has_clean else []) + ["stream mIoU"]
        cols += seg_cols if per_segment else []
        cols += ["first segment", "last segment", "worst segment"] if summary else []
        note = "mIoU in %; segments averaged over seeds."
        if has_clean:
            note += " clean: the clean stream with a fresh adapter."
        if len(labels) <= 1:
            note += " The stream is one segment, so its mIoU is the whole story."
        t = Table(f"{s.kind} schedule: {s.label}", f"stream-{len(out)}", cols, [], note)
        for m, st in s.overall.items():
            trace = s.traces.get(m, [])
            row = [m] + ([stat(clean[m])] if has_clean else []) + [stat(st)]
            if per_segment:
                row += [pct(r[3]) for r in trace] + [DASH] * (len(labels) - len(trace))
            if summary:
                worst = min(trace, key=lambda r: r[3]) if trace else None
                row += [
                    pct(trace[0][3]) if trace else DASH,
                    pct(trace[-1][3]) if trace else DASH,
                    f"{pct(worst[3])} ({worst[2]})" if worst else DASH,
                ]
            t.rows.append(row)
        out.append((s, t))
    return out


def world_table(data: RunData, grid: Grid, methods: list[str]) -> Table | None:
    shifts = world_shifts(data)
    if not shifts:
        return None
    gain_methods = [m for m in methods if any(m in s.gain for s in shifts)]
    shown = [m for m in methods if any(m in s.miou for s in shifts)]
    natural = data.data_source is not None  # a dataset's own conditions (ACDC), uncorrupted
    t = Table(
        "Natural shifts" if natural else "World shifts",
        "world-shifts",
        ["shift", *[f"{m} mIoU" for m in shown], *[f"{m} gain" for m in gain_methods]],
        [],
        (
            "The dataset's own conditions, uncorrupted"
            if natural
            else "Shifts of the world itself with a clean camera"
        )
        + ". mIoU in %; gain = mIoU − "
        f"{data.baseline} mIoU on the same seed, in percentage points; clean = the unshifted "
        "stream.",
    )
    clean_row = ["clean"]
    for m in shown:
        clean_row.append(stat(Stat.of(grid.clean(m, s) for s in grid.seeds(m))))
    base = data.baseline
    clean_gain = {
        m: Stat.of(
            grid.clean(m, s) - grid.clean(base, s)
            for s in grid.seeds(m)
            if grid.clean(m, s) is not None and grid.clean(base, s) is not None
        )
        for m in gain_methods
    }
    t.rows.append(clean_row + [stat(clean_gain[m], True) for m in gain_methods])
    t.classes.append(["", *[""] * len(shown), *[_sign_class(clean_gain[m]) for m in gain_methods]])
    for s in shifts:
        t.rows.append(
            [
                s.label,
                *[stat(s.miou.get(m, Stat(None, None, 0))) for m in shown],
                *[stat(s.gain.get(m, Stat(None, None, 0)), True) for m in gain_methods],
            ]
        )
        t.classes.append(
            [
                "",
                *[""] * len(shown),
                *[_sign_class(s.gain.get(m, Stat(None, None, 0))) for m in gain_methods],
            ]
        )
    return t


def failed_table(data: RunData) -> Table | None:
    failed = data.all_failed
    if not failed:
        return None
    t = Table(
        "Failed cells",
        "failed",
        ["cell", "error"],
        [],
        "The line of each error naming the exception; the HTML report also holds the full text.",
        text=True,
    )
    for c in failed:
        err = str(c.get("error") or "(no error recorded)").strip()
        lines = [ln for ln in err.splitlines() if ln.strip()]
        # A traceback's last line names the exception; the first is "Traceback ...".
        first = lines[-1] if lines and lines[0].startswith("Traceback") else (lines or [""])[0]
        t.rows.append([cell_name(c), first[:300]])
        t.details.append(err)
    return t


def all_tables(data: RunData, methods: list[str], corruptions: list[str]) -> dict[str, Any]:
    grid = Grid(data)
    grid_methods = [m for m in methods if grid.seeds(m)]
    seeds = sorted({int(c.get("seed") or 0) for c in grid.cells})
    fixed = FixedClasses(data)
    heads = headlines(data, grid, fixed)
    out: dict[str, Any] = {
        "grid": grid,
        "grid_methods": grid_methods,
        "heads": heads,
        "fixed": fixed,
    }
    out["headline"] = (
        headline_table(heads, len(seeds), data.baseline, fixed, data.class_names) if heads else None
    )
    out["per_corruption"] = (
        corruption_table(data, grid, grid_methods, corruptions, heads)
        if corruptions and grid_methods
        else None
    )
    if grid_methods:
        out["per_class"], out["collapsing"] = class_table(data, grid, grid_methods, fixed)
        if not out["per_class"].rows:
            out["per_class"] = None
        out["safety"] = safety_table(data, grid, grid_methods)
    else:
        out["per_class"], out["collapsing"], out["safety"] = None, [], None
    out["corrupted"] = any(h.n_cells for h in heads)
    if not out["corrupted"]:  # nothing under corruption: per-class and safety would be empty
        out["per_class"], out["collapsing"], out["safety"] = None, [], None
    out["compute"] = compute_table(data) if data.all_done else None
    out["traits"] = traits_table(data)
    out["streams"] = stream_tables(data, grid)
    out["world"] = world_table(data, grid, methods)
    out["failed"] = failed_table(data)
    out["has_schedule_cells"] = any(is_schedule_cell(c) for c in data.cells)
    return out
