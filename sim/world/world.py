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

from sim.render.camera import CameraState
from sim.render.renderer import Renderer
from sim.world.config import SUN_ALTITUDE, TIMES_OF_DAY, Weather, WorldConfig, check_choice
from sim.world.objects import (
    PROP_FOOTPRINT,
    PROP_HEIGHT,
    PROP_OBJECT,
    ObjectKind,
    PropKind,
    Signal,
    concat_tables,
    kind_table,
    object_table,
)
from sim.world.styles import STYLES
from sim.world.town_map import TownMap
from sim.world.traffic import Traffic

N_PROP_KINDS = len(PropKind)
_OBJECT_OF_PROP = kind_table(PROP_OBJECT, N_PROP_KINDS, np.int64)
_HEIGHT_OF_PROP = kind_table(PROP_HEIGHT, N_PROP_KINDS)
# Trees and bushes carry their own size; parked vehicles their own dimensions.
_SIZED = kind_table({PropKind.TREE: True, PropKind.BUSH: True}, N_PROP_KINDS, np.bool_)
_PARKED = PropKind.PARKED.value
_POLE = PropKind.POLE.value
_TRAFFIC_LIGHT = PropKind.TRAFFIC_LIGHT.value
SIGNAL_CYCLE = 30.0  # seconds: green for 13, amber for 3, red for the rest
GREEN_UNTIL, AMBER_UNTIL = 13.0, 16.0


@dataclass
class Frame:
    """One rendered frame and its ground truth.

    ``image``: uint8 (H, W, 3) RGB. ``semantic``: uint8 (H, W) Cityscapes trainIds (255 =
    ignore). ``depth``: float32 (H, W) metres along the camera's forward axis; the sky is
    ``+inf``. ``pose``: the ego's state (x, y, yaw, speed, s, lane_offset: the lateral offset
    from the road's centre line, + right; heading: the ego's heading relative to the road, rad,
    + right). ``conditions``: the world and weather state (JSON-serialisable). ``index``: frame
    number in the drive.
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
            check_choice("time_of_day", time_of_day, TIMES_OF_DAY)
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
            "heading": tr.psi,
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
        """The object table of this frame: props near the camera, then traffic and people."""
        props = self.town.props_between(cam.s - 10.0, cam.s + 250.0)
        table = object_table(len(props))
        if len(props):
            kind = props["kind"].astype(np.int64)
            variant = props["variant"]
            table["s"] = props["s"]
            table["u"] = props["u"]
            table["kind"] = _OBJECT_OF_PROP[kind]
            table["length"] = PROP_FOOTPRINT
            table["width"] = PROP_FOOTPRINT
            table["height"] = _HEIGHT_OF_PROP[kind]  # used to cull tiny objects
            sized = _SIZED[kind]
            table["height"][sized] = props["size"][sized]
            table["color"] = props["color"]
            table["seed"] = props["seed"]
            table["direction"] = 1.0  # parked vehicles face the ego's way
            table["variant"] = variant
            parked = kind == _PARKED
            length, width, height = table["length"], table["width"], table["height"]
            length[parked] = 4.0 + 0.8 * variant[parked]
            width[parked] = 1.8
            height[parked] = 1.4 + 0.2 * variant[parked]
            van = parked & (variant > 0.8)  # parked delivery vans (truck class)
            table["kind"][van] = ObjectKind.TRUCK.value
            length[van] = 5.2 + 4.0 * (variant[van] - 0.8)
            width[van] = 2.1
            height[van] = 2.7
            table["wooden"][kind == _POLE] = self.town.style.name == "rural"
            lights = kind == _TRAFFIC_LIGHT
            phase = (self.time + props["seed"][lights]) % SIGNAL_CYCLE
            table["signal"][lights] = np.where(
                phase < GREEN_UNTIL,
                Signal.GREEN.value,
                np.where(phase < AMBER_UNTIL, Signal.AMBER.value, Signal.RED.value),
            )
        movers = self.traffic.objects()
        return concat_tables(table, movers) if len(movers) else table


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
