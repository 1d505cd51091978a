"""The ego camera: its pose along the road each frame, and its fixed pinhole geometry.

Depth is measured along the camera's forward axis, in metres. The camera pitch is a shift of
the principal point (a shift lens), so vertical edges stay vertical; ``yh`` is the row of the
horizon. Everything that depends only on the camera (row distances to the ground, pixel rays)
is computed once per renderer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.world.config import WorldConfig

ZMAX = 3000.0  # far clip (m): the ground beyond it and rows above the horizon
MIN_GROUND_SLOPE = 1e-4  # rows whose ray dips less than this below the horizon see no ground


@dataclass
class CameraState:
    """Where the camera is this frame, in road coordinates."""

    s: float  # ego position along the road (m)
    u: float  # ego lateral offset (m, + right)
    heading: float  # road direction minus camera direction (rad, + road bends right)
    curvature: float  # effective road curvature ahead (1/m, + right)
    yaw: float  # world yaw of the road at the ego (rad), for sun and clouds
    time: float  # simulated seconds
    frame: int


class Camera:
    """Pinhole intrinsics and per-row / per-column rays of one camera (read-only after init)."""

    def __init__(self, config: WorldConfig) -> None:
        H, W = config.height, config.width
        self.H, self.W = H, W
        self.f = (W / 2) / math.tan(math.radians(config.fov_deg) / 2)  # focal length (px)
        self.cx = W / 2
        self.cam_h = config.camera_height
        # a: each column's ray slope (lateral metres per metre ahead); b: each row's (down)
        self.a = ((np.arange(W) + 0.5 - self.cx) / self.f).astype(np.float64)
        self.yh = H / 2 + self.f * math.tan(math.radians(config.camera_pitch_deg))
        self.b = (np.arange(H) + 0.5 - self.yh) / self.f
        self.b32 = self.b.astype(np.float32)
        self.ground = self.b > MIN_GROUND_SLOPE  # rows that see the ground plane
        self.g0 = int(np.argmax(self.ground)) if self.ground.any() else H  # first ground row
        zg = np.where(self.ground, self.cam_h / np.where(self.ground, self.b, 1.0), ZMAX)
        self.zg = np.minimum(zg, ZMAX)  # distance ahead of each row's ground point
        self.X = (self.a[None, :] * self.zg[:, None]).astype(np.float32)  # lateral offset
        self.depth0 = np.broadcast_to(
            np.where(self.ground, self.zg, np.inf).astype(np.float32)[:, None], (H, W)
        ).copy()  # the empty scene: ground, and sky at +inf
        self.top = int(min(H, max(0, math.ceil(self.yh) + 1)))  # rows that may show sky
        self.rows_f = np.arange(H, dtype=np.float32)[:, None]
