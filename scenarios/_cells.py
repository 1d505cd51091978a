"""Expanding a scenario into cells and work units.

A *cell* is one (method, shift, severity, seed): one row of results. A *work unit* is one
(shift, seed) with all methods' cells in it: the unit corrupts each batch once and feeds it to
every method's adapter, so corrupted frames are shared across methods without ever holding a
whole stream in memory. Clean frames come from a *stream*: one rendering per (world, seed, size,
frames, in-sim conditions), cached on disk in the run folder and shared by every unit that needs
it (see ``scenarios._streams``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from reports import make_cell_id
from scenarios._schema import Scenario
from sim.common import stable_int  # re-exported: units and workers seed from it

__all__ = ["Shift", "StreamSpec", "Unit", "expand_cells", "plan_units", "stable_int"]


@dataclass(frozen=True)
class StreamSpec:
    """What a clean stream is rendered from; equal specs share one rendering."""

    world: dict[str, Any]
    seed: int
    frames: int
    height: int
    width: int
    conditions: dict[str, Any] | None = None  # a world schedule spec (in-sim shifts)

    @property
    def key(self) -> str:
        blob = json.dumps(
            [self.world, self.seed, self.frames, self.height, self.width, self.conditions],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Shift:
    """One shift: clean, a static corruption at a severity, a schedule, or a world shift."""

    kind: str  # "clean" | "static" | "schedule" | "world"
    label: str  # the cells' ``corruption`` column
    severity: float = 0.0  # the cells' ``severity`` column (mean severity for schedules)
    corruption: str | None = None  # static shifts
    schedule: dict[str, Any] | str | None = None  # schedule shifts: the spec for make_schedule
    schedule_kind: str = "static"
    world: dict[str, Any] = field(default_factory=dict)  # world shifts: overrides of the world


@dataclass(frozen=True)
class Unit:
    """One (shift, seed): every method's cell on the same frames."""

    index: int
    seed: int
    shift: Shift
    stream: StreamSpec
    cells: tuple[dict[str, Any], ...]
    sample: bool = False

    @property
    def label(self) -> str:
        sev = "" if self.shift.kind in ("clean", "world") else f" s{self.shift.severity:g}"
        return f"{self.shift.label}{sev} seed {self.seed}"


def _schedule_shift(spec: Any, label: str, frames: int) -> tuple[Shift, dict[str, Any] | None]:
    import sim

    sched = sim.make_schedule(spec)
    states = [sched.state(i, frames) for i in range(frames)]
    mean = sum(float(s.severity) for s in states) / frames
    world_sched = spec if any(s.world is not None for s in states) else None
    shift = Shift(
        kind="schedule",
        label=label,
        severity=round(mean, 4),
        schedule=spec,
        schedule_kind=sched.kind,
    )
    return shift, world_sched


def _shifts(sc: Scenario) -> list[tuple[Shift, dict[str, Any] | None]]:
    out: list[tuple[Shift, dict[str, Any] | None]] = []
    if sc.include_clean:
        out.append((Shift(kind="clean", label="clean"), None))
    for c in sc.corruptions:
        for s in sc.severities:
            out.append((Shift(kind="static", label=c, severity=float(s), corruption=c), None))
    for spec in sc.schedule:
        out.append(_schedule_shift(spec.spec, spec.label or "schedule", sc.frames))
    for ws in sc.world_shifts:
        shift = Shift(kind="world", label=ws.label or "world", world=dict(ws.world),
                      schedule_kind="world")  # fmt: skip
        out.append((shift, None))
    return out


def plan_units(sc: Scenario) -> list[Unit]:
    """Work units in run order: seeds outermost, then clean, static grid, schedules, worlds."""
    units: list[Unit] = []
    shifts = _shifts(sc)
    sample_labels = _sample_labels(sc, [s for s, _ in shifts])
    for seed in sc.seeds:
        for shift, world_sched in shifts:
            world = {**sc.world, **shift.world}
            stream = StreamSpec(world, seed, sc.frames, sc.height, sc.width, world_sched)
            cells = tuple(
                {
                    "cell_id": make_cell_id(m, shift.label, shift.severity, seed),
                    "method": m,
                    "corruption": shift.label,
                    "severity": shift.severity,
                    "seed": seed,
                    "schedule": shift.schedule_kind,
                }
                for m in sc.method_keys()
            )
            sample = seed == sc.seeds[0] and (shift.label, shift.severity) in sample_labels
            units.append(Unit(len(units), seed, shift, stream, cells, sample))
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
