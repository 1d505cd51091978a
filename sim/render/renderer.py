"""The camera renderer: ground, road-side layers and objects into image, labels and depth.

Geometry is exact per pixel for the ground plane and the vertical layers. The road's centre
line, seen from the ego camera, is the curve X(d) = -u_ego + heading * d + curvature * d^2 / 2
(d: distance ahead); a ground pixel's lateral offset follows from its row's distance, and each
column's ray is intersected with the layer planes |u| = set-back by solving that quadratic.
Objects are painted back to front as camera-facing parts (``_render_sprites``) and resolved
against the scene's depth. Lighting, night lights, wet roads, rain, fog and glare are applied
last (``_render_fx``). Depth is measured along the camera's forward axis, in metres; the sky
has depth +inf.

Speed: everything that depends only on the camera (row distances, pixel rays) is computed
once; the ground's materials and markings come from lookup tables indexed by the pixel's
lateral offset and a per-row "kind" (marking width, dash phase, crossing, intersection).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim._render_atlas import (
    ATLAS_A,
    ATLAS_H,
    ATLAS_RES,
    BUILDING_STYLES,
    TEX_STEP,
    build_atlas,
    variant_table,
)
from sim._render_fx import apply_effects, frame_lighting
from sim._render_objects import draw_objects
from sim._render_sprites import F_LEFT, F_RIGHT, F_UP, MAX_PARTS, SpriteDrawer
from sim._render_tex import tileable_noise
from sim._town import (
    BUILDING,
    K_BUILDING,
    K_HEDGE,
    K_NONE,
    K_TREES,
    K_WALL,
    KIND_LABEL,
    ROAD,
    SIDEWALK,
    SKY,
    TERRAIN,
)
from sim._town_map import TownMap
from sim._world_config import Weather, WorldConfig

# Ids of the ground materials and other fixed entries in the per-frame id table.
G_ROAD, G_SIDEWALK, G_TERRAIN, G_MARK, G_MARK_Y, G_SKY, G_WINDOW, G_LITWIN, G_CURB = range(9)
G_TRACK = 9  # slightly darker, polished wheel tracks in each lane
G_BIKE = 10  # bike lane surface (road class)
NG = 16
ZMAX = 3000.0
LUT_RES = 32.0  # lookup-table cells per metre of lateral offset
LUT_LEN = int(512 * LUT_RES)
N_WIDTH = 8  # marking-width classes (markings widen with distance to stay >= ~1 px)
_LUT_CACHE: dict[tuple, np.ndarray] = {}  # ground tables shared by renderers of a town style
_KIND_LABEL = np.array([KIND_LABEL.get(k, BUILDING) for k in range(7)], np.uint8)


@dataclass
class CameraState:
    s: float  # ego position along the road (m)
    u: float  # ego lateral offset (m, + right)
    heading: float  # road direction minus camera direction (rad, + road bends right)
    curvature: float  # effective road curvature ahead (1/m, + right)
    yaw: float  # world yaw of the road at the ego (rad), for sun and clouds
    time: float  # simulated seconds
    frame: int


class Renderer:
    """Renders one camera; holds everything that does not change between frames."""

    def __init__(self, config: WorldConfig, town: TownMap, rng: np.random.Generator) -> None:
        self.cfg = config
        self.town = town
        H, W = config.height, config.width
        self.H, self.W = H, W
        self.f = (W / 2) / math.tan(math.radians(config.fov_deg) / 2)
        self.cx = W / 2
        self.cam_h = config.camera_height
        self.a = ((np.arange(W) + 0.5 - self.cx) / self.f).astype(np.float64)
        self.yh = H / 2 + self.f * math.tan(math.radians(config.camera_pitch_deg))
        self.b = (np.arange(H) + 0.5 - self.yh) / self.f
        self.ground = self.b > 1e-4
        self.g0 = int(np.argmax(self.ground)) if self.ground.any() else H  # first ground row
        zg = np.where(self.ground, self.cam_h / np.where(self.ground, self.b, 1.0), ZMAX)
        self.zg = np.minimum(zg, ZMAX)
        self.X = (self.a[None, :] * self.zg[:, None]).astype(np.float32)
        self.depth0 = np.broadcast_to(
            np.where(self.ground, self.zg, np.inf).astype(np.float32)[:, None], (H, W)
        ).copy()
        self.b32 = self.b.astype(np.float32)
        self.top = int(min(H, max(0, math.ceil(self.yh) + 1)))  # rows that may show sky
        px = self.zg / self.f  # metres per pixel on the ground, per row
        self.width_class = np.clip(
            np.floor(np.log2(np.maximum(px / 0.05, 1.0))), 0, N_WIDTH - 1
        ).astype(np.int64)
        self.tex = tileable_noise(rng, 256, base=8)
        self.tex_flat = self.tex.ravel()
        self.tex1d = tileable_noise(rng, 256, base=4)[0].copy()
        self.screen = (
            0.5 * tileable_noise(rng, 256, base=32)[np.arange(H) % 256][:, np.arange(W) % 256]
        )
        self.fx_rng_seed = int(rng.integers(2**31))
        self.atlas = build_atlas(rng, self.tex)
        self.variants = variant_table()
        self.rows_f = np.arange(H, dtype=np.float32)[:, None]
        self.sprites = SpriteDrawer(H, W)
        self.sprites.lane_centres = list(town.layout.lanes_right)
        st = town.style
        n = NG + 2 * W + MAX_PARTS
        self.color = np.zeros((n, 3), np.float32)
        self.label = np.zeros(n, np.uint8)
        self.facing = np.zeros(n, np.uint8)
        self.emit = np.zeros((n, 3), np.float32)
        self.texamp = np.zeros(n, np.float32)
        self.part_depth = np.full(MAX_PARTS + 1, np.inf, np.float32)
        g = {
            G_ROAD: (st.road_rgb, ROAD, 0.22),
            G_SIDEWALK: (st.sidewalk_rgb, SIDEWALK, 0.25),
            G_TERRAIN: (st.terrain_rgb, TERRAIN, 0.5),
            G_MARK: ((205, 205, 200), ROAD, 0.1),
            G_MARK_Y: ((210, 175, 60), ROAD, 0.1),
            G_SKY: ((0, 0, 0), SKY, 0.0),
            G_WINDOW: ((58, 70, 88), BUILDING, 0.3),
            G_LITWIN: ((58, 70, 88), BUILDING, 0.1),
            G_CURB: (tuple(min(255, int(c * 1.25)) for c in st.sidewalk_rgb), SIDEWALK, 0.1),
            G_TRACK: (tuple(int(c * 0.88) for c in st.road_rgb), ROAD, 0.18),
            G_BIKE: ((128, 84, 78) if st.name == "urban" else (96, 112, 92), ROAD, 0.2),
        }
        for gid, (rgb, lab, amp) in g.items():
            self.color[gid] = rgb
            self.label[gid] = lab
            self.texamp[gid] = amp
            self.facing[gid] = F_UP
        self.base_ground = self.color[:NG].copy()
        self.facing[G_WINDOW] = self.facing[G_LITWIN] = 3
        self.texamp[NG : NG + 2 * W] = 0.28
        self.texamp[NG + 2 * W :] = 0.14
        self.col_ids = [NG + np.arange(W, dtype=np.int32), NG + W + np.arange(W, dtype=np.int32)]
        self._lut_all = np.zeros(128 * LUT_LEN, np.uint8)  # ground id by (row kind, |u|)
        self._kind_known = np.zeros(128, bool)

    # ------------------------------------------------------------------
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
            gid = np.where((au >= kerb) & (au < kerb + 0.25), G_CURB, gid)
        far_side = min(self.town.setback[0][1], self.town.setback[1][1])
        if inter:
            gid = np.where((au > lay.road_half) & (au < far_side), G_ROAD, gid)
        half0 = st.median / 2
        lanes_half = lay.lanes_end
        if st.bike_lane:  # a tinted bike lane beyond the traffic lanes
            gid = np.where((au >= lanes_half) & (au < lanes_half + st.bike_lane), G_BIKE, gid)
        line_w = 0.075 * 2**wc
        q = (au - half0) / st.lane_width
        qi = np.rint(q)
        on = (np.abs(q - qi) * st.lane_width < line_w) & (qi >= 0) & (qi <= st.lanes_per_dir)
        solid = (qi == 0) | (qi == st.lanes_per_dir)
        if st.name == "urban":
            solid = (qi == 0) | ((qi == st.lanes_per_dir) & (st.bike_lane > 0))
        mark = on & (solid | bool(dash)) & (au < lanes_half + 0.2) & (not inter)
        if cross:
            mark |= ((au % 1.2) < 0.6) & (au < lanes_half)
        if stop:
            mark |= (au > half0) & (au < lanes_half)
        if not inter:
            lane_pos = (au - half0) / st.lane_width
            li = np.floor(lane_pos)
            off = np.abs((lane_pos - li - 0.5) * st.lane_width)
            track = (li >= 0) & (li < st.lanes_per_dir) & (np.abs(off - 0.85) < 0.2)
            gid = np.where(track & (gid == G_ROAD), G_TRACK, gid)
        mid = G_MARK_Y if self.yellow_centre else G_MARK
        gid = np.where(mark, np.where(qi == 0, mid, G_MARK), gid)
        return gid.astype(np.int32)

    @property
    def yellow_centre(self) -> bool:
        return self.town.style.name in ("suburban", "rural")

    def _lut_offsets(self, kinds: np.ndarray) -> np.ndarray:
        """Offsets into the lookup table for each row's kind (tables filled lazily)."""
        if not self._kind_known[kinds].all():
            for k in np.unique(kinds).tolist():
                if not self._kind_known[k]:
                    # tables depend on the town style (and, at crossings, the far set-back)
                    far = min(self.town.setback[0][1], self.town.setback[1][1])
                    key = (self.town.style.name, k, far if (k >> 6) & 1 else None)
                    lut = _LUT_CACHE.get(key)
                    if lut is None:
                        lut = self._ground_lut(k)
                        if len(_LUT_CACHE) < 2048:
                            _LUT_CACHE[key] = lut
                    self._lut_all[k * LUT_LEN : (k + 1) * LUT_LEN] = lut
                    self._kind_known[k] = True
        return (kinds * LUT_LEN).astype(np.int32)

    def _layer_hits(self, cam: CameraState) -> tuple[np.ndarray, np.ndarray]:
        """Per layer and column: depth of the first hit with the layer's planes (left or
        right, whichever comes first) and the side hit; shapes (2, W)."""
        sb = self.town.setback
        U = np.array([[-sb[0][0]], [sb[1][0]], [-sb[0][1]], [sb[1][1]]])
        A = -0.5 * cam.curvature
        B = (self.a - cam.heading)[None, :]
        C = cam.u - U
        with np.errstate(divide="ignore", invalid="ignore"):
            if abs(A) < 1e-9:
                z = -C / B
                z = np.where(z > 0.05, z, np.inf)
            else:
                disc = B * B - 4 * A * C
                sq = np.sqrt(np.maximum(disc, 0.0))
                q = -0.5 * (B + np.where(B >= 0, sq, -sq))
                r1 = q / A
                r2 = C / q
                r1 = np.where(r1 > 0.05, r1, np.inf)
                r2 = np.where(r2 > 0.05, r2, np.inf)
                z = np.where(disc >= 0, np.minimum(r1, r2), np.inf)
        z = z.reshape(2, 2, -1)  # (layer, side, W)
        side = (z[:, 1] < z[:, 0]).astype(np.int8)
        best = np.minimum(z[:, 0], z[:, 1])
        best = np.where(best < ZMAX, best, np.inf)
        return best, side

    def _layer_columns(
        self, cam: CameraState, layer: int, z: np.ndarray, side: np.ndarray
    ) -> dict | None:
        """Per-column facts of one layer: depth, block properties, covered rows."""
        town = self.town
        hit = np.isfinite(z)
        if not hit.any():
            return None
        zc = np.where(hit, z, ZMAX)
        s_hit = cam.s + zc
        bl, br = town.blocks[0][layer], town.blocks[1][layer]
        idx_l, idx_r = bl.lookup(s_hit), br.lookup(s_hit)
        right = side == 1
        kind = np.where(right, br.kind[idx_r], bl.kind[idx_l])
        top = np.where(right, br.height[idx_r], bl.height[idx_l]).astype(np.float64)
        rgb = np.where(right[:, None], br.rgb[idx_r], bl.rgb[idx_l])
        bstart = np.where(right, br.start[idx_r], bl.start[idx_l])
        style = np.where(right, br.seed[idx_r], bl.seed[idx_l]).astype(np.int64)
        if layer == 0:
            top = np.where(town.in_intersection(s_hit), 0.0, top)
        n1 = self.tex1d[(s_hit * 2.0).astype(np.int64) & 255]
        top = np.where(kind == K_TREES, top * (0.72 + 0.28 * n1), top)
        top = np.where(kind == K_HEDGE, top * (0.9 + 0.1 * n1), top)
        top = np.where(hit & (kind != K_NONE), top, 0.0)
        if not (top > 0).any():
            return None
        # rows between the layer's base (height 0) and its top, column by column
        y_lo = self.yh - 0.5 + self.f * (self.cam_h - top) / zc
        y_hi = self.yh - 0.5 + self.f * self.cam_h / zc
        y_lo = np.where(top > 0, y_lo, 1e9).astype(np.float32)
        y_hi = np.where(top > 0, y_hi, -1e9).astype(np.float32)
        full = (top > 0) & (
            (kind == K_BUILDING) | (kind == K_WALL) | (kind == K_HEDGE) | (kind == K_TREES)
        )
        return {
            "zc": zc,
            "s_hit": s_hit,
            "kind": kind,
            "right": right,
            "rgb": rgb,
            "bstart": bstart,
            "style": style,
            "y_lo": y_lo,
            "y_hi": y_hi,
            "full": full,
        }

    def _paint_layer(
        self,
        layer: int,
        c: dict,
        depth: np.ndarray,
        gid: np.ndarray,
        texv: np.ndarray,
        shadow: np.ndarray | None,
    ) -> None:
        """Write a layer's solid pixels (windows, fences' gaps, texture) into the buffers."""
        H, W = self.H, self.W
        y_lo, y_hi = c["y_lo"], c["y_hi"]
        ra = int(max(0, math.floor(float(y_lo.min()))))
        rb = int(min(H, math.ceil(float(y_hi.max())) + 1))
        if rb <= ra:
            return
        kind = c["kind"]
        sl = slice(NG + layer * W, NG + (layer + 1) * W)
        self.color[sl] = c["rgb"]
        self.label[sl] = _KIND_LABEL[kind]
        self.facing[sl] = np.where(c["right"], F_LEFT, F_RIGHT)
        band = slice(ra, rb)  # only the rows the layer can cover ...
        vis = y_lo < 1e8
        cols: slice | np.ndarray = slice(None)
        if vis.sum() < 0.75 * W:  # ... and only the columns where it can show
            cols = np.flatnonzero(vis)
            y_lo, y_hi = y_lo[cols], y_hi[cols]
        zc32 = c["zc"][cols].astype(np.float32)
        rows = self.rows_f[band]
        solid = (rows > y_lo[None, :]) & (rows <= y_hi[None, :])
        hp = self.cam_h - self.b32[band, None] * zc32[None, :]
        hq = (hp * ATLAS_RES).astype(np.int32)
        np.maximum(hq, 0, out=hq)
        np.minimum(hq, ATLAS_H - 1, out=hq)
        along = ((c["s_hit"][cols] - c["bstart"][cols]) * ATLAS_RES).astype(np.int64) % ATLAS_A
        variant = self.variants[kind[cols] * BUILDING_STYLES + c["style"][cols] % BUILDING_STYLES]
        colterm = ((variant * ATLAS_A + along) * ATLAS_H).astype(np.int32)
        hq += colterm[None, :]
        packed = self.atlas.take(hq)
        code = packed & 3
        solid &= code > 0
        view = isinstance(cols, slice)
        d_sub, g_sub, t_sub = depth[band, cols], gid[band, cols], texv[band, cols]
        np.copyto(d_sub, np.broadcast_to(zc32[None, :], solid.shape), where=solid)
        np.copyto(g_sub, self.col_ids[layer][cols][None, :], where=solid)
        code += G_WINDOW - 2  # windows (2, 3) become G_WINDOW, G_LITWIN
        np.copyto(g_sub, code, where=solid & (code >= G_WINDOW))
        packed >>= 2
        np.copyto(t_sub, packed * np.float32(TEX_STEP), where=solid)
        if not view:
            depth[band, cols] = d_sub
            gid[band, cols] = g_sub
            texv[band, cols] = t_sub
        if shadow is not None:
            if view:
                shadow[band] &= ~solid
            else:
                shadow[band, cols] &= ~solid

    def render(
        self, cam: CameraState, weather: Weather, objects: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        H, W, town = self.H, self.W, self.town
        light = frame_lighting(weather, cam.yaw)
        zg, ground = self.zg, self.ground
        s_row = cam.s + zg
        off_row = (cam.u - cam.heading * zg - 0.5 * cam.curvature * zg * zg).astype(np.float32)
        g0 = self.g0  # rows above g0 see no ground: their lateral offset stays 0
        u = np.zeros((H, W), np.float32)
        np.add(self.X[g0:], off_row[g0:, None], out=u[g0:])

        # ---- ground materials from the row-kind lookup tables ----
        inter_row = town.in_intersection(s_row) & ground
        kinds = self.width_class.copy()
        kinds |= (((s_row * (1 / 9.0)) % 1.0) < 0.39).astype(np.int64) << 3
        if len(town.inter_start):
            j = np.minimum(np.searchsorted(town.inter_start, s_row), len(town.inter_start) - 1)
            ahead = town.inter_start[j] - s_row
            kinds |= ((ahead > 1.0) & (ahead < 5.0)).astype(np.int64) << 4
            kinds |= ((ahead > 5.6) & (ahead < 6.1)).astype(np.int64) << 5
        kinds |= inter_row.astype(np.int64) << 6
        offs = self._lut_offsets(kinds[g0:])
        ug = u[g0:]
        q = np.minimum((np.abs(ug) * LUT_RES).astype(np.int32), LUT_LEN - 1)
        q += offs[:, None]
        gid = np.full((H, W), G_SKY, np.int32)
        gid[g0:] = self._lut_all.take(q)
        depth = self.depth0.copy()
        tbase = (((s_row[g0:] * 3.0).astype(np.int64) & 255) * 256).astype(np.int32)
        tidx = ((ug * 3.0).astype(np.int32) & 255) + tbase[:, None]
        texv = np.zeros((H, W), np.float32)
        texv[g0:] = self.tex_flat.take(tidx)

        # ---- building shadows on the ground, row by row ----
        shadow = None
        if light.direct > 0.02 and light.sun_alt > 0.5:
            cot = 1.0 / math.tan(math.radians(light.sun_alt))
            lateral = math.sin(light.az_rel)
            for side, sgn in ((1, 1.0), (0, -1.0)):
                if sgn * lateral <= 0.05:
                    continue
                reach = np.full(H, -1e9)
                for layer in (0, 1):
                    blk = town.blocks[side][layer]
                    hh = blk.height[blk.lookup(s_row)].astype(np.float64)
                    if layer == 0:
                        hh = np.where(inter_row, 0.0, hh)
                    r = np.minimum(hh * cot * abs(lateral), 400.0) - town.setback[side][layer]
                    reach = np.maximum(reach, r)
                reach = np.where(ground, reach, -1e9).astype(np.float32)
                sh = (u * sgn) > -reach[:, None]
                shadow = sh if shadow is None else shadow | sh

        # ---- vertical layers, far then near (a near hit is never behind a far one) ----
        hits, sides = self._layer_hits(cam)
        cols = [self._layer_columns(cam, layer, hits[layer], sides[layer]) for layer in (0, 1)]
        near, far = cols
        if near is not None and far is not None:
            # far columns wholly hidden behind a solid near façade need no pixel work
            hidden = near["full"] & (near["y_lo"] <= far["y_lo"])
            far["y_lo"] = np.where(hidden, np.float32(1e9), far["y_lo"])
            far["y_hi"] = np.where(hidden, np.float32(-1e9), far["y_hi"])
        for layer in (1, 0):
            c = cols[layer]
            if c is not None:
                self._paint_layer(layer, c, depth, gid, texv, shadow)

        # ---- objects ----
        spr = self.sprites
        spr.reset()
        sun = None
        if light.direct > 0.1 and light.sun_alt > 8.0:
            cot = 1.0 / math.tan(math.radians(light.sun_alt))
            sun = (-math.cos(light.az_rel) * cot, -math.sin(light.az_rel) * cot)
        spr.set_camera(self.f, self.cx, self.yh, self.cam_h, cam.u, cam.heading, cam.curvature, sun)
        draw_objects(self, objects, cam, light.night)
        spr.finish()
        n = spr.n
        is_part = None
        if n:
            self.part_depth[1 : n + 1] = spr.depth[:n]
            sd = self.part_depth.take(spr.buf)
            is_part = sd < depth
            np.copyto(depth, sd, where=is_part)
            np.copyto(gid, spr.buf + (NG + 2 * W - 1), where=is_part)
            np.copyto(texv, self.screen, where=is_part)
            if shadow is not None:
                shadow &= ~is_part
            p = slice(NG + 2 * W, NG + 2 * W + n)
            self.color[p] = spr.color[:n]
            self.label[p] = spr.label[:n]
            self.facing[p] = spr.facing[:n]
            self.emit[p] = spr.emit[:n]
        contact = None
        if spr.has_shadow:
            contact = spr.shadow > 0
            contact &= gid < G_SKY
            if is_part is not None:
                contact &= ~is_part
        gid = gid.astype(np.intp)  # native indices make every table lookup below faster
        labels = self.label.take(gid)
        img = apply_effects(
            self, gid, depth, texv, shadow, contact, is_part, u, s_row, light, weather, cam
        )
        self.part_depth[1 : n + 1] = np.inf
        self.emit[NG + 2 * W : NG + 2 * W + n] = 0.0
        return img, labels, depth
