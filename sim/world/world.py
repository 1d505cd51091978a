"""The procedural driving world: one seeded drive, rendered frame by frame.

``World(config, seed)`` builds a town, its traffic and a camera; ``world.step()`` advances one
tick (``config.dt`` seconds) and returns a :class:`Frame` with the image and its ground truth.
``render_stream`` is the batch runner's entry point.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim._render import CameraState, Renderer
from sim._render_sprites import (
    T_BUSH,
    T_CAR,
    T_CLUTTER,
    T_LAMP,
    T_POLE,
    T_SIGN,
    T_TLIGHT,
    T_TREE,
    T_TRUCK,
)
from sim._town import STYLES
from sim._town_map import (
    P_BUSH,
    P_CLUTTER,
    P_LAMP,
    P_PARKED,
    P_POLE,
    P_SIGN,
    P_TLIGHT,
    P_TREE,
    TownMap,
)
from sim._world_config import SUN_ALTITUDE, TIMES_OF_DAY, Weather, WorldConfig, _check_choice
from sim._world_traffic import Traffic

_PROP_TYPE = np.full(9, T_TREE, np.float64)
_PROP_HEIGHT = np.array([0.0, 7.5, 8.0, 2.9, 6.3, 1.5, 1.0, 1.2])
for _p, _t in (
    (P_TREE, T_TREE),
    (P_POLE, T_POLE),
    (P_LAMP, T_LAMP),
    (P_SIGN, T_SIGN),
    (P_TLIGHT, T_TLIGHT),
    (P_PARKED, T_CAR),
    (P_BUSH, T_BUSH),
    (P_CLUTTER, T_CLUTTER),
):
    _PROP_TYPE[_p] = _t


@dataclass
class Frame:
    """One rendered frame and its ground truth.

    ``image``: uint8 (H, W, 3) RGB. ``semantic``: uint8 (H, W) Cityscapes trainIds (255 =
    ignore). ``depth``: float32 (H, W) metres along the camera's forward axis; the sky is
    ``+inf``. ``pose``: the ego's state (x, y, yaw, speed, s, lane_offset). ``conditions``: the
    world and weather state (JSON-serialisable). ``index``: frame number in the drive.
    """

    image: np.ndarray
    semantic: np.ndarray
    depth: np.ndarray
    pose: dict[str, float]
    conditions: dict[str, Any]
    index: int


def time_of_day_for(sun_altitude_deg: float) -> str:
    """The named time of day a sun altitude falls in (day >= 15 deg, night < -4 deg)."""
    if sun_altitude_deg >= 15.0:
        return "day"
    if sun_altitude_deg >= -4.0:
        return "dusk"
    return "night"


class World:
    """A seeded procedural drive. The same config and seed always give the same bits."""

    def __init__(self, config: WorldConfig, seed: int | np.random.Generator = 0) -> None:
        if not isinstance(config, WorldConfig):
            raise TypeError(f"config must be a WorldConfig, got {type(config).__name__}")
        if isinstance(seed, np.random.Generator):
            rng = seed
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            if seed < 0:
                raise ValueError(f"seed must be a non-negative int, got {seed}")
            rng = np.random.default_rng(int(seed))
        else:
            raise TypeError(f"seed must be an int or numpy Generator, got {type(seed).__name__}")
        self.config = config
        seeds = rng.integers(0, 2**63 - 1, size=3)
        style = STYLES[config.town]
        self.town = TownMap(style, np.random.default_rng(seeds[0]))
        self.renderer = Renderer(config, self.town, np.random.default_rng(seeds[1]))
        cruise = (config.speed_kmh if config.speed_kmh is not None else style.speed_kmh) / 3.6
        self.traffic = Traffic(self.town, config.traffic, cruise, np.random.default_rng(seeds[2]))
        self.weather: Weather = Weather.from_any(config.weather_state)
        self.time_of_day = config.time_of_day
        self.time = 0.0
        self.index = 0
        self.events = {"collision": False, "off_road": False}
        self._started = False

    # ----- conditions -----
    def set_conditions(
        self,
        time_of_day: str | None = None,
        weather: str | dict | Weather | None = None,
        **weather_fields: Any,
    ) -> None:
        """Change lighting and weather from the next frame on (values may be continuous).

        ``time_of_day`` sets the sun altitude to that time's value; ``weather`` replaces the
        weather (keeping the current sun altitude unless it names one); keyword fields of
        :class:`Weather` (``fog_density``, ``sun_altitude_deg``, ...) change just those.
        """
        if weather is not None:
            new = Weather.from_any(weather)
            if new.sun_altitude_deg is None:
                new.sun_altitude_deg = self.weather.sun_altitude_deg
            self.weather = new
        if time_of_day is not None:
            _check_choice("time_of_day", time_of_day, TIMES_OF_DAY)
            self.weather = self.weather.replaced(sun_altitude_deg=SUN_ALTITUDE[time_of_day])
        if weather_fields:
            self.weather = self.weather.replaced(**weather_fields)
        if self.weather.sun_altitude_deg is None:
            self.weather.sun_altitude_deg = SUN_ALTITUDE[self.time_of_day]
        self.time_of_day = time_of_day_for(float(self.weather.sun_altitude_deg))

    def conditions(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "town": cfg.town,
            "time_of_day": self.time_of_day,
            "traffic": cfg.traffic,
            "weather": self.weather.to_dict(),
            "height": cfg.height,
            "width": cfg.width,
            "fov_deg": cfg.fov_deg,
            "camera_height": cfg.camera_height,
            "camera_pitch_deg": cfg.camera_pitch_deg,
        }

    # ----- stepping -----
    def step(self, control: tuple[float, float] | None = None) -> Frame:
        """Advance one tick (the first call renders the start) and render the frame.

        ``control``: ``None`` drives on autopilot (lane keeping, car following); otherwise
        ``(steer, throttle)`` in [-1, 1], negative throttle brakes.
        """
        if self._started:
            self.events = self.traffic.step(self.config.dt, control)
            self.time += self.config.dt
            self.index += 1
        self._started = True
        return self.render()

    def render(self) -> Frame:
        """Render the current state without advancing it."""
        tr, town = self.traffic, self.town
        town.ensure(tr.s - 80.0, tr.s + 420.0)
        look = 60.0
        k_eff = town.mean_curvature(tr.s, look)
        cam = CameraState(
            s=tr.s,
            u=tr.u,
            heading=-tr.psi,
            curvature=k_eff,
            yaw=tr.yaw,
            time=self.time,
            frame=self.index,
        )
        objs = self._objects(cam)
        image, semantic, depth = self.renderer.render(cam, self.weather, objs)
        pose = {
            "x": tr.x,
            "y": tr.y,
            "yaw": tr.yaw + tr.psi,
            "speed": tr.v,
            "s": tr.s,
            "lane_offset": tr.u,
        }
        return Frame(
            image=image,
            semantic=semantic,
            depth=depth,
            pose={k: float(v) for k, v in pose.items()},
            conditions=self.conditions(),
            index=self.index,
        )

    def _objects(self, cam: CameraState) -> np.ndarray:
        props = self.town.props_between(cam.s - 10.0, cam.s + 250.0)
        rows = np.zeros((len(props), 12))
        if len(props):
            ptype = props[:, 2].astype(np.int64)
            rows[:, 0] = props[:, 0]
            rows[:, 1] = props[:, 1]
            rows[:, 2] = _PROP_TYPE[ptype]
            rows[:, 3] = 0.5
            rows[:, 4] = props[:, 3]  # per-prop parameter (pole: carries a sign if > 0.6)
            rows[:, 5] = _PROP_HEIGHT[ptype]  # height, used to cull tiny objects
            big = (ptype == P_TREE) | (ptype == P_BUSH)
            rows[big, 5] = props[big, 3]
            rows[:, 6:9] = props[:, 4:7]
            rows[:, 9] = props[:, 7]
            rows[:, 10] = 1.0
            parked = ptype == P_PARKED
            rows[parked, 3] = 4.0 + 0.8 * props[parked, 3]
            rows[parked, 4] = 1.8
            rows[parked, 5] = 1.4 + 0.2 * props[parked, 3]
            van = parked & (props[:, 3] > 0.8)  # parked delivery vans (truck class)
            rows[van, 2] = T_TRUCK
            rows[van, 3] = 5.2 + 4.0 * (props[van, 3] - 0.8)
            rows[van, 4] = 2.1
            rows[van, 5] = 2.7
            rows[ptype == P_POLE, 11] = float(self.town.style.name == "rural")
            tl = ptype == P_TLIGHT
            phase = (self.time + props[tl, 7]) % 30.0
            rows[tl, 11] = np.where(phase < 13.0, 2, np.where(phase < 16.0, 1, 0))
        dyn = self.traffic.objects()
        return np.vstack([rows, dyn]) if len(dyn) else rows


def render_stream(
    config: WorldConfig,
    seed: int,
    n_frames: int,
    conditions: Callable[[int], dict | None] | None = None,
) -> Iterator[Frame]:
    """Render ``n_frames`` consecutive frames of one drive.

    ``conditions``: optional ``frame_index -> dict | None``; a dict is passed to
    ``World.set_conditions`` before that frame is rendered (in-sim weather schedules).
    """
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)):
        raise TypeError(f"n_frames must be a non-negative int, got {type(n_frames).__name__}")
    if n_frames < 0:
        raise ValueError(f"n_frames must be a non-negative int, got {n_frames}")
    if conditions is not None and not callable(conditions):
        raise TypeError("conditions must be a callable frame_index -> dict | None")
    world = World(config, seed)
    for i in range(int(n_frames)):
        if conditions is not None:
            change = conditions(i)
            if change:
                world.set_conditions(**change)
        yield world.step()
