"""The sky: a vertical gradient from the horizon's colour to the zenith's, plus moving clouds.

Clouds lie on a plane ``CLOUD_HEIGHT`` up, textured with the renderer's tiled noise, so they
recede towards the horizon and drift as the ego drives and as time passes.
"""

from __future__ import annotations

import numpy as np

from sim.render.camera import Camera, CameraState
from sim.render.lighting import Light, lerp
from sim.world.config import Weather

GRADIENT_SPAN = 0.6  # elevation (ray slope) over which the horizon colour turns to the zenith's
GRADIENT_GAMMA = 0.7
CLOUD_HEIGHT = 1000.0  # m
CLOUD_MIN_ELEVATION = 0.03  # clouds nearer the horizon are drawn at this elevation's distance
CLOUD_CELL = 40.0  # metres of cloud per noise cell
CLOUD_TURN_SHIFT = 600.0  # metres the cloud texture shifts per radian the road turns
CLOUD_DRIFT = 0.5  # noise cells per second
CLOUDLESS_BELOW = 0.05  # cloud cover with no clouds drawn
CLOUD_HAZE_ELEVATION = 0.05  # clouds fade in the haze below this elevation ...
CLOUD_HAZE_FLOOR = 0.3  # ... to this opacity at the horizon
CLOUD_RGB = {"night": (30, 32, 38), "day": (232, 232, 236)}
CLOUD_DARKENING = 0.45  # how much a full cover darkens the clouds themselves


class Sky:
    """Paints the sky for one camera; caches the geometry of its gradient and cloud plane."""

    def __init__(self, camera: Camera, noise_flat: np.ndarray) -> None:
        self.camera = camera
        self.noise_flat = noise_flat
        self._key: tuple | None = None
        self._gradient: list[np.ndarray] = []
        self._cloud_u = self._cloud_v = self._cloud_fade = np.zeros(0, np.float32)

    def colors(
        self, light: Light, weather: Weather, cam: CameraState, rows: int, mask: np.ndarray
    ) -> list[np.ndarray]:
        """Sky colour (three planes, one value per pixel of ``mask``) in the top ``rows`` rows."""
        self._prepare(light, weather, rows)
        fi = np.flatnonzero(mask)
        row = fi // self.camera.W
        planes = [g.take(row) for g in self._gradient]
        cloud = weather.cloudiness / 100.0
        if cloud > CLOUDLESS_BELOW:
            shift_u = np.float32((cam.s + CLOUD_TURN_SHIFT * cam.yaw) / CLOUD_CELL)
            cu = (self._cloud_u.ravel().take(fi) + shift_u).astype(np.int32)
            cv = (self._cloud_v.ravel().take(fi) + np.float32(cam.time * CLOUD_DRIFT)).astype(
                np.int32
            )
            cu &= 255
            cv &= 255
            cv *= 256
            cv += cu
            n = self.noise_flat.take(cv)  # cloud density: the noise above a cover threshold
            n += np.float32(1.0 - 2.0 * (1.0 - cloud))
            n *= 2.0
            np.maximum(n, 0.0, out=n)
            np.minimum(n, 1.0, out=n)
            n *= self._cloud_fade.take(row)
            ccol = lerp(CLOUD_RGB["night"], CLOUD_RGB["day"], light.daylight) * (
                1.0 - CLOUD_DARKENING * cloud
            )
            for c in range(3):
                planes[c] += (np.float32(ccol[c]) - planes[c]) * n
        return planes

    def _prepare(self, light: Light, weather: Weather, rows: int) -> None:
        """(Re)build the gradient and cloud geometry when the rows or the light change."""
        key = (rows, float(light.sun_alt), weather.cloudiness)
        if self._key == key:
            return
        cam = self.camera
        y = np.arange(rows, dtype=np.float32) + 0.5
        el = np.maximum((cam.yh - y) / cam.f, 0.0)
        w = np.clip(el / GRADIENT_SPAN, 0.0, 1.0) ** GRADIENT_GAMMA
        grad = light.horizon[None, :] * (1 - w[:, None]) + light.zenith[None, :] * w[:, None]
        self._gradient = [grad[:, c].astype(np.float32) for c in range(3)]
        # clouds on a plane CLOUD_HEIGHT up, so they recede towards the horizon
        dist = CLOUD_HEIGHT / np.maximum(el, CLOUD_MIN_ELEVATION)
        ang = np.arctan(cam.a)
        self._cloud_u = (dist[:, None] * np.sin(ang)[None, :] / CLOUD_CELL).astype(np.float32)
        self._cloud_v = (dist[:, None] * np.cos(ang)[None, :] / CLOUD_CELL).astype(np.float32)
        fade = np.clip(el / CLOUD_HAZE_ELEVATION, 0.0, 1.0) * (1 - CLOUD_HAZE_FLOOR)
        self._cloud_fade = (fade + CLOUD_HAZE_FLOOR).astype(np.float32)
        self._key = key
