"""Moving things: the ego vehicle, traffic in lanes both ways, and pedestrians.

Traffic follows a simple car-following law (the Intelligent Driver Model) per lane, so the
stream is a smooth video rather than independent samples. Vehicles leaving the window around
the ego are re-spawned far ahead, always from the world's own generator.
"""

from __future__ import annotations

import math

import numpy as np

from sim.world.objects import (
    PERSON_FOOTPRINT,
    PERSON_HEIGHT,
    ObjectKind,
    concat_tables,
    object_table,
    take_rows,
)
from sim.world.sampling import car_color, choose, jitter
from sim.world.town_map import TownMap

DENSITY = {"none": 0.0, "low": 0.5, "medium": 1.1, "high": 2.2}  # vehicles / 100 m / lane
PED_FACTOR = {"none": 0.0, "low": 0.4, "medium": 1.0, "high": 1.8}
EGO_LENGTH, EGO_WIDTH = 4.5, 1.8
# The ego under external control (``control=(steer, throttle)``): full steer turns at this yaw
# rate whatever the speed; throttle 1 accelerates at THROTTLE_ACCEL, throttle -1 brakes at
# BRAKE_DECEL; the speed stays in [0, MAX_SPEED].
STEER_YAW_RATE = 0.35  # rad/s at steer = 1
THROTTLE_ACCEL, BRAKE_DECEL, MAX_SPEED = 3.0, 8.0, 50.0  # m/s^2, m/s^2, m/s
# Pedestrians count as a collision within these margins of the ego's footprint (m).
PERSON_MARGIN = 0.25
BEHIND, AHEAD = 60.0, 280.0
# What a pedestrian is doing (people only; the object table does not carry it).
WALKING, CROSSING, WAITING = 1, 2, 3
_SHIRTS = (
    (180, 40, 40),
    (40, 60, 140),
    (200, 200, 190),
    (40, 40, 40),
    (60, 130, 70),
    (220, 170, 40),
    (130, 90, 150),
)
_BODY_COLORS = ((200, 200, 195), (180, 40, 40), (40, 80, 150), (230, 200, 40), (120, 120, 125))


def _dims(rng: np.random.Generator, kind: ObjectKind) -> tuple[float, float, float]:
    """Length, width and height (m) of a new vehicle of ``kind``."""
    if kind == ObjectKind.CAR:
        return rng.uniform(3.9, 4.9), rng.uniform(1.7, 1.95), rng.uniform(1.35, 1.65)
    if kind == ObjectKind.TRUCK:
        return rng.uniform(7.0, 11.0), 2.45, rng.uniform(3.0, 3.9)
    if kind == ObjectKind.BUS:
        return rng.uniform(11.0, 13.0), 2.5, rng.uniform(3.0, 3.3)
    if kind == ObjectKind.TRAIN:
        return rng.uniform(22.0, 30.0), 2.6, 3.4
    if kind == ObjectKind.MOTORCYCLE:  # heights include the rider
        return 2.1, 0.8, 1.75
    return 1.8, 0.6, 1.75


