"""Closed-loop drives: scoring, interventions, determinism, and LaneKeeping-v0."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim
from sim import ClosedLoop, LaneKeepingEnv, WorldConfig
from sim.common.classes import SKY
from sim.control.drives import STALL_S, STRIP
from sim.world.objects import (
    PERSON_FOOTPRINT,
    PERSON_HEIGHT,
    ObjectKind,
    concat_tables,
    object_table,
)
from sim.world.traffic import CROSSING

SMALL = {"height": 64, "width": 128}


def _run(loop: ClosedLoop, perceive) -> list:
    while not loop.done:
        loop.act(perceive(loop))
    return loop.results()


def _oracle(loop: ClosedLoop) -> np.ndarray:
    loop.observe()
    return loop.ground_truth()


def _sky(loop: ClosedLoop) -> np.ndarray:
    return np.full(loop.observe().shape[:3], SKY, np.uint8)


def test_the_oracle_covers_the_distance_without_a_failure() -> None:
    loop = ClosedLoop(WorldConfig(town="rural", **SMALL), seeds=[0, 1], distance_m=150.0)
    results = _run(loop, _oracle)
    assert [r.seed for r in results] == [0, 1]
    for r in results:
        assert r.distance_m == 150.0 and not r.failures and r.strip is None
        assert r.first_failure_m is None and r.interventions_per_km == 0.0
        assert r.controlled_steps == r.steps > 0 and r.offset_rms < 0.2
        trace = r.trace
        assert len(trace["distance"]) == loop.step and not trace["auto"].any()
        assert np.all(np.diff(trace["distance"]) >= 0) and trace["distance"][-1] >= 150.0
        row = r.row()
        assert row["interventions"] == 0 and row["first_failure_m"] is None
        assert row["distance_m"] == 150.0 and row["failures"] == []


def test_an_all_sky_prediction_fails_fast_and_is_scored_not_raised() -> None:
    loop = ClosedLoop(
        WorldConfig(town="suburban", traffic="none", **SMALL), seeds=[4], distance_m=80.0
    )
    (result,) = _run(loop, _sky)
    assert result.failures, "seeing no road must end in a failure"
    first = result.failures[0]
    assert first.kind == "stall" and first.step <= 80  # lost, stopped, stalled within 8 s
    assert result.first_failure_m == first.distance_m < 40.0
    # the autopilot took over for takeover_s after each failure, then handed back
    auto = result.trace["auto"]
    after = first.step  # the trace's entry i is the state after step i + 1
    assert auto[after : after + loop.takeover_steps].all() and not auto[after - 1]
    assert result.interventions_per_km == pytest.approx(
        1000.0 * len(result.failures) / result.distance_m
    )
    strip = result.strip
    assert strip is not None and list(strip["offset"]) == list(STRIP)
    assert strip["frame"][-1] == first.step
    assert (strip["predicted"] == SKY).all() and strip["clean"].shape == (len(STRIP), 64, 128, 3)
    assert not (strip["ground_truth"] == SKY).all()


def test_failures_are_counted_by_kind_and_summarised() -> None:
    # labels shifted sideways make the car believe it drifts left: it steers off the road
    def shifted(loop: ClosedLoop) -> np.ndarray:
        truth = _oracle(loop)
        return np.roll(truth, -40, axis=2)

    loop = ClosedLoop(WorldConfig(town="rural", traffic="none", **SMALL), [2], distance_m=200.0)
    (result,) = _run(loop, shifted)
    assert result.count("off_road") >= 1
    row = result.row()
    assert row["off_road"] == result.count("off_road") >= 1
    assert row["interventions"] == len(result.failures)
    assert row["collisions"] + row["off_road"] + row["stalls"] == row["interventions"]
    assert row["first_failure_m"] == result.failures[0].distance_m
    assert row["failures"][0] == [result.failures[0].kind, result.failures[0].step,
                                  result.failures[0].distance_m]  # fmt: skip


def test_drives_are_deterministic_and_independent_of_their_batch() -> None:
    config = WorldConfig(town="urban", **SMALL)
    kwargs = {"corruption": "gaussian_noise", "severity": 2, "shift_seed": 7, "distance_m": 40.0}
    a = _run(ClosedLoop(config, [3, 5], **kwargs), _oracle)
    b = _run(ClosedLoop(config, [3, 5], **kwargs), _oracle)
    for ra, rb in zip(a, b, strict=True):
        for key in ra.trace:
            assert np.array_equal(ra.trace[key], rb.trace[key])
    # the corrupted frames of drive b depend on (shift_seed, b) only
    one = ClosedLoop(config, [3], **kwargs)
    two = ClosedLoop(config, [3, 5], **kwargs)
    assert np.array_equal(one.observe()[0], two.observe()[0])
    clean = ClosedLoop(config, [3], distance_m=40.0)
    assert not np.array_equal(one.observe()[0], clean.observe()[0])


def test_bad_arguments_are_refused_in_one_line() -> None:
    config = WorldConfig(**SMALL)
    with pytest.raises(ValueError, match="unknown corruption"):
        ClosedLoop(config, [0], corruption="fogg")
    with pytest.raises(ValueError, match="distance_m"):
        ClosedLoop(config, [0], distance_m=0)
    with pytest.raises(ValueError, match="at least one"):
        ClosedLoop(config, [])
    loop = ClosedLoop(config, [0, 1])
    with pytest.raises(ValueError, match=r"uint8 trainIds of shape \(2, 64, 128\)"):
        loop.act(np.zeros((1, 64, 128), np.uint8))


# ----- roadshift/LaneKeeping-v0 -----


def test_lane_keeping_passes_gymnasiums_checker() -> None:
    env = gym.make("roadshift/LaneKeeping-v0", render_mode="rgb_array", **SMALL)
    assert env.spec.max_episode_steps == 1000
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


def test_lane_keeping_reward_is_progress_minus_the_offset_penalty() -> None:
    env = LaneKeepingEnv(**SMALL, town="rural", offset_penalty=2.0)
    _, info = env.reset(seed=1)
    assert info["lane"]["offset"] == pytest.approx(0.0, abs=1e-9)
    s0 = info["pose"]["s"]
    for _ in range(5):
        _, reward, terminated, _, info = env.step(np.array([0.6, 0.2], np.float32))
        lane = info["lane"]
        assert reward == pytest.approx(lane["progress"] - 2.0 * lane["offset"] ** 2)
        assert not terminated
    assert info["lane"]["offset"] > 0.05  # steering right moved the car right
    assert info["pose"]["s"] > s0
    with pytest.raises(ValueError, match="offset_penalty"):
        LaneKeepingEnv(**SMALL, offset_penalty=-1.0)


def test_lane_keeping_ends_when_the_car_leaves_the_road() -> None:
    env = LaneKeepingEnv(**SMALL, town="rural", traffic="none")
    env.reset(seed=0)
    for _ in range(100):
        _, _, terminated, _, info = env.step(np.array([1.0, 0.0], np.float32))
        if terminated:
            break
    assert terminated and info["events"]["off_road"]


def test_the_controller_drives_lane_keeping_under_the_corruption_wrapper() -> None:
    env = sim.CorruptionWrapper(
        gym.make("roadshift/LaneKeeping-v0", town="highway", **SMALL), "fog_depth", severity=3
    )
    _, info = env.reset(seed=2)
    controller = sim.LaneKeepingController.for_world(env.unwrapped.world)
    total = 0.0
    for _ in range(60):
        action = np.array(controller.act(info["semantic"], info["lane"]["speed"]), np.float32)
        _, reward, terminated, _, info = env.step(action)
        total += reward
        assert info["shift"]["corruption"] == "fog_depth" and not terminated
    assert total > 60 * 1.0 and math.isfinite(total)  # highway speed: > 1 m of progress a step


def test_waiting_for_a_pedestrian_still_on_the_road_is_not_a_stall() -> None:
    """Someone crossing slowly leaves the ego's lane long before the road: the controller
    waits until they are well aside, and that wait is caution, not a failure."""
    loop = ClosedLoop(WorldConfig(town="urban", traffic="none", **SMALL), [0], distance_m=60.0)
    tr = loop.drives[0].world.traffic
    row = object_table(1)
    row["kind"], row["s"], row["u"] = ObjectKind.PERSON, tr.s + 12.0, tr.ego_lane
    row["length"] = row["width"] = PERSON_FOOTPRINT
    row["height"], row["color"] = PERSON_HEIGHT, (180, 40, 40)
    tr.peds = concat_tables(tr.peds, row)
    tr.ped_vel = np.vstack([tr.ped_vel, [0.0, 0.5]])  # crossing to the right at 0.5 m/s
    tr.ped_role = np.append(tr.ped_role, CROSSING)
    (result,) = _run(loop, _oracle)
    speed, distance = result.trace["speed"], result.trace["distance"]
    stopped = np.flatnonzero(speed < 0.5)
    assert len(stopped) * loop.config.dt > STALL_S  # it stood longer than a stall takes
    assert distance[stopped[0]] < 12.0  # before the person
    assert not result.failures and result.distance_m == 60.0  # and drove on, no failure
