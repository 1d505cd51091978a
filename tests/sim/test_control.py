"""The lane-keeping controller: its estimates against the world's truth, and how it drives."""

from __future__ import annotations

import math

import numpy as np
import pytest

import sim
from sim import LaneKeepingController, RoadPrior, World, WorldConfig
from sim.common.classes import CAR, ROAD, SIDEWALK, SKY
from sim.control.controller import MIN_HEIGHT
from sim.control.obstacles import VEHICLES, PathScanner
from sim.control.road import LaneTracker
from sim.world.objects import (
    PERSON_FOOTPRINT,
    PERSON_HEIGHT,
    ObjectKind,
    concat_tables,
    object_table,
)
from sim.world.traffic import EGO_LENGTH, WAITING

SMALL = {"height": 64, "width": 128}


def _placed(town: str, offset: float, heading: float, seed: int = 0, **config) -> World:
    """A world whose ego stands ``offset`` m right of its lane's centre, turned ``heading`` rad
    right of the road, rendered as is."""
    world = World(WorldConfig(town=town, traffic="none", **config), seed)
    world.step()
    tr = world.traffic
    tr.u, tr.psi = tr.ego_lane + offset, heading
    return world


@pytest.mark.parametrize("town", sim.TOWNS)
def test_offset_and_heading_from_one_frame_match_the_true_pose(town: str) -> None:
    for offset, heading in ((0.0, 0.0), (0.6, 0.03), (-0.5, -0.04)):
        world = _placed(town, offset, heading)
        frame = world.render()
        assert frame.pose["heading"] == heading
        assert frame.pose["lane_offset"] == pytest.approx(world.traffic.ego_lane + offset)
        controller = LaneKeepingController.for_world(world)
        estimate = controller.tracker.update(frame.semantic)
        assert estimate.points >= 10
        # Within three of its own standard deviations; on urban's 20 m wide road the edges are
        # seen only far away, elsewhere they pin the lane to a few centimetres.
        error = estimate.offset - offset
        assert abs(error) < max(0.05, 3 * estimate.sigma) and abs(error) < 0.25, (town, error)
        assert estimate.heading == pytest.approx(heading, abs=0.02), (town, heading)
        k_true = world.town.mean_curvature(world.traffic.s, 60.0)  # as the camera renders it
        assert estimate.curvature == pytest.approx(k_true, abs=0.001)


@pytest.mark.parametrize("town", sim.TOWNS)
def test_tracked_estimates_follow_the_true_pose_along_a_drive(town: str) -> None:
    world = World(WorldConfig(town=town, **SMALL), 1)
    controller = LaneKeepingController.for_world(world)
    tr, frame = world.traffic, world.step()
    offset_err, heading_err = [], []
    for _ in range(150):
        frame = world.step(controller.act(frame.semantic, tr.v))
        lane = controller.last.lane
        offset_err.append(lane.offset - (frame.pose["lane_offset"] - tr.ego_lane))
        heading_err.append(lane.heading - frame.pose["heading"])
    # the estimate is of the frame before the step; the car moves ~1 cm sideways per step
    assert np.sqrt(np.mean(np.square(offset_err))) < 0.1
    assert np.sqrt(np.mean(np.square(heading_err))) < 0.01


def test_the_road_prior_follows_the_towns_cross_section() -> None:
    highway = World(WorldConfig(town="highway"), 0)
    prior = RoadPrior.of_town(highway.town.layout, 6.4)
    # the ego's carriageway runs from the median (a painted line along it) to the hard shoulder
    assert prior.left_edge == pytest.approx(1.0 - 0.075) and prior.right_edge == 13.3
    urban = World(WorldConfig(town="urban"), 0)
    prior = RoadPrior.of_town(urban.town.layout, 4.8)
    assert (prior.left_edge, prior.right_edge) == pytest.approx((-10.1, 10.1))
    with pytest.raises(ValueError, match="left_edge < lane < right_edge"):
        RoadPrior(left_edge=-3.0, right_edge=3.0, lane=3.5)


def test_edges_hidden_by_vehicles_or_the_image_border_measure_nothing() -> None:
    world = _placed("rural", 0.0, 0.0, **SMALL)
    tracker = LaneTracker(world.renderer.camera, RoadPrior.of_town(world.town.layout, 1.5))
    labels = np.full((64, 128), SIDEWALK, np.uint8)
    rows = tracker.rows
    labels[rows, 30:90] = ROAD
    anchor = np.full(len(rows), 64)
    d, _, _ = tracker.edge_points(labels, anchor)
    assert len(d) == 2 * len(rows)  # both edges of every measuring row
    labels[rows, 85:90] = 13  # a car on the right edge: that edge is hidden
    labels[rows, 0:40] = ROAD  # the road runs out of the image on the left
    assert len(tracker.edge_points(labels, anchor)[0]) == 0
    # the sky above the ground and an all-sky map measure nothing and raise nothing
    assert len(tracker.edge_points(np.full((64, 128), SKY, np.uint8), anchor)[0]) == 0


def _drive(world: World, steps: int) -> tuple[list[float], dict]:
    controller = LaneKeepingController.for_world(world)
    tr, frame, offsets = world.traffic, world.step(), []
    for _ in range(steps):
        frame = world.step(controller.act(frame.semantic, tr.v))
        offsets.append(tr.u - tr.ego_lane)
        if world.events["collision"] or world.events["off_road"]:
            return offsets, dict(world.events)
    return offsets, {}


