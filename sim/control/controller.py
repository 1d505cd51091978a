"""A lane-keeping controller driven by perception: label map in, ``(steer, throttle)`` out.

What it knows besides the label map is what a map and the car's own sensors tell it: the
camera's mounting and intrinsics (the world's camera model), where the lane lies across the
road (``RoadPrior``), the speed limit, the car's speed and the yaw rate it commanded. Where the
car stands relative to its lane, and what is in its way, comes from the label map alone.

Each step:

1. **Lane** (``sim.control.road.LaneTracker``): a Kalman filter moves the lane's centre line by
   the car's own motion and corrects it with the road edges seen in the label map.
2. **Steering: pure pursuit** (Coulter, CMU-RI-TR-92-01, 1992). The goal is the lane's centre
   ``L = max(LOOKAHEAD_MIN, LOOKAHEAD_TIME * v)`` metres ahead, at lateral ``y``; the arc
   through it has curvature ``kappa = 2 y / (L^2 + y^2)``, and the car turns at yaw rate
   ``v kappa``. The world's ego turns at ``STEER_YAW_RATE * steer``
   (``sim.world.traffic``), so ``steer = v kappa / STEER_YAW_RATE``, clipped to [-1, 1].
3. **Speed: the Intelligent Driver Model** (Treiber, Hennecke & Helbing, Phys. Rev. E 62,
   2000), the law the world's traffic follows: ``a = a_max (1 - (v / v0)^4 - (s* / s)^2)``
   with ``s* = s0 + v T + v dv / (2 sqrt(a_max b))``, ``s`` the gap to the nearest vehicle or
   person in the path (``sim.control.obstacles``) and ``dv`` the speed at which it closes
   (filtered from the gap's change for vehicles; people count as standing still). A vehicle
   is in the path within ``VEHICLE_HALF_WIDTH`` of the lane's centre line; a person within
   ``PERSON_HALF_WIDTH``, or, standing on the road, within the distance a person walking at
   ``WALK_SPEED`` covers before the car arrives (a pedestrian crossing towards the lane is
   braked for before stepping into it). Only things at least ``MIN_HEIGHT`` tall count (a
   marking mislabelled as a car lies flat). ``v0`` is
   the speed limit, lowered where the lane bends so lateral acceleration stays under
   ``MAX_LATERAL_ACCEL``. The acceleration becomes throttle through the world's
   ``THROTTLE_ACCEL`` and ``BRAKE_DECEL``.
4. **Fail safe**: when no road edge has been seen for ``LOST_AFTER_S`` seconds, or the
   tracker's uncertainty about the lane's offset exceeds ``LOST_SIGMA``, the lane is lost: the
   car brakes at ``LOST_BRAKE`` to a stop, wheel straight, and waits until it sees its lane
   again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.control.obstacles import PEOPLE, VEHICLE_CONTACT_HEIGHT, VEHICLES, GapTracker, PathScanner
from sim.control.road import LaneEstimate, LaneTracker, RoadPrior
from sim.render.camera import Camera
from sim.world.config import WorldConfig
from sim.world.traffic import (
    BRAKE_DECEL,
    EGO_LENGTH,
    EGO_WIDTH,
    STEER_YAW_RATE,
    THROTTLE_ACCEL,
)

LOOKAHEAD_MIN, LOOKAHEAD_TIME = 6.0, 0.8  # m, s
MAX_LATERAL_ACCEL = 2.0  # m/s^2
# IDM parameters: the world's traffic uses a_max 1.5, b 3, T 1.2, s0 2.5; the ego keeps a
# little more room to people.
IDM_ACCEL, IDM_COMFORT_BRAKE, IDM_HEADWAY = 1.5, 3.0, 1.2  # m/s^2, m/s^2, s
IDM_MIN_GAP_VEHICLE, IDM_MIN_GAP_PERSON = 2.5, 3.0  # m
# Corridors around the lane's centre line in which things count as in the path (m): the ego's
# half-width plus a margin; people get more, as they walk across.
VEHICLE_HALF_WIDTH = 0.5 * EGO_WIDTH + 0.5
PERSON_HALF_WIDTH = 0.5 * EGO_WIDTH + 1.3
WALK_SPEED = 1.6  # m/s: the world's pedestrians cross at up to this speed
ARRIVAL_MIN_SPEED = 2.0  # m/s: arrival times are reckoned at no less than this speed
# m: what is in the path must stand at least this tall (in unbroken pixels of its class above
# where it meets the ground): a flat patch of road mislabelled as a car is no obstacle
MIN_HEIGHT = 0.5
LOST_SIGMA = 0.75  # m: the lane is lost beyond this uncertainty of its offset ...
LOST_AFTER_S = 1.0  # s: ... or after this long without a seen road edge
LOST_BRAKE = 5.0  # m/s^2
STOP_SPEED = 0.3  # m/s: below this a stopped car holds its brake


@dataclass(frozen=True)
class Decision:
    """What the controller saw and decided at one step (for logs, plots and tests)."""

    steer: float
    throttle: float
    lane: LaneEstimate
    vehicle_gap: float  # m from the ego's front to the nearest vehicle in the path (inf: none)
    person_gap: float  # likewise for people
    target_speed: float  # m/s: the speed limit after the curve limit
    lane_lost: bool


class LaneKeepingController:
    """Keeps a lane and brakes for vehicles and people ahead, from label maps.

    ``camera``: the world's camera (``sim.render.camera.Camera``); ``prior``: where the lane
    lies across the road; ``speed_limit`` in m/s; ``dt``: seconds between calls.
    """

    def __init__(self, camera: Camera, prior: RoadPrior, speed_limit: float, dt: float) -> None:
        if not (math.isfinite(speed_limit) and speed_limit > 0):
            raise ValueError(f"speed_limit must be a positive number of m/s, got {speed_limit!r}")
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number of seconds, got {dt!r}")
        self.camera, self.prior = camera, prior
        self.speed_limit, self.dt = float(speed_limit), float(dt)
        self.tracker = LaneTracker(camera, prior)
        self.scanner = PathScanner(camera)
        self.vehicle_gap = GapTracker()
        self.last: Decision | None = None
        self._unseen = 0.0  # seconds since a road edge was last seen

    @classmethod
    def for_world(cls, world: object) -> LaneKeepingController:
        """A controller for the ego of a ``sim.World``: its camera, its town's road with the
        lane it starts in, its cruise speed and tick."""
        config: WorldConfig = world.config  # type: ignore[attr-defined]
        traffic = world.traffic  # type: ignore[attr-defined]
        prior = RoadPrior.of_town(world.town.layout, traffic.ego_lane)  # type: ignore[attr-defined]
        return cls(Camera(config), prior, traffic.cruise, config.dt)

    def reset(self) -> None:
        """Start over: the car stands in its lane (as at a drive's start or a hand-back)."""
        self.tracker.reset()
        self.vehicle_gap.reset()
        self.last = None
        self._unseen = 0.0

    def act(self, labels: np.ndarray, speed: float) -> tuple[float, float]:
        """``(steer, throttle)`` for this frame's label map (uint8 trainIds, (H, W)) at
        ``speed`` m/s (odometry)."""
        labels = np.asarray(labels)
        if labels.dtype != np.uint8:
            raise TypeError(f"labels must be uint8 trainIds, got dtype {labels.dtype}")
        v = max(0.0, float(speed))
        if self.last is not None:
            self.tracker.predict(v, self.last.steer * STEER_YAW_RATE, self.dt)
        lane = self.tracker.update(labels)
        self._unseen = 0.0 if lane.seen else self._unseen + self.dt
        lost = lane.sigma > LOST_SIGMA or self._unseen >= LOST_AFTER_S

        # ----- steering: pure pursuit on the lane's centre line -----
        look = max(LOOKAHEAD_MIN, LOOKAHEAD_TIME * v)
        y = float(lane.at(look))
        kappa = 2.0 * y / (look * look + y * y)
        steer = float(np.clip(v * kappa / STEER_YAW_RATE, -1.0, 1.0))

        # ----- speed: IDM towards the limit, behind what is in the path -----
        front = 0.5 * EGO_LENGTH  # the camera sits at the ego's centre
        d, x, _ = self.scanner.contacts(labels, VEHICLES, VEHICLE_CONTACT_HEIGHT, MIN_HEIGHT)
        to_vehicle = _nearest(d, np.abs(x - lane.at(d)) < VEHICLE_HALF_WIDTH)
        d, x, on_road = self.scanner.contacts(labels, PEOPLE, 0.0, MIN_HEIGHT)
        aside = np.abs(x - lane.at(d))
        reach = WALK_SPEED * d / max(v, ARRIVAL_MIN_SPEED)
        to_person = _nearest(
            d, (aside < PERSON_HALF_WIDTH) | (on_road & (aside < 0.5 * EGO_WIDTH + reach))
        )
        vehicle_gap, rate = self.vehicle_gap.update(to_vehicle - front, self.dt, 0.0)
        person_gap = to_person - front
        bend = abs(lane.curvature)
        v0 = self.speed_limit
        if bend > 1e-6:
            v0 = min(v0, math.sqrt(MAX_LATERAL_ACCEL / bend))
        accel = _idm(v, v0, vehicle_gap, -rate, IDM_MIN_GAP_VEHICLE)
        accel = min(accel, _idm(v, v0, person_gap, v, IDM_MIN_GAP_PERSON))
        if lost:
            accel = -LOST_BRAKE
        if v < STOP_SPEED and accel < 0.1:
            accel = -BRAKE_DECEL  # standing: hold the brake rather than creep
        throttle = accel / THROTTLE_ACCEL if accel >= 0 else accel / BRAKE_DECEL
        throttle = float(np.clip(throttle, -1.0, 1.0))
        if lost:
            steer = 0.0
        self.last = Decision(steer, throttle, lane, vehicle_gap, person_gap, v0, lost)
        return steer, throttle


def _nearest(d: np.ndarray, inside: np.ndarray) -> float:
    return float(d[inside].min()) if inside.any() else math.inf


def _idm(v: float, v0: float, gap: float, closing: float, min_gap: float) -> float:
    """IDM acceleration (m/s^2) at speed ``v`` towards ``v0``, ``gap`` metres behind something
    that the ego closes on at ``closing`` m/s (``gap`` inf: free road)."""
    free = 1.0 - (v / max(v0, 0.1)) ** 4
    if not math.isfinite(gap):
        return IDM_ACCEL * free
    s_star = (
        min_gap + v * IDM_HEADWAY + v * closing / (2.0 * math.sqrt(IDM_ACCEL * IDM_COMFORT_BRAKE))
    )
    s_star = max(s_star, min_gap)
    return IDM_ACCEL * (free - (s_star / max(gap, 0.1)) ** 2)
