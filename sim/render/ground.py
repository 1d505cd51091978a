"""The ground plane: materials and markings per pixel, its texture, and building shadows on it.

A ground pixel's lateral offset ``u`` follows from its row's distance ahead: the road's centre
line, seen from the ego camera, is the curve X(d) = -u_ego + heading * d + curvature * d^2 / 2.
Materials and markings come from lookup tables indexed by ``|u|`` and a per-row *kind*
(marking width class, dash on, pedestrian crossing, stop line, intersection; bit-packed), built
lazily and shared by every renderer of a town style.
"""

from __future__ import annotations

import math

import numpy as np

from sim.common.classes import ROAD, SIDEWALK, TERRAIN
from sim.render.camera import Camera, CameraState
from sim.render.ids import (
    G_BIKE,
    G_CURB,
    G_MARK,
    G_MARK_Y,
    G_ROAD,
    G_SIDEWALK,
    G_SKY,
    G_TERRAIN,
    G_TRACK,
)
from sim.render.lighting import Light
from sim.world.town_map import TownMap

LUT_RES = 32.0  # lookup-table cells per metre of lateral offset
LUT_LEN = int(512 * LUT_RES)
N_WIDTH = 8  # marking-width classes (markings widen with distance to stay >= ~1 px)
N_ROW_KINDS = 128  # 3 bits of width class + dash, crossing, stop line, intersection
MARK_WIDTH = 0.075  # lane marking half-width (m) at width class 0 (doubling per class)
MARK_MIN_PX = 0.05  # ground metres per pixel at which markings start to widen
DASH_PERIOD, DASH_ON = 9.0, 0.39  # dashed lines: period (m) and the share painted
CROSSING_AHEAD = (1.0, 5.0)  # zebra crossing: metres before an intersection
STOP_LINE_AHEAD = (5.6, 6.1)  # stop line: metres before an intersection
ZEBRA_PERIOD, ZEBRA_ON = 1.2, 0.6  # zebra stripes across the lanes (m)
KERB_WIDTH = 0.25
TRACK_FROM_LANE_CENTRE, TRACK_HALF_WIDTH = 0.85, 0.2  # polished wheel tracks (m)
TEXTURE_CELLS_PER_M = 3.0  # ground noise cells per metre
SHADOW_REACH_MAX = 400.0  # cap (m) on how far a building's shadow reaches sideways
_LUT_CACHE: dict[tuple, np.ndarray] = {}  # ground tables shared by renderers of a town style