@pytest.mark.parametrize("town", ["highway", "rural"])  # the straightest and the most curved
def test_ground_truth_labels_keep_the_car_in_its_lane(town: str) -> None:
    world = World(WorldConfig(town=town, traffic="none", **SMALL), 3)
    offsets, events = _drive(world, 300)
    assert not events
    assert np.sqrt(np.mean(np.square(offsets))) < 0.2 and np.max(np.abs(offsets)) < 0.5
    curvature = [abs(float(world.town.curvature(s))) for s in np.linspace(0, world.traffic.s, 50)]
    if town == "rural":
        assert max(curvature) > 0.002  # the road did bend (radius < 500 m)
    assert world.traffic.s > 300.0  # and the car kept going


@pytest.mark.slow
@pytest.mark.parametrize("town", sim.TOWNS)
def test_the_oracle_drives_every_town_for_1000_steps_without_a_failure(town: str) -> None:
    world = World(WorldConfig(town=town, **SMALL), 0)
    offsets, events = _drive(world, 1000)
    assert len(offsets) == 1000 and not events, (town, events)


def _stand_in_lane(world: World, ahead: float, kind: str) -> None:
    """A person, or a car at walking pace, in the ego's lane ``ahead`` metres away."""
    tr = world.traffic
    row = object_table(1)
    row["s"], row["u"] = tr.s + ahead, tr.ego_lane
    row["color"] = (180, 40, 40)
    if kind == "person":
        row["kind"] = ObjectKind.PERSON
        row["length"] = row["width"] = PERSON_FOOTPRINT
        row["height"] = PERSON_HEIGHT
        tr.peds = concat_tables(tr.peds, row)
        tr.ped_vel = np.vstack([tr.ped_vel, [0.0, 0.0]])
        tr.ped_role = np.append(tr.ped_role, WAITING)
    else:
        row["kind"] = ObjectKind.CAR
        row["length"], row["width"], row["height"] = 4.4, 1.8, 1.5
        row["direction"] = 1.0
        tr.veh = concat_tables(tr.veh, row)
        tr.vel = np.append(tr.vel, 0.0)
        tr.v0 = np.append(tr.v0, 0.0)  # the world's IDM creeps it along at ~0.1 m/s


@pytest.mark.parametrize("kind", ["person", "car"])
def test_it_stops_for_an_obstacle_in_its_lane(kind: str) -> None:
    world = World(WorldConfig(town="suburban", traffic="none", **SMALL), 2)
    frame = world.step()
    _stand_in_lane(world, 70.0, kind)
    controller = LaneKeepingController.for_world(world)
    tr = world.traffic
    for _ in range(200):
        frame = world.step(controller.act(frame.semantic, tr.v))
        assert not world.events["collision"]
    table = tr.peds if kind == "person" else tr.veh
    half = 0.0 if kind == "person" else 2.2
    gap = float(table["s"][-1]) - half - tr.s - 0.5 * EGO_LENGTH
    assert tr.v < 0.5 and 0.5 < gap < 10.0, (tr.v, gap)
    if kind == "person":
        assert controller.last is not None and controller.last.throttle < 0  # holding the brake


def test_the_controller_refuses_bad_input() -> None:
    world = World(WorldConfig(town="rural", **SMALL), 0)
    controller = LaneKeepingController.for_world(world)
    with pytest.raises(TypeError, match="uint8"):
        controller.act(np.zeros((64, 128), np.int64), 10.0)
    with pytest.raises(ValueError, match="shape"):
        controller.act(np.zeros((32, 128), np.uint8), 10.0)
    with pytest.raises(ValueError, match="speed_limit"):
        LaneKeepingController(world.renderer.camera, controller.prior, math.nan, 0.1)


def test_a_blind_controller_brakes_to_a_stop_and_stays_straight() -> None:
    world = World(WorldConfig(town="highway", traffic="none", **SMALL), 0)
    controller = LaneKeepingController.for_world(world)
    sky = np.full((64, 128), SKY, np.uint8)
    world.step()
    lost_at = None
    for i in range(150):
        world.step(controller.act(sky, world.traffic.v))
        if lost_at is None and controller.last.lane_lost:
            lost_at = i
    assert lost_at is not None and lost_at < 30  # lost within 3 s of seeing no road
    assert world.traffic.v == 0.0 and controller.last.steer == 0.0


def test_only_things_that_stand_up_are_obstacles() -> None:
    """A flat patch of road labelled ``car`` (a mistaken marking) is no obstacle; a car is."""
    world = _placed("rural", 0.0, 0.0, **SMALL)
    camera = world.renderer.camera
    scanner = PathScanner(camera)
    labels = np.full((64, 128), ROAD, np.uint8)
    labels[: camera.g0] = SKY
    row = camera.g0 + 20  # a ground row some tens of metres ahead
    d_row = float(camera.zg[row])
    need_px = MIN_HEIGHT * camera.f / d_row  # pixels a MIN_HEIGHT-tall thing spans there
    flat = max(1, int(need_px) - 1)
    labels[row - flat + 1 : row + 1, 60:68] = CAR  # shorter than MIN_HEIGHT
    assert len(scanner.contacts(labels, VEHICLES)[0]) == 8  # without the filter it counts
    assert len(scanner.contacts(labels, VEHICLES, 0.0, MIN_HEIGHT)[0]) == 0
    tall = math.ceil(2 * need_px)
    labels[row - tall + 1 : row + 1, 60:68] = CAR  # twice MIN_HEIGHT: it stands up
    d, _, on_road = scanner.contacts(labels, VEHICLES, 0.0, MIN_HEIGHT)
    assert len(d) == 8 and np.all(d == pytest.approx(d_row)) and on_road.all()
