"""The numbers of protocol runs: rounds, per-shift and per-domain scores, forgetting, recovery and
collapse, offline against compute-aware (online) mIoU.

Reads the columns and meta keys of the protocols contract (``docs/architecture.md``,
"Protocols"): cells carry ``protocol``, ``order``, ``rounds``, ``online_miou``,
``skipped_frames``, ``clean_before``, ``clean_after``; segments carry ``round``, ``order``,
``domain``, ``frames``, ``recovery_frames``, ``collapse``, ``class_prior``. Every function
returns an empty result for a folder without them (older runs), so the report shows nothing
rather than an empty table.

Averaging: a segment's value is its stored mIoU; a round's value for one stream (one cell: one
seed, one order) is the frame-weighted mean of its segments in that round; figures over streams
are then summarised as mean, sample std and count over seeds × orders (``Stat``).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._analysis import Stat, method_order
from ._load import RunData

#: Protocols that carry one adapter through a list of shifts (their cells are one stream each).
CARRIED = ("continual", "gradual", "mixed")
_ROUND_SUFFIX = re.compile(r"\s+r\d+$")


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def cell_protocol(cell: dict[str, Any]) -> str:
    """The protocol a cell ran under. Folders before the protocols contract ran every cell
    ``reset_each_shift`` (their ``continual``/``gradual`` schedules are schedule streams)."""
    p = cell.get("protocol")
    return p if isinstance(p, str) and p else "reset_each_shift"


def carried_cells(data: RunData) -> list[dict[str, Any]]:
    return [c for c in data.done if cell_protocol(c) in CARRIED]


def _weight(seg: dict[str, Any]) -> float:
    frames = _num(seg.get("frames"))
    if frames:
        return frames
    a, b = _num(seg.get("start_frame")), _num(seg.get("stop_frame"))
    return b - a if a is not None and b is not None and b > a else 1.0


def _weighted(rows: Iterable[dict[str, Any]], key: str = "miou") -> float | None:
    pairs = [(_num(r.get(key)), _weight(r)) for r in rows]
    pairs = [(v, w) for v, w in pairs if v is not None]
    if not pairs:
        return None
    return float(sum(v * w for v, w in pairs) / sum(w for _, w in pairs))


def shift_key(seg: dict[str, Any]) -> str:
    """The shift a segment shows, the same in every round: ``fog s5`` (label without ``r3``)."""
    corr, sev = seg.get("corruption"), _num(seg.get("severity"))
    if corr and sev is not None and corr != "mixed":
        return f"{corr} s{sev:g}"
    return _ROUND_SUFFIX.sub("", str(seg.get("label") or "?"))


@dataclass(frozen=True)
class ProtocolResult:
    """One carried protocol's streams summarised per method."""

    protocol: str
    rounds: int
    orders: int
    streams: int  # cells (seeds × orders) per method, at most
    shifts: list[str]  # shift keys in stream order
    overall: dict[str, Stat]  # method -> stream mIoU over seeds × orders
    per_round: dict[str, list[Stat]]  # method -> one Stat per round
    per_shift: dict[str, dict[str, Stat]]  # method -> shift -> Stat (segments of every round)
    per_severity: dict[str, dict[float, Stat]]  # method -> severity -> Stat (gradual)
    first_last: dict[str, tuple[Stat, Stat]]  # method -> (first round, last round) paired


def protocol_results(data: RunData) -> list[ProtocolResult]:
    """One result per carried protocol in the run (continual, gradual, mixed)."""
    by_proto: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in carried_cells(data):
        by_proto[cell_protocol(c)].append(c)
    out = []
    for proto in CARRIED:
        cells = by_proto.get(proto)
        if cells:
            out.append(_protocol_result(data, proto, cells))
    return out


