"""The per-frame buffers the renderer paints into and the effects shade."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FrameBuffers:
    """One frame in the making: ids, depth and texture per pixel, plus the masks.

    The renderer fills them stage by stage (ground, layers, objects); the effects shade them.
    """

    gid: np.ndarray  # (H, W) material ids (int32 while painting, intp for shading)
    depth: np.ndarray  # (H, W) float32 metres (sky +inf)
    texv: np.ndarray  # (H, W) float32 texture value, about -1..1
    u: np.ndarray  # (H, W) float32 lateral offset of ground pixels
    s_row: np.ndarray  # (H,) distance along the road of each row's ground point
    shadow: np.ndarray | None  # ground in the shadow of buildings
    contact: np.ndarray | None = None  # ground under vehicles and trees
    is_part: np.ndarray | None = None  # pixels of object parts
