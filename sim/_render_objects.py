"""Dispatch from the per-frame object table to the sprite drawer.

Object table columns: s, u, type, length, width, height (or size), r, g, b, seed,
direction (+1 same as the ego, -1 oncoming), state (walk phase, signal state, flags).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim._render_sprites import (
    T_BUSH,
    T_CLUTTER,
    T_LAMP,
    T_PERSON,
    T_POLE,
    T_SIGN,
    T_TLIGHT,
    T_TREE,
    VEHICLE_LABEL,
    SpriteDrawer,
)

if TYPE_CHECKING:
    from sim._render import CameraState

N_COLS = 12


def draw_object(spr: SpriteDrawer, row: np.ndarray, cam: CameraState, night: float) -> None:
    d = float(row[0]) - cam.s
    u = float(row[1])
    typ = int(row[2])
    color = row[6:9].astype(np.float32)
    if typ in VEHICLE_LABEL:
        spr.vehicle(typ, d, u, float(row[3]), float(row[4]), float(row[5]), color,
                    float(row[10]), night)
    elif d < 0.6:
        return
    elif typ == T_PERSON:
        spr.person(d, u, color, float(row[9]), float(row[11]))
    elif typ == T_TREE:
        spr.tree(d, u, float(row[5]), color, float(row[9]))
    elif typ == T_BUSH:
        spr.bush(d, u, float(row[5]), color)
    elif typ == T_POLE:
        spr.pole(d, u, color, wooden=row[11] > 0, with_sign=row[4] > 0.6)
    elif typ == T_LAMP:
        spr.lamp(d, u, color, night)
    elif typ == T_SIGN:
        spr.sign(d, u, float(row[9]), facing_ego=u > 0)
    elif typ == T_CLUTTER:
        spr.clutter(d, u, float(row[4]), color)
    elif typ == T_TLIGHT:
        spr.traffic_light(d, u, int(row[11]), facing_ego=u > 0, night=night, mast=row[4] > 0.5)
