"""Closed-loop drives: perception's label maps steer the car, and the drive is scored.

:class:`ClosedLoop` runs ``B`` drives (one world per seed) that step together, so a method that
needs a batch gets one at every step without waiting for future frames::

    loop = ClosedLoop(config, seeds=[0, 1, 2, 3], corruption="fog_depth", severity=3)
    while not loop.done:
        images = loop.observe()          # (B, H, W, 3) uint8: the corrupted camera frames
        labels = my_perception(images)   # (B, H, W) uint8 trainIds
        loop.act(labels)                 # the controller drives each car one tick
    results = loop.results()

Each step a drive's frame is corrupted (its own seeded generator; camera-fixed defects stay in
place), the caller predicts labels for the whole batch, and each drive's
:class:`~sim.control.controller.LaneKeepingController` turns its label map into
``(steer, throttle)``. Ground truth never reaches the caller except through
:meth:`ClosedLoop.ground_truth` (the oracle's labels).

**Failures and interventions.** A failure is a collision, leaving the road (both as the world
reports them) or a *stall*: standing still for ``stall_s`` seconds while nothing stands in the
ego's way (the world's truth: no vehicle in its lane within ``CLEAR_GAP`` metres and no person
on the carriageway that near; waiting for a crossing pedestrian is not a stall). On a failure the
world's autopilot takes over for ``takeover_s`` seconds and then hands back to the controller,
which starts over in its lane. Every failure is one intervention, so failures per km and
interventions per km are the same number.

**What is scored.** Each drive is scored over its first ``distance_m`` metres of road; a drive
that has covered them keeps driving (its frames stay in the batch) but nothing more is scored.
The loop ends when every drive has covered the distance, or after ``max_steps`` steps. Per
drive: the failures (kind, step, metres from the start), the distance to the first failure,
the lane-offset RMS and the minimum time to collision over the steps the controller drove, a
per-step trace (distance, offset, speed, who drove, events) and a frame strip around the first
failure (clean | corrupted | predicted | ground truth at ``STRIP`` frames from it).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.control.controller import LaneKeepingController
from sim.corruptions.catalogue import check_severity, corrupt_frame, corruption_info
from sim.world.config import WorldConfig
from sim.world.traffic import EGO_LENGTH
from sim.world.world import Frame, World

DISTANCE_M = 400.0
TAKEOVER_S = 3.0
STALL_S = 3.0
STALL_SPEED = 0.5  # m/s: slower than this counts as standing
CLEAR_GAP = 15.0  # m: nothing nearer in the ego's way (the world's truth) means the road is clear
MAX_STEPS_FACTOR = 4.0  # max_steps: this many times the steps the distance takes at the limit
STRIP = (-20, -10, -5, 0)  # frames relative to the first failure's frame
#: Event codes in a drive's trace.
NO_EVENT, COLLISION, OFF_ROAD, STALL = 0, 1, 2, 3
FAILURE_KINDS = {COLLISION: "collision", OFF_ROAD: "off_road", STALL: "stall"}


@dataclass(frozen=True)
class Failure:
    kind: str  # "collision", "off_road" or "stall"
    step: int  # the step (frame index) at which it was seen
    distance_m: float  # metres of road from the drive's start


@dataclass
class DriveResult:
    """One drive's score; ``trace`` holds per-step arrays, ``strip`` the first failure's
    frames (``None`` without a failure)."""

    seed: int
    distance_m: float  # scored metres of road (``distance_m`` unless the step cap came first)
    steps: int  # steps taken while scored
    controlled_steps: int  # of those, steps the controller drove (not the autopilot)
    failures: list[Failure]
    offset_rms: float  # m from the lane's centre, over controlled scored steps (nan: none)
    min_ttc: float  # s, over controlled scored steps (inf: never closing on anything)
    trace: dict[str, np.ndarray] = field(repr=False)
    strip: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def first_failure_m(self) -> float | None:
        """Metres driven until the first failure (None: no failure)."""
        return self.failures[0].distance_m if self.failures else None

    def count(self, kind: str) -> int:
        return sum(f.kind == kind for f in self.failures)

    @property
    def interventions_per_km(self) -> float:
        return 1000.0 * len(self.failures) / self.distance_m if self.distance_m > 0 else math.nan

    def row(self) -> dict[str, Any]:
        """The drive as one row of a results store's ``drives`` table (``reports``): counts by
        kind, ``first_failure_m`` None without a failure, ``min_ttc`` None when infinite."""
        return {
            "seed": self.seed,
            "distance_m": self.distance_m,
            "steps": self.steps,
            "controlled_steps": self.controlled_steps,
            "interventions": len(self.failures),
            "collisions": self.count("collision"),
            "off_road": self.count("off_road"),
            "stalls": self.count("stall"),
            "first_failure_m": self.first_failure_m,
            "offset_rms": None if math.isnan(self.offset_rms) else self.offset_rms,
            "min_ttc": self.min_ttc if math.isfinite(self.min_ttc) else None,
            "failures": [[f.kind, f.step, f.distance_m] for f in self.failures],
        }


class _Drive:
    """One car of the loop: its world, controller, corruption state and score so far."""

    def __init__(self, world: World, seed: int, rng: np.random.Generator, pattern_seed: int):
        self.world, self.seed, self.rng, self.pattern_seed = world, seed, rng, pattern_seed
        self.controller = LaneKeepingController.for_world(world)
        self.frame: Frame = world.step()
        self.start_s = world.traffic.s
        self.observed: np.ndarray | None = None
        self.previous: np.ndarray | None = None
        self.takeover = 0  # steps the autopilot still drives
        self.standing = 0  # consecutive controlled steps standing with the road clear
        self.failures: list[Failure] = []
        self.steps = self.controlled = 0
        self.sq_offset = 0.0
        self.min_ttc = math.inf
        self.trace: dict[str, list] = {
            k: [] for k in ("distance", "offset", "speed", "auto", "event")
        }
        self.buffer: deque[tuple[np.ndarray, ...]] = deque(maxlen=1 - min(STRIP))
        self.strip_frame: int | None = None  # frame index of the first failure, until captured
        self.strip: dict[str, np.ndarray] | None = None

    @property
    def distance(self) -> float:
        return self.world.traffic.s - self.start_s


class ClosedLoop:
    """``B`` closed-loop drives stepping together (see the module's docstring).

    ``config``: the world of every drive; ``seeds``: one world seed per drive; ``corruption``
    and ``severity``: the shift applied to every frame (None: clean); ``shift_seed``: seeds the
    corruption's generators (drive ``b`` draws from ``SeedSequence([shift_seed, b])``).
    """

    def __init__(
        self,
        config: WorldConfig,
        seeds: Sequence[int],
        corruption: str | None = None,
        severity: float = 0.0,
        shift_seed: int = 0,
        distance_m: float = DISTANCE_M,
        takeover_s: float = TAKEOVER_S,
        stall_s: float = STALL_S,
        max_steps: int | None = None,
    ) -> None:
        if not isinstance(config, WorldConfig):
            raise TypeError(f"config must be a WorldConfig, got {type(config).__name__}")
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("seeds must name at least one drive")
        if corruption is not None:
            corruption_info(corruption)  # unknown names raise, listing close matches
            severity = check_severity(severity)
        for name, value in (("distance_m", distance_m), ("takeover_s", takeover_s),
                            ("stall_s", stall_s)):  # fmt: skip
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        self.config, self.corruption, self.severity = config, corruption, float(severity)
        self.distance_m = float(distance_m)
        self.takeover_steps = max(1, round(takeover_s / config.dt))
        self.stall_steps = max(1, round(stall_s / config.dt))
        self.drives: list[_Drive] = []
        for b, seed in enumerate(seeds):
            seq = np.random.SeedSequence([int(shift_seed), b])
            rng = np.random.default_rng(seq)
            pattern_seed = int(rng.integers(2**31 - 1))  # one camera per drive: defects stay put
            self.drives.append(_Drive(World(config, seed), seed, rng, pattern_seed))
        if max_steps is None:
            slowest = min(d.controller.speed_limit for d in self.drives)
            max_steps = math.ceil(MAX_STEPS_FACTOR * self.distance_m / slowest / config.dt)
        self.max_steps = int(max_steps)
        self.step = 0

    @property
    def batch_size(self) -> int:
        return len(self.drives)

    @property
    def done(self) -> bool:
        return self.step >= self.max_steps or all(
            d.distance >= self.distance_m for d in self.drives
        )

    def observe(self) -> np.ndarray:
        """The drives' current camera frames after the shift: uint8 (B, H, W, 3)."""
        out = np.empty((len(self.drives), *self.drives[0].frame.image.shape), np.uint8)
        for b, d in enumerate(self.drives):
            if d.observed is None:
                image = d.frame.image
                if self.corruption is not None and self.severity > 0:
                    image, _, _ = corrupt_frame(
                        image, None, d.frame.depth, self.corruption, self.severity, d.rng,
                        previous=d.previous, pattern_seed=d.pattern_seed,
                    )  # fmt: skip
                d.observed = image
            out[b] = d.observed
        return out

    def ground_truth(self) -> np.ndarray:
        """The drives' current ground-truth label maps: uint8 (B, H, W) (the oracle's input)."""
        return np.stack([d.frame.semantic for d in self.drives])

    def act(self, labels: np.ndarray) -> None:
        """Drive every car one tick on its label map (uint8 trainIds, (B, H, W))."""
        labels = np.asarray(labels)
        shape = (len(self.drives), *self.drives[0].frame.semantic.shape)
        if labels.shape != shape or labels.dtype != np.uint8:
            raise ValueError(
                f"labels must be uint8 trainIds of shape {shape}, got {labels.dtype} {labels.shape}"
            )
        if self.drives[0].observed is None:
            self.observe()  # the corrupted frames are part of the record even if unused
        for d, lab in zip(self.drives, labels, strict=True):
            self._act_one(d, lab)
        self.step += 1

    def _act_one(self, d: _Drive, labels: np.ndarray) -> None:
        frame, world = d.frame, d.world
        tr = world.traffic
        if d.strip is None:
            d.buffer.append((frame.index, frame.image, d.observed, labels.copy(), frame.semantic))
            if d.strip_frame is not None and frame.index >= d.strip_frame:
                d.strip = _strip(d.buffer, d.strip_frame)
        scored = d.distance < self.distance_m
        control = None
        if d.takeover > 0:
            d.takeover -= 1
            if d.takeover == 0:
                d.controller.reset()  # handed back: it starts over, in its lane
        else:
            control = d.controller.act(labels, tr.v)
        d.previous, d.observed = d.observed, None
        d.frame = world.step(control)
        event = NO_EVENT
        if control is not None:
            ev = world.events
            clear = tr.ego_leader()[0] > CLEAR_GAP and not _person_on_road_ahead(world)
            d.standing = d.standing + 1 if (tr.v < STALL_SPEED and clear) else 0
            if ev["collision"]:
                event = COLLISION
            elif ev["off_road"]:
                event = OFF_ROAD
            elif d.standing >= self.stall_steps:
                event = STALL
        offset = tr.u - tr.ego_lane
        if scored:
            d.steps += 1
            if control is not None:
                d.controlled += 1
                d.sq_offset += offset * offset
                d.min_ttc = min(d.min_ttc, tr.time_to_collision())
            if event != NO_EVENT:
                d.failures.append(Failure(FAILURE_KINDS[event], d.frame.index, d.distance))
                if d.strip_frame is None:
                    d.strip_frame = d.frame.index
        if event != NO_EVENT:
            d.takeover = self.takeover_steps
            d.standing = 0
        t = d.trace
        t["distance"].append(d.distance)
        t["offset"].append(offset)
        t["speed"].append(tr.v)
        t["auto"].append(control is None)
        t["event"].append(event if scored else NO_EVENT)

    def results(self) -> list[DriveResult]:
        """Every drive's score so far (call when :attr:`done`)."""
        out = []
        for d in self.drives:
            strip = d.strip
            if strip is None and d.strip_frame is not None:  # the loop ended at the failure
                strip = _strip(d.buffer, d.strip_frame)
            trace = {
                "distance": np.asarray(d.trace["distance"], np.float32),
                "offset": np.asarray(d.trace["offset"], np.float32),
                "speed": np.asarray(d.trace["speed"], np.float32),
                "auto": np.asarray(d.trace["auto"], bool),
                "event": np.asarray(d.trace["event"], np.uint8),
            }
            out.append(
                DriveResult(
                    seed=d.seed,
                    distance_m=min(d.distance, self.distance_m),
                    steps=d.steps,
                    controlled_steps=d.controlled,
                    failures=list(d.failures),
                    offset_rms=math.sqrt(d.sq_offset / d.controlled) if d.controlled else math.nan,
                    min_ttc=d.min_ttc,
                    trace=trace,
                    strip=strip,
                )
            )
        return out


def _person_on_road_ahead(world: World) -> bool:
    """A person on the carriageway within ``CLEAR_GAP`` ahead (the world's truth): waiting
    until someone crossing has left the road is caution, not a stall, even once they have
    left the ego's lane."""
    tr = world.traffic
    peds = tr.peds
    if not len(peds):
        return False
    ahead = peds["s"] - tr.s
    on_road = np.abs(peds["u"]) < world.town.layout.road_half
    return bool(np.any(on_road & (ahead > 0) & (ahead < CLEAR_GAP + 0.5 * EGO_LENGTH)))


def _strip(buffer: deque, failure_frame: int) -> dict[str, np.ndarray]:
    """The frames of ``STRIP`` around ``failure_frame`` that the buffer still holds."""
    by_index = {entry[0]: entry for entry in buffer}
    picked = [by_index[failure_frame + k] for k in STRIP if failure_frame + k in by_index]
    return {
        "frame": np.array([p[0] for p in picked], np.int64),
        "offset": np.array([p[0] - failure_frame for p in picked], np.int64),
        "clean": np.stack([p[1] for p in picked]),
        "corrupted": np.stack([p[2] for p in picked]),
        "predicted": np.stack([p[3] for p in picked]),
        "ground_truth": np.stack([p[4] for p in picked]),
    }
