"""Objects standing in the world (props, vehicles, people) built from camera-facing parts.

Each kind of object is drawn with the primitives of ``sim.render.parts`` (rectangles, ellipses,
polygons, boxes): near objects in detail, farther ones with fewer parts.
"""

from __future__ import annotations

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
from sim.render.ids import F_BACK, F_EMIT, F_LEFT, F_UP
from sim.render.parts import SUBPIXEL_BITS, SUBPIXEL_SCALE, PartCanvas
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


class SpriteDrawer(PartCanvas):
    """Draws every kind of object into the part buffer.

    ``lane_centres``: ``|u|`` of the traffic lanes, over which mast-arm signals hang their heads.
    """

    def __init__(self, camera: Camera, lane_centres: list[float]) -> None:
        super().__init__(camera)
        self.lane_centres = list(lane_centres)

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
                        (int(cx * SUBPIXEL_SCALE), int(cy * SUBPIXEL_SCALE)),
                        (int(k * r * SUBPIXEL_SCALE), int(ry * SUBPIXEL_SCALE)),
                        0,
                        0,
                        360,
                        1,
                        -1,
                        cv2.LINE_8,
                        SUBPIXEL_BITS,
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
        poly = (xy * SUBPIXEL_SCALE).astype(np.int32)
        cv2.fillConvexPoly(self.shadow, poly, 1, cv2.LINE_8, SUBPIXEL_BITS)
        self.has_shadow = True