def _protocol_result(data: RunData, proto: str, cells: list[dict[str, Any]]) -> ProtocolResult:
    # rounds as stored (0- or 1-based alike), numbered 1.. in the order they ran
    seen = sorted(
        {int(sg.get("round") or 0) for c in cells for sg in data.segments.get(c["cell_id"], [])}
    )
    index = {r: k for k, r in enumerate(seen)}
    n_rounds = max(len(seen), 1)
    shifts: list[str] = []
    overall, per_round, per_shift, per_sev, first_last = {}, {}, {}, {}, {}
    orders = {int(c.get("order") or 0) for c in cells}
    streams = 0
    for method in method_order(data):
        mine = [c for c in cells if c["method"] == method]
        if not mine:
            continue
        streams = max(streams, len(mine))
        overall[method] = Stat.of(c.get("miou") for c in mine)
        round_vals: dict[int, list[float | None]] = defaultdict(list)
        shift_vals: dict[str, list[float | None]] = defaultdict(list)
        sev_vals: dict[float, list[float | None]] = defaultdict(list)
        firsts, lasts = [], []
        for c in mine:
            by_round: dict[int, list[dict[str, Any]]] = defaultdict(list)
            by_shift: dict[str, list[dict[str, Any]]] = defaultdict(list)
            by_sev: dict[float, list[dict[str, Any]]] = defaultdict(list)
            for sg in data.segments.get(c["cell_id"], []):
                by_round[index[int(sg.get("round") or 0)]].append(sg)
                key = shift_key(sg)
                if key not in shifts:
                    shifts.append(key)
                by_shift[key].append(sg)
                sev = _num(sg.get("severity"))
                if sev is not None:
                    by_sev[sev].append(sg)
            for r, rows in by_round.items():
                round_vals[r].append(_weighted(rows))
            # one value per stream (frame-weighted over its rounds), then spread over streams
            for key, rows in by_shift.items():
                shift_vals[key].append(_weighted(rows))
            for sev, rows in by_sev.items():
                sev_vals[sev].append(_weighted(rows))
            if len(by_round) > 1:
                firsts.append(_weighted(by_round[min(by_round)]))
                lasts.append(_weighted(by_round[max(by_round)]))
        per_round[method] = [Stat.of(round_vals.get(r, [])) for r in range(n_rounds)]
        per_shift[method] = {k: Stat.of(v) for k, v in shift_vals.items()}
        per_sev[method] = {k: Stat.of(v) for k, v in sorted(sev_vals.items())}
        if firsts:
            first_last[method] = (Stat.of(firsts), Stat.of(lasts))
    return ProtocolResult(
        protocol=proto,
        rounds=n_rounds,
        orders=len(orders),
        streams=streams,
        shifts=shifts,
        overall=overall,
        per_round=per_round,
        per_shift=per_shift,
        per_severity=per_sev,
        first_last=first_last,
    )


def measured_cells(data: RunData, key: str) -> list[dict[str, Any]]:
    """The done cells that carry ``key``, without the clean reference cells when shifted ones
    carry it too (a clean stream has nothing to recover from or forget with)."""
    rows = [c for c in data.done if _num(c.get(key)) is not None]
    shifted = [c for c in rows if c.get("corruption") != "clean"]
    return shifted or rows


def per_stream(rows: Iterable[dict[str, Any]], value) -> Stat:
    """``value(cell)`` averaged within each stream (seed, order), then summarised over them:
    the spread is over seeds and orders, never over different shifts."""
    groups: dict[tuple[int, int], list[float]] = defaultdict(list)
    for c in rows:
        v = value(c)
        if v is not None:
            groups[(int(c.get("seed") or 0), int(c.get("order") or 0))].append(v)
    return Stat.of(float(np.mean(v)) for _, v in sorted(groups.items()))


@dataclass(frozen=True)
class LabelShift:
    """A label-shift stream: mIoU and ground-truth class priors per domain (town/traffic)."""

    domains: list[str]
    # (method, stream) -> domain -> Stat over seeds × orders; stream: "clean" for the clean
    # reference stream (a fresh adapter through the same domains), "shifted" for the others
    miou: dict[tuple[str, str], dict[str, Stat]]
    prior: dict[str, list[float]]  # domain -> mean class frequencies (fractions)


def _prior_vector(value: Any, names: tuple[str, ...]) -> list[float] | None:
    if isinstance(value, str):
        try:
            import json

            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, dict):
        return [float(value.get(n) or 0.0) for n in names]
    if isinstance(value, list) and value:
        vals = [(_num(v) or 0.0) for v in value]
        return (vals + [0.0] * len(names))[: len(names)]
    return None


