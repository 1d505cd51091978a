"""The frame's object table painted back to front: far objects as one rectangle each, near ones
through the sprite drawer's detailed parts (``sim.render.sprites``).

The table's fields are described in ``sim.world.objects``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from sim.common.classes import BICYCLE, MOTORCYCLE, RIDER
from sim.render.camera import CameraState
from sim.render.ids import F_BACK
from sim.render.sprites import SpriteDrawer
from sim.world.objects import (
    KIND_LABEL,
    LAMP_HEIGHT,
    SIGN_TOP,
    VEHICLES,
    WOODEN_POLE_HEIGHT,
    ObjectKind,
    kind_table,
    take_rows,
)

N_KINDS = len(ObjectKind)
# Culling: objects behind the camera, too far, or smaller than this on screen are skipped.
MIN_AHEAD, MAX_AHEAD, MIN_PX = 0.6, 220.0, 1.5
# Objects smaller than this on screen (px tall) are drawn as a single rectangle.
FAR_VEHICLE_PX, FAR_OBJECT_PX = 12.0, 14.0
PARKED_BICYCLE_FROM = 0.8  # street furniture with this variant or more is a parked bicycle


class FarShape(NamedTuple):
    """The rectangle that stands in for a far object."""

    half_width: float  # m; trees and bushes: a share of their size; vehicles: half their width
    bottom: float  # m above the ground ...
    bottom_share: float  # ... plus this share of the object's height
    top: float  # m; 0: the object's height


FAR_SHAPE: dict[ObjectKind, FarShape] = {
    ObjectKind.TREE: FarShape(0.3, 0.0, 0.3, 0.0),  # the canopy, above the trunk
    ObjectKind.BUSH: FarShape(0.8, 0.0, 0.0, 0.0),
    ObjectKind.POLE: FarShape(0.12, 0.0, 0.0, WOODEN_POLE_HEIGHT),
    ObjectKind.LAMP: FarShape(0.1, 0.0, 0.0, LAMP_HEIGHT),
    ObjectKind.SIGN: FarShape(0.3, 2.2, 0.0, SIGN_TOP),  # the plate
    ObjectKind.TRAFFIC_LIGHT: FarShape(0.24, 3.1, 0.0, 4.3),  # the head of a kerbside signal
    ObjectKind.CAR: FarShape(0.0, 0.0, 0.15, 0.0),  # the body, above the wheels
    ObjectKind.TRUCK: FarShape(0.0, 0.0, 0.15, 0.0),
    ObjectKind.BUS: FarShape(0.0, 0.0, 0.15, 0.0),
    ObjectKind.TRAIN: FarShape(0.0, 0.0, 0.15, 0.0),
    ObjectKind.MOTORCYCLE: FarShape(0.0, 0.0, 0.0, 0.0),
    ObjectKind.BICYCLE: FarShape(0.0, 0.0, 0.0, 0.0),
    ObjectKind.PERSON: FarShape(0.22, 0.0, 0.0, 0.0),
    ObjectKind.CLUTTER: FarShape(0.3, 0.0, 0.0, 1.0),
}
_FAR_HALF_WIDTH = kind_table({k: v.half_width for k, v in FAR_SHAPE.items()}, N_KINDS)
_FAR_BOTTOM = kind_table({k: v.bottom for k, v in FAR_SHAPE.items()}, N_KINDS)
_FAR_BOTTOM_SHARE = kind_table({k: v.bottom_share for k, v in FAR_SHAPE.items()}, N_KINDS)
_FAR_TOP = kind_table({k: v.top for k, v in FAR_SHAPE.items()}, N_KINDS)
_SIZE_RELATIVE = kind_table({ObjectKind.TREE: True, ObjectKind.BUSH: True}, N_KINDS, np.bool_)
_IS_VEHICLE = kind_table(dict.fromkeys(VEHICLES, True), N_KINDS, np.bool_)
_LABEL = kind_table(KIND_LABEL, N_KINDS, np.uint8)
_CLUTTER = ObjectKind.CLUTTER.value
_KINDS = tuple(ObjectKind)  # by value: ObjectKind(v) costs a microsecond per call


class _Object(NamedTuple):
    """One object to draw in detail, as plain Python values (NumPy records are slow to read)."""

    d: float  # distance ahead of the camera (m)
    u: float
    kind: ObjectKind
    length: float
    width: float
    height: float
    color: np.ndarray  # float32 RGB
    seed: float
    direction: float
    variant: float
    phase: float
    signal: float
    wooden: float


def _detailed(objs: np.ndarray, colors: np.ndarray, s_ego: float) -> Iterator[_Object]:
    """The rows of ``objs`` as ``_Object``s, in order."""
    kinds = [_KINDS[k] for k in objs["kind"].astype(np.int64).tolist()]
    return map(
        _Object._make,
        zip(
            (objs["s"] - s_ego).tolist(),
            objs["u"].tolist(),
            kinds,
            *(objs[name].tolist() for name in ("length", "width", "height")),
            colors,
            *(objs[n].tolist() for n in ("seed", "direction", "variant", "phase", "signal")),
            objs["wooden"].tolist(),
            strict=True,
        ),
    )


def draw_object(spr: SpriteDrawer, o: _Object, night: float) -> None:
    """One object in detail."""
    kind, d, u, color = o.kind, o.d, o.u, o.color
    if kind in VEHICLES:
        spr.vehicle(kind, d, u, o.length, o.width, o.height, color, o.direction, night)
    elif d < MIN_AHEAD:
        return
    elif kind is ObjectKind.PERSON:
        spr.person(d, u, color, o.seed, o.phase)
    elif kind is ObjectKind.TREE:
        spr.tree(d, u, o.height, color, o.seed)
    elif kind is ObjectKind.BUSH:
        spr.bush(d, u, o.height, color)
    elif kind is ObjectKind.POLE:
        spr.pole(d, u, color, wooden=o.wooden > 0, with_sign=o.variant > 0.6)
    elif kind is ObjectKind.LAMP:
        spr.lamp(d, u, color, night)
    elif kind is ObjectKind.SIGN:
        spr.sign(d, u, o.seed, facing_ego=u > 0)
    elif kind is ObjectKind.CLUTTER:
        spr.clutter(d, u, o.variant, color)
    elif kind is ObjectKind.TRAFFIC_LIGHT:
        spr.traffic_light(d, u, int(o.signal), facing_ego=u > 0, night=night, mast=o.variant > 0.5)


def draw_objects(spr: SpriteDrawer, objects: np.ndarray, cam: CameraState, night: float) -> None:
    """Paint objects back to front; small (far) ones as a single rectangle each."""
    if len(objects) == 0:
        return
    f = spr.f
    d = objects["s"] - cam.s
    near = d - 0.5 * objects["length"]
    size_px = f * objects["height"] / np.maximum(near, 0.5)
    keep = np.flatnonzero(
        (d + 0.5 * objects["length"] > MIN_AHEAD) & (d < MAX_AHEAD) & (size_px > MIN_PX)
    )
    near = near[keep]
    order = np.argsort(-near, kind="stable")  # back to front
    objs, near = take_rows(objects, keep[order]), near[order]
    kind = objs["kind"].astype(np.int64)
    size = objs["height"]
    px = f * size / np.maximum(near, 0.5)
    vehicle = _IS_VEHICLE[kind]
    small = (px < np.where(vehicle, FAR_VEHICLE_PX, FAR_OBJECT_PX)) & (near > 1.0)
    # one rectangle per small object: lateral half-width, bottom and top heights
    hw = np.where(vehicle, 0.5 * objs["width"], _FAR_HALF_WIDTH[kind])
    y0 = _FAR_BOTTOM_SHARE[kind] * size + _FAR_BOTTOM[kind]
    y1 = np.where(_FAR_TOP[kind] > 0, _FAR_TOP[kind], size)
    hw = np.where(_SIZE_RELATIVE[kind], _FAR_HALF_WIDTH[kind] * size, hw)
    dd = np.maximum(near, 1.0)
    X = objs["u"] - cam.u + cam.heading * dd + 0.5 * cam.curvature * dd * dd
    xc = spr.cx + f * X / dd
    half = f * hw / dd
    c0 = np.maximum((xc - half + 0.5).astype(np.int64), 0)
    c1 = np.minimum(np.maximum((xc + half + 0.5).astype(np.int64), c0 + 1), spr.W)
    r0 = np.maximum((spr.yh + f * (spr.cam_h - y1) / dd + 0.5).astype(np.int64), 0)
    r1 = np.minimum(
        np.maximum((spr.yh + f * (spr.cam_h - y0) / dd + 0.5).astype(np.int64), r0 + 1), spr.H
    )
    colors = objs["color"].astype(np.float32)
    far_label = _LABEL[kind]
    far_label[(kind == _CLUTTER) & (objs["variant"] >= PARKED_BICYCLE_FROM)] = BICYCLE
    # small objects that cover no pixel are skipped; the rest keep the painter's order
    small_ok = small & (c0 < c1) & (r0 < r1)
    draw_big = ~small
    detailed = _detailed(take_rows(objs, draw_big), colors[draw_big], cam.s)
    has_room, add_part = spr.has_room, spr.add_part
    # Part ids grow in painting order, so painting back to front equals keeping the
    # largest id per pixel: small rectangles are collected and rasterised at the end.
    rects: list[tuple[int, int, int, int, int]] = []
    for i, (sm, big, a0, a1, b0, b1, lab, dn) in enumerate(
        zip(
            small_ok.tolist(),
            draw_big.tolist(),
            r0.tolist(),
            r1.tolist(),
            c0.tolist(),
            c1.tolist(),
            far_label.tolist(),
            near.tolist(),
            strict=True,
        )
    ):
        if sm:
            if not has_room(3):
                continue
            rects.append((add_part(colors[i], lab, dn, F_BACK), a0, a1, b0, b1))
            if (lab == MOTORCYCLE or lab == BICYCLE) and a1 - a0 > 1:  # the rider on top
                pid = add_part(colors[i][::-1].copy(), RIDER, dn - 0.01, F_BACK)
                rects.append((pid, a0, (a0 + a1 + 1) // 2, b0, b1))
        elif big:
            draw_object(spr, next(detailed), night)
    if rects:
        _max_rects(spr.buf, np.array(rects, dtype=np.int64))


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