class Traffic:
    """State of every moving agent; ``objects()`` exports them as rows of the object table."""

    def __init__(self, town: TownMap, level: str, cruise: float, rng: np.random.Generator) -> None:
        self.town, self.rng, self.level = town, rng, level
        st, lay = town.style, town.layout
        self.lanes = [(u, 1.0) for u in lay.lanes_right] + [(u, -1.0) for u in lay.lanes_left]
        self.bike_lanes: list[tuple[float, float]] = []
        if lay.bike_u is not None:
            self.bike_lanes = [(lay.bike_u, 1.0), (-lay.bike_u, -1.0)]
        self.lane_u = np.array([u for u, _ in self.lanes + self.bike_lanes])
        self.cruise = cruise
        # ego
        self.ego_lane = float(lay.lanes_right[int(rng.integers(len(lay.lanes_right)))])
        self.s, self.u, self.psi = 0.0, self.ego_lane, 0.0
        self.v = cruise * float(rng.uniform(0.85, 1.0))
        self.wobble_phase = float(rng.uniform(0, 2 * math.pi))
        self.x = self.y = self.yaw = 0.0
        # vehicles: rows of the object table plus speed and desired speed
        self.veh = object_table()
        self.vel = np.zeros(0)
        self.v0 = np.zeros(0)
        self.deficit: list[tuple[float, float]] = []  # lanes owed a re-spawned vehicle
        density = DENSITY[level]
        for lane_u, direction in self.lanes:
            s = -BEHIND + float(rng.exponential(100.0 / max(density, 1e-6)))
            while density > 0 and s < AHEAD:
                if not (direction > 0 and abs(lane_u - self.ego_lane) < 0.1 and -12 < s < 30):
                    self._add_vehicle(s, lane_u, direction)
                s += max(14.0, float(rng.exponential(100.0 / density)))
        riders = st.riders * PED_FACTOR[level]
        for lane_u, direction in self.bike_lanes:
            s = -BEHIND + float(rng.exponential(100.0 / max(riders, 1e-6)))
            while riders > 0 and s < AHEAD:
                self._add_vehicle(s, lane_u, direction, bike=True)
                s += max(8.0, float(rng.exponential(100.0 / riders)))
        # pedestrians: rows of the object table plus walking velocity (ds, du) and role
        self.peds = object_table()
        self.ped_vel = np.zeros((0, 2))
        self.ped_role = np.zeros(0, np.int64)
        self.ped_rate = st.pedestrians * PED_FACTOR[level]
        self.crossed: set[int] = set()
        for _ in range(int(rng.poisson(self.ped_rate * (AHEAD + 20) / 100.0))):
            self._add_pedestrian(float(rng.uniform(-20.0, AHEAD)))

    # ----- spawning -----
    def _add_vehicle(self, s: float, lane_u: float, direction: float, bike: bool = False) -> None:
        rng, st = self.rng, self.town.style
        kind = ObjectKind.BICYCLE if bike else choose(rng, st.vehicle_mix)
        inner = abs(abs(lane_u) - self.town.layout.lanes_right[0]) < 0.1
        if kind == ObjectKind.TRAIN and not inner:
            kind = ObjectKind.BUS
        length, width, height = _dims(rng, kind)
        if kind in (ObjectKind.CAR, ObjectKind.MOTORCYCLE, ObjectKind.BICYCLE):
            rgb = car_color(rng)
        else:
            rgb = jitter(rng, _BODY_COLORS[int(rng.integers(5))], 0.1)
        if bike:
            u = lane_u + float(rng.normal(0, 0.1))
        else:
            u = lane_u + (
                0.9 * direction if kind == ObjectKind.BICYCLE else float(rng.normal(0, 0.12))
            )
        row = object_table(1)
        row["s"], row["u"], row["kind"] = s, u, kind
        row["length"], row["width"], row["height"] = length, width, height
        row["color"] = rgb
        row["seed"] = rng.uniform(0, 1000)
        row["direction"] = direction
        v0 = self.cruise * float(rng.uniform(0.8, 1.12))
        if kind in (ObjectKind.TRUCK, ObjectKind.BUS, ObjectKind.TRAIN):
            v0 *= 0.85
        if kind == ObjectKind.BICYCLE:
            v0 = float(rng.uniform(4.0, 6.5))
        self.veh = concat_tables(self.veh, row)
        self.vel = np.append(self.vel, v0 * float(rng.uniform(0.9, 1.0)))
        self.v0 = np.append(self.v0, v0)

    def _add_pedestrian(
        self, s: float, crossing_at: float | None = None, waiting_at: float | None = None
    ) -> None:
        rng, st, lay = self.rng, self.town.style, self.town.layout
        side = 1.0 if rng.random() < 0.5 else -1.0
        if crossing_at is not None:
            s = crossing_at + float(rng.uniform(-1.0, 1.0))
            u = side * (lay.road_half + 0.8)
            vel = (0.0, -side * float(rng.uniform(1.0, 1.6)))
            role = CROSSING
        elif waiting_at is not None:  # standing at the kerb by a crossing
            s = waiting_at + float(rng.uniform(-2.0, 2.0))
            u = side * (lay.road_half + st.verge + float(rng.uniform(0.4, 1.4)))
            vel = (0.0, 0.0)
            role = WAITING
        else:
            if st.sidewalk > 0:
                u = side * (lay.road_half + st.verge + float(rng.uniform(0.5, st.sidewalk - 0.4)))
            else:
                u = side * (lay.road_half + float(rng.uniform(0.8, 2.0)))
            vel = (float(rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.6)), 0.0)
            role = WALKING
        shirt = jitter(rng, _SHIRTS[int(rng.integers(7))], 0.15)
        row = object_table(1)
        row["s"], row["u"], row["kind"] = s, u, ObjectKind.PERSON
        row["length"] = row["width"] = PERSON_FOOTPRINT
        row["height"] = PERSON_HEIGHT
        row["color"] = shirt
        row["seed"] = rng.uniform(0, 1000)
        row["phase"] = rng.uniform(0, 2 * math.pi)
        self.peds = concat_tables(self.peds, row)
        self.ped_vel = np.vstack([self.ped_vel, vel])
        self.ped_role = np.append(self.ped_role, role)

    # ----- dynamics -----
    def step(self, dt: float, control: tuple[float, float] | None) -> dict[str, bool]:
        """Advance everything by ``dt`` seconds; returns collision / off-road flags."""
        rng, town = self.rng, self.town
        # ego
        lead_gap, lead_v = self.ego_leader()
        if control is None:
            acc = _idm_scalar(self.v, self.cruise, lead_gap, lead_v)
            self.v = max(0.0, self.v + acc * dt)
            ds = self.v * dt
            self.s += ds
            w = 0.07
            self.u = self.ego_lane + 0.22 * math.sin(w * self.s + self.wobble_phase)
            self.psi = 0.22 * w * math.cos(w * self.s + self.wobble_phase)
        else:
            steer, throttle = float(control[0]), float(control[1])
            acc = THROTTLE_ACCEL * throttle if throttle >= 0 else BRAKE_DECEL * throttle
            self.v = float(np.clip(self.v + acc * dt, 0.0, MAX_SPEED))
            k = float(town.curvature(self.s))
            self.psi += (steer * STEER_YAW_RATE - k * self.v) * dt
            ds = self.v * math.cos(self.psi) * dt
            self.s += ds
            self.u += self.v * math.sin(self.psi) * dt
        k_here = float(town.curvature(self.s))
        self.yaw += k_here * ds
        self.x += ds * math.cos(self.yaw)
        self.y += ds * math.sin(self.yaw)
        # vehicles
        if len(self.veh):
            # car following in every lane at once: sort (lane, position along travel), the
            # ego included as a leader for whoever drives behind it
            n = len(self.veh)
            veh = self.veh
            key = np.abs(veh["u"][:, None] - self.lane_u[None, :]).argmin(axis=1)
            key = np.append(key, int(np.abs(self.u - self.lane_u).argmin()))
            key = np.where(np.append(veh["direction"], 1.0) > 0, key, key + 100)
            direction = np.append(veh["direction"], 1.0)
            pos = np.append(veh["s"], self.s) * direction
            length = np.append(veh["length"], EGO_LENGTH)
            vel = np.append(self.vel, self.v)
            order = np.lexsort((pos, key))
            same = key[order][1:] == key[order][:-1]
            gap_sorted = np.diff(pos[order]) - 0.5 * (length[order][1:] + length[order][:-1])
            gaps = np.full(n + 1, np.inf)
            lead = np.full(n + 1, np.inf)
            gaps[order[:-1]] = np.where(same, gap_sorted, np.inf)
            lead[order[:-1]] = np.where(same, vel[order][1:], np.inf)
            acc = _idm(self.vel, self.v0, gaps[:n], lead[:n])
            self.vel = np.maximum(0.0, self.vel + acc * dt)
            self.veh["s"] += self.veh["direction"] * self.vel * dt
            gone = (self.veh["s"] < self.s - BEHIND) | (self.veh["s"] > self.s + AHEAD + 40)
            for i in np.nonzero(gone)[0][::-1]:
                self.deficit.append(self._lane_of(i))
                self._remove_vehicle(i)
        # vehicles gone from the window come back far ahead as soon as there is room
        pending, self.deficit = self.deficit, []
        for lane_u, direction in pending:
            if not self._respawn(lane_u, direction):
                self.deficit.append((lane_u, direction))
        # pedestrians
        if len(self.peds):
            self.peds["s"] += self.ped_vel[:, 0] * dt
            self.peds["u"] += self.ped_vel[:, 1] * dt
            self.peds["phase"] += 4.0 * dt * (np.abs(self.ped_vel).sum(1) + 0.1)
            lay = town.layout
            done = (self.peds["s"] < self.s - 20) | (
                (self.ped_vel[:, 1] != 0)
                & (np.abs(self.peds["u"]) > lay.road_half + 1.0)
                & (np.sign(self.peds["u"]) == np.sign(self.ped_vel[:, 1]))
            )
            keep = ~done
            # only sidewalk walkers are replaced
            n_new = int((done & (self.ped_role == WALKING)).sum())
            self.peds, self.ped_vel = take_rows(self.peds, keep), self.ped_vel[keep]
            self.ped_role = self.ped_role[keep]
            for _ in range(n_new):
                if self.ped_rate > 0:
                    self._add_pedestrian(self.s + float(rng.uniform(120.0, AHEAD)))
        if self.ped_rate > 0 and len(town.inter_start):
            for j in np.nonzero(
                (town.inter_start > self.s + 35) & (town.inter_start < self.s + 140)
            )[0]:
                key = round(float(town.inter_start[j]) * 10)
                if key in self.crossed:
                    continue
                self.crossed.add(key)
                for _ in range(int(rng.integers(1, 5))):
                    self._add_pedestrian(0.0, crossing_at=float(town.inter_start[j]) - 3.0)
                if town.style.sidewalk:
                    for _ in range(int(rng.integers(1, 4))):
                        self._add_pedestrian(0.0, waiting_at=float(town.inter_start[j]) - 3.0)
        return self._events()

    def _lane_of(self, i: int) -> tuple[float, float]:
        direction = float(self.veh["direction"][i])
        lanes = [u for u, d in self.lanes + self.bike_lanes if d == direction]
        lane_u = min(lanes, key=lambda u: abs(u - self.veh["u"][i]))
        return lane_u, direction

    def _remove_vehicle(self, i: int) -> None:
        self.veh = take_rows(self.veh, np.arange(len(self.veh)) != i)
        self.vel = np.delete(self.vel, i)
        self.v0 = np.delete(self.v0, i)

    def _respawn(self, lane_u: float, direction: float) -> bool:
        s = self.s + AHEAD + float(self.rng.uniform(-40.0, 30.0))
        veh = self.veh
        same = (np.abs(veh["u"] - lane_u) < 1.6) & (veh["direction"] == direction)
        if same.any() and np.min(np.abs(veh["s"][same] - s)) < 18.0:
            return False  # no room yet: try again next step
        self._add_vehicle(s, lane_u, direction, bike=(lane_u, direction) in self.bike_lanes)
        return True

    def ego_leader(self) -> tuple[float, float]:
        """Gap (m) to the nearest vehicle or person ahead in the ego's way, as the autopilot
        sees it (people: 1.5 m kept clear), and its speed along the road (inf, inf: none)."""
        gap, lead_v = np.inf, np.inf
        veh, peds = self.veh, self.peds
        if len(veh):
            inl = np.abs(veh["u"] - self.u) < 0.5 * (veh["width"] + EGO_WIDTH) + 0.3
            ahead = inl & (veh["s"] > self.s)
            if ahead.any():
                g = veh["s"][ahead] - self.s - 0.5 * (veh["length"][ahead] + EGO_LENGTH)
                i = int(np.argmin(g))
                gap, lead_v = float(g[i]), float(self.vel[ahead][i] * veh["direction"][ahead][i])
        if len(peds):
            inl = np.abs(peds["u"] - self.u) < 2.2
            ahead = inl & (peds["s"] > self.s)
            if ahead.any():
                g = float(np.min(peds["s"][ahead] - self.s)) - 0.5 * EGO_LENGTH - 1.5
                if g < gap:
                    gap, lead_v = g, 0.0
        return gap, lead_v

    def _events(self) -> dict[str, bool]:
        lay = self.town.layout
        # off the carriageway: beyond the road's edge, or onto a median strip (highway)
        off_road = abs(self.u) > lay.road_half or abs(self.u) < 0.5 * lay.style.median
        collision = False
        veh, peds = self.veh, self.peds
        if len(veh):
            ds = np.abs(veh["s"] - self.s) < 0.5 * (veh["length"] + EGO_LENGTH)
            du = np.abs(veh["u"] - self.u) < 0.5 * (veh["width"] + EGO_WIDTH)
            collision = bool((ds & du).any())
        if len(peds) and not collision:
            ds = np.abs(peds["s"] - self.s) < 0.5 * EGO_LENGTH + PERSON_MARGIN
            du = np.abs(peds["u"] - self.u) < 0.5 * EGO_WIDTH + PERSON_MARGIN
            collision = bool((ds & du).any())
        return {"collision": collision, "off_road": bool(off_road)}

    def time_to_collision(self) -> float:
        """Seconds until the ego's footprint meets the nearest vehicle or person ahead that
        overlaps it laterally, at today's speeds (``inf`` when nothing ahead is being closed
        on). The truth, for scoring a drive; no controller sees it."""
        ttc = math.inf
        veh, peds = self.veh, self.peds
        if len(veh):
            overlap = np.abs(veh["u"] - self.u) < 0.5 * (veh["width"] + EGO_WIDTH)
            gap = veh["s"] - self.s - 0.5 * (veh["length"] + EGO_LENGTH)
            closing = self.v - self.vel * veh["direction"]
            hit = overlap & (veh["s"] > self.s) & (closing > 0)
            if hit.any():
                ttc = float(np.min(np.maximum(gap[hit], 0.0) / closing[hit]))
        if len(peds) and self.v > 0:
            overlap = np.abs(peds["u"] - self.u) < 0.5 * EGO_WIDTH + PERSON_MARGIN
            gap = peds["s"] - self.s - 0.5 * EGO_LENGTH - PERSON_MARGIN
            hit = overlap & (peds["s"] > self.s)
            if hit.any():
                ttc = min(ttc, float(np.min(np.maximum(gap[hit], 0.0)) / self.v))
        return ttc

    def objects(self) -> np.ndarray:
        """Vehicles then people, as rows of the object table (``sim.world.objects``)."""
        return concat_tables(self.veh, self.peds) if len(self.peds) else self.veh


