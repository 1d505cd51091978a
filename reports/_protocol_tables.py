"""The tables of protocol runs (rounds, shifts, label shift, forgetting, recovery, online)."""

from __future__ import annotations

from typing import Any

from ._analysis import Grid, Stat
from ._protocol import (
    Forgetting,
    LabelShift,
    Online,
    ProtocolResult,
    Recovery,
    SamplingComparison,
    ranks,
)
from ._tables import DASH, Table, pct, stat

#: Round columns shown in a table (a figure shows every round).
MAX_ROUND_COLUMNS = 12
#: Classes shown in the class-prior table: the most frequent ones.
PRIOR_CLASSES = 8


def _sign(s: Stat) -> str:
    if s.mean is None or abs(s.mean) < 0.0005:
        return ""
    return "good" if s.mean > 0 else "bad"


def _shown_rounds(n: int) -> list[int]:
    if n <= MAX_ROUND_COLUMNS:
        return list(range(n))
    step = (n - 1) / (MAX_ROUND_COLUMNS - 1)
    return sorted({round(k * step) for k in range(MAX_ROUND_COLUMNS)})


def _spread_note(res: ProtocolResult) -> str:
    if res.streams <= 1:
        return ""
    what = "seeds × orders" if res.orders > 1 else "seeds"
    return f" Values are mean ± sample standard deviation over the {res.streams} streams ({what})."


def round_table(res: ProtocolResult) -> Table | None:
    """mIoU per round per method, with the paired change from the first to the last round."""
    if res.rounds < 2:
        return None
    shown = _shown_rounds(res.rounds)
    t = Table(
        f"{res.protocol}: mIoU per round",
        f"rounds-{res.protocol}",
        ["method", *[f"round {r + 1}" for r in shown], "last − first (pp)", "stream mIoU"],
        [],
        "mIoU in %; a round's value is the frame-weighted mean of its segments (every round "
        "shows the same frames, so rounds differ only by the adapter's state)."
        + _spread_note(res)
        + (
            " Rounds between the columns shown are in the figure."
            if len(shown) < res.rounds
            else ""
        ),
    )
    for m, stats in res.per_round.items():
        fl = res.first_last.get(m)
        change = (
            Stat.of([fl[1].mean - fl[0].mean])
            if fl and fl[0].mean is not None and fl[1].mean is not None
            else Stat(None, None, 0)
        )
        t.rows.append(
            [m, *[stat(stats[r]) for r in shown], stat(change, True), stat(res.overall[m])]
        )
        t.classes.append([""] * (len(shown) + 1) + [_sign(change), ""])
    return t


def shift_table(res: ProtocolResult, grid: Grid) -> Table | None:
    """Per shift (gradual: per severity) mIoU of every method, with the clean reference."""
    methods = list(res.per_shift)
    if not methods:
        return None
    gradual = res.protocol == "gradual"
    keys: list[Any] = (
        sorted({s for m in methods for s in res.per_severity[m]}) if gradual else res.shifts
    )
    t = Table(
        f"{res.protocol}: mIoU per {'severity' if gradual else 'shift'}",
        f"shifts-{res.protocol}",
        ["severity" if gradual else "shift", *[f"{m} mIoU" for m in methods]],
        [],
        "mIoU in %, mean over every segment of that "
        + ("severity (all corruption types" if gradual else "shift (all rounds")
        + (", seeds and orders)." if res.orders > 1 else " and seeds).")
        + " clean: the clean stream with a fresh adapter (the reference cells); whole stream: "
        "the adapted stream's mIoU over all its frames.",
    )
    clean = [Stat.of(grid.clean(m, s) for s in grid.seeds(m)) for m in methods]
    if any(c.n for c in clean):
        t.rows.append(["clean", *[stat(c) for c in clean]])
    t.rows.append(["whole stream", *[stat(res.overall[m]) for m in methods]])
    for k in keys:
        src = (
            [res.per_severity[m].get(k, Stat(None, None, 0)) for m in methods]
            if gradual
            else [res.per_shift[m].get(k, Stat(None, None, 0)) for m in methods]
        )
        t.rows.append([f"{k:g}" if gradual else str(k), *[stat(s) for s in src]])
    return t


