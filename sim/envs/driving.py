"""The Gymnasium environment over the procedural world."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sim.world.config import Weather, WorldConfig
from sim.world.world import Frame, World


class DrivingStreamEnv(gym.Env):
    """A forward-looking camera on a car driving through a procedural town.

    ## Description

    Each step advances the world by one tick (0.1 s by default) and returns the camera frame:
    a seeded, temporally coherent video of a drive through an ``urban``, ``suburban``,
    ``highway`` or ``rural`` town, with traffic in both directions, pedestrians, road-side
    buildings, walls, fences, vegetation, poles, signs and traffic lights. Time of day
    (``day``, ``dusk``, ``night``: headlights, tail lights, street lights), weather (clouds,
    rain streaks and wet reflective roads, fog by Koschmieder's law on the true depth, a low
    sun's glare), traffic density and the camera are knobs: each one is a *domain* that can
    become a distribution shift. The stream is meant for evaluating perception (semantic
    segmentation) under shift; the ground truth travels in ``info``, never in the
    observation.

    ## Observation Space

    ``Box(0, 255, (height, width, 3), uint8)``: the RGB camera image.

    ## Action Space

    ``Box(-1, 1, (2,), float32)``: ``(steer, throttle)``; negative throttle brakes; positive
    steer turns right. With ``autopilot=True`` (the default) the ego keeps its lane and
    follows traffic by itself and **the action is ignored** (any valid action may be passed),
    so the stream does not depend on a policy.

    ## Rewards

    The distance in metres the ego progressed along the road during the step.

    ## Episode End

    - Termination: the ego collides with a vehicle or pedestrian, or leaves the road (only
      possible with ``autopilot=False``).
    - Truncation: after ``max_episode_steps`` steps (1000 when made through
      ``gymnasium.make("roadshift/DrivingStream-v0")``).

    ## Info

    - ``semantic``: uint8 (H, W) Cityscapes trainIds (0..18; 255 = ignore).
    - ``depth``: float32 (H, W) metres along the camera's forward axis; the sky is ``+inf``.
    - ``pose``: dict with ``x, y, yaw, speed, s, lane_offset, heading`` (metres, radians, m/s;
      ``lane_offset`` from the road's centre line and ``heading`` relative to the road, both
      positive to the right).
    - ``conditions``: the world and weather state (JSON-serialisable dict).
    - ``shift``: the image shift applied to the observation; ``{"corruption": None,
      "severity": 0}`` here (wrappers that corrupt the image fill it in).
    - ``events``: ``{"collision": bool, "off_road": bool}``.
    - ``frame``: the frame's index in the drive (0 at reset).

    ## Arguments

    ```python
    import gymnasium as gym
    import sim  # registers the environment

    env = gym.make("roadshift/DrivingStream-v0", height=128, width=256, town="urban",
                   time_of_day="day", weather="clear", traffic="medium")
    ```

    - ``height``, ``width``: image size in pixels (16..4096).
    - ``town``: one of ``sim.TOWNS``. ``time_of_day``: one of ``sim.TIMES_OF_DAY``.
    - ``weather``: a preset name from ``sim.WEATHER_PRESETS``, a dict of ``sim.Weather``
      fields (optionally with ``"preset"``), or a ``sim.Weather``.
    - ``traffic``: one of ``sim.TRAFFIC_LEVELS``.
    - ``fov_deg``, ``camera_height``, ``camera_pitch_deg``: the camera.
    - ``autopilot``: ignore actions and drive by lane keeping and car following.
    - ``speed_kmh``: the ego's cruise speed (default: the town's).
    - ``render_mode``: ``None`` or ``"rgb_array"`` (``render()`` returns the last frame).

    ``reset(seed=..., options={"conditions": {...}})`` starts a new drive; the optional
    conditions are passed to :meth:`set_conditions`.

    ## Version History

    - v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012 (gym idiom)

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
        autopilot: bool = True,
        speed_kmh: float | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; valid choices: None, rgb_array")
        if not isinstance(autopilot, bool):
            raise TypeError(f"autopilot must be a bool, got {type(autopilot).__name__}")
        self.config = WorldConfig(
            height=height,
            width=width,
            town=town,
            time_of_day=time_of_day,
            weather=weather,
            traffic=traffic,
            fov_deg=fov_deg,
            camera_height=camera_height,
            camera_pitch_deg=camera_pitch_deg,
            speed_kmh=speed_kmh,
        )
        self.render_mode = render_mode
        self.autopilot = autopilot
        h, w = self.config.height, self.config.width
        self.observation_space = spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.world: World | None = None
        self._frame: Frame | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        world_seed = int(self.np_random.integers(0, 2**31 - 1))
        self.world = World(self.config, world_seed)
        if options:
            unknown = set(options) - {"conditions"}
            if unknown:
                raise ValueError(
                    f"unknown reset option {sorted(unknown)[0]!r}; valid choices: conditions"
                )
            if options.get("conditions"):
                self.world.set_conditions(**options["conditions"])
        self._frame = self.world.step()
        return self._frame.image, self._info(self._frame)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.world is None:
            raise RuntimeError("call reset() before step()")
        control = None
        if not self.autopilot:
            a = np.asarray(action, dtype=np.float32).reshape(-1)
            if a.shape != (2,) or not np.all(np.isfinite(a)):
                raise ValueError("action must be 2 finite numbers (steer, throttle) in [-1, 1]")
            a = np.clip(a, -1.0, 1.0)
            control = (float(a[0]), float(a[1]))
        before = self.world.traffic.s
        self._frame = self.world.step(control)
        reward = float(self.world.traffic.s - before)
        ev = self.world.events
        terminated = bool(ev["collision"] or ev["off_road"])
        return self._frame.image, reward, terminated, False, self._info(self._frame)

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array" and self._frame is not None:
            return self._frame.image.copy()
        return None

    def set_conditions(self, **changes: Any) -> None:
        """Change time of day / weather from the next step on (see ``World.set_conditions``)."""
        if self.world is None:
            raise RuntimeError("call reset() before set_conditions()")
        self.world.set_conditions(**changes)

    def _info(self, frame: Frame) -> dict[str, Any]:
        assert self.world is not None
        return {
            "semantic": frame.semantic,
            "depth": frame.depth,
            "pose": dict(frame.pose),
            "conditions": frame.conditions,
            "shift": {"corruption": None, "severity": 0},
            "events": dict(self.world.events),
            "frame": frame.index,
        }
