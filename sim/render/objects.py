"""Objects of the per-frame table painted back to front: far ones as one rectangle each,
near ones through the sprite drawer's detailed parts.

Object table columns: s, u, type, length, width, height (or size), r, g, b, seed,
direction (+1 same as the ego, -1 oncoming), state (walk phase, signal state, flags).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim._render_sprites import (
    F_BACK,
    MAX_PARTS,
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
from sim._town import BIKE, MOTO, RIDER

if TYPE_CHECKING:
    from sim._render import CameraState, Renderer

N_COLS = 12


def draw_object(spr: SpriteDrawer, row: np.ndarray, cam: CameraState, night: float) -> None:
    d = float(row[0]) - cam.s
    u = float(row[1])
    typ = int(row[2])
    color = row[6:9].astype(np.float32)
    if typ in VEHICLE_LABEL:
        spr.vehicle(
            typ, d, u, float(row[3]), float(row[4]), float(row[5]), color, float(row[10]), night
        )
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


# Small-object stand-ins, by object type (see _render_sprites.T_*): half-width (m; trees and
# bushes: a fraction of their size), bottom height (fraction of size + absolute m), fixed top.
_TINY_HW = np.array([0.3, 0.8, 0.12, 0.1, 0.3, 0.24, 0, 0, 0, 0, 0, 0, 0.22, 0.3])
_TINY_Y0 = np.array([0.3, 0, 0, 0, 0, 0, 0.15, 0.15, 0.15, 0.15, 0, 0, 0, 0])
_TINY_Y0_ABS = np.array([0, 0, 0, 0, 2.2, 3.1, 0, 0, 0, 0, 0, 0, 0, 0])
_TINY_TOP_ABS = np.array([0, 0, 7.5, 8.0, 2.9, 4.3, 0, 0, 0, 0, 0, 0, 0, 1.0])
_TINY_LABEL = np.array([8, 8, 5, 5, 7, 6, 13, 14, 15, 16, 17, 18, 11, 255], np.uint8)


def draw_objects(r: Renderer, objects: np.ndarray, cam: CameraState, night: float) -> None:
    """Paint objects back to front; small (far) ones as a single rectangle each."""
    if len(objects) == 0:
        return
    d = objects[:, 0] - cam.s
    near = d - 0.5 * objects[:, 3]
    size_px = r.f * objects[:, 5] / np.maximum(near, 0.5)
    keep = (d + 0.5 * objects[:, 3] > 0.6) & (d < 220.0) & (size_px > 1.5)
    objs = objects[keep]
    near = near[keep]
    order = np.argsort(-near, kind="stable")
    objs, near = objs[order], near[order]
    typ = objs[:, 2].astype(np.int64)
    px = r.f * objs[:, 5] / np.maximum(near, 0.5)
    small = (px < np.where((typ >= 6) & (typ <= 11), 12.0, 14.0)) & (near > 1.0)
    # one rectangle per small object: lateral half-width, bottom and top heights
    vehicle = (typ >= 6) & (typ <= 11)
    hw = np.where(vehicle, 0.5 * objs[:, 4], _TINY_HW[typ])
    size = objs[:, 5]
    y0 = _TINY_Y0[typ] * size + _TINY_Y0_ABS[typ]
    y1 = np.where(_TINY_TOP_ABS[typ] > 0, _TINY_TOP_ABS[typ], size)
    hw = np.where(typ <= 1, _TINY_HW[typ] * size, hw)
    dd = np.maximum(near, 1.0)
    X = objs[:, 1] - cam.u + cam.heading * dd + 0.5 * cam.curvature * dd * dd
    xc = r.cx + r.f * X / dd
    half = r.f * hw / dd
    c0 = np.maximum((xc - half + 0.5).astype(np.int64), 0)
    c1 = np.minimum(np.maximum((xc + half + 0.5).astype(np.int64), c0 + 1), r.W)
    r0 = np.maximum((r.yh + r.f * (r.cam_h - y1) / dd + 0.5).astype(np.int64), 0)
    r1 = np.minimum(
        np.maximum((r.yh + r.f * (r.cam_h - y0) / dd + 0.5).astype(np.int64), r0 + 1), r.H
    )
    spr = r.sprites
    buf = spr.buf
    colors = objs[:, 6:9].astype(np.float32)
    tiny_label = _TINY_LABEL[typ]
    tiny_label[(typ == 13) & (objs[:, 4] >= 0.8)] = BIKE  # parked bicycles
    # small objects that cover no pixel are skipped; the rest keep the painter's order
    small_ok = small & (c0 < c1) & (r0 < r1)
    draw_big = ~small
    rows = spr._rows
    # Part ids grow in painting order, so painting back to front equals keeping the
    # largest id per pixel: small rectangles are collected and rasterised at the end.
    tiny: list[tuple[int, int, int, int, int]] = []
    for i, (sm, big, a0, a1, b0, b1, lab, dn) in enumerate(
        zip(
            small_ok.tolist(),
            draw_big.tolist(),
            r0.tolist(),
            r1.tolist(),
            c0.tolist(),
            c1.tolist(),
            tiny_label.tolist(),
            near.tolist(),
            strict=True,
        )
    ):
        if sm:
            if spr.n >= MAX_PARTS - 3:
                continue
            rows.append((colors[i], lab, dn, F_BACK))
            spr.n += 1
            tiny.append((spr.n, a0, a1, b0, b1))
            if (lab == MOTO or lab == BIKE) and a1 - a0 > 1:  # the rider on top
                rows.append((colors[i][::-1].copy(), RIDER, dn - 0.01, F_BACK))
                spr.n += 1
                tiny.append((spr.n, a0, (a0 + a1 + 1) // 2, b0, b1))
        elif big:
            draw_object(spr, objs[i], cam, night)
    if tiny:
        _max_rects(buf, np.array(tiny, dtype=np.int64))


def _max_rects(buf: np.ndarray, rects: np.ndarray) -> None:
    """buf[r0:r1, c0:c1] = max(buf, pid) for every row (pid, r0, r1, c0, c1) of ``rects``."""
    pid, r0, r1, c0, c1 = rects.T
    w = c1 - c0
    cnt = (r1 - r0) * w
    total = int(cnt.sum())
    if total == 0:
        return
    which = np.repeat(np.arange(len(rects)), cnt)
    local = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    wq = w[which]
    flat = (r0[which] + local // wq) * buf.shape[1] + c0[which] + local % wq
    np.maximum.at(buf.reshape(-1), flat, pid[which].astype(buf.dtype))