def label_shift_tables(
    ls: LabelShift, class_names: tuple[str, ...], what: str = "Label shift"
) -> list[Table]:
    """mIoU per domain, and the ground-truth class priors that drift between domains (``what``
    names the domains: ``Conditions`` for a dataset's conditions)."""
    keys = list(ls.miou)
    both = len({stream for _, stream in keys}) > 1
    out = [
        Table(
            f"{what}: mIoU per domain",
            "label-shift-miou",
            ["domain", *[f"{m}, {stream}" if both else f"{m} mIoU" for m, stream in keys]],
            [
                [d, *[stat(ls.miou[k].get(d, Stat(None, None, 0))) for k in keys]]
                for d in ls.domains
            ],
            "mIoU in %, frame-weighted over the domain's segments of each stream (every round), "
            "then averaged over seeds and orders; one adapter is carried through the domains in "
            "stream order."
            + (
                " clean: the clean stream through the same domains (a fresh adapter); shifted: "
                "the corrupted stream."
                if both
                else ""
            ),
        )
    ]
    if ls.prior:
        peak = [max(ls.prior[d][i] for d in ls.prior) for i in range(len(class_names))]
        top = sorted(range(len(class_names)), key=lambda i: -peak[i])[:PRIOR_CLASSES]
        top = [i for i in sorted(top) if peak[i] > 0]
        out.append(
            Table(
                f"{what}: class priors per domain",
                "label-shift-prior",
                ["domain", *[class_names[i] for i in top]],
                [[d, *[pct(ls.prior[d][i]) for i in top]] for d in ls.domains if d in ls.prior],
                f"Share of labelled ground-truth pixels in % (the {len(top)} classes with the "
                "largest share in any domain), mean over the domain's segments: how the class "
                "priors drift along the stream.",
            )
        )
    return out


def forgetting_table(rows: list[Forgetting], meta: dict[str, Any] | None) -> Table | None:
    if not rows:
        return None
    setup = ""
    if meta:
        frames, towns = meta.get("frames"), meta.get("towns")
        setup = (
            f" The held-out frames: {frames} clean source-domain frames"
            + (f" from {', '.join(map(str, towns))}" if towns else "")
            + ", drives disjoint from training and test."
        )
        source = meta.get("source_data")
        if isinstance(source, dict):  # the run's own source data, not the world
            split = f", split {source['split']}" if source.get("split") else ""
            setup = (
                f" The held-out frames: {frames} frames of the source data at "
                f"{source.get('root')} (layout {source.get('layout')}{split})."
            )
    t = Table(
        "Forgetting: clean source-domain mIoU before and after adaptation",
        "forgetting",
        ["method", "clean before", "clean after", "after − before (pp)", "streams"],
        [],
        "mIoU in %; before = a fresh adapter, after = the adapter as the shifted stream left "
        "it, both scored with no further update (Adapter.infer). A negative change is "
        "forgetting." + setup,
    )
    for r in rows:
        t.rows.append([r.method, stat(r.before), stat(r.after), stat(r.change, True), str(r.cells)])
        t.classes.append(["", "", "", _sign(r.change), ""])
    return t


def recovery_table(rows: list[Recovery], meta: dict[str, Any]) -> Table | None:
    if not rows:
        return None
    rec, col = meta.get("recovery") or {}, meta.get("collapse") or {}
    parts = ["Recovery: frames after a shift until the segment's mIoU settles"]
    if isinstance(rec, dict) and rec:
        band = rec.get("band")
        parts.append(
            f": its per-frame mIoU, smoothed by a trailing mean over {rec.get('window', '?')} "
            "frames, stays from then on within "
            + (f"{100 * band:g} points" if isinstance(band, (int, float)) else "a band")
            + " of the segment's final level (the mean over its last "
            + (
                f"{100 * rec['final_fraction']:g} %"
                if isinstance(rec.get("final_fraction"), (int, float))
                else "part"
            )
            + " of frames)"
        )
    window = rec.get("window") if isinstance(rec, dict) else None
    short = f"shorter than {2 * window} frames" if isinstance(window, int) else "too short"
    parts.append(
        f". Segments {short} or not contiguous (mixed) have no recovery value ('recovery "
        "measured' counts those that have one); a method that does not adapt also 'recovers' as "
        "the scene changes, so compare with the source row."
    )
    if isinstance(col, dict) and col:
        parts.append(
            f" Collapse: averaged over the segment, the classes predicted per frame fall below "
            f"{col.get('class_ratio', '?')} × those in the ground truth, or the mean softmax "
            f"entropy below {col.get('entropy', '?')} nats."
        )
    t = Table(
        "Recovery and collapse",
        "recovery",
        [
            "method",
            "segments",
            "recovery measured",
            "frames to settle",
            "slowest",
            "collapsed",
            "where",
        ],
        [],
        "".join(parts),
    )
    for r in rows:
        t.rows.append(
            [
                r.method,
                str(r.segments),
                str(r.settled),
                DASH if r.frames.mean is None else f"{r.frames.mean:.1f}",
                DASH if r.worst is None else f"{r.worst:g}",
                str(r.collapsed),
                ", ".join(r.collapsed_where[:6]) + (" …" if len(r.collapsed_where) > 6 else "")
                or DASH,
            ]
        )
    return t


