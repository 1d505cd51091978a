"""A scenario's plan: cells and the work units that compute them.

A *cell* is one row of results: a method on one adapted stream of one seed (for
``reset_each_shift``, one shift at one severity; for a carried protocol, the whole stream of one
order). A *work unit* is an adapted stream (``scenarios._protocols``) over a clean stream
(``scenarios._sources``) with the cells it computes:

- a ``reset_each_shift`` unit holds every method: each batch is corrupted once and fed to every
  method's adapter, so corrupted frames are shared without holding a whole stream in memory;
- a carried-protocol unit (continual, gradual, mixed) holds one method, so the long streams of
  different methods run in parallel (each unit corrupts its own copy: the same bits).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from reports import make_cell_id
from scenarios._cells import Shift
from scenarios._closed import closed_units
from scenarios._datasource import data_clean_stream, data_conditions, natural_shift
from scenarios._protocols import (
    AdaptedStream,
    carried_stream,
    gradual_schedule,
    mixed_stream,
    order_permutation,
    reset_stream,
    stream_label,
)
from scenarios._schema import Scenario
from scenarios._sources import CleanStream, clean_stream, iid_description

__all__ = ["Unit", "data_meta", "expand_cells", "plan_units", "protocol_plan", "protocol_shifts",
           "stream_meta"]  # fmt: skip

RESET = "reset_each_shift"


@dataclass(frozen=True)
class Unit:
    """One adapted stream of one seed, with the cells (methods) it computes."""

    index: int
    seed: int
    clean: CleanStream
    stream: AdaptedStream
    cells: tuple[dict[str, Any], ...]
    sample: bool = False
    schedule: Any = None  # a ``schedule:`` shift's spec (per-frame corruption states)

    @property
    def carried(self) -> bool:
        """A protocol stream (one adapter through many shifts), written segment by segment."""
        return self.stream.protocol != RESET

    @property
    def label(self) -> str:
        name = self.cells[0]["corruption"]  # the cells' label (with a sampling's suffix)
        if self.carried:
            methods = ", ".join(c["method"] for c in self.cells)
            return f"{name} seed {self.seed} ({methods})"
        shift = self.stream.segments[0].shift
        sev = "" if shift.kind in ("clean", "world") else f" s{shift.severity:g}"
        return f"{name}{sev} seed {self.seed}"


def _schedule_shift(spec: Any, label: str, frames: int) -> tuple[Shift, dict[str, Any] | None]:
    import sim

    sched = sim.make_schedule(spec)
    states = [sched.state(i, frames) for i in range(frames)]
    mean = sum(float(s.severity) for s in states) / frames
    world_sched = spec if any(s.world is not None for s in states) else None
    shift = Shift(kind="schedule", label=label, severity=round(mean, 4), schedule=spec,
                  schedule_kind=sched.kind)  # fmt: skip
    return shift, world_sched


def _static(sc: Scenario, corruption: str | dict[str, Any], severity: float) -> Shift:
    """A static shift: a corruption name, or an albumentations spec named by its label."""
    label = corruption if isinstance(corruption, str) else str(corruption["label"])
    return Shift("static", label, float(severity), corruption, scaling=sc.scaling)


def protocol_shifts(sc: Scenario) -> list[Shift]:
    """The shift list a carried protocol walks, in the listed order (gradual: its schedule);
    with ``data:`` and no corruptions, the data as they are (ACDC: its conditions as parts)."""
    if sc.data is not None and not sc.corruptions:
        return [natural_shift(sc.data)]
    if sc.protocol == "gradual":
        return [_static(sc, c, s) for c, s in gradual_schedule(sc.corruptions)]
    return [_static(sc, c, s) for c in sc.corruptions for s in sc.severities]


def _ordered(sc: Scenario, order: int) -> list[Shift]:
    if sc.protocol == "gradual":  # an order permutes the corruption types, then the schedule
        perm = order_permutation(len(sc.corruptions), order)
        names = [sc.corruptions[i] for i in perm]
        return [_static(sc, c, s) for c, s in gradual_schedule(names)]
    shifts = protocol_shifts(sc)
    return [shifts[i] for i in order_permutation(len(shifts), order)]


def _cell(method: str, label: str, severity: float, seed: int, schedule: str, protocol: str,
          order: int = 0, rounds: int = 1, sampling: str = "video") -> dict[str, Any]:  # fmt: skip
    return {
        "cell_id": make_cell_id(method, label, severity, seed),
        "method": method,
        "corruption": label,
        "severity": severity,
        "seed": seed,
        "schedule": schedule,
        "protocol": protocol,
        "order": order,
        "rounds": rounds,
        "sampling": sampling,
    }


def _clean(sc: Scenario, seed: int, world: dict[str, Any], sampling: str,
           conditions: dict[str, Any] | None = None) -> CleanStream:  # fmt: skip
    if sc.data is not None:
        return data_clean_stream(sc.data, seed, sc.frames, sc.height, sc.width,
                                 sampling=sampling)  # fmt: skip
    parts = [(p.label, dict(p.world)) for p in sc.label_shift]
    return clean_stream(world, seed, sc.frames, sc.height, sc.width, sampling=sampling,
                        parts=parts, conditions=conditions)  # fmt: skip


def _reset_units(
    sc: Scenario, seed: int, sampling: str
) -> list[tuple[Shift, CleanStream, AdaptedStream]]:
    import sim

    out = []
    n = _clean(sc, seed, dict(sc.world), sampling).frames
    if sc.include_clean:
        shift = Shift(kind="clean", label="clean")
        clean = _clean(sc, seed, dict(sc.world), sampling)
        out.append((shift, clean, reset_stream(shift, clean)))
    if sc.protocol != RESET:
        return out
    for c in sc.corruptions:
        for s in sc.severities:
            shift = _static(sc, c, s)
            clean = _clean(sc, seed, dict(sc.world), sampling)
            out.append((shift, clean, reset_stream(shift, clean)))
    for spec in sc.schedule:
        shift, world_sched = _schedule_shift(spec.spec, spec.label or "schedule", n)
        shift = dataclasses.replace(shift, scaling=sc.scaling)
        clean = _clean(sc, seed, dict(sc.world), sampling, world_sched)
        sched = sim.make_schedule(spec.spec)
        pieces = [(int(a), int(b), str(lbl)) for a, b, lbl in sched.segments(clean.frames)]
        out.append((shift, clean, reset_stream(shift, clean, pieces, bool(sched.continual))))
    if sc.data is not None:  # each ACDC condition is a natural shift of its own
        for cond in data_conditions(sc.data):
            clean = data_clean_stream(sc.data, seed, sc.frames, sc.height, sc.width,
                                      sampling=sampling, condition=cond)  # fmt: skip
            shift = natural_shift(sc.data, cond)
            out.append((shift, clean, reset_stream(shift, clean)))
    for ws in sc.world_shifts:
        shift = Shift(kind="world", label=ws.label or "world", world=dict(ws.world),
                      schedule_kind="world")  # fmt: skip
        clean = _clean(sc, seed, {**sc.world, **ws.world}, sampling)
        out.append((shift, clean, reset_stream(shift, clean)))
    return out


def _carried(sc: Scenario, seed: int, order: int, clean: CleanStream) -> AdaptedStream:
    label = stream_label(sc.protocol, order, sc.orders)
    if sc.protocol == "mixed":
        stream = mixed_stream(protocol_shifts(sc), clean, seed)
        return AdaptedStream(label, "mixed", stream.segments, stream.steps, stream.resets,
                             contiguous=False)  # fmt: skip
    return carried_stream(sc.protocol, _ordered(sc, order), clean, rounds=sc.rounds,
                          order=order, label=label)  # fmt: skip


def _mean_severity(stream: AdaptedStream) -> float:
    sev = [stream.segments[s].shift.severity for s, _ in stream.steps]
    return round(sum(sev) / len(sev), 4) if sev else 0.0


def plan_units(sc: Scenario) -> list[Unit]:
    """Work units in run order: seeds outermost; then clean, the static grid, schedules and
    world shifts (``reset_each_shift``), or the carried streams, order by order, method by
    method. A closed-loop scenario's units are :class:`scenarios._closed.ClosedUnit` (one per
    cell)."""
    if sc.loop == "closed":
        return closed_units(sc)  # type: ignore[return-value]
    units: list[Unit] = []
    methods = sc.method_keys()
    for seed in sc.seeds:
        for k, sampling in enumerate(sc.samplings):
            # a second sampling's cells are told apart by their label: ``clean.iid``
            suffix = "" if k == 0 else f".{sampling}"
            first = seed == sc.seeds[0] and k == 0
            reset = _reset_units(sc, seed, sampling)
            sample_labels = _sample_labels(sc, [s for s, _, _ in reset])
            for shift, clean, stream in reset:
                label, kind = shift.label + suffix, shift.schedule_kind
                cells = tuple(
                    _cell(m, label, shift.severity, seed, kind, RESET, sampling=sampling)
                    for m in methods
                )
                sample = first and (shift.label, shift.severity) in sample_labels
                spec = shift.schedule if shift.kind == "schedule" else None
                units.append(Unit(len(units), seed, clean, stream, cells, sample, spec))
            if sc.protocol == RESET:
                continue
            clean = _clean(sc, seed, dict(sc.world), sampling)
            for order in range(sc.orders):
                stream = _carried(sc, seed, order, clean)
                severity = _mean_severity(stream)
                sample = first and order == 0 and sc.samples > 0
                for m in methods:
                    cell = _cell(m, stream.label + suffix, severity, seed, sc.protocol,
                                 sc.protocol, order, sc.rounds, sampling)  # fmt: skip
                    units.append(Unit(len(units), seed, clean, stream, (cell,), sample))
    return units


def _sample_labels(sc: Scenario, shifts: list[Shift]) -> set[tuple[str, float]]:
    """Which shifts get qualitative samples: clean plus the first ``samples`` other shifts, each
    at its highest severity (the most telling picture)."""
    if sc.samples == 0:
        return set()
    chosen: dict[str, float] = {}
    for s in shifts:
        if s.kind == "clean":
            continue
        chosen[s.label] = max(chosen.get(s.label, s.severity), s.severity)
    picked = {(k, v) for k, v in list(chosen.items())[: sc.samples]}
    if sc.include_clean:
        picked.add(("clean", 0.0))
    return picked


def expand_cells(sc: Scenario) -> list[dict[str, Any]]:
    """Every cell the scenario asks for, in run order (what ``meta.expected_cells`` stores)."""
    return [c for u in plan_units(sc) for c in u.cells]


def protocol_plan(sc: Scenario) -> dict[str, Any]:
    """``meta.protocol_plan``: rounds, the shift list of every order, the stream length."""
    per_shift = sc.frames * max(1, len(sc.label_shift))
    if sc.data is not None:  # parts of a dataset differ in length
        per_shift = _clean(sc, sc.seeds[0], {}, sc.samplings[0]).frames
    if sc.protocol == RESET:
        shifts = [_static(sc, c, s) for c in sc.corruptions for s in sc.severities]
        orders = [[f"{s.label} s{s.severity:g}" for s in shifts]]
        frames = per_shift
    else:
        shifts = protocol_shifts(sc)
        orders = [[f"{s.label} s{s.severity:g}" for s in _ordered(sc, k)] for k in range(sc.orders)]
        per_pass = len(orders[0]) * per_shift
        frames = per_pass * (sc.rounds if sc.protocol != "mixed" else 1)
    return {
        "rounds": sc.rounds,
        "orders": orders,
        "shifts": [
            {
                "label": f"{s.label} s{s.severity:g}",
                "corruption": s.corruption,
                "severity": s.severity,
            }
            for s in shifts
        ],
        "stream_frames": frames,
    }


def stream_meta(sc: Scenario) -> dict[str, Any]:
    """``meta.stream``: where the frames come from and how they are batched."""
    return {
        "sampling": sc.sampling,
        "frames_per_segment": sc.frames,
        "batch_size": sc.batch_size,
        "window": sc.window,
        "iid": iid_description(sc.frames) if "iid" in sc.samplings else None,
        "label_shift": [{"label": p.label, "world": dict(p.world)} for p in sc.label_shift] or None,
    }


def data_meta(sc: Scenario) -> dict[str, Any] | None:
    """``meta.data``: the dataset a run's frames come from (None for the world): the spec as
    given, where it was found, its frame count and conditions, what the stream uses of it,
    whether it has labels and depth, and the size frames are scored at."""
    if sc.data is None:
        return None
    import sim
    from scenarios._datasource import data_info

    spec = sim.DataSpec.from_any(sc.data)
    info = data_info(spec.to_dict())
    return {
        **spec.to_dict(),
        "resolved_root": str(spec.root_path()),
        "dataset_frames": info["frames"],
        "stream_frames": _clean(sc, sc.seeds[0], {}, sc.samplings[0]).frames,
        "conditions": [{"name": c, "frames": n} for c, n in info["conditions"]],
        "labelled": info["labelled"],
        "depth": info["depth"],
        "size": [sc.height, sc.width],
        "source_data": sc.source_data,
    }
