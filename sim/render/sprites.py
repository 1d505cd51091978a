"""Objects standing in the world (props, vehicles, people) drawn as camera-facing parts.

Each object is split into *parts* (a car: body, cabin, glass, wheels, lights) that are painted
back to front into a part-index buffer with OpenCV's polygon fills; a part table holds each
part's colour, class, depth, facing and light emission. The renderer then resolves the buffer
against the static scene's per-pixel depth, so objects hide behind walls correctly.
"""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np

from sim.common.classes import (
    BICYCLE,
    IGNORE_INDEX,
    PERSON,
    POLE,
    RIDER,
    TRAFFIC_LIGHT,
    TRAFFIC_SIGN,
    VEGETATION,
)
from sim.render.camera import Camera
from sim.render.ids import F_BACK, F_EMIT, F_LEFT, F_RIGHT, F_UP, MAX_PARTS
from sim.world.objects import (
    KIND_LABEL,
    LAMP_HEIGHT,
    MAST_SIGNAL_HEIGHT,
    METAL_POLE_HEIGHT,
    WOODEN_POLE_HEIGHT,
    ObjectKind,
)

TWO_WHEELERS = (ObjectKind.MOTORCYCLE, ObjectKind.BICYCLE)
PLAIN_SIGNAL_HEIGHT = 3.2  # a traffic light on its own pole at the kerb
_SHIFT = 4  # sub-pixel bits for OpenCV polygon fills
_SCALE = float(1 << _SHIFT)

_GLASS = np.array((38, 46, 58), np.float32)
_TYRE = np.array((22, 22, 24), np.float32)
_TAIL = np.array((150, 20, 20), np.float32)
_HEAD = np.array((215, 210, 190), np.float32)


def _c(*rgb: int) -> np.ndarray:
    return np.array(rgb, np.float32)


# Fixed colours (made once, not per object)
_RIDER_HEAD = _c(40, 40, 45)
_SKIN = _c(200, 160, 130)
_TROUSERS = _c(40, 45, 60)
_TRUNK = _c(85, 65, 45)
_SIGN_BLUE = _c(30, 70, 160)
_WARM = _c(255, 220, 150)
_SIGN_POLE = _c(150, 150, 150)
_SIGN_BACK = _c(120, 120, 122)
_RED, _WHITE, _BLUE, _YELLOW = _c(200, 30, 30), _c(235, 235, 235), _c(30, 70, 170), _c(235, 190, 20)
_TL_DARK, _TL_POLE, _TL_PLATE = _c(35, 35, 32), _c(90, 92, 90), _c(52, 52, 48)
_TL_COLORS = (_c(230, 40, 30), _c(240, 180, 20), _c(40, 220, 90))
_TL_OFF = tuple(c * 0.25 for c in _TL_COLORS)
_TL_ON = tuple(c * 1.0 for c in _TL_COLORS)