def _idm(
    v: np.ndarray | float,
    v0: np.ndarray | float,
    gap: np.ndarray | float,
    lead_v: np.ndarray | float,
) -> np.ndarray | float:
    """Intelligent Driver Model acceleration (m/s^2)."""
    a_max, b_comf, t_head, s0 = 1.5, 3.0, 1.2, 2.5
    v = np.asarray(v, dtype=float)
    lv = np.where(np.isfinite(lead_v), lead_v, v)
    s_star = s0 + v * t_head + v * (v - lv) / (2 * math.sqrt(a_max * b_comf))
    gap = np.maximum(np.asarray(gap, dtype=float), 0.1)
    free = 1 - (v / np.maximum(v0, 0.1)) ** 4
    inter = np.where(np.isfinite(gap), (np.maximum(s_star, s0) / gap) ** 2, 0.0)
    out = np.clip(a_max * (free - inter), -9.0, a_max)
    return out if out.ndim else float(out)


def _idm_scalar(v: float, v0: float, gap: float, lead_v: float) -> float:
    """``_idm`` for one vehicle in plain floats (same arithmetic, less overhead)."""
    a_max, b_comf, t_head, s0 = 1.5, 3.0, 1.2, 2.5
    lv = lead_v if math.isfinite(lead_v) else v
    s_star = s0 + v * t_head + v * (v - lv) / (2 * math.sqrt(a_max * b_comf))
    gap = max(gap, 0.1)
    free = 1 - (v / max(v0, 0.1)) ** 4
    inter = (max(s_star, s0) / gap) ** 2 if math.isfinite(gap) else 0.0
    return min(max(a_max * (free - inter), -9.0), a_max)