class Ground:
    """Ground materials, texture and building shadows for one camera in one town."""

    def __init__(self, town: TownMap, camera: Camera) -> None:
        self.town = town
        self.camera = camera
        px = camera.zg / camera.f  # metres per pixel on the ground, per row
        self.width_class = np.clip(
            np.floor(np.log2(np.maximum(px / MARK_MIN_PX, 1.0))), 0, N_WIDTH - 1
        ).astype(np.int64)
        self._lut_all = np.zeros(N_ROW_KINDS * LUT_LEN, np.uint8)  # id by (row kind, |u|)
        self._kind_known = np.zeros(N_ROW_KINDS, bool)

    def lateral_offsets(self, cam: CameraState) -> tuple[np.ndarray, np.ndarray]:
        """``s`` of each row's ground point and ``u`` of each ground pixel (0 above it)."""
        c = self.camera
        zg = c.zg
        s_row = cam.s + zg
        off_row = (cam.u - cam.heading * zg - 0.5 * cam.curvature * zg * zg).astype(np.float32)
        u = np.zeros((c.H, c.W), np.float32)  # rows above g0 see no ground: u stays 0
        np.add(c.X[c.g0 :], off_row[c.g0 :, None], out=u[c.g0 :])
        return s_row, u

    def ids(self, s_row: np.ndarray, u: np.ndarray, inter_row: np.ndarray) -> np.ndarray:
        """The id map of the bare ground (``G_SKY`` above the horizon)."""
        town, g0 = self.town, self.camera.g0
        kinds = self.width_class.copy()
        kinds |= (((s_row * (1 / DASH_PERIOD)) % 1.0) < DASH_ON).astype(np.int64) << 3
        if len(town.inter_start):
            j = np.minimum(np.searchsorted(town.inter_start, s_row), len(town.inter_start) - 1)
            ahead = town.inter_start[j] - s_row
            lo, hi = CROSSING_AHEAD
            kinds |= ((ahead > lo) & (ahead < hi)).astype(np.int64) << 4
            lo, hi = STOP_LINE_AHEAD
            kinds |= ((ahead > lo) & (ahead < hi)).astype(np.int64) << 5
        kinds |= inter_row.astype(np.int64) << 6
        offs = self._lut_offsets(kinds[g0:])
        q = np.minimum((np.abs(u[g0:]) * LUT_RES).astype(np.int32), LUT_LEN - 1)
        q += offs[:, None]
        gid = np.full(u.shape, G_SKY, np.int32)
        gid[g0:] = self._lut_all.take(q)
        return gid

    def texture(self, s_row: np.ndarray, u: np.ndarray, noise_flat: np.ndarray) -> np.ndarray:
        """Texture value of each ground pixel from the tiled noise (0 above the ground)."""
        g0 = self.camera.g0
        tbase = (((s_row[g0:] * TEXTURE_CELLS_PER_M).astype(np.int64) & 255) * 256).astype(np.int32)
        tidx = ((u[g0:] * TEXTURE_CELLS_PER_M).astype(np.int32) & 255) + tbase[:, None]
        texv = np.zeros(u.shape, np.float32)
        texv[g0:] = noise_flat.take(tidx)
        return texv

    def building_shadows(
        self, s_row: np.ndarray, u: np.ndarray, inter_row: np.ndarray, light: Light
    ) -> np.ndarray | None:
        """Ground pixels in the shadow of the road-side layers, row by row (None: no sun)."""
        if not (light.direct > 0.02 and light.sun_alt > 0.5):
            return None
        town, c = self.town, self.camera
        shadow = None
        cot = 1.0 / math.tan(math.radians(light.sun_alt))
        lateral = math.sin(light.az_rel)
        for side, sgn in ((1, 1.0), (0, -1.0)):
            if sgn * lateral <= 0.05:
                continue  # the sun shines from this side: its shadows fall away from the road
            reach = np.full(c.H, -1e9)
            for layer in (0, 1):
                blk = town.blocks[side][layer]
                hh = blk.height[blk.lookup(s_row)].astype(np.float64)
                if layer == 0:
                    hh = np.where(inter_row, 0.0, hh)
                r = np.minimum(hh * cot * abs(lateral), SHADOW_REACH_MAX)
                r = r - town.setback[side][layer]
                reach = np.maximum(reach, r)
            reach = np.where(c.ground, reach, -1e9).astype(np.float32)
            sh = (u * sgn) > -reach[:, None]
            shadow = sh if shadow is None else shadow | sh
        return shadow

    # ------------------------------------------------------------------ lookup tables
    def _lut_offsets(self, kinds: np.ndarray) -> np.ndarray:
        """Offsets into the lookup table for each row's kind (tables filled lazily)."""
        if not self._kind_known[kinds].all():
            town = self.town
            for k in np.unique(kinds).tolist():
                if not self._kind_known[k]:
                    # tables depend on the town style (and, at crossings, the far set-back)
                    far = min(town.setback[0][1], town.setback[1][1])
                    key = (town.style.name, k, far if (k >> 6) & 1 else None)
                    lut = _LUT_CACHE.get(key)
                    if lut is None:
                        lut = self._ground_lut(k)
                        if len(_LUT_CACHE) < 2048:
                            _LUT_CACHE[key] = lut
                    self._lut_all[k * LUT_LEN : (k + 1) * LUT_LEN] = lut
                    self._kind_known[k] = True
        return (kinds * LUT_LEN).astype(np.int32)

    def _ground_lut(self, kind: int) -> np.ndarray:
        """Material by |u| for one row kind: width class, dash on, crossing, stop line,
        intersection (bit-packed in ``kind``)."""
        st, lay = self.town.style, self.town.layout
        wc, dash, cross, stop, inter = (
            kind & 7,
            (kind >> 3) & 1,
            (kind >> 4) & 1,
            (kind >> 5) & 1,
            (kind >> 6) & 1,
        )
        au = (np.arange(LUT_LEN) + 0.5) / LUT_RES
        idx = np.searchsorted(lay.band_edges, au)
        band = np.array(
            [
                {ROAD: G_ROAD, SIDEWALK: G_SIDEWALK, TERRAIN: G_TERRAIN}[int(m)]
                for m in lay.band_labels
            ],
            np.int32,
        )
        gid = band[idx]
        if st.sidewalk:  # a lighter kerb stone along the sidewalk's road edge
            kerb = lay.road_half + st.verge
            gid = np.where((au >= kerb) & (au < kerb + KERB_WIDTH), G_CURB, gid)
        far_side = min(self.town.setback[0][1], self.town.setback[1][1])
        if inter:
            gid = np.where((au > lay.road_half) & (au < far_side), G_ROAD, gid)
        half0 = st.median / 2
        lanes_half = lay.lanes_end
        if st.bike_lane:  # a tinted bike lane beyond the traffic lanes
            gid = np.where((au >= lanes_half) & (au < lanes_half + st.bike_lane), G_BIKE, gid)
        line_w = MARK_WIDTH * 2**wc
        q = (au - half0) / st.lane_width
        qi = np.rint(q)
        on = (np.abs(q - qi) * st.lane_width < line_w) & (qi >= 0) & (qi <= st.lanes_per_dir)
        solid = (qi == 0) | (qi == st.lanes_per_dir)
        if st.name == "urban":
            solid = (qi == 0) | ((qi == st.lanes_per_dir) & (st.bike_lane > 0))
        mark = on & (solid | bool(dash)) & (au < lanes_half + 0.2) & (not inter)
        if cross:
            mark |= ((au % ZEBRA_PERIOD) < ZEBRA_ON) & (au < lanes_half)
        if stop:
            mark |= (au > half0) & (au < lanes_half)
        if not inter:
            lane_pos = (au - half0) / st.lane_width
            li = np.floor(lane_pos)
            off = np.abs((lane_pos - li - 0.5) * st.lane_width)
            track = (
                (li >= 0)
                & (li < st.lanes_per_dir)
                & (np.abs(off - TRACK_FROM_LANE_CENTRE) < TRACK_HALF_WIDTH)
            )
            gid = np.where(track & (gid == G_ROAD), G_TRACK, gid)
        mid = G_MARK_Y if self.yellow_centre else G_MARK
        gid = np.where(mark, np.where(qi == 0, mid, G_MARK), gid)
        return gid.astype(np.int32)

    @property
    def yellow_centre(self) -> bool:
        """Whether the centre line is yellow (suburban and rural roads)."""
        return self.town.style.name in ("suburban", "rural")
