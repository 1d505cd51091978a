"""The road's cross-section (lanes and ground bands) and the blocks of the road-side layers."""

from __future__ import annotations

import numpy as np

from sim.common.classes import ROAD, SIDEWALK, TERRAIN
from sim.world.styles import K_NONE, TownStyle


class Layout:
    """Cross-section of the road: lane centres and the ground bands by lateral offset."""

    def __init__(self, style: TownStyle) -> None:
        self.style = style
        st = style
        half_lanes = st.lanes_per_dir * st.lane_width
        self.lanes_end = st.median / 2 + half_lanes  # outer edge of the traffic lanes
        self.road_half = self.lanes_end + st.bike_lane + st.parking
        # bike lane centres (right: with the ego's direction; left: oncoming)
        self.bike_u = self.lanes_end + st.bike_lane / 2 if st.bike_lane else None
        self.lanes_right = [
            st.median / 2 + (i + 0.5) * st.lane_width for i in range(st.lanes_per_dir)
        ]
        self.lanes_left = [-u for u in self.lanes_right]
        # Ground bands (u_edge, material) for |u| from the centre outwards, one side.
        edges: list[tuple[float, int]] = []
        u = st.median / 2
        if st.median > 0:
            edges.append((u, TERRAIN))  # median strip carrying a concrete barrier
        u += half_lanes + st.bike_lane + st.parking
        edges.append((u, ROAD))
        if st.verge:
            u += st.verge
            edges.append((u, TERRAIN))
        if st.sidewalk:
            u += st.sidewalk
            edges.append((u, SIDEWALK))
        self.outer = u  # outer edge of the maintained ground
        edges.append((1e9, TERRAIN))
        self.band_edges = np.array([e for e, _ in edges], dtype=np.float32)
        self.band_labels = np.array([m for _, m in edges], dtype=np.uint8)
        if st.median > 0:
            # The median barrier sits on the left of the ego's carriageway.
            self.median_u = -(st.median / 2 - 0.5)
        else:
            self.median_u = None


class Blocks:
    """A growing sequence of layer blocks along ``s`` for one layer of one side."""

    def __init__(self) -> None:
        self.start = np.zeros(0, np.float64)
        self.kind = np.zeros(0, np.int16)
        self.height = np.zeros(0, np.float32)
        self.u = np.zeros(0, np.float32)
        self.rgb = np.zeros((0, 3), np.float32)
        self.seed = np.zeros(0, np.float32)
        self.end = -100.0

    def append(
        self,
        start: float,
        length: float,
        kind: int,
        height: float,
        u: float,
        rgb: np.ndarray,
        seed: float,
    ) -> None:
        self.start = np.append(self.start, start)
        self.kind = np.append(self.kind, np.int16(kind))
        self.height = np.append(self.height, np.float32(height if kind != K_NONE else 0.0))
        self.u = np.append(self.u, np.float32(u))
        self.rgb = np.vstack([self.rgb, rgb[None].astype(np.float32)])
        self.seed = np.append(self.seed, np.float32(seed))
        self.end = start + length

    def lookup(self, s: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self.start, s, side="right") - 1
        return np.minimum(np.maximum(idx, 0), len(self.start) - 1)

    def trim(self, s_min: float) -> None:
        keep = max(0, int(np.searchsorted(self.start, s_min, side="right")) - 2)
        if keep > 64:
            for name in ("start", "kind", "height", "u", "rgb", "seed"):
                setattr(self, name, getattr(self, name)[keep:])
