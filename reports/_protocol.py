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
    shifts: list[str] = []
    n_rounds = 1
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
            segs = data.segments.get(c["cell_id"], [])
            by_round: dict[int, list[dict[str, Any]]] = defaultdict(list)
            by_shift: dict[str, list[dict[str, Any]]] = defaultdict(list)
            by_sev: dict[float, list[dict[str, Any]]] = defaultdict(list)
            for s in segs:
                by_round[int(s.get("round") or 0)].append(s)
                key = shift_key(s)
                if key not in shifts:
                    shifts.append(key)
                by_shift[key].append(s)
                sev = _num(s.get("severity"))
                if sev is not None:
                    by_sev[sev].append(s)
            # one value per stream (frame-weighted over its rounds), then spread over streams
            for key, rows in by_shift.items():
                shift_vals[key].append(_weighted(rows))
            for sev, rows in by_sev.items():
                sev_vals[sev].append(_weighted(rows))
            if by_round:
                n_rounds = max(n_rounds, max(by_round) + 1)
            for r, rows in by_round.items():
                round_vals[r].append(_weighted(rows))
            if len(by_round) > 1:
                firsts.append(_weighted(by_round[min(by_round)]))
                lasts.append(_weighted(by_round[max(by_round)]))
        per_round[method] = [Stat.of(round_vals.get(r, [])) for r in range(n_rounds)]
        per_shift[method] = {k: Stat.of(v) for k, v in shift_vals.items()}
        per_sev[method] = {k: Stat.of(v) for k, v in sorted(sev_vals.items())}
        if firsts:
            first_last[method] = (Stat.of(firsts), Stat.of(lasts))
    for stats in per_round.values():  # methods with fewer rounds: pad with empties
        stats += [Stat(None, None, 0)] * (n_rounds - len(stats))
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


@dataclass(frozen=True)
class LabelShift:
    """A label-shift stream: mIoU and ground-truth class priors per domain (town/traffic)."""

    domains: list[str]
    miou: dict[str, dict[str, Stat]]  # method -> domain -> Stat
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
    miou: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    priors: dict[str, list[list[float]]] = defaultdict(list)
    done = {c["cell_id"]: c for c in data.done}
    for cid, segs in data.segments.items():
        cell = done.get(cid)
        if cell is None:
            continue
        for s in segs:
            dom = s.get("domain")
            if not dom:
                continue
            dom = str(dom)
            if dom not in domains:
                domains.append(dom)
            v = _num(s.get("miou"))
            if v is not None:
                miou[cell["method"]][dom].append(v)
            vec = _prior_vector(s.get("class_prior"), data.class_names)
            if vec is not None:
                priors[dom].append(vec)
    if not domains:
        return None
    return LabelShift(
        domains=domains,
        miou={
            m: {d: Stat.of(miou[m].get(d, [])) for d in domains}
            for m in method_order(data)
            if m in miou
        },
        prior={d: [float(x) for x in np.mean(v, axis=0)] for d, v in priors.items() if v},
    )


@dataclass(frozen=True)
class Forgetting:
    method: str
    before: Stat
    after: Stat
    change: Stat  # after − before, paired per cell
    cells: int


def forgetting(data: RunData) -> list[Forgetting]:
    """Clean source-domain mIoU with a fresh adapter and after the adapted stream, per method."""
    out = []
    for method in method_order(data):
        rows = [
            c
            for c in data.done
            if c["method"] == method
            and _num(c.get("clean_before")) is not None
            and _num(c.get("clean_after")) is not None
        ]
        if not rows:
            continue
        out.append(
            Forgetting(
                method,
                Stat.of(c["clean_before"] for c in rows),
                Stat.of(c["clean_after"] for c in rows),
                Stat.of(float(c["clean_after"]) - float(c["clean_before"]) for c in rows),
                len(rows),
            )
        )
    return out


@dataclass(frozen=True)
class Recovery:
    method: str
    segments: int  # segments with a recovery value or a collapse flag
    settled: int  # segments whose mIoU settled
    frames: Stat  # frames to settle over settled segments
    worst: float | None
    collapsed: int
    collapsed_where: list[str]


def recovery(data: RunData) -> list[Recovery]:
    """Per method: how many frames segments need to settle after a shift, and collapses."""
    out = []
    done = {c["cell_id"]: c for c in data.done}
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
    """Offline and compute-aware mIoU of the same cells, per method (cells with both)."""
    meta = data.meta.get("online") if isinstance(data.meta.get("online"), dict) else {}
    ratios = meta.get("cost_ratio") if isinstance(meta.get("cost_ratio"), dict) else {}
    skips = meta.get("skipped_batches") if isinstance(meta.get("skipped_batches"), dict) else {}
    out = []
    for method in method_order(data):
        rows = [
            c
            for c in data.done
            if c["method"] == method
            and _num(c.get("online_miou")) is not None
            and _num(c.get("miou")) is not None
        ]
        if not rows:
            continue
        skip = skips.get(method)
        out.append(
            Online(
                method,
                Stat.of(c["miou"] for c in rows),
                Stat.of(c["online_miou"] for c in rows),
                Stat.of(float(c["online_miou"]) - float(c["miou"]) for c in rows),
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