def online_table(rows: list[Online], meta: dict[str, Any] | None) -> Table | None:
    if not rows:
        return None
    meta = meta or {}
    rate = (
        f"η = {meta['eta']:g} (frames arrive at η × the source model's rate)"
        if isinstance(meta.get("eta"), (int, float))
        else f"{meta['fps']:g} frames per second"
        if isinstance(meta.get("fps"), (int, float))
        else "the run's rate"
    )
    fallback = meta.get("fallback") or "last"
    fb = (
        "its latest available prediction"
        if fallback == "last"
        else "the un-adapted source model's prediction"
    )
    off_rank = ranks({r.method: r.offline.mean for r in rows if r.offline.mean is not None})
    on_rank = ranks({r.method: r.online.mean for r in rows if r.online.mean is not None})
    t = Table(
        "Offline vs online (compute-aware) mIoU",
        "online",
        [
            "method",
            "cost ratio r",
            "batches missed per step",
            "offline mIoU",
            "online mIoU",
            "online − offline (pp)",
            "frames on fallback",
            "rank offline → online",
        ],
        [],
        f"After Alfarra et al. (ICML 2024): {rate}; a method whose step costs r × the source "
        "model's forward pass misses the next ⌈r·η⌉ − 1 batches, which are scored with "
        f"{fb} (fallback: {fallback}). r was measured once for the run and stored, so the "
        "online numbers do not depend on timing noise within the run. mIoU in %.",
    )
    for r in rows:
        share = f"{100 * r.skipped / r.frames:.0f} %" if r.frames else DASH
        t.rows.append(
            [
                r.method,
                DASH if r.cost_ratio is None else f"{r.cost_ratio:.2f}",
                DASH if r.skipped_batches is None else str(r.skipped_batches),
                stat(r.offline),
                stat(r.online),
                stat(r.change, True),
                f"{r.skipped} of {r.frames} ({share})",
                f"{off_rank.get(r.method, DASH)} → {on_rank.get(r.method, DASH)}",
            ]
        )
        t.classes.append(["", "", "", "", "", _sign(r.change), "", ""])
    return t


def sampling_table(cmp: SamplingComparison, methods: list[str]) -> Table | None:
    """Per shift, each method's mIoU under both samplings and the difference."""
    own, other = cmp.samplings
    shown = [m for m in methods if any((m, s, own) in cmp.miou for s in cmp.shifts)]
    if not shown:
        return None
    cols = ["shift"]
    for m in shown:
        cols += [f"{m} {own}", f"{m} {other}", f"{m} {own} − {other} (pp)"]
    t = Table(
        f"{own.capitalize()} vs {other} frames",
        "sampling",
        cols,
        [],
        f"mIoU in %, the same shifts and number of frames per cell; {own}: "
        + (
            "consecutive frames of one drive per seed"
            if own == "video"
            else "frames from many drives"
        )
        + f"; {other}: "
        + ("frames drawn from many drives and shuffled" if other == "iid" else "consecutive frames")
        + ". Paired by seed; mean over seeds.",
    )
    for s in cmp.shifts:
        label = s[0] if not s[1] else f"{s[0]} s{s[1]:g}"
        row, cls = [label], [""]
        for m in shown:
            a = cmp.miou.get((m, s, own), Stat(None, None, 0))
            b = cmp.miou.get((m, s, other), Stat(None, None, 0))
            by_seed = cmp.paired.get((m, s), {})
            d = Stat.of(v[own] - v[other] for v in by_seed.values())
            row += [stat(a), stat(b), stat(d, True)]
            cls += ["", "", _sign(d)]
        t.rows.append(row)
        t.classes.append(cls)
    return t
