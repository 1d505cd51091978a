"""The vocabulary of a run's plan: renderings (``StreamSpec``), shifts, stable seeds.

A *shift* is what corrupts a clean stream: nothing (clean), a corruption at a severity, a
schedule, or another world. A *rendering* is one drive, rendered once per (world, seed, size,
frames, in-sim conditions) and cached on disk in the run folder (see ``scenarios._streams``).
Cells and work units are planned in ``scenarios._plan``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sim.common import stable_int  # re-exported: units and workers seed from it

__all__ = ["Shift", "StreamSpec", "stable_int"]


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
    corruption: str | dict[str, Any] | None = None  # static: a name or an albumentations spec
    schedule: dict[str, Any] | str | None = None  # schedule shifts: the spec for make_schedule
    schedule_kind: str = "static"
    world: dict[str, Any] = field(default_factory=dict)  # world shifts: overrides of the world
    scaling: str = "relative"  # how spatial constants follow the frame size (sim.corrupt)
