"""Shading the id map into the final image: light, night lights, sky, wet roads, fog, rain, glare.

``Effects.shade`` runs the stages in order, one colour plane at a time:

1. ``_luminance``: ambient plus direct light by each surface's facing, building and contact
   shadows, texture;
2. ``_albedo_planes``: material colour times light, plus (at night) headlights, sodium pools
   under the street lights and glowing lamps and windows;
3. ``_paint_sky``: the sky gradient and clouds (``sim.render.sky``);
4. ``_wet_reflections``: a wet road mirrors what stands above it;
5. ``_fog``: Koschmieder's law on the true depth, I = R t + L (1 - t) with t = exp(-beta d):
   beta is a faint constant haze (atmospheric perspective, always present) plus
   ``Weather.fog_beta`` plus a little for rain; L is the airlight (the horizon sky's colour);
6. ``_rain``: darker, with streaks; 7. ``_glare``: a low sun in view; 8. ``_lens``: a camera is
   never perfectly sharp.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from sim.render.buffers import FrameBuffers
from sim.render.camera import Camera, CameraState
from sim.render.ids import G_BIKE, G_MARK, G_MARK_Y, G_ROAD, G_SIDEWALK, G_SKY, G_TRACK
from sim.render.lighting import Light
from sim.render.materials import MaterialTable
from sim.render.sky import Sky
from sim.render.textures import rain_canvas
from sim.world.config import Weather
from sim.world.town_map import TownMap

# ---- light and shadow
SHADOW_BLOCKS = 0.92  # share of the direct light a building shadow takes away
CONTACT_SHADOW = 0.55  # darkening under vehicles and tree canopies
# ---- night lights
HEADLIGHT_STRENGTH = 0.9
HEADLIGHT_CONE = 0.38  # ray slope (lateral m per m ahead) at which the beam falls to 1/e
HEADLIGHT_FULL_WITHIN = 10.0  # metres; beyond, the light falls off with distance squared
HEADLIGHT_RGB = (1.0, 0.95, 0.85)  # warm white
LIT_TEXTURE = 0.2  # how much the ground texture modulates artificial light
POOL_STRENGTH = 1.3  # sodium-orange light pools under the street lights
POOL_LENGTH = 7.0  # metres along the road at which a pool falls to 1/e
POOL_WIDTH = 6.0  # metres across the road
POOL_INSET = 1.5  # a pool's centre lies this far inside the kerb
SODIUM_RGB = (1.0, 0.72, 0.4)
GLOW_SIGMA_DIVISOR = 90.0  # glow around lamps: blur sigma = frame width / this (>= 1 px)
GLOW_GAIN = 1.2
# ---- wet roads
WET_REFLECTS_ABOVE = 0.02  # wetness below which roads do not mirror
REFLECTIVITY = 0.45  # mirror share of a fully wet road
REFLECTION_TEXTURE = 0.3  # the texture breaks up the reflection
REFLECTION_BLUR = (1, 5)  # (width, height) of the box blur that softens the mirror image
# ---- fog and haze
HAZE_BETA = 0.0012  # always-on atmospheric perspective (1/m)
RAIN_BETA = 0.00012  # extra extinction per unit of precipitation (1/m)
SKY_DISTANCE = 1500.0  # metres of fog between the camera and the sky
NIGHT_FOG_GLOW = 18.0  # fog scatters the town's light at night: airlight brightening ...
NIGHT_FOG_GLOW_BETA = 0.01  # ... per this much extinction ...
NIGHT_FOG_GLOW_MAX = 3.0  # ... up to this many times
# ---- rain
RAIN_DIMMING = 0.22  # share of the light a downpour takes away
RAIN_STREAK_NIGHT, RAIN_STREAK_DAY = 60.0, 120  # streak brightness at night, added by day
RAIN_DRIFT = (0.61, 0.13)  # fractions of the height and width the streaks move per frame
RAIN_SLANT, RAIN_WIND_SLANT = 0.1, 0.5  # streak slant (dx per dy) still air, added by wind
# ---- glare from a low sun
GLARE_BELOW_ALT = 35.0  # degrees: no glare from a higher sun ...
GLARE_RAMP = 25.0  # ... full glare this many degrees lower
GLARE_MIN_DIRECT = 0.05  # direct light without which there is no glare
GLARE_FIELD = 75.0  # degrees off the camera's axis at which the sun still glares
GLARE_SIGMA = 0.18  # glare radius, as a share of the frame width
GLARE_GAIN = 230.0
GLARE_HALO = 0.35  # weight of the wide halo around the sharp core
GLARE_RGB = (1.0, 0.93, 0.8)
# ---- lens
LENS_BLUR_SIGMA = 0.55  # 3x3 Gaussian


class Effects:
    """Shades frames for one camera in one town; owns its sky and rain caches."""

    def __init__(
        self, camera: Camera, town: TownMap, noise_flat: np.ndarray, rain_seed: int
    ) -> None:
        self.camera = camera
        self.town = town
        self.sky = Sky(camera, noise_flat)
        self.rain_seed = rain_seed
        self._rain: np.ndarray | None = None  # streak canvas, drawn at the first rainy frame

    def shade(
        self,
        buf: FrameBuffers,
        materials: MaterialTable,
        light: Light,
        weather: Weather,
        cam: CameraState,
    ) -> np.ndarray:
        """The final RGB image (uint8) of the frame in ``buf``."""
        materials.wet(weather.wetness / 100.0)
        lum = self._luminance(buf, materials, light)
        planes = self._albedo_planes(buf, materials, light, lum)
        sky = buf.gid == G_SKY
        self._paint_sky(planes, sky, light, weather, cam)
        self._wet_reflections(planes, buf, weather.wetness / 100.0)
        self._fog(planes, buf.depth, sky, light, weather)
        self._rain_on(planes, light, weather, cam)
        self._glare(planes, light, cam)
        return self._lens(planes)

    # ------------------------------------------------------------------ stages
    def _luminance(self, buf: FrameBuffers, materials: MaterialTable, light: Light) -> np.ndarray:
        lumtab = light.amb_f[materials.facing] + light.dir_f[materials.facing]
        lum = lumtab.take(buf.gid)
        if buf.shadow is not None:
            blocked = np.float32(SHADOW_BLOCKS * light.dir_f[0])
            np.subtract(lum, blocked, out=lum, where=buf.shadow)
        lum *= 1.0 + materials.texamp.take(buf.gid) * buf.texv
        if buf.contact is not None:
            np.multiply(
                lum,
                1.0 - CONTACT_SHADOW,
                out=lum,
                where=buf.contact,
                dtype=np.float64,
                casting="unsafe",
            )
        return lum

    def _albedo_planes(
        self, buf: FrameBuffers, materials: MaterialTable, light: Light, lum: np.ndarray
    ) -> list[np.ndarray]:
        gid, tint, night = buf.gid, light.tint, light.night
        if night <= 0.0:
            return [materials.color[:, c].take(gid) * (lum * tint[c]) for c in range(3)]
        materials.light_windows(night)
        lights = self._night_lights(buf, night)
        planes = [materials.color[:, c].take(gid) * (lum * tint[c] + lights[c]) for c in range(3)]
        em = cv2.merge([materials.emit[:, c].take(gid) for c in range(3)])
        glow = cv2.GaussianBlur(em, (0, 0), max(1.0, self.camera.W / GLOW_SIGMA_DIVISOR))
        em += GLOW_GAIN * glow
        for c in range(3):
            planes[c] += em[..., c]
        return planes

    def _night_lights(self, buf: FrameBuffers, night: float) -> list[np.ndarray]:
        """Artificial light per plane: the ego's headlights, the street lights' pools."""
        cone = np.exp(-((self.camera.a / HEADLIGHT_CONE) ** 2)).astype(np.float32)
        fall = np.minimum(1.0, (HEADLIGHT_FULL_WITHIN / np.maximum(buf.depth, 1.0)) ** 2)
        head = (HEADLIGHT_STRENGTH * night) * cone[None, :] * fall
        pool = self._lamp_pools(buf, night) if self.town.has_lamps else None
        shade = 1.0 + LIT_TEXTURE * buf.texv
        lights = [head * (w * shade) for w in HEADLIGHT_RGB]
        if pool is not None:
            for c, w in enumerate(SODIUM_RGB):
                lights[c] += pool * (w * shade)
        return lights

    def _lamp_pools(self, buf: FrameBuffers, night: float) -> np.ndarray:
        """Sodium-orange pools on the ground under the street lights (both sides)."""
        town, ground = self.town, self.camera.ground
        sp, off = town.lamp_spacing, town.lamp_offset
        dr = (buf.s_row - off) % sp  # distance along the road to the nearest right lamp
        dr = np.minimum(dr, sp - dr)
        dl = (buf.s_row - off - 0.5 * sp) % sp  # ... and left lamp (half a spacing on)
        dl = np.minimum(dl, sp - dl)
        ul = town.layout.road_half - POOL_INSET
        rows_r = (np.exp(-((dr / POOL_LENGTH) ** 2)) * ground).astype(np.float32)
        rows_l = (np.exp(-((dl / POOL_LENGTH) ** 2)) * ground).astype(np.float32)
        u = buf.u
        pool = rows_r[:, None] * np.exp(-(((u - ul) * (1 / POOL_WIDTH)) ** 2)) + rows_l[
            :, None
        ] * np.exp(-(((u + ul) * (1 / POOL_WIDTH)) ** 2))
        notground = buf.gid >= G_SKY
        if buf.is_part is not None:
            notground |= buf.is_part
        pool[notground] = 0.0
        pool *= POOL_STRENGTH * night
        return pool

    def _paint_sky(
        self,
        planes: list[np.ndarray],
        sky: np.ndarray,
        light: Light,
        weather: Weather,
        cam: CameraState,
    ) -> None:
        top = self.camera.top
        if top <= 0:
            return
        sky_top = sky[:top]
        if sky_top.any():
            colors = self.sky.colors(light, weather, cam, top, sky_top)
            for c in range(3):
                planes[c][:top][sky_top] = colors[c]

    def _wet_reflections(self, planes: list[np.ndarray], buf: FrameBuffers, wet: float) -> None:
        """A wet road reflects what stands above it (mirrored about the horizon, softened)."""
        if wet <= WET_REFLECTS_ABOVE:
            return
        gid = buf.gid
        refl = (gid == G_ROAD) | (gid == G_MARK) | (gid == G_SIDEWALK) | (gid == G_MARK_Y)
        refl |= (gid == G_TRACK) | (gid == G_BIKE)
        if buf.is_part is not None:
            refl &= ~buf.is_part
        if not refl.any():
            return
        H, yh = self.camera.H, self.camera.yh
        ym = np.clip((2 * yh - np.arange(H)).astype(np.int64), 0, H - 1)
        k = (REFLECTIVITY * wet) * (1.0 + REFLECTION_TEXTURE * buf.texv) * refl
        for c in range(3):
            mirror = cv2.blur(planes[c][ym], REFLECTION_BLUR)
            planes[c] += k * (mirror - planes[c])

    def _fog(
        self,
        planes: list[np.ndarray],
        depth: np.ndarray,
        sky: np.ndarray,
        light: Light,
        weather: Weather,
    ) -> None:
        """Fog and haze (Koschmieder) on the true depth; the sky fades to airlight with fog."""
        top = self.camera.top
        fog_beta = weather.fog_beta + RAIN_BETA * weather.precipitation
        t = np.exp(-(HAZE_BETA + fog_beta) * depth)
        if top > 0:
            np.copyto(t[:top], np.float32(math.exp(-fog_beta * SKY_DISTANCE)), where=sky[:top])
        air = light.airlight
        if light.night > 0 and fog_beta > 0:
            glow = min(fog_beta / NIGHT_FOG_GLOW_BETA, NIGHT_FOG_GLOW_MAX)
            air = air + light.night * np.float32(NIGHT_FOG_GLOW) * glow
        one_t = 1.0 - t
        for c in range(3):
            planes[c] *= t
            planes[c] += np.float32(air[c]) * one_t

    def _rain_on(
        self, planes: list[np.ndarray], light: Light, weather: Weather, cam: CameraState
    ) -> None:
        """Rain darkens the scene and streaks it (a canvas that moves every frame)."""
        rain = weather.precipitation / 100.0
        if rain <= 0.0:
            return
        H, W = self.camera.H, self.camera.W
        if self._rain is None:
            slant = RAIN_SLANT + RAIN_WIND_SLANT * weather.wind_intensity / 100.0
            self._rain = rain_canvas(np.random.default_rng(self.rain_seed), H, W, slant)
        oy = int(cam.frame * H * RAIN_DRIFT[0]) % H
        ox = int(cam.frame * W * RAIN_DRIFT[1]) % W
        brightness = rain * (RAIN_STREAK_NIGHT + RAIN_STREAK_DAY * light.daylight)
        streak = self._rain[oy : oy + H, ox : ox + W] * np.float32(brightness)
        for c in range(3):
            planes[c] *= 1.0 - RAIN_DIMMING * rain
            planes[c] += streak

    def _glare(self, planes: list[np.ndarray], light: Light, cam: CameraState) -> None:
        """Glare from a low sun in the field of view: a bright core and a wide halo."""
        if not (light.direct > GLARE_MIN_DIRECT and light.sun_alt < GLARE_BELOW_ALT):
            return
        cam_az = light.az_rel + cam.heading
        if abs(cam_az) >= math.radians(GLARE_FIELD):
            return
        c = self.camera
        H, W = c.H, c.W
        sx = c.cx + c.f * math.tan(cam_az)
        sy = c.yh - c.f * math.tan(math.radians(light.sun_alt))
        ramp = float(np.clip((GLARE_BELOW_ALT - light.sun_alt) / GLARE_RAMP, 0, 1))
        strength = light.direct * ramp
        sig = GLARE_SIGMA * W
        gx = np.exp(-(((np.arange(W) - sx) / sig) ** 2)).astype(np.float32)
        gy = np.exp(-(((np.arange(H) - sy) / sig) ** 2)).astype(np.float32)
        core = np.outer(gy, gx)
        glare = (strength * GLARE_GAIN) * (core**3 + GLARE_HALO * core)
        for ch, w in enumerate(GLARE_RGB):
            planes[ch] += np.float32(w) * glare

    @staticmethod
    def _lens(planes: list[np.ndarray]) -> np.ndarray:
        """Merge the planes into uint8 RGB and soften every edge a little."""
        img = cv2.merge(planes)
        np.clip(img, 0, 255, out=img)
        return cv2.GaussianBlur(img.astype(np.uint8), (3, 3), LENS_BLUR_SIGMA)
