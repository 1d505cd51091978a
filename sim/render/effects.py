"""Lighting and weather: sun and sky light, shadows, night lights, wet roads, rain, fog, glare.

Fog follows Koschmieder's law on the true depth, I = R t + L (1 - t) with t = exp(-beta d):
beta is a faint constant haze (atmospheric perspective, always present) plus
``Weather.fog_beta`` plus a little for rain; L is the airlight (the horizon sky's colour).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from sim._render_tex import rain_canvas
from sim._world_config import Weather

if TYPE_CHECKING:
    from sim._render import CameraState

HAZE_BETA = 0.0012  # always-on atmospheric perspective (1/m)
RAIN_BETA = 0.00012  # extra extinction per unit of precipitation (1/m)


def _lerp(a: Any, b: Any, w: float) -> np.ndarray:
    return np.asarray(a, np.float32) * (1 - w) + np.asarray(b, np.float32) * w


@dataclass
class Light:
    sun_alt: float
    az_rel: float
    daylight: float
    night: float
    direct: float
    ambient: float
    amb_f: np.ndarray  # per facing (up, left, right, back, emit)
    dir_f: np.ndarray
    tint: np.ndarray
    zenith: np.ndarray
    horizon: np.ndarray
    airlight: np.ndarray


@functools.lru_cache(maxsize=64)
def _sky_light(alt: float, cloud: float) -> tuple:
    """Everything about the light that does not depend on the heading (cached)."""
    daylight = float(np.clip((alt + 6.0) / 14.0, 0.0, 1.0))
    night = float(np.clip((8.0 - alt) / 14.0, 0.0, 1.0))
    sin_alt = max(math.sin(math.radians(alt)), 0.0)
    cos_alt = math.cos(math.radians(alt))
    direct = 0.85 * daylight * math.sqrt(sin_alt) * (1.0 - 0.85 * cloud)
    ambient = 0.05 + 0.5 * daylight * (1.0 - 0.25 * cloud)
    amb_f = np.array([1.0, 0.85, 0.85, 0.9, 0.9], np.float32) * ambient
    warm = float(np.clip(alt / 25.0, 0.0, 1.0))
    tint = np.array([1.0, 0.88 + 0.12 * warm, 0.74 + 0.26 * warm], np.float32)
    tint = _lerp((0.75, 0.85, 1.15), tint, daylight)
    # Sky colours: night -> dusk by daylight, dusk -> day by sun height; clouds grey it.
    zen = _lerp(_lerp((4, 6, 16), (50, 62, 112), daylight), (62, 118, 196), warm)
    hor = _lerp(_lerp((16, 20, 34), (235, 150, 95), daylight), (178, 200, 224), warm)
    grey = _lerp((20, 22, 26), (168, 172, 178), daylight) * (1.0 - 0.3 * cloud)
    zen = _lerp(zen, grey * 0.9, cloud * 0.9)
    hor = _lerp(hor, grey, cloud * 0.8)
    for arr in (amb_f, tint, zen, hor):
        arr.setflags(write=False)
    return daylight, night, sin_alt, cos_alt, direct, ambient, amb_f, tint, zen, hor


def frame_lighting(weather: Weather, yaw: float) -> Light:
    """Sun, sky and ambient light for the current weather and heading."""
    alt = float(weather.sun_altitude_deg if weather.sun_altitude_deg is not None else 55.0)
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


class _FxCache:
    """Per-renderer lazily built buffers (rain canvas, sky gradient and cloud geometry)."""

    def __init__(self) -> None:
        self.rain: np.ndarray | None = None
        self.sky_key: tuple | None = None
        self.sky_grad: list[np.ndarray] = []
        self.cloud_u = self.cloud_v = self.cloud_fade = np.zeros(0, np.float32)


def _cache(r: Any) -> _FxCache:
    cache = getattr(r, "_fx", None)
    if cache is None:
        cache = r._fx = _FxCache()
    return cache


def _sky(
    r: Any, light: Light, weather: Weather, cam: CameraState, yh: float, rows: int, mask: np.ndarray
) -> list[np.ndarray]:
    """Sky colour (three planes, one value per pixel of ``mask``) in the top ``rows`` rows:
    a vertical gradient plus perspective clouds."""
    cache = _cache(r)
    W = r.W
    key = (rows, float(light.sun_alt), weather.cloudiness)
    if cache.sky_key != key:
        y = np.arange(rows, dtype=np.float32) + 0.5
        el = np.maximum((yh - y) / r.f, 0.0)
        w = np.clip(el / 0.6, 0.0, 1.0) ** 0.7
        grad = light.horizon[None, :] * (1 - w[:, None]) + light.zenith[None, :] * w[:, None]
        cache.sky_grad = [grad[:, c].astype(np.float32) for c in range(3)]
        # clouds on a plane 1 km up, so they recede towards the horizon
        dist = 1000.0 / np.maximum(el, 0.03)
        ang = np.arctan(r.a)
        cache.cloud_u = (dist[:, None] * np.sin(ang)[None, :] / 40.0).astype(np.float32)
        cache.cloud_v = (dist[:, None] * np.cos(ang)[None, :] / 40.0).astype(np.float32)
        cache.cloud_fade = (np.clip(el / 0.05, 0.0, 1.0) * 0.7 + 0.3).astype(np.float32)
        cache.sky_key = key
    fi = np.flatnonzero(mask)
    row = fi // W
    planes = [g.take(row) for g in cache.sky_grad]
    cloud = weather.cloudiness / 100.0
    if cloud > 0.05:
        cu = (cache.cloud_u.ravel().take(fi) + np.float32((cam.s + 600.0 * cam.yaw) / 40.0)).astype(
            np.int32
        )
        cv = (cache.cloud_v.ravel().take(fi) + np.float32(cam.time * 0.5)).astype(np.int32)
        cu &= 255
        cv &= 255
        cv *= 256
        cv += cu
        n = r.tex_flat.take(cv)
        n += np.float32(1.0 - 2.0 * (1.0 - cloud))
        n *= 2.0
        np.maximum(n, 0.0, out=n)
        np.minimum(n, 1.0, out=n)
        n *= cache.cloud_fade.take(row)
        ccol = _lerp((30, 32, 38), (232, 232, 236), light.daylight) * (1.0 - 0.45 * cloud)
        for c in range(3):
            planes[c] += (np.float32(ccol[c]) - planes[c]) * n
    return planes


def apply_effects(
    r: Any,
    gid: np.ndarray,
    depth: np.ndarray,
    texv: np.ndarray,
    shadow: np.ndarray | None,
    contact: np.ndarray | None,
    is_part: np.ndarray | None,
    u: np.ndarray,
    s_row: np.ndarray,
    light: Light,
    weather: Weather,
    cam: CameraState,
) -> np.ndarray:
    """Shade the id map into the final RGB image (uint8), one colour plane at a time."""
    from sim._render import (
        G_BIKE,
        G_CURB,
        G_LITWIN,
        G_MARK,
        G_MARK_Y,
        G_ROAD,
        G_SIDEWALK,
        G_SKY,
        G_TRACK,
    )

    H, W = r.H, r.W
    wet = weather.wetness / 100.0
    rain = weather.precipitation / 100.0
    night = light.night
    # albedo table for this frame: wet ground is darker; the global tint folded in
    base = r.base_ground
    r.color[G_ROAD] = base[G_ROAD] * (1 - 0.45 * wet)
    r.color[G_TRACK] = base[G_TRACK] * (1 - 0.5 * wet)
    r.color[G_BIKE] = base[G_BIKE] * (1 - 0.45 * wet)
    r.color[G_SIDEWALK] = base[G_SIDEWALK] * (1 - 0.3 * wet)
    r.color[G_CURB] = base[G_CURB] * (1 - 0.3 * wet)
    r.color[G_MARK] = base[G_MARK] * (1 - 0.2 * wet)
    r.color[G_MARK_Y] = base[G_MARK_Y] * (1 - 0.2 * wet)
    lumtab = light.amb_f[r.facing] + light.dir_f[r.facing]
    lum = lumtab.take(gid)
    if shadow is not None:
        np.subtract(lum, np.float32(0.92 * light.dir_f[0]), out=lum, where=shadow)
    lum *= 1.0 + r.texamp.take(gid) * texv
    if contact is not None:
        np.multiply(lum, 1.0 - 0.55, out=lum, where=contact, dtype=np.float64, casting="unsafe")
    sky = gid == G_SKY
    tint = light.tint
    if night > 0.0:
        r.emit[G_LITWIN] = np.array((250, 200, 130), np.float32) * (0.9 * night)
        # the ego's headlights: a forward cone falling off with distance (warm white)
        cone = np.exp(-((r.a / 0.38) ** 2)).astype(np.float32)
        fall = np.minimum(1.0, (10.0 / np.maximum(depth, 1.0)) ** 2)
        head = (0.9 * night) * cone[None, :] * fall
        pool = None
        if r.town.has_lamps:  # sodium-orange pools under the street lights
            sp, off = r.town.lamp_spacing, r.town.lamp_offset
            dr = (s_row - off) % sp
            dr = np.minimum(dr, sp - dr)
            dl = (s_row - off - 0.5 * sp) % sp
            dl = np.minimum(dl, sp - dl)
            ul = r.town.layout.road_half - 1.5
            rows_r = (np.exp(-((dr / 7.0) ** 2)) * r.ground).astype(np.float32)
            rows_l = (np.exp(-((dl / 7.0) ** 2)) * r.ground).astype(np.float32)
            pool = rows_r[:, None] * np.exp(-(((u - ul) * (1 / 6.0)) ** 2)) + rows_l[
                :, None
            ] * np.exp(-(((u + ul) * (1 / 6.0)) ** 2))
            notground = gid >= G_SKY
            if is_part is not None:
                notground |= is_part
            pool[notground] = 0.0
            pool *= 1.3 * night
        shade = 1.0 + 0.2 * texv
        lights = [head * (w * shade) for w in (1.0, 0.95, 0.85)]
        if pool is not None:
            for c, w in enumerate((1.0, 0.72, 0.4)):
                lights[c] += pool * (w * shade)
        planes = [r.color[:, c].take(gid) * (lum * tint[c] + lights[c]) for c in range(3)]
        em = cv2.merge([r.emit[:, c].take(gid) for c in range(3)])
        glow = cv2.GaussianBlur(em, (0, 0), max(1.0, W / 90.0))
        em += 1.2 * glow
        for c in range(3):
            planes[c] += em[..., c]
    else:
        planes = [r.color[:, c].take(gid) * (lum * tint[c]) for c in range(3)]
    # sky
    top = r.top
    fog_beta = weather.fog_beta + RAIN_BETA * weather.precipitation
    if top > 0:
        sky_top = sky[:top]
        if sky_top.any():
            sky_vals = _sky(r, light, weather, cam, r.yh, top, sky_top)
            for c in range(3):
                planes[c][:top][sky_top] = sky_vals[c]
    # wet road reflects what stands above it (mirrored about the horizon, softened)
    if wet > 0.02:
        refl = (gid == G_ROAD) | (gid == G_MARK) | (gid == G_SIDEWALK) | (gid == G_MARK_Y)
        refl |= (gid == G_TRACK) | (gid == G_BIKE)
        if is_part is not None:
            refl &= ~is_part
        if refl.any():
            ym = np.clip((2 * r.yh - np.arange(H)).astype(np.int64), 0, H - 1)
            k = (0.45 * wet) * (1.0 + 0.3 * texv) * refl
            for c in range(3):
                mirror = cv2.blur(planes[c][ym], (1, 5))
                planes[c] += k * (mirror - planes[c])
    # fog and haze (Koschmieder) on the true depth; the sky fades to airlight with fog only
    beta = HAZE_BETA + fog_beta
    t = np.exp(-beta * depth)
    if top > 0:
        np.copyto(t[:top], np.float32(math.exp(-fog_beta * 1500.0)), where=sky[:top])
    air = light.airlight
    if night > 0 and fog_beta > 0:
        air = air + night * np.float32(18.0) * min(fog_beta / 0.01, 3.0)
    one_t = 1.0 - t
    for c in range(3):
        planes[c] *= t
        planes[c] += np.float32(air[c]) * one_t
    # rain: darker, streaks
    if rain > 0.0:
        cache = _cache(r)
        if cache.rain is None:
            slant = 0.1 + 0.5 * weather.wind_intensity / 100.0
            cache.rain = rain_canvas(np.random.default_rng(r.fx_rng_seed), H, W, slant)
        oy = int(cam.frame * H * 0.61) % H
        ox = int(cam.frame * W * 0.13) % W
        streak = cache.rain[oy : oy + H, ox : ox + W] * np.float32(
            rain * (60.0 + 120 * light.daylight)
        )
        for c in range(3):
            planes[c] *= 1.0 - 0.22 * rain
            planes[c] += streak
    # glare from a low sun in the field of view
    if light.direct > 0.05 and light.sun_alt < 35.0:
        cam_az = light.az_rel + cam.heading
        if abs(cam_az) < math.radians(75.0):
            sx = r.cx + r.f * math.tan(cam_az)
            sy = r.yh - r.f * math.tan(math.radians(light.sun_alt))
            strength = light.direct * float(np.clip((35.0 - light.sun_alt) / 25.0, 0, 1))
            sig = 0.18 * W
            gx = np.exp(-(((np.arange(W) - sx) / sig) ** 2)).astype(np.float32)
            gy = np.exp(-(((np.arange(H) - sy) / sig) ** 2)).astype(np.float32)
            core = np.outer(gy, gx)
            glare = (strength * 230.0) * (core**3 + 0.35 * core)
            for c, w in enumerate((1.0, 0.93, 0.8)):
                planes[c] += np.float32(w) * glare
    img = cv2.merge(planes)
    np.clip(img, 0, 255, out=img)
    # a camera is never perfectly sharp: soften every edge a little
    return cv2.GaussianBlur(img.astype(np.uint8), (3, 3), 0.55)