class SpriteDrawer:
    """Paints objects into a part buffer; one instance per renderer, reused every frame.

    ``lane_centres``: ``|u|`` of the traffic lanes, over which mast-arm signals hang their heads.
    """

    def __init__(self, camera: Camera, lane_centres: list[float]) -> None:
        height, width = camera.H, camera.W
        self.H, self.W = height, width
        self.f, self.cx, self.yh, self.cam_h = camera.f, camera.cx, camera.yh, camera.cam_h
        self.u_ego = self.hd = self.k = 0.0
        self.color = np.zeros((MAX_PARTS, 3), np.float32)
        self.label = np.zeros(MAX_PARTS, np.uint8)
        self.depth = np.full(MAX_PARTS, np.inf, np.float32)
        self.facing = np.zeros(MAX_PARTS, np.uint8)
        self.emit = np.zeros((MAX_PARTS, 3), np.float32)
        self.n = 0
        self._rows: list[tuple] = []
        self._emits: list[tuple[int, np.ndarray]] = []
        self.buf = np.zeros((height, width), np.int32)
        self.shadow = np.zeros((height, width), np.uint8)
        self.has_shadow = False
        self.sun: tuple[float, float] | None = None
        self.lane_centres = list(lane_centres)

    # ----- camera -----
    def set_view(
        self, u_ego: float, heading: float, curv: float, sun: tuple[float, float] | None = None
    ) -> None:
        """This frame's camera pose (see ``CameraState``) and sun: the ground shadow offset per
        metre of height (along s, along u), or None."""
        self.u_ego, self.hd, self.k = u_ego, heading, curv
        self.sun = sun

    def _x(self, d: float, u: float) -> float:
        X = u - self.u_ego + self.hd * d + 0.5 * self.k * d * d
        return self.cx + self.f * X / d

    def _y(self, d: float, y: float) -> float:
        return self.yh + self.f * (self.cam_h - y) / d

    # ----- parts -----
    def reset(self) -> None:
        self.n = 0
        self._rows: list[tuple] = []
        self._emits: list[tuple[int, np.ndarray]] = []
        self.buf.fill(0)
        if self.has_shadow:
            self.shadow.fill(0)
        self.has_shadow = False

    def has_room(self, parts: int) -> bool:
        """Whether ``parts`` more parts fit in this frame's part table."""
        return self.n + parts < MAX_PARTS

    def add_part(
        self,
        color: np.ndarray,
        label: int,
        depth: float,
        facing: int,
        emit: np.ndarray | None = None,
    ) -> int:
        """A new part (drawn by the caller); its id, or -1 when the part table is full."""
        if self.n >= MAX_PARTS - 1:
            return -1
        self._rows.append((color, label, depth, facing))
        if emit is not None:
            self._emits.append((self.n, emit))
        self.n += 1
        return self.n  # 0 marks "no part" in the buffer

    def finish(self) -> None:
        """Move the parts drawn this frame into the part table arrays."""
        n = self.n
        if not n:
            return
        rows = self._rows
        self.color[:n] = [r[0] for r in rows]
        self.label[:n] = [r[1] for r in rows]
        self.depth[:n] = [r[2] for r in rows]
        self.facing[:n] = [r[3] for r in rows]
        self.emit[:n] = 0.0
        for i, e in self._emits:
            self.emit[i] = e

    def rect(
        self,
        d: float,
        u0: float,
        u1: float,
        y0: float,
        y1: float,
        color: np.ndarray,
        label: int,
        facing: int = F_BACK,
        emit: np.ndarray | None = None,
        depth: float | None = None,
    ) -> None:
        """A camera-facing rectangle at depth ``d`` spanning u0..u1 and heights y0..y1."""
        k = self.f / d
        base = self.cx + k * (self.hd * d + 0.5 * self.k * d * d - self.u_ego)
        if u0 > u1:
            u0, u1 = u1, u0
        c0 = int(base + k * u0 + 0.5)
        c1 = int(base + k * u1 + 0.5)
        if c1 <= c0:
            c1 = c0 + 1
        r0 = int(self.yh + k * (self.cam_h - y1) + 0.5)
        r1 = int(self.yh + k * (self.cam_h - y0) + 0.5)
        if r1 <= r0:
            r1 = r0 + 1
        if c0 < 0:
            c0 = 0
        if r0 < 0:
            r0 = 0
        if c1 > self.W:
            c1 = self.W
        if r1 > self.H:
            r1 = self.H
        if c0 >= c1 or r0 >= r1:
            return
        pid = self.add_part(color, label, d if depth is None else depth, facing, emit)
        if pid > 0:
            self.buf[r0:r1, c0:c1] = pid

    def ellipse(
        self,
        d: float,
        u: float,
        y: float,
        ru: float,
        ry: float,
        color: np.ndarray,
        label: int,
        facing: int = F_BACK,
        emit: np.ndarray | None = None,
    ) -> None:
        f = self.f / d
        cx, cy = self._x(d, u), self._y(d, y)
        ax, ay = max(ru * f, 0.5), max(ry * f, 0.5)
        if cx + ax < 0 or cx - ax >= self.W or cy + ay < 0 or cy - ay >= self.H:
            return
        pid = self.add_part(color, label, d, facing, emit)
        if pid > 0:
            cv2.ellipse(
                self.buf,
                (int(cx * _SCALE), int(cy * _SCALE)),
                (int(ax * _SCALE), int(ay * _SCALE)),
                0,
                0,
                360,
                pid,
                -1,
                cv2.LINE_8,
                _SHIFT,
            )

    def quad(
        self, pts: list[tuple[float, float, float]], color: np.ndarray, label: int, facing: int
    ) -> None:
        """A planar polygon through world points (d, u, height)."""
        f, cx, yh, ch = self.f, self.cx, self.yh, self.cam_h
        ue, hd, k = self.u_ego, self.hd, self.k
        xs = [cx + f * (u - ue + hd * d + 0.5 * k * d * d) / d for d, u, _ in pts]
        ys = [yh + f * (ch - y) / d for d, _, y in pts]
        if max(xs) < 0 or min(xs) >= self.W or max(ys) < 0 or min(ys) >= self.H:
            return
        depth = sum(p[0] for p in pts) / len(pts)
        pid = self.add_part(color, label, depth, facing)
        if pid > 0:
            poly = np.array([xs, ys]).T * _SCALE
            cv2.fillConvexPoly(self.buf, poly.astype(np.int32), pid, cv2.LINE_8, _SHIFT)

    # ----- objects -----
    def box(
        self,
        along: tuple[float, float],
        across: tuple[float, float],
        up: tuple[float, float],
        color: np.ndarray,
        label: int,
    ) -> bool:
        """Visible faces of an axis-aligned box spanning ``along`` (d), ``across`` (u) and
        ``up`` (height); returns whether the near face was drawn."""
        (d0, d1), (u0, u1), (y0, y1) = along, across, up
        near_ok = d0 >= 0.4
        d0 = max(d0, 0.4)
        if d1 <= d0:
            return False
        side = color * 0.82
        uu, fc = (
            (u0, F_LEFT)
            if self._x(d0, u0) > self.cx
            else ((u1, F_RIGHT) if self._x(d0, u1) < self.cx else (None, 0))
        )
        if uu is not None:  # the camera sees this side face; split long ones for depth
            cuts = [d0, d1] if d1 < 2.0 * d0 or d0 > 8.0 else [d0, math.sqrt(d0 * d1), d1]
            for a, b in itertools.pairwise(cuts):
                self.quad([(a, uu, y0), (b, uu, y0), (b, uu, y1), (a, uu, y1)], side, label, fc)
        if y1 < self.cam_h:
            self.quad(
                [(d0, u0, y1), (d1, u0, y1), (d1, u1, y1), (d0, u1, y1)], color * 1.05, label, F_UP
            )
        if near_ok:
            self.rect(d0, u0, u1, y0, y1, color, label)
        return near_ok

    def vehicle(
        self,
        kind: ObjectKind,
        d: float,
        u: float,
        length: float,
        width: float,
        height: float,
        color: np.ndarray,
        direction: float,
        night: float,
    ) -> None:
        label = KIND_LABEL[kind]
        d0, d1 = d - length / 2, d + length / 2
        u0, u1 = u - width / 2, u + width / 2
        px_h = self.f * height / max(d0, 0.4)
        if px_h > 6:
            self._shadow(d, u, length, width)
        if px_h < 24 and d0 > 0.4:  # far away: a body and a band of glass are enough
            self.rect(d0, u0, u1, 0.15 * height, height, color, label)
            if kind not in TWO_WHEELERS:
                self._glass(d0, u0, u1, 0.66 * height, 0.92 * height, label)
            return
        lights = _TAIL if direction > 0 else _HEAD
        glow = lights * (1.6 * night) if night > 0 else None
        if kind in TWO_WHEELERS:
            moto = kind is ObjectKind.MOTORCYCLE
            self._two_wheeler(moto, label, d, d0, d1, u, length, color, direction, night)
            return
        if kind is ObjectKind.CAR:
            near = self.box((d0, d1), (u0, u1), (0.3, 0.62 * height), color, label)
            c0 = d0 + 0.22 * length if direction > 0 else d0 + 0.3 * length
            c1 = d1 - 0.3 * length if direction > 0 else d1 - 0.22 * length
            cabin = (u0 + 0.1, u1 - 0.1)
            cab = self.box((c0, c1), cabin, (0.62 * height, height), color * 0.95, label)
            if cab:
                self._glass(c0, u0, u1, 0.68 * height, 0.95 * height, label, inset=0.22)
        else:
            base = 0.45 if kind is not ObjectKind.TRAIN else 0.5
            near = self.box((d0, d1), (u0, u1), (base, height), color, label)
            if near and kind in (ObjectKind.BUS, ObjectKind.TRAIN):
                self._glass(d0, u0, u1, 0.5 * height, 0.85 * height, label)
            elif near and kind is ObjectKind.TRUCK and direction < 0:  # an oncoming cab
                self._glass(d0, u0, u1, 0.55 * height, 0.8 * height, label)
            if kind in (ObjectKind.BUS, ObjectKind.TRAIN):
                self._side_windows(d0, d1, u0, u1, height, label)
        if near:
            dd = d0 - 0.02
            self.rect(dd, u0, u0 + 0.35, 0.0, 0.32, _TYRE, label, depth=d0)
            self.rect(dd, u1 - 0.35, u1, 0.0, 0.32, _TYRE, label, depth=d0)
            ly = 0.45 * height if kind is ObjectKind.CAR else 0.3 * height
            self.rect(dd, u0 + 0.05, u0 + 0.3, ly, ly + 0.14, lights, label, F_EMIT, glow, depth=d0)
            self.rect(dd, u1 - 0.3, u1 - 0.05, ly, ly + 0.14, lights, label, F_EMIT, glow, depth=d0)

    def _side_windows(
        self, d0: float, d1: float, u0: float, u1: float, height: float, label: int
    ) -> None:
        d0 = max(d0, 0.4)
        if d1 <= d0:
            return
        for uu, ok in ((u0, self._x(d0, u0) > self.cx), (u1, self._x(d0, u1) < self.cx)):
            if ok:
                self.quad(
                    [
                        (d0 + 0.3, uu, 0.5 * height),
                        (d1 - 0.3, uu, 0.5 * height),
                        (d1 - 0.3, uu, 0.85 * height),
                        (d0 + 0.3, uu, 0.85 * height),
                    ],
                    _GLASS,
                    label,
                    F_LEFT,
                )

    def _glass(
        self, d: float, u0: float, u1: float, y0: float, y1: float, label: int, inset: float = 0.2
    ) -> None:
        """A pane of glass just in front of the face at depth ``d``, inset from its sides."""
        self.rect(d - 0.01, u0 + inset, u1 - inset, y0, y1, _GLASS, label, depth=d)

    def _two_wheeler(
        self,
        moto: bool,
        label: int,
        d: float,
        d0: float,
        d1: float,
        u: float,
        length: float,
        color: np.ndarray,
        direction: float,
        night: float,
    ) -> None:
        """A motorcycle or bicycle from ``d0`` to ``d1`` (centre ``d``), with its rider."""
        if d0 < 0.4:
            return
        side_visible = abs(self._x(d, u) - self.cx) > 0.3 * self.f * length / d
        if side_visible:
            for dw in (d0 + 0.35, d1 - 0.35):
                self.ellipse(dw, u, 0.33, 0.1, 0.33, _TYRE, label)
            self.quad(
                [(d0 + 0.3, u, 0.35), (d1 - 0.3, u, 0.35), (d1 - 0.4, u, 0.75), (d0 + 0.4, u, 0.8)],
                color,
                label,
                F_LEFT,
            )
        wide = 0.35 if moto else 0.12
        self.rect(d0, u - wide / 2, u + wide / 2, 0.0, 0.9 if moto else 0.7, color, label)
        if moto and night > 0:
            lamp = _TAIL if direction > 0 else _HEAD
            self.rect(
                d0 - 0.01,
                u - 0.08,
                u + 0.08,
                0.75,
                0.85,
                lamp,
                label,
                F_EMIT,
                lamp * 1.6 * night,
                depth=d0,
            )
        # The rider, sitting above the middle of the vehicle.
        shirt = np.array((color[2], color[0] * 0.6, color[1]), np.float32)
        self.rect(d - 0.05, u - 0.25, u + 0.25, 0.9, 1.58, shirt, RIDER)
        self.rect(d - 0.06, u - 0.18, u - 0.04, 0.45, 1.0, shirt * 0.5, RIDER)
        self.ellipse(d - 0.06, u, 1.7, 0.13, 0.15, _RIDER_HEAD, RIDER)

    def person(self, d: float, u: float, color: np.ndarray, seed: float, phase: float) -> None:
        if d < 0.5:
            return
        rng_a = math.sin(seed * 12.9898) * 43758.5453
        tint = rng_a - math.floor(rng_a)
        height = 1.55 + 0.35 * tint
        skin = _SKIN * (0.55 + 0.45 * tint)
        trousers = _TROUSERS * (0.6 + tint)
        swing = 0.12 * math.sin(phase)
        if self.f * height / d < 12:
            self.rect(d, u - 0.22, u + 0.22, 0.0, height, color, PERSON)
            return
        self.rect(d, u - 0.17 + swing, u - 0.03 + swing, 0.0, 0.5 * height, trousers, PERSON)
        self.rect(d, u + 0.03 - swing, u + 0.17 - swing, 0.0, 0.5 * height, trousers, PERSON)
        self.rect(d, u - 0.22, u + 0.22, 0.48 * height, 0.84 * height, color, PERSON)
        self.ellipse(d, u, 0.91 * height, 0.11, 0.13, skin, PERSON)

    def tree(self, d: float, u: float, size: float, color: np.ndarray, seed: float) -> None:
        trunk = _TRUNK
        self.rect(d, u - 0.16, u + 0.16, 0.0, 0.5 * size, trunk, VEGETATION)
        r = 0.3 * size
        if self.sun is not None and d < 80.0:  # the canopy's shadow on the ground
            ds, du = self.sun
            dc = d + ds * 0.65 * size
            if dc > 1.0:
                k = self.f / dc
                cx = self._x(dc, u + du * 0.65 * size)
                cy = self._y(dc, 0.0)
                ry = max(0.5, k * self.cam_h * r / dc)
                if -k * r < cx < self.W + k * r and cy < self.H + ry:
                    cv2.ellipse(
                        self.shadow,
                        (int(cx * _SCALE), int(cy * _SCALE)),
                        (int(k * r * _SCALE), int(ry * _SCALE)),
                        0,
                        0,
                        360,
                        1,
                        -1,
                        cv2.LINE_8,
                        _SHIFT,
                    )
                    self.has_shadow = True
        if self.f * size / d < 16:
            self.ellipse(d, u, 0.65 * size, r, 0.34 * size, color, VEGETATION)
            return
        off = math.sin(seed) * 0.25 * r
        self.ellipse(d + 0.1, u + off, 0.68 * size, r, 0.34 * size, color * 0.8, VEGETATION)
        self.ellipse(
            d - 0.1, u - 0.5 * off, 0.74 * size, 0.7 * r, 0.25 * size, color * 1.1, VEGETATION, F_UP
        )

    def pole(self, d: float, u: float, color: np.ndarray, wooden: bool, with_sign: bool) -> None:
        w = 0.13 if wooden else 0.1
        top = WOODEN_POLE_HEIGHT if wooden else METAL_POLE_HEIGHT
        self.rect(d, u - w, u + w, 0.0, top, color, POLE)
        if wooden:
            self.rect(d, u - 0.9, u + 0.9, 7.0, 7.15, color, POLE)
        if with_sign:
            self.rect(d - 0.03, u - 0.3, u + 0.3, 2.4, 3.0, _SIGN_BLUE, TRAFFIC_SIGN)

    def lamp(self, d: float, u: float, color: np.ndarray, night: float) -> None:
        side = 1.0 if u > 0 else -1.0
        self.rect(d, u - 0.09, u + 0.09, 0.0, LAMP_HEIGHT, color, POLE)
        if self.f * LAMP_HEIGHT / d < 14:
            return
        tip = u - side * 1.8
        self.quad([(d, u, 7.8), (d, tip, 7.95), (d, tip, 8.08), (d, u, 7.95)], color, POLE, F_BACK)
        warm = _WARM
        lamp_col = warm if night > 0.3 else color * 1.2
        emit = warm * 2.0 * night if night > 0 else None
        self.rect(d - 0.02, tip - 0.3, tip + 0.3, 7.78, 7.95, lamp_col, POLE, F_EMIT, emit, depth=d)

    def sign(self, d: float, u: float, seed: float, facing_ego: bool) -> None:
        pole_c = _SIGN_POLE
        self.rect(d, u - 0.05, u + 0.05, 0.0, 2.3, pole_c, POLE)
        if not facing_ego or self.f * 3.0 / d < 10:
            self.rect(d - 0.01, u - 0.32, u + 0.32, 2.2, 2.85, _SIGN_BACK, TRAFFIC_SIGN)
            return
        kind = int(seed) % 4
        red = _RED
        white = _WHITE
        blue = _BLUE
        yellow = _YELLOW
        if kind == 0:
            self.ellipse(d - 0.01, u, 2.55, 0.33, 0.33, red, TRAFFIC_SIGN)
            self.ellipse(d - 0.02, u, 2.55, 0.24, 0.24, white, TRAFFIC_SIGN)
        elif kind == 1:
            self.quad(
                [(d - 0.01, u - 0.38, 2.25), (d - 0.01, u + 0.38, 2.25), (d - 0.01, u, 2.9)],
                red,
                TRAFFIC_SIGN,
                F_BACK,
            )
            self.quad(
                [(d - 0.02, u - 0.25, 2.33), (d - 0.02, u + 0.25, 2.33), (d - 0.02, u, 2.75)],
                white,
                TRAFFIC_SIGN,
                F_BACK,
            )
        elif kind == 2:
            self.rect(d - 0.01, u - 0.32, u + 0.32, 2.2, 2.85, blue, TRAFFIC_SIGN)
            self.rect(d - 0.02, u - 0.1, u + 0.1, 2.3, 2.75, white, TRAFFIC_SIGN)
        else:
            self.quad(
                [
                    (d - 0.01, u, 2.2),
                    (d - 0.01, u + 0.33, 2.53),
                    (d - 0.01, u, 2.86),
                    (d - 0.01, u - 0.33, 2.53),
                ],
                yellow,
                TRAFFIC_SIGN,
                F_BACK,
            )

    def traffic_light(
        self, d: float, u: float, state: int, facing_ego: bool, night: float, mast: bool = False
    ) -> None:
        """A signal on a pole; with ``mast`` an arm over the carriageway carries one head
        above each lane (the ones a driver actually looks at)."""
        dark = _TL_DARK
        pole_c = _TL_POLE
        top = MAST_SIGNAL_HEIGHT if mast else PLAIN_SIGNAL_HEIGHT
        self.rect(d, u - 0.1, u + 0.1, 0.0, top, pole_c, POLE)
        heads = [(u, 3.1)]
        if mast:
            side = 1.0 if u > 0 else -1.0
            lanes = [side * c for c in self.lane_centres]
            end = min(lanes, key=abs) - side * 1.2
            self.rect(d, min(u, end), max(u, end), 6.0, 6.25, pole_c, POLE)
            heads += [(c, 4.8) for c in lanes]
        small = self.f * 1.2 / d < 4
        plate = _TL_PLATE
        for hu, hy in heads:
            if facing_ego:  # a backplate frames the head, as on real signals
                self.rect(d - 0.01, hu - 0.4, hu + 0.4, hy - 0.15, hy + 1.35, plate, TRAFFIC_LIGHT)
            self.rect(d - 0.02, hu - 0.24, hu + 0.24, hy, hy + 1.2, dark, TRAFFIC_LIGHT)
            if not facing_ego or small:
                continue
            for i, yy in enumerate((hy + 0.97, hy + 0.6, hy + 0.23)):
                on = i == state
                c = _TL_ON[i] if on else _TL_OFF[i]
                emit = _TL_COLORS[i] * (0.5 + 1.5 * night) if on else None
                self.ellipse(
                    d - 0.03, hu, yy, 0.14, 0.14, c, TRAFFIC_LIGHT, F_EMIT if on else F_BACK, emit
                )

    def clutter(self, d: float, u: float, kind: float, color: np.ndarray) -> None:
        """Street furniture (void label): a bin, a bench, a bollard or a utility box; or a
        parked bicycle (bicycle label)."""
        k = int(kind * 5)
        if k == 4:
            for du in (-0.55, 0.55):
                self.ellipse(d, u + du, 0.33, 0.33, 0.33, _TYRE, BICYCLE)
            self.rect(d - 0.01, u - 0.5, u + 0.5, 0.55, 0.62, color, BICYCLE)
            self.rect(d - 0.01, u - 0.05, u + 0.05, 0.3, 0.95, color, BICYCLE)
            return
        w, h = ((0.3, 0.95), (0.9, 0.5), (0.1, 0.9), (0.35, 1.3))[k]
        self.rect(d, u - w, u + w, 0.0, h, color, IGNORE_INDEX)
        if k == 1:  # bench backrest
            self.rect(d + 0.2, u - w, u + w, 0.5, 0.9, color * 0.8, IGNORE_INDEX)

    def bush(self, d: float, u: float, size: float, color: np.ndarray) -> None:
        self.ellipse(d, u, 0.45 * size, 0.8 * size, 0.5 * size, color, VEGETATION)

    def _shadow(self, d: float, u: float, length: float, width: float) -> None:
        d0 = max(d - 0.5 * length, 0.5)
        d1 = d + 0.5 * length
        if d1 <= d0:
            return
        pts = [(d0, u - width / 2), (d1, u - width / 2), (d1, u + width / 2), (d0, u + width / 2)]
        xy = np.array([(self._x(dd, uu), self._y(dd, 0.0)) for dd, uu in pts])
        if xy[:, 0].max() < 0 or xy[:, 0].min() >= self.W or xy[:, 1].min() >= self.H:
            return
        cv2.fillConvexPoly(self.shadow, (xy * _SCALE).astype(np.int32), 1, cv2.LINE_8, _SHIFT)
        self.has_shadow = True
