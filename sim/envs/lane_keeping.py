"""The lane-keeping Gymnasium environment: the camera image in, ``(steer, throttle)`` out."""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.envs.driving import DrivingStreamEnv
from sim.world.config import Weather


class LaneKeepingEnv(DrivingStreamEnv):
    """Keep the car in its lane through a procedural town, from its forward camera alone.

    ## Description

    The ego car of ``roadshift/DrivingStream-v0`` under the agent's control: each step applies
    ``(steer, throttle)`` for one tick (0.1 s) and returns the next camera frame. The car
    starts in one of the lanes of its direction, moving at 85-100 % of the town's speed; the
    task is to follow that lane and not run into the traffic and pedestrians ahead (people
    cross at intersections). Towns, time of day, weather, traffic and the camera are the same
    knobs as ``DrivingStream-v0``, and ``sim.CorruptionWrapper`` corrupts the observations of
    this env like any other. ``sim.LaneKeepingController.for_world(env.unwrapped.world)``
    drives it from label maps (``info["semantic"]`` gives the oracle).

    ## Observation Space

    ``Box(0, 255, (height, width, 3), uint8)``: the RGB camera image.

    ## Action Space

    ``Box(-1, 1, (2,), float32)``: ``(steer, throttle)``. Steer +1 turns right at 0.35 rad/s
    whatever the speed (``sim.world.traffic.STEER_YAW_RATE``); throttle +1 accelerates at
    3 m/s^2, -1 brakes at 8 m/s^2; the speed stays in [0, 50] m/s.

    ## Rewards

    ``progress - offset_penalty * offset^2`` per step: ``progress`` is the distance in metres
    the car moved along the road during the step (about 1.1 m at 40 km/h), ``offset`` its
    lateral distance in metres from its lane's centre after the step, and ``offset_penalty``
    (default 1.0 per square metre) a constructor argument. Driving at the town's speed on the
    lane's centre earns the most; half a metre off centre costs 0.25 per step, a whole lane
    width (3-3.6 m) more than any step's progress.

    ## Starting State

    ``reset(seed=...)`` builds a new seeded drive: the town, its traffic and the ego's lane
    and speed all follow from the seed.

    ## Episode End

    - Termination: the car collides with a vehicle or a pedestrian, or leaves the road (its
      centre beyond the road's edge or on a median strip).
    - Truncation: after ``max_episode_steps`` steps (1000 when made through
      ``gymnasium.make("roadshift/LaneKeeping-v0")``).

    ## Info

    Everything ``DrivingStream-v0`` reports (``semantic``, ``depth``, ``pose``,
    ``conditions``, ``shift``, ``events``, ``frame``), and ``lane``: ``{"offset": m from the
    lane's centre (+ right), "heading": rad relative to the road (+ right), "progress": m
    this step, "speed": m/s}``.

    ## Arguments

    ```python
    import gymnasium as gym
    import sim  # registers the environments

    env = gym.make("roadshift/LaneKeeping-v0", town="rural", offset_penalty=1.0)
    ```

    - ``height``, ``width``, ``town``, ``time_of_day``, ``weather``, ``traffic``, ``fov_deg``,
      ``camera_height``, ``camera_pitch_deg``, ``speed_kmh``, ``render_mode``: as
      ``DrivingStream-v0``.
    - ``offset_penalty``: the reward's weight on the squared lane offset (>= 0).

    ## Version History

    - v0: initial version.
    """

    def __init__(
        self,
        render_mode: str | None = None,
        height: int = 128,
        width: int = 256,
        town: str = "urban",
        time_of_day: str = "day",
        weather: str | dict | Weather = "clear",
        traffic: str = "medium",
        fov_deg: float = 90.0,
        camera_height: float = 1.5,
        camera_pitch_deg: float = 0.0,
        speed_kmh: float | None = None,
        offset_penalty: float = 1.0,
    ) -> None:
        if isinstance(offset_penalty, bool) or not isinstance(offset_penalty, (int, float)):
            raise TypeError(f"offset_penalty must be a number >= 0, got {offset_penalty!r}")
        if not (np.isfinite(offset_penalty) and offset_penalty >= 0):
            raise ValueError(f"offset_penalty must be a number >= 0, got {offset_penalty!r}")
        super().__init__(
            render_mode=render_mode,
            height=height,
            width=width,
            town=town,
            time_of_day=time_of_day,
            weather=weather,
            traffic=traffic,
            fov_deg=fov_deg,
            camera_height=camera_height,
            camera_pitch_deg=camera_pitch_deg,
            autopilot=False,
            speed_kmh=speed_kmh,
        )
        self.offset_penalty = float(offset_penalty)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        info["lane"] = self._lane(0.0)
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, progress, terminated, truncated, info = super().step(action)
        lane = info["lane"] = self._lane(progress)
        reward = progress - self.offset_penalty * lane["offset"] ** 2
        return obs, float(reward), terminated, truncated, info

    def _lane(self, progress: float) -> dict[str, float]:
        assert self.world is not None
        tr = self.world.traffic
        return {
            "offset": float(tr.u - tr.ego_lane),
            "heading": float(tr.psi),
            "progress": float(progress),
            "speed": float(tr.v),
        }
