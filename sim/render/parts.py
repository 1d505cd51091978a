"""The part buffer: camera-facing parts painted back to front, and the primitives that paint them.

Objects are split into *parts* (a car: body, cabin, glass, wheels, lights) painted into a
part-index buffer with OpenCV's polygon fills; a part table holds each part's colour, class,
depth, facing and light emission. The renderer then resolves the buffer against the static
scene's per-pixel depth, so objects hide behind walls correctly. A ground-shadow mask collects
the shadows objects cast. ``sim.render.sprites`` builds each kind of object from these parts.
"""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np

from sim.render.camera import Camera
from sim.render.ids import F_BACK, F_LEFT, F_RIGHT, F_UP, MAX_PARTS

SUBPIXEL_BITS = 4  # sub-pixel bits for OpenCV polygon fills
SUBPIXEL_SCALE = float(1 << SUBPIXEL_BITS)


class PartCanvas:
    """The part buffer and its drawing primitives, in road coordinates (d ahead, u across,
    height up); one per renderer, reused every frame."""

    def __init__(self, camera: Camera) -> None:
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
                (int(cx * SUBPIXEL_SCALE), int(cy * SUBPIXEL_SCALE)),
                (int(ax * SUBPIXEL_SCALE), int(ay * SUBPIXEL_SCALE)),
                0,
                0,
                360,
                pid,
                -1,
                cv2.LINE_8,
                SUBPIXEL_BITS,
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
            poly = np.array([xs, ys]).T * SUBPIXEL_SCALE
            cv2.fillConvexPoly(self.buf, poly.astype(np.int32), pid, cv2.LINE_8, SUBPIXEL_BITS)

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
