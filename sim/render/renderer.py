"""The camera renderer: ground, road-side layers and objects into image, labels and depth.

Geometry is exact per pixel for the ground plane (``sim.render.ground``) and the vertical
layers (``sim.render.layers``). Objects are painted back to front as camera-facing parts
(``sim.render.objects``, ``sim.render.sprites``) and resolved against the scene's depth.
Every pixel then holds an id into the material table (``sim.render.materials``); lighting,
night lights, wet roads, rain, fog and glare shade it into the image last
(``sim.render.effects``). Depth is measured along the camera's forward axis, in metres; the sky
has depth +inf.

Speed: everything that depends only on the camera (row distances, pixel rays) is computed
once; the ground's materials and markings come from lookup tables.
"""

from __future__ import annotations

import math

import numpy as np

from sim.render.atlas import build_atlas
from sim.render.buffers import FrameBuffers
from sim.render.camera import Camera, CameraState
from sim.render.effects import Effects
from sim.render.ground import Ground
from sim.render.ids import G_SKY, MAX_PARTS, first_part_slot
from sim.render.layers import Layers
from sim.render.lighting import frame_lighting
from sim.render.materials import MaterialTable
from sim.render.objects import draw_objects
from sim.render.sprites import SpriteDrawer
from sim.render.textures import tileable_noise
from sim.world.config import Weather, WorldConfig
from sim.world.town_map import TownMap

# Objects cast ground shadows only under a sun this high and this bright.
OBJECT_SHADOW_MIN_ALT, OBJECT_SHADOW_MIN_DIRECT = 8.0, 0.1


class Renderer:
    """Renders one camera; holds everything that does not change between frames."""

    def __init__(self, config: WorldConfig, town: TownMap, rng: np.random.Generator) -> None:
        self.town = town
        self.camera = camera = Camera(config)
        H, W = camera.H, camera.W
        # procedural textures, drawn in a fixed order from the renderer's generator
        noise = tileable_noise(rng, 256, base=8)
        self._noise_flat = noise.ravel()
        top_noise = tileable_noise(rng, 256, base=4)[0].copy()
        # object parts get screen-space texture (they have no surface coordinates)
        self._part_texture = (
            0.5 * tileable_noise(rng, 256, base=32)[np.arange(H) % 256][:, np.arange(W) % 256]
        )
        rain_seed = int(rng.integers(2**31))
        atlas = build_atlas(rng, noise)
        self._ground = Ground(town, camera)
        self._layers = Layers(town, camera, atlas, top_noise)
        self._sprites = SpriteDrawer(camera, list(town.layout.lanes_right))
        self._materials = MaterialTable(town.style, W)
        self._effects = Effects(camera, town, self._noise_flat, rain_seed)
        self._part_depth = np.full(MAX_PARTS + 1, np.inf, np.float32)  # by part id; 0: none

    def render(
        self, cam: CameraState, weather: Weather, objects: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image (uint8 RGB), labels (uint8 trainIds) and depth (float32) of one frame.

        ``objects``: the frame's object table (``sim.world.objects.OBJECT_DTYPE``).
        """
        camera, town = self.camera, self.town
        light = frame_lighting(weather, cam.yaw)

        # ---- the ground: materials, texture, building shadows ----
        s_row, u = self._ground.lateral_offsets(cam)
        inter_row = town.in_intersection(s_row) & camera.ground
        gid = self._ground.ids(s_row, u, inter_row)
        depth = camera.depth0.copy()
        texv = self._ground.texture(s_row, u, self._noise_flat)
        shadow = self._ground.building_shadows(s_row, u, inter_row, light)
        buf = FrameBuffers(gid, depth, texv, u, s_row, shadow)

        # ---- road-side layers ----
        self._layers.paint(cam, buf, self._materials)

        # ---- objects ----
        spr = self._sprites
        spr.reset()
        sun = None
        if light.direct > OBJECT_SHADOW_MIN_DIRECT and light.sun_alt > OBJECT_SHADOW_MIN_ALT:
            cot = 1.0 / math.tan(math.radians(light.sun_alt))
            sun = (-math.cos(light.az_rel) * cot, -math.sin(light.az_rel) * cot)
        spr.set_view(cam.u, cam.heading, cam.curvature, sun)
        draw_objects(spr, objects, cam, light.night)
        spr.finish()
        n = spr.n
        if n:
            self._part_depth[1 : n + 1] = spr.depth[:n]
            sd = self._part_depth.take(spr.buf)
            is_part = buf.is_part = sd < depth
            np.copyto(depth, sd, where=is_part)
            np.copyto(gid, spr.buf + (first_part_slot(camera.W) - 1), where=is_part)
            np.copyto(texv, self._part_texture, where=is_part)
            if shadow is not None:
                shadow &= ~is_part
            self._materials.set_parts(n, spr.color, spr.label, spr.facing, spr.emit)
        if spr.has_shadow:
            contact = buf.contact = spr.shadow > 0
            contact &= gid < G_SKY
            if buf.is_part is not None:
                contact &= ~buf.is_part

        # ---- labels, then shading ----
        buf.gid = gid.astype(np.intp)  # native indices make every table lookup below faster
        labels = self._materials.label.take(buf.gid)
        img = self._effects.shade(buf, self._materials, light, weather, cam)
        self._part_depth[1 : n + 1] = np.inf
        self._materials.clear_part_emission(n)
        return img, labels, depth
