"""Closed-loop scenarios (``loop: closed``): each method's predictions drive the car.

A closed-loop cell is one method × shift × severity × seed: ``closed_loop.drives`` drives
stepping together through :class:`sim.ClosedLoop`. At every step the method's adapter gets the
batch of the drives' current (corrupted) frames, so a batch-statistics method has a batch
without waiting for future frames; its predicted label maps steer the cars through the
lane-keeping controller. A method's frames therefore depend on how it drove: nothing is shared
between cells, and each cell is a work unit of its own.

Seeds: drive ``b`` of seed ``s`` drives the world seeded ``stable_int("drive", s, b)`` under
every method and shift (rows compare the same roads and traffic), and the shift's generators
are seeded from ``(shift label, severity, s)`` (every method starts from the same draws).

Reference rows: the ground-truth ``oracle`` drives on the labels the world renders, which no
image shift reaches, so it drives once per seed under ``clean``; ``source`` (the unadapted
model) is added to the methods when the scenario does not list it.

A cell's row (``loop = 'closed'``) holds the method's mIoU on the frames it saw; its drives go
to the store's ``drives`` table and their traces and first-failure strip to
``drives/<cell_id>.npz`` (read by ``reports._closed_loop``). This module plans the cells;
``scenarios._drive`` drives them.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import Any

from reports import make_cell_id
from scenarios._cells import stable_int
from scenarios._schema import ClosedLoopSpec, MethodSpec, Scenario, ScenarioError

__all__ = [
    "ORACLE",
    "ClosedUnit",
    "check_closed_loop",
    "closed_loop_meta",
    "closed_units",
    "drive_seeds",
    "meta_methods",
    "shift_seed",
    "spec_of",
]

ORACLE = "oracle"
SOURCE = "source"
CLOSED = "closed"
#: Scenario keys of open-loop streams (protocols, sampling, windows, online evaluation): a
#: closed loop needs them at their defaults.
OPEN_LOOP_ONLY = (
    "protocol", "rounds", "orders", "sampling", "label_shift", "window", "forgetting", "online",
)  # fmt: skip


@dataclass(frozen=True)
class ClosedUnit:
    """One closed-loop cell: a method driving ``spec.drives`` cars under one shift."""

    index: int
    seed: int
    cells: tuple[dict[str, Any], ...]  # exactly one
    world: dict[str, Any]
    height: int
    width: int
    spec: ClosedLoopSpec
    sample: bool = False  # closed-loop cells keep their frames in drive records instead

    @property
    def cell(self) -> dict[str, Any]:
        return self.cells[0]

    def expected_frames(self) -> int:
        """Frames the unit's method sees when its drives cover the distance at cruise speed
        without a failure (a failure or a wait adds more; ``max_steps`` caps them)."""
        world = json.dumps(self.world, sort_keys=True)
        cruise, dt = _cruise(world, self.height, self.width, drive_seeds(self.seed, 1)[0])
        return self.spec.drives * math.ceil(self.spec.distance_m / (cruise * dt))

    @property
    def label(self) -> str:
        c = self.cell
        sev = "" if c["corruption"] == "clean" else f" s{c['severity']:g}"
        return f"{c['method']} {c['corruption']}{sev} seed {self.seed} (closed loop)"


@functools.lru_cache(maxsize=64)
def _cruise(world: str, height: int, width: int, seed: int) -> tuple[float, float]:
    """(the ego's cruise speed in m/s, the tick in s) of a drive's world."""
    import sim

    config = sim.WorldConfig(height=height, width=width, **json.loads(world))
    return float(sim.World(config, seed).traffic.cruise), config.dt


def spec_of(sc: Scenario) -> ClosedLoopSpec:
    return sc.closed_loop or ClosedLoopSpec()


def check_closed_loop(sc: Scenario, src: str) -> Scenario:
    """A closed-loop scenario's structural checks, and ``source`` added when not listed
    (raises :class:`ScenarioError`). An open-loop scenario is returned as is."""
    if sc.loop != CLOSED:
        if sc.closed_loop is not None:
            raise ScenarioError(f"{src}: closed_loop: applies only to loop: closed")
        return sc
    if sc.schedule:
        raise ScenarioError(
            f"{src}: schedule: a closed-loop scenario (loop: closed) drives under the "
            "corruption grid only; remove schedule"
        )
    if sc.world_shifts:
        raise ScenarioError(
            f"{src}: world_shifts: a closed-loop scenario (loop: closed) drives under the "
            "corruption grid only; set the world with world:"
        )
    for key in OPEN_LOOP_ONLY:
        if getattr(sc, key) != Scenario.model_fields[key].get_default(call_default_factory=True):
            raise ScenarioError(
                f"{src}: {key}: a closed-loop scenario (loop: closed) drives fresh adapters "
                f"under each shift of the corruption grid; remove {key}"
            )
    for i, m in enumerate(sc.methods):
        if m.key == ORACLE:
            raise ScenarioError(
                f"{src}: methods[{i}]: the label {ORACLE!r} is the ground-truth driver of a "
                "closed-loop scenario; give this method another label"
            )
    if SOURCE not in sc.method_keys():
        sc = sc.model_copy(update={"methods": [MethodSpec(name=SOURCE), *sc.methods]})
    return sc


def drive_seeds(seed: int, drives: int) -> list[int]:
    """The world seeds of a cell's drives (the same under every method and shift)."""
    return [stable_int("drive", int(seed), b) for b in range(drives)]


def shift_seed(corruption: str, severity: float, seed: int) -> int:
    """Seeds a cell's shift generators: the same under every method."""
    return stable_int(corruption, float(severity), int(seed))


def closed_units(sc: Scenario) -> list[ClosedUnit]:
    """Work units in run order: seeds outermost, then the oracle, then each method through
    every shift, the reference ``source`` first (a partial run has its baseline complete)."""
    spec = spec_of(sc)
    shifts: list[tuple[str, float]] = [("clean", 0.0)] if sc.include_clean else []
    shifts += [(c, float(s)) for c in sc.corruptions for s in sc.severities]
    units: list[ClosedUnit] = []
    for seed in sc.seeds:
        plan = [(ORACLE, "clean", 0.0)]
        methods = sorted(sc.method_keys(), key=lambda m: m != SOURCE)  # stable: source first
        plan += [(m, label, sev) for m in methods for label, sev in shifts]
        for method, label, sev in plan:
            cell = {
                "cell_id": make_cell_id(method, label, sev, seed),
                "method": method,
                "corruption": label,
                "severity": sev,
                "seed": seed,
                "schedule": "static",
                "protocol": "reset_each_shift",
                "order": 0,
                "rounds": 1,
                "sampling": "video",
                "loop": CLOSED,
            }
            units.append(
                ClosedUnit(len(units), seed, (cell,), dict(sc.world), sc.height, sc.width, spec)
            )
    return units


def meta_methods(sc: Scenario) -> tuple[dict[str, Any], ...]:
    """``meta.methods``: the scenario's methods, with the oracle first in a closed loop."""
    methods = tuple(
        {"label": m.key, "name": m.name, "options": dict(m.options)} for m in sc.methods
    )
    if sc.loop != CLOSED:
        return methods
    return ({"label": ORACLE, "name": ORACLE, "options": {}}, *methods)


def closed_loop_meta(sc: Scenario) -> dict[str, Any] | None:
    """``meta.closed_loop``: how the drives were run and scored (None: an open-loop run)."""
    if sc.loop != CLOSED:
        return None
    import sim

    spec = spec_of(sc)
    config = sim.WorldConfig(height=sc.height, width=sc.width, **sc.world)
    return {
        **spec.model_dump(),
        "dt": config.dt,
        "oracle": ORACLE,
        "world_seeds": 'stable_int("drive", seed, drive)',
        "shift_seed": "stable_int(shift label, float(severity), seed)",
        "failures": "collision, off_road, stall (standing still with the road clear for stall_s)",
    }
