"""Configuration of the procedural world: towns, times of day, weather and traffic as knobs.

Every knob is a *domain* that can later become a distribution shift, so each one is validated on
construction with a one-line error naming the field and its valid choices.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

TOWNS: tuple[str, ...] = ("urban", "suburban", "highway", "rural")
TIMES_OF_DAY: tuple[str, ...] = ("day", "dusk", "night")
TRAFFIC_LEVELS: tuple[str, ...] = ("none", "low", "medium", "high")

# Sun altitude (degrees above the horizon) that each named time of day stands for.
SUN_ALTITUDE: dict[str, float] = {"day": 55.0, "dusk": 3.0, "night": -25.0}

# Fog: ``fog_density`` 0..100 maps linearly to the extinction coefficient beta (1/m) of
# Koschmieder's law t = exp(-beta * d); 100 -> 0.04 1/m (meteorological visibility ~75 m),
# 25 -> 0.01 1/m (~300 m), the Foggy Cityscapes middle setting.
FOG_BETA_PER_UNIT = 0.0004


def _check_number(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in [{lo:g}, {hi:g}], got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{name} must lie in [{lo:g}, {hi:g}], got {value!r}")
    return v


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``; otherwise one line naming ``name`` and the choices."""
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be a string, one of: {', '.join(choices)}; got {type(value).__name__}"
        )
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(choices)}")
    return value