def label_shift(data: RunData) -> LabelShift | None:
    """Segments that name a domain, grouped by it; None when the run has none."""
    domains: list[str] = []
    rows: dict[tuple[str, str], list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
    priors: dict[str, list[list[float]]] = defaultdict(list)
    for c in data.done:
        stream = "clean" if c.get("corruption") == "clean" else "shifted"
        for sg in data.segments.get(c["cell_id"], []):
            if not sg.get("domain"):
                continue
            dom = str(sg["domain"])
            if dom not in domains:
                domains.append(dom)
            rows[(c["method"], stream)].append((c, sg))
            vec = _prior_vector(sg.get("class_prior"), data.class_names)
            if vec is not None and stream == "clean":  # the ground truth: any stream's is it
                priors[dom].append(vec)
    if not domains:
        return None
    if not priors:  # no clean stream: the shifted streams' ground truth is the same scene
        for c in data.done:
            for sg in data.segments.get(c["cell_id"], []):
                vec = _prior_vector(sg.get("class_prior"), data.class_names)
                if sg.get("domain") and vec is not None:
                    priors[str(sg["domain"])].append(vec)
    miou = {}
    for m in method_order(data):
        for stream in ("clean", "shifted"):
            pairs = rows.get((m, stream))
            if pairs:
                miou[(m, stream)] = {
                    d: per_stream(
                        [c for c, sg in pairs if sg["domain"] == d],
                        _segment_value(pairs, d),
                    )
                    for d in domains
                }
    return LabelShift(
        domains=domains,
        miou=miou,
        prior={d: [float(x) for x in np.mean(v, axis=0)] for d, v in priors.items() if v},
    )


def _segment_value(pairs, domain: str):
    """cell -> frame-weighted mIoU of its segments in ``domain`` (for :func:`per_stream`)."""
    by_cell: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c, sg in pairs:
        if sg["domain"] == domain:
            by_cell[c["cell_id"]].append(sg)
    return lambda c: _weighted(by_cell.get(c["cell_id"], []))


@dataclass(frozen=True)
class Forgetting:
    method: str
    before: Stat
    after: Stat
    change: Stat  # after − before, paired per cell
    cells: int


def forgetting(data: RunData) -> list[Forgetting]:
    """Clean source-domain mIoU with a fresh adapter and after the adapted stream, per method
    (the shifted streams' cells; the clean reference cells only when nothing else has it)."""
    cells = [
        c for c in measured_cells(data, "clean_after") if _num(c.get("clean_before")) is not None
    ]
    out = []
    for method in method_order(data):
        rows = [c for c in cells if c["method"] == method]
        if not rows:
            continue
        out.append(
            Forgetting(
                method,
                per_stream(rows, lambda c: float(c["clean_before"])),
                per_stream(rows, lambda c: float(c["clean_after"])),
                per_stream(rows, lambda c: float(c["clean_after"]) - float(c["clean_before"])),
                len(rows),
            )
        )
    return out


@dataclass(frozen=True)
class Recovery:
    method: str
    segments: int  # segments with a recovery value or a collapse flag
    settled: int  # segments with a recovery value (long and contiguous enough to measure)
    frames: Stat  # frames to settle over settled segments
    worst: float | None
    collapsed: int
    collapsed_where: list[str]


def recovery(data: RunData) -> list[Recovery]:
    """Per method: how many frames segments need to settle after a shift, and collapses."""
    out = []
    done = {c["cell_id"]: c for c in data.done}
    if any(c.get("corruption") != "clean" for c in done.values()):
        done = {k: c for k, c in done.items() if c.get("corruption") != "clean"}
    for method in method_order(data):
        frames: list[float] = []
        counted = collapsed = 0
        where: list[str] = []
        for cid, segs in data.segments.items():
            cell = done.get(cid)
            if cell is None or cell["method"] != method:
                continue
            for s in segs:
                rec, col = _num(s.get("recovery_frames")), s.get("collapse")
                if rec is None and col is None:
                    continue
                counted += 1
                if rec is not None:
                    frames.append(rec)
                if col:
                    collapsed += 1
                    label = str(s.get("label") or shift_key(s))
                    if label not in where:
                        where.append(label)
        if counted:
            out.append(
                Recovery(
                    method,
                    counted,
                    len(frames),
                    Stat.of(frames),
                    max(frames) if frames else None,
                    collapsed,
                    where,
                )
            )
    return out


@dataclass(frozen=True)
class Online:
    method: str
    offline: Stat
    online: Stat
    change: Stat  # online − offline, paired per cell
    skipped: int
    frames: int
    cost_ratio: float | None
    skipped_batches: int | None


def online(data: RunData) -> list[Online]:
    """Offline and compute-aware mIoU of the same cells, per method: the shifted cells that
    have both (the clean reference cells only when nothing else has), averaged per stream."""
    meta = data.meta.get("online") if isinstance(data.meta.get("online"), dict) else {}
    ratios = meta.get("cost_ratio") if isinstance(meta.get("cost_ratio"), dict) else {}
    skips = meta.get("skipped_batches") if isinstance(meta.get("skipped_batches"), dict) else {}
    cells = [c for c in measured_cells(data, "online_miou") if _num(c.get("miou")) is not None]
    out = []
    for method in method_order(data):
        rows = [c for c in cells if c["method"] == method]
        if not rows:
            continue
        skip = skips.get(method)
        out.append(
            Online(
                method,
                per_stream(rows, lambda c: float(c["miou"])),
                per_stream(rows, lambda c: float(c["online_miou"])),
                per_stream(rows, lambda c: float(c["online_miou"]) - float(c["miou"])),
                sum(int(c.get("skipped_frames") or 0) for c in rows),
                sum(int(c.get("frames") or 0) for c in rows),
                _num(ratios.get(method)),
                int(skip) if isinstance(skip, (int, float)) else None,
            )
        )
    return out


def ranks(values: dict[str, float]) -> dict[str, int]:
    """1 = best; ties share the better rank."""
    ordered = sorted(values.values(), reverse=True)
    return {m: 1 + ordered.index(v) for m, v in values.items()}


@dataclass(frozen=True)
class SamplingComparison:
    """The same shifts run with two samplings (``sampling: [video, iid]``): per shift and method,
    mIoU under each, summarised over seeds."""

    samplings: tuple[str, str]  # (the run's own, the control's)
    shifts: list[tuple[str, float]]  # (shift label, severity) in run order
    miou: dict[tuple[str, tuple[str, float], str], Stat]  # (method, shift, sampling) -> Stat
    paired: dict[tuple[str, tuple[str, float]], dict[int, dict[str, float]]]  # per seed


def shift_of(data: RunData, cell: dict[str, Any]) -> tuple[str, float]:
    """A cell's shift without its sampling's suffix: ``("fog", 4.0)`` for ``fog.iid``."""
    label = str(cell.get("corruption"))
    sampling = data.sampling_of(cell)
    if sampling != data.sampling:
        label = label.removesuffix(f".{sampling}")
    return label, float(cell.get("severity") or 0.0)


def sampling_comparison(data: RunData) -> SamplingComparison | None:
    """Cells of the run's sampling paired with the control sampling's by method, shift and
    seed; None without a control."""
    controls = [c for c in data.controls if c.get("status") == "done" and c.get("miou") is not None]
    if not controls:
        return None
    other = data.sampling_of(controls[0])
    paired: dict[tuple[str, tuple[str, float]], dict[int, dict[str, float]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    shifts: list[tuple[str, float]] = []
    for c in [*data.done, *controls]:
        if c.get("miou") is None:
            continue
        key = shift_of(data, c)
        paired[(c["method"], key)][int(c.get("seed") or 0)][data.sampling_of(c)] = float(c["miou"])
        if key not in shifts:
            shifts.append(key)
    both = {
        k: {seed: v for seed, v in by_seed.items() if len(v) == 2} for k, by_seed in paired.items()
    }
    both = {k: v for k, v in both.items() if v}
    shifts = [s for s in shifts if any(k[1] == s for k in both)]
    miou = {
        (m, s, mode): Stat.of(v[mode] for v in by_seed.values())
        for (m, s), by_seed in both.items()
        for mode in (data.sampling, other)
    }
    return SamplingComparison((data.sampling, other), shifts, miou, both)
