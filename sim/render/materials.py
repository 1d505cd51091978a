"""The material table: colour, label, facing, texture amplitude and light emission per id.

The id buffer of a frame indexes this table (slots in ``sim.render.ids``). Fixed materials are
set once from the town style; the road-side layers' column slots and the object parts' slots
are refilled every frame by the renderer.
"""

from __future__ import annotations

import numpy as np

from sim.common.classes import BUILDING, ROAD, SIDEWALK, SKY, TERRAIN
from sim.render import ids
from sim.world.styles import TownStyle

# Texture amplitude (relative brightness swing of the shared noise) by surface.
LAYER_TEXTURE = 0.28  # façades, walls, fences, hedges
PART_TEXTURE = 0.14  # object parts (screen-space noise)
# Wet ground is darker: albedo lost at full wetness, by material.
WET_DARKENING = {
    ids.G_ROAD: 0.45,
    ids.G_TRACK: 0.5,
    ids.G_BIKE: 0.45,
    ids.G_SIDEWALK: 0.3,
    ids.G_CURB: 0.3,
    ids.G_MARK: 0.2,
    ids.G_MARK_Y: 0.2,
}
LIT_WINDOW_RGB = (250, 200, 130)  # warm interior light
LIT_WINDOW_GLOW = 0.9  # emission of lit windows at full night


class MaterialTable:
    """Per-id surface properties for frames ``width`` pixels wide, for one town style."""

    def __init__(self, style: TownStyle, width: int) -> None:
        self.width = width
        n = ids.table_size(width)
        self.color = np.zeros((n, 3), np.float32)
        self.label = np.zeros(n, np.uint8)
        self.facing = np.zeros(n, np.uint8)
        self.emit = np.zeros((n, 3), np.float32)
        self.texamp = np.zeros(n, np.float32)
        st = style
        fixed = {  # id: (RGB, label, texture amplitude)
            ids.G_ROAD: (st.road_rgb, ROAD, 0.22),
            ids.G_SIDEWALK: (st.sidewalk_rgb, SIDEWALK, 0.25),
            ids.G_TERRAIN: (st.terrain_rgb, TERRAIN, 0.5),
            ids.G_MARK: ((205, 205, 200), ROAD, 0.1),
            ids.G_MARK_Y: ((210, 175, 60), ROAD, 0.1),
            ids.G_SKY: ((0, 0, 0), SKY, 0.0),
            ids.G_WINDOW: ((58, 70, 88), BUILDING, 0.3),
            ids.G_LITWIN: ((58, 70, 88), BUILDING, 0.1),
            ids.G_CURB: (tuple(min(255, int(c * 1.25)) for c in st.sidewalk_rgb), SIDEWALK, 0.1),
            ids.G_TRACK: (tuple(int(c * 0.88) for c in st.road_rgb), ROAD, 0.18),
            ids.G_BIKE: ((128, 84, 78) if st.name == "urban" else (96, 112, 92), ROAD, 0.2),
        }
        for gid, (rgb, lab, amp) in fixed.items():
            self.color[gid] = rgb
            self.label[gid] = lab
            self.texamp[gid] = amp
            self.facing[gid] = ids.F_UP
        self.base_ground = self.color[: ids.NG].copy()  # dry albedo, before the weather
        self.facing[ids.G_WINDOW] = self.facing[ids.G_LITWIN] = ids.F_BACK
        parts = ids.first_part_slot(width)
        self.texamp[ids.NG : parts] = LAYER_TEXTURE
        self.texamp[parts:] = PART_TEXTURE

    def set_layer(self, layer: int, rgb: np.ndarray, label: np.ndarray, facing: np.ndarray) -> None:
        """Fill one road-side layer's column slots for this frame."""
        slots = ids.layer_slots(layer, self.width)
        self.color[slots] = rgb
        self.label[slots] = label
        self.facing[slots] = facing

    def set_parts(
        self, n: int, color: np.ndarray, label: np.ndarray, facing: np.ndarray, emit: np.ndarray
    ) -> None:
        """Fill the slots of object parts 1..n for this frame."""
        p = slice(ids.first_part_slot(self.width), ids.first_part_slot(self.width) + n)
        self.color[p] = color[:n]
        self.label[p] = label[:n]
        self.facing[p] = facing[:n]
        self.emit[p] = emit[:n]

    def clear_part_emission(self, n: int) -> None:
        """Forget this frame's light-emitting parts (the next frame reuses the slots)."""
        start = ids.first_part_slot(self.width)
        self.emit[start : start + n] = 0.0

    def wet(self, wetness: float) -> None:
        """Darken the ground materials for ``wetness`` in [0, 1] (from their dry albedo)."""
        for gid, darkening in WET_DARKENING.items():
            self.color[gid] = self.base_ground[gid] * (1 - darkening * wetness)

    def light_windows(self, night: float) -> None:
        """Lit windows glow warm at night (``night`` in [0, 1])."""
        self.emit[ids.G_LITWIN] = np.array(LIT_WINDOW_RGB, np.float32) * (LIT_WINDOW_GLOW * night)
