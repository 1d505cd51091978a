"""The Gymnasium environment: checker, registration, spaces, rewards, episode end, bad input."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim
from sim import DrivingStreamEnv

ENV_ID = "roadshift/DrivingStream-v0"
SMALL = {"height": 32, "width": 64}


def test_the_env_passes_gymnasiums_checker() -> None:
    env = gym.make(ENV_ID, render_mode="rgb_array", **SMALL)
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


def test_registration_is_idempotent_and_limits_episodes() -> None:
    sim.register_envs()
    sim.register_envs()
    spec = gym.spec(ENV_ID)
    assert spec.entry_point == "sim.envs.driving:DrivingStreamEnv"
    assert spec.max_episode_steps == 1000


def test_gym_make_with_the_module_prefix_works_in_a_fresh_process() -> None:
    code = (
        "import gymnasium as gym\n"
        "env = gym.make('sim:roadshift/DrivingStream-v0', height=32, width=64)\n"
        "obs, info = env.reset(seed=0)\n"
        "print(obs.shape, obs.dtype, sorted(info))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "(32, 64, 3) uint8" in out
    assert "'semantic'" in out and "'depth'" in out and "'shift'" in out


def test_observation_is_the_image_and_ground_truth_travels_in_info() -> None:
    env = DrivingStreamEnv(**SMALL, town="highway")
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert obs.shape == (32, 64, 3) and obs.dtype == np.uint8
    assert info["semantic"].shape == (32, 64) and info["semantic"].dtype == np.uint8
    assert info["depth"].shape == (32, 64) and info["depth"].dtype == np.float32
    assert info["shift"] == {"corruption": None, "severity": 0}
    assert info["conditions"]["town"] == "highway"
    assert set(info["pose"]) >= {"x", "y", "yaw", "speed"}
    assert env.action_space.shape == (2,) and env.action_space.dtype == np.float32


def test_reward_is_progress_along_the_road() -> None:
    env = DrivingStreamEnv(**SMALL)
    _, info = env.reset(seed=1)
    s0 = info["pose"]["s"]
    total = 0.0
    for _ in range(10):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert not terminated and not truncated
        total += reward
    assert total == pytest.approx(info["pose"]["s"] - s0)
    assert total > 5.0  # about 11 m/s in town for one second


def test_autopilot_ignores_the_action_and_seeding_is_reproducible() -> None:
    a, b = DrivingStreamEnv(**SMALL), DrivingStreamEnv(**SMALL)
    oa, _ = a.reset(seed=5)
    ob, _ = b.reset(seed=5)
    assert np.array_equal(oa, ob)
    for i in range(5):
        oa, *_ = a.step(np.array([1.0, -1.0], np.float32))
        ob, *_ = b.step(np.array([-1.0, 1.0 if i % 2 else 0.0], np.float32))
    assert np.array_equal(oa, ob)
    oc, _ = a.reset(seed=6)
    assert not np.array_equal(oc, b.reset(seed=5)[0])


def test_manual_driving_off_the_road_terminates() -> None:
    env = DrivingStreamEnv(**SMALL, autopilot=False, town="rural", traffic="none")
    env.reset(seed=0)
    for _ in range(200):
        *_, terminated, _, info = env.step(np.array([1.0, 1.0], np.float32))
        if terminated:
            break
    assert terminated and info["events"]["off_road"]


def test_truncation_comes_from_max_episode_steps() -> None:
    env = gym.make(ENV_ID, max_episode_steps=3, **SMALL)
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[3] for _ in range(3)]
    assert flags == [False, False, True]


def test_render_returns_the_last_frame_and_conditions_can_change() -> None:
    env = DrivingStreamEnv(render_mode="rgb_array", **SMALL)
    obs, _ = env.reset(seed=2, options={"conditions": {"time_of_day": "night"}})
    assert np.array_equal(env.render(), obs)
    env.set_conditions(time_of_day="day")
    obs2, *_, info = env.step(env.action_space.sample())
    assert info["conditions"]["time_of_day"] == "day"
    assert obs2.mean() > obs.mean() + 20
    assert DrivingStreamEnv(**SMALL).render() is None


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"town": "atlantis"}, ValueError, "town.*urban"),
        ({"time_of_day": "midnight"}, ValueError, "time_of_day.*night"),
        ({"weather": "hail"}, ValueError, "weather.*clear"),
        ({"traffic": 3}, TypeError, "traffic"),
        ({"height": 0}, ValueError, "height"),
        ({"width": 12.5}, TypeError, "width"),
        ({"autopilot": "yes"}, TypeError, "autopilot"),
    ],
)
def test_bad_arguments_raise_one_line_errors(kwargs, exc, pattern) -> None:
    with pytest.raises(exc, match=pattern) as info:
        gym.make(ENV_ID, **{**SMALL, **kwargs})
    assert "\n" not in str(info.value)


def test_unknown_render_mode_is_refused() -> None:
    # gym.make wraps "human" for rgb_array-only envs, so construct the class directly
    with pytest.raises(ValueError, match=r"render_mode.*rgb_array"):
        DrivingStreamEnv(render_mode="human", **SMALL)


def test_misuse_errors() -> None:
    env = DrivingStreamEnv(**SMALL, autopilot=False)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2, np.float32))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="reset option 'weather'"):
        env.reset(seed=0, options={"weather": "fog"})