@dataclass
class Weather:
    """In-sim weather in the spirit of CARLA's ``WeatherParameters`` (0-100 scales).

    - ``cloudiness``: cloud cover; greys the sky and softens shadows and sun light.
    - ``precipitation``: rain intensity; draws streaks and darkens the scene.
    - ``wetness``: water on the road; darker, more reflective road surface.
    - ``fog_density``: extinction beta = 0.0004 * fog_density per metre, applied with
      Koschmieder's law on the true depth: I = R t + L (1 - t), t = exp(-beta d).
    - ``sun_altitude_deg``: -90..90; ``None`` takes the value of the world's time of day
      (day 55, dusk 3, night -25). Below about -6 degrees the night lights come on.
    - ``sun_azimuth_deg``: sun direction relative to the road's initial heading; glare
      appears when a low sun stands in the camera's field of view.
    - ``wind_intensity``: slants the rain streaks.
    """

    cloudiness: float = 10.0
    precipitation: float = 0.0
    wetness: float = 0.0
    fog_density: float = 0.0
    sun_altitude_deg: float | None = None
    sun_azimuth_deg: float = 20.0
    wind_intensity: float = 10.0

    def __post_init__(self) -> None:
        for f in ("cloudiness", "precipitation", "wetness", "fog_density", "wind_intensity"):
            setattr(self, f, _check_number(f"weather.{f}", getattr(self, f), 0.0, 100.0))
        if self.sun_altitude_deg is not None:
            self.sun_altitude_deg = _check_number(
                "weather.sun_altitude_deg", self.sun_altitude_deg, -90.0, 90.0
            )
        self.sun_azimuth_deg = _check_number(
            "weather.sun_azimuth_deg", self.sun_azimuth_deg, -360.0, 360.0
        )

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return _WEATHER_FIELDS

    @classmethod
    def preset(cls, name: str) -> Weather:
        """The named weather preset (see ``WEATHER_PRESETS``)."""
        check_choice("weather", name, WEATHER_PRESETS)
        return cls(**_PRESETS[name])

    @classmethod
    def from_any(cls, value: str | dict | Weather) -> Weather:
        """Build from a preset name, a dict of fields (``preset`` key optional) or a Weather."""
        if isinstance(value, Weather):
            return dataclasses.replace(value)
        if isinstance(value, str):
            return cls.preset(value)
        if isinstance(value, dict):
            data = dict(value)
            base = data.pop("preset", "clear")
            w = cls.preset(base)
            return w.replaced(**data)
        raise TypeError(
            "weather must be a preset name, a dict of Weather fields or a Weather, "
            f"got {type(value).__name__}"
        )

    def replaced(self, **changes: Any) -> Weather:
        """A copy with ``changes`` applied; unknown fields raise a one-line ValueError."""
        valid = self.fields()
        for k in changes:
            if k not in valid:
                raise ValueError(f"unknown weather field {k!r}; valid fields: {', '.join(valid)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, float | None]:
        return {f: getattr(self, f) for f in self.fields()}

    @property
    def fog_beta(self) -> float:
        """Extinction coefficient (1/m) of Koschmieder's law."""
        return FOG_BETA_PER_UNIT * self.fog_density


_WEATHER_FIELDS = tuple(f.name for f in dataclasses.fields(Weather))

_PRESETS: dict[str, dict[str, float]] = {
    "clear": {"cloudiness": 10.0},
    "cloudy": {"cloudiness": 70.0},
    "overcast": {"cloudiness": 95.0, "wetness": 10.0},
    "wet": {"cloudiness": 60.0, "wetness": 70.0},
    "rain": {
        "cloudiness": 85.0,
        "precipitation": 50.0,
        "wetness": 80.0,
        "fog_density": 5.0,
        "wind_intensity": 30.0,
    },
    "heavy_rain": {
        "cloudiness": 100.0,
        "precipitation": 95.0,
        "wetness": 100.0,
        "fog_density": 12.0,
        "wind_intensity": 60.0,
    },
    "fog": {"cloudiness": 60.0, "fog_density": 25.0, "wetness": 20.0},
    "dense_fog": {"cloudiness": 90.0, "fog_density": 60.0, "wetness": 30.0},
}
WEATHER_PRESETS: tuple[str, ...] = tuple(_PRESETS)


@dataclass
class WorldConfig:
    """Everything that defines a drive apart from its seed.

    ``camera_pitch_deg`` tilts the view up (positive) or down; it is implemented as a vertical
    shift of the principal point (a shift lens), so vertical edges stay vertical.
    ``speed_kmh`` is the ego's cruise speed (``None``: the town's usual speed); ``dt`` the
    simulated seconds per frame.
    """

    height: int = 128
    width: int = 256
    town: str = "urban"
    time_of_day: str = "day"
    weather: str | dict | Weather = "clear"
    traffic: str = "medium"
    fov_deg: float = 90.0
    camera_height: float = 1.5
    camera_pitch_deg: float = 0.0
    speed_kmh: float | None = None
    dt: float = 0.1
    weather_state: Weather = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be a positive int, got {type(v).__name__}")
            if v < 16 or v > 4096:
                raise ValueError(f"{name} must be a positive int in [16, 4096], got {v}")
        check_choice("town", self.town, TOWNS)
        check_choice("time_of_day", self.time_of_day, TIMES_OF_DAY)
        check_choice("traffic", self.traffic, TRAFFIC_LEVELS)
        self.fov_deg = _check_number("fov_deg", self.fov_deg, 20.0, 150.0)
        self.camera_height = _check_number("camera_height", self.camera_height, 0.3, 10.0)
        self.camera_pitch_deg = _check_number("camera_pitch_deg", self.camera_pitch_deg, -30, 30)
        if self.speed_kmh is not None:
            self.speed_kmh = _check_number("speed_kmh", self.speed_kmh, 0.0, 200.0)
        self.dt = _check_number("dt", self.dt, 0.001, 1.0)
        if isinstance(self.weather, str):
            check_choice("weather", self.weather, WEATHER_PRESETS)
        ws = Weather.from_any(self.weather)
        if ws.sun_altitude_deg is None:
            ws.sun_altitude_deg = SUN_ALTITUDE[self.time_of_day]
        self.weather_state = ws

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (weather resolved to its fields)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        d["weather"] = self.weather_state.to_dict()
        return d
