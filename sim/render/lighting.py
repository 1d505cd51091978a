"""Sun and sky light for a frame: how bright and what colour, from the weather and heading.

``frame_lighting`` gives a :class:`Light`: the sun's altitude and azimuth relative to the road,
how much daylight and night there is, the direct and ambient light falling on each facing of a
surface, a colour tint, and the colours of the sky at the zenith and the horizon.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.world.config import Weather

DEFAULT_SUN_ALT = 55.0  # degrees, when the weather leaves the sun's altitude open
# Daylight rises from 0 to 1 as the sun climbs from DAWN_ALT over TWILIGHT_SPAN degrees;
# "night" (street lights, headlights) fades in as it sinks below NIGHT_FROM_ALT.
DAWN_ALT, NIGHT_FROM_ALT, TWILIGHT_SPAN = -6.0, 8.0, 14.0
WARM_BELOW_ALT = 25.0  # the light turns warmer as the sun sinks below this altitude
DIRECT_SUN = 0.85  # direct light of a high sun in a clear sky
CLOUD_BLOCKS_SUN = 0.85  # share of the direct light a full cloud cover blocks
AMBIENT_FLOOR, AMBIENT_DAY = 0.05, 0.5  # ambient light at night, and added by day
CLOUD_DIMS_AMBIENT = 0.25
# Ambient light by facing (up, left, right, towards the camera, self-lit): the sky is brightest
# above.
AMBIENT_BY_FACING = (1.0, 0.85, 0.85, 0.9, 0.9)
NIGHT_TINT = (0.75, 0.85, 1.15)  # moonlit blue
# Sky colours (RGB): night -> dusk by daylight, dusk -> day by how high the sun is.
ZENITH = {"night": (4, 6, 16), "dusk": (50, 62, 112), "day": (62, 118, 196)}
HORIZON = {"night": (16, 20, 34), "dusk": (235, 150, 95), "day": (178, 200, 224)}
CLOUD_GREY = {"night": (20, 22, 26), "day": (168, 172, 178)}


def lerp(a: Any, b: Any, w: float) -> np.ndarray:
    """``a * (1 - w) + b * w`` in float32."""
    return np.asarray(a, np.float32) * (1 - w) + np.asarray(b, np.float32) * w


@dataclass
class Light:
    sun_alt: float  # degrees above the horizon
    az_rel: float  # sun azimuth relative to the road's direction at the ego (rad)
    daylight: float  # 0..1
    night: float  # 0..1: how much the night lights show
    direct: float  # direct sunlight on a surface facing the sun
    ambient: float
    amb_f: np.ndarray  # ambient light per facing (up, left, right, back, emit)
    dir_f: np.ndarray  # direct light per facing
    tint: np.ndarray  # RGB tint of the light
    zenith: np.ndarray  # sky colour overhead
    horizon: np.ndarray  # sky colour at the horizon
    airlight: np.ndarray  # the colour fog and haze fade to


@functools.lru_cache(maxsize=64)
def _sky_light(alt: float, cloud: float) -> tuple:
    """Everything about the light that does not depend on the heading (cached)."""
    daylight = float(np.clip((alt - DAWN_ALT) / TWILIGHT_SPAN, 0.0, 1.0))
    night = float(np.clip((NIGHT_FROM_ALT - alt) / TWILIGHT_SPAN, 0.0, 1.0))
    sin_alt = max(math.sin(math.radians(alt)), 0.0)
    cos_alt = math.cos(math.radians(alt))
    direct = DIRECT_SUN * daylight * math.sqrt(sin_alt) * (1.0 - CLOUD_BLOCKS_SUN * cloud)
    ambient = AMBIENT_FLOOR + AMBIENT_DAY * daylight * (1.0 - CLOUD_DIMS_AMBIENT * cloud)
    amb_f = np.array(AMBIENT_BY_FACING, np.float32) * ambient
    warm = float(np.clip(alt / WARM_BELOW_ALT, 0.0, 1.0))
    tint = np.array([1.0, 0.88 + 0.12 * warm, 0.74 + 0.26 * warm], np.float32)
    tint = lerp(NIGHT_TINT, tint, daylight)
    zen = lerp(lerp(ZENITH["night"], ZENITH["dusk"], daylight), ZENITH["day"], warm)
    hor = lerp(lerp(HORIZON["night"], HORIZON["dusk"], daylight), HORIZON["day"], warm)
    # clouds grey the sky
    grey = lerp(CLOUD_GREY["night"], CLOUD_GREY["day"], daylight) * (1.0 - 0.3 * cloud)
    zen = lerp(zen, grey * 0.9, cloud * 0.9)
    hor = lerp(hor, grey, cloud * 0.8)
    for arr in (amb_f, tint, zen, hor):
        arr.setflags(write=False)
    return daylight, night, sin_alt, cos_alt, direct, ambient, amb_f, tint, zen, hor


def frame_lighting(weather: Weather, yaw: float) -> Light:
    """Sun, sky and ambient light for the current weather and heading."""
    alt = float(
        weather.sun_altitude_deg if weather.sun_altitude_deg is not None else DEFAULT_SUN_ALT
    )
    cloud = weather.cloudiness / 100.0
    daylight, night, sin_alt, cos_alt, direct, ambient, amb_f, tint, zen, hor = _sky_light(
        alt, cloud
    )
    az = math.radians(weather.sun_azimuth_deg) - yaw
    dir_f = (
        np.array(
            [
                sin_alt,
                cos_alt * max(0.0, -math.sin(az)),
                cos_alt * max(0.0, math.sin(az)),
                cos_alt * max(0.0, -math.cos(az)),
                cos_alt * max(0.0, -math.cos(az)),
            ],
            np.float32,
        )
        * direct
    )
    return Light(
        alt, az, daylight, night, direct, ambient, amb_f, dir_f, tint, zen, hor, hor.copy()
    )
